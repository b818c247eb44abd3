"""LCP and the shared RFC 1661 §5 packet format: real captures against tshark, crafted codes and options."""

from __future__ import annotations

from pathlib import Path

import pytest
from ppp_capture import FIELDS, captures, ours_as_tshark, pick, ppp_frames, tshark_ppp, write_gre_pcap

from pptptop.decode.errors import DecodeError
from pptptop.decode.lcp import (
    AuthProtocol,
    Callback,
    ControlCode,
    ControlPacket,
    EndpointDiscriminator,
    LcpOption,
    QualityProtocol,
    code_name,
    decode_control_packet,
    decode_lcp_option_value,
    option_name,
    pppd_code,
)
from pptptop.decode.ppp import PppProtocol, decode_ppp

LCP_FIELDS = [n for n in FIELDS
              if n.startswith(("ppp.code", "ppp.identifier", "ppp.length", "ppp.data", "lcp."))]
CONTROL = (PppProtocol.LCP, PppProtocol.IPCP, PppProtocol.IPV6CP, PppProtocol.CCP)
WITH_LCP = [p for p in captures()
            if any(decode_ppp(f.payload).protocol == PppProtocol.LCP for f in ppp_frames(p))]


def lcp(code: int, ident: int, body: bytes) -> bytes:
    """An LCP frame with Address/Control, as a peer would send it."""
    return b"\xff\x03\xc0\x21" + bytes([code, ident]) + (4 + len(body)).to_bytes(2, "big") + body


@pytest.mark.tshark
@pytest.mark.parametrize("path", WITH_LCP, ids=lambda p: p.name)
def test_lcp_fields_match_tshark(path: Path) -> None:
    theirs = tshark_ppp(path)
    seen = 0
    for f in ppp_frames(path):
        frame = decode_ppp(f.payload)
        if frame.protocol != PppProtocol.LCP:
            continue
        assert isinstance(frame.message, ControlPacket)
        ours = ours_as_tshark(frame)
        t = theirs[f.number]
        if frame.message.code in (12, 13):
            # tshark reads the message as ASCII: every octet above 0x7f is one U+FFFD.
            ours["lcp.message"] = [frame.message.data.decode("ascii", "replace")]
        assert pick(ours, LCP_FIELDS) == pick(t, LCP_FIELDS), f.number
        seen += 1
    assert seen


@pytest.mark.tshark
@pytest.mark.parametrize("path", WITH_LCP, ids=lambda p: p.name)
def test_code_names_are_tsharks_info_column(path: Path) -> None:
    theirs = tshark_ppp(path)
    for f in ppp_frames(path):
        frame = decode_ppp(f.payload)
        if frame.protocol in CONTROL and isinstance(frame.message, ControlPacket):
            info = theirs[f.number]["_ws.col.Info"][0]
            assert info.startswith(code_name(frame.protocol, frame.message.code)), (f.number, info)
            assert frame.message.code_name == code_name(frame.protocol, frame.message.code)


_ALL_OPTIONS = (bytes([1, 4, 5, 220]) + bytes([2, 6, 0, 0, 0, 0]) + bytes([3, 5, 0xC2, 0x23, 5])
                + bytes([5, 6, 1, 2, 3, 4]) + bytes([7, 2, 8, 2]) + bytes([9, 3, 6]) + bytes([10, 3, 4])
                + bytes([13, 3, 6]) + bytes([17, 4, 5, 0x4E]) + bytes([18, 2]) + bytes([19, 9, 1])
                + bytes(range(6)) + bytes([23, 4, 0, 7]))
CRAFTED = [
    lcp(1, 1, _ALL_OPTIONS),
    lcp(1, 2, bytes([4, 8, 0xC0, 0x25, 0, 0, 0, 10])),
    lcp(3, 3, bytes([3, 4, 0xC0, 0x23])),
    lcp(4, 4, bytes([3, 4, 0xC2, 0x27])),
    lcp(1, 5, bytes([3, 5, 0xC2, 0x23, 0x80])),
    lcp(12, 6, bytes([1, 2, 3, 4]) + b"MSRASV5.20"),
    lcp(13, 7, bytes([1, 2, 3, 4, 0, 0, 0x0E, 0x10]) + b"one hour"),
    lcp(8, 8, bytes([0x80, 0x57, 1, 5, 0, 14, 1, 10]) + bytes(range(8))),
    lcp(7, 9, bytes([0x20, 1, 0, 4])),
    lcp(11, 10, bytes([1, 2, 3, 4]) + b"junk"),
    lcp(9, 11, bytes([1, 2, 3, 4]) + b"data"),
    lcp(10, 12, bytes([4, 3, 2, 1])),
    lcp(5, 13, b"bye"),
    lcp(6, 13, b""),
]


