"""Health warnings for working tunnels: GRE loss and reordering, MTU/MRU, MPPE resyncs, WAN errors, loops."""

from __future__ import annotations

from diag_support import CCP, LCP, MPPE_S, Wire, codes, cp, echo_reply, echo_request, errors, finding, run_frames, wen

from pptptop.diagnose import DiagnosisConfig, Severity


def test_gre_loss_above_threshold() -> None:
    w = Wire().up()
    base = w.gre_seq["server"]
    seqs = [base + s for s in range(120) if s % 20 != 19]  # 6 of 120 lost: 5 %
    w.data("server", len(seqs), seqs=seqs)
    w.data("client")  # an event after the counters moved
    t = run_frames(w.frames, clock=True).tunnels[0]
    f = finding(t, "gre-loss")
    assert f.severity is Severity.WARNING and "server → client 5 of" in f.detail
    assert errors(t) == []


def test_gre_loss_below_threshold_is_quiet() -> None:
    w = Wire().up()
    seqs = [w.gre_seq["server"] + s for s in range(200) if s != 100]
    w.data("server", len(seqs), seqs=seqs).data("client")
    t = run_frames(w.frames, clock=True).tunnels[0]
    assert "gre-loss" not in codes(t)
    t2 = run_frames(w.frames, DiagnosisConfig(gre_loss_pct=0.4), clock=True).tunnels[0]
    assert "gre-loss" in codes(t2)


def test_gre_reordering() -> None:
    w = Wire().up()
    seqs = [w.gre_seq["client"] + s for s in range(100)]
    for i in range(0, 100, 10):
        seqs[i], seqs[i + 1] = seqs[i + 1], seqs[i]
    w.data("client", len(seqs), seqs=seqs).data("server")
    t = run_frames(w.frames, clock=True).tunnels[0]
    assert "client → server 10 reordered, 0 duplicated" in finding(t, "gre-reorder").detail


def test_small_mru() -> None:
    w = Wire().setup().lcp_up(mru=1200)
    f = finding(run_frames(w.frames).tunnels[0], "mru-low")
    assert "MRU 1200" in f.detail and len(f.evidence) == 1


def test_ccp_resets_on_stateful_mppe() -> None:
    w = Wire().setup().lcp_up().mschapv2().ccp_up(MPPE_S).ipcp_up().data("client")
    for i in range(3):
        w.ppp("client", CCP, cp(14, i))
        w.ppp("server", CCP, cp(15, i))
    t = run_frames(w.frames).tunnels[0]
    assert "3 CCP Reset-Requests" in finding(t, "ccp-resets").detail
    stateless = Wire().up()
    for i in range(3):
        stateless.ppp("client", CCP, cp(14, i))
    assert "ccp-resets" not in codes(run_frames(stateless.frames).tunnels[0])


def test_wan_error_notify_counters() -> None:
    w = Wire().up().ctl("server", wen(0x1234, crc=7))
    assert "CRC 7" in finding(run_frames(w.frames).tunnels[0], "wan-errors").detail


def test_looped_back_echo_reply() -> None:
    w = Wire().up()
    w.ppp("client", LCP, cp(9, 1, b"\x11\x22\x33\x44")).ppp("server", LCP, cp(10, 1, b"\x11\x22\x33\x44"))
    assert finding(run_frames(w.frames).tunnels[0], "lcp-loopback").severity is Severity.WARNING
    honest = Wire().up()
    honest.ppp("client", LCP, cp(9, 1, b"\x11\x22\x33\x44")).ppp("server", LCP, cp(10, 1, b"\x55\x66\x77\x88"))
    assert "lcp-loopback" not in codes(run_frames(honest.frames).tunnels[0])


def test_pptp_echo_round_trip_spike() -> None:
    """A control-connection echo (RFC 2637 §2.5) far slower than the ones before it."""
    w = Wire().up()
    for ident, rtt in enumerate((0.01, 0.012, 0.011, 0.01, 1.5), 1):
        w.at(10).ctl("server", echo_request(ident)).at(rtt).ctl("client", echo_reply(ident))
    w.at(1).data("client")
    f = finding(run_frames(w.frames).tunnels[0], "echo-rtt-spike")
    assert "One PPTP echo took 1501 ms" in f.detail and len(f.evidence) == 2
