"""The control connection: TCP 1723, Start-Control-Connection, Outgoing-Call (RFC 2637 §2.1-2.8)."""

from __future__ import annotations

from pptptop.decode import pptp as P
from pptptop.diagnose.finding import Severity
from pptptop.diagnose.observe import Ref
from pptptop.diagnose.rules.base import NEVER, Case, Hit, Quiet, few, frames, quiet, rule, seconds

T = P.ControlMessageType
IPPROTO_TCP = 6


def _server(c: Case) -> str:
    return f"{c.tunnel.server.ip}:{c.tunnel.server.port or 1723}"


def _server_gone_after(c: Case, ref: Ref) -> Ref | None:
    """The server's FIN or RST after ``ref``, if any."""
    for side_map in (c.obs.fin, c.obs.rst):
        r: Ref | None = side_map.get("server")
        if r is not None and r.ts >= ref.ts:
            return r
    return None


#: a SYN unanswered this long has missed its answer: the initial retransmission timeout of RFC 1122 §4.2.3.1
#: and Windows (Linux retransmits after 1 s, RFC 6298 §2.1)
SYN_RTO = 3.0
#: SYNs that make a provisional verdict: the first one and two retransmissions, all unanswered
SYNS_PROVISIONAL = 3


#: the SYNs, their SYN-ACK and an RST are filed by TCP events, the replies by control messages
_UNTIL_TCP = quiet("tcp")
_UNTIL_CONTROL = quiet("control")


@rule("server-unreachable", Severity.ERROR, windows_error=800, timed=True)
def server_unreachable(c: Case) -> Hit | Quiet | None:
    """SYNs to TCP 1723 unanswered for ``syn_timeout``, or an ICMP error about them (RFC 9293 §3.5).

    Provisional from the second retransmission until ``syn_timeout``; at the end of the input, decided from
    the SYNs seen (a retransmission, or one SYN that waited :data:`SYN_RTO`).
    """
    o = c.obs
    if o.synack is not None or o.refused is not None:
        return NEVER  # answered, or refused: for good
    if not o.syns:
        return _UNTIL_TCP
    icmp = [i for i in o.icmp if i.inner_protocol == IPPROTO_TCP]
    n = len(o.syns)
    first, last = o.syns[0].ts, o.syns[-1].ts
    waited = c.now - first
    plural = "s" if n > 1 else ""
    evidence = frames(few(o.syns), [i.ref for i in icmp[:2]])
    hint = ("Check that the server is up and listening on TCP 1723 (pptpd running), that the address is "
            "right, and that no firewall on the way drops TCP/1723.")
    if icmp:
        detail = (f"Control connection never established: {icmp[0].text} answered the SYN to "
                  f"{_server(c)} ({n} SYN sent).")
    elif waited >= c.cfg.syn_timeout:
        detail = (f"Control connection never established: {n} SYN{plural} to {_server(c)} "
                  f"over {seconds(first, c.now)} got no answer.")
    elif (c.final or c.tunnel.ended) and (n >= 2 or waited >= SYN_RTO):  # the input (or the attempt) is over
        gap = f" for {seconds(first, c.now)}" if n == 1 else f" over {seconds(first, last)}"
        tail = f"; the capture ends {seconds(last, c.now)} after the last" if c.now - last >= 0.05 else ""
        detail = f"Control connection never established: {n} SYN{plural} to {_server(c)}{gap}, no answer{tail}."
    elif n >= SYNS_PROVISIONAL:
        return Hit("Server unreachable on TCP 1723 (provisional)",
                   f"No answer so far: {n} SYNs to {_server(c)} over {seconds(first, last)} got none. A "
                   f"client gives up after {c.cfg.syn_timeout:.0f} s (--syn-timeout): provisional until "
                   f"{seconds(first, first + c.cfg.syn_timeout)} after the first SYN.",
                   evidence, hint, provisional=True)
    else:
        return None
    return Hit("Server unreachable on TCP 1723", detail, evidence, hint)


@rule("server-refused", Severity.ERROR, windows_error=800, on=("tcp",))
def server_refused(c: Case) -> Hit | None:
    """The server answered the SYN with RST: nothing listens on 1723 (RFC 9293 §3.5.2)."""
    o = c.obs
    if o.refused is None:
        return None
    return Hit("Server refused TCP 1723 (RST)",
               f"{_server(c)} answered the SYN with RST: nothing listens on TCP 1723 there, or a firewall "
               "rejects the connection.",
               frames(o.syns[:2], o.refused),
               "Start pptpd (systemctl status pptpd) or open TCP/1723 on the server's firewall.")


_START_HINTS = {
    2: "The server hit an internal error setting up the control connection; see the error code and the "
       "server's log.",
    3: "A control connection from this address already exists on the server (a stale one, or another client "
       "behind the same NAT): close it or wait for it to time out.",
    4: "The server does not accept control connections from this address: check its access rules "
       "(pptpd/tcpwrappers, firewall policy, connection limits).",
    5: "Client and server speak different PPTP protocol versions (RFC 2637 uses 1.0).",
}


