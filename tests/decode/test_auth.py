"""PAP, CHAP with MS-CHAPv1/v2, and EAP: real captures against tshark, crafted cases for the rest."""

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

from pptptop.decode.auth import (
    ChapAlgorithm,
    ChapCode,
    ChapPacket,
    EapPacket,
    MsChapFailure,
    MsChapV1ChangePassword,
    MsChapV1ChangePasswordV2,
    MsChapV1Response,
    MsChapV2Response,
    PapPacket,
    decode_chap,
    decode_eap,
    decode_pap,
    eap_type_name,
    mschap_error_name,
    parse_mschap_failure,
    parse_mschap_success,
)
from pptptop.decode.errors import DecodeError
from pptptop.decode.lcp import AuthProtocol, ControlPacket, LcpOption
from pptptop.decode.ppp import PppProtocol, decode_ppp

AUTH_FIELDS = [n for n in FIELDS if n.startswith(("pap.", "chap."))]
AUTH_PROTOCOLS = (PppProtocol.PAP, PppProtocol.CHAP)
WITH_AUTH = [p for p in captures()
             if any(decode_ppp(f.payload).protocol in AUTH_PROTOCOLS for f in ppp_frames(p))]


def _packet(code: int, ident: int, body: bytes) -> bytes:
    return bytes([code, ident]) + (4 + len(body)).to_bytes(2, "big") + body


def chap(code: int, ident: int, body: bytes) -> bytes:
    return _packet(code, ident, body)


def chap_value(code: int, ident: int, value: bytes, name: bytes) -> bytes:
    return _packet(code, ident, bytes([len(value)]) + value + name)


def negotiated_algorithm(path: Path) -> int | None:
    """The CHAP algorithm an LCP Configure-Ack of the capture agreed on."""
    for f in ppp_frames(path):
        m = decode_ppp(f.payload).message
        if isinstance(m, ControlPacket) and m.protocol == PppProtocol.LCP and m.code == 2:
            opt = m.option(LcpOption.AUTH_PROTOCOL)
            if opt is not None and isinstance(opt.value, AuthProtocol):
                return opt.value.algorithm
    return None


@pytest.mark.tshark
@pytest.mark.parametrize("path", WITH_AUTH, ids=lambda p: p.name)
def test_pap_and_chap_fields_match_tshark(path: Path) -> None:
    theirs = tshark_ppp(path)
    algorithm = negotiated_algorithm(path)
    seen = 0
    for f in ppp_frames(path):
        frame = decode_ppp(f.payload, chap_algorithm=algorithm)
        if frame.protocol in (PppProtocol.PAP, PppProtocol.CHAP):
            assert frame.error is None
            assert pick(ours_as_tshark(frame), AUTH_FIELDS) == pick(theirs[f.number], AUTH_FIELDS), f.number
            seen += 1
    assert seen


@pytest.mark.parametrize("path", [p for p in WITH_AUTH if negotiated_algorithm(p) == ChapAlgorithm.MSCHAPV2],
                         ids=lambda p: p.name)
def test_real_mschapv2_exchanges_split_and_parse(path: Path) -> None:
    responses = outcomes = 0
    for f in ppp_frames(path):
        negotiated = decode_ppp(f.payload, chap_algorithm=ChapAlgorithm.MSCHAPV2)
        inferred = decode_ppp(f.payload)
        m = negotiated.message
        if not isinstance(m, ChapPacket):
            continue
        assert inferred.message == m
        if m.code == ChapCode.RESPONSE:
            r = m.mschapv2_response
            assert r is not None and m.mschapv1_response is None
            assert (r.peer_challenge, r.nt_response) == (m.value[:16], m.value[24:48])
            assert r.reserved == bytes(8) and r.flags == 0 and m.name
            responses += 1
        elif m.code == ChapCode.SUCCESS:
            assert m.success is not None
            assert len(m.success.authenticator) == 40 and m.success.message == "Access granted"
            assert m.message == f"S={m.success.authenticator} M=Access granted"
            outcomes += 1
        elif m.code == ChapCode.FAILURE:
            assert m.failure is not None and m.failure.error == 691
            outcomes += 1
        elif m.code == ChapCode.CHALLENGE:
            assert len(m.value) == 16 and m.name
    assert responses and outcomes