@pytest.mark.tshark
def test_crafted_lcp_codes_and_options_match_tshark(tmp_path: Path) -> None:
    path = write_gre_pcap(tmp_path / "lcp.pcap", CRAFTED)
    theirs = tshark_ppp(path)
    for number, raw in enumerate(CRAFTED, start=1):
        frame = decode_ppp(raw)
        assert frame.error is None
        names = [*LCP_FIELDS, "ipv6cp.opt.type", "ipv6cp.interface_identifier"]
        assert pick(ours_as_tshark(frame), names) == pick(theirs[number], names), number
        assert theirs[number]["_ws.col.Info"][0].startswith(code_name(PppProtocol.LCP, raw[4]))


def test_every_option_value_type() -> None:
    pkt = decode_control_packet(PppProtocol.LCP, CRAFTED[0][4:])
    values = {o.type: o.value for o in pkt.options}
    assert values[LcpOption.MRU] == 1500
    assert values[LcpOption.ACCM] == 0
    assert values[LcpOption.AUTH_PROTOCOL] == AuthProtocol(0xC223, 5)
    assert values[LcpOption.MAGIC_NUMBER] == 0x01020304
    assert values[LcpOption.PFC] is None and values[LcpOption.ACFC] is None
    assert values[LcpOption.FCS_ALTERNATIVES] == 6
    assert values[LcpOption.SELF_DESCRIBING_PAD] == 4
    assert values[LcpOption.CALLBACK] == Callback(6, b"")
    assert values[LcpOption.MRRU] == 1358
    assert values[LcpOption.SHORT_SEQUENCE] is None
    assert values[LcpOption.ENDPOINT_DISCRIMINATOR] == EndpointDiscriminator(1, bytes(range(6)))
    assert values[LcpOption.LINK_DISCRIMINATOR] == 7
    assert [o.offset for o in pkt.options][:3] == [4, 8, 14]
    mru = pkt.option(LcpOption.MRU)
    assert mru is not None and (mru.length, mru.data) == (4, b"\x05\xdc")
    assert pkt.option(LcpOption.NUMBERED_MODE) is None
    quality = decode_control_packet(PppProtocol.LCP, CRAFTED[1][4:]).options[0].value
    assert quality == QualityProtocol(0xC025, b"\x00\x00\x00\x0a", 10)


def test_option_lengths_that_do_not_fit_the_type_keep_the_bytes() -> None:
    assert decode_lcp_option_value(LcpOption.MRU, b"\x05") == b"\x05"
    assert decode_lcp_option_value(LcpOption.MAGIC_NUMBER, b"\x01\x02") == b"\x01\x02"
    assert decode_lcp_option_value(LcpOption.AUTH_PROTOCOL, b"\xc0") == b"\xc0"
    assert decode_lcp_option_value(LcpOption.NUMBERED_MODE, b"\x07\x01") == b"\x07\x01"
    assert decode_lcp_option_value(99, b"") is None


@pytest.mark.parametrize(("auth", "method", "pppd"), [
    (AuthProtocol(0xC023, None), "PAP", "pap"),
    (AuthProtocol(0xC223, 5), "CHAP-MD5", "chap MD5"),
    (AuthProtocol(0xC223, 0x80), "MS-CHAP", "chap MS"),
    (AuthProtocol(0xC223, 0x81), "MS-CHAPv2", "chap MS-v2"),
    (AuthProtocol(0xC223, 7), "CHAP-7", "chap"),
    (AuthProtocol(0xC227, None), "EAP", "eap"),
    (AuthProtocol(0xC123, None), "0xc123", "0xc123"),
])
def test_auth_protocol_method_and_pppd_names(auth: AuthProtocol, method: str, pppd: str) -> None:
    assert (auth.method, auth.pppd) == (method, pppd)


