"""PPP negotiation causes (RFC 1661, 1334, 1994, 2759, 3078, 1332) from crafted exchanges."""

from __future__ import annotations

import pytest
from diag_support import (
    CCP,
    CHAP,
    IPCP,
    LCP,
    MPPE_H,
    MPPE_L,
    MPPE_S,
    PAP,
    T0,
    Wire,
    ccrq,
    codes,
    cp,
    errors,
    finding,
    mppe,
    opt,
    run_frames,
)

from pptptop.diagnose import DiagnosisConfig, Severity

AUTH_MSCHAPV2 = opt(3, b"\xc2\x23\x81")
AUTH_PAP = opt(3, b"\xc0\x23")


@pytest.mark.parametrize("code,title", [
    (646, "Logon outside the allowed hours"), (647, "Account disabled"), (648, "Password expired"),
    (649, "No dial-in permission"), (709, "Error changing the password"),
])
def test_account_errors_name_the_windows_code(code: int, title: str) -> None:
    msg = f"E={code} R=0 C=00112233445566778899aabbccddeeff V=3 M=no".encode()
    w = Wire().setup().lcp_up().mschapv2(success=False, message=msg)
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["auth-account"]
    f = finding(t, "auth-account")
    assert f.windows_error == code and f.title == title and f"E={code}" in f.detail
    if code == 648:
        assert "Change-Password (code 7)" in f.hint


def test_retry_after_691_withdraws_auth_failed() -> None:
    """MS-CHAPv2 R=1: the client may retry with the new challenge (RFC 2759 §6); a Success ends the failure."""
    w = Wire().setup().lcp_up().mschapv2(success=False)
    w.at(1).mschapv2(success=True)
    res = run_frames(w.frames)
    t = res.tunnels[0]
    assert "auth-failed" not in codes(t)
    assert [c.kind for c in res.changes if c.finding.code == "auth-failed"] == ["finding", "withdrawn"]
    assert t.withdrawn[0].finding.windows_error == 691


def test_pap_nak_is_auth_failed_and_cleartext() -> None:
    w = Wire().setup().lcp_up(auth=b"\xc0\x23")
    w.ppp("client", PAP, cp(1, 1, b"\x05carol\x06secret"))
    w.ppp("server", PAP, cp(3, 1, b"\x0dLogin failed."))
    t = run_frames(w.frames).tunnels[0]
    f = finding(t, "auth-failed")
    assert "PAP Authenticate-Nak" in f.detail and "'Login failed.'" in f.detail and f.windows_error == 691
    assert "secret" not in f.detail and "secret" not in finding(t, "pap-cleartext").detail


def _auth_nak_loop(w: Wire, rounds: int, reject: bool = False) -> Wire:
    w.setup().ppp("client", LCP, cp(1, 1, opt(5, b"\x11\x22\x33\x44")))
    for i in range(rounds):
        w.ppp("server", LCP, cp(1, 10 + i, AUTH_MSCHAPV2 + opt(5, b"\x55\x66\x77\x88")))
        w.ppp("client", LCP, cp(4 if reject else 3, 10 + i, AUTH_MSCHAPV2 if reject else AUTH_PAP))
        w.at(0.2)
    return w


def test_auth_method_mismatch_ends_with_terminate() -> None:
    w = _auth_nak_loop(Wire(), 2)
    w.ppp("server", LCP, cp(5, 30, b"No auth is possible"))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["auth-method-mismatch"]
    f = finding(t, "auth-method-mismatch")
    assert "MS-CHAPv2" in f.detail and "PAP" in f.detail and f.windows_error == 812
    assert f.ts == w.frames[-1][0]


def test_auth_method_mismatch_after_max_failure_naks() -> None:
    res = run_frames(_auth_nak_loop(Wire(), 5).frames)
    assert errors(res.tunnels[0]) == ["auth-method-mismatch"]


