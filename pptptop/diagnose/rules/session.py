"""How a session ends: keepalives that die (RFC 1661 §5.8, RFC 2637 §2.5) and who hung up."""

from __future__ import annotations

from pptptop.decode import pptp as P
from pptptop.diagnose.finding import Severity
from pptptop.diagnose.observe import SIDES, EchoTrack, Ref, Term
from pptptop.diagnose.rules.base import NEVER, Case, Hit, Quiet, few, frames, quiet, rule, said
from pptptop.track.model import Direction, PacketKind

#: what pppd says in its LCP Terminate-Request when it is told to hang up (pppd 2.4.9 auth.c, ccp.c)
PPPD_HANGUP_TEXTS = frozenset({"MPPE disabled", "User request"})


def _misses(c: Case, track: EchoTrack, side: str, timeout: float) -> tuple[list[Ref], Term | None]:
    """The current run of ``side``'s unanswered requests that are certainly lost, and the ending after them.

    A request is lost once a later one from the same side went out, once the
    tunnel is terminated at least ``echo_grace`` after it, or once ``timeout``
    passed without a reply.
    """
    o = c.obs
    run = track.unanswered[side]
    if o.ended is not None:
        run = [r for r in run if r.ts <= o.ended.ts]
    if not run:
        return [], None
    last = run[-1]
    after = next((t for t in o.terms if t.ref.ts >= last.ts), None)
    now = o.ended.ts if o.ended is not None else c.now
    if (after is not None and after.ref.ts - last.ts >= c.cfg.echo_grace) or now - last.ts >= timeout:
        return run, after
    return run[:-1], after


#: unanswered echo requests are filed by LCP (Echo-Request) and control (PPTP Echo-Request) messages
_UNTIL_ECHO = quiet("lcp", "control")
#: terminating actions (observe.Term) are filed by LCP Terminate-Requests, control messages, FIN and RST
_UNTIL_TERM = quiet("lcp", "control", "tcp")


@rule("echo-timeout", Severity.ERROR, windows_error=807, timed=True)
def echo_timeout(c: Case) -> Hit | Quiet | None:
    """Keepalives go unanswered until the link is declared dead (pppd lcp-echo-failure; RFC 2637 §2.5)."""
    o, cfg = c.obs, c.cfg
    lcp, pptp = o.lcp_echo.unanswered, o.pptp_echo.unanswered
    if not (lcp["client"] or lcp["server"] or pptp["client"] or pptp["server"]):
        return _UNTIL_ECHO  # every request answered: the usual case, at every event of a working tunnel
    for track, timeout, need, name in ((o.lcp_echo, cfg.lcp_echo_timeout, cfg.lcp_echo_failures, "LCP"),
                                       (o.pptp_echo, cfg.pptp_echo_timeout, cfg.lcp_echo_failures, "PPTP")):
        for side in SIDES:
            lost, after = _misses(c, track, side, timeout)
            if not lost:
                continue
            oldest = (o.ended.ts if o.ended is not None else c.now) - lost[0].ts
            if len(lost) < need and not (name == "PPTP" and oldest >= timeout):
                continue
            rtt = f" (RTT before the loss {track.rtt_sum / track.rtt_count:.0f} ms)" if track.rtt_count else ""
            then = f"; then the {after.side} ended it ({after.how})" if after is not None else ""
            span = f" over {lost[-1].ts - lost[0].ts:.0f} s" if len(lost) > 1 else f" for {oldest:.0f} s"
            return Hit(f"{name} keepalives unanswered: link lost",
                       f"The {side}'s {len(lost)} {name} Echo-Request{'s' if len(lost) > 1 else ''}{span} got no "
                       f"Echo-Reply{rtt}{then}.",
                       frames(few(lost, 3), after.ref if after is not None else None),
                       "The path died mid-session: check the NAT's GRE and TCP state timeouts "
                       "(nf_conntrack_gre_timeout_stream, 180 s by default), the firewall, and link stability.")
    return None


