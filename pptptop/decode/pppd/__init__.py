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
from pptptop.decode.ppp import PppFrame, PppProtocol

__all__ = ["format_pppd", "format_pppd_packet"]

_Out = list[str]
_Printer = Callable[[bytes, _Out, bool], int]


class _Buf:
    """Byte access that reads 0 past the end, as pppd's C would read whatever follows."""

    __slots__ = ("b", "n")

    def __init__(self, b: bytes) -> None:
        self.b = b
        self.n = len(b)

    def __getitem__(self, i: int) -> int:
        return self.b[i] if 0 <= i < self.n else 0

    def short(self, i: int) -> int:
        return (self[i] << 8) | self[i + 1]

    def long(self, i: int) -> int:
        return (self[i] << 24) | (self[i + 1] << 16) | (self[i + 2] << 8) | self[i + 3]

    def span(self, i: int, n: int) -> bytes:
        if n <= 0:
            return b""
        chunk = self.b[max(i, 0):max(i + n, 0)] if i < self.n else b""
        return chunk + b"\x00" * (n - len(chunk))


def _print_string(b: bytes) -> str:
    """utils.c print_string: quoted, ``\\"`` and ``\\\\`` escaped, \\n \\r \\t, others as \\ooo octal."""
    out = ['"']
    for c in b:
        if 0x20 <= c <= 0x7E:
            if c in (0x22, 0x5C):
                out.append("\\")
            out.append(chr(c))
        elif c == 0x0A:
            out.append("\\n")
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x09:
            out.append("\\t")
        else:
            out.append(f"\\{c:03o}")
    out.append('"')
    return "".join(out)


def _visible(b: bytes) -> str:
    """``%s`` of a wire string, but with what is not printable ASCII (and the backslash) as print_string's
    ``\\ooo``: pppd would write the octets raw, a terminal must not receive them."""
    return "".join(chr(c) if 0x20 <= c <= 0x7E and c != 0x5C else f"\\{c:03o}" for c in b)


def _hexb(b: bytes) -> str:
    """``%.*B``: hex octets without separators."""
    return b.hex()


def _ip(v: int) -> str:
    return f"{(v >> 24) & 0xFF}.{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}"


def _header(b: _Buf, out: _Out, names: dict[int, str]) -> tuple[int, int] | None:
    """Code/id printing shared by every printer; None when pppd would print nothing (returns 0)."""
    if b.n < 4:
        return None
    code = b[0]
    length = b.short(2)
    if length < 4 or length > b.n:
        return None
    name = names.get(code)
    out.append(f" {name}" if name is not None else f" code=0x{code:x}")
    out.append(f" id=0x{b[1]:x}")
    return code, length


_FSM_NAMES: dict[int, str] = {1: "ConfReq", 2: "ConfAck", 3: "ConfNak", 4: "ConfRej",
                              5: "TermReq", 6: "TermAck", 7: "CodeRej"}
_LCP_NAMES: dict[int, str] = {**_FSM_NAMES, 8: "ProtRej", 9: "EchoReq", 10: "EchoRep",
                              11: "DiscReq", 12: "Ident", 13: "TimeRem"}
_CCP_NAMES: dict[int, str] = {**_FSM_NAMES, 14: "ResetReq", 15: "ResetAck"}

_ENDP_CLASSES = ("null", "local", "IP", "MAC", "magic", "phone")
_MAX_ENDP_LEN = 20


def _epdisc(klass: int, value: bytes) -> str:
    """multilink.c epdisc_to_str."""
    if klass == 0 and not value:
        return "null"
    if klass == 2 and len(value) == 4:
        return "IP:" + _ip(int.from_bytes(value, "big"))
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


def _lcp_option(b: _Buf, p: int, otype: int, olen: int, optend: int, out: _Out) -> int:
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


def _options(b: _Buf, p: int, ln: int, out: _Out,
             one: Callable[[_Buf, int, int, int, int, _Out], int]) -> tuple[int, int]:
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


def _term(b: _Buf, p: int, ln: int, out: _Out, space: bool = True) -> tuple[int, int]:
    if ln > 0 and 0x20 <= b[p] < 0x7F:
        out.append((" " if space else "") + _print_string(b.span(p, ln)))
        return p + ln, 0
    return p, ln


def _lcp(raw: bytes, out: _Out, secrets: bool) -> int:
    b = _Buf(raw)
    head = _header(b, out, _LCP_NAMES)
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
            out.append(" " + _print_string(b.span(p, ln)))
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


