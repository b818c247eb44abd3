"""TCP header (RFC 9293 §3.1): real captures against tshark, unfinished NAT checksums, crafted edge cases."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pptp_capture import TSHARK, captures, pptp_tcp_frames, read_frames, tshark_rows

from pptptop.decode.errors import DecodeError
from pptptop.decode.tcp import TcpFlags, TcpSegment, decode_tcp

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

PPTP_TCP_CAPTURES = [p for p in captures() if pptp_tcp_frames(p)]
_FIELDS = [
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.hdr_len",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.checksum",
    "tcp.urgent_pointer",
    "tcp.len",
    "tcp.options",
]


def segment(
    *,
    flags: int = 0x18,
    doff: int = 5,
    reserved: int = 0,
    options: bytes = b"",
    payload: bytes = b"",
    seq: int = 0xFFFFFFFF,
    ack: int = 7,
) -> bytes:
    head = struct.pack("!HHIIBBHHH", 1723, 40000, seq, ack, (doff << 4) | reserved, flags, 512, 0xABCD, 3)
    return head + options + payload


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("path", PPTP_TCP_CAPTURES, ids=lambda p: str(p.relative_to(p.parent.parent)))
def test_tcp_headers_match_tshark(path: Path) -> None:
    rows = {int(r[0]): r[1:] for r in tshark_rows(path, "tcp.port == 1723", _FIELDS, "-E", "occurrence=f")}
    frames = pptp_tcp_frames(path)
    assert {f.frame.number for f in frames} == set(rows)
    for f in frames:
        t = dict(zip(_FIELDS, rows[f.frame.number], strict=True))
        s = f.tcp
        assert (s.src_port, s.dst_port, s.seq, s.ack) == (
            int(t["tcp.srcport"]),
            int(t["tcp.dstport"]),
            int(t["tcp.seq_raw"]),
            int(t["tcp.ack_raw"]),
        )
        tflags = int(t["tcp.flags"], 16)
        assert (s.header_length, int(s.flags), s.reserved) == (
            int(t["tcp.hdr_len"]),
            tflags & 0xFF,
            tflags >> 8,
        )
        assert (s.window, s.checksum, s.urgent, s.payload_length) == (
            int(t["tcp.window_size_value"]),
            int(t["tcp.checksum"], 16),
            int(t["tcp.urgent_pointer"]),
            int(t["tcp.len"]),
        )
        assert s.options.hex() == t["tcp.options"]


@pytest.mark.tshark
@needs_tshark
def test_unfinished_nat_checksums_decode_normally() -> None:
    """nft/6.18 outside captures: segments nf_nat_pptp rewrote carry CHECKSUM_PARTIAL (lab NOTES point 11)."""
    path = next(
        p
        for p in PPTP_TCP_CAPTURES
        if p.parent.name == "nft" and p.name.startswith("s1-") and "outside" in p.name
    )
    bad = tshark_rows(path, "tcp.checksum.status == 0", ["tcp.checksum"], "-o", "tcp.check_checksum:TRUE")
    assert bad, "the capture should hold segments with unfinished checksums"
    by_number = {f.frame.number: f for f in pptp_tcp_frames(path)}
    for number, checksum in bad:
        f = by_number[int(number)]
        assert f.tcp.checksum == int(checksum, 16)
        assert f.tcp.payload_length > 0  # rewritten control messages, still decoded


class TestCrafted:
    def test_fields_and_flags(self) -> None:
        raw = segment(flags=0xFF, reserved=0x1, payload=b"abc")
        s = decode_tcp(raw, 0, len(raw))
        assert (s.src_port, s.dst_port, s.seq, s.ack, s.window, s.checksum, s.urgent) == (
            1723,
            40000,
            0xFFFFFFFF,
            7,
            512,
            0xABCD,
            3,
        )
        assert (
            s.flags
            == TcpFlags.FIN
            | TcpFlags.SYN
            | TcpFlags.RST
            | TcpFlags.PSH
            | TcpFlags.ACK
            | TcpFlags.URG
            | (TcpFlags.ECE | TcpFlags.CWR)
        )
        assert (s.reserved, s.data_offset, s.header_length, s.payload_offset, s.payload_end) == (
            1,
            5,
            20,
            20,
            23,
        )
        assert s.payload_length == 3

    def test_options(self) -> None:
        opts = bytes([2, 4, 5, 0xB4, 1, 3, 3, 7])
        raw = b"\xee" * 34 + segment(flags=0x02, doff=7, options=opts, payload=b"x")
        s = decode_tcp(raw, 34, len(raw))
        assert (s.options, s.payload_offset, s.payload_end) == (opts, 34 + 28, len(raw))
        assert s.flags == TcpFlags.SYN

    def test_end_excludes_padding_and_is_capped(self) -> None:
        raw = segment(payload=b"abcd") + b"\0" * 6
        assert decode_tcp(raw, 0, 24).payload_end == 24
        assert decode_tcp(raw, 0, 1000).payload_end == len(raw)

    @pytest.mark.parametrize(
        ("raw", "end", "code"),
        [
            (segment()[:19], 19, "truncated_tcp"),
            (segment(), 19, "truncated_tcp"),
            (b"", 0, "truncated_tcp"),
            (segment(doff=4), 20, "tcp_bad_data_offset"),
            (segment(doff=0), 20, "tcp_bad_data_offset"),
            (segment(doff=6), 20, "tcp_bad_data_offset"),
            (segment(doff=15, options=b"\0" * 30), 50, "tcp_bad_data_offset"),
        ],
    )
    def test_errors(self, raw: bytes, end: int, code: str) -> None:
        with pytest.raises(DecodeError) as ei:
            decode_tcp(raw, 0, end)
        assert ei.value.code == code and ei.value.offset == 0

    def test_segment_is_frozen_and_slotted(self) -> None:
        s = decode_tcp(segment(), 0, 20)
        with pytest.raises(dataclasses.FrozenInstanceError):
            s.seq = 1  # type: ignore[misc]
        assert not hasattr(s, "__dict__")


def _check(data: bytes, off: int, end: int) -> None:
    try:
        s = decode_tcp(data, off, end)
    except DecodeError as exc:
        assert exc.code in {"truncated_tcp", "tcp_bad_data_offset"}
        return
    assert isinstance(s, TcpSegment)
    assert off + 20 <= s.payload_offset <= s.payload_end <= len(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 6), st.integers(0, 100))
def test_random_bytes(data: bytes, off: int, end: int) -> None:
    _check(data, off, end)


#: the first 40 segments of recorded sessions (lab and public captures, not the crafted-* ones)
REAL_SEGMENTS = [f.frame.data for p in [c for c in PPTP_TCP_CAPTURES if not c.name.startswith("crafted-")][:3]
                 for f in pptp_tcp_frames(p)][:40]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(REAL_SEGMENTS), st.data())
def test_bit_flipped_real_segments(frame: bytes, data: st.DataObject) -> None:
    buf = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 6))):
        bit = data.draw(st.integers(34 * 8, min(len(buf), 74) * 8 - 1))
        buf[bit // 8] ^= 1 << (bit % 8)
    _check(bytes(buf), 34, data.draw(st.integers(34, len(buf))))


def test_real_frames_were_found() -> None:
    assert len(REAL_SEGMENTS) == 40
    assert sum(1 for p in PPTP_TCP_CAPTURES for _ in read_frames(p)) > 1000
