"""CCP (RFC 1962) with MPPE/MPPC bits (RFC 3078, RFC 2118) and the MPPE datagram header."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest
from ppp_capture import FIELDS, captures, ours_as_tshark, pick, ppp_frames, tshark_ppp, write_gre_pcap

from pptptop.decode.ccp import (
    CcpOption,
    MppeBits,
    MppeHeader,
    coherency_count,
    decode_ccp_option_value,
    decode_mppe_header,
)
from pptptop.decode.errors import DecodeError
from pptptop.decode.lcp import ControlCode, ControlPacket, decode_control_packet
from pptptop.decode.ppp import PppProtocol, decode_ppp

CCP_FIELDS = [n for n in FIELDS
              if n.startswith(("ppp.code", "ppp.identifier", "ppp.length", "ppp.data", "ccp."))]
WITH_CCP = [p for p in captures()
            if any(decode_ppp(f.payload).protocol == PppProtocol.CCP for f in ppp_frames(p))]
WITH_MPPE = [p for p in captures()
             if any(decode_ppp(f.payload).protocol == PppProtocol.COMPRESSED for f in ppp_frames(p))]


def ccp(code: int, ident: int, body: bytes) -> bytes:
    return b"\x80\xfd" + bytes([code, ident]) + (4 + len(body)).to_bytes(2, "big") + body


@pytest.mark.tshark
@pytest.mark.parametrize("path", WITH_CCP, ids=lambda p: p.name)
def test_ccp_fields_and_mppe_bits_match_tshark(path: Path) -> None:
    theirs = tshark_ppp(path)
    seen = 0
    for f in ppp_frames(path):
        frame = decode_ppp(f.payload)
        if frame.protocol == PppProtocol.CCP:
            assert isinstance(frame.message, ControlPacket)
            assert pick(ours_as_tshark(frame), CCP_FIELDS) == pick(theirs[f.number], CCP_FIELDS), f.number
            seen += 1
    assert seen


def _mppe_offers(name: str) -> list[MppeBits]:
    path = next(p for p in captures() if p.name == name)
    out = []
    for f in ppp_frames(path):
        m = decode_ppp(f.payload).message
        if isinstance(m, ControlPacket) and m.protocol == PppProtocol.CCP and m.code == 1:
            opt = m.option(CcpOption.MPPE)
            if opt is not None and isinstance(opt.value, MppeBits):
                out.append(opt.value)
    return out


def test_lab_offers_stateless_128_bit() -> None:
    offers = _mppe_offers("s1-mschapv2-mppe128-inside.pcap")
    assert offers and all(b == MppeBits(0x01000040) for b in offers)
    bits = offers[0]
    assert (bits.stateless, bits.bits128, bits.bits56, bits.bits40, bits.obsolete_d, bits.mppc) == \
        (True, True, False, False, False, False)
    assert bits.strengths == (128,) and bits.pppd() == "+H -M +S -L -D -C" and not bits.unknown


def test_a_windows_client_offering_128_and_40_bits() -> None:
    offers = _mppe_offers("chapcrack__sample.dump")
    assert MppeBits(0x01000060) in offers
    assert MppeBits(0x01000060).strengths == (128, 40)


def test_lab_s4_rejects_mppe() -> None:
    path = next(p for p in captures() if p.name == "s4-mppe-refused-by-client-inside.pcap")
    ccps = [m for m in (decode_ppp(f.payload).message for f in ppp_frames(path))
            if isinstance(m, ControlPacket) and m.protocol == PppProtocol.CCP]
    rejects = [m for m in ccps if m.code == ControlCode.CONFIGURE_REJECT]
    assert len(rejects) == 1 and rejects[0].option(CcpOption.MPPE) is not None
    assert any(m.code == ControlCode.CONFIGURE_REQUEST and m.options == () for m in ccps)


@pytest.mark.parametrize(("bits", "pppd", "strengths"), [
    (0x00000020, "-H -M -S +L -D -C", (40,)),
    (0x00000080, "-H +M -S -L -D -C", (56,)),
    (0x010000E0, "+H +M +S +L -D -C", (128, 56, 40)),
    (0x00000001, "-H -M -S -L -D +C", ()),
    (0x00000010, "-H -M -S -L +D -C", ()),
    (0x01000042, "+H -M +S -L -D -C +U (01 00 00 42)", (128,)),
    (0x03000040, "+H -M +S -L -D -C +U (03 00 00 40)", (128,)),
])
def test_mppe_bits_render_like_pppd(bits: int, pppd: str, strengths: tuple[int, ...]) -> None:
    b = MppeBits(bits)
    assert (b.pppd(), b.strengths) == (pppd, strengths)
    assert b.stateless == bool(bits & 0x01000000)
    assert b.unknown == ("+U" in pppd)


CRAFTED_CCP = [
    ccp(1, 1, bytes([18, 6, 0, 0, 0, 0x20])),
    ccp(1, 2, bytes([18, 6, 0, 0, 0, 0x81])),
    ccp(1, 3, bytes([26, 4, 0x78, 0]) + bytes([21, 3, 0x2F]) + bytes([1, 2]) + bytes([17, 5, 0, 1, 3])),
    ccp(14, 4, b""),
    ccp(15, 4, b""),
    ccp(14, 5, b"\x01\x02"),
    ccp(5, 6, b""),
]


@pytest.mark.tshark
def test_crafted_ccp_matches_tshark(tmp_path: Path) -> None:
    path = write_gre_pcap(tmp_path / "ccp.pcap", CRAFTED_CCP)
    theirs = tshark_ppp(path)
    for number, raw in enumerate(CRAFTED_CCP, start=1):
        frame = decode_ppp(raw)
        assert frame.error is None
        assert pick(ours_as_tshark(frame), CCP_FIELDS) == pick(theirs[number], CCP_FIELDS), number
        assert isinstance(frame.message, ControlPacket)
        assert theirs[number]["_ws.col.Info"][0].startswith(frame.message.code_name)


def test_reset_request_and_ack_carry_their_data() -> None:
    req = decode_control_packet(PppProtocol.CCP, CRAFTED_CCP[5][2:])
    assert (req.code, req.identifier, req.data) == (ControlCode.RESET_REQUEST, 5, b"\x01\x02")
    ack = decode_control_packet(PppProtocol.CCP, CRAFTED_CCP[4][2:])
    assert (ack.code, ack.data, ack.code_name) == (ControlCode.RESET_ACK, b"", "Reset Ack")
    link = decode_ppp(b"\x80\xfb" + CRAFTED_CCP[3][2:])
    assert isinstance(link.message, ControlPacket) and link.message.code == ControlCode.RESET_REQUEST


def test_other_ccp_options_keep_their_bytes() -> None:
    pkt = decode_control_packet(PppProtocol.CCP, CRAFTED_CCP[2][2:])
    assert [(o.type, o.value) for o in pkt.options] == [
        (CcpOption.DEFLATE, b"\x78\x00"), (CcpOption.BSD_COMPRESS, b"\x2f"), (CcpOption.PREDICTOR1, None),
        (CcpOption.STAC_LZS, b"\x00\x01\x03")]
    assert decode_ccp_option_value(CcpOption.MPPE, b"\x01\x00") == b"\x01\x00"


@pytest.mark.parametrize("path", WITH_MPPE, ids=lambda p: p.name)
def test_mppe_headers_of_stateless_sessions_count_up_by_one(path: Path) -> None:
    counts: dict[tuple[str, str, str, int | None], list[int]] = defaultdict(list)
    for f in ppp_frames(path):
        frame = decode_ppp(f.payload)
        if frame.protocol != PppProtocol.COMPRESSED:
            continue
        h = frame.message
        assert isinstance(h, MppeHeader)
        assert (h.flushed, h.encrypted, h.compressed, h.at_front) == (True, True, False, False)
        assert coherency_count(f.payload, frame.header_length) == h.coherency_count
        counts[(f.iface, f.src, f.dst, f.call_id)].append(h.coherency_count)
    assert counts
    for seq in counts.values():
        assert all((b - a) % 4096 == 1 for a, b in pairwise(seq))


def test_mppe_header_bits() -> None:
    assert decode_mppe_header(b"\xf1\x23") == MppeHeader(True, True, True, True, 0x123)
    assert decode_mppe_header(b"\x2f\xff\x00") == MppeHeader(False, False, True, False, 0xFFF)
    assert coherency_count(b"\x00\x00\x9a\xbc", 2) == 0xABC
    assert coherency_count(b"\x90", 0) == -1
    assert coherency_count(b"\x90\x01", -1) == -1
    with pytest.raises(DecodeError) as exc:
        decode_mppe_header(b"\x90")
    assert exc.value.code == "mppe_header_truncated"
    frame = decode_ppp(b"\xfd\x90\x07")
    assert isinstance(frame.message, MppeHeader) and frame.message.coherency_count == 7
    short = decode_ppp(b"\x00\xfd\x90")
    assert short.error is not None and short.error.code == "mppe_header_truncated"
