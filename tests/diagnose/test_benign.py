"""Benign events are said to be normal, so nobody chases them."""

from __future__ import annotations

from diag_support import CCP, LCP, MPPE_H, MPPE_S, Wire, codes, cp, errors, finding, mppe, run_frames

from pptptop.diagnose import Severity


def test_ipv6cp_and_other_protocol_rejects() -> None:
    w = Wire().up()
    w.ppp("server", LCP, cp(8, 5, b"\x80\x57\x01\x01\x00\x04"))
    w.ppp("client", LCP, cp(8, 6, b"\x80\x3f\x01\x01\x00\x04"))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == []
    v6 = finding(t, "ipv6cp-rejected")
    assert v6.severity is Severity.INFO and "(normal)" in v6.title and "server" in v6.detail
    other = finding(t, "protocol-rejected")
    assert "0x803f" in other.detail and other.severity is Severity.INFO


def test_ccp_nak_round_before_agreement() -> None:
    w = Wire().setup().lcp_up().mschapv2()
    w.ppp("client", CCP, cp(1, 1, mppe(MPPE_H | MPPE_S | 0x01)))
    w.ppp("server", CCP, cp(3, 1, mppe(MPPE_H | MPPE_S)))
    w.ppp("client", CCP, cp(1, 2, mppe(MPPE_H | MPPE_S)))
    w.ppp("server", CCP, cp(2, 2, mppe(MPPE_H | MPPE_S)))
    w.ppp("server", CCP, cp(1, 1, mppe(MPPE_H | MPPE_S)))
    w.ppp("client", CCP, cp(2, 1, mppe(MPPE_H | MPPE_S)))
    t = run_frames(w.frames.copy()).tunnels[0]
    f = finding(t, "ccp-nak-round")
    assert f.severity is Severity.INFO and len(f.evidence) == 3
    assert "encryption-mismatch" not in codes(t)
