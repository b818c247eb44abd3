"""pppd's printers of the RFC 1661 §5 control protocols: lcp.c, ipcp.c, ipv6cp.c, ccp.c ``*_printpkt``.

LCP options are rendered from what :mod:`pptptop.decode.lcp` decodes (one table, keyed by
:class:`LcpOption`); what pppd does not print, or whose length it does not accept, stays hex octets.
"""

from __future__ import annotations

from collections.abc import Callable

from pptptop.decode.ccp import MppeBits
from pptptop.decode.lcp import (
    AuthProtocol,
    Callback,
    ControlCode,
    EndpointDiscriminator,
    LcpOption,
    QualityProtocol,
    decode_lcp_option_value,
)
from pptptop.decode.ppp import PppProtocol
from pptptop.decode.pppd.text import Buf, Out, header, ip, print_string

FSM_NAMES: dict[int, str] = {1: "ConfReq", 2: "ConfAck", 3: "ConfNak", 4: "ConfRej",
                              5: "TermReq", 6: "TermAck", 7: "CodeRej"}
LCP_NAMES: dict[int, str] = {**FSM_NAMES, 8: "ProtRej", 9: "EchoReq", 10: "EchoRep",
                              11: "DiscReq", 12: "Ident", 13: "TimeRem"}
CCP_NAMES: dict[int, str] = {**FSM_NAMES, 14: "ResetReq", 15: "ResetAck"}

_ENDP_CLASSES = ("null", "local", "IP", "MAC", "magic", "phone")
_MAX_ENDP_LEN = 20


def _epdisc(klass: int, value: bytes) -> str:
    """multilink.c epdisc_to_str."""
    if klass == 0 and not value:
        return "null"
    if klass == 2 and len(value) == 4:
        return "IP:" + ip(int.from_bytes(value, "big"))
    sep2 = "."
    mask = 0
    if klass == 3 and len(value) == 6:
        sep2 = ":"
    elif klass == 4 and len(value) % 4 == 0:
        mask = 3
    text = _ENDP_CLASSES[klass] if klass < len(_ENDP_CLASSES) else str(klass)
    sep = ":"
    for i, x in enumerate(value[:_MAX_ENDP_LEN]):
        if (i & mask) == 0:
            text += sep
            sep = sep2
        text += f"{x:02x}"
    return text


#: What pppd prints for a decoded LCP option value, and how many data octets that covers.
_Shown = tuple[str, int] | None


def _auth(v: object, data: bytes) -> _Shown:
    if not isinstance(v, AuthProtocol):
        return None
    # a CHAP Algorithm pppd does not name is left to the trailing hex octets
    named = v.algorithm is not None and v.pppd != "chap"
    return f"auth {v.pppd}", 3 if named else 2


def _quality(v: object, data: bytes) -> _Shown:
    if not isinstance(v, QualityProtocol):
        return None
    return ("quality lqr" if v.protocol == PppProtocol.LQR else f"quality 0x{v.protocol:x}"), 2


def _callback(v: object, data: bytes) -> _Shown:
    if not isinstance(v, Callback):
        return None
    return ("callback CBCP" if v.operation == _CALLBACK_CBCP else f"callback 0x{v.operation:x}"), 1


def _endpoint(v: object, data: bytes) -> _Shown:
    if not isinstance(v, EndpointDiscriminator):
        return None
    address = v.address[:_MAX_ENDP_LEN]
    return f"endpoint [{_epdisc(v.klass, address)}]", 1 + len(address)


def _number(fmt: str, size: int) -> Callable[[object, bytes], _Shown]:
    def show(v: object, data: bytes) -> _Shown:
        return (fmt.format(v), size) if isinstance(v, int) and len(data) == size else None
    return show


def _flag(name: str) -> Callable[[object, bytes], _Shown]:
    def show(v: object, data: bytes) -> _Shown:
        return (name, 0) if not data else None
    return show


_CALLBACK_CBCP = 6  # RFC 1570 §2.3 operation 6: Microsoft's Callback Control Protocol