def test_the_wrong_password_failure_of_lab_s2() -> None:
    path = next(p for p in captures() if p.name == "s2-mschapv2-wrong-password-outside.pcap")
    failures = [m for m in (decode_ppp(f.payload).message for f in ppp_frames(path))
                if isinstance(m, ChapPacket) and m.code == ChapCode.FAILURE]
    assert len(failures) == 1
    fail = failures[0].failure
    challenge = bytes.fromhex("b5ee1e340a640999fc9d513d482123f6")
    assert fail == MsChapFailure(691, True, challenge, 0, "Access denied")
    assert fail.error_name == "ERROR_AUTHENTICATION_FAILURE"


def test_mschapv1_response_by_algorithm_and_by_inference() -> None:
    lm = bytes(range(1, 25))
    nt = bytes(range(100, 124))
    pkt = chap_value(2, 9, lm + nt + b"\x01", b"DOMAIN\\bob")
    for algorithm in (ChapAlgorithm.MSCHAP, None):
        m = decode_chap(pkt, algorithm)
        assert m.mschapv1_response == MsChapV1Response(lm, nt, 1) and m.mschapv2_response is None
        assert m.name == "DOMAIN\\bob"
    no_lm = decode_chap(chap_value(2, 9, bytes(24) + nt + b"\x01", b"bob"))
    assert no_lm.mschapv1_response == MsChapV1Response(bytes(24), nt, 1)
    v2 = decode_chap(chap_value(2, 9, bytes(range(1, 17)) + bytes(8) + nt + b"\x00", b"bob"))
    assert v2.mschapv2_response == MsChapV2Response(bytes(range(1, 17)), bytes(8), nt, 0)


def test_md5_and_other_sizes_are_not_split() -> None:
    md5 = decode_chap(chap_value(2, 1, bytes(16), b"carol"), ChapAlgorithm.MD5)
    assert (md5.mschapv1_response, md5.mschapv2_response, md5.value) == (None, None, bytes(16))
    forced = decode_chap(chap_value(2, 1, bytes(range(49)), b"x"), ChapAlgorithm.MD5)
    assert forced.mschapv1_response is None and forced.mschapv2_response is None
    md5_success = decode_chap(chap(3, 1, b"S=" + b"A" * 40), ChapAlgorithm.MD5)
    assert md5_success.success is None and md5_success.message == "S=" + "A" * 40


def test_mschapv1_failure_with_a_16_hex_challenge() -> None:
    m = decode_chap(chap(4, 3, b"E=691 R=1 C=0123456789abcdef V=2"), ChapAlgorithm.MSCHAP)
    assert m.failure == MsChapFailure(691, True, bytes.fromhex("0123456789abcdef"), 2, "")


@pytest.mark.parametrize(("code", "name"), [
    (646, "ERROR_RESTRICTED_LOGON_HOURS"), (647, "ERROR_ACCT_DISABLED"), (648, "ERROR_PASSWD_EXPIRED"),
    (649, "ERROR_NO_DIALIN_PERMISSION"), (691, "ERROR_AUTHENTICATION_FAILURE"),
    (709, "ERROR_CHANGING_PASSWORD"),
])
def test_every_documented_failure_code(code: int, name: str) -> None:
    text = f"E={code} R=0 C=00112233445566778899aabbccddeeff V=3 M=Windows says no"
    m = decode_chap(chap(4, 7, text.encode()))
    assert m.failure is not None
    assert (m.failure.error, m.failure.retry, m.failure.version, m.failure.message) == (code, False, 3,
                                                                                         "Windows says no")
    assert m.failure.error_name == name == mschap_error_name(code)


def test_failure_grammar_is_lenient() -> None:
    assert parse_mschap_failure("E=649") == MsChapFailure(649, False, b"", None, "")
    assert parse_mschap_failure("R=1 E=648 V=3") == MsChapFailure(648, True, b"", 3, "")
    odd = parse_mschap_failure("E=691 R=1 C=xyz V=0 M=E=123 is text here")
    assert odd == MsChapFailure(691, True, b"", 0, "E=123 is text here")
    assert parse_mschap_failure("Access denied") is None
    assert parse_mschap_failure("M=E=691") is None
    assert mschap_error_name(1) == "ERROR_1"


