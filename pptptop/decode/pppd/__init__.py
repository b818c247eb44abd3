"""pppd 2.4.9's debug-log rendering of a PPP frame: ``[LCP ConfReq id=0x1 <mru 1400> …]``.

What pppd writes after ``sent``/``rcvd`` with the ``debug`` option, so a
capture can be read side by side with a pppd log. Each printer follows the
behaviour of pppd's own (utils.c format_packet and print_string, lcp.c
lcp_printpkt, upap.c, chap-new.c, ipcp.c, ipv6cp.c, ccp.c, cbcp.c, eap.c),
option by option, quirks included: an option pppd does not know, or whose
length it does not accept, is printed as hex octets (``< 17 04 00 01>``);
CCP prints a Terminate reason without a leading space; LCP cuts trailing
octets after 32 with `` ...``. pppd always logs the frame with its
Address/Control and two-octet Protocol, so ACFC/PFC make no difference.
Where pppd would read past the end of a malformed packet, zeros are read.
pppd's 1024-octet log line limit is not applied.
"""

from __future__ import annotations

from pptptop.decode.ppp import PppFrame, PppProtocol
from pptptop.decode.pppd.auth import cbcp, chap, eap, pap
from pptptop.decode.pppd.control import ccp, ipcp, ipv6cp, lcp
from pptptop.decode.pppd.text import Out, Printer, hexb

__all__ = ["format_pppd", "format_pppd_packet"]


def _ecp(raw: bytes, out: Out, secrets: bool) -> int:
    """ecp.c ecp_printpkt prints nothing and consumes nothing."""
    return 0


# pppd's protocols[] table (main.c), in its order: protocol -> (name, printer).
_PRINTERS: dict[int, tuple[str, Printer]] = {
    PppProtocol.LCP: ("LCP", lcp),
    PppProtocol.PAP: ("PAP", pap),
    PppProtocol.CHAP: ("CHAP", chap),
    PppProtocol.CBCP: ("CBCP", cbcp),
    PppProtocol.IPCP: ("IPCP", ipcp),
    PppProtocol.IPV6CP: ("IPV6CP", ipv6cp),
    PppProtocol.CCP: ("CCP", ccp),
    PppProtocol.ECP: ("ECP", _ecp),
    PppProtocol.EAP: ("EAP", eap),
}
# Data protocols named after their control protocol (protocol & ~0x8000).
_DATA_NAMES: dict[int, str] = {0x0021: "IP", 0x0057: "IPV6", 0x00FD: "Compressed", 0x0053: "Encrypted"}


def format_pppd_packet(protocol: int, info: bytes, *, show_secrets: bool = False) -> str:
    """pppd's rendering of a ``protocol`` frame with Information field ``info`` (utils.c format_packet)."""
    out: Out = []
    rest = info
    entry = _PRINTERS.get(protocol)
    if entry is not None:
        name, printer = entry
        out.append(f"[{name}")
        consumed = printer(info, out, show_secrets)
        out.append("]")
        rest = info[consumed:] if consumed >= 0 else info
    elif protocol in _DATA_NAMES:
        out.append(f"[{_DATA_NAMES[protocol]} data]")
        out.append(hexb(info[:8]) + " ..." if len(info) > 8 else hexb(info))
        rest = b""
    else:
        out.append(f"[proto=0x{protocol:x}]")
    out.append(hexb(rest[:32]) + " ..." if len(rest) > 32 else hexb(rest))
    return "".join(out)


def format_pppd(frame: PppFrame, *, show_secrets: bool = False) -> str:
    """pppd 2.4.9's debug-log rendering of ``frame``, e.g. ``[LCP EchoReq id=0x0 magic=0x683daab]``.

    The PAP password is ``<hidden>`` (pppd's default) unless ``show_secrets``.
    """
    return format_pppd_packet(frame.protocol, frame.info, show_secrets=show_secrets)