#: lcp.c lcp_printpkt, option by option, from the values :func:`decode_lcp_option_value` gives; an
#: option missing here, or whose value pppd would not accept, is printed as hex octets.
_LCP_OPTIONS: dict[int, Callable[[object, bytes], _Shown]] = {
    LcpOption.MRU: _number("mru {}", 2),
    LcpOption.ACCM: _number("asyncmap 0x{:x}", 4),
    LcpOption.AUTH_PROTOCOL: _auth,
    LcpOption.QUALITY_PROTOCOL: _quality,
    LcpOption.CALLBACK: _callback,
    LcpOption.MAGIC_NUMBER: _number("magic 0x{:x}", 4),
    LcpOption.PFC: _flag("pcomp"),
    LcpOption.ACFC: _flag("accomp"),
    LcpOption.MRRU: _number("mrru {}", 2),
    LcpOption.SHORT_SEQUENCE: _flag("ssnhf"),
    LcpOption.ENDPOINT_DISCRIMINATOR: _endpoint,
}


def _lcp_option(b: Buf, p: int, otype: int, olen: int, optend: int, out: Out) -> int:
    """One option of lcp.c lcp_printpkt; returns the position after what it printed."""
    show = _LCP_OPTIONS.get(otype)
    if show is None:
        return p
    data = b.span(p + 2, olen - 2)
    shown = show(decode_lcp_option_value(otype, data), data)
    if shown is None:
        return p
    text, used = shown
    out.append(text)
    return p + 2 + used


def _options(b: Buf, p: int, ln: int, out: Out,
             one: Callable[[Buf, int, int, int, int, Out], int]) -> tuple[int, int]:
    """The ConfReq/Ack/Nak/Rej option loop common to lcp.c, ipcp.c, ipv6cp.c and ccp.c."""
    while ln >= 2:
        otype = b[p]
        olen = b[p + 1]
        if olen < 2 or olen > ln:
            break
        out.append(" <")
        ln -= olen
        optend = p + olen
        p = one(b, p, otype, olen, optend, out)
        while p < optend:
            out.append(f" {b[p]:02x}")
            p += 1
        out.append(">")
    return p, ln


def _term(b: Buf, p: int, ln: int, out: Out, space: bool = True) -> tuple[int, int]:
    if ln > 0 and 0x20 <= b[p] < 0x7F:
        out.append((" " if space else "") + print_string(b.span(p, ln)))
        return p + ln, 0
    return p, ln


def lcp(raw: bytes, out: Out, secrets: bool) -> int:
    b = Buf(raw)
    head = header(b, out, LCP_NAMES)
    if head is None:
        return 0
    code, length = head
    p, ln = 4, length - 4
    if ControlCode.CONFIGURE_REQUEST <= code <= ControlCode.CONFIGURE_REJECT:
        p, ln = _options(b, p, ln, out, _lcp_option)
    elif code in (ControlCode.TERMINATE_REQUEST, ControlCode.TERMINATE_ACK):
        p, ln = _term(b, p, ln, out)
    elif code in (ControlCode.ECHO_REQUEST, ControlCode.ECHO_REPLY, ControlCode.DISCARD_REQUEST):
        if ln >= 4:
            out.append(f" magic=0x{b.long(p):x}")
            p += 4
            ln -= 4
    elif code in (ControlCode.IDENTIFICATION, ControlCode.TIME_REMAINING):
        if ln >= 4:
            out.append(f" magic=0x{b.long(p):x}")
            p += 4
            ln -= 4
        stop = False
        if code == ControlCode.TIME_REMAINING:
            if ln < 4:
                stop = True
            else:
                out.append(f" seconds={b.long(p)}")
                p += 4
                ln -= 4
        if not stop and ln > 0:
            out.append(" " + print_string(b.span(p, ln)))
            p += ln
            ln = 0
    i = 0
    while i < ln and i < 32:
        out.append(f" {b[p]:02x}")
        p += 1
        i += 1
    if i < ln:
        out.append(" ...")
        p += ln - i
    return p


