"""pppd's printers of authentication and callback: upap.c, chap-new.c, cbcp.c and eap.c ``*_printpkt``."""

from __future__ import annotations

from pptptop.decode.pppd.text import Buf, Out, header, print_string, visible


def pap(raw: bytes, out: Out, secrets: bool) -> int:
    """upap.c upap_printpkt; the password is ``<hidden>`` unless ``secrets`` (pppd's hide-password)."""
    b = Buf(raw)
    head = header(b, out, {1: "AuthReq", 2: "AuthAck", 3: "AuthNak"})
    if head is None:
        return 0
    code, length = head
    p, ln = 4, length - 4
    if code == 1 and ln >= 1:
        ulen = b[p]
        if ln >= ulen + 2:
            wlen = b[p + ulen + 1]
            if ln >= ulen + wlen + 2:
                out.append(" user=" + print_string(b.span(p + 1, ulen)))
                out.append(" password=" + (print_string(b.span(p + ulen + 2, wlen)) if secrets
                                           else "<hidden>"))
                p += ulen + wlen + 2
                ln -= ulen + wlen + 2
    elif code in (2, 3) and ln >= 1:
        mlen = b[p]
        if ln >= mlen + 1:
            out.append(" " + print_string(b.span(p + 1, mlen)))
            p += mlen + 1
            ln -= mlen + 1
    for _ in range(ln):
        out.append(f" {b[p]:02x}")
        p += 1
    return p


def chap(raw: bytes, out: Out, secrets: bool) -> int:
    """chap-new.c chap_print_pkt."""
    b = Buf(raw)
    head = header(b, out, {1: "Challenge", 2: "Response", 3: "Success", 4: "Failure"})
    if head is None:
        return 0
    code, length = head
    ln = length - 4
    if code in (1, 2):
        if ln >= 1:
            clen = b[4]
            if ln >= clen + 1:
                out.append(f" <{b.span(5, clen).hex()}>, name = ")
                out.append(print_string(b.span(5 + clen, ln - clen - 1)))
    elif code in (3, 4):
        out.append(" " + print_string(b.span(4, ln)))
    else:
        out.extend(f" {x:02x}" for x in b.span(4, ln))
    return length


_CBCP_OPTIONS = ("NoCallback", "UserDefined", "AdminDefined", "List")


def cbcp(raw: bytes, out: Out, secrets: bool) -> int:
    """cbcp.c cbcp_printpkt, including its habit of not stepping over the number string."""
    b = Buf(raw)
    head = header(b, out, {1: "Request", 2: "Response", 3: "Ack"})
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
                out.append(" number = " + visible(number))
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


def eap(raw: bytes, out: Out, secrets: bool) -> int:
    """eap.c eap_printpkt (as built with CHAPMS and USE_EAPTLS, like Debian's pppd)."""
    b = Buf(raw)
    head = header(b, out, {1: "Request", 2: "Response", 3: "Success", 4: "Failure"})
    if head is None:
        return 0
    code, length = head
    p, ln = 4, length - 4
    try:
        if code == 1:
            p, ln = _eap_request(b, p, ln, out)
        elif code == 2 and ln >= 1:
            p, ln = _eap_response(b, p, ln, out)
    except _Truncated as e:
        p, ln = e.p, e.ln
        out.append(" <truncated>")
    if ln > 8:
        out.append("...")
    elif ln > 0:
        out.append(b.span(p, ln).hex())
    return p + ln


def _string(b: Buf, p: int, n: int, tag: str, out: Out) -> None:
    out.append(f" <{tag} " + print_string(b.span(p, n)) + ">")


def _eap_request(b: Buf, p: int, ln: int, out: Out) -> tuple[int, int]:
    """eap.c, code 1: the Type and what pppd prints of its data."""
    if ln < 1:
        out.append(" <missing type>")
    else:
        rtype = b[p]
        p += 1
        ln -= 1
        out.append(_eap_type(rtype))
        if rtype in (1, 2):
            if ln > 0:
                _string(b, p, ln, "Message", out)
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
                out.append(f" {word} <Message " + print_string(b.span(p, ln)) + ">")
            else:
                out.append(f" opcode=0x{opcode:x} <{b.span(p, ln).hex()}>")
        elif rtype == 13 and ln >= 1:
            p, ln = _eap_tls_flags(b, p, ln, out)
        elif rtype == 19:
            p, ln = _eap_srp_request(b, p, ln, out)
    return p, ln


def _eap_response(b: Buf, p: int, ln: int, out: Out) -> tuple[int, int]:
    """eap.c, code 2 (at least the Type octet present)."""
    rtype = b[p]
    p += 1
    ln -= 1
    out.append(_eap_type(rtype))
    if rtype == 1:
        if ln > 0:
            _string(b, p, ln, "Name", out)
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
    return p, ln


def _md5_value_name(b: Buf, p: int, ln: int, out: Out) -> tuple[int, int]:
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
    out.append(" <Name " + print_string(b.span(p, ln)) + ">")
    return p + ln, 0


def _mschapv2_value_name(b: Buf, p: int, ln: int, out: Out, word: str) -> tuple[int, int]:
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
    out.append(", <Name " + print_string(b.span(p, ln)) + ">")
    return p + ln, 0


def _eap_tls_flags(b: Buf, p: int, ln: int, out: Out) -> tuple[int, int]:
    flags = b[p]
    p += 1
    ln -= 1
    if flags == 0 and ln == 0:
        out.append(" Ack")
    else:
        out.append((" L" if flags & 0x80 else " -") + ("M" if flags & 0x40 else "-")
                   + ("S" if flags & 0x20 else "- "))
    return p, ln


def _eap_srp_request(b: Buf, p: int, ln: int, out: Out) -> tuple[int, int]:
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
        out.append(f" <Name {print_string(b.span(p, vallen))}>" if vallen > 0 else " <No name>")
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


def _srp_validator(b: Buf, p: int, ln: int, out: Out, tag: str) -> tuple[int, int]:
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


def _eap_srp_response(b: Buf, p: int, ln: int, out: Out) -> tuple[int, int]:
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