def _ipcp_option(b: _Buf, p: int, otype: int, olen: int, optend: int, out: _Out) -> int:
    """One option of ipcp.c ipcp_printpkt."""
    if otype == 1 and olen == 10:
        out.append(f"addrs {_ip(b.long(p + 2))} {_ip(b.long(p + 6))}")
        p += 10
    elif otype == 2 and olen >= 4:
        proto = b.short(p + 2)
        p += 4
        out.append("compress " + {0x2D: "VJ", 0x37: "old-VJ"}.get(proto, f"0x{proto:x}"))
    elif otype == 3 and olen == 6:
        out.append(f"addr {_ip(b.long(p + 2))}")
        p += 6
    elif otype in (129, 131):
        out.append(f"ms-dns{1 if otype == 129 else 2} {_ip(b.long(p + 2))}")
        p += 6
    elif otype in (130, 132):
        out.append(f"ms-wins {_ip(b.long(p + 2))}")
        p += 6
    return p


def _ipv6cp_option(b: _Buf, p: int, otype: int, olen: int, optend: int, out: _Out) -> int:
    """One option of ipv6cp.c ipv6cp_printpkt."""
    if otype == 2 and olen >= 4:
        out.append(f"compress 0x{b.short(p + 2):x}")
        p += 4
    elif otype == 1 and olen == 10:
        h = b.span(p + 2, 8).hex()
        out.append(f"addr fe80::{h[0:4]}:{h[4:8]}:{h[8:12]}:{h[12:16]}")
        p += 10
    return p


def _ncp(raw: bytes, out: _Out, one: Callable[[_Buf, int, int, int, int, _Out], int]) -> int:
    """ipcp.c / ipv6cp.c printpkt: codes 1–7 only, all trailing octets in hex."""
    b = _Buf(raw)
    head = _header(b, out, _FSM_NAMES)
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


def _ipcp(raw: bytes, out: _Out, secrets: bool) -> int:
    return _ncp(raw, out, _ipcp_option)


def _ipv6cp(raw: bytes, out: _Out, secrets: bool) -> int:
    return _ncp(raw, out, _ipv6cp_option)


def _mppe_text(b: _Buf, p: int) -> str:
    """ccp.c: ``mppe +H -M +S -L -D -C`` and `` +U (xx xx xx xx)`` for bits RFC 3078 lacks."""
    return "mppe " + MppeBits(b.long(p)).pppd()


def _ccp_option(b: _Buf, p: int, otype: int, olen: int, optend: int, out: _Out) -> int:
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


def _ccp(raw: bytes, out: _Out, secrets: bool) -> int:
    b = _Buf(raw)
    head = _header(b, out, _CCP_NAMES)
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


def _pap(raw: bytes, out: _Out, secrets: bool) -> int:
    """upap.c upap_printpkt; the password is ``<hidden>`` unless ``secrets`` (pppd's hide-password)."""
    b = _Buf(raw)
    head = _header(b, out, {1: "AuthReq", 2: "AuthAck", 3: "AuthNak"})
    if head is None:
        return 0
    code, length = head
    p, ln = 4, length - 4
    if code == 1 and ln >= 1:
        ulen = b[p]
        if ln >= ulen + 2:
            wlen = b[p + ulen + 1]
            if ln >= ulen + wlen + 2:
                out.append(" user=" + _print_string(b.span(p + 1, ulen)))
                out.append(" password=" + (_print_string(b.span(p + ulen + 2, wlen)) if secrets
                                           else "<hidden>"))
                p += ulen + wlen + 2
                ln -= ulen + wlen + 2
    elif code in (2, 3) and ln >= 1:
        mlen = b[p]
        if ln >= mlen + 1:
            out.append(" " + _print_string(b.span(p + 1, mlen)))
            p += mlen + 1
            ln -= mlen + 1
    for _ in range(ln):
        out.append(f" {b[p]:02x}")
        p += 1
    return p


def _chap(raw: bytes, out: _Out, secrets: bool) -> int:
    """chap-new.c chap_print_pkt."""
    b = _Buf(raw)
    head = _header(b, out, {1: "Challenge", 2: "Response", 3: "Success", 4: "Failure"})
    if head is None:
        return 0
    code, length = head
    ln = length - 4
    if code in (1, 2):
        if ln >= 1:
            clen = b[4]
            if ln >= clen + 1:
                out.append(f" <{b.span(5, clen).hex()}>, name = ")
                out.append(_print_string(b.span(5 + clen, ln - clen - 1)))
    elif code in (3, 4):
        out.append(" " + _print_string(b.span(4, ln)))
    else:
        out.extend(f" {x:02x}" for x in b.span(4, ln))
    return length


