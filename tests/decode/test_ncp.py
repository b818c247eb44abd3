"""IPCP, IPV6CP option values and CBCP: real captures against tshark, crafted options and CBCP packets."""

from __future__ import annotations

from pathlib import Path

import pytest
from ppp_capture import (
    FIELDS,
    captures,
    ours_as_tshark,
    pick,
    ppp_frames,
    tshark_ppp,
    tshark_rows,
    write_gre_pcap,
)

from pptptop.decode.errors import DecodeError
from pptptop.decode.lcp import ControlPacket, decode_control_packet
from pptptop.decode.ncp import (
    CbcpCode,
    CbcpOption,
    CbcpOptionType,
    CbcpPacket,
    IpCompression,
    IpcpOption,
    Ipv6cpOption,
    decode_cbcp,
    decode_ipcp_option_value,
    decode_ipv6cp_option_value,
    interface_identifier_text,
)
from pptptop.decode.ppp import PppProtocol, decode_ppp

NCP_FIELDS = [n for n in FIELDS
              if n.startswith(("ppp.code", "ppp.identifier", "ppp.length", "ipcp.", "ipv6cp."))]
NCPS = (PppProtocol.IPCP, PppProtocol.IPV6CP)
WITH_NCP = [p for p in captures() if any(decode_ppp(f.payload).protocol in NCPS for f in ppp_frames(p))]


def ncp(protocol: int, code: int, ident: int, body: bytes) -> bytes:
    return protocol.to_bytes(2, "big") + bytes([code, ident]) + (4 + len(body)).to_bytes(2, "big") + body


@pytest.mark.tshark
@pytest.mark.parametrize("path", WITH_NCP, ids=lambda p: p.name)
def test_ipcp_and_ipv6cp_fields_match_tshark(path: Path) -> None:
    theirs = tshark_ppp(path)
    seen = 0
    for f in ppp_frames(path):
        frame = decode_ppp(f.payload)
        if frame.protocol in NCPS:
            assert isinstance(frame.message, ControlPacket)
            assert pick(ours_as_tshark(frame), NCP_FIELDS) == pick(theirs[f.number], NCP_FIELDS), f.number
            seen += 1
    assert seen


def test_lab_ipcp_negotiation_values() -> None:
    path = next(p for p in captures() if p.name == "s1-mschapv2-mppe128-inside.pcap")
    packets = [m for m in (decode_ppp(f.payload).message for f in ppp_frames(path))
               if isinstance(m, ControlPacket) and m.protocol == PppProtocol.IPCP]
    first = packets[0]
    comp = first.option(IpcpOption.IP_COMPRESSION)
    assert comp is not None and comp.value == IpCompression(0x002D, 15, 1, b"\x0f\x01")
    naks = [m for m in packets if m.code == 3]
    assert len(naks) == 1
    addr = naks[0].option(IpcpOption.IP_ADDRESS)
    assert addr is not None and addr.value == "192.0.2.10"


def test_windows_dns_and_nbns_requests() -> None:
    path = next(p for p in captures() if p.name == "pptpsniffer__connect.pcapng")
    naks = [m for m in (decode_ppp(f.payload).message for f in ppp_frames(path))
            if isinstance(m, ControlPacket) and m.protocol == PppProtocol.IPCP and m.code == 3]
    values = {o.type: o.value for o in naks[-1].options}
    assert values == {IpcpOption.IP_ADDRESS: "10.0.0.100", IpcpOption.PRIMARY_DNS: "223.5.5.5",
                      IpcpOption.SECONDARY_DNS: "223.6.6.6"}


CRAFTED_NCP = [
    ncp(0x8021, 1, 1, bytes([1, 10, 10, 0, 0, 1, 10, 0, 0, 2]) + bytes([4, 6, 10, 9, 8, 7])
        + bytes([130, 6, 10, 0, 0, 53]) + bytes([132, 6, 10, 0, 0, 54]) + bytes([2, 4, 0, 0x37])),
    ncp(0x8021, 4, 2, bytes([2, 14, 0, 0x61, 0, 15, 0, 16, 0, 255, 0, 10, 0, 40])),
    ncp(0x8057, 1, 3, bytes([1, 10, 2, 0x11, 0x22, 0xFF, 0xFE, 0x33, 0x44, 0x55])),
    ncp(0x8021, 5, 4, b"down"),
]


@pytest.mark.tshark
def test_crafted_ipcp_and_ipv6cp_options_match_tshark(tmp_path: Path) -> None:
    path = write_gre_pcap(tmp_path / "ncp.pcap", CRAFTED_NCP)
    theirs = tshark_ppp(path)
    for number, raw in enumerate(CRAFTED_NCP, start=1):
        frame = decode_ppp(raw)
        assert frame.error is None
        assert pick(ours_as_tshark(frame), NCP_FIELDS) == pick(theirs[number], NCP_FIELDS), number


def test_crafted_option_values() -> None:
    req = decode_control_packet(PppProtocol.IPCP, CRAFTED_NCP[0][2:])
    values = {o.type: o.value for o in req.options}
    assert values[IpcpOption.IP_ADDRESSES] == ("10.0.0.1", "10.0.0.2")
    assert values[IpcpOption.MOBILE_IPV4] == "10.9.8.7"
    assert values[IpcpOption.PRIMARY_NBNS] == "10.0.0.53"
    assert values[IpcpOption.SECONDARY_NBNS] == "10.0.0.54"
    assert values[IpcpOption.IP_COMPRESSION] == IpCompression(0x0037, None, None, b"")
    iphc = decode_control_packet(PppProtocol.IPCP, CRAFTED_NCP[1][2:]).options[0].value
    assert isinstance(iphc, IpCompression) and (iphc.protocol, iphc.max_slot_id) == (0x0061, None)
    assert iphc.parameters == bytes([0, 15, 0, 16, 0, 255, 0, 10, 0, 40])
    v6 = decode_control_packet(PppProtocol.IPV6CP, CRAFTED_NCP[2][2:])
    assert v6.options[0].value == "fe80::0211:22ff:fe33:4455"
    # tshark 4.0 dissects IPV6CP's IPv6-Compression-Protocol with ipcp.* fields, so it is checked here only.
    assert decode_ipv6cp_option_value(Ipv6cpOption.IPV6_COMPRESSION, b"\x00\x4f\x01") == \
        IpCompression(0x004F, None, None, b"\x01")
    term = decode_control_packet(PppProtocol.IPCP, CRAFTED_NCP[3][2:])
    assert term.message == "down"