def test_refusing_to_authenticate_at_all() -> None:
    w = _auth_nak_loop(Wire(), 1, reject=True)
    w.ppp("server", LCP, cp(5, 30, b"peer refused to authenticate"))
    f = finding(run_frames(w.frames).tunnels[0], "auth-method-mismatch")
    assert "rejects authentication altogether" in f.detail


def test_auth_downgraded_to_pap_is_a_security_warning() -> None:
    w = _auth_nak_loop(Wire(), 1)
    w.ppp("server", LCP, cp(1, 40, AUTH_PAP + opt(5, b"\x55\x66\x77\x88")))
    w.ppp("client", LCP, cp(2, 40, AUTH_PAP + opt(5, b"\x55\x66\x77\x88")))
    w.ppp("server", LCP, cp(2, 1, opt(5, b"\x11\x22\x33\x44")))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == []
    f = finding(t, "downgrade")
    assert f.severity is Severity.WARNING and "downgraded to PAP" in f.title


def test_lcp_nak_loop_then_terminate() -> None:
    w = Wire().setup()
    for i in range(3):
        w.ppp("client", LCP, cp(1, i, opt(1, b"\x05\xdc") + opt(2, b"\x00\x00\x00\x00")))
        w.ppp("server", LCP, cp(4, i, opt(2, b"\x00\x00\x00\x00")))
    w.ppp("client", LCP, cp(5, 9, b"no agreement"))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["lcp-failed"]
    f = finding(t, "lcp-failed")
    assert "Async Control Character Map" in f.detail and "'no agreement'" in f.detail and f.windows_error == 734


def test_lcp_never_converging_times_out() -> None:
    w = Wire().setup()
    for i in range(4):
        w.ppp("client", LCP, cp(1, i, opt(1, b"\x05\xdc")))
        w.ppp("server", LCP, cp(3, i, opt(1, b"\x05\x78")))
        w.at(3)
    res = run_frames(w.frames, DiagnosisConfig(lcp_max_configure=4), clock=True, until=T0 + 20)
    f = finding(res.tunnels[0], "lcp-failed")
    first_request = w.frames[7][0]
    assert 12 <= f.ts - first_request < 13


def test_mppe_strength_mismatch() -> None:
    w = Wire().setup().lcp_up().mschapv2()
    w.ppp("client", CCP, cp(1, 1, mppe(MPPE_H | MPPE_S)))
    w.ppp("server", CCP, cp(3, 1, mppe(MPPE_H | MPPE_L)))
    w.ppp("client", LCP, cp(5, 9, b"MPPE required but peer negotiation failed"))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["encryption-mismatch"]
    f = finding(t, "encryption-mismatch")
    assert "128-bit keys, the server only 40" in f.detail and f.windows_error == 742


def test_mppe_not_available_terminate() -> None:
    w = Wire().setup().lcp_up().mschapv2()
    w.ppp("server", LCP, cp(5, 9, b"MPPE required but not available"))
    f = finding(run_frames(w.frames).tunnels[0], "encryption-mismatch")
    assert f.windows_error == 734 and "not available" in f.detail


def test_mppe_rejected_then_data_in_clear_is_a_downgrade_not_an_error() -> None:
    w = Wire().setup().lcp_up().mschapv2()
    w.ppp("server", CCP, cp(1, 1, mppe(MPPE_H | MPPE_S)))
    w.ppp("client", CCP, cp(4, 1, mppe(MPPE_H | MPPE_S)))
    w.ipcp_up()
    w.gre("client", b"\xff\x03\x00\x21" + bytes(20))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == []
    assert "Encryption stripped" in finding(t, "downgrade").title
    assert finding(t, "no-mppe").severity is Severity.WARNING


