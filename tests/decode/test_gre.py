"""Enhanced GRE (RFC 2637 §4.1): real captures against tshark, crafted edge cases, the fast path, fuzzing."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pptp_capture import TSHARK, captures, gre_headers, ip_of, read_frames, tshark_rows

from pptptop.decode.errors import DecodeError
from pptptop.decode.gre import (
    GRE_A,
    GRE_FIXED,
    GRE_K,
    GRE_PPTP_MASK,
    GRE_PPTP_VALUE,
    GRE_PROTOCOL_PPP,
    GRE_S,
    GRE_VERSION_MASK,
    U32,
    GreHeader,
    decode_gre,
    gre_fields,
    gre_header_length,
)
from pptptop.decode.ip import decode_ip

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

GRE_CAPTURES = [p for p in captures() if gre_headers(p)]


def gre(
    flags: int = 0x3081,
    proto: int = 0x880B,
    plen: int = 0,
    call_id: int = 0,
    *extra: int,
    payload: bytes = b"",
) -> bytes:
    return (
        struct.pack("!HHHH", flags, proto, plen, call_id)
        + b"".join(struct.pack("!I", x) for x in extra)
        + payload
    )


def fast_path(data: bytes, off: int, end: int) -> tuple[int, int, int | None, int | None] | None:
    """The recipe in gre.py's docstring, as the tracker inlines it: (call_id, payload_length, seq, ack)."""
    end = min(end, len(data))  # the tracker's end comes from the IP header, already capped
    if end - off < 8:
        return None
    fv, proto, plen, call_id = GRE_FIXED.unpack_from(data, off)
    if (fv & GRE_PPTP_MASK) != GRE_PPTP_VALUE or proto != GRE_PROTOCOL_PPP:
        return None
    if end - off < gre_header_length(fv):
        return None
    pos = off + 8
    seq = ack = None
    if fv & GRE_S:
        seq = U32.unpack_from(data, pos)[0]
        pos += 4
    if fv & GRE_A:
        ack = U32.unpack_from(data, pos)[0]
    return call_id, plen, seq, ack


class TestRealCaptures:
    def test_the_gre_captures_were_found(self) -> None:
        names = {p.name for p in GRE_CAPTURES}
        assert {"ndpi__gre.pcapng", "pcapplusplus__GrePackets.pcap", "pptpsniffer__connect.pcapng"} <= names

    def test_ndpi_vlan_packet(self) -> None:
        path = next(p for p in GRE_CAPTURES if p.name == "ndpi__gre.pcapng")
        ((_, h),) = gre_headers(path)
        assert isinstance(h, GreHeader)
        assert (h.call_id, h.seq, h.ack, h.payload_length) == (38992, 106, 140, 330)

    def test_pcapplusplus_ack_only_and_non_pptp(self) -> None:
        path = next(p for p in GRE_CAPTURES if p.name == "pcapplusplus__GrePackets.pcap")
        by_frame = dict(gre_headers(path))
        ack_only = by_frame[2]
        assert isinstance(ack_only, GreHeader)
        assert ack_only.flags_version == 0x2081
        assert ack_only.ack_only and ack_only.seq is None and ack_only.ack == 26
        assert ack_only.header_length == 12 and ack_only.payload_offset == ack_only.payload_end
        for frame in (3, 4, 5, 7):  # GRE version 0: IP, Ethernet bridging, ...
            err = by_frame[frame]
            assert isinstance(err, DecodeError) and err.code == "gre_not_pptp"

    def test_lab_ack_only_packets_are_46_byte_frames(self) -> None:
        path = next(p for p in GRE_CAPTURES if p.name == "s1-mschapv2-mppe128-inside.pcap")
        sizes = {f.number: len(f.data) for f in read_frames(path)}
        acks = [(n, h) for n, h in gre_headers(path) if isinstance(h, GreHeader) and h.ack_only]
        assert acks
        assert all(sizes[n] == 46 and h.ack is not None and h.header_length == 12 for n, h in acks)

    @pytest.mark.parametrize("path", GRE_CAPTURES, ids=lambda p: str(p.relative_to(p.parent.parent)))
    def test_fast_path_agrees_with_decode_gre(self, path: Path) -> None:
        frames = {f.number: f for f in read_frames(path)}
        for number, h in gre_headers(path):
            frame = frames[number]
            ip = ip_of(frame)
            assert ip is not None
            if ip.protocol != 47:  # IP in IP
                ip = decode_ip(frame.data, ip.payload_offset, 0)
            fast = fast_path(frame.data, ip.payload_offset, ip.payload_end)
            if isinstance(h, DecodeError):
                assert fast is None
            else:
                assert fast == (h.call_id, h.payload_length, h.seq, h.ack)


