"""StreamReassembler: real control streams, crafted TCP misbehaviour, hypothesis properties."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pptp_capture import (
    TSHARK,
    captures,
    control_messages,
    frame_by_length,
    ordered_stream,
    segments_by_direction,
    tshark_rows,
)

from pptptop.decode.errors import DecodeError
from pptptop.decode.pptp import MAGIC_COOKIE, decode_control
from pptptop.decode.tcp import TcpFlags
from pptptop.decode.tcpstream import StreamReassembler, seq_diff

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

SYN = int(TcpFlags.SYN)
ACK = int(TcpFlags.ACK)
PSH_ACK = int(TcpFlags.PSH | TcpFlags.ACK)
FIN_ACK = int(TcpFlags.FIN | TcpFlags.ACK)
MOD = 2**32

PPTP_CAPTURES = [p for p in captures() if control_messages(p)[0]]


def msg(msg_type: int, length: int, fill: int = 0) -> bytes:
    return struct.pack("!HHIHH", length, 1, MAGIC_COOKIE, msg_type, 0) + bytes([fill]) * (length - 12)


M1, M2, M3, M4 = msg(1, 156, 1), msg(5, 16, 2), msg(6, 20, 3), msg(12, 16, 4)
STREAM = M1 + M2 + M3 + M4


def feed_all(r: StreamReassembler, segments: list[tuple[int, int, bytes]]) -> list[bytes | DecodeError]:
    out: list[bytes | DecodeError] = []
    for seq, flags, payload in segments:
        out += r.feed(seq, flags, payload)
    return out


def cut(stream: bytes, base: int, sizes: list[int]) -> list[tuple[int, int, bytes]]:
    segs = []
    pos = 0
    for n in sizes:
        if pos >= len(stream):
            break
        segs.append(((base + pos) % MOD, PSH_ACK, stream[pos : pos + n]))
        pos += n
    if pos < len(stream):
        segs.append(((base + pos) % MOD, PSH_ACK, stream[pos:]))
    return segs


def only_messages(items: list[bytes | DecodeError]) -> list[bytes]:
    assert all(isinstance(i, bytes) for i in items), [i for i in items if isinstance(i, DecodeError)]
    return [i for i in items if isinstance(i, bytes)]


# --- real captures -----------------------------------------------------------


def real_streams(names: tuple[str, ...]) -> list[bytes]:
    out = []
    for path in captures():
        if path.name in names and path.parent.name == "data":
            for segs in segments_by_direction(path).values():
                stream = ordered_stream(segs)
                if stream:
                    out.append(stream)
    return out


REAL = real_streams(
    (
        "s1-mschapv2-mppe128-inside.pcap",
        "s10-server-ctrl-sigterm-outside.pcap",
        "pptpsniffer__connect.pcapng",
        "ndpi__pptp.pcap",
    )
)


def test_real_streams_were_found() -> None:
    assert len(REAL) == 8
    assert all(frame_by_length(s) and sum(map(len, frame_by_length(s))) == len(s) for s in REAL)


@pytest.mark.parametrize("path", PPTP_CAPTURES, ids=lambda p: str(p.relative_to(p.parent.parent)))
def test_capture_order_gives_the_stream_cut_by_length(path: Path) -> None:
    items, streams = control_messages(path)
    for key, segs in segments_by_direction(path).items():
        got = only_messages([i.item for i in items if i.direction == key])
        assert got == frame_by_length(ordered_stream(segs))
        r = streams[key]
        assert (r.messages, r.resyncs, r.gaps, r.out_of_order) == (len(got), 0, 0, 0)
        assert r.held_bytes == 0 and r.pending_bytes == 0


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("path", PPTP_CAPTURES, ids=lambda p: str(p.relative_to(p.parent.parent)))
def test_messages_complete_in_the_frames_tshark_says(path: Path) -> None:
    items, _ = control_messages(path)
    ours = [
        (i.frame, decode_control(i.item).message_type, len(i.item))
        for i in items
        if isinstance(i.item, bytes)
    ]
    theirs = []
    for row in tshark_rows(path, "pptp", ["pptp.control_message_type", "pptp.length"]):
        for t, n in zip(row[1].split("|"), row[2].split("|"), strict=True):
            theirs.append((int(row[0]), int(t), int(n)))
    assert ours == theirs


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("name", ["ndpi__pptp.pcap", "tcpdump__pptp.pcap", "s9-server-hangup-inside.pcap"])
def test_retransmissions_match_tshark(name: str) -> None:
    path = next(p for p in PPTP_CAPTURES if p.name == name)
    _, streams = control_messages(path)
    rows = tshark_rows(
        path, "tcp.port == 1723 && tcp.len > 0 && tcp.analysis.retransmission", ["ip.src", "tcp.srcport"]
    )
    expected: dict[tuple[str, int], int] = {}
    for _, src, sport in rows:
        expected[(src, int(sport))] = expected.get((src, int(sport)), 0) + 1
    got = {(k[1], k[2]): r.retransmissions for k, r in streams.items() if r.retransmissions}
    assert got == expected
    if name != "s9-server-hangup-inside.pcap":
        assert got


def test_ndpi_fin_then_retransmitted_data_and_fin() -> None:
    path = next(p for p in PPTP_CAPTURES if p.name == "ndpi__pptp.pcap")
    _, streams = control_messages(path)
    client = next(r for k, r in streams.items() if k[4] == 1723)
    assert client.closed and client.retransmissions == 1 and client.messages == 3


# --- crafted -----------------------------------------------------------------


class TestSequencing:
    def test_syn_takes_one_sequence_number(self) -> None:
        r = StreamReassembler()
        assert r.feed(1000, SYN, b"") == []
        assert r.next_seq == 1001
        assert r.feed(1001, PSH_ACK, STREAM) == [M1, M2, M3, M4]
        assert (r.messages, r.bytes) == (4, len(STREAM))

    def test_retransmitted_syn_is_ignored(self) -> None:
        r = StreamReassembler()
        r.feed(1000, SYN, b"")
        r.feed(1001, PSH_ACK, M1)
        assert r.feed(1000, SYN, b"") == []
        assert r.feed(1001 + len(M1), PSH_ACK, M2) == [M2]

    def test_without_syn_starts_at_first_segment(self) -> None:
        r = StreamReassembler()
        assert r.feed(0, ACK, b"") == []  # a pure ACK does not fix the start
        assert r.next_seq is None
        assert r.feed(77, PSH_ACK, M2) == [M2]
        assert r.next_seq == 77 + len(M2)

    def test_syn_seen_after_first_data_does_not_restart(self) -> None:
        r = StreamReassembler()
        r.feed(501, PSH_ACK, M1[:100])
        r.feed(500, SYN, b"")
        assert r.feed(601, PSH_ACK, M1[100:]) == [M1]

    def test_new_syn_restarts_the_stream(self) -> None:
        r = StreamReassembler()
        r.feed(1000, SYN, b"")
        r.feed(1001, PSH_ACK, M1[:50])
        r.feed(9000, SYN, b"")
        assert r.pending_bytes == 0
        assert r.feed(9001, PSH_ACK, M2) == [M2]

    def test_several_messages_per_segment_and_one_message_over_many(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        segs = cut(STREAM, 1, [1] * 160 + [40])
        out = feed_all(r, segs)
        assert out == [M1, M2, M3, M4]
        assert r.pending_bytes == 0

    def test_full_retransmission_is_counted_and_dropped(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        r.feed(1, PSH_ACK, M1)
        assert r.feed(1, PSH_ACK, M1) == []
        assert r.retransmissions == 1 and r.messages == 1

    def test_partial_overlap_is_trimmed(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        r.feed(1, PSH_ACK, STREAM[:100])
        assert r.feed(51, PSH_ACK, STREAM[50:172]) == [M1, M2]
        assert r.retransmissions == 1
        assert r.feed(173, PSH_ACK, STREAM[172:]) == [M3, M4]

    def test_out_of_order_waits_for_the_hole(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        late = cut(STREAM, 1, [60, 60, 60])
        assert len(late) == 4
        assert r.feed(*late[1]) == []
        assert r.feed(*late[2]) == []
        assert r.feed(*late[2]) == []  # duplicate of a held segment
        assert r.held_segments == 2
        assert r.feed(*late[0]) == [M1, M2]
        assert r.feed(*late[3]) == [M3, M4]
        assert (r.out_of_order, r.retransmissions, r.gaps, r.held_bytes) == (2, 1, 0, 0)

    def test_overlapping_held_segments(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        r.feed(1 + 120, PSH_ACK, STREAM[120:200])
        r.feed(1 + 150, PSH_ACK, STREAM[150:])
        assert r.feed(1, PSH_ACK, STREAM[:130]) == [M1, M2, M3, M4]

    @pytest.mark.parametrize("isn", [MOD - 1, MOD - 2, MOD - 100, MOD - 157])
    def test_sequence_wraparound(self, isn: int) -> None:
        r = StreamReassembler()
        r.feed(isn, SYN, b"")
        segs = cut(STREAM, isn + 1, [30, 60, 90])
        random.Random(isn).shuffle(segs)
        assert feed_all(r, segs) == [M1, M2, M3, M4]
        assert r.next_seq == (isn + 1 + len(STREAM)) % MOD
        assert seq_diff(5, MOD - 5) == 10 and seq_diff(MOD - 5, 5) == -10

    def test_fin_takes_one_sequence_number(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        assert r.feed(1, FIN_ACK | PSH_ACK, M1) == [M1]
        assert r.closed and r.next_seq == 2 + len(M1)
        assert r.feed(1, FIN_ACK | PSH_ACK, M1) == []  # retransmitted data + FIN
        assert r.retransmissions == 1

    def test_fin_before_the_hole_fills(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        r.feed(1 + len(M1), FIN_ACK, M2)
        assert not r.closed
        assert r.feed(1, PSH_ACK, M1) == [M1, M2]
        assert r.closed

    def test_data_beyond_fin_is_ignored(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        r.feed(1 + len(M1), FIN_ACK, b"")  # FIN after M1, M1 not yet seen
        assert r.feed(1, PSH_ACK, M1 + M2) == [M1]
        assert r.closed


class TestResync:
    def test_bad_magic_in_the_middle(self) -> None:
        bad = bytearray(M2)
        bad[4] ^= 0xFF
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        out = r.feed(1, PSH_ACK, M1 + bytes(bad) + M3)
        assert out[0] == M1 and out[2] == M3 and len(out) == 3
        err = out[1]
        assert isinstance(err, DecodeError) and err.code == "pptp_bad_magic" and err.offset == len(M1)
        assert r.resyncs == 1 and r.messages == 2

    def test_impossible_length(self) -> None:
        bad = bytearray(M2)
        bad[0:2] = (5000).to_bytes(2, "big")
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        out = r.feed(1, PSH_ACK, bytes(bad) + M3 + M4)
        assert isinstance(out[0], DecodeError) and out[0].code == "pptp_bad_length"
        assert out[1:] == [M3, M4] and r.resyncs == 1

    @pytest.mark.parametrize("length", [0, 11, 1025])
    def test_length_bounds(self, length: int) -> None:
        bad = bytearray(M2)
        bad[0:2] = length.to_bytes(2, "big")
        r = StreamReassembler()
        out = r.feed(1, PSH_ACK, bytes(bad) + M3)
        assert [type(o) for o in out] == [DecodeError, bytes]

    def test_resync_finds_a_header_split_across_segments(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        data = b"garbage!" * 3 + M2 + M3
        out = feed_all(r, cut(data, 1, [30, 2, 3]))
        assert [type(o) for o in out] == [DecodeError, bytes, bytes]
        assert out[1:] == [M2, M3] and r.resyncs == 1

    def test_capture_started_mid_message(self) -> None:
        r = StreamReassembler()
        out = r.feed(5000, PSH_ACK, M1[40:] + M2)
        assert [type(o) for o in out] == [DecodeError, bytes]
        assert out[1] == M2 and r.resyncs == 1

    def test_max_message_parameter(self) -> None:
        r = StreamReassembler(max_message=100)
        out = r.feed(1, PSH_ACK, M1 + M2)
        assert [type(o) for o in out] == [DecodeError, bytes]
        with pytest.raises(ValueError):
            StreamReassembler(max_message=11)


class TestGaps:
    def lost_m2(self, **limits: int) -> tuple[StreamReassembler, list[bytes | DecodeError]]:
        """M1, then M2 never seen, then many M3s."""
        r = StreamReassembler(**limits)
        out = r.feed(0, SYN, b"") + r.feed(1, PSH_ACK, M1 + M2[:5])
        seq = 1 + len(M1) + len(M2)
        for _ in range(10):
            out += r.feed(seq, PSH_ACK, M3)
            seq += len(M3)
        return r, out

    def test_hole_outliving_segments_and_bytes_is_skipped(self) -> None:
        r, out = self.lost_m2(gap_bytes=40, gap_segments=3)
        assert r.gaps == 1
        assert out[0] == M1 and out[1:] == [M3] * 10
        assert r.held_bytes == 0 and r.resyncs == 0

    def test_buffer_bound_forces_a_gap(self) -> None:
        r, out = self.lost_m2(max_buffer=100, gap_segments=1000)
        assert r.gaps == 1 and out[1:] == [M3] * 10

    def test_segment_bound_forces_a_gap(self) -> None:
        r, out = self.lost_m2(max_segments=4, gap_segments=1000)
        assert r.gaps == 1 and out[1:] == [M3] * 10

    def test_hole_waits_under_the_limits(self) -> None:
        r, out = self.lost_m2()
        assert out == [M1] and r.gaps == 0 and r.held_segments == 10
        assert r.flush() == [M3] * 10
        assert r.gaps == 1

    def test_peer_ack_proves_the_hole_was_lost(self) -> None:
        r, _ = self.lost_m2()
        assert r.acknowledged(1 + len(M1) + 3) == []  # partly acked hole, nothing held before the ack
        got = r.acknowledged(1 + len(M1) + len(M2) + len(M3))
        assert got == [M3] * 10 and r.gaps == 1

    def test_peer_ack_with_nothing_held(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        r.feed(1, PSH_ACK, M1)
        assert r.acknowledged(1 + len(M1)) == []
        assert r.gaps == 0
        assert r.acknowledged(1 + len(M1) + len(M2)) == []
        assert r.gaps == 1 and r.next_seq == 1 + len(M1) + len(M2)
        assert r.feed(1 + len(M1) + len(M2), PSH_ACK, M3) == [M3]

    def test_ack_of_the_fin_is_not_a_gap(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        r.feed(1, FIN_ACK, M1)
        assert r.acknowledged(2 + len(M1)) == [] and r.gaps == 0

    def test_gap_lands_mid_message(self) -> None:
        r = StreamReassembler()
        r.feed(0, SYN, b"")
        r.feed(1, PSH_ACK, M1[:10])
        r.feed(1 + 100, PSH_ACK, M1[100:] + M2)
        out = r.flush()
        assert [type(o) for o in out] == [DecodeError, bytes] and out[1] == M2
        assert (r.gaps, r.resyncs) == (1, 1)


# --- hypothesis --------------------------------------------------------------


@st.composite
def messy_delivery(draw: st.DrawFn, stream: bytes) -> tuple[int, bool, list[tuple[int, int, bytes]]]:
    """Random segmentation, local reordering, retransmissions with other boundaries, any ISN."""
    isn = draw(st.one_of(st.integers(0, MOD - 1), st.integers(MOD - 3000, MOD - 1)))
    with_syn = draw(st.booleans())
    base = (isn + 1) % MOD if with_syn else isn
    sizes = draw(st.lists(st.integers(1, 300), min_size=1, max_size=60))
    segs = cut(stream, base, sizes)
    rng = random.Random(draw(st.integers(0, 2**32)))
    order = list(range(len(segs)))
    start = 0 if with_syn else 1  # without a SYN the first segment fixes the start
    for i in range(start, len(order) - 1):
        if rng.random() < 0.3:
            j = min(len(order) - 1, i + rng.randint(1, 3))
            order[i], order[j] = order[j], order[i]
    delivered = [segs[i] for i in order]
    for _ in range(draw(st.integers(0, 3))):
        a = rng.randrange(len(stream))
        b = rng.randrange(a, len(stream)) + 1
        pos = rng.randint(1, len(delivered))
        delivered.insert(pos, ((base + a) % MOD, PSH_ACK, stream[a:b]))
    if with_syn:
        delivered.insert(0, (isn, SYN, b""))
    return isn, with_syn, delivered


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_messy_delivery_gives_the_same_messages(data: st.DataObject) -> None:
    stream = data.draw(st.sampled_from(REAL))
    _, _, delivered = data.draw(messy_delivery(stream))
    r = StreamReassembler()
    out: list[bytes | DecodeError] = []
    for seg in delivered:
        out += r.feed(*seg)
        assert r.held_bytes <= r.max_buffer and r.pending_bytes < r.max_message
    assert only_messages(out) == frame_by_length(stream)
    assert (r.resyncs, r.gaps, r.bytes, r.held_bytes) == (0, 0, len(stream), 0)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_bad_magic_in_the_middle_resyncs_once(data: st.DataObject) -> None:
    stream = data.draw(st.sampled_from(REAL))
    msgs = frame_by_length(stream)
    k = data.draw(st.integers(0, len(msgs) - 1))
    byte = data.draw(st.integers(4, 7))
    broken = [bytearray(m) for m in msgs]
    broken[k][byte] ^= data.draw(st.integers(1, 255))
    corrupted = b"".join(bytes(m) for m in broken)
    sizes = data.draw(st.lists(st.integers(1, 200), min_size=1, max_size=40))
    r = StreamReassembler()
    out = r.feed(99, SYN, b"") + feed_all(r, cut(corrupted, 100, sizes))
    assert r.resyncs == 1
    errors = [o for o in out if isinstance(o, DecodeError)]
    assert len(errors) == 1 and errors[0].code == "pptp_bad_magic"
    assert errors[0].offset == sum(len(m) for m in msgs[:k])
    assert [o for o in out if isinstance(o, bytes)] == msgs[:k] + msgs[k + 1 :]


def _check_item(item: bytes | DecodeError, r: StreamReassembler) -> None:
    if isinstance(item, DecodeError):
        assert item.code in {"pptp_bad_magic", "pptp_bad_length"}
    else:
        assert 12 <= len(item) <= r.max_message
        assert int.from_bytes(item[:2], "big") == len(item)
        assert int.from_bytes(item[4:8], "big") == MAGIC_COOKIE


segment = st.tuples(
    st.one_of(st.integers(0, MOD - 1), st.integers(0, 3000)),
    st.sampled_from([0, SYN, ACK, PSH_ACK, FIN_ACK, SYN | ACK, int(TcpFlags.RST), 0xFF]),
    st.binary(max_size=300),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(segment, max_size=80), st.lists(st.integers(0, MOD - 1), max_size=5))
def test_random_segments_never_raise_and_stay_bounded(
    segments: list[tuple[int, int, bytes]], acks: list[int]
) -> None:
    r = StreamReassembler(max_buffer=600, max_segments=6, max_message=200, gap_bytes=100, gap_segments=3)
    for i, seg in enumerate(segments):
        for item in r.feed(*seg):
            _check_item(item, r)
        if acks and i % 7 == 0:
            for item in r.acknowledged(acks[i % len(acks)]):
                _check_item(item, r)
        assert r.held_bytes <= 600 and r.held_segments <= 6 and r.pending_bytes < 200
    for item in r.flush():
        _check_item(item, r)
    assert r.held_bytes == 0


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_bit_flipped_real_streams_never_raise(data: st.DataObject) -> None:
    stream = bytearray(data.draw(st.sampled_from(REAL)))
    for _ in range(data.draw(st.integers(1, 20))):
        bit = data.draw(st.integers(0, len(stream) * 8 - 1))
        stream[bit // 8] ^= 1 << (bit % 8)
    sizes = data.draw(st.lists(st.integers(1, 200), min_size=1, max_size=40))
    r = StreamReassembler()
    for item in r.feed(7, SYN, b"") + feed_all(r, cut(bytes(stream), 8, sizes)):
        _check_item(item, r)
    assert r.pending_bytes < r.max_message