_CBCP_OPTIONS = ("NoCallback", "UserDefined", "AdminDefined", "List")


def _cbcp(raw: bytes, out: _Out, secrets: bool) -> int:
    """cbcp.c cbcp_printpkt, including its habit of not stepping over the number string."""
    b = _Buf(raw)
    head = _header(b, out, {1: "Request", 2: "Response", 3: "Ack"})
    if head is None:
        return 0
    code, length = head
    p, ln = 4, length - 4
    if code in (1, 2, 3):
        while ln >= 2:
            opt = b[p]
            olen = b[p + 1]
            p += 2
            if olen < 2 or olen > ln:
                break
            out.append(" <")
            ln -= olen
            out.append(f" {_CBCP_OPTIONS[opt - 1]}" if 1 <= opt <= 4 else f" option=0x{opt:x}")
            if olen > 2:
                out.append(f" delay = {b[p]}")
                p += 1
            if olen > 3:
                p += 1
                number = b.span(p, olen - 4).split(b"\x00", 1)[0]
                out.append(" number = " + _visible(number))
            out.append(">")
    for _ in range(ln):
        out.append(f" {b[p]:02x}")
        p += 1
    return p


_EAP_TYPES = ("Identity", "Notification", "Nak", "MD5-Challenge", "OTP", "Generic-Token", None, None,
              "RSA", "DSS", "KEA", "KEA-Validate", "TLS", "Defender", "Windows 2000", "Arcot",
              "Cisco", "Nokia", "SRP", None, "TTLS", "RAS", "AKA", "3COM", "PEAP", "MSCHAPv2")
_SHA_DIGESTSIZE = 20


def _eap_type(rtype: int) -> str:
    name = _EAP_TYPES[rtype - 1] if 1 <= rtype <= len(_EAP_TYPES) else None
    if 1 <= rtype <= len(_EAP_TYPES):
        return f" {name}" if name is not None else " (null)"
    return f" type=0x{rtype:x}"


class _Truncated(Exception):
    """eap.c's ``goto truncated``, raised with the position reached: pppd prints the rest from there."""

    def __init__(self, p: int, ln: int) -> None:
        super().__init__(p, ln)
        self.p = p
        self.ln = ln


def _eap(raw: bytes, out: _Out, secrets: bool) -> int:
    """eap.c eap_printpkt (as built with CHAPMS and USE_EAPTLS, like Debian's pppd)."""
    b = _Buf(raw)
    head = _header(b, out, {1: "Request", 2: "Response", 3: "Success", 4: "Failure"})
    if head is None:
        return 0
    code, length = head
    p, ln = 4, length - 4

    def string(tag: str, n: int) -> None:
        out.append(f" <{tag} " + _print_string(b.span(p, n)) + ">")

    try:
        if code == 1:
            if ln < 1:
                out.append(" <missing type>")
            else:
                rtype = b[p]
                p += 1
                ln -= 1
                out.append(_eap_type(rtype))
                if rtype in (1, 2):
                    if ln > 0:
                        string("Message", ln)
                        p += ln
                        ln = 0
                    else:
                        out.append(" <No message>")
                elif rtype == 4 and ln > 0:
                    p, ln = _md5_value_name(b, p, ln, out)
                elif rtype == 26 and ln > 0:
                    opcode = b[p]
                    p += 1
                    ln -= 1
                    p += 3
                    ln -= 3
                    if opcode == 1:
                        p, ln = _mschapv2_value_name(b, p, ln, out, "Challenge")
                    elif opcode in (3, 4):
                        word = "Success" if opcode == 3 else "Failure"
                        out.append(f" {word} <Message " + _print_string(b.span(p, ln)) + ">")
                    else:
                        out.append(f" opcode=0x{opcode:x} <{b.span(p, ln).hex()}>")
                elif rtype == 13 and ln >= 1:
                    p, ln = _eap_tls_flags(b, p, ln, out)
                elif rtype == 19:
                    p, ln = _eap_srp_request(b, p, ln, out)
        elif code == 2 and ln >= 1:
            rtype = b[p]
            p += 1
            ln -= 1
            out.append(_eap_type(rtype))
            if rtype == 1:
                if ln > 0:
                    string("Name", ln)
                    p += ln
                    ln = 0
            elif rtype == 13:
                if ln >= 1:
                    p, ln = _eap_tls_flags(b, p, ln, out)
            elif rtype == 3:
                if ln <= 0:
                    out.append(" <missing hint>")
                else:
                    hint = b[p]
                    p += 1
                    ln -= 1
                    text = f" <Suggested-type {hint:02X}"
                    if 1 <= hint <= len(_EAP_TYPES):
                        text += f" ({_EAP_TYPES[hint - 1] or '(null)'})"
                    out.append(text + ">")
            elif rtype == 4:
                if ln <= 0:
                    out.append(" <missing length>")
                else:
                    p, ln = _md5_value_name(b, p, ln, out)
            elif rtype == 26 and ln > 0:
                opcode = b[p]
                p += 1
                ln -= 1
                if opcode == 2:
                    p += 3
                    ln -= 3
                    p, ln = _mschapv2_value_name(b, p, ln, out, "Response")
                elif opcode == 3:
                    out.append(" Success")
                elif opcode == 4:
                    out.append(" Failure")
                else:
                    out.append(f" opcode=0x{opcode:x} <{b.span(p, ln).hex()}>")
            elif rtype == 19:
                p, ln = _eap_srp_response(b, p, ln, out)
    except _Truncated as e:
        p, ln = e.p, e.ln
        out.append(" <truncated>")
    if ln > 8:
        out.append("...")
    elif ln > 0:
        out.append(b.span(p, ln).hex())
    return p + ln


