"""PPP negotiation inside the tunnel: LCP (RFC 1661), authentication (RFC 1334, 1994, 2433, 2759),
CCP/MPPE (RFC 1962, 3078) and IPCP (RFC 1332)."""

from __future__ import annotations

from pptptop.decode.auth import mschap_error_name
from pptptop.diagnose.finding import Severity
from pptptop.diagnose.observe import Term
from pptptop.diagnose.rules.base import NEVER, Case, Hit, Quiet, action, few, frames, quiet, rule, said, wire

PPP_IPCP = 0x8021
ACCOUNT_ERRORS: dict[int, tuple[str, str]] = {
    646: ("Logon outside the allowed hours",
          "The account may not log on at this time (RESTRICTED_LOGON_HOURS): change its logon hours."),
    647: ("Account disabled", "The account is disabled (ACCT_DISABLED): enable it in the user directory."),
    648: ("Password expired",
          "The password has expired (PASSWD_EXPIRED): the client should send MS-CHAP Change-Password "
          "(code 7); otherwise reset the password."),
    649: ("No dial-in permission",
          "The account has no remote-access permission (NO_DIALIN_PERMISSION): allow dial-in for it "
          "(AD 'Network Access Permission' or the NPS policy)."),
    709: ("Error changing the password",
          "Changing the expired password failed (CHANGING_PASSWORD): check the password policy and try again."),
}
AUTH_HINT = ("Check the user name and password. pppd/pptpd read /etc/ppp/chap-secrets (client name and the "
             "server column must match, case-sensitively); on Windows NPS check the account's password and the "
             "network policy.")


def _term_after(c: Case, ts: float) -> Term | None:
    for t in c.obs.terms:
        if t.ref.ts >= ts:
            return t
    return None


#: what each early "no" below depends on: facts filed by these categories of event (observe.py)
_UNTIL_LCP = quiet("lcp")
#: the authentication's outcome (a Failure, a Success after it) is filed by authentication packets alone
_UNTIL_AUTH = quiet("auth")
#: the MPPE agreement is filed by CCP messages
_UNTIL_CCP = quiet("ccp")
_UNTIL_LCP_AUTH = quiet("lcp", "auth", "ipcp", "phase")
#: a rejected address waits for an ending (a terminate, a clear, FIN or RST) as well
_UNTIL_READY = quiet("lcp", "auth", "ipcp", "control", "tcp", "ended")


@rule("lcp-failed", Severity.ERROR, windows_error=734, timed=True,
      unless=("auth-method-mismatch", "gre-blocked", "gre-one-way", "gre-icmp-unreachable", "encryption-mismatch"))
def lcp_failed(c: Case) -> Hit | Quiet | None:
    """LCP never reaches Opened although packets cross (RFC 1661 §4.6), or is terminated before auth."""
    o, cfg = c.obs, c.cfg
    if o.challenge or o.response or o.auth_success:
        return NEVER  # authentication went on, and stays seen: neither question below can be answered yes
    if not o.lcp_open:
        if not o.lcp_any_answer:
            return _UNTIL_LCP  # nothing crosses: a GRE problem, not LCP's
        if o.challenge or o.response or o.auth_success or o.pap_request or o.ipcp_opened or "data" in o.phase_at:
            return _UNTIL_LCP_AUTH  # authentication, NCP or data went on: LCP opened where the capture missed it
        first = min((r.ts for r in o.lcp_first_request.values()), default=c.now)
        term = o.first_term
        if term is None and c.now - first < cfg.negotiation_timeout:
            return None
        naks = o.lcp_nakrej
        what = "; ".join(f"{n.sender} {'Naks' if n.code == 3 else 'Rejects'} {n.what}" for n in naks[:3])
        ending = (f"then the {term.side} ended it ({term.how}{': ' + said(term.reason) if term.reason else ''})"
                  if term else f"no agreement after {c.now - first:.0f} s")
        return Hit("LCP negotiation failed",
                   f"LCP never opened in both directions ({what or 'no Nak/Reject'}); {ending}.",
                   frames([n.ref for n in few(naks, 2)], term.ref if term else None),
                   "The two PPP configurations are incompatible (MRU, ACCM, magic number, multilink, callback…): "
                   "compare the pppd options on both sides (the Nak/Reject names the option).")
    term = o.lcp_term.get("server") or o.lcp_term.get("client")
    auth_started = o.challenge or o.response or o.auth_fail or o.auth_success
    if term is None or auth_started or c.tunnel.auth.method == "none" or "ncp" in o.phase_at:
        return _UNTIL_LCP_AUTH
    return Hit("LCP terminated before authentication",
               f"LCP opened, then the {term.side} sent LCP Terminate-Request {said(term.reason)} before any "
               "authentication packet.",
               frames(o.lcp_acked.values(), term.ref),
               "The side that terminated refused the negotiated link; its pppd log says why.")


