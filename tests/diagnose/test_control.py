"""Control-connection causes the lab cannot produce, from crafted RFC 2637 exchanges."""

from __future__ import annotations

from diag_support import (
    ACK,
    FIN,
    RST,
    SYN,
    T0,
    Wire,
    codes,
    errors,
    finding,
    icmp_error,
    ocrp,
    ocrq,
    run_frames,
    sccrp,
    sccrq,
)

from pptptop.diagnose import DiagnosisConfig


def syns(w: Wire, *gaps: float) -> Wire:
    """A SYN and its retransmissions (the same sequence number each time)."""
    w.tcp("client", SYN)
    for g in gaps:
        w.seq["client"] -= 1
        w.at(g).tcp("client", SYN)
    return w


def test_server_unreachable_after_the_syn_timeout() -> None:
    w = syns(Wire(), 3, 6)
    res = run_frames(w.frames, clock=True, until=T0 + 40)
    t = res.tunnels[0]
    f = finding(t, "server-unreachable")
    assert f.windows_error == 800 and "3 SYNs" in f.detail
    assert f.evidence == [1, 2, 3]
    assert T0 + 21 <= f.ts < T0 + 22  # the defining timeout, seen on the next one-second tick
    assert errors(t) == ["server-unreachable"]


def test_server_unreachable_timeout_is_configurable() -> None:
    w = syns(Wire(), 1, 2)
    res = run_frames(w.frames, DiagnosisConfig(syn_timeout=5.0), clock=True, until=T0 + 10)
    assert T0 + 5 <= finding(res.tunnels[0], "server-unreachable").ts < T0 + 6


def test_late_synack_withdraws_server_unreachable() -> None:
    w = syns(Wire(), 3, 6)
    w.at(20).tcp("server", SYN | ACK).tcp("client", ACK)
    res = run_frames(w.frames, clock=True, until=T0 + 32)
    t = res.tunnels[0]
    assert "server-unreachable" not in codes(t)
    kinds = [(c.kind, c.finding.provisional) for c in res.changes if c.finding.code == "server-unreachable"]
    # provisional at the second retransmission, confirmed at the SYN timeout, withdrawn by the SYN-ACK
    assert kinds == [("finding", True), ("finding", False), ("withdrawn", False)]
    assert t.withdrawn[0].finding.code == "server-unreachable"


def test_icmp_port_unreachable_for_the_syn_is_immediate() -> None:
    w = Wire().tcp("client", SYN)
    syn = w.frames[-1][3]
    w.raw(icmp_error(w, "client", 3, 3, syn))
    res = run_frames(w.frames)
    f = finding(res.tunnels[0], "server-unreachable")
    assert f.evidence == [1, 2] and "ICMP port unreachable" in f.detail
    assert f.ts == w.frames[1][0]


def test_rst_to_syn_is_server_refused() -> None:
    w = Wire().tcp("client", SYN).tcp("server", RST | ACK)
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["server-refused"]
    f = finding(t, "server-refused")
    assert f.evidence == [1, 2] and f.windows_error == 800


def test_sccrp_result_not_authorized() -> None:
    w = Wire().handshake().ctl("client", sccrq()).ctl("server", sccrp(result=4))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["control-refused"]
    f = finding(t, "control-refused")
    assert "Requester not authorized (4)" in f.detail and f.windows_error == 619
    assert f.evidence == [4, 5]
    assert "access" in f.hint


def test_sccrp_general_error_names_the_error_code() -> None:
    w = Wire().handshake().ctl("client", sccrq()).ctl("server", sccrp(result=2, error=4))
    f = finding(run_frames(w.frames).tunnels[0], "control-refused")
    assert "General error (2)" in f.detail and "No-Resource (4)" in f.detail


def test_sccrq_answered_by_fin() -> None:
    w = Wire().handshake().ctl("client", sccrq()).tcp("server", FIN | ACK)
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["control-refused"]
    assert "never answered" in finding(t, "control-refused").title


def test_sccrq_unanswered_until_the_control_timeout() -> None:
    w = Wire().handshake().ctl("client", sccrq())
    res = run_frames(w.frames, DiagnosisConfig(control_timeout=10.0), clock=True, until=T0 + 15)
    f = finding(res.tunnels[0], "control-refused")
    sent = w.frames[-1][0]
    assert 10 <= f.ts - sent < 11 and f.evidence == [4]


def test_ocrp_busy_is_call_refused() -> None:
    w = Wire().setup(result=4)
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["call-refused"]
    f = finding(t, "call-refused")
    assert "Busy (4)" in f.detail and f.evidence == [6, 7] and f.windows_error == 619


def test_ocrp_general_error_with_cause() -> None:
    w = Wire().handshake().ctl("client", sccrq()).ctl("server", sccrp())
    w.ctl("client", ocrq(w.client_call))
    w.ctl("server", ocrp(w.server_call, w.client_call, result=2, error=4, cause=7))
    f = finding(run_frames(w.frames).tunnels[0], "call-refused")
    assert "General Error (2)" in f.detail and "No-Resource (4)" in f.detail and "cause 7" in f.detail


def _two_clients_behind_one_nat(same_call_id: bool) -> list[tuple[float, str, int, bytes]]:
    a = Wire(client="203.0.113.9", cport=40001, client_call=0x4000, server_call=0)
    b = Wire(client="203.0.113.9", cport=40002, client_call=0x4000 if same_call_id else 0x4001, server_call=128,
             now=T0 + 0.5)
    a.up()
    b.up()
    return sorted(a.frames + b.frames, key=lambda f: f[0])


def test_call_id_collision_behind_one_nat() -> None:
    res = run_frames(_two_clients_behind_one_nat(True))
    assert len(res.tunnels) == 2
    for t in res.tunnels:
        f = finding(t, "call-id-collision")
        assert f.windows_error == 619 and "16384" in f.title
        assert len(f.evidence) == 4  # both calls' Outgoing-Call-Request and -Reply
    first = min(c.ts for c in res.changes if c.finding.code == "call-id-collision")
    ocrqs = sorted(ts for ts, *_ in _two_clients_behind_one_nat(True))
    assert first in ocrqs


def test_distinct_call_ids_do_not_collide() -> None:
    res = run_frames(_two_clients_behind_one_nat(False))
    assert all("call-id-collision" not in codes(t) for t in res.tunnels)


def test_gre_with_an_unannounced_call_id() -> None:
    w = Wire().up()
    w.client_call, real = 0x9999, w.client_call
    w.data("server", 3)
    w.client_call = real
    res = run_frames(w.frames)
    controlled = [t for t in res.tunnels if t.control_seen]
    assert len(controlled) == 1
    f = finding(controlled[0], "call-id-collision")
    assert "39321" in f.title and str(real) in f.title


def test_a_young_call_has_no_error_before_any_timeout() -> None:
    w = Wire().setup()
    res = run_frames(w.frames, clock=True, until=T0 + 20)
    assert errors(res.tunnels[0]) == []