def _md5_value_name(b: _Buf, p: int, ln: int, out: _Out) -> tuple[int, int]:
    """eap.c, MD5-Challenge (RFC 3748 §5.4): a length-prefixed value, then the name."""
    vallen = b[p]
    p += 1
    ln -= 1
    if vallen > ln:
        raise _Truncated(p, ln)
    out.append(f" <Value{b.span(p, vallen).hex()}>")
    p += vallen
    ln -= vallen
    if ln <= 0:
        out.append(" <No name>")
        return p, ln
    out.append(" <Name " + _print_string(b.span(p, ln)) + ">")
    return p + ln, 0


def _mschapv2_value_name(b: _Buf, p: int, ln: int, out: _Out, word: str) -> tuple[int, int]:
    """eap.c, EAP-MSCHAPv2 Challenge or Response: a length-prefixed value, then the name."""
    vallen = b[p]
    p += 1
    ln -= 1
    if vallen > ln:
        raise _Truncated(p, ln)
    ln -= vallen
    out.append(f" {word} <{b.span(p, vallen).hex()}>")
    p += vallen
    if ln <= 0:
        out.append(", <No name>")
        return p, ln
    out.append(", <Name " + _print_string(b.span(p, ln)) + ">")
    return p + ln, 0


def _eap_tls_flags(b: _Buf, p: int, ln: int, out: _Out) -> tuple[int, int]:
    flags = b[p]
    p += 1
    ln -= 1
    if flags == 0 and ln == 0:
        out.append(" Ack")
    else:
        out.append((" L" if flags & 0x80 else " -") + ("M" if flags & 0x40 else "-")
                   + ("S" if flags & 0x20 else "- "))
    return p, ln


def _eap_srp_request(b: _Buf, p: int, ln: int, out: _Out) -> tuple[int, int]:
    if ln < 3:
        raise _Truncated(p, ln)
    sub = b[p]
    p += 1
    ln -= 1
    out.append(f"-{sub}")
    if sub == 1:
        vallen = b[p]
        p += 1
        ln -= 1
        if vallen >= ln:
            raise _Truncated(p, ln)
        out.append(f" <Name {_print_string(b.span(p, vallen))}>" if vallen > 0 else " <No name>")
        p += vallen
        ln -= vallen
        vallen = b[p]
        p += 1
        ln -= 1
        if vallen >= ln:
            raise _Truncated(p, ln)
        out.append(f" <s{b.span(p, vallen).hex()}>")
        p += vallen
        ln -= vallen
        vallen = b[p]
        p += 1
        ln -= 1
        if vallen > ln:
            raise _Truncated(p, ln)
        out.append(" <Default g=2>" if vallen == 0 else f" <g{b.span(p, vallen).hex()}>")
        p += vallen
        ln -= vallen
        if ln == 0:
            out.append(" <Default N>")
        else:
            out.append(f" <N{b.span(p, ln).hex()}>")
            p += ln
            ln = 0
    elif sub == 2:
        out.append(f" <B{b.span(p, ln).hex()}>")
        p += ln
        ln = 0
    elif sub == 3:
        if ln >= 4:
            p, ln = _srp_validator(b, p, ln, out, "M2")
    elif sub == 4:
        out.append(f" <Challenge{b.span(p, ln).hex()}>")
        p += ln
        ln = 0
    return p, ln