@rule("auth-failed", Severity.ERROR, windows_error=691, on=("auth", "lcp"),
      unless=("auth-wrong-password", "auth-server-rejected-good-password"))
def auth_failed(c: Case) -> Hit | Quiet | None:
    """CHAP/MS-CHAP Failure (RFC 1994 §4.2, RFC 2759 §6 E=691), PAP Authenticate-Nak (RFC 1334 §2.2.2)."""
    o, a = c.obs, c.tunnel.auth
    f = o.auth_fail
    if f is None or (o.auth_success is not None and o.auth_success.ts > f.ref.ts):
        return _UNTIL_AUTH
    if f.error in ACCOUNT_ERRORS:
        return _UNTIL_AUTH
    who = f" for user {wire(a.user, 64)}" if a.user else ""
    at = f" at server {wire(a.server_name, 64)}" if a.server_name else ""
    msg = f": {wire(f.message)}" if f.message else ""
    if f.kind == "pap":
        detail = f"PAP Authenticate-Nak{who}{msg}. The password was sent in clear."
    elif f.kind == "eap":
        detail = f"EAP Failure{who}."
    elif f.error is not None:
        retry = {True: " (retry allowed)", False: " (no retry)", None: ""}[f.retry]
        detail = f"{a.method} Failure E={f.error} {mschap_error_name(f.error)}{retry}{who}{at}{msg}."
    else:
        detail = f"CHAP Failure{who}{at}{msg}."
    return Hit("Authentication failed", detail, frames(o.challenge, o.response, f.ref), AUTH_HINT,
               windows_error=f.error if f.error else None)


@rule("auth-account", Severity.ERROR, on=("auth", "lcp"))
def auth_account(c: Case) -> Hit | Quiet | None:
    """MS-CHAP Failure E=646/647/648/649/709: the account, not the password (RFC 2759 §6)."""
    o, a = c.obs, c.tunnel.auth
    f = o.auth_fail
    if f is None or f.error not in ACCOUNT_ERRORS or (o.auth_success is not None and o.auth_success.ts > f.ref.ts):
        return _UNTIL_AUTH
    title, hint = ACCOUNT_ERRORS[f.error]
    who = f" for user {wire(a.user, 64)}" if a.user else ""
    return Hit(title, f"MS-CHAP Failure E={f.error} {mschap_error_name(f.error)}{who}"
               + (f": {wire(f.message)}" if f.message else "") + ".",
               frames(o.response, f.ref), hint, windows_error=f.error)