def test_weak_mppe_and_mschapv1() -> None:
    w = Wire().setup().lcp_up(auth=b"\xc2\x23\x80")
    w.ppp("server", CHAP, cp(1, 7, b"\x08" + bytes(range(8)) + b"srv"))
    w.ppp("client", CHAP, cp(2, 7, b"\x31" + bytes(24) + bytes(range(24)) + b"\x01" + b"dave"))
    w.ppp("server", CHAP, cp(3, 7, b""))
    w.ccp_up(MPPE_L).ipcp_up().data("client")
    t = run_frames(w.frames).tunnels[0]
    assert finding(t, "mppe-weak").title == "Weak encryption: MPPE 40-bit"
    assert "'dave'" in finding(t, "mschapv1").detail
    assert "mschapv2-crackable" not in codes(t)


def test_ipcp_protocol_reject_is_733() -> None:
    w = Wire().setup().lcp_up().mschapv2()
    w.ppp("client", IPCP, cp(1, 1, opt(3, bytes(4))))
    w.ppp("server", LCP, cp(8, 3, b"\x80\x21" + cp(1, 1, opt(3, bytes(4)))))
    f = finding(run_frames(w.frames).tunnels[0], "ncp-failed")
    assert f.windows_error == 733


def test_ipcp_address_rejected_is_735() -> None:
    w = Wire().setup().lcp_up().mschapv2()
    w.ppp("client", IPCP, cp(1, 1, opt(3, bytes([10, 9, 9, 9]))))
    w.ppp("server", IPCP, cp(4, 1, opt(3, bytes([10, 9, 9, 9]))))
    w.ppp("server", LCP, cp(5, 4, b"No network protocols running"))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["ncp-failed"]
    assert finding(t, "ncp-failed").windows_error == 735


def test_ipcp_nak_loop_is_735() -> None:
    w = Wire().setup().lcp_up().mschapv2()
    for i in range(5):
        w.ppp("client", IPCP, cp(1, i, opt(3, bytes([10, 9, 9, 9]))))
        w.ppp("server", IPCP, cp(3, i, opt(3, bytes([192, 0, 2, 10]))))
    f = finding(run_frames(w.frames).tunnels[0], "ncp-failed")
    assert f.windows_error == 735 and "5 IPCP Configure-Naks" in f.detail


def test_no_address_after_authentication_times_out_720() -> None:
    w = Wire().setup().lcp_up().mschapv2()
    w.ppp("client", IPCP, cp(1, 1, opt(3, bytes(4))))
    res = run_frames(w.frames, DiagnosisConfig(lcp_max_configure=2), clock=True, until=T0 + 10)
    f = finding(res.tunnels[0], "ncp-failed")
    assert f.windows_error == 720 and 6 <= f.ts - T0 < 8


def test_ncp_failed_not_reported_when_encryption_explains_it() -> None:
    w = Wire().setup().lcp_up().mschapv2()
    w.ppp("server", CCP, cp(1, 1, mppe(MPPE_H | MPPE_S)))
    w.ppp("client", CCP, cp(4, 1, mppe(MPPE_H | MPPE_S)))
    w.ppp("server", LCP, cp(5, 9, b"MPPE required but peer refused"))
    w.ctl("client", ccrq(w.client_call))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["encryption-mismatch"]


def test_mppe_nakd_down_to_40_bit_is_a_downgrade() -> None:
    w = Wire().setup().lcp_up().mschapv2()
    w.ppp("client", CCP, cp(1, 1, mppe(MPPE_H | MPPE_S)))
    w.ppp("server", CCP, cp(3, 1, mppe(MPPE_H | MPPE_L)))
    w.ppp("client", CCP, cp(1, 2, mppe(MPPE_H | MPPE_L)))
    w.ppp("server", CCP, cp(2, 2, mppe(MPPE_H | MPPE_L)))
    w.ppp("server", CCP, cp(1, 1, mppe(MPPE_H | MPPE_L)))
    w.ppp("client", CCP, cp(2, 1, mppe(MPPE_H | MPPE_L)))
    w.ipcp_up().data("client")
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == []
    assert finding(t, "downgrade").title == "Encryption downgraded to 40-bit"
    assert finding(t, "mppe-weak").severity is Severity.WARNING