def test_success_grammar() -> None:
    auth = "B871F9F9DC40D52A532426028FB23FCE6EF9FA33"
    ok = parse_mschap_success(f"S={auth} M=Access granted")
    assert ok is not None and (ok.authenticator, ok.message) == (auth, "Access granted")
    bare = parse_mschap_success(f"S={auth}")
    assert bare is not None and bare.message == ""
    assert parse_mschap_success("S=1234 M=short") is None
    assert parse_mschap_success("Welcome") is None
    assert decode_chap(chap(3, 1, b"Welcome")).success is None


def test_change_password_packets() -> None:
    body7 = bytes([1]) * 516 + bytes([2]) * 16 + bytes([3]) * 16 + bytes(8) + bytes([4]) * 24 + b"\x00\x00"
    m = decode_chap(chap(7, 4, body7), ChapAlgorithm.MSCHAPV2)
    cp = m.change_password
    assert cp is not None and m.value == body7
    assert (cp.encrypted_password, cp.encrypted_hash, cp.peer_challenge) == \
        (bytes([1]) * 516, bytes([2]) * 16, bytes([3]) * 16)
    assert (cp.reserved, cp.nt_response, cp.flags) == (bytes(8), bytes([4]) * 24, 0)
    body5 = bytes([5]) * 16 + bytes([6]) * 16 + bytes([7]) * 16 + bytes([8]) * 16 + b"\x00\x08\x00\x01"
    v1 = decode_chap(chap(5, 4, body5), ChapAlgorithm.MSCHAP).mschapv1_change_password
    assert v1 == MsChapV1ChangePassword(bytes([5]) * 16, bytes([6]) * 16, bytes([7]) * 16, bytes([8]) * 16,
                                        8, 1)
    body6 = (bytes([1]) * 516 + bytes([2]) * 16 + bytes([3]) * 16 + bytes([4]) * 24 + bytes([5]) * 24
             + b"\x00\x01")
    v2 = decode_chap(chap(6, 4, body6)).mschapv1_change_password
    assert v2 == MsChapV1ChangePasswordV2(bytes([1]) * 516, bytes([2]) * 16, bytes([3]) * 16, bytes([4]) * 24,
                                          bytes([5]) * 24, 1)
    short = decode_chap(chap(7, 4, body7[:100]))
    assert short.change_password is None and short.value == body7[:100]


@pytest.mark.tshark
def test_crafted_chap_and_pap_match_tshark(tmp_path: Path) -> None:
    frames = [
        b"\xc2\x23" + chap_value(1, 1, bytes(8), b"srv"),
        b"\xc2\x23" + chap_value(2, 1, bytes(range(1, 25)) + bytes(range(30, 54)) + b"\x01", b"bob"),
        b"\xc2\x23" + chap(4, 1, b"E=646 R=0 C=0123456789abcdef V=2"),
        b"\xc2\x23" + chap(7, 2, bytes(582)),
        b"\xc0\x23" + _packet(1, 5, b"\x05carol\x00"),
        b"\xc0\x23" + _packet(3, 5, b"\x0dLogin failed."),
        b"\xc0\x23" + _packet(2, 6, b"\x00"),
    ]
    path = write_gre_pcap(tmp_path / "auth.pcap", frames)
    theirs = tshark_ppp(path)
    names = [*AUTH_FIELDS, "ppp.protocol"]
    for number, raw in enumerate(frames, start=1):
        frame = decode_ppp(raw)
        assert frame.error is None
        assert pick(ours_as_tshark(frame), names) == pick(theirs[number], names), number


def test_pap_packets() -> None:
    req = decode_pap(_packet(1, 5, b"\x05carol\x0cplaintext-pw"))
    assert req == PapPacket(1, 5, 23, "carol", "plaintext-pw", None)
    nak = decode_pap(_packet(3, 5, b"\x0dLogin failed."))
    assert (nak.message, nak.peer_id, nak.password) == ("Login failed.", None, None)
    empty_ack = decode_pap(_packet(2, 6, b""))
    assert empty_ack.message == ""