def test_rfc1570_and_reject_codes_carry_their_fields() -> None:
    ident = decode_control_packet(PppProtocol.LCP, CRAFTED[5][4:])
    assert (ident.code, ident.magic_number) == (ControlCode.IDENTIFICATION, 0x01020304)
    assert ident.message == "MSRASV5.20"
    rem = decode_control_packet(PppProtocol.LCP, CRAFTED[6][4:])
    assert (rem.seconds_remaining, rem.message, rem.magic_number) == (3600, "one hour", 0x01020304)
    rej = decode_control_packet(PppProtocol.LCP, CRAFTED[7][4:])
    assert rej.rejected_protocol == PppProtocol.IPV6CP
    assert rej.rejected_info[:2] == b"\x01\x05" and rej.data[:2] == b"\x80\x57"
    inner = decode_control_packet(rej.rejected_protocol, rej.rejected_info)
    assert inner.options[0].value == "fe80::0001:0203:0405:0607"
    code_rej = decode_control_packet(PppProtocol.LCP, CRAFTED[8][4:])
    assert code_rej.data == b"\x20\x01\x00\x04" and code_rej.magic_number is None
    discard = decode_control_packet(PppProtocol.LCP, CRAFTED[9][4:])
    assert (discard.magic_number, discard.data) == (0x01020304, b"junk")
    term = decode_control_packet(PppProtocol.LCP, CRAFTED[12][4:])
    assert (term.message, term.data, term.options) == ("bye", b"bye", ())


def test_real_identification_and_protocol_reject_from_windows() -> None:
    path = next(p for p in captures() if p.name == "pptpsniffer__connect.pcapng")
    messages = {f.number: decode_ppp(f.payload).message for f in ppp_frames(path)}
    ident = messages[21]
    assert isinstance(ident, ControlPacket) and ident.message == "MSRAS-0-JM-WIN-PC"
    prot_rej = messages[31]
    assert isinstance(prot_rej, ControlPacket) and prot_rej.rejected_protocol == PppProtocol.IPV6CP


def test_octets_past_the_length_field_are_padding() -> None:
    pkt = decode_control_packet(PppProtocol.LCP, bytes([5, 1, 0, 7]) + b"byePADDING")
    assert (pkt.length, pkt.data) == (7, b"bye")


def test_the_other_rfc1661_protocols_keep_codes_8_and_up_as_data() -> None:
    pkt = decode_control_packet(PppProtocol.IPCP, bytes([9, 1, 0, 8, 1, 2, 3, 4]))
    assert (pkt.magic_number, pkt.data) == (None, b"\x01\x02\x03\x04")
    reset = decode_control_packet(PppProtocol.CCP, bytes([14, 3, 0, 6, 0xAA, 0xBB]))
    assert (reset.code, reset.data) == (ControlCode.RESET_REQUEST, b"\xaa\xbb")


@pytest.mark.parametrize(("info", "code"), [
    (bytes([1, 1, 0]), "ppp_truncated"),
    (bytes([1, 1, 0, 9, 1, 4, 5]), "ppp_truncated"),
    (bytes([1, 1, 0, 3]), "ppp_bad_length"),
    (bytes([1, 1, 0, 6, 1, 1]), "ppp_bad_option_length"),
    (bytes([1, 1, 0, 7, 1, 4, 5]), "ppp_bad_option_length"),
    (bytes([1, 1, 0, 9, 7, 2, 1, 4, 5]), "ppp_bad_option_length"),
    (bytes([1, 1, 0, 5, 7]), "ppp_bad_option_length"),
    (bytes([9, 1, 0, 6, 1, 2]), "lcp_short_data"),
    (bytes([8, 1, 0, 5, 0x80]), "lcp_short_data"),
    (bytes([13, 1, 0, 10, 1, 2, 3, 4, 0, 0]), "lcp_short_data"),
])
def test_malformed_packets_raise_stable_codes(info: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_control_packet(PppProtocol.LCP, info)
    assert exc.value.code == code
    assert exc.value.offset is not None


def test_code_and_option_name_tables() -> None:
    assert [code_name(PppProtocol.LCP, c) for c in (1, 5, 9, 12, 13)] == [
        "Configuration Request", "Termination Request", "Echo Request", "Identification", "Time Remaining"]
    assert code_name(PppProtocol.CCP, 14) == "Reset Request" and code_name(PppProtocol.CCP, 15) == "Reset Ack"
    assert code_name(PppProtocol.IPCP, 9) == "Unknown"
    assert code_name(PppProtocol.CBCP, 1) == "Callback Request"
    assert [pppd_code(c) for c in range(1, 16)] == [
        "ConfReq", "ConfAck", "ConfNak", "ConfRej", "TermReq", "TermAck", "CodeRej", "ProtRej", "EchoReq",
        "EchoRep", "DiscReq", "Ident", "TimeRem", "ResetReq", "ResetAck"]
    assert pppd_code(42) == "code=0x2a"
    assert option_name(PppProtocol.LCP, 3) == "Authentication Protocol"
    assert option_name(PppProtocol.IPCP, 129) == "Primary DNS Server IP Address"
    assert option_name(PppProtocol.CCP, 18) == "Microsoft PPE/PPC"
    assert option_name(PppProtocol.LCP, 200) == "Unknown (200)"
