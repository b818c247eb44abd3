"""The GRE data channel (RFC 2637 §4): blocked, one way, refused by ICMP."""

from __future__ import annotations

from diag_support import LCP, Wire, codes, cp, errors, finding, icmp_error, opt, run_frames

from pptptop.diagnose import DiagnosisConfig

MAGIC_C = opt(5, b"\x11\x22\x33\x44")
MAGIC_S = opt(5, b"\x55\x66\x77\x88")


def test_gre_blocked_by_timeout_while_the_client_keeps_trying() -> None:
    w = Wire().setup()
    first = w.now
    for i in range(11):
        w.ppp("client", LCP, cp(1, i, MAGIC_C)).at(3)
    res = run_frames(w.frames, clock=True)
    t = res.tunnels[0]
    f = finding(t, "gre-blocked")
    assert 30 <= f.ts - first < 31  # LCP restart 3 s × max-configure 10
    assert errors(t) == ["gre-blocked"] and f.windows_error == 806


def test_gre_blocked_timeout_follows_the_config() -> None:
    w = Wire().setup()
    for i in range(4):
        w.ppp("server", LCP, cp(1, i, MAGIC_S)).at(2)
    res = run_frames(w.frames, DiagnosisConfig(lcp_restart=2.0, lcp_max_configure=3), clock=True)
    f = finding(res.tunnels[0], "gre-blocked")
    assert "the server's 4 LCP Configure-Requests" in f.detail and "no GRE at all came from the client" in f.detail


def test_one_late_answer_withdraws_gre_blocked() -> None:
    w = Wire().setup()
    for i in range(11):
        w.ppp("client", LCP, cp(1, i, MAGIC_C)).at(3)
    w.ppp("server", LCP, cp(2, 10, MAGIC_C))
    res = run_frames(w.frames, clock=True)
    assert "gre-blocked" not in codes(res.tunnels[0])
    assert [c.kind for c in res.changes if c.finding.code == "gre-blocked"] == ["finding", "withdrawn"]


def test_gre_one_way_during_setup() -> None:
    """The server acks the client's requests but its own never get through: server → client GRE is lost."""
    w = Wire().setup()
    for i in range(4):
        w.ppp("client", LCP, cp(1, i, MAGIC_C)).ppp("server", LCP, cp(2, i, MAGIC_C))
        w.ppp("server", LCP, cp(1, 20 + i, MAGIC_S)).at(3)
    res = run_frames(w.frames, clock=True)
    t = res.tunnels[0]
    assert errors(t) == ["gre-one-way"]
    f = finding(t, "gre-one-way")
    assert f.title == "GRE passes client → server only" and f.windows_error == 806


def test_gre_one_way_mid_session() -> None:
    w = Wire().up()
    for _ in range(15):
        w.at(1).data("client")
    res = run_frames(w.frames, clock=True)
    t = res.tunnels[0]
    f = finding(t, "gre-one-way")
    assert "nothing from the server" in f.title and f.evidence
    # the first packet after the silence began is among the evidence, and the finding came at the threshold
    assert 10 <= f.ts - (int(w.frames[-15][0])) < 12


def test_one_way_yields_to_echo_timeout() -> None:
    w = Wire().up()
    for i in range(12):
        w.at(1).data("client")
        if i % 2 == 0:
            w.ppp("client", LCP, cp(9, i, b"\x11\x22\x33\x44"))
    res = run_frames(w.frames, clock=True)
    assert errors(res.tunnels[0]) == ["echo-timeout"]


def test_icmp_admin_prohibited_for_gre() -> None:
    w = Wire().setup()
    w.ppp("client", LCP, cp(1, 1, MAGIC_C))
    gre = w.frames[-1][3]
    w.raw(icmp_error(w, "client", 3, 13, gre, origin="192.0.2.254"))
    t = run_frames(w.frames).tunnels[0]
    f = finding(t, "gre-icmp-unreachable")
    assert "a firewall at 192.0.2.254 rejects GRE" in f.detail and f.evidence == [8, 9]


def test_icmp_fragmentation_needed_is_an_mtu_warning_not_blocking() -> None:
    w = Wire().up()
    gre = w.frames[-1][3]
    w.raw(icmp_error(w, "server", 3, 4, gre, origin="192.0.2.254"))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == []
    assert "fragmentation" in finding(t, "mru-low").detail


def test_server_side_view_server_gives_up_and_closes() -> None:
    """Failure-modes row 7: pppd on the server logs 'timeout sending Config-Requests', pptpd closes TCP."""
    w = Wire().setup()
    for i in range(10):
        w.ppp("server", LCP, cp(1, i, MAGIC_S)).at(3)
    w.tcp("server", 0x11)
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["gre-blocked"]
    f = finding(t, "gre-blocked")
    assert "The server gave up (tcp-fin)" in f.detail and "no GRE at all came from the client" in f.detail