_GRE_TSHARK = [
    "ip.proto",
    "gre.flags_and_version",
    "gre.proto",
    "gre.flags.checksum",
    "gre.flags.routing",
    "gre.flags.key",
    "gre.flags.sequence_number",
    "gre.flags.strict_source_route",
    "gre.flags.recursion_control",
    "gre.flags.ack",
    "gre.flags.reserved",
    "gre.flags.version",
    "gre.key.payload_length",
    "gre.key.call_id",
    "gre.sequence_number",
    "gre.ack_number",
]


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("path", GRE_CAPTURES, ids=lambda p: str(p.relative_to(p.parent.parent)))
def test_every_gre_header_matches_tshark(path: Path) -> None:
    rows = {int(r[0]): r[1:] for r in tshark_rows(path, "gre", _GRE_TSHARK, "-E", "occurrence=f")}
    ours = gre_headers(path)
    # tshark also lists GRE quoted inside ICMP errors (s3b); ours is the first IP layer with protocol 47.
    assert {n for n, r in rows.items() if r[0] == "47"} == {n for n, _ in ours}
    for number, h in ours:
        t = dict(zip(_GRE_TSHARK, rows[number], strict=True))
        fv = int(t["gre.flags_and_version"], 16)
        proto = int(t["gre.proto"], 16)
        if isinstance(h, DecodeError):
            assert h.code == "gre_not_pptp"
            assert fv & GRE_VERSION_MASK != 1 or proto != GRE_PROTOCOL_PPP or not fv & GRE_K
            continue
        assert (h.flags_version, h.protocol, h.version) == (fv, proto, int(t["gre.flags.version"]))
        assert h.checksum_present == (t["gre.flags.checksum"] == "1")
        assert h.routing_present == (t["gre.flags.routing"] == "1")
        assert h.key_present == (t["gre.flags.key"] == "1")
        assert h.seq_present == (t["gre.flags.sequence_number"] == "1")
        assert h.strict_source_route == (t["gre.flags.strict_source_route"] == "1")
        assert h.recursion == int(t["gre.flags.recursion_control"])
        assert h.ack_present == (t["gre.flags.ack"] == "1")
        assert h.flags == int(t["gre.flags.reserved"])
        assert h.payload_length == int(t["gre.key.payload_length"])
        assert h.call_id == int(t["gre.key.call_id"])
        assert h.seq == (int(t["gre.sequence_number"]) if t["gre.sequence_number"] else None)
        assert h.ack == (int(t["gre.ack_number"]) if t["gre.ack_number"] else None)