def _explain(term: Term, c: Case) -> tuple[str, str]:
    """What the server's first terminating action says, and what to check."""
    o = c.obs
    if term.how == "lcp-terminate":
        told = f"LCP Terminate-Request {said(term.reason)}" if term.reason else "LCP Terminate-Request"
        why = (" (pppd's text when the server's pppd is told to hang up: an administrator, an idle or session "
               "limit, or a restart)" if term.reason in PPPD_HANGUP_TEXTS else "")
        return f"The server ended the PPP session: {told}{why}.", (
            "See the server's pppd log for why it hung up; idle and session limits (pppd idle/maxconnect, "
            "RADIUS Session-Timeout) end sessions this way.")
    if term.how in ("call-disconnect", "stop-control"):
        parts = []
        if o.cdn is not None:
            m = o.cdn[1]
            cause = f", cause {m.cause_code}" if m.cause_code else ""
            parts.append(f"Call-Disconnect-Notify result {P.result_name(m.message_type, m.result_code)} "
                         f"({m.result_code}){cause}")
        if o.stop is not None:
            parts.append(f"Stop-Control-Connection-Request reason {P.reason_name(o.stop[1].reason)} "
                         f"({o.stop[1].reason})")
        return f"The server disconnected the call: {', then '.join(parts)}.", (
            "The PPTP server was stopped or restarted, or an administrator cleared the call: see its log.")
    if term.how == "tcp-fin" and not o.lcp_open and "data" not in o.phase_at and o.ocrp is not None:
        gre = c.tunnel.traffic[Direction.TO_SERVER].packets
        back = c.tunnel.traffic[Direction.TO_CLIENT].packets
        plural = "s" if gre != 1 else ""
        return (f"The server closed TCP 1723 {term.ref.ts - o.ocrp.ts:.2f} s after Outgoing-Call-Reply, without "
                f"a PPTP message, before the PPP link came up ({gre} GRE packet{plural} from the client, "
                f"{back} back)."), (
            "pptpd drops a call this way when its GRE is refused on the way back (an ICMP error from a gateway "
            "without a PPTP helper, or GRE blocked): look at the server side of the path and its log.")
    if term.how == "tcp-fin":
        return ("The server closed TCP 1723 (FIN) without any PPTP message: its PPTP process exited or was "
                "killed."), "Check the server's log: the PPTP daemon crashed, was killed, or restarted."
    return "The server reset TCP 1723 (RST).", "Check the server's log: the PPTP daemon crashed or restarted."


@rule("peer-terminated", Severity.ERROR, windows_error=628, fallback=True)
def peer_terminated(c: Case) -> Hit | Quiet | None:
    """The server ended the session (LCP Terminate, CDN, StopCCRQ, TCP FIN/RST) with no other cause known."""
    o = c.obs
    first = o.first_term
    if first is None:
        return _UNTIL_TERM
    if first.side != "server" or o.refused is not None:
        return NEVER  # the first ending stays the first (and a refusal stays one)
    t = c.tunnel
    if t.joined and first.how in ("tcp-fin", "tcp-rst") and not t.has_stored(PacketKind.CONTROL):
        return None  # the end of a connection the capture met at its end: its messages came before
    detail, hint = _explain(first, c)
    later = [t.ref for t in o.terms[1:4]]
    return Hit("Session ended by the server", detail, frames(first.ref, later), hint,
               windows_error=629 if "data" in o.phase_at else 628)


@rule("client-hangup", Severity.INFO, fallback=True, on=("tcp", "control", "lcp", "phase", "ended"))
def client_hangup(c: Case) -> Hit | Quiet | None:
    """The client ended a working session: a normal hang-up, said so to nobody chases it."""
    o = c.obs
    first = o.first_term
    if first is None:
        return _UNTIL_TERM
    if first.side != "client":
        return NEVER  # the first ending stays the first
    steps = [t for t in o.terms if t.side == "client"][:6]
    names: list[str] = []
    for t in steps:
        name = (f"LCP Terminate-Request {said(t.reason)}" if t.how == "lcp-terminate" and t.reason else
                {"call-clear": "Call-Clear-Request", "tcp-fin": "TCP FIN", "tcp-rst": "TCP RST",
                 "stop-control": "Stop-Control-Connection-Request"}.get(t.how, t.how))
        if names and names[-1].split(" ×")[0] == name:
            n = int(names[-1].split(" ×")[1]) + 1 if " ×" in names[-1] else 2
            names[-1] = f"{name} ×{n}"
        else:
            names.append(name)
    steps_said = ", then ".join(names)
    normal = (f" {said(first.reason)} is what pppd sends when it is told to hang up."
              if first.how == "lcp-terminate" and first.reason in PPPD_HANGUP_TEXTS else "")
    pptp_linux = (" Closing without waiting for Call-Disconnect-Notify is how pptp-linux hangs up."
                  if o.call_clear is not None and o.cdn is None else "")
    phase = (c.tunnel.failed_in or c.tunnel.phase).value
    where = ("" if "data" in o.phase_at or c.tunnel.joined  # met mid-session: whether it was up is not known
             else f" before the session came up (in phase {phase})")
    return Hit("Closed by the client", f"The client hung up{where}: {steps_said}.{normal}{pptp_linux}",
               frames([t.ref for t in steps]))
