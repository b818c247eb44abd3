"""GRE whose key no tunnel owned when it arrived: held, then given to the tunnel that takes the key.

The capture may see a call's first GRE before the Outgoing-Call-Reply that names its call ID (the packets
of two interfaces merged, a reply retransmitted, a capture started mid-handshake). The packets held under
that key belong to the call once the reply binds it. They must never make a GRE-only tunnel later: that
tunnel would take the key from the call, and every later packet of the call with it (found by fuzzing the
batch path, which had counted the call's sequence numbers to the call and its packets to the phantom).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pptptop.sources.base import Frame
from pptptop.sources.batch import batch_from_frames
from pptptop.track.model import Direction
from pptptop.track.tracker import Tracker, gre_key

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "diagnose"))
from diag_support import LCP, Wire, cp, ipv4, opt


def _stray_back(w: Wire) -> None:
    """GRE from the server with a call ID no message named (another call between the two hosts, or a corrupt
    one)."""
    stray = struct.pack("!HHHHI", 0x3001, 0x880B, 8, 52, 0) + b"\xff\x03\xc0\x21" + cp(1, 9)
    w.raw(ipv4(w.server, w.client, 47, stray))


def _session() -> tuple[list[Frame], Wire]:
    w = Wire()
    # the client's first LCP Configure-Request, captured before the call reply that binds its key
    w.ppp("client", LCP, cp(1, 1, opt(5, b"\x11\x22\x33\x44")))
    w.setup()
    w.ppp("client", LCP, cp(1, 2, opt(5, b"\x11\x22\x33\x44")))
    _stray_back(w)
    w.lcp_up()
    return [Frame(*f) for f in w.frames], w


def _reused() -> tuple[list[Frame], Wire]:
    """An older call's GRE to the server's call ID (a GRE-only tunnel: its control connection was not seen),
    then a new call whose reply gives the server that call ID again, and GRE the other way with an unknown
    key, which the GRE-only tunnel takes for its missing call ID."""
    w = Wire()
    for ident in (1, 2, 3):
        w.ppp("client", LCP, cp(9, ident, b"\x00\x00\x00\x00"))  # Echo-Requests of the older call
    w.at(5.0)
    w.gre_seq["client"] = 0
    w.setup()
    _stray_back(w)
    w.lcp_up()
    return [Frame(*f) for f in w.frames], w


def _one_by_one(frames: list[Frame]) -> Tracker:
    tracker = Tracker()
    for i, f in enumerate(frames):
        tracker.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    return tracker


def test_gre_held_before_the_call_reply_is_the_calls_and_never_takes_its_key() -> None:
    frames, w = _session()
    tracker = _one_by_one(frames)
    call = [t for t in tracker.tunnels.values() if t.control_seen]
    assert len(call) == 1
    t = call[0]
    owner = tracker.gre_entry_of("eth0", gre_key(w.client, w.server, w.server_call))
    assert owner is not None and owner[0] is t and owner[1] is Direction.TO_SERVER
    client_gre = w.gre_seq["client"]  # every GRE packet the client sent, the held one included
    ds = t.traffic[Direction.TO_SERVER]
    assert ds.packets == client_gre and ds.max_seq == client_gre - 1
    assert 1 in {p.number for p in t.all_packets()}  # the held Configure-Request, in the call's ladder
    assert not [x for x in tracker.tunnels.values() if x is not t and x.server.call_id == w.server_call]


def test_a_gre_only_tunnel_learning_its_other_call_id_does_not_take_back_the_key_a_new_call_took() -> None:
    frames, w = _reused()
    tracker = _one_by_one(frames)
    call = [t for t in tracker.tunnels.values() if t.control_seen]
    assert len(call) == 1 and len(tracker.tunnels) == 2
    t = call[0]
    old = next(x for x in tracker.tunnels.values() if x is not t)
    assert old.client.call_id == 52  # it took the unknown key the other way
    owner = tracker.gre_entry_of("eth0", gre_key(w.client, w.server, w.server_call))
    assert owner is not None and owner[0] is t
    assert t.traffic[Direction.TO_SERVER].packets == 2  # the new call's two Configure-Request and -Ack
    assert old.traffic[Direction.TO_SERVER].packets == 3


def _ahead() -> tuple[list[Frame], Wire]:
    """A client packet held before the call reply whose sequence number is ahead of the call's next ones (a
    copy of a later packet, captured out of order)."""
    w = Wire()
    w.ppp("client", LCP, cp(9, 7, b"\x00\x00\x00\x00"), seq=7)
    w.setup()
    _stray_back(w)
    w.lcp_up().ppp("client", LCP, cp(9, 1, b"\x00\x00\x00\x00"))
    return [Frame(*f) for f in w.frames], w


def test_gre_held_before_the_call_reply_is_accounted_where_the_reply_is() -> None:
    """The held packet's sequence number is the call's from the reply on: the call's next ones are behind it."""
    frames, w = _ahead()
    tracker = _one_by_one(frames)
    (t,) = [t for t in tracker.tunnels.values() if t.control_seen]
    ds = t.traffic[Direction.TO_SERVER]
    assert ds.packets == w.gre_seq["client"] + 1 and ds.max_seq == 7
    assert ds.reordered == w.gre_seq["client"]  # 0, 1, 2 after 7


@pytest.mark.parametrize("make", [_session, _reused, _ahead], ids=["held-before-the-reply", "key-reused", "ahead"])
def test_the_batch_path_gives_each_key_to_the_tunnel_one_frame_at_a_time_does(
        make: Callable[[], tuple[list[Frame], Wire]]) -> None:
    frames, _ = make()
    want = _one_by_one(frames)
    for split in range(1, len(frames)):
        tracker = Tracker()
        for i, f in enumerate(frames[:split]):
            tracker.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
        tracker.feed_batch(batch_from_frames(frames[split:]), split + 1)
        for a, b in zip(sorted(tracker.tunnels.values(), key=lambda t: t.id),
                        sorted(want.tunnels.values(), key=lambda t: t.id), strict=True):
            for d in Direction:
                got, wanted = ((s.packets, s.max_seq, s.lost, s.duplicates) for s in (a.traffic[d], b.traffic[d]))
                assert got == wanted, split