@pytest.mark.parametrize(("raw", "code"), [
    (_packet(1, 1, b"\x09carol"), "pap_bad_field_length"),
    (_packet(1, 1, b"\x05carol"), "pap_bad_field_length"),
    (_packet(1, 1, b"\x05carol\x03pw"), "pap_bad_field_length"),
    (_packet(2, 1, b"\x05ok"), "pap_bad_field_length"),
    (b"\x01\x01\x00", "ppp_truncated"),
    (b"\x01\x01\x00\x09\x00", "ppp_truncated"),
    (b"\x01\x01\x00\x02", "ppp_bad_length"),
])
def test_pap_errors(raw: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_pap(raw)
    assert exc.value.code == code


@pytest.mark.parametrize(("raw", "code"), [
    (_packet(1, 1, b""), "chap_bad_value_size"),
    (_packet(2, 1, b"\x31" + bytes(10)), "chap_bad_value_size"),
    (b"\x01\x01\x00\x30\x10", "ppp_truncated"),
])
def test_chap_errors(raw: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_chap(raw)
    assert exc.value.code == code


def test_decode_ppp_passes_the_negotiated_algorithm() -> None:
    value = bytes(range(1, 17)) + bytes(8) + bytes(range(40, 64)) + b"\x00"
    raw = b"\xc2\x23" + chap_value(2, 1, value, b"alice")
    as_v1 = decode_ppp(raw, chap_algorithm=ChapAlgorithm.MSCHAP).message
    assert isinstance(as_v1, ChapPacket) and as_v1.mschapv1_response is not None
    as_v2 = decode_ppp(raw).message
    assert isinstance(as_v2, ChapPacket) and as_v2.mschapv2_response is not None


EAP_FRAMES = [
    _packet(1, 1, b"\x01"),
    _packet(2, 1, b"\x01alice@example.org"),
    _packet(1, 2, b"\x02Please log in"),
    _packet(1, 3, b"\x04\x10" + bytes(range(16)) + b"srv"),
    _packet(2, 3, b"\x03\x1a"),
    _packet(1, 4, b"\x0d\x20"),
    _packet(3, 4, b""),
    _packet(4, 5, b""),
]


@pytest.mark.tshark
def test_crafted_eap_matches_tshark(tmp_path: Path) -> None:
    path = write_gre_pcap(tmp_path / "eap.pcap", [b"\xff\x03\xc2\x27" + p for p in EAP_FRAMES])
    rows = tshark_rows(path, ["eap.code", "eap.id", "eap.len", "eap.type", "eap.identity"])
    assert len(rows) == len(EAP_FRAMES)
    for raw, row in zip(EAP_FRAMES, rows, strict=True):
        m = decode_eap(raw)
        ours = {"eap.code": [str(m.code)], "eap.id": [str(m.identifier)], "eap.len": [str(m.length)]}
        if m.type is not None:
            ours["eap.type"] = [str(m.type)]
        if m.identity:
            ours["eap.identity"] = [m.identity]
        assert ours == {k: v for k, v in row.items() if k in ours or k.startswith("eap.")}


def test_eap_fields() -> None:
    ident = decode_eap(EAP_FRAMES[1])
    assert ident == EapPacket(2, 1, 22, 1, "Identity", "alice@example.org", b"alice@example.org")
    assert decode_eap(EAP_FRAMES[0]).identity == ""
    md5 = decode_eap(EAP_FRAMES[3])
    assert (md5.type_name, md5.data[0], md5.identity) == ("MD5-Challenge", 16, None)
    assert decode_eap(EAP_FRAMES[4]).type_name == "Nak"
    assert decode_eap(EAP_FRAMES[5]).type_name == "TLS"
    assert decode_eap(EAP_FRAMES[6]) == EapPacket(3, 4, 4, None, "", None, b"")
    assert [eap_type_name(t) for t in (25, 26, 200)] == ["PEAP", "MS-CHAPv2", "Unknown (200)"]
    frame = decode_ppp(b"\xc2\x27" + EAP_FRAMES[1])
    assert isinstance(frame.message, EapPacket) and frame.message.identity == "alice@example.org"


def test_eap_request_without_a_type_is_malformed() -> None:
    with pytest.raises(DecodeError) as exc:
        decode_eap(_packet(1, 1, b""))
    assert exc.value.code == "eap_missing_type"