@rule("auth-method-mismatch", Severity.ERROR, windows_error=812, timed=True)
def auth_method_mismatch(c: Case) -> Hit | Quiet | None:
    """No authentication method both sides take (RFC 1661 §6.2 Authentication-Protocol): the peer Naks or
    Rejects the authenticator's method until LCP gives up; or the authenticator drops the option, LCP opens
    without it, and the authenticator ends the link before any authentication or NCP packet (pppd:
    "peer refused to authenticate")."""
    o, cfg = c.obs, c.cfg
    naks = o.auth_nakrej
    if not naks:
        return _UNTIL_LCP  # Naks and Rejects of the method are LCP's
    last = naks[-1]
    peer = "server" if last.sender == "client" else "client"  # the authenticator
    dropped = None
    if o.lcp_open:
        acked = o.lcp_acked.get(peer)
        if (acked is None or acked.ts < last.ref.ts or peer in o.auth_asked or o.auth_agreed is not None
                or o.challenge or o.response or o.auth_fail or o.auth_success or "ncp" in o.phase_at):
            return None  # the peer took another method, or was let in without one
        dropped = acked
    term = _term_after(c, last.ref.ts if dropped is None else dropped.ts)
    since = naks[0].ref.ts if dropped is None else dropped.ts
    if term is None and (dropped is not None or len(naks) < cfg.lcp_max_failure) and \
            c.now - since < cfg.negotiation_timeout:
        return None
    asked = ", ".join(dict.fromkeys(n.asked for n in naks if n.asked)) or "authentication"
    answers = []
    if any(n.rejected for n in naks):
        answers.append("rejects authentication altogether (Configure-Reject)")
    offers = ", ".join(dict.fromkeys(n.offered for n in naks if not n.rejected and n.offered))
    if offers:
        answers.append(f"Naks it and offers {offers}")
    elif any(not n.rejected for n in naks):
        answers.append("Naks it")
    times = f", {len(naks)} times" if len(naks) > 1 else ""
    detail = f"The {peer} asks for {asked}; the {last.sender} {' and '.join(answers)}{times}."
    if dropped is not None:
        detail += (f" The {peer}'s next Configure-Request asks for no authentication and LCP opens without it, "
                   "before any authentication or NCP packet")
        detail += f"; then the {term.side} ends the link: {action(term)}." if term else \
            f"; nothing follows for {c.now - dropped.ts:.0f} s."
    elif term is not None:
        detail += f" Then the {term.side} ends the link: {action(term)}."
    else:
        detail += f" LCP has not opened {c.now - naks[0].ref.ts:.0f} s later."
    return Hit("No common authentication method", detail,
               frames([n.ref for n in few(naks, 2)], dropped, term.ref if term else None),
               "Enable a method both sides allow: MS-CHAPv2 on the client (Windows: Security tab, 'Allow these "
               "protocols') and on the server (pppd require-mschap-v2, no refuse-mschap-v2), or an NPS policy "
               "that permits it.")


@rule("encryption-mismatch", Severity.ERROR, windows_error=742, on=("tcp", "control", "lcp", "ccp"))
def encryption_mismatch(c: Case) -> Hit | Quiet | None:
    """MPPE is refused or no common strength exists, and the link is torn down (RFC 3078 §2.1)."""
    o, t = c.obs, c.tunnel
    if t.ccp.mppe:
        return _UNTIL_CCP
    rej = o.ccp_reject
    if rej is not None:
        ref, refuser = rej
        term = _term_after(c, ref.ts)
        if term is None:
            return None
        wanter = "server" if refuser == "client" else "client"
        offer = o.ccp_first.get(wanter)
        told = f" ({said(term.reason)})" if term.reason else ""
        return Hit("Encryption refused: MPPE rejected",
                   f"The {wanter} requires MPPE"
                   + (f" ({offer.text})" if offer is not None and offer.bits else "")
                   + f"; the {refuser} Configure-Rejects it; the {term.side} then ends the link"
                   + f" ({term.how}){told}.",
                   frames(offer.ref if offer else None, ref, term.ref),
                   "Align the encryption settings: enable MPPE-128 on the "
                   f"{refuser} (pppd: require-mppe-128, no 'nomppe'; Windows: Data encryption 'Require' or "
                   "'Optional') and make sure both kernels have ppp_mppe.",
                   windows_error=741 if refuser == "client" else 742)
    for nak in o.ccp_naks:
        if nak.bits is None:
            continue
        asker = "server" if nak.sender == "client" else "client"
        req = o.ccp_last.get(asker)
        term = _term_after(c, nak.ref.ts)
        if req is None or req.bits is None or term is None:
            continue
        if set(req.bits.strengths) & set(nak.bits.strengths) and req.bits.stateless == nak.bits.stateless:
            continue
        if not set(req.bits.strengths) & set(nak.bits.strengths):
            what = (f"{'/'.join(map(str, req.bits.strengths)) or 'no'}-bit keys, the {nak.sender} only "
                    f"{'/'.join(map(str, nak.bits.strengths)) or 'none'}")
        else:
            what = (f"{'stateless' if req.bits.stateless else 'stateful'} MPPE, the {nak.sender} "
                    f"{'stateless' if nak.bits.stateless else 'stateful'} only")
        return Hit("No common MPPE setting",
                   f"The {asker} asks for {what} ({req.text} Nak'd to {nak.text}); the {term.side} then ends the "
                   f"link ({term.how}{': ' + said(term.reason) if term.reason else ''}).",
                   frames(req.ref, nak.ref, term.ref),
                   "Align require-mppe-128/40 and the stateless setting (H bit) on both sides.",
                   windows_error=742 if nak.sender == "server" else 741)
    if not t.ccp_seen:
        return None  # a Terminate naming MPPE says nothing when the capture missed the CCP negotiation
    for term in [*o.terms, *o.ccp_term.values()]:
        if term.how in ("lcp-terminate", "ccp-terminate") and "mppe" in term.reason.lower():
            return Hit("Encryption not available",
                       f"The {term.side} ends the link: {said(term.reason)}.",
                       frames([x.ref for x in o.ccp_first.values()], term.ref),
                       "The side that terminated requires MPPE but cannot use it: load the ppp_mppe kernel module "
                       "or align require-mppe on both sides.",
                       windows_error=734)
    return None