def _ipcp_option(b: Buf, p: int, otype: int, olen: int, optend: int, out: Out) -> int:
    """One option of ipcp.c ipcp_printpkt."""
    if otype == 1 and olen == 10:
        out.append(f"addrs {ip(b.long(p + 2))} {ip(b.long(p + 6))}")
        p += 10
    elif otype == 2 and olen >= 4:
        proto = b.short(p + 2)
        p += 4
        out.append("compress " + {0x2D: "VJ", 0x37: "old-VJ"}.get(proto, f"0x{proto:x}"))
    elif otype == 3 and olen == 6:
        out.append(f"addr {ip(b.long(p + 2))}")
        p += 6
    elif otype in (129, 131):
        out.append(f"ms-dns{1 if otype == 129 else 2} {ip(b.long(p + 2))}")
        p += 6
    elif otype in (130, 132):
        out.append(f"ms-wins {ip(b.long(p + 2))}")
        p += 6
    return p


def _ipv6cp_option(b: Buf, p: int, otype: int, olen: int, optend: int, out: Out) -> int:
    """One option of ipv6cp.c ipv6cp_printpkt."""
    if otype == 2 and olen >= 4:
        out.append(f"compress 0x{b.short(p + 2):x}")
        p += 4
    elif otype == 1 and olen == 10:
        h = b.span(p + 2, 8).hex()
        out.append(f"addr fe80::{h[0:4]}:{h[4:8]}:{h[8:12]}:{h[12:16]}")
        p += 10
    return p


def _ncp(raw: bytes, out: Out, one: Callable[[Buf, int, int, int, int, Out], int]) -> int:
    """ipcp.c / ipv6cp.c printpkt: codes 1–7 only, all trailing octets in hex."""
    b = Buf(raw)
    head = header(b, out, FSM_NAMES)
    if head is None:
        return 0
    code, length = head
    p, ln = 4, length - 4
    if 1 <= code <= 4:
        p, ln = _options(b, p, ln, out, one)
    elif code in (5, 6):
        p, ln = _term(b, p, ln, out)
    for _ in range(ln):
        out.append(f" {b[p]:02x}")
        p += 1
    return p


def ipcp(raw: bytes, out: Out, secrets: bool) -> int:
    return _ncp(raw, out, _ipcp_option)


def ipv6cp(raw: bytes, out: Out, secrets: bool) -> int:
    return _ncp(raw, out, _ipv6cp_option)


def _mppe_text(b: Buf, p: int) -> str:
    """ccp.c: ``mppe +H -M +S -L -D -C`` and `` +U (xx xx xx xx)`` for bits RFC 3078 lacks."""
    return "mppe " + MppeBits(b.long(p)).pppd()


def _ccp_option(b: Buf, p: int, otype: int, olen: int, optend: int, out: Out) -> int:
    """One option of ccp.c ccp_printpkt."""
    if otype == 18 and olen >= 6:
        out.append(_mppe_text(b, p + 2))
        p += 6
    elif otype in (26, 24) and olen >= 4:
        v = b[p + 2]
        text = f"deflate{'(old#)' if otype == 24 else ''} {(v >> 4) + 8}"
        if v & 0x0F != 8:
            text += f" method {v & 0x0F}"
        if b[p + 3] != 0:
            text += f" check {b[p + 3]}"
        out.append(text)
        p += 4
    elif otype == 21 and olen >= 3:
        v = b[p + 2]
        out.append(f"bsd v{v >> 5} {v & 0x1F}")
        p += 3
    elif otype in (1, 2) and olen >= 2:
        out.append(f"predictor {otype}")
        p += 2
    return p


def ccp(raw: bytes, out: Out, secrets: bool) -> int:
    b = Buf(raw)
    head = header(b, out, CCP_NAMES)
    if head is None:
        return 0
    code, length = head
    p, ln = 4, length - 4
    if 1 <= code <= 4:
        p, ln = _options(b, p, ln, out, _ccp_option)
    elif code in (5, 6):
        p, ln = _term(b, p, ln, out, space=False)
    for _ in range(ln):
        out.append(f" {b[p]:02x}")
        p += 1
    return p
