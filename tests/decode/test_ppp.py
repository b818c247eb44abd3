"""PPP frame decoding (RFC 1661 §2, RFC 1662 §3): header forms, dispatch, inner IP, against tshark."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ppp_capture import DATA, FIELDS, captures, ours_as_tshark, pick, ppp_frames, tshark_ppp, write_gre_pcap

from pptptop.decode.auth import ChapPacket, PapPacket
from pptptop.decode.ccp import MppeHeader
from pptptop.decode.errors import DecodeError
from pptptop.decode.lcp import ControlPacket
from pptptop.decode.ppp import (
    InnerIPv4,
    InnerIPv6,
    PppProtocol,
    decode_inner_ipv4,
    decode_inner_ipv6,
    decode_ppp,
    ppp_header,
    protocol_name,
    short_name,
)

ALL = captures()
WITH_PPP = [p for p in ALL if ppp_frames(p)]
IDS = [str(p.relative_to(p.parents[1] if p.parent.name == "nft" else p.parent)) for p in ALL]
PPP_IDS = [str(p.relative_to(p.parents[1] if p.parent.name == "nft" else p.parent)) for p in WITH_PPP]


def test_the_captures_the_brief_names_all_carry_ppp() -> None:
    names = {p.name for p in WITH_PPP}
    for expected in ("pptpsniffer__connect.pcapng", "chapcrack__sample.dump", "chapcrack__pptp.cap",
                     "netwiz__PPTP_negotiation.pcap", "tcpdump__pptp.pcap", "ndpi__gre.pcapng",
                     "pcapplusplus__GrePackets.pcap", "s1-mschapv2-mppe128-inside.pcap",
                     "s10-server-ctrl-sigterm-both.pcapng"):
        assert expected in names
    assert len(WITH_PPP) >= 40


@pytest.mark.tshark
@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_every_ppp_frame_protocol_and_header_matches_tshark(path: Path) -> None:
    ours = ppp_frames(path)
    theirs = tshark_ppp(path)
    assert [f.number for f in ours] == sorted(theirs)
    for f in ours:
        frame = decode_ppp(f.payload)
        assert frame.error is None, (f.number, frame.error)
        header = ("ppp.protocol", "ppp.address", "ppp.control")
        assert pick(ours_as_tshark(frame), header) == pick(theirs[f.number], header), f.number


@pytest.mark.parametrize("path", WITH_PPP, ids=PPP_IDS)
def test_ppp_header_agrees_with_decode_ppp_and_the_info_field(path: Path) -> None:
    for f in ppp_frames(path):
        frame = decode_ppp(f.payload)
        assert ppp_header(f.payload) == (frame.protocol, frame.header_length)
        assert frame.info == f.payload[frame.header_length:]
        padded = b"\x00\x00\x00" + f.payload
        assert ppp_header(padded, 3) == (frame.protocol, frame.header_length)


def test_lab_data_frames_use_acfc_and_pfc_while_control_frames_do_not() -> None:
    frames = [decode_ppp(f.payload) for f in ppp_frames(DATA / "s1-mschapv2-mppe128-inside.pcap")]
    comp = [f for f in frames if f.protocol == PppProtocol.COMPRESSED]
    assert comp and all(f.header_length == 1 and not f.address_control for f in comp)
    confreq = [f for f in frames if f.protocol == PppProtocol.LCP and f.header_length == 4]
    assert confreq and all(f.address_control for f in confreq)


@pytest.mark.parametrize(("raw", "expected"), [
    (b"\xff\x03\xc0\x21\x01", (0xC021, 4)),
    (b"\xff\x03\x21\x45", (0x0021, 3)),
    (b"\xc0\x21\x01", (0xC021, 2)),
    (b"\xfd\x90\x00", (0x00FD, 1)),
    (b"\x00\x57", (0x0057, 2)),
    (b"", (-1, 0)),
    (b"\xff", (-1, 0)),
    (b"\xff\x03", (-1, 0)),
    (b"\xff\x03\xc0", (-1, 0)),
    (b"\xc0", (-1, 0)),
])
def test_ppp_header_handles_acfc_pfc_and_truncation(raw: bytes, expected: tuple[int, int]) -> None:
    assert ppp_header(raw) == expected


def test_ppp_header_past_the_end_is_too_short() -> None:
    assert ppp_header(b"\xff\x03\xc0\x21", 4) == (-1, 0)


def test_decode_ppp_raises_only_without_a_header() -> None:
    for raw in (b"", b"\xff", b"\xff\x03", b"\x80"):
        with pytest.raises(DecodeError) as exc:
            decode_ppp(raw)
        assert exc.value.code == "ppp_header_truncated"


def test_a_broken_message_keeps_the_protocol_and_carries_the_error() -> None:
    frame = decode_ppp(b"\xff\x03\xc0\x21\x01\x01\x00\x20\x05\x06")
    assert frame.protocol == PppProtocol.LCP
    assert frame.message is None
    assert frame.error is not None and frame.error.code == "ppp_truncated"
    assert frame.protocol_name == "Link Control Protocol"


def test_compressed_headers_with_pfc_and_acfc_decode_fully() -> None:
    ip = bytes.fromhex("4500001c00010000400100000a0000010a000002") + bytes.fromhex("0800f7ff00000000")
    frame = decode_ppp(b"\x21" + ip)
    assert (frame.protocol, frame.header_length, frame.address_control) == (0x0021, 1, False)
    assert isinstance(frame.message, InnerIPv4)
    assert (frame.message.src, frame.message.dst, frame.message.icmp_type) == ("10.0.0.1", "10.0.0.2", 8)
    mppe = decode_ppp(b"\xfd\x90\x0a\xde\xad")
    assert isinstance(mppe.message, MppeHeader) and mppe.message.coherency_count == 0x00A
    lcp = decode_ppp(b"\xc0\x21\x09\x01\x00\x08\x12\x34\x56\x78")
    assert isinstance(lcp.message, ControlPacket) and lcp.message.magic_number == 0x12345678
    assert not lcp.address_control and lcp.header_length == 2


@pytest.mark.parametrize("path", WITH_PPP, ids=PPP_IDS)
def test_dispatch_gives_each_protocol_its_message_type(path: Path) -> None:
    kinds = {PppProtocol.LCP: ControlPacket, PppProtocol.IPCP: ControlPacket,
             PppProtocol.IPV6CP: ControlPacket, PppProtocol.CCP: ControlPacket, PppProtocol.PAP: PapPacket,
             PppProtocol.CHAP: ChapPacket,
             PppProtocol.COMPRESSED: MppeHeader, PppProtocol.IPV4: InnerIPv4, PppProtocol.IPV6: InnerIPv6}
    for f in ppp_frames(path):
        frame = decode_ppp(f.payload)
        assert isinstance(frame.message, kinds[PppProtocol(frame.protocol)]), f.number


@pytest.mark.tshark
def test_protocol_names_are_tsharks_value_table() -> None:
    out = subprocess.run(["tshark", "-G", "values"], capture_output=True, text=True, check=True).stdout
    table = {int(parts[2]): parts[3] for parts in (line.split("\t") for line in out.splitlines())
             if len(parts) == 4 and parts[0] == "V" and parts[1] == "ppp.protocol"}
    assert len(table) > 100
    for number, name in table.items():
        assert protocol_name(number) == name
    for member in PppProtocol:
        if member in table:
            assert protocol_name(member) == table[member]
    assert protocol_name(0x1234) == "Unknown (0x1234)"


def test_short_names() -> None:
    assert [short_name(p) for p in (0xC021, 0xC023, 0xC223, 0x8021, 0x8057, 0x80FD, 0x00FD, 0x0021, 0x0057)] \
        == ["LCP", "PAP", "CHAP", "IPCP", "IPV6CP", "CCP", "Comp", "IP", "IPv6"]
    assert short_name(0x4321) == "0x4321"


_INNER_FIELDS = ("ip.src", "ip.dst", "ip.proto", "ip.len", "tcp.srcport", "tcp.dstport", "udp.srcport",
                 "udp.dstport", "icmp.type", "icmp.code", "ipv6.src", "ipv6.dst", "icmpv6.type")


@pytest.mark.tshark
@pytest.mark.parametrize("path", [p for p in WITH_PPP if any(decode_ppp(f.payload).protocol in (0x21, 0x57)
                                                             for f in ppp_frames(p))],
                         ids=lambda p: p.name)
def test_inner_ip_summary_matches_tshark(path: Path) -> None:
    theirs = tshark_ppp(path)
    checked = 0
    for f in ppp_frames(path):
        frame = decode_ppp(f.payload)
        t = pick(theirs[f.number], _INNER_FIELDS)
        m = frame.message
        if isinstance(m, InnerIPv4):
            assert (m.src, m.dst, str(m.protocol), str(m.length)) == \
                (t["ip.src"][-1], t["ip.dst"][-1], t["ip.proto"][-1], t["ip.len"][-1])
            ports = t["tcp.srcport"] + t["udp.srcport"], t["tcp.dstport"] + t["udp.dstport"]
            if m.src_port is not None:
                assert (str(m.src_port), str(m.dst_port)) == (ports[0][0], ports[1][0])
            if m.icmp_type is not None:
                assert (str(m.icmp_type), str(m.icmp_code)) == (t["icmp.type"][0], t["icmp.code"][0])
            checked += 1
        elif isinstance(m, InnerIPv6):
            assert (m.src, m.dst) == (t["ipv6.src"][-1], t["ipv6.dst"][-1])
            if m.icmp_type is not None:
                assert str(m.icmp_type) == t["icmpv6.type"][0]
            checked += 1
    assert checked


def _ipv6(nh: int, payload: bytes) -> bytes:
    return (b"\x60\x00\x00\x00" + len(payload).to_bytes(2, "big") + bytes([nh, 64])
            + socket.inet_pton(socket.AF_INET6, "fe80::1") + socket.inet_pton(socket.AF_INET6, "ff02::2")
            + payload)


def test_inner_ipv6_walks_extension_headers_to_the_ports() -> None:
    udp = (5353).to_bytes(2, "big") + (53).to_bytes(2, "big") + b"\x00\x08\x00\x00"
    hop_by_hop = bytes([17, 0]) + bytes(6)
    m = decode_inner_ipv6(_ipv6(0, hop_by_hop + udp))
    assert (m.protocol, m.src_port, m.dst_port, m.src, m.dst) == (17, 5353, 53, "fe80::1", "ff02::2")
    later_fragment = bytes([17, 0, 0x00, 0x08]) + bytes(4)
    m = decode_inner_ipv6(_ipv6(44, later_fragment + udp))
    assert (m.protocol, m.src_port) == (17, None)
    icmp = decode_inner_ipv6(_ipv6(58, b"\x85\x00\x00\x00"))
    assert (icmp.icmp_type, icmp.icmp_code, icmp.length) == (133, 0, 44)


def test_inner_ipv4_leaves_ports_out_of_later_fragments() -> None:
    hdr = bytearray.fromhex("4500002000010001400600000a0000010a000002")
    m = decode_inner_ipv4(bytes(hdr) + bytes(12))
    assert (m.protocol, m.src_port, m.ttl) == (6, None, 64)


@pytest.mark.parametrize(("raw", "code"), [
    (b"\x45\x00", "inner_ip_truncated"),
    (bytes.fromhex("6500001c00010000400100000a0000010a000002"), "inner_ip_bad_version"),
    (bytes.fromhex("4400001c00010000400100000a0000010a000002"), "inner_ip_truncated"),
])
def test_inner_ipv4_errors(raw: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_inner_ipv4(raw)
    assert exc.value.code == code


@pytest.mark.tshark
def test_crafted_frames_of_every_header_form_match_tshark(tmp_path: Path) -> None:
    ip = bytes.fromhex("4500001c00010000400100000a0000010a000002") + bytes.fromhex("0800f7ff00000000")
    frames = [b"\xff\x03\x00\x21" + ip, b"\x00\x21" + ip, b"\xff\x03\x21" + ip,
              b"\xff\x03\xc0\x21\x09\x07\x00\x08\x01\x02\x03\x04",
              b"\xc0\x21\x0a\x07\x00\x08\x01\x02\x03\x04"]
    path = write_gre_pcap(tmp_path / "forms.pcap", frames)
    theirs = tshark_ppp(path)
    for number, raw in enumerate(frames, start=1):
        names = [n for n in FIELDS if n.startswith(("ppp.", "lcp."))]
        assert pick(ours_as_tshark(decode_ppp(raw)), names) == pick(theirs[number], names)


_REAL = [f.payload for p in WITH_PPP[:12] for f in ppp_frames(p) if decode_ppp(f.payload).protocol != 0xFD]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_raise_only_decode_error(raw: bytes) -> None:
    prefixes = (b"", b"\xff\x03", b"\xff\x03\xc0\x21", b"\xc2\x23", b"\xc0\x23", b"\x80\x21", b"\x80\x57",
                b"\x80\xfd", b"\xc2\x27", b"\xc0\x29", b"\x21", b"\x57", b"\xfd")
    for data in (prefix + raw for prefix in prefixes):
        try:
            frame = decode_ppp(data)
        except DecodeError as exc:
            assert exc.code == "ppp_header_truncated"
            continue
        assert (frame.protocol, frame.header_length) == ppp_header(data)
        assert frame.error is None or frame.message is None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_REAL), st.integers(min_value=0, max_value=4000),
       st.integers(min_value=0, max_value=7), st.integers(min_value=0, max_value=200))
def test_bit_flipped_and_truncated_real_frames_raise_only_decode_error(raw: bytes, pos: int, bit: int,
                                                                       cut: int) -> None:
    data = bytearray(raw)
    data[pos % len(data)] ^= 1 << bit
    for candidate in (bytes(data), raw[:cut], bytes(data)[:cut]):
        for alg in (None, 0x81, 0x80, 5):
            try:
                frame = decode_ppp(candidate, chap_algorithm=alg)
            except DecodeError as exc:
                assert exc.code == "ppp_header_truncated"
                continue
            assert (frame.protocol, frame.header_length) == ppp_header(candidate)
            assert (frame.message is None) or (frame.error is None)