def test_values_with_a_length_that_does_not_fit_keep_the_bytes() -> None:
    assert decode_ipcp_option_value(IpcpOption.IP_ADDRESS, b"\x0a\x00") == b"\x0a\x00"
    assert decode_ipcp_option_value(IpcpOption.IP_ADDRESSES, bytes(4)) == bytes(4)
    assert decode_ipcp_option_value(IpcpOption.IP_COMPRESSION, b"\x00") == b"\x00"
    assert decode_ipcp_option_value(IpcpOption.IP_COMPRESSION, b"\x00\x2d\x0f") == \
        IpCompression(0x002D, None, None, b"\x0f")
    assert decode_ipcp_option_value(77, b"") is None
    assert decode_ipv6cp_option_value(Ipv6cpOption.INTERFACE_IDENTIFIER, b"\x01\x02") == b"\x01\x02"


def test_interface_identifier_text_is_pppds_form() -> None:
    assert interface_identifier_text(bytes.fromhex("295b9778ee6ad05b")) == "fe80::295b:9778:ee6a:d05b"
    assert interface_identifier_text(bytes.fromhex("0408b0452dc6821e")) == "fe80::0408:b045:2dc6:821e"
    assert interface_identifier_text(b"\x01\x02\x03") == "010203"


def cbcp(code: int, ident: int, body: bytes) -> bytes:
    return bytes([code, ident]) + (4 + len(body)).to_bytes(2, "big") + body


CBCP_FRAMES = [
    cbcp(1, 1, bytes([1, 2]) + bytes([2, 5, 0, 1, 0])),
    cbcp(2, 1, bytes([2, 12, 15, 1]) + b"5551234\x00"),
    cbcp(3, 1, bytes([4, 13, 30, 1]) + b"555\x00" + bytes([1]) + b"666\x00"),
]


@pytest.mark.tshark
def test_crafted_cbcp_matches_tshark(tmp_path: Path) -> None:
    path = write_gre_pcap(tmp_path / "cbcp.pcap", [b"\xff\x03\xc0\x29" + p for p in CBCP_FRAMES])
    fields = ["ppp.code", "ppp.identifier", "ppp.length", "cbcp.opt.type", "cbcp.opt.length",
              "cbcp.callback_delay", "cbcp.address_type", "cbcp.address"]
    rows = tshark_rows(path, fields)
    for raw, row in zip(CBCP_FRAMES, rows, strict=True):
        m = decode_cbcp(raw)
        ours: dict[str, list[str]] = {"ppp.code": [str(m.code)], "ppp.identifier": [str(m.identifier)],
                                      "ppp.length": [str(m.length)]}
        for o in m.options:
            ours.setdefault("cbcp.opt.type", []).append(str(o.type))
            ours.setdefault("cbcp.opt.length", []).append(str(o.length))
            if o.delay is not None:
                ours.setdefault("cbcp.callback_delay", []).append(str(o.delay))
            for addr_type, address in o.addresses:
                ours.setdefault("cbcp.address_type", []).append(str(addr_type))
                ours.setdefault("cbcp.address", []).append(address)
        assert pick(ours, fields) == pick(row, fields)


def test_cbcp_packet_fields() -> None:
    request = decode_cbcp(CBCP_FRAMES[0])
    assert (request.code, request.code_name) == (CbcpCode.CALLBACK_REQUEST, "Callback Request")
    assert [o.type for o in request.options] == [CbcpOptionType.NO_CALLBACK, CbcpOptionType.USER_SPECIFIED]
    assert request.options[0] == CbcpOption(1, 2, b"", 4, None, ())
    assert (request.options[1].address_type, request.options[1].address) == (1, "")
    response = decode_cbcp(CBCP_FRAMES[1])
    opt = response.options[0]
    assert (opt.delay, opt.address_type, opt.address, opt.offset) == (15, 1, "5551234", 4)
    ack = decode_cbcp(CBCP_FRAMES[2])
    addresses = ((1, "555"), (1, "666"))
    assert ack == CbcpPacket(3, 1, 17, (CbcpOption(4, 13, ack.options[0].data, 4, 30, addresses),))
    frame = decode_ppp(b"\xc0\x29" + CBCP_FRAMES[1])
    assert isinstance(frame.message, CbcpPacket) and frame.short_name == "CBCP"


@pytest.mark.parametrize(("raw", "code"), [
    (b"\x01\x01\x00", "ppp_truncated"),
    (b"\x01\x01\x00\x03", "ppp_bad_length"),
    (b"\x01\x01\x00\x09\x01", "ppp_truncated"),
    (cbcp(1, 1, b"\x01"), "ppp_bad_option_length"),
    (cbcp(1, 1, b"\x02\x01"), "ppp_bad_option_length"),
    (cbcp(1, 1, b"\x02\x09\x00"), "ppp_bad_option_length"),
])
def test_cbcp_errors(raw: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_cbcp(raw)
    assert exc.value.code == code
