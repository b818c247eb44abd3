"""IPv4/IPv6 headers (RFC 791, RFC 8200): real captures and crafted edge cases against tshark, fuzzing."""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pptp_capture import TSHARK, captures, ethernet_network, ip_of, read_frames, tshark_rows, write_pcap

from pptptop.decode.errors import DecodeError
from pptptop.decode.ip import ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPv4Header, IPv6Header, decode_ip

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

ETH4 = b"\x02\0\0\0\0\1\x02\0\0\0\0\2\x08\x00"
ETH6 = b"\x02\0\0\0\0\1\x02\0\0\0\0\2\x86\xdd"
SRC4, DST4 = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7])
SRC6 = ipaddress.IPv6Address("2001:db8::1").packed
DST6 = ipaddress.IPv6Address("2001:db8:ffff::2").packed
TCP = struct.pack("!HHIIBBHHH", 40000, 1723, 1, 0, 0x50, 0x02, 8192, 0, 0)
GRE = struct.pack("!HHHHII", 0x3081, 0x880B, 0, 7, 1, 2)


def ipv4(
    payload: bytes,
    *,
    proto: int = 6,
    options: bytes = b"",
    tos: int = 0,
    ident: int = 0x1234,
    flags_frag: int = 0x4000,
    ttl: int = 64,
    total: int | None = None,
    checksum: int = 0xBEEF,
) -> bytes:
    ihl = 5 + len(options) // 4
    length = 4 * ihl + len(payload) if total is None else total
    head = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, tos, length, ident, flags_frag, ttl, proto, checksum, SRC4, DST4
    )
    return head + options + payload


def ipv6(
    payload: bytes, *, nxt: int = 6, tc: int = 0, flow: int = 0, hlim: int = 64, plen: int | None = None
) -> bytes:
    first = (6 << 28) | (tc << 20) | flow
    length = len(payload) if plen is None else plen
    return struct.pack("!IHBB16s16s", first, length, nxt, hlim, SRC6, DST6) + payload


