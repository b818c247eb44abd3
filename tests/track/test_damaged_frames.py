"""Damaged frames of tunnels the tracker already knows: shown as malformed, never an exception.

The decoders are fuzzed on their own (tests/decode); the tracker also reads
the GRE header inline on its hot path for tunnels it knows, and the batch
path reads it with numpy. Both must take any cut or flipped copy of a real
frame, in the middle of a real session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pptptop import sources
from pptptop.sources.base import Frame
from pptptop.sources.batch import batch_from_frames
from pptptop.track.model import Phase
from pptptop.track.tracker import Tracker

DATA = Path(__file__).parent.parent / "data"
FRAMES: list[Frame] = list(sources.open_file(str(DATA / "s1-mschapv2-mppe128-inside.pcap")))
GRE = [i for i, f in enumerate(FRAMES) if len(f.data) > 23 and f.data[23] == 47]


def _up_to_data() -> tuple[Tracker, int]:
    """A tracker fed the session until its tunnel carries data; the number of frames fed."""
    tracker = Tracker()
    for i, f in enumerate(FRAMES):
        tracker.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
        if any(t.phase is Phase.DATA for t in tracker.tunnels.values()):
            return tracker, i + 1
    raise AssertionError("the session never reached the data phase")


def _damage(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    b = bytearray(data[:cut])
    for pos, bit in flips:
        if b:
            b[pos % len(b)] ^= 1 << bit
    return bytes(b)


damage = st.tuples(st.sampled_from(GRE), st.integers(0, 80),
                   st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 7)), max_size=3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(damage, min_size=1, max_size=12))
def test_damaged_gre_of_a_known_tunnel_frame_by_frame(cases: list[tuple[int, int, list[tuple[int, int]]]]) -> None:
    tracker, n = _up_to_data()
    for k, (i, cut, flips) in enumerate(cases):
        f = FRAMES[i]
        tracker.feed(n + k + 1, f.ts, f.iface, f.linktype, _damage(f.data, cut, flips))
    assert tracker.stats.frames == n + len(cases)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(damage, min_size=1, max_size=40))
def test_damaged_gre_of_a_known_tunnel_in_a_batch(cases: list[tuple[int, int, list[tuple[int, int]]]]) -> None:
    tracker, n = _up_to_data()
    damaged = [Frame(FRAMES[i].ts, FRAMES[i].iface, FRAMES[i].linktype, _damage(FRAMES[i].data, cut, flips))
               for i, cut, flips in cases]
    # between whole data frames, so that the batch takes the vectorised path for some of it
    whole = [FRAMES[i] for i in GRE if i >= n][:40]
    mixed = [f for pair in zip(whole, damaged, strict=False) for f in pair] + damaged[len(whole):]
    batch = batch_from_frames(mixed)
    tracker.feed_batch(batch, n + 1)
    assert tracker.stats.frames == n + len(mixed)
    assert int(np.sum(batch.lengths)) == sum(len(f.data) for f in mixed)


def _ack_only(like: Frame, ack: int) -> Frame:
    """An enhanced GRE acknowledgment without payload (RFC 2637 §4.1: A set, S clear), 46 octets, unpadded."""
    d = bytearray(like.data[:46])
    d[16:18] = (20 + 12).to_bytes(2, "big")  # IPv4 total length: header and the 12-octet GRE header
    d[34], d[35] = 0x20, 0x81  # K; A and version 1
    d[38:40] = b"\x00\x00"  # payload length 0
    d[42:46] = ack.to_bytes(4, "big")
    return Frame(like.ts, like.iface, like.linktype, bytes(d))


def test_an_acknowledgment_ending_the_batch_buffer() -> None:
    """The batch path reads each frame's headers a word at a time: one that ends exactly where the buffer does
    (a read-ahead slot's last frame always does) still gives its own acknowledgment number, not octets before."""
    batch_tracker, n = _up_to_data()
    frame_tracker, _ = _up_to_data()
    data = [FRAMES[i] for i in GRE if i >= n][:20]
    ack = _ack_only(data[-1], 0x0A0B0C0D)
    frames = [*data, ack]
    batch_tracker.feed_batch(batch_from_frames(frames), n + 1)
    for k, f in enumerate(frames):
        frame_tracker.feed(n + k + 1, f.ts, f.iface, f.linktype, f.data)
    acks = [[t.traffic[d].last_ack for d in (0, 1)] for t in batch_tracker.tunnels.values()]
    assert acks == [[t.traffic[d].last_ack for d in (0, 1)] for t in frame_tracker.tunnels.values()]
    assert 0x0A0B0C0D in acks[0]
