"""DNS messages (RFC 1035 §4): scapy builds them, the decoder reads them; hostile ones never crash it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR

from pptptop.decode.dns import decode_dns, rcode_name, type_name
from pptptop.decode.errors import DecodeError


def test_query_and_answers_with_compression() -> None:
    q = bytes(DNS(id=7, rd=1, qd=DNSQR(qname="intranet.example.")))
    m = decode_dns(q)
    assert (m.id, m.response, m.rcode) == (7, False, 0)
    assert [(r.name, type_name(r.type)) for r in m.questions] == [("intranet.example", "A")]
    a = bytes(DNS(id=7, qr=1, qd=DNSQR(qname="www.example."),
                  an=[DNSRR(rrname="www.example.", type="CNAME", rdata="web.example."),
                      DNSRR(rrname="web.example.", type="A", rdata="192.0.2.80"),
                      DNSRR(rrname="web.example.", type="AAAA", rdata="2001:db8::80")]))
    m = decode_dns(a)
    assert m.response and [(r.name, type_name(r.type), r.value) for r in m.answers] == [
        ("www.example", "CNAME", "web.example"), ("web.example", "A", "192.0.2.80"),
        ("web.example", "AAAA", "2001:db8::80")]
    # RFC 1035 §4.1.4: the answer's name a pointer to the question's (offset 12)
    head = bytes.fromhex("0007 8180 0001 0001 0000 0000")
    question = b"\x03www\x07example\x00\x00\x01\x00\x01"
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x50"
    assert decode_dns(head + question + answer).answers[0].name == "www.example"


def test_error_codes() -> None:
    m = decode_dns(bytes(DNS(id=1, qr=1, rcode=3, qd=DNSQR(qname="nope.example."))))
    assert rcode_name(m.rcode) == "NXDOMAIN" and rcode_name(9) == "RCODE9" and type_name(65280) == "TYPE65280"


@pytest.mark.parametrize(("msg", "code"), [
    (b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xc0\x0c", "dns_pointer_loop"),  # points at itself
    (b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x05ab", "dns_bad_label"),  # label runs past the end
    (b"\x00\x01\x00\x00", "dns_truncated"),
    (b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x80x\x00\x00\x01\x00\x01", "dns_bad_label"),
])
def test_hostile_messages_are_decode_errors(msg: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode_dns(msg)
    assert e.value.code == code


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_never_crashes(data: bytes) -> None:
    try:
        m = decode_dns(data)
    except DecodeError:
        return
    assert len(m.questions) <= 16 and len(m.answers) <= 32
