"""Security findings, once per tunnel: weak or absent protection that the capture proves."""

from __future__ import annotations

from pptptop.diagnose.finding import Severity
from pptptop.diagnose.rules.base import Case, Hit, Quiet, frames, quiet, rule, wire

#: how strong an authentication method is, for spotting downgrades (RFC 1334 < 1994 < 2433 < 2759 < 3748)
AUTH_RANK = {"PAP": 0, "CHAP-MD5": 1, "MS-CHAP": 2, "MS-CHAPv2": 3, "EAP": 4}


@rule("pap-cleartext", Severity.WARNING, on=("auth",))
def pap_cleartext(c: Case) -> Hit | None:
    """PAP sends the password in clear (RFC 1334 §2.2.1)."""
    p = c.obs.pap_request
    if p is None:
        return None
    ref, user, password = p
    secret = f" Password: {wire(password, 64)}." if c.show_secrets and password is not None else ""
    return Hit("Password sent in clear (PAP)",
               f"PAP Authenticate-Request for user {wire(user, 64)} carries the password in clear "
               f"(frame {ref.frame}).{secret}", frames(ref),
               "Use MS-CHAPv2 with MPPE at least, better an IPsec or TLS VPN; change this password.")


#: the data phase is filed by PHASE events, the MPPE agreement by CCP messages
_UNTIL_PHASE = quiet("phase")
_UNTIL_CCP = quiet("ccp")
#: a downgrade starts from a Nak or Reject: of the authentication method (LCP's) or of MPPE (CCP's)
_UNTIL_NAK = quiet("lcp", "ccp")


@rule("no-mppe", Severity.WARNING)
def no_mppe(c: Case) -> Hit | Quiet | None:
    """Data flows without MPPE (RFC 3078): everything inside the tunnel is readable."""
    o, t = c.obs, c.tunnel
    if "data" not in o.phase_at:
        return _UNTIL_PHASE
    if t.ccp.mppe:
        return _UNTIL_CCP  # once on, only a CCP message turns MPPE off (the data path only ever turns it on)
    if not t.ccp_seen or not (o.ipcp_opened or t.inner_flows):
        return None
    flows = f" ({len(t.inner_flows)} inner IP flows readable)" if t.inner_flows else ""
    return Hit("No encryption (MPPE off)",
               f"The tunnel carries data without MPPE: the traffic inside is in clear{flows}.",
               frames(o.phase_at.get("data"), o.ipcp_opened.values()),
               "Require MPPE-128 on the server (pppd require-mppe-128) and the client.")


@rule("mppe-weak", Severity.WARNING, on=("ccp",))
def mppe_weak(c: Case) -> Hit | None:
    """MPPE with 40- or 56-bit keys (RFC 3078 §2.1 L and M bits)."""
    t = c.tunnel
    if not t.ccp.mppe or t.ccp.bits not in (40, 56):
        return None
    return Hit(f"Weak encryption: MPPE {t.ccp.bits}-bit",
               f"MPPE runs with {t.ccp.bits}-bit keys, which can be broken by brute force.",
               frames([a.ref for a in c.obs.ccp_acked.values()]), "Require 128-bit MPPE on both sides.")


@rule("mschapv1", Severity.WARNING, on=("auth", "lcp"))
def mschapv1(c: Case) -> Hit | None:
    """MS-CHAPv1 (RFC 2433): DES over the unsalted NT hash, often with an LM response too."""
    o, a = c.obs, c.tunnel.auth
    if a.method != "MS-CHAP" or o.response is None:
        return None
    return Hit("Weak authentication: MS-CHAPv1",
               f"User {wire(a.user, 64)} authenticated with MS-CHAPv1: the captured response is crackable "
               "offline (hashcat -m 5500; --export-hashes writes it).", frames(o.challenge, o.response),
               "Refuse MS-CHAPv1 on both sides (pppd refuse-mschap) and use MS-CHAPv2 or better an IPsec/TLS VPN.")


@rule("mschapv2-crackable", Severity.INFO, on=("auth", "lcp"))
def mschapv2_crackable(c: Case) -> Hit | None:
    """MS-CHAPv2 (RFC 2759) reduces to one DES key: every captured exchange can be cracked offline."""
    o, a = c.obs, c.tunnel.auth
    if a.method != "MS-CHAPv2" or o.challenge is None or o.response is None:
        return None
    return Hit("MS-CHAPv2 exchange crackable offline",
               f"The MS-CHAPv2 challenge and response of user {wire(a.user, 64)} are in this capture: a "
               "dictionary attack (hashcat -m 5500) or the single-DES attack (2^56) recovers the password hash, "
               "and with it the MPPE keys.", frames(o.challenge, o.response),
               "PPTP's protection is only as strong as the password; move to an IPsec or TLS VPN. "
               "--export-hashes FILE writes the exchange for an audit.")


@rule("downgrade", Severity.WARNING, on=("lcp", "ccp", "phase"))
def downgrade(c: Case) -> Hit | Quiet | None:
    """Authentication Nak'd down, or MPPE refused/weakened, and the session went on anyway."""
    o, t = c.obs, c.tunnel
    if not o.auth_nakrej and o.ccp_reject is None and not o.ccp_naks:
        return _UNTIL_NAK
    if o.auth_agreed is not None:
        ref, agreed = o.auth_agreed
        for n in o.auth_nakrej:
            if n.asked and n.offered and AUTH_RANK.get(n.offered, 9) < AUTH_RANK.get(n.asked, -1) and \
                    AUTH_RANK.get(agreed, 9) < AUTH_RANK.get(n.asked, -1):
                return Hit(f"Authentication downgraded to {agreed}",
                           f"The authenticator asked for {n.asked}; the {n.sender} Nak'd it down to {n.offered} "
                           f"and {agreed} was used. A client configured this way, or a man-in-the-middle "
                           "(ettercap pptp_pap/pptp_chapms1) forcing a weaker method.", frames(n.ref, ref),
                           "Refuse weak methods on both sides (pppd refuse-pap refuse-chap refuse-mschap).")
    if o.ccp_reject is not None and "data" in o.phase_at and not t.ccp.mppe:
        ref, side = o.ccp_reject
        return Hit("Encryption stripped: MPPE rejected, session continued",
                   f"The {side} Configure-Rejected MPPE and the session went on unencrypted: a client without "
                   "MPPE, or a man-in-the-middle stripping CCP (ettercap pptp_clear).",
                   frames(ref, o.phase_at.get("data")), "Require MPPE on the server so such a session is refused.")
    for nak in o.ccp_naks:
        asked = o.ccp_first.get("server" if nak.sender == "client" else "client")
        if nak.bits and asked and asked.bits and t.ccp.mppe and t.ccp.bits and \
                max(nak.bits.strengths, default=0) < max(asked.bits.strengths, default=0) and \
                t.ccp.bits < max(asked.bits.strengths, default=0):
            return Hit(f"Encryption downgraded to {t.ccp.bits}-bit",
                       f"The {nak.sender} Nak'd MPPE from {asked.text} down to {nak.text} and {t.ccp.bits}-bit "
                       "keys were used.", frames(asked.ref, nak.ref), "Require 128-bit MPPE on both sides.")
    return None
