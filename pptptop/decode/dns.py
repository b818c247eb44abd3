"""DNS messages (RFC 1035 §4), enough to say which names a tunnel's users asked for and got.

Questions and the answer section's A, AAAA, CNAME and PTR records are
decoded; names follow compression pointers (§4.1.4), never more than
:data:`MAX_JUMPS` of them and never past :data:`MAX_NAME` octets. Labels are
taken one character per octet (latin-1), as pptptop takes every wire string:
escape them before showing them.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from pptptop.decode.errors import DecodeError

__all__ = ["DnsMessage", "DnsRecord", "decode_dns", "rcode_name", "type_name"]

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
MAX_NAME = 255
MAX_JUMPS = 32
MAX_QUESTIONS = 16
MAX_ANSWERS = 32
TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_PTR, TYPE_AAAA = 1, 2, 5, 12, 28
_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
          64: "SVCB", 65: "HTTPS", 255: "ANY"}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def type_name(t: int) -> str:
    """The record type's mnemonic (RFC 1035 §3.2.2, RFC 3596): "A", "AAAA"; ``TYPE65280`` otherwise."""
    return _TYPES.get(t, f"TYPE{t}")


def rcode_name(r: int) -> str:
    """The response code's name (RFC 1035 §4.1.1): "NOERROR", "NXDOMAIN"; ``RCODE9`` otherwise."""
    return _RCODES.get(r, f"RCODE{r}")


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """A question (``value`` None) or an answer: its name, type, and the address or name it gives."""

    name: str
    type: int
    value: str | None = None


@dataclass(frozen=True, slots=True)
class DnsMessage:
    id: int
    response: bool
    rcode: int
    questions: tuple[DnsRecord, ...]
    answers: tuple[DnsRecord, ...]


def _name(msg: bytes, pos: int) -> tuple[str, int]:
    """The name at ``pos`` and where the record continues after it (RFC 1035 §4.1.4)."""
    labels: list[str] = []
    size = 0
    end = -1
    jumps = 0
    while True:
        if pos >= len(msg):
            raise DecodeError("dns_truncated", "a name runs past the message", pos)
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise DecodeError("dns_truncated", "a compression pointer is cut", pos)
            if end < 0:
                end = pos + 2
            jumps += 1
            if jumps > MAX_JUMPS:
                raise DecodeError("dns_pointer_loop", "too many compression pointers in a name", pos)
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            continue
        if n & 0xC0:
            raise DecodeError("dns_bad_label", f"label type {n >> 6} is not defined", pos)
        if n == 0:
            return ".".join(labels) or ".", end if end >= 0 else pos + 1
        size += n + 1
        if size > MAX_NAME or pos + 1 + n > len(msg):
            raise DecodeError("dns_bad_label", "a name is longer than 255 octets or runs past the message", pos)
        labels.append(msg[pos + 1:pos + 1 + n].decode("latin-1"))
        pos += 1 + n


def decode_dns(msg: bytes) -> DnsMessage:
    """Decode a DNS message (RFC 1035 §4.1): header, questions, and the answers' A/AAAA/CNAME/PTR values."""
    if len(msg) < _HEADER.size:
        raise DecodeError("dns_truncated", f"a DNS header needs 12 octets, got {len(msg)}", 0)
    ident, flags, qd, an, _, _ = _HEADER.unpack_from(msg, 0)
    pos = _HEADER.size
    questions: list[DnsRecord] = []
    for _ in range(min(qd, MAX_QUESTIONS)):
        name, pos = _name(msg, pos)
        if pos + 4 > len(msg):
            raise DecodeError("dns_truncated", "a question is cut", pos)
        questions.append(DnsRecord(name, (msg[pos] << 8) | msg[pos + 1]))
        pos += 4
    answers: list[DnsRecord] = []
    if qd <= MAX_QUESTIONS:
        for _ in range(min(an, MAX_ANSWERS)):
            name, pos = _name(msg, pos)
            if pos + _RR.size > len(msg):
                raise DecodeError("dns_truncated", "a resource record is cut", pos)
            rtype, _, _, rdlen = _RR.unpack_from(msg, pos)
            pos += _RR.size
            if pos + rdlen > len(msg):
                raise DecodeError("dns_truncated", "a record's data runs past the message", pos)
            value: str | None = None
            if rtype == TYPE_A and rdlen == 4:
                value = socket.inet_ntop(socket.AF_INET, msg[pos:pos + 4])
            elif rtype == TYPE_AAAA and rdlen == 16:
                value = socket.inet_ntop(socket.AF_INET6, msg[pos:pos + 16])
            elif rtype in (TYPE_CNAME, TYPE_PTR, TYPE_NS):
                value = _name(msg, pos)[0]
            answers.append(DnsRecord(name, rtype, value))
            pos += rdlen
    return DnsMessage(ident, bool(flags & 0x8000), flags & 0x0F, tuple(questions), tuple(answers))