class TestCrafted:
    def test_seq_and_ack(self) -> None:
        h = decode_gre(gre(0x3081, 0x880B, 4, 128, 7, 9, payload=b"\xff\x03\xc0\x21"), 0, 24)
        assert (h.seq, h.ack, h.call_id, h.payload_length, h.header_length) == (7, 9, 128, 4, 16)
        assert (h.payload_offset, h.payload_end, h.payload_truncated) == (16, 20, False)
        assert h.key_present and h.seq_present and h.ack_present and not h.ack_only

    def test_seq_only(self) -> None:
        h = decode_gre(gre(0x3001, 0x880B, 2, 5, 0xFFFFFFFF, payload=b"ab"), 0, 14)
        assert (h.seq, h.ack, h.header_length, h.payload_offset) == (0xFFFFFFFF, None, 12, 12)

    def test_ack_only(self) -> None:
        h = decode_gre(gre(0x2081, 0x880B, 0, 5, 41), 0, 12)
        assert h.ack_only
        assert (h.seq, h.ack, h.payload_length, h.header_length) == (None, 41, 0, 12)

    def test_no_seq_no_ack(self) -> None:
        h = decode_gre(gre(0x2001, 0x880B, 0, 5), 0, 8)
        assert (h.seq, h.ack, h.header_length) == (None, None, 8)

    def test_offset_into_a_frame_and_end_excludes_padding(self) -> None:
        frame = b"\xaa" * 34 + gre(0x3081, 0x880B, 1, 9, 1, 2, payload=b"x") + b"\x00" * 10
        h = decode_gre(frame, 34, 34 + 17)
        assert (h.payload_offset, h.payload_end) == (50, 51)
        assert [r.offset for r in gre_fields(h, 34)][-3:] == [40, 42, 46]

    def test_truncated_payload_is_flagged_not_an_error(self) -> None:
        h = decode_gre(gre(0x3081, 0x880B, 1400, 9, 1, 2, payload=b"x" * 40), 0, 56)
        assert h.payload_truncated and h.payload_end == 56

    @pytest.mark.parametrize("n", range(8))
    def test_shorter_than_fixed_header(self, n: int) -> None:
        with pytest.raises(DecodeError) as ei:
            decode_gre(gre(), 0, n)
        assert ei.value.code == "truncated_gre" and ei.value.offset == 0

    @pytest.mark.parametrize(("flags", "have"), [(0x3081, 12), (0x3081, 15), (0x3001, 11), (0x2081, 8)])
    def test_seq_or_ack_cut_off(self, flags: int, have: int) -> None:
        raw = gre(flags, 0x880B, 0, 1, 1, 2)
        with pytest.raises(DecodeError) as ei:
            decode_gre(raw, 0, have)
        assert ei.value.code == "truncated_gre"

    def test_end_beyond_data_is_capped(self) -> None:
        with pytest.raises(DecodeError) as ei:
            decode_gre(gre(0x3081)[:10], 0, 1000)
        assert ei.value.code == "truncated_gre"

    @pytest.mark.parametrize(
        ("flags", "proto"),
        [
            (0x0000, 0x0800),
            (0x2000, 0x880B),
            (0x2002, 0x880B),
            (0x3081, 0x0800),
            (0x1081, 0x880B),
            (0x2080, 0x6558),
        ],
    )
    def test_not_pptp(self, flags: int, proto: int) -> None:
        with pytest.raises(DecodeError) as ei:
            decode_gre(gre(flags, proto, 0, 0, 0, 0), 0, 16)
        assert ei.value.code == "gre_not_pptp"

    @pytest.mark.parametrize("bit", [0x8000, 0x4000, 0x0800, 0x0100, 0x0400])
    def test_forbidden_bits_in_version_1(self, bit: int) -> None:
        with pytest.raises(DecodeError) as ei:
            decode_gre(gre(0x3081 | bit, 0x880B, 0, 0, 0, 0, 0), 0, 20)
        assert ei.value.code == "gre_bad_flags"

    def test_reserved_flag_bits_are_reported(self) -> None:
        h = decode_gre(gre(0x3081 | 0x0028, 0x880B, 0, 0, 1, 2), 0, 16)
        assert h.flags == 0x5

    def test_fields_list(self) -> None:
        h = decode_gre(gre(0x3081, 0x880B, 4, 128, 7, 9, payload=b"abcd"), 0, 20)
        rows = gre_fields(h)
        names = [r.name for r in rows]
        assert names[:10] == [
            "flags_version",
            "checksum_present",
            "routing_present",
            "key_present",
            "seq_present",
            "strict_source_route",
            "recursion",
            "ack_present",
            "flags",
            "version",
        ]
        by_name = {r.name: r for r in rows}
        assert by_name["protocol"] == (("protocol", 0x880B, 2, 2))
        assert by_name["payload_length"] == ("payload_length", 4, 4, 2)
        assert by_name["call_id"] == ("call_id", 128, 6, 2)
        assert by_name["seq"] == ("seq", 7, 8, 4)
        assert by_name["ack"] == ("ack", 9, 12, 4)
        assert [r.name for r in gre_fields(decode_gre(gre(0x2081, 0x880B, 0, 1, 5), 0, 12))][-1] == "ack"
        assert [r.name for r in gre_fields(decode_gre(gre(0x3081, 0x880B, 0, 1, 5, 6), 0, 16))][-2:] == [
            "seq",
            "ack",
        ]
        assert all(getattr(h, r.name) == r.value for r in rows)

    def test_header_is_frozen_and_slotted(self) -> None:
        h = decode_gre(gre(0x2081, 0x880B, 0, 1, 5), 0, 12)
        with pytest.raises(dataclasses.FrozenInstanceError):
            h.call_id = 2  # type: ignore[misc]
        assert not hasattr(h, "__dict__")


# --- fuzzing -----------------------------------------------------------------


def _check(data: bytes, off: int, end: int) -> None:
    try:
        h = decode_gre(data, off, end)
    except DecodeError as exc:
        assert exc.code in {"truncated_gre", "gre_not_pptp", "gre_bad_flags"}
        assert fast_path(data, off, end) is None
        return
    assert off + h.header_length == h.payload_offset <= h.payload_end <= min(end, len(data))
    assert fast_path(data, off, end) == (h.call_id, h.payload_length, h.seq, h.ack)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 8), st.integers(0, 60))
def test_random_bytes(data: bytes, off: int, end: int) -> None:
    _check(data, off, end)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([0x3081, 0x3001, 0x2081, 0x2001]),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.data(),
)
def test_bit_flipped_and_truncated_headers(flags: int, plen: int, call_id: int, data: st.DataObject) -> None:
    buf = bytearray(gre(flags, 0x880B, plen, call_id, 1, 2, payload=b"\xff\x03\xc0\x21"))
    for _ in range(data.draw(st.integers(0, 4))):
        bit = data.draw(st.integers(0, 16 * 8 - 1))
        buf[bit // 8] ^= 1 << (bit % 8)
    _check(bytes(buf), 0, data.draw(st.integers(0, len(buf))))
