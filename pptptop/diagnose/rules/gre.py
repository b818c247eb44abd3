"""The data channel: enhanced GRE, IP protocol 47 (RFC 2637 §4), and what blocks it."""

from __future__ import annotations

import math

from pptptop.diagnose.finding import Severity
from pptptop.diagnose.observe import SIDES, IcmpSeen, other, side_of
from pptptop.diagnose.rules.base import NEVER, Case, Hit, Quiet, action, few, frames, quiet, rule, seconds
from pptptop.track.model import Direction, DirectionStats

IPPROTO_GRE = 47
NAT_HINT = ("Allow IP protocol 47 (GRE) both ways between client and server. On a Linux NAT load "
            "nf_conntrack_pptp and nf_nat_pptp and assign the helper to TCP 1723 (iptables -t raw -A "
            "PREROUTING -p tcp --dport 1723 -j CT --helper pptp, or nft 'ct helper set'), or set "
            "net.netfilter.nf_conntrack_helper=1 on old kernels; make sure FORWARD accepts related GRE.")


_DIRECTION_OF = {"client": Direction.TO_SERVER, "server": Direction.TO_CLIENT}
#: the call's reply is filed by control messages, the control connection by TCP; LCP Acks by LCP messages
_UNTIL_LCP = quiet("lcp")
_UNTIL_CALL = quiet("control", "tcp")


def _dir(sender: str) -> Direction:
    """The direction ``sender``'s packets travel in."""
    return _DIRECTION_OF[sender]


def _last_second(ds: DirectionStats) -> int | None:
    """The last whole capture second in which GRE was seen in this direction."""
    if ds.cur_packets:
        return ds.cur_sec
    return ds.history[-1][0] if ds.history else None


def _packets_after(ds: DirectionStats, sec: int) -> int:
    n = sum(p for s, _, p in ds.history if s > sec)
    return n + (ds.cur_packets if ds.cur_sec > sec else 0)


@rule("gre-blocked", Severity.ERROR, windows_error=806, timed=True, unless=("gre-icmp-unreachable",))
def gre_blocked(c: Case) -> Hit | Quiet | None:
    """The call is up but no LCP Configure-Request is ever answered (RFC 1661 §4.6 restarts run out), or the
    server hangs up before one GRE packet came back: the root cause, the hang-up its symptom."""
    o, t, cfg = c.obs, c.tunnel, c.cfg
    if o.lcp_any_answer:
        return NEVER  # an answer seen stays seen
    if t.control_seen and (o.ocrp is None or o.ocrp_msg is None or o.ocrp_msg.result_code != 1):
        return _UNTIL_CALL
    runs = {s: o.lcp_unanswered[s] for s in SIDES if o.lcp_unanswered[s]}
    if not runs:
        return None
    first = min(r[0].ts for r in runs.values())
    longest = max(runs.values(), key=len)
    end = o.first_term
    gave_up = end is not None and len(longest) >= 2 and longest[-1].ts - longest[0].ts >= 0.9 * cfg.lcp_restart
    silent = [s for s in SIDES if t.traffic[_dir(s)].packets == 0]
    # pptpd drops a call whose GRE is refused within a second (lab s3b): the server's hang-up comes before any
    # LCP restart, and not one GRE packet came back
    hung_up = end is not None and end.side == "server" and bool(silent) and not gave_up
    if not (gave_up or hung_up) and c.now - first < cfg.negotiation_timeout:
        return None
    sent = " and ".join(f"the {s}'s {len(r)} LCP Configure-Request{'s' if len(r) > 1 else ''}" for s, r in runs.items())
    if len(runs) == 1 and silent:
        seen = f" and no GRE at all came from the {silent[0]}: its GRE never arrives here"
    else:
        seen = ": both sides' GRE passes this point but neither reaches the other"
    healthy = (f" The control connection stays healthy ({o.pptp_echo.replies} PPTP echo replies)."
               if o.pptp_echo.replies else "")
    if hung_up and end is not None:
        after = f" {end.ref.ts - o.ocrp.ts:.2f} s after Outgoing-Call-Reply" if o.ocrp is not None else ""
        why = f" The server hung up{after} ({action(end)})."
    else:
        why = f" The {end.side} gave up ({end.how})." if end is not None else ""
    return Hit("GRE blocked: LCP never answered",
               f"Call established, but {sent} {'in' if len(longest) == 1 else 'over'} "
               f"{seconds(first, (end.ref.ts if end else c.now))} got no answer{seen}.{healthy}{why}",
               frames(o.ocrp, *(few(r, 2) for r in runs.values()), end.ref if end else None),
               NAT_HINT + (" If a capture at the server shows no GRE leaving it either, the server's PPP daemon "
                           "did not start: see its log." if hung_up else ""))