def ext(nxt: int, octets: int) -> bytes:
    """Hop-by-hop / destination options header of ``octets`` (a multiple of 8), PadN-filled."""
    pad = octets - 2
    return bytes([nxt, octets // 8 - 1, 1, pad - 2]) + b"\0" * (pad - 2)


def routing(nxt: int) -> bytes:
    """Type 2 routing header (RFC 6275 §6.4): 24 octets, one address, segments left 0."""
    return bytes([nxt, 2, 2, 0]) + b"\0" * 4 + DST6


def frag(nxt: int, offset: int, more: bool, ident: int) -> bytes:
    return struct.pack("!BBHI", nxt, 0, (offset << 3) | int(more), ident)


CRAFTED_V4 = {
    "options-ra": ipv4(TCP, options=b"\x94\x04\x00\x00"),
    "options-max": ipv4(TCP, options=b"\x01" * 40),
    "first-fragment": ipv4(GRE, proto=47, flags_frag=0x2000),
    "middle-fragment": ipv4(b"x" * 16, proto=47, flags_frag=0x2000 | 185),
    "last-fragment": ipv4(b"x" * 16, proto=47, flags_frag=370),
    "dscp-ecn": ipv4(TCP, tos=0xB9, ttl=1),
    "padded": ipv4(TCP) + b"\0" * 6,
}
CRAFTED_V6 = {
    "plain": ipv6(TCP, tc=0xB8, flow=0x12345, hlim=7),
    "chain": ipv6(ext(60, 8) + ext(43, 16) + routing(44) + frag(6, 0, False, 0xCAFE) + TCP, nxt=0),
    "first-fragment": ipv6(frag(47, 0, True, 0x1111) + GRE, nxt=44),
    "later-fragment": ipv6(frag(6, 100, False, 0x1111) + b"y" * 24, nxt=44),
    "dstopts-gre": ipv6(ext(47, 24) + GRE, nxt=60),
}


def v4_frames() -> list[bytes]:
    return [ETH4 + ip for ip in CRAFTED_V4.values()]


def v6_frames() -> list[bytes]:
    return [ETH6 + ip for ip in CRAFTED_V6.values()]


# --- real captures -----------------------------------------------------------

_V4_FIELDS = [
    "ip.version",
    "ip.hdr_len",
    "ip.dsfield",
    "ip.dsfield.dscp",
    "ip.dsfield.ecn",
    "ip.len",
    "ip.id",
    "ip.flags",
    "ip.flags.df",
    "ip.flags.mf",
    "ip.frag_offset",
    "ip.ttl",
    "ip.proto",
    "ip.checksum",
    "ip.src",
    "ip.dst",
]


def _compare_v4(path: Path) -> int:
    rows = {int(r[0]): r[1:] for r in tshark_rows(path, "ip", _V4_FIELDS, "-E", "occurrence=f")}
    checked = 0
    for frame in read_frames(path):
        ip = ip_of(frame)
        if ip is None or ip.version != 4:
            continue
        t = dict(zip(_V4_FIELDS, rows[frame.number], strict=True))
        h = ip.header
        assert isinstance(h, IPv4Header)
        assert (h.version, h.ihl * 4, h.tos, h.dscp, h.ecn) == (
            int(t["ip.version"]),
            int(t["ip.hdr_len"]),
            int(t["ip.dsfield"], 16),
            int(t["ip.dsfield.dscp"]),
            int(t["ip.dsfield.ecn"]),
        ), frame.number
        assert (h.total_length, h.identification, h.flags) == (
            int(t["ip.len"]),
            int(t["ip.id"], 16),
            int(t["ip.flags"], 16),
        ), frame.number
        assert (h.dont_fragment, h.more_fragments, h.fragment_offset) == (
            t["ip.flags.df"] == "1",
            t["ip.flags.mf"] == "1",
            int(t["ip.frag_offset"]),
        ), frame.number
        assert (ip.ttl, ip.protocol, h.checksum, ip.src, ip.dst) == (
            int(t["ip.ttl"]),
            int(t["ip.proto"]),
            int(t["ip.checksum"], 16),
            t["ip.src"],
            t["ip.dst"],
        ), frame.number
        assert ip.fragment == (h.more_fragments or h.fragment_offset > 0)
        checked += 1
    return checked


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("path", captures(), ids=lambda p: str(p.relative_to(p.parent.parent)))
def test_ipv4_headers_match_tshark(path: Path) -> None:
    assert _compare_v4(path) > 0


def test_payload_end_excludes_ethernet_padding() -> None:
    padded = 0
    for path in captures():
        for frame in read_frames(path):
            ip = ip_of(frame)
            if ip is None or ip.version != 4:
                continue
            _, off = ethernet_network(frame.data)
            assert isinstance(ip.header, IPv4Header)
            assert ip.payload_end == off + ip.header.total_length
            assert ip.payload_offset == off + ip.header.ihl * 4
            padded += ip.payload_end < len(frame.data)
    assert padded > 0  # minimum-size frames (bare ACKs, RSTs) carry padding in these captures


# --- crafted, checked against tshark -----------------------------------------


@pytest.mark.tshark
@needs_tshark
def test_crafted_ipv4_match_tshark(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "v4.pcap", v4_frames())
    assert _compare_v4(path) == len(CRAFTED_V4)


_V6_FIELDS = [
    "ipv6.version",
    "ipv6.tclass",
    "ipv6.flow",
    "ipv6.plen",
    "ipv6.nxt",
    "ipv6.hlim",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.hopopts.nxt",
    "ipv6.dstopts.nxt",
    "ipv6.routing.nxt",
    "ipv6.fraghdr.nxt",
    "ipv6.fraghdr.offset",
    "ipv6.fraghdr.more",
    "ipv6.fraghdr.ident",
]
_EXT_FIELD = {0: "ipv6.hopopts.nxt", 60: "ipv6.dstopts.nxt", 43: "ipv6.routing.nxt", 44: "ipv6.fraghdr.nxt"}


@pytest.mark.tshark
@needs_tshark
def test_crafted_ipv6_match_tshark(tmp_path: Path) -> None:
    frames = v6_frames()
    path = write_pcap(tmp_path / "v6.pcap", frames)
    no_defrag = ("-o", "ipv6.defragment:FALSE")
    rows = {int(r[0]): r[1:] for r in tshark_rows(path, "ipv6", _V6_FIELDS, "-E", "occurrence=a", *no_defrag)}
    assert len(rows) == len(frames)
    for number, data in enumerate(frames, start=1):
        t = dict(zip(_V6_FIELDS, rows[number], strict=True))
        ip = decode_ip(data, 14, ETHERTYPE_IPV6)
        h = ip.header
        assert isinstance(h, IPv6Header)
        assert (h.version, h.traffic_class, h.flow_label, h.payload_length) == (
            int(t["ipv6.version"]),
            int(t["ipv6.tclass"], 16),
            int(t["ipv6.flow"], 16),
            int(t["ipv6.plen"]),
        )
        assert (h.next_header, ip.ttl, ip.src, ip.dst) == (
            int(t["ipv6.nxt"]),
            int(t["ipv6.hlim"]),
            t["ipv6.src"],
            t["ipv6.dst"],
        )
        for e in h.extension_headers:
            assert t[_EXT_FIELD[e.header_type]] == str(e.next_header), number
        for key in _EXT_FIELD.values():
            types = [e for e in h.extension_headers if _EXT_FIELD[e.header_type] == key]
            assert bool(types) == bool(t[key]), (number, key)
        if h.fragment_identification is not None:
            assert h.fragment_identification == int(t["ipv6.fraghdr.ident"], 16)
            assert h.fragment_offset == int(t["ipv6.fraghdr.offset"])
            assert h.more_fragments == (t["ipv6.fraghdr.more"] == "1")
        else:
            assert not t["ipv6.fraghdr.ident"]


class TestIPv4:
    def test_options_are_honoured(self) -> None:
        ip = decode_ip(ETH4 + CRAFTED_V4["options-ra"], 14, ETHERTYPE_IPV4)
        h = ip.header
        assert isinstance(h, IPv4Header)
        assert (h.ihl, h.options, ip.payload_offset) == (6, b"\x94\x04\x00\x00", 14 + 24)
        assert ip.payload_end == 14 + 24 + len(TCP)

    def test_fields(self) -> None:
        ip = decode_ip(CRAFTED_V4["dscp-ecn"], 0, ETHERTYPE_IPV4)
        h = ip.header
        assert isinstance(h, IPv4Header)
        assert (h.tos, h.dscp, h.ecn, h.ttl, h.identification, h.checksum) == (0xB9, 46, 1, 1, 0x1234, 0xBEEF)
        assert (h.flags, h.dont_fragment, h.more_fragments, h.fragment_offset) == (2, True, False, 0)
        assert (ip.src, ip.dst, ip.src_raw, ip.dst_raw) == ("192.0.2.1", "198.51.100.7", SRC4, DST4)
        assert not ip.fragment

    @pytest.mark.parametrize(
        ("name", "fragment", "offset"),
        [("first-fragment", True, 0), ("middle-fragment", True, 185), ("last-fragment", True, 370)],
    )
    def test_fragments(self, name: str, fragment: bool, offset: int) -> None:
        ip = decode_ip(CRAFTED_V4[name], 0, ETHERTYPE_IPV4)
        assert ip.fragment is fragment
        assert isinstance(ip.header, IPv4Header) and ip.header.fragment_offset == offset

    def test_total_length_beyond_capture_is_capped(self) -> None:
        raw = ipv4(TCP, total=1500)
        ip = decode_ip(raw, 0, ETHERTYPE_IPV4)
        assert ip.payload_end == len(raw)

    def test_zero_total_length_is_tso(self) -> None:
        raw = ipv4(TCP, total=0)
        assert decode_ip(raw, 0, ETHERTYPE_IPV4).payload_end == len(raw)

    def test_ethertype_zero_takes_the_version(self) -> None:
        assert decode_ip(CRAFTED_V4["padded"], 0, 0).version == 4
        assert decode_ip(CRAFTED_V6["plain"], 0, 0).version == 6

    @pytest.mark.parametrize(
        ("raw", "ethertype", "code"),
        [
            (ipv4(TCP)[:19], ETHERTYPE_IPV4, "truncated_ip"),
            (b"", ETHERTYPE_IPV4, "truncated_ip"),
            (bytes([0x44]) + ipv4(TCP)[1:], ETHERTYPE_IPV4, "ip_bad_ihl"),
            (bytes([0x4F]) + ipv4(TCP)[1:40], ETHERTYPE_IPV4, "truncated_ip"),
            (ipv4(TCP, total=19), ETHERTYPE_IPV4, "ip_bad_length"),
            (ipv4(TCP, options=b"\x01" * 4, total=23), ETHERTYPE_IPV4, "ip_bad_length"),
            (ipv4(TCP), ETHERTYPE_IPV6, "ip_bad_version"),
            (ipv6(TCP), ETHERTYPE_IPV4, "ip_bad_version"),
            (bytes([0x55]) + ipv4(TCP)[1:], 0, "ip_bad_version"),
            (ipv4(TCP), 0x0806, "ip_unknown_ethertype"),
        ],
    )
    def test_errors(self, raw: bytes, ethertype: int, code: str) -> None:
        with pytest.raises(DecodeError) as ei:
            decode_ip(raw, 0, ethertype)
        assert ei.value.code == code and ei.value.offset == 0

    def test_offset_past_the_end(self) -> None:
        with pytest.raises(DecodeError) as ei:
            decode_ip(b"\x45", 5, ETHERTYPE_IPV4)
        assert ei.value.code == "truncated_ip"


class TestIPv6:
    def test_plain(self) -> None:
        ip = decode_ip(ETH6 + CRAFTED_V6["plain"], 14, ETHERTYPE_IPV6)
        h = ip.header
        assert isinstance(h, IPv6Header)
        assert (h.traffic_class, h.dscp, h.ecn, h.flow_label, h.hop_limit) == (0xB8, 46, 0, 0x12345, 7)
        assert (ip.protocol, ip.payload_offset, ip.payload_end, ip.fragment) == (6, 54, 54 + len(TCP), False)
        assert (ip.src, ip.dst) == ("2001:db8::1", "2001:db8:ffff::2")

    def test_extension_chain_is_walked_to_tcp(self) -> None:
        raw = CRAFTED_V6["chain"]
        ip = decode_ip(raw, 0, ETHERTYPE_IPV6)
        h = ip.header
        assert isinstance(h, IPv6Header)
        assert [(e.header_type, e.next_header, e.offset, e.length) for e in h.extension_headers] == [
            (0, 60, 40, 8),
            (60, 43, 48, 16),
            (43, 44, 64, 24),
            (44, 6, 88, 8),
        ]
        assert (ip.protocol, h.upper_protocol, ip.payload_offset, ip.fragment) == (6, 6, 96, False)
        assert h.fragment_identification == 0xCAFE
        assert raw[ip.payload_offset : ip.payload_end] == TCP

    def test_dstopts_to_gre(self) -> None:
        ip = decode_ip(CRAFTED_V6["dstopts-gre"], 0, ETHERTYPE_IPV6)
        assert (ip.protocol, ip.payload_offset) == (47, 64)

    def test_fragments(self) -> None:
        first = decode_ip(CRAFTED_V6["first-fragment"], 0, ETHERTYPE_IPV6)
        assert (first.protocol, first.fragment, first.payload_offset) == (47, True, 48)
        later = decode_ip(CRAFTED_V6["later-fragment"], 0, ETHERTYPE_IPV6)
        assert isinstance(later.header, IPv6Header)
        assert (later.protocol, later.fragment, later.header.fragment_offset) == (6, True, 100)

    def test_jumbo_or_tso_payload_length_zero(self) -> None:
        raw = ipv6(TCP, plen=0)
        assert decode_ip(raw, 0, ETHERTYPE_IPV6).payload_end == len(raw)

    def test_payload_length_excludes_trailing_bytes(self) -> None:
        raw = ipv6(TCP) + b"\0" * 10
        assert decode_ip(raw, 0, ETHERTYPE_IPV6).payload_end == 40 + len(TCP)

    @pytest.mark.parametrize(
        "raw",
        [
            ipv6(b"", nxt=0),
            ipv6(ext(6, 8)[:6], nxt=0),
            ipv6(bytes([6, 5]) + b"\0" * 14, nxt=60),
            ipv6(frag(6, 0, False, 1)[:7], nxt=44),
            ipv6(ext(0, 8) * 40, nxt=0),
        ],
    )
    def test_bad_extension_headers(self, raw: bytes) -> None:
        with pytest.raises(DecodeError) as ei:
            decode_ip(raw, 0, ETHERTYPE_IPV6)
        assert ei.value.code == "ipv6_bad_extension"

    def test_truncated(self) -> None:
        with pytest.raises(DecodeError) as ei:
            decode_ip(ipv6(TCP)[:39], 0, ETHERTYPE_IPV6)
        assert ei.value.code == "truncated_ip"

    def test_packets_are_frozen_and_slotted(self) -> None:
        ip = decode_ip(CRAFTED_V6["plain"], 0, ETHERTYPE_IPV6)
        with pytest.raises(dataclasses.FrozenInstanceError):
            ip.protocol = 1  # type: ignore[misc]
        assert not hasattr(ip, "__dict__")


# --- fuzzing -----------------------------------------------------------------

ALL_CRAFTED = [*CRAFTED_V4.values(), *CRAFTED_V6.values()]


def _check(data: bytes, off: int, ethertype: int) -> None:
    try:
        ip = decode_ip(data, off, ethertype)
    except DecodeError as exc:
        assert exc.code.startswith(("truncated_ip", "ip_", "ipv6_"))
        return
    assert off < ip.payload_offset <= ip.payload_end <= len(data)
    assert ip.version in (4, 6)


@settings(max_examples=500, deadline=None)
@given(
    st.binary(max_size=120), st.integers(0, 4), st.sampled_from([0, ETHERTYPE_IPV4, ETHERTYPE_IPV6, 0x0806])
)
def test_random_bytes(data: bytes, off: int, ethertype: int) -> None:
    _check(data, off, ethertype)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(ALL_CRAFTED), st.data())
def test_bit_flips_and_truncation(raw: bytes, data: st.DataObject) -> None:
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(0, 6))):
        bit = data.draw(st.integers(0, min(len(buf), 120) * 8 - 1))
        buf[bit // 8] ^= 1 << (bit % 8)
    cut = data.draw(st.integers(0, len(buf)))
    _check(bytes(buf[:cut]), 0, 0)
    _check(bytes(buf), 0, ETHERTYPE_IPV6 if raw[0] >> 4 == 6 else ETHERTYPE_IPV4)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4))
def test_ipv4_addresses_are_written_as_ipaddress_writes_them(src: bytes, dst: bytes) -> None:
    raw = bytearray(ipv4(b"\x00" * 8))
    raw[12:20] = src + dst
    ip = decode_ip(bytes(raw), 0, ETHERTYPE_IPV4)
    assert (ip.src, ip.dst) == (str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst)))
    assert (ip.src_raw, ip.dst_raw) == (src, dst)
