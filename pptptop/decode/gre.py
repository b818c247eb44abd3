"""Enhanced GRE, the PPTP data channel (RFC 2637 §4.1).

Layout::

    C R K S s Recur A Flags Ver | Protocol Type (0x880B)
    Key: Payload Length (16)    | Call ID (16)
    Sequence Number (32)        -- present when S
    Acknowledgment Number (32)  -- present when A

C, R, s and Recur are 0, K is 1 and Ver is 1.  An ack-only packet has no S
and a payload length of 0.

Two ways in.  ``decode_gre`` builds a :class:`GreHeader` for the drill-down
and the tests.  The tracker's per-packet path uses the constants instead,
with no object built::

    fv, proto, plen, call_id = GRE_FIXED.unpack_from(data, off)
    if (fv & GRE_PPTP_MASK) == GRE_PPTP_VALUE and proto == GRE_PROTOCOL_PPP:
        pos = off + 8
        seq = U32.unpack_from(data, pos)[0] if fv & GRE_S else None
        pos += 4 if fv & GRE_S else 0
        ack = U32.unpack_from(data, pos)[0] if fv & GRE_A else None

(check ``end - off`` against ``gre_header_length(fv)`` first).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from pptptop.decode.errors import DecodeError

GRE_FIXED = struct.Struct("!HHHH")  # flags_version, protocol, payload_length, call_id
U32 = struct.Struct("!I")

GRE_C = 0x8000  # checksum present
GRE_R = 0x4000  # routing present
GRE_K = 0x2000  # key present
GRE_S = 0x1000  # sequence number present
GRE_SSR = 0x0800  # strict source route
GRE_RECUR_MASK = 0x0700
GRE_A = 0x0080  # acknowledgment number present
GRE_FLAGS_MASK = 0x0078
GRE_VERSION_MASK = 0x0007
GRE_VERSION_ENHANCED = 1
GRE_PROTOCOL_PPP = 0x880B
GRE_FIXED_LENGTH = 8

# The bits that must be exactly so for RFC 2637 enhanced GRE: C=0 R=0 K=1 s=0 Recur=0 Ver=1.
GRE_PPTP_MASK = GRE_C | GRE_R | GRE_K | GRE_SSR | GRE_RECUR_MASK | GRE_VERSION_MASK
GRE_PPTP_VALUE = GRE_K | GRE_VERSION_ENHANCED


def gre_header_length(flags_version: int) -> int:
    """Octets of enhanced GRE header implied by S and A (8, 12 or 16)."""
    return GRE_FIXED_LENGTH + (4 if flags_version & GRE_S else 0) + (4 if flags_version & GRE_A else 0)


@dataclass(frozen=True, slots=True)
class GreHeader:
    """One enhanced GRE header (RFC 2637 §4.1).

    Only the wire values are stored; the flag bits are properties of
    ``flags_version`` so they cannot disagree with it (and the object is
    cheaper to build).  ``payload_offset``/``payload_end`` locate the PPP
    frame in the buffer; ``payload_end`` is capped at what was captured.
    """

    flags_version: int
    protocol: int
    payload_length: int
    call_id: int
    seq: int | None
    ack: int | None
    header_length: int
    payload_offset: int
    payload_end: int

    @property
    def checksum_present(self) -> bool:
        return bool(self.flags_version & GRE_C)

    @property
    def routing_present(self) -> bool:
        return bool(self.flags_version & GRE_R)

    @property
    def key_present(self) -> bool:
        return bool(self.flags_version & GRE_K)

    @property
    def seq_present(self) -> bool:
        return bool(self.flags_version & GRE_S)

    @property
    def strict_source_route(self) -> bool:
        return bool(self.flags_version & GRE_SSR)

    @property
    def recursion(self) -> int:
        return (self.flags_version & GRE_RECUR_MASK) >> 8

    @property
    def ack_present(self) -> bool:
        return bool(self.flags_version & GRE_A)

    @property
    def flags(self) -> int:
        """The four reserved flag bits after A (RFC 2637 §4.1 says 0)."""
        return (self.flags_version & GRE_FLAGS_MASK) >> 3

    @property
    def version(self) -> int:
        return self.flags_version & GRE_VERSION_MASK

    @property
    def payload_truncated(self) -> bool:
        """The capture holds fewer than ``payload_length`` octets of payload."""
        return self.payload_end - self.payload_offset < self.payload_length

    @property
    def ack_only(self) -> bool:
        """No sequence number and no payload: a bare acknowledgment."""
        return not self.flags_version & GRE_S and self.payload_length == 0


def decode_gre(data: bytes, off: int, end: int) -> GreHeader:
    """Decode the enhanced GRE header at ``data[off:end]``.

    Raises ``DecodeError``: ``truncated_gre`` when the header (with its
    optional sequence/acknowledgment numbers) does not fit before ``end``;
    ``gre_not_pptp`` for any version other than 1, a protocol other than
    0x880B or a clear K bit; ``gre_bad_flags`` when C, R, s or Recur is set
    in a version-1 header, which RFC 2637 forbids.
    """
    end = min(end, len(data))
    if off < 0 or end - off < GRE_FIXED_LENGTH:
        raise DecodeError("truncated_gre", f"{max(end - off, 0)} octets, enhanced GRE needs 8", off)
    fv, proto, plen, call_id = GRE_FIXED.unpack_from(data, off)
    if fv & GRE_PPTP_MASK != GRE_PPTP_VALUE or proto != GRE_PROTOCOL_PPP:
        version = fv & GRE_VERSION_MASK
        if version != GRE_VERSION_ENHANCED or proto != GRE_PROTOCOL_PPP or not fv & GRE_K:
            raise DecodeError(
                "gre_not_pptp",
                f"GRE version {version}, protocol 0x{proto:04x}, K={int(bool(fv & GRE_K))}:"
                " not enhanced GRE (version 1, 0x880B, key present)",
                off,
            )
        raise DecodeError(
            "gre_bad_flags", f"flags 0x{fv:04x}: C, R, s and Recur must be 0 in enhanced GRE", off
        )
    pos = off + GRE_FIXED_LENGTH
    seq: int | None = None
    ack: int | None = None
    if fv & GRE_S:
        if end - pos < 4:
            raise DecodeError(
                "truncated_gre", f"{end - off} octets, flags 0x{fv:04x} need {gre_header_length(fv)}", off
            )
        seq = U32.unpack_from(data, pos)[0]
        pos += 4
    if fv & GRE_A:
        if end - pos < 4:
            raise DecodeError(
                "truncated_gre", f"{end - off} octets, flags 0x{fv:04x} need {gre_header_length(fv)}", off
            )
        ack = U32.unpack_from(data, pos)[0]
        pos += 4
    return GreHeader(fv, proto, plen, call_id, seq, ack, pos - off, pos, min(pos + plen, end))


class GreField(NamedTuple):
    """One row of the drill-down: a field's name, value, offset and length in octets.

    Single-bit flags share the offset and length of the 16-bit word they sit in.
    """

    name: str
    value: int
    offset: int
    length: int


def gre_fields(header: GreHeader, base: int = 0) -> list[GreField]:
    """The header's fields in wire order; offsets are ``base`` plus the field's place in the header."""
    rows = [
        GreField("flags_version", header.flags_version, base, 2),
        GreField("checksum_present", int(header.checksum_present), base, 2),
        GreField("routing_present", int(header.routing_present), base, 2),
        GreField("key_present", int(header.key_present), base, 2),
        GreField("seq_present", int(header.seq_present), base, 2),
        GreField("strict_source_route", int(header.strict_source_route), base, 2),
        GreField("recursion", header.recursion, base, 2),
        GreField("ack_present", int(header.ack_present), base, 2),
        GreField("flags", header.flags, base, 2),
        GreField("version", header.version, base, 2),
        GreField("protocol", header.protocol, base + 2, 2),
        GreField("payload_length", header.payload_length, base + 4, 2),
        GreField("call_id", header.call_id, base + 6, 2),
    ]
    pos = base + GRE_FIXED_LENGTH
    if header.seq is not None:
        rows.append(GreField("seq", header.seq, pos, 4))
        pos += 4
    if header.ack is not None:
        rows.append(GreField("ack", header.ack, pos, 4))
    return rows