@rule("gre-one-way", Severity.ERROR, windows_error=806, timed=True, unless=("echo-timeout", "gre-blocked"))
def gre_one_way(c: Case) -> Hit | Quiet | None:
    """GRE passes in one direction only: one side's packets arrive, the other's never do."""
    o, t, cfg = c.obs, c.tunnel, c.cfg
    if not o.lcp_open:
        acked = o.lcp_acked
        if len(acked) != 1:
            return _UNTIL_LCP  # neither side's request acked yet: only an LCP Ack can start the story below
        for a in SIDES:
            b = other(a)
            ack = acked.get(a)
            if ack is None or b in acked:
                continue
            again = o.lcp_request_after_ack.get(a, [])
            run = o.lcp_unanswered[b]
            resent = len(again) >= 2
            stuck = len(run) >= 2 and c.now - run[-1].ts >= cfg.lcp_restart
            if not resent and not stuck:
                continue
            did = []
            if resent:
                did.append(f"sent its request again {len(again)} times")
            if run:
                did.append(f"never answered the {b}'s {len(run)} Configure-Request{'s' if len(run) > 1 else ''}")
            return Hit(f"GRE passes {a} → {b} only",
                       f"The {b} acknowledged the {a}'s LCP Configure-Request, but the {a} {' and '.join(did)}: "
                       f"GRE from the {b} does not reach the {a}.",
                       frames(ack, few(again, 2), few(run, 2)), NAT_HINT)
        return None
    # LCP stays open, and a side's last second with GRE only moves later: until the first moment one side
    # can have been silent for gre_silence, no packet can make this rule hold (a side yet to send GRE, or
    # a talker yet to send 3 packets, can change without an event: then no sleep)
    until: float | None = math.inf
    for silent in SIDES:
        talker = other(silent)
        ds_silent, ds_talk = t.traffic[_dir(silent)], t.traffic[_dir(talker)]
        last = _last_second(ds_silent)
        if last is None:
            until = None
            continue
        quiet_for = c.now - (last + 1)
        if quiet_for < cfg.gre_silence:
            if until is not None:
                until = min(until, last + 1 + cfg.gre_silence)
            continue
        sent = _packets_after(ds_talk, last)
        if sent < 3:
            until = None
            continue
        unanswered = o.lcp_echo.unanswered[talker]
        return Hit(f"GRE one way only: nothing from the {silent}",
                   f"The {talker} keeps sending GRE but nothing has come from the {silent} for more than "
                   f"{cfg.gre_silence:.0f} s.",
                   frames(o.last_message.get(silent), few(unanswered, 2)),
                   "A NAT or firewall dropped the GRE state for one direction (conntrack GRE timeout, "
                   "nf_conntrack_gre_timeout_stream) or routing is asymmetric: check the path from the "
                   f"{silent}.")
    return None if until is None else quiet(until=until)


def _proto_errors(o_icmp: list[IcmpSeen]) -> list[IcmpSeen]:
    """ICMP errors refusing the tunnel's GRE, but those that race an orderly teardown (IcmpSeen.late)."""
    out = []
    for i in o_icmp:
        if i.inner_protocol != IPPROTO_GRE or i.late:
            continue
        if (i.type == 3 and i.code != 4) or i.type == 1 or (i.type == 4 and i.code == 1):
            out.append(i)
    return out


@rule("gre-icmp-unreachable", Severity.ERROR, windows_error=806, on=("icmp",))
def gre_icmp_unreachable(c: Case) -> Hit | None:
    """An ICMP Destination Unreachable quoting the tunnel's GRE (RFC 792; code 2 = protocol unreachable)."""
    errs = _proto_errors(c.obs.icmp)
    if not errs:
        return None
    i = errs[0]
    sender = side_of(i.direction)
    if i.type == 3 and i.code == 2:
        why = (f"{i.sender} has no forwarding state for this call's GRE and treats it as addressed to itself "
               "(a NAT without the PPTP helper, or a FORWARD rule that drops GRE)")
        hint = NAT_HINT
    elif i.type == 3 and i.code in (9, 10, 13):
        why = f"a firewall at {i.sender} rejects GRE"
        hint = f"Allow IP protocol 47 (GRE) through the firewall at {i.sender}."
    else:
        why = f"{i.sender} cannot deliver it"
        hint = f"Check routing for GRE at {i.sender}."
    return Hit("GRE refused by ICMP",
               f"The {sender}'s GRE is answered with {i.text}: {why}."
               + (f" ({len(errs)} ICMP errors)" if len(errs) > 1 else ""),
               frames(i.quoted, [e.ref for e in errs[:3]]), hint)