@rule("ncp-failed", Severity.ERROR, windows_error=720, timed=True,
      unless=("encryption-mismatch", "echo-timeout", "gre-one-way", "auth-failed", "auth-account",
              "auth-method-mismatch"))
def ncp_failed(c: Case) -> Hit | Quiet | None:
    """IPCP never opens: Protocol-Reject, address rejected, Nak loop, terminated, or timed out (RFC 1332)."""
    o, t, cfg = c.obs, c.tunnel, c.cfg
    if "client" in o.ipcp_opened and "server" in o.ipcp_opened:
        return NEVER  # opened stays opened
    for ref, side, proto in o.protocol_rejects:
        if proto == PPP_IPCP:
            return Hit("IPCP refused by the peer",
                       f"The {side} sent LCP Protocol-Reject for IPCP: it does not route IPv4 over this link.",
                       frames(ref), "Enable TCP/IPv4 for remote access on the server (Windows RAS) or IP in pppd.",
                       windows_error=733)
    addr_rej = [r for r in o.ipcp_rejects if "IP Address" in r.what]
    if addr_rej:
        r = addr_rej[0]
        term = _term_after(c, r.ref.ts)
        if term is not None or len(addr_rej) >= cfg.lcp_max_failure:
            return Hit("IP address rejected",
                       f"The {r.sender} Configure-Rejects the IP-Address option ({r.what}).",
                       frames(r.ref, term.ref if term else None),
                       "The server will not accept or assign this address: check its address pool and whether "
                       "the client asks for a static address.", windows_error=735)
    if o.ipcp_nak_count >= cfg.lcp_max_failure:
        naks = o.ipcp_naks
        return Hit("IPCP Nak loop: no address agreed",
                   f"{o.ipcp_nak_count} IPCP Configure-Naks and no agreement "
                   f"(last: {naks[-1].asked or '-'} Nak'd to {naks[-1].offered or '-'}).",
                   frames([n.ref for n in few(naks, 2)]),
                   "The two sides insist on different addresses: check the server's remoteip pool / DHCP "
                   "relay and the client's static address.", windows_error=735)
    term = o.ipcp_term.get("server") or o.ipcp_term.get("client")
    if term is not None and not o.ipcp_opened:
        return Hit("IPCP terminated before it opened",
                   f"The {term.side} sent IPCP Terminate-Request {said(term.reason)} before any address was "
                   "agreed.", frames(term.ref), "The server could not configure IPv4 for the link: see its log.")
    ready = o.auth_success if o.auth_success is not None else (
        next(iter(o.lcp_acked.values())) if o.lcp_open and t.auth.method == "none" else None)
    if ready is None:
        return _UNTIL_READY
    end = o.end_ref()
    if end is not None and end.ts >= ready.ts:
        ending = "the tunnel ended before any address was agreed"
    elif c.now - ready.ts >= cfg.negotiation_timeout:
        ending = f"no address agreed {c.now - ready.ts:.0f} s after authentication"
    else:
        return quiet(*_UNTIL_READY.wake, until=ready.ts + cfg.negotiation_timeout)
    sent = o.ipcp_unanswered["client"] or o.ipcp_unanswered["server"]
    up = "Authentication succeeded" if o.auth_success is not None else "LCP opened without authentication"
    return Hit("NCP failed: no IP address", f"{up}, but IPCP never opened: {ending}.",
               frames(ready, few(sent, 2), end),
               "The server never assigned an address: check its remoteip pool (pptpd.conf) or DHCP relay, "
               "and that IPv4 is enabled for remote access.")
