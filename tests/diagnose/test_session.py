"""Keepalives (RFC 1661 §5.8, RFC 2637 §2.5) and who ended a session."""

from __future__ import annotations

from diag_support import (
    ACK,
    FIN,
    LCP,
    Wire,
    cdn,
    codes,
    cp,
    echo_reply,
    echo_request,
    errors,
    finding,
    run_frames,
    stopccrq,
)

from pptptop.diagnose import DiagnosisConfig, Severity


def lcp_echo(w: Wire, sender: str, ident: int) -> Wire:
    return w.ppp(sender, LCP, cp(9, ident, b"\x11\x22\x33\x44"))


def lcp_reply(w: Wire, sender: str, ident: int) -> Wire:
    return w.ppp(sender, LCP, cp(10, ident, b"\x55\x66\x77\x88"))


def test_three_unanswered_lcp_echoes_then_terminate() -> None:
    w = Wire().up()
    for i in range(3):
        lcp_echo(w.at(2), "client", i)
    w.at(2).ppp("client", LCP, cp(5, 9, b"MPPE disabled"))
    term = len(w.frames)
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["echo-timeout"]
    f = finding(t, "echo-timeout")
    assert f.evidence[-1] == term and len(f.evidence) == 4 and f.ts == w.frames[-1][0]
    assert "client" in f.detail and "client-hangup" not in codes(t)


def test_a_late_echo_reply_withdraws_echo_timeout() -> None:
    w = Wire().up()
    for i in range(4):
        lcp_echo(w.at(2), "client", i)
    lcp_reply(w.at(0.5), "server", 3)
    res = run_frames(w.frames)
    t = res.tunnels[0]
    assert "echo-timeout" not in codes(t)
    assert [c.kind for c in res.changes if c.finding.code == "echo-timeout"] == ["finding", "withdrawn"]


def test_answered_echoes_are_healthy_and_a_spike_is_a_warning() -> None:
    w = Wire().up()
    for i in range(5):
        lcp_echo(w.at(2), "client", i)
        lcp_reply(w.at(0.02), "server", i)
    lcp_echo(w.at(2), "client", 9)
    lcp_reply(w.at(1.5), "server", 9)
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == []
    f = finding(t, "echo-rtt-spike")
    assert f.severity is Severity.WARNING and "took 1501 ms against 21 ms" in f.detail and len(f.evidence) == 2


def test_pptp_echo_unanswered_for_60_seconds() -> None:
    w = Wire().up()
    w.at(5).ctl("client", echo_request(77))
    sent = w.frames[-1][0]
    res = run_frames(w.frames, clock=True, until=sent + 70)
    f = finding(res.tunnels[0], "echo-timeout")
    assert "PPTP" in f.title and 60 <= f.ts - sent < 61


def test_pptp_echo_timeout_is_configurable_and_a_reply_keeps_it_away() -> None:
    w = Wire().up()
    w.at(5).ctl("client", echo_request(1)).at(0.01).ctl("server", echo_reply(1))
    w.at(5).ctl("client", echo_request(2))
    res = run_frames(w.frames, DiagnosisConfig(pptp_echo_timeout=8.0), clock=True, until=w.now + 20)
    f = finding(res.tunnels[0], "echo-timeout")
    assert f.evidence == [len(w.frames)]


def test_server_cdn_and_stop_is_peer_terminated_629() -> None:
    w = Wire().up()
    w.at(1).ctl("server", cdn(w.server_call, result=3)).ctl("server", stopccrq(3))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["peer-terminated"]
    f = finding(t, "peer-terminated")
    assert f.windows_error == 629 and "Admin Shutdown (3)" in f.detail and "Stop-Local-Shutdown (3)" in f.detail


def test_server_fin_before_the_link_is_up_is_628() -> None:
    w = Wire().setup()
    w.ppp("client", LCP, cp(1, 1, b"")).ppp("server", LCP, cp(1, 1, b""))
    w.at(0.3).tcp("server", FIN | ACK)
    f = finding(run_frames(w.frames).tunnels[0], "peer-terminated")
    assert f.windows_error == 628 and "1 GRE packet from the client, 1 back" in f.detail


def test_server_fin_before_any_gre_came_back_is_the_gre_path() -> None:
    """Not one GRE packet back before the server hangs up: the GRE path is the cause, the hang-up its evidence."""
    w = Wire().setup()
    w.ppp("client", LCP, cp(1, 1, b""))
    w.at(0.3).tcp("server", FIN | ACK)
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["gre-blocked"]
    f = finding(t, "gre-blocked")
    assert len(w.frames) in f.evidence and "The server hung up 0.30 s after Outgoing-Call-Reply (TCP FIN)" in f.detail


def test_client_hangup_is_info_and_not_after_a_failure() -> None:
    w = Wire().up()
    w.at(1).ppp("client", LCP, cp(5, 9, b"User request")).tcp("client", FIN | ACK)
    t = run_frames(w.frames).tunnels[0]
    f = finding(t, "client-hangup")
    assert f.severity is Severity.INFO and "'User request' is what pppd sends" in f.detail
    w2 = Wire().setup().lcp_up().mschapv2(success=False)
    w2.ppp("client", LCP, cp(5, 9, b"Failed to authenticate ourselves to peer"))
    assert "client-hangup" not in codes(run_frames(w2.frames).tunnels[0])


def test_in_flight_echo_at_a_normal_hangup_is_not_a_miss() -> None:
    w = Wire().up()
    for i in range(2):
        lcp_echo(w.at(2), "client", i)
        lcp_reply(w.at(0.01), "server", i)
    lcp_echo(w.at(2), "client", 5)
    w.ppp("client", LCP, cp(5, 9, b"User request"))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == [] and "client-hangup" in codes(t)


def test_a_ccp_terminate_alone_does_not_end_the_session() -> None:
    """RFC 1962: CCP can close while LCP and IPCP stay open; only session-ending actions count."""
    w = Wire().up()
    w.at(1).ppp("server", 0x80FD, cp(5, 4, b"compression off"))
    w.data("client", 3).data("server", 3)
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == [] and "client-hangup" not in codes(t)
