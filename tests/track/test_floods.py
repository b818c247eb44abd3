"""Floods cost a bounded amount of work and memory, and the batch path gives what one frame at a time gives.

A flood of GRE with random call IDs, from a few sources or from spoofed ones, SYNs to TCP 1723 and
half-open control connections must not create tunnels, grow tables or write a line per packet; GRE of
a session the capture met mid-session must still become a GRE-only tunnel with every packet counted.
"""

from __future__ import annotations

import io
import json
import random
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from pptptop import sources
from pptptop.export.jsonout import EventStream, tunnel_dict
from pptptop.sources.base import Frame
from pptptop.sources.batch import batch_from_frames
from pptptop.track import fastpath
from pptptop.track.model import Phase
from pptptop.track.tracker import Limits, Tracker

ETH = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
SERVER = 0xC6336402  # 198.51.100.2
T0 = 1_700_000_000.0
MPPE = b"\xfd\x90\x01"  # PFC and ACFC: MPPE, coherency count 1 (RFC 3078 §3)


def ipv4(src: int, dst: int, proto: int, payload: bytes) -> bytes:
    return ETH + struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0, src, dst) + payload


def gre(call_id: int, seq: int, ppp: bytes) -> bytes:
    """Enhanced GRE with a sequence number (RFC 2637 §4.1)."""
    return struct.pack("!HHHHI", 0x3001, 0x880B, len(ppp), call_id, seq) + ppp


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0) + payload


