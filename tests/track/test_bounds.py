"""State stays bounded and nothing the network sends escapes as an exception."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pptptop import sources
from pptptop.bench import generate
from pptptop.decode.stored import ppp_of
from pptptop.pipeline import Pipeline
from pptptop.track.model import KEEPALIVES_KEPT, Packet, PacketKind, Phase
from pptptop.track.tracker import Limits, Tracker

ETH = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"


def ipv4(src: int, dst: int, proto: int, payload: bytes) -> bytes:
    return (
        ETH
        + struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0, src, dst)
        + payload
    )


def gre(call_id: int, seq: int, payload: bytes = b"\xff\x03\x00\xfd\x90\x01" + b"x" * 40) -> bytes:
    return struct.pack("!HHHHI", 0x3001, 0x880B, len(payload), call_id, seq) + payload


def syn(sport: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, 1723, 1000, 0, 0x50, 0x02, 65535, 0, 0)


def test_bogus_call_id_flood_keeps_memory_flat() -> None:
    tracker = Tracker(Limits(max_orphans=500, max_pending_gre=1_000))  # the first 2,000 fill the bounds
    tracemalloc.start()
    ts = 1_700_000_000.0
    for i in range(2_000):
        tracker.feed(i + 1, ts + i * 1e-4, "eth0", 1, ipv4(0x0A000001, 0x0A000002, 47, gre(i, 1)))
    first, _ = tracemalloc.get_traced_memory()
    for i in range(2_000, 40_000):
        tracker.feed(
            i + 1,
            ts + i * 1e-4,
            "eth0",
            1,
            ipv4(0x0A000001 + (i % 50_000), 0x0A000002, 47, gre(i & 0xFFFF, i)),
        )
    second, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(tracker.tunnels) <= 500
    # no bogus ID repeats: none becomes a tunnel, each waits in the bounded table of pending keys
    assert tracker.stats.tunnels_created == 0
    assert len(tracker.strays) <= tracker.limits.max_pending_gre
    assert tracker.stats.gre_unknown_dropped == 40_000 - len(tracker.strays)
    # 19x more bogus IDs must not cost more than a small multiple of the first batch
    assert second < first * 2, (first, second)


def test_syn_flood_is_bounded() -> None:
    tracker = Tracker(Limits(max_tunnels=1_000))
    ts = 1_700_000_000.0
    for i in range(20_000):
        tracker.feed(
            i + 1,
            ts + i * 1e-5,
            "eth0",
            1,
            ipv4(0xC0000200 + (i % 200), 0xC6336402, 6, syn(1024 + i % 60_000)),
        )
    assert len(tracker.tunnels) <= 1_000
    assert len(tracker.connections.open) <= 1_000
    assert all(t.phase in (Phase.TCP, Phase.FAILED) for t in tracker.tunnels.values())


def test_unanswered_syns_fail_in_tcp_after_timeout() -> None:
    tracker = Tracker(Limits(syn_timeout=21.0))
    ts = 1_700_000_000.0
    for i, dt in enumerate((0.0, 1.0, 3.0, 7.0)):
        tracker.feed(i + 1, ts + dt, "eth0", 1, ipv4(0xC0000201, 0xC6336402, 6, syn(40000)))
    tracker.tick(ts + 30.0)
    (t,) = tracker.tunnels.values()
    assert t.phase is Phase.FAILED and t.failed_in is Phase.TCP
    assert t.tcp.syn_count == 4 and t.close.how == "no-answer"


def test_gre_only_session_pairs_both_directions() -> None:
    tracker = Tracker()
    ts = 1_700_000_000.0
    a, b = 0x0A000001, 0x0A000002
    tracker.feed(1, ts, "eth0", 1, ipv4(a, b, 47, gre(128, 1)))
    tracker.feed(2, ts + 0.01, "eth0", 1, ipv4(b, a, 47, gre(4242, 1)))
    tracker.feed(3, ts + 0.02, "eth0", 1, ipv4(a, b, 47, gre(128, 2)))
    (t,) = tracker.tunnels.values()
    assert not t.control_seen
    assert (t.server.call_id, t.client.call_id) == (128, 4242)
    assert t.traffic[0].packets == 2 and t.traffic[1].packets == 1


def test_gre_sequence_analysis() -> None:
    tracker = Tracker()
    ts = 1_700_000_000.0
    a, b = 0x0A000001, 0x0A000002
    for n, seq in enumerate([1, 2, 3, 5, 6, 4, 6, 9, 7, 8, 10]):
        tracker.feed(n + 1, ts + n * 0.01, "eth0", 1, ipv4(a, b, 47, gre(128, seq)))
    (t,) = tracker.tunnels.values()
    ds = t.traffic[0]
    # 4 arrives late (reordered), 6 twice (duplicate), 7 and 8 late after 9
    assert (ds.lost, ds.duplicates, ds.reordered) == (0, 1, 3)
    assert ds.max_seq == 10


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([1, 101, 113, 276, 0, 228]), st.binary(max_size=200)), max_size=30))
def test_random_frames_never_raise(frames: list[tuple[int, bytes]]) -> None:
    tracker = Tracker()
    for i, (lt, data) in enumerate(frames):
        tracker.feed(i + 1, 1_700_000_000.0 + i, "x", lt, data)
    tracker.finish()


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=120), st.integers(0, 0xFFFF), st.booleans())
def test_random_gre_and_tcp_payloads_never_raise(payload: bytes, cid: int, tcp: bool) -> None:
    tracker = Tracker()
    if tcp:
        seg = struct.pack("!HHIIBBHHH", 40000, 1723, 1, 0, 0x50, 0x18, 65535, 0, 0) + payload
        frame = ipv4(0x0A000001, 0x0A000002, 6, seg)
    else:
        frame = ipv4(
            0x0A000001, 0x0A000002, 47, struct.pack("!HHHH", 0x2001, 0x880B, len(payload), cid) + payload
        )
    tracker.feed(1, 1_700_000_000.0, "x", 1, frame)
    tracker.feed(2, 1_700_000_000.5, "x", 1, frame[: len(frame) // 2])


def test_keepalives_of_a_long_tunnel_do_not_fill_its_store(tmp_path: Path) -> None:
    """Days of echoes: EchoStats counts every one, the tunnel keeps the latest KEEPALIVES_KEPT; the
    negotiation store holds the handshake only, and the drill-down still sees everything in order."""
    path = tmp_path / "long.pcap"
    generate(path, packets=120_000, tunnels=2, seed=5)  # 60,000 packets each: ~100 echo exchanges
    tracker = Tracker()
    Pipeline(sources.open_file(str(path)), tracker).run()
    assert len(tracker.tunnels) == 2
    for t in tracker.tunnels.values():
        assert t.lcp_echo.requests > KEEPALIVES_KEPT
        assert len(t.keepalives) == KEEPALIVES_KEPT
        assert t.folded is not None and len(t.folded) > 0  # the handshake, packed when the data phase began
        stored = [*t.folded.unpack(), *t.packets, *t.late_packets]
        assert stored and not any(is_keepalive(p) for p in stored)
        assert all(is_keepalive(p) for p in t.keepalives)
        every = t.all_packets()
        assert [p.number for p in every] == sorted(p.number for p in every)
        assert len(every) == len(stored) + KEEPALIVES_KEPT
        assert every[-1].number >= t.keepalives[-1].number  # the teardown comes after the last echo


def is_keepalive(p: Packet) -> bool:
    m = p.message if p.message is not None else ppp_of(p.linktype, p.data, None)  # a PPP frame is stored undecoded
    if p.kind is PacketKind.CONTROL:
        return m.message_type in (5, 6)  # RFC 2637 Echo-Request, Echo-Reply
    return p.kind is PacketKind.PPP and m.protocol == 0xC021 and getattr(m.message, "code", 0) in (9, 10, 11)