@rule("control-refused", Severity.ERROR, windows_error=619, timed=True)
def control_refused(c: Case) -> Hit | Quiet | None:
    """Start-Control-Connection-Reply with Result ≠ 1, or no reply at all (RFC 2637 §2.2)."""
    o = c.obs
    m = o.sccrp_msg
    if o.sccrp is not None and m is not None:
        if m.result_code == 1:
            return _UNTIL_CONTROL
        res = P.result_name(T.START_CONTROL_CONNECTION_REPLY, m.result_code)
        err = f", error {P.error_name(m.error_code)} ({m.error_code})" if m.error_code else ""
        return Hit(f"Server rejected the control connection: {res}",
                   f"Start-Control-Connection-Reply result {res} ({m.result_code}){err}.",
                   frames(o.sccrq, o.sccrp), _START_HINTS.get(m.result_code, "See the server's log."))
    if o.sccrq is None:
        return _UNTIL_CONTROL
    gone = _server_gone_after(c, o.sccrq)
    if gone is None and c.now - o.sccrq.ts < c.cfg.control_timeout:
        return None
    how = ("the server closed the connection" if gone is not None
           else f"nothing came back in {seconds(o.sccrq.ts, c.now)}")
    return Hit("Server never answered Start-Control-Connection-Request",
               f"TCP 1723 is up and the client sent Start-Control-Connection-Request, but {how} without a "
               "Start-Control-Connection-Reply.",
               frames(o.sccrq, gone),
               "The PPTP server process crashed or refused the peer, or something in the path (an ALG) "
               "mangles PPTP: check the server's log and any PPTP helper on the way.")


_CALL_HINTS = {
    2: "The server could not set up the call; see the error code (No-Resource: no free pty, IP address or "
       "connection slot) and the server's log.",
    3: "The server could not start the PPP session for the call (on pptpd: pppd failed to start; see its log).",
    4: "The server has no free call slot: raise its connection limit or free the address pool.",
    5: "The server could not start the PPP session for the call (on pptpd: pppd failed to start; see its log).",
    6: "The server timed out setting up the call.",
    7: "The server's policy refused this call.",
}


@rule("call-refused", Severity.ERROR, windows_error=619, timed=True)
def call_refused(c: Case) -> Hit | Quiet | None:
    """Outgoing-Call-Reply with Result ≠ 1, or no reply at all (RFC 2637 §2.8)."""
    o = c.obs
    m = o.ocrp_msg
    if o.ocrp is not None and m is not None:
        if m.result_code == 1:
            return _UNTIL_CONTROL
        res = P.result_name(m.message_type, m.result_code)
        err = f", error {P.error_name(m.error_code)} ({m.error_code})" if m.error_code else ""
        cause = f", cause {m.cause_code}" if getattr(m, "cause_code", 0) else ""
        return Hit(f"Call refused by the server: {res}",
                   f"{P.message_name(m.message_type)} result {res} ({m.result_code}){err}{cause}.",
                   frames(o.ocrq, o.ocrp), _CALL_HINTS.get(m.result_code, "See the server's log."))
    if o.ocrq is None:
        return _UNTIL_CONTROL
    gone = _server_gone_after(c, o.ocrq)
    if gone is None and c.now - o.ocrq.ts < c.cfg.control_timeout:
        return None
    how = ("the server closed the connection" if gone is not None
           else f"nothing came back in {seconds(o.ocrq.ts, c.now)}")
    return Hit("Server never answered Outgoing-Call-Request",
               f"The control connection is up, but after Outgoing-Call-Request {how} without an "
               "Outgoing-Call-Reply.",
               frames(o.ocrq, gone), "Check the server's log: it failed while setting up the call.")


@rule("call-id-collision", Severity.ERROR, windows_error=619, on=("control",))
def call_id_collision(c: Case) -> Hit | None:
    """Two calls whose GRE cannot be told apart (RFC 2637 §4.1: GRE is demultiplexed by Call ID)."""
    t = c.tunnel
    if c.collisions:
        col = c.collisions[0]
        o = col.tunnel
        return Hit(f"Call ID {t.client.call_id} used by two clients behind {t.client.ip}",
                   f"This call and tunnel {o.id} (TCP port {o.client.port}) both come from {t.client.ip} to "
                   f"{t.server.ip} with PNS call ID {t.client.call_id}: the server's GRE for one of them "
                   "reaches the other.",
                   frames(c.obs.ocrq, c.obs.ocrp, col.obs.ocrq, col.obs.ocrp),
                   "More than one PPTP client is behind this NAT and it does not translate call IDs: load "
                   "the NAT's PPTP helper (nf_conntrack_pptp/nf_nat_pptp with a CT helper rule) or give the "
                   "clients separate public addresses.")
    if c.stray_call_ids and t.client.call_id is not None:
        cid, ref = c.stray_call_ids[0]
        return Hit(f"GRE with call ID {cid} instead of {t.client.call_id}",
                   f"GRE between {t.server.ip} and {t.client.ip} carries call ID {cid}, but the calls set up "
                   f"between them use {t.client.call_id} (client) and {t.server.call_id} (server): the client "
                   "ignores it.",
                   frames(c.obs.ocrq, c.obs.ocrp, ref),
                   "A NAT or ALG rewrites call IDs in one direction only, or another client behind the same "
                   "NAT collided: check the NAT's PPTP helper.")
    return None