def gre_flood(n: int, sources: list[int] | None, seed: int = 1, step: float = 2.5e-3) -> list[Frame]:
    """``n`` GRE data packets to SERVER with random call IDs and sequence numbers, from ``sources`` (None:
    a random, spoofed source each)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        src = rng.choice(sources) if sources else rng.getrandbits(32)
        ppp = MPPE + rng.randbytes(rng.choice((20, 60, 200)))
        out.append(Frame(T0 + i * step, "eth0", 1, ipv4(src, SERVER, 47, gre(rng.getrandbits(16),
                                                                            rng.getrandbits(32), ppp))))
    return out


def run(frames: list[Frame], batch: int | None, limits: Limits | None = None) -> tuple[Tracker, Any]:
    """Feed ``frames`` one at a time (``batch`` None) or in batches of ``batch``; the tracker and everything
    it shows: tunnels, counters, events, pending keys (before the end of input counts them as dropped)."""
    tracker = Tracker(limits)
    events: list[tuple[Any, ...]] = []
    tracker.subscribe(lambda e: events.append((e.ts, e.kind.value, e.tunnel.id if e.tunnel else None, e.frame,
                                               json.dumps(e.detail, sort_keys=True, default=str))))
    if batch is None:
        for i, f in enumerate(frames):
            tracker.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    else:
        for lo in range(0, len(frames), batch):
            tracker.feed_batch(batch_from_frames(frames[lo:lo + batch]), lo + 1)
    strays = tracker.strays
    strays.settle(tracker)
    pending = [(k, tid, [h[0] for h in held]) for k, (tid, held) in strays.pending.items()]
    tcp_pending = [(k, [s[0] for s in segs]) for k, segs in tracker.connections.pending.items()]
    tracker.finish()
    st = tracker.stats
    shown = {
        "tunnels": [tunnel_dict(t, tracker.now) for t in sorted(tracker.tunnels.values(), key=lambda t: t.id)],
        "stats": {k: getattr(st, k) for k in st.__slots__},
        "events": events,
        "pending": pending,
        "tcp_pending": tcp_pending,
        "next_id": tracker._next_id,
    }
    return tracker, shown


def assert_same_in_batches(frames: list[Frame], limits: Limits | None = None, sizes: tuple[int, ...] = (1, 16, 4096),
                           clock: bool = True) -> Tracker:
    """The batch path equals one frame at a time; with ``clock`` False, but for when the clock ticked (the
    data of tunnels is counted a batch at a time: the batch's last frame ticks for it)."""
    one, want = run(frames, None, limits)
    timed = ("tick", "unknown-gre")
    for size in sizes:
        _, got = run(frames, size, limits)
        for part in want:
            a, b = got[part], want[part]
            if part == "events" and not clock:
                a, b = ([e for e in x if e[1] not in timed] for x in (a, b))
            assert a == b, f"batches of {size}: {part} differ"
    return one


class TestUnknownGre:
    def test_random_call_ids_from_a_few_sources_make_no_tunnel_and_bounded_tables(self) -> None:
        frames = gre_flood(24_000, [0xCB007101, 0xCB007102, 0xCB007103, 0xCB007104])
        tracker = Tracker()
        tracemalloc.start()
        for i, f in enumerate(frames[:12_000]):
            tracker.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
        first, _ = tracemalloc.get_traced_memory()
        for i, f in enumerate(frames[12_000:], 12_001):
            tracker.feed(i, f.ts, f.iface, f.linktype, f.data)
        second, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        st = tracker.stats
        assert st.gre_unknown == st.gre == 24_000
        # a random key seen three times while pending is rare; a tunnel per packet was the old cost
        assert st.tunnels_created < 40
        assert len(tracker.strays) <= tracker.limits.max_pending_gre
        assert len(tracker.waiting) <= st.tunnels_created
        assert second < first * 1.25, (first, second)  # twice the packets, the same tables
        tracker.finish()
        kept = sum(t.traffic[d].packets for t in tracker.tunnels.values() for d in (0, 1))
        assert st.gre_unknown_dropped + kept == 24_000
        assert set(st.gre_unknown_sources) <= {"203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"}

    @pytest.mark.parametrize("chunk", [None, 7])
    def test_the_batch_path_holds_a_flood_as_one_frame_at_a_time_does(self, chunk: int | None,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
        """The batch path gives what one frame at a time gives. It makes the columns of the frames it feeds one
        by one plain lists a chunk at a time (a file's batch holds up to 128k frames: memory); with chunks of 7
        frames, their edges fall inside runs of held first sightings and inside stretches fed one by one."""
        if chunk is not None:
            monkeypatch.setattr(fastpath, "SLOW_CHUNK", chunk)
        # a small table so that keys are dropped, seen again, and a few become tunnels within the run
        limits = Limits(max_pending_gre=256, max_orphans_per_pair=4)
        frames = gre_flood(6_000, [0xCB007101, 0xCB007102], seed=3, step=4e-3)
        # a key sent three times between the flood's packets: it becomes a tunnel in every path; one sent
        # three times but too far apart for the table never does
        for k in range(3):
            for at, cid in ((1000 + 100 * k, 4242), (3000 + 400 * k, 4343)):
                frames.insert(at, Frame(frames[at].ts, "eth0", 1,
                                        ipv4(0xCB007109, SERVER, 47, gre(cid, 7 + k * 100, MPPE + b"x"))))
        tracker = assert_same_in_batches(frames, limits)
        assert [t.traffic[0].packets for t in tracker.tunnels.values() if t.server.call_id == 4242] == [3]
        assert not [t for t in tracker.tunnels.values() if t.server.call_id == 4343]
        assert tracker.stats.gre_unknown_dropped > 5_000

    def test_spoofed_sources_are_summed_up_not_listed(self) -> None:
        frames = gre_flood(6_000, None, seed=5, step=1e-2)  # 60 s: six summary intervals
        tracker = assert_same_in_batches(frames, sizes=(16, 4096))
        st = tracker.stats
        assert st.tunnels_created == 0
        assert st.gre_unknown_dropped == 6_000
        assert len(st.gre_unknown_sources) <= 1_025

    def test_a_flood_of_repeating_keys_is_capped_per_address_pair(self) -> None:
        limits = Limits(max_orphans_per_pair=8)
        frames = [
            Frame(T0 + (3 * k + r) * 1e-3, "eth0", 1, ipv4(0xCB007101, SERVER, 47, gre(k, 1000 * r, MPPE)))
            for k in range(200) for r in range(3)
        ]
        tracker = assert_same_in_batches(frames, limits, sizes=(16, 4096))
        assert tracker.stats.tunnels_created == 8
        assert len(tracker._orphans) == 8
        assert tracker.stats.gre_unknown_dropped == 3 * (200 - 8)

    def test_live_json_writes_a_summary_per_source_and_interval_not_a_line_per_packet(self) -> None:
        out = io.StringIO()
        tracker = Tracker()
        tracker.subscribe(EventStream(out))
        frames = gre_flood(6_000, None, seed=7, step=1e-2) + gre_flood(6_000, [0xCB007101], seed=8, step=1e-2)
        frames.sort(key=lambda f: f.ts)
        for i, f in enumerate(frames):
            tracker.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
        tracker.finish()
        every = [json.loads(x) for x in out.getvalue().splitlines()]
        lines = [x for x in every if x["event"] == "unknown-gre"]
        assert len(lines) <= 7 * 17  # 60 s of capture: at most 16 sources and the rest, every 10 s
        # the rest: the few keys seen three times while pending, as GRE-only tunnels (new, phase)
        assert len(every) - len(lines) <= 2 * tracker.stats.tunnels_created <= 40
        kept = sum(t.traffic[d].packets for t in tracker.tunnels.values() for d in (0, 1))
        assert sum(x["packets"] for x in lines) == tracker.stats.gre_unknown_dropped == 12_000 - kept
        busiest = [x for x in lines if x["source"] == "203.0.113.1"]
        assert busiest and all(x["destination"] == "198.51.100.2" for x in busiest)
        assert sum(x["packets"] for x in busiest) == 6_000 - kept

    def test_an_icmp_error_about_a_pending_key_makes_it_a_tunnel(self) -> None:
        tracker = Tracker()
        packet = ipv4(0x0A000002, SERVER, 47, gre(77, 1, b"\xc0\x21\x01\x01\x00\x04"))  # LCP Configure-Request
        tracker.feed(1, T0, "eth0", 1, packet)
        assert not tracker.tunnels
        unreachable = struct.pack("!BBHI", 3, 2, 0, 0) + packet[14:14 + 28]  # protocol unreachable
        tracker.feed(2, T0 + 0.001, "eth0", 1, ipv4(SERVER, 0x0A000002, 1, unreachable))
        (t,) = tracker.tunnels.values()
        assert t.server.call_id == 77 and t.traffic[0].packets == 1
        assert t.icmp_errors and "protocol unreachable" in t.icmp_errors[0]


MID_SESSION = ["s1-mschapv2-mppe128-inside.pcap", "s5-two-clients-same-nat-outside.pcap", "s7-echo-timeout-inside.pcap",
               "s9-server-hangup-outside.pcap"]


def gre_keys(frames: list[Frame]) -> dict[tuple[int, int, int], int]:
    """Enhanced GRE packets of Ethernet/IPv4 frames by (source, destination, call ID)."""
    out: dict[tuple[int, int, int], int] = {}
    for f in frames:
        d = f.data
        if len(d) >= 42 and d[12:14] == b"\x08\x00" and d[23] == 47 and d[36:38] == b"\x88\x0b":
            k = (int.from_bytes(d[26:30], "big"), int.from_bytes(d[30:34], "big"), int.from_bytes(d[40:42], "big"))
            out[k] = out.get(k, 0) + 1
    return out


class TestMidSession:
    @pytest.mark.parametrize("name", MID_SESSION)
    def test_a_capture_started_mid_session_counts_every_gre_packet(self, data_dir: Path, name: str) -> None:
        """``editcap -r F OUT N-999999`` with N in the data phase: each session's tunnel holds every GRE packet
        of the cut in its counters, one frame at a time and in batches alike."""
        whole = list(sources.open_file(str(data_dir / name)))
        cut = whole[len(whole) * 3 // 5:]
        tracker = assert_same_in_batches(cut, clock=False)
        # the session met in its data phase (a GRE-only tunnel, or the call its control connection names)
        assert any(t.traffic[0].data_packets and t.traffic[1].data_packets for t in tracker.tunnels.values())
        counted: dict[tuple[int, int, int], int] = {}
        for t in tracker.tunnels.values():
            for d, (src, dst, cid) in ((0, (t.client.ip, t.server.ip, t.server.call_id)),
                                       (1, (t.server.ip, t.client.ip, t.client.call_id))):
                if cid is not None:
                    k = (_v4(src), _v4(dst), cid)
                    counted[k] = counted.get(k, 0) + t.traffic[d].packets
        sent = gre_keys(cut)
        assert counted == {k: n for k, n in sent.items() if k in counted}
        assert sum(counted.values()) + tracker.stats.gre_unknown_dropped == sum(sent.values())
        assert tracker.stats.gre_unknown_dropped <= 2 * len(sent)  # at most the first packets of a stray key

    def test_a_flood_does_not_hide_a_session_met_mid_session(self, data_dir: Path) -> None:
        whole = list(sources.open_file(str(data_dir / "s1-mschapv2-mppe128-inside.pcap")))
        cut = whole[len(whole) * 3 // 5:]
        alone = run(cut, None)[0]
        flood = gre_flood(10 * len(cut), [0xCB007101, 0xCB007102], seed=9, step=1e-5)
        mixed = [Frame(f.ts, f.iface, f.linktype, f.data) for f in cut]
        for k, f in enumerate(flood):
            mixed.insert(min(len(mixed), (k // 10) * 11 + 1 + k % 10),
                         Frame(cut[min(k // 10, len(cut) - 1)].ts, f.iface, f.linktype, f.data))
        flooded = assert_same_in_batches(mixed, sizes=(16, 4096), clock=False)
        want = sorted((t.client.ip, t.server.ip, t.traffic[0].packets, t.traffic[1].packets)
                      for t in alone.tunnels.values())
        got = sorted((t.client.ip, t.server.ip, t.traffic[0].packets, t.traffic[1].packets)
                     for t in flooded.tunnels.values() if t.client.ip != "203.0.113.1" and t.client.ip != "203.0.113.2")
        assert got == want


def _v4(ip: str) -> int:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


SYN, RST, ACK, SYN_ACK = 0x02, 0x04, 0x10, 0x12


class TestControlFloods:
    def test_syns_and_half_open_connections_open_nothing(self) -> None:
        rng = random.Random(11)
        frames: list[Frame] = []
        t = T0
        for i in range(3_000):
            src, port, isn, sisn = rng.getrandbits(32), rng.randrange(1024, 65536), rng.getrandbits(32), i
            frames.append(Frame(t, "eth0", 1, ipv4(src, SERVER, 6, tcp(port, 1723, isn, 0, SYN))))
            if i % 3:  # the server answers the spoofed SYN
                frames.append(Frame(t + 1e-4, "eth0", 1, ipv4(SERVER, src, 6, tcp(1723, port, sisn, isn + 1, SYN_ACK))))
            if i % 3 == 2:  # the spoofed address exists and resets; or a blind client sends a few bytes
                if i % 2:
                    frames.append(Frame(t + 2e-4, "eth0", 1, ipv4(src, SERVER, 6, tcp(port, 1723, isn + 1, 0, RST))))
                else:
                    frames.append(Frame(t + 2e-4, "eth0", 1,
                                        ipv4(src, SERVER, 6, tcp(port, 1723, isn + 1, 12345, ACK, b"\x00\x9c\x00"))))
            t += 1e-3
        tracker = assert_same_in_batches(frames, Limits(max_pending_tcp=512), sizes=(16, 4096))
        assert tracker.stats.tunnels_created == 0 and not tracker.connections.open
        assert tracker.stats.tcp_unopened >= 3_000 - 512
        assert len(tracker.connections.pending) == 0  # the end of input counts what was still held

    def test_what_shows_a_real_client_opens_the_connection(self) -> None:
        tracker = Tracker()
        n = iter(range(1, 100))

        def feed(src: int, seg: bytes, dst: int = SERVER) -> None:
            tracker.feed(next(n), T0 + len(tracker.tunnels) + 0.001 * tracker.stats.frames, "eth0", 1,
                         ipv4(src, dst, 6, seg))

        feed(0x0A000001, tcp(40001, 1723, 100, 0, SYN))  # SYN, SYN-ACK, ACK: a handshake
        feed(SERVER, tcp(1723, 40001, 900, 101, SYN_ACK), 0x0A000001)
        assert not tracker.tunnels
        feed(0x0A000001, tcp(40001, 1723, 101, 901, ACK))
        feed(0x0A000002, tcp(40002, 1723, 100, 0, SYN))  # a SYN sent again
        feed(0x0A000002, tcp(40002, 1723, 100, 0, SYN))
        feed(0x0A000003, tcp(40003, 1723, 100, 0, SYN))  # refused
        feed(SERVER, tcp(1723, 40003, 0, 101, RST | ACK), 0x0A000003)
        feed(0x0A000004, tcp(40004, 1723, 100, 0, SYN))  # a handshake a blind sender cannot complete
        feed(SERVER, tcp(1723, 40004, 900, 101, SYN_ACK), 0x0A000004)
        feed(0x0A000004, tcp(40004, 1723, 101, 555, ACK))
        by_port = {t.client.port: t for t in tracker.tunnels.values()}
        assert sorted(by_port) == [40001, 40002, 40003]
        assert by_port[40001].tcp.established and by_port[40001].tcp.syn_count == 1
        assert by_port[40002].tcp.syn_count == 2
        assert by_port[40003].phase is Phase.FAILED and by_port[40003].close.reason == "connection refused"
        assert len(tracker.connections.pending) == 1
