"""pppd 2.4.9 rendering: the lab's real pppd debug logs line by line, and pppd's printing quirks.

The lab logs (tests/data/logs) were written by the very pppd processes whose
frames the lab captures hold. The client's log is compared with the inside
capture, the server's with the outside one, per direction (``sent``/``rcvd``):

- pppd logs LCP Echo-Request/Reply only until the first NCP is up
  (utils.c dump_packet), so the logged echoes must be the first captured ones;
- at hang-up, pppd may log a Terminate-Request it could no longer put on the
  wire, or exit before reading the peer's last Terminate-Ack; so the two
  sequences must be equal up to a tail made only of LCP TermReq/TermAck.

The crafted cases' expected strings follow pppd's printers (lcp.c, ipcp.c,
ipv6cp.c, ccp.c, upap.c, chap-new.c, cbcp.c, eap.c, utils.c format_packet).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ppp_capture import DATA, LOGS, captures, ppp_frames

from pptptop.decode.errors import DecodeError
from pptptop.decode.ppp import decode_ppp
from pptptop.decode.pppd import format_pppd, format_pppd_packet

_LINE = re.compile(r"^(sent|rcvd) (\[.*\])$")
_ROLE = re.compile(r"(.*)-(c1|c2|server)-pppd\.log$")
_CLIENTS = {"c1": "10.0.0.2", "c2": "10.0.0.3"}
_SERVER = "198.51.100.2"
LOG_FILES = sorted(LOGS.rglob("*-pppd.log"))


def _is_echo(line: str) -> bool:
    return line.startswith(("[LCP EchoReq", "[LCP EchoRep"))


def _is_termination(line: str) -> bool:
    return line.startswith(("[LCP TermReq", "[LCP TermAck"))


def _logged(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"sent": [], "rcvd": []}
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if m:
            out[m.group(1)].append(m.group(2))
    return out


def _rendered(capture: Path, me: str) -> dict[str, list[str]]:
    """format_pppd of the frames pppd handles itself (protocols 0x8000 and up), by direction."""
    out: dict[str, list[str]] = {"sent": [], "rcvd": []}
    for f in ppp_frames(capture):
        frame = decode_ppp(f.payload)
        if frame.protocol < 0x8000:
            continue
        if f.src == me:
            out["sent"].append(format_pppd(frame))
        elif f.dst == me:
            out["rcvd"].append(format_pppd(frame))
    return out


def _log_and_capture(log: Path) -> tuple[str, Path, str]:
    m = _ROLE.match(log.name)
    assert m is not None
    scenario, role = m.groups()
    folder = DATA / "nft" if log.parent.name == "nft" else DATA
    if role == "server":
        return role, folder / f"{scenario}-outside.pcap", _SERVER
    return role, folder / f"{scenario}-inside.pcap", _CLIENTS[role]


def test_every_lab_scenario_has_its_logs() -> None:
    assert len(LOG_FILES) == 28
    assert {_ROLE.match(p.name).group(2) for p in LOG_FILES if _ROLE.match(p.name)} == {"c1", "c2", "server"}


@pytest.mark.parametrize("log", LOG_FILES, ids=lambda p: str(p.relative_to(LOGS)))
def test_rendering_equals_the_real_pppd_log(log: Path) -> None:
    role, capture, me = _log_and_capture(log)
    logged, rendered = _logged(log), _rendered(capture, me)
    assert logged["sent"] or logged["rcvd"]
    two_pppds = role == "server" and capture.name.startswith("s5-")
    for way in ("sent", "rcvd"):
        log_lines = [x for x in logged[way] if not _is_echo(x)]
        cap_lines = [x for x in rendered[way] if not _is_echo(x)]
        log_echo = [x for x in logged[way] if _is_echo(x)]
        cap_echo = [x for x in rendered[way] if _is_echo(x)]
        if two_pppds:
            # Two pppd processes (one per client) write this log, interleaved.
            assert sorted(log_lines) == sorted(cap_lines), way
            assert not Counter(log_echo) - Counter(cap_echo), way
            continue
        assert cap_echo[:len(log_echo)] == log_echo, way
        common = 0
        while common < min(len(log_lines), len(cap_lines)) and log_lines[common] == cap_lines[common]:
            common += 1
        assert all(_is_termination(x) for x in log_lines[common:] + cap_lines[common:]), (way, common)
        assert common >= len(log_lines) - 2 and (common > 0 or not log_lines), way


def test_the_logs_cover_every_kind_of_control_frame() -> None:
    kinds = set()
    for log in LOG_FILES:
        for lines in _logged(log).values():
            kinds.update(line.split(" id=")[0] for line in lines)
    assert {"[LCP ConfReq", "[LCP ConfAck", "[LCP TermReq", "[LCP TermAck", "[LCP EchoReq", "[LCP EchoRep",
            "[CHAP Challenge", "[CHAP Response", "[CHAP Success", "[CHAP Failure", "[PAP AuthReq",
            "[PAP AuthAck", "[CCP ConfReq", "[CCP ConfAck", "[CCP ConfRej", "[IPCP ConfReq", "[IPCP ConfNak",
            "[IPCP ConfAck", "[IPCP TermAck", "[IPV6CP ConfReq", "[IPV6CP ConfAck",
            "[IPV6CP TermAck"} <= kinds


def _cp(code: int, ident: int, body: bytes) -> bytes:
    return bytes([code, ident]) + (4 + len(body)).to_bytes(2, "big") + body


LCP, IPCP, IPV6CP, CCP, PAP, CHAP, EAP, CBCP = 0xC021, 0x8021, 0x8057, 0x80FD, 0xC023, 0xC223, 0xC227, 0xC029


@pytest.mark.parametrize(("protocol", "info", "expected"), [
    # lcp.c lcp_printpkt: known options, and hex octets for what it does not print.
    (LCP, _cp(1, 1, bytes([23, 4, 0, 7])), "[LCP ConfReq id=0x1 < 17 04 00 07>]"),
    (LCP, _cp(1, 1, bytes([1, 3, 5])), "[LCP ConfReq id=0x1 < 01 03 05>]"),
    (LCP, _cp(1, 1, bytes([3, 5, 0xC2, 0x23, 7])), "[LCP ConfReq id=0x1 <auth chap 07>]"),
    (LCP, _cp(2, 1, bytes([3, 5, 0xC2, 0x23, 5, 3, 5, 0xC2, 0x23, 0x80])),
     "[LCP ConfAck id=0x1 <auth chap MD5> <auth chap MS>]"),
    (LCP, _cp(4, 2, bytes([3, 4, 0xC2, 0x27, 3, 4, 0xC1, 0x23])),
     "[LCP ConfRej id=0x2 <auth eap> <auth 0xc123>]"),
    (LCP, _cp(1, 1, bytes([4, 8, 0xC0, 0x25, 0, 0, 0, 10])),
     "[LCP ConfReq id=0x1 <quality lqr 00 00 00 0a>]"),
    (LCP, _cp(1, 1, bytes([13, 3, 6, 13, 4, 0, 0x41])),
     "[LCP ConfReq id=0x1 <callback CBCP> <callback 0x0 41>]"),
    (LCP, _cp(1, 1, bytes([1, 4, 5, 0x78, 17, 4, 5, 0x4E, 18, 2])),
     "[LCP ConfReq id=0x1 <mru 1400> <mrru 1358> <ssnhf>]"),
    (LCP, _cp(1, 1, bytes([19, 9, 3, 0, 0x11, 0x22, 0x33, 0x44, 0x55])),
     "[LCP ConfReq id=0x1 <endpoint [MAC:00:11:22:33:44:55]>]"),
    (LCP, _cp(1, 1, bytes([19, 7, 2, 192, 0, 2, 1, 19, 3, 0])),
     "[LCP ConfReq id=0x1 <endpoint [IP:192.0.2.1]> <endpoint [null]>]"),
    (LCP, _cp(1, 1, bytes([19, 11, 4, *range(1, 9)])),
     "[LCP ConfReq id=0x1 <endpoint [magic:01020304.05060708]>]"),
    (LCP, _cp(1, 1, bytes([19, 5, 9, 1, 2])), "[LCP ConfReq id=0x1 <endpoint [9:01.02]>]"),
    (LCP, _cp(1, 1, bytes([19, 25, 1, *range(22)])),
     "[LCP ConfReq id=0x1 <endpoint [local:" + ".".join(f"{i:02x}" for i in range(20)) + "] 14 15>]"),
    (LCP, _cp(1, 1, bytes([1, 4, 5, 0x78, 7, 9])), "[LCP ConfReq id=0x1 <mru 1400> 07 09]"),
    # an option whose length pppd does not accept for its type is hex, whatever lcp.py decodes it to
    (LCP, _cp(1, 1, bytes([2, 6, 0, 0, 0, 0, 5, 6, 0x12, 0x34, 0x56, 0x78])),
     "[LCP ConfReq id=0x1 <asyncmap 0x0> <magic 0x12345678>]"),
    (LCP, _cp(1, 1, bytes([17, 3, 5, 7, 3, 1, 5, 4, 1, 2])),
     "[LCP ConfReq id=0x1 < 11 03 05> < 07 03 01> < 05 04 01 02>]"),
    (LCP, _cp(1, 1, bytes([3, 4, 0xC0, 0x23, 4, 4, 0x12, 0x34])), "[LCP ConfReq id=0x1 <auth pap> <quality 0x1234>]"),
    (LCP, _cp(1, 1, bytes([18, 3, 0, 8, 2, 13, 2, 3, 3, 0xC2])),
     "[LCP ConfReq id=0x1 < 12 03 00> <accomp> < 0d 02> < 03 03 c2>]"),
    (LCP, _cp(12, 2, bytes([1, 2, 3, 4]) + b"MSRASV5.20"), '[LCP Ident id=0x2 magic=0x1020304 "MSRASV5.20"]'),
    (LCP, _cp(13, 5, bytes([1, 2, 3, 4, 0, 0, 0x0E, 0x10]) + b"one hour"),
     '[LCP TimeRem id=0x5 magic=0x1020304 seconds=3600 "one hour"]'),
    (LCP, _cp(13, 5, bytes([1, 2, 3, 4, 0, 0])), "[LCP TimeRem id=0x5 magic=0x1020304 00 00]"),
    (LCP, _cp(8, 8, bytes([0x80, 0x57, 1, 5, 0, 6, 7, 8])), "[LCP ProtRej id=0x8 80 57 01 05 00 06 07 08]"),
    (LCP, _cp(7, 9, bytes([0x20, 1, 0, 4])), "[LCP CodeRej id=0x9 20 01 00 04]"),
    (LCP, _cp(11, 3, bytes([1, 2, 3, 4]) + b"junk"), "[LCP DiscReq id=0x3 magic=0x1020304 6a 75 6e 6b]"),
    (LCP, _cp(9, 1, bytes([0, 0, 0, 1]) + bytes(40)),
     "[LCP EchoReq id=0x1 magic=0x1" + " 00" * 32 + " ...]"),
    (LCP, _cp(5, 1, b"\x01abc"), "[LCP TermReq id=0x1 01 61 62 63]"),
    (LCP, _cp(5, 1, b'a"b\\c\n\r\t\x7f\xff'), '[LCP TermReq id=0x1 "a\\"b\\\\c\\n\\r\\t\\177\\377"]'),
    (LCP, _cp(6, 1, b""), "[LCP TermAck id=0x1]"),
    (LCP, _cp(99, 1, b"\x01"), "[LCP code=0x63 id=0x1 01]"),
    (LCP, _cp(9, 1, bytes([1, 2, 3, 4])) + b"\xab\xcd", "[LCP EchoReq id=0x1 magic=0x1020304]abcd"),
    (LCP, bytes([1, 1, 0, 0x20, 5, 6]), "[LCP]010100200506"),
    (LCP, bytes([1, 1]), "[LCP]0101"),
    # ipcp.c / ipv6cp.c
    (IPCP, _cp(1, 1, bytes([1, 10, 10, 0, 0, 1, 10, 0, 0, 2, 130, 6, 10, 0, 0, 53, 132, 6, 10, 0, 0, 54])),
     "[IPCP ConfReq id=0x1 <addrs 10.0.0.1 10.0.0.2> <ms-wins 10.0.0.53> <ms-wins 10.0.0.54>]"),
    (IPCP, _cp(1, 1, bytes([2, 4, 0, 0x37, 2, 6, 0, 0x61, 0, 15, 4, 6, 10, 9, 8, 7])),
     "[IPCP ConfReq id=0x1 <compress old-VJ> <compress 0x61 00 0f> < 04 06 0a 09 08 07>]"),
    (IPCP, _cp(3, 1, bytes([129, 6, 1, 1, 1, 1, 131, 6, 8, 8, 8, 8])),
     "[IPCP ConfNak id=0x1 <ms-dns1 1.1.1.1> <ms-dns2 8.8.8.8>]"),
    (IPCP, _cp(5, 2, b"down"), '[IPCP TermReq id=0x2 "down"]'),
    (IPCP, _cp(9, 1, bytes([1, 2, 3, 4])), "[IPCP code=0x9 id=0x1 01 02 03 04]"),
    (IPV6CP, _cp(1, 1, bytes([2, 4, 0, 0x4F, 1, 10, *range(8)])),
     "[IPV6CP ConfReq id=0x1 <compress 0x4f> <addr fe80::0001:0203:0405:0607>]"),
    # ccp.c: MPPE with unknown bits, other methods, Reset codes, and TermReq without its space.
    (CCP, _cp(1, 1, bytes([18, 6, 1, 0, 0, 0x42])),
     "[CCP ConfReq id=0x1 <mppe +H -M +S -L -D -C +U (01 00 00 42)>]"),
    (CCP, _cp(1, 1, bytes([18, 7, 0, 0, 0, 0x21, 9])), "[CCP ConfReq id=0x1 <mppe -H -M -S +L -D +C 09>]"),
    (CCP, _cp(1, 2, bytes([26, 4, 0x78, 0, 26, 4, 0x79, 1, 24, 4, 0x78, 0])),
     "[CCP ConfReq id=0x2 <deflate 15> <deflate 15 method 9 check 1> <deflate(old#) 15>]"),
    (CCP, _cp(1, 3, bytes([21, 3, 0x2F, 1, 2, 2, 2, 17, 5, 0, 1, 3])),
     "[CCP ConfReq id=0x3 <bsd v1 15> <predictor 1> <predictor 2> < 11 05 00 01 03>]"),
    (CCP, _cp(14, 5, b"\x01\x02"), "[CCP ResetReq id=0x5 01 02]"),
    (CCP, _cp(15, 5, b""), "[CCP ResetAck id=0x5]"),
    (CCP, _cp(5, 6, b"bye"), '[CCP TermReq id=0x6"bye"]'),
    (CCP, _cp(9, 6, b""), "[CCP code=0x9 id=0x6]"),
    # upap.c
    (PAP, _cp(3, 4, b"\x0dLogin failed."), '[PAP AuthNak id=0x4 "Login failed."]'),
    (PAP, _cp(1, 1, b"\x09carol"), "[PAP AuthReq id=0x1 09 63 61 72 6f 6c]"),
    (PAP, _cp(1, 1, b"\x01a\x01b\xee"), '[PAP AuthReq id=0x1 user="a" password=<hidden> ee]'),
    # chap-new.c
    (CHAP, _cp(4, 3, b"E=691 R=1 C=0123456789abcdef V=2"),
     '[CHAP Failure id=0x3 "E=691 R=1 C=0123456789abcdef V=2"]'),
    (CHAP, _cp(7, 3, b"\x01\x02"), "[CHAP code=0x7 id=0x3 01 02]"),
    (CHAP, _cp(2, 1, b"\x30\x01"), "[CHAP Response id=0x1]"),
    (CHAP, _cp(1, 1, b"\x02\xab\xcdsrv"), '[CHAP Challenge id=0x1 <abcd>, name = "srv"]'),
    # eap.c
    (EAP, _cp(1, 1, b"\x01"), "[EAP Request id=0x1 Identity <No message>]"),
    (EAP, _cp(2, 1, b"\x01alice@example.org"), '[EAP Response id=0x1 Identity <Name "alice@example.org">]'),
    (EAP, _cp(1, 2, b"\x02hi"), '[EAP Request id=0x2 Notification <Message "hi">]'),
    (EAP, _cp(1, 3, b"\x04\x02\xab\xcdsrv"), '[EAP Request id=0x3 MD5-Challenge <Valueabcd> <Name "srv">]'),
    (EAP, _cp(2, 3, b"\x04\x05\xab"), "[EAP Response id=0x3 MD5-Challenge <truncated>ab]"),
    (EAP, _cp(2, 3, b"\x03\x1a"), "[EAP Response id=0x3 Nak <Suggested-type 1A (MSCHAPv2)>]"),
    (EAP, _cp(1, 4, b"\x0d\x20"), "[EAP Request id=0x4 TLS --S]"),
    (EAP, _cp(2, 4, b"\x0d\x00"), "[EAP Response id=0x4 TLS Ack]"),
    (EAP, _cp(1, 4, b"\x0d\xc0" + bytes(9)), "[EAP Request id=0x4 TLS LM- ...]"),
    (EAP, _cp(1, 5, b"\x1a\x01\x05\x00\x15\x02\xab\xcdsrv"),
     '[EAP Request id=0x5 MSCHAPv2 Challenge <abcd>, <Name "srv">]'),
    (EAP, _cp(1, 1, b""), "[EAP Request id=0x1 <missing type>]"),
    (EAP, _cp(3, 4, b""), "[EAP Success id=0x4]"),
    (EAP, _cp(2, 9, b"\x63\x01\x02"), "[EAP Response id=0x9 type=0x630102]"),
    # goto truncated: the rest is printed from where eap.c's inp stands, inside SRP's fields too
    (EAP, _cp(1, 6, b"\x13\x01\x02ab\x05\xcc\xdd"), '[EAP Request id=0x6 SRP-1 <Name "ab"> <truncated>ccdd]'),
    # cbcp.c (it does not step over the number string, and format_packet prints what is left)
    (CBCP, _cp(1, 1, bytes([1, 2, 2, 5, 0, 1, 0])),
     "[CBCP Request id=0x1 < NoCallback> < UserDefined delay = 0 number = >]00"),
    (CBCP, _cp(2, 1, bytes([2, 12, 15, 1]) + b"5551234\x00"),
     "[CBCP Response id=0x1 < UserDefined delay = 15 number = 5551234>]3535353132333400"),
    # utils.c format_packet: data protocols and unknown ones.
    (0x0021, bytes.fromhex("4500001c000100004001"), "[IP data]4500001c00010000 ..."),
    (0x0057, bytes.fromhex("6000"), "[IPV6 data]6000"),
    (0x00FD, bytes.fromhex("900a"), "[Compressed data]900a"),
    (0x0053, bytes(10), "[Encrypted data]0000000000000000 ..."),
    (0x8053, _cp(1, 1, b""), "[ECP]01010004"),
    (0x80FB, _cp(14, 1, b""), "[proto=0x80fb]0e010004"),
    (0x003D, bytes(40), "[proto=0x3d]" + "00" * 32 + " ..."),
])
def test_pppd_printing(protocol: int, info: bytes, expected: str) -> None:
    assert format_pppd_packet(protocol, info) == expected


def test_pap_password_is_hidden_unless_asked() -> None:
    raw = b"\xff\x03\xc0\x23" + _cp(1, 1, b"\x05carol\x0cplaintext-pw")
    frame = decode_ppp(raw)
    assert format_pppd(frame) == '[PAP AuthReq id=0x1 user="carol" password=<hidden>]'
    shown = format_pppd(frame, show_secrets=True)
    assert shown == '[PAP AuthReq id=0x1 user="carol" password="plaintext-pw"]'


def test_header_compression_does_not_change_the_rendering() -> None:
    body = _cp(9, 0, bytes([0x06, 0x83, 0xDA, 0xAB]))
    full = format_pppd(decode_ppp(b"\xff\x03\xc0\x21" + body))
    assert full == format_pppd(decode_ppp(b"\xc0\x21" + body)) == "[LCP EchoReq id=0x0 magic=0x683daab]"


def test_frames_whose_message_is_malformed_still_render() -> None:
    frame = decode_ppp(b"\xc0\x23" + _cp(1, 1, b"\x09carol"))
    assert frame.error is not None
    assert format_pppd(frame) == "[PAP AuthReq id=0x1 09 63 61 72 6f 6c]"


@pytest.mark.parametrize("path", [p for p in captures() if ppp_frames(p)], ids=lambda p: p.name)
def test_every_captured_frame_renders(path: Path) -> None:
    for f in ppp_frames(path):
        text = format_pppd(decode_ppp(f.payload))
        assert text.startswith("[") and "]" in text


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([LCP, IPCP, IPV6CP, CCP, PAP, CHAP, EAP, CBCP, 0x8053, 0x0021, 0x00FD, 0x1234]),
       st.binary(max_size=120))
def test_format_pppd_never_raises(protocol: int, info: bytes) -> None:
    raw = protocol.to_bytes(2, "big") + info
    try:
        frame = decode_ppp(raw)
    except DecodeError:
        return
    for secrets in (False, True):
        text = format_pppd(frame, show_secrets=secrets)
        assert text.startswith("[")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([LCP, IPCP, IPV6CP, CCP, PAP, CHAP, EAP, CBCP]),
       st.integers(min_value=1, max_value=15), st.binary(max_size=60))
def test_format_pppd_never_raises_on_well_framed_packets(protocol: int, code: int, body: bytes) -> None:
    frame = decode_ppp(protocol.to_bytes(2, "big") + _cp(code, 7, body))
    text = format_pppd(frame)
    assert text.startswith("[") and " id=0x7" in text
