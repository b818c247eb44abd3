"""Events that look alarming in a packet list but are normal: said so, so nobody chases them."""

from __future__ import annotations

from pptptop.decode.ppp import short_name
from pptptop.diagnose.finding import Severity
from pptptop.diagnose.rules.base import Case, Hit, Quiet, action, frames, quiet, rule

PPP_IPCP = 0x8021
PPP_IPV6CP = 0x8057
#: the ICMP errors are filed by ICMP events alone (observe.py)
_UNTIL_ICMP = quiet("icmp")


@rule("ipv6cp-rejected", Severity.INFO, on=("lcp",))
def ipv6cp_rejected(c: Case) -> Hit | None:
    """LCP Protocol-Reject of IPV6CP (RFC 1661 §5.7): the peer does not run IPv6 over PPP."""
    rejects = [(ref, side) for ref, side, proto in c.obs.protocol_rejects if proto == PPP_IPV6CP]
    if not rejects:
        return None
    ref, side = rejects[0]
    return Hit("IPv6CP rejected (normal)",
               f"The {side} sent LCP Protocol-Reject for IPV6CP: it does not run IPv6 over this link. "
               "IPv4 is unaffected.", frames(ref))


@rule("protocol-rejected", Severity.INFO, on=("lcp",))
def protocol_rejected(c: Case) -> Hit | None:
    """LCP Protocol-Reject of another optional protocol (RFC 1661 §5.7), e.g. CCP or CDP."""
    rejects = [(ref, side, p) for ref, side, p in c.obs.protocol_rejects if p not in (PPP_IPCP, PPP_IPV6CP)]
    if not rejects:
        return None
    names = ", ".join(dict.fromkeys(f"{short_name(p)} (0x{p:04x})" for _, _, p in rejects))
    return Hit("Optional protocol rejected (normal)",
               f"LCP Protocol-Reject for {names}: the {rejects[0][1]} does not implement it; the link goes on "
               "without it.", frames([r for r, _, _ in rejects[:3]]))


@rule("ccp-nak-round", Severity.INFO, on=("ccp",))
def ccp_nak_round(c: Case) -> Hit | None:
    """A CCP Configure-Nak followed by agreement (RFC 1661 §5.3): negotiation working as designed."""
    o = c.obs
    if not o.ccp_naks or len(o.ccp_acked) < 2:
        return None
    nak = o.ccp_naks[0]
    return Hit("CCP Nak round before agreement (normal)",
               f"The {nak.sender} Nak'd a CCP request ({nak.text}) and both sides then agreed.",
               frames(nak.ref, [a.ref for a in o.ccp_acked.values()]))


@rule("ipcp-address-assigned", Severity.INFO, on=("ipcp",))
def ipcp_address_assigned(c: Case) -> Hit | None:
    """IPCP Nak of 0.0.0.0 with an address (RFC 1332 §3.3): how a server hands out the client's address."""
    o = c.obs
    for nak in o.ipcp_naks:
        asker = "client" if nak.sender == "server" else "server"
        if nak.asked in (None, "0.0.0.0") and nak.offered and asker in o.ipcp_opened:
            return Hit("Address assigned by IPCP Nak (normal)",
                       f"The {asker} asked for {nak.asked or 'no address'} and the {nak.sender}'s Configure-Nak "
                       f"assigned {nak.offered}, which the {asker} then used.",
                       frames(nak.ref, o.ipcp_opened[asker]))
    return None


@rule("teardown-icmp", Severity.INFO, on=("icmp", "tcp", "control", "lcp"))
def teardown_icmp(c: Case) -> Hit | Quiet | None:
    """ICMP errors for GRE or TCP still in flight while the session ends (track.icmp.late): a teardown race."""
    o = c.obs
    late = [i for i in o.icmp if i.late]
    if not late:
        return _UNTIL_ICMP  # the ending it names matters once a late error is there
    first, term = late[0], o.first_term
    began = (f"the {term.side} began to end the session ({action(term)}, frame {term.ref.frame})"
             if term is not None and term.ref.frame is not None else "the session began to end")
    more = f" ({len(late)} such errors)" if len(late) > 1 else ""
    return Hit("ICMP error during the teardown (normal)",
               f"After {began}, a late packet was answered with {first.text}{more}.",
               frames(term.ref if term is not None else None, first.quoted, [i.ref for i in late[:3]]),
               "Nothing to fix: a peer that has closed its GRE socket, or a NAT whose PPTP helper dropped the "
               "call's mapping at the disconnect, answers the packets still in flight with ICMP.")