def _srp_validator(b: _Buf, p: int, ln: int, out: _Out, tag: str) -> tuple[int, int]:
    uval = b.long(p)
    p += 4
    ln -= 4
    if uval & 1:
        out.append(" E")
        uval &= ~1
    if uval:
        out.append(f" f<{uval:X}>")
    if tag == "M2":
        vallen = min(ln, _SHA_DIGESTSIZE)
        out.append(f" <M2{b.span(p, ln).hex()}{'?' if ln < _SHA_DIGESTSIZE else ''}>")
        p += vallen
        ln -= vallen
        if ln > 0:
            out.append(f" <PN{b.span(p, ln).hex()}>")
            p += ln
            ln = 0
    else:
        out.append(f" <M1{b.span(p, ln).hex()}{'' if ln == _SHA_DIGESTSIZE else '?'}>")
        p += ln
        ln = 0
    return p, ln


def _eap_srp_response(b: _Buf, p: int, ln: int, out: _Out) -> tuple[int, int]:
    if ln < 1:
        raise _Truncated(p, ln)
    sub = b[p]
    p += 1
    ln -= 1
    out.append(f"-{sub}")
    if sub == 1:
        out.append(f" <A{b.span(p, ln).hex()}>")
        p += ln
        ln = 0
    elif sub == 2:
        if ln >= 4:
            p, ln = _srp_validator(b, p, ln, out, "M1")
    elif sub == 4:
        out.append(f" <Response{b.span(p, ln).hex()}{'' if ln == _SHA_DIGESTSIZE else '?'}>")
        vallen = min(ln, _SHA_DIGESTSIZE)
        p += vallen
        ln -= vallen
    return p, ln


def _ecp(raw: bytes, out: _Out, secrets: bool) -> int:
    """ecp.c ecp_printpkt prints nothing and consumes nothing."""
    return 0


# pppd's protocols[] table (main.c), in its order: protocol -> (name, printer).
_PRINTERS: dict[int, tuple[str, _Printer]] = {
    PppProtocol.LCP: ("LCP", _lcp),
    PppProtocol.PAP: ("PAP", _pap),
    PppProtocol.CHAP: ("CHAP", _chap),
    PppProtocol.CBCP: ("CBCP", _cbcp),
    PppProtocol.IPCP: ("IPCP", _ipcp),
    PppProtocol.IPV6CP: ("IPV6CP", _ipv6cp),
    PppProtocol.CCP: ("CCP", _ccp),
    PppProtocol.ECP: ("ECP", _ecp),
    PppProtocol.EAP: ("EAP", _eap),
}
# Data protocols named after their control protocol (protocol & ~0x8000).
_DATA_NAMES: dict[int, str] = {0x0021: "IP", 0x0057: "IPV6", 0x00FD: "Compressed", 0x0053: "Encrypted"}


def format_pppd_packet(protocol: int, info: bytes, *, show_secrets: bool = False) -> str:
    """pppd's rendering of a ``protocol`` frame with Information field ``info`` (utils.c format_packet)."""
    out: _Out = []
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
        out.append(_hexb(info[:8]) + " ..." if len(info) > 8 else _hexb(info))
        rest = b""
    else:
        out.append(f"[proto=0x{protocol:x}]")
    out.append(_hexb(rest[:32]) + " ..." if len(rest) > 32 else _hexb(rest))
    return "".join(out)


def format_pppd(frame: PppFrame, *, show_secrets: bool = False) -> str:
    """pppd 2.4.9's debug-log rendering of ``frame``, e.g. ``[LCP EchoReq id=0x0 magic=0x683daab]``.

    The PAP password is ``<hidden>`` (pppd's default) unless ``show_secrets``.
    """
    return format_pppd_packet(frame.protocol, frame.info, show_secrets=show_secrets)
