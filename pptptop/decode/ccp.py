"""CCP options (RFC 1962) and the MPPE/MPPC bits and data header (RFC 3078, RFC 2118).

The CCP packet itself is the RFC 1661 §5 format shared with LCP, decoded by
:func:`pptptop.decode.lcp.decode_control_packet`; this module holds what is
CCP-specific: option numbers, the option 18 Supported Bits and the two-octet
header that starts every PPP protocol 0x00FD datagram.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pptptop.decode.errors import DecodeError

__all__ = [
    "CCP_OPTION_NAMES",
    "CcpOption",
    "MppeBits",
    "MppeHeader",
    "coherency_count",
    "decode_ccp_option_value",
    "decode_mppe_header",
]


class CcpOption(IntEnum):
    """CCP Configuration Option types (RFC 1962 §4, IANA "PPP-CCP-Option")."""

    OUI = 0
    PREDICTOR1 = 1
    PREDICTOR2 = 2
    PUDDLE_JUMPER = 3
    HP_PPC = 16
    STAC_LZS = 17
    MPPE = 18
    GANDALF_FZA = 19
    V42BIS = 20
    BSD_COMPRESS = 21
    LZS_DCP = 23
    MVRCA = 24
    DCE = 25
    DEFLATE = 26
    V44_LZJH = 27


#: Wireshark's option names (tshark 4.0 ``ccp.opt.*`` subtrees).
CCP_OPTION_NAMES: dict[int, str] = {
    1: "Predictor type 1",
    2: "Predictor type 2",
    3: "Puddle Jumper",
    16: "Hewlett-Packard PPC",
    17: "Stac Electronics LZS",
    18: "Microsoft PPE/PPC",
    19: "Gandalf FZA",
    20: "V.42bis compression",
    21: "BSD LZW Compress",
    23: "LZS-DCP",
    24: "MVRCA (Magnalink)",
    25: "PPP for Data Compression in Data Circuit-Terminating Equipment (DCE)",
    26: "Deflate",
    27: "V.44/LZJH compression",
}

MPPE_H = 0x01000000
MPPE_M = 0x80
MPPE_S = 0x40
MPPE_L = 0x20
MPPE_D = 0x10
MPPE_C = 0x01
_MPPE_KNOWN = MPPE_H | MPPE_M | MPPE_S | MPPE_L | MPPE_D | MPPE_C


@dataclass(frozen=True, slots=True)
class MppeBits:
    """CCP option 18 Supported Bits (RFC 3078 §2.1; RFC 2118 for C)."""

    supported_bits: int

    @property
    def stateless(self) -> bool:
        """H: stateless mode, a new key for every packet (RFC 3078 §2.1)."""
        return bool(self.supported_bits & MPPE_H)

    @property
    def bits56(self) -> bool:
        """M: 56-bit session keys."""
        return bool(self.supported_bits & MPPE_M)

    @property
    def bits128(self) -> bool:
        """S: 128-bit session keys."""
        return bool(self.supported_bits & MPPE_S)

    @property
    def bits40(self) -> bool:
        """L: 40-bit session keys."""
        return bool(self.supported_bits & MPPE_L)

    @property
    def obsolete_d(self) -> bool:
        """D: obsolete bit, meaning unknown (RFC 3078 §2.1)."""
        return bool(self.supported_bits & MPPE_D)

    @property
    def mppc(self) -> bool:
        """C: MPPC compression (RFC 2118)."""
        return bool(self.supported_bits & MPPE_C)

    @property
    def unknown(self) -> bool:
        """Bits RFC 3078 does not define are set (pppd prints ``+U``)."""
        return bool(self.supported_bits & ~_MPPE_KNOWN & 0xFFFFFFFF)

    @property
    def strengths(self) -> tuple[int, ...]:
        """Offered key lengths in bits, strongest first, e.g. ``(128,)``."""
        out: list[int] = []
        if self.bits128:
            out.append(128)
        if self.bits56:
            out.append(56)
        if self.bits40:
            out.append(40)
        return tuple(out)

    def pppd(self) -> str:
        """pppd 2.4.9's rendering after ``mppe``: ``+H -M +S -L -D -C`` (ccp.c ccp_printpkt)."""
        b = self.supported_bits

        def flag(letter: str, mask: int) -> str:
            return ("+" if b & mask else "-") + letter

        text = " ".join((flag("H", MPPE_H), flag("M", MPPE_M), flag("S", MPPE_S),
                         flag("L", MPPE_L), flag("D", MPPE_D), flag("C", MPPE_C)))
        if self.unknown:
            raw = b.to_bytes(4, "big")
            text += " +U (" + " ".join(f"{x:02x}" for x in raw) + ")"
        return text


@dataclass(frozen=True, slots=True)
class MppeHeader:
    """The two octets before every MPPE/MPPC datagram (RFC 3078 §3, RFC 2118 §3.1)."""

    flushed: bool
    at_front: bool
    compressed: bool
    encrypted: bool
    coherency_count: int


def decode_mppe_header(info: bytes) -> MppeHeader:
    """Decode the A/B/C/D flags and the 12-bit Coherency Count (RFC 3078 §3)."""
    if len(info) < 2:
        raise DecodeError("mppe_header_truncated",
                          f"a compressed datagram needs a 2-octet MPPE header, got {len(info)}", 0)
    b0 = info[0]
    return MppeHeader(
        flushed=bool(b0 & 0x80),
        at_front=bool(b0 & 0x40),
        compressed=bool(b0 & 0x20),
        encrypted=bool(b0 & 0x10),
        coherency_count=((b0 & 0x0F) << 8) | info[1],
    )


def coherency_count(payload: bytes, off: int) -> int:
    """The Coherency Count of the MPPE header at ``payload[off]``; -1 if it is cut short.

    For the per-packet hot path: two byte reads, no allocation.
    """
    if off < 0 or off + 2 > len(payload):
        return -1
    return ((payload[off] & 0x0F) << 8) | payload[off + 1]


def decode_ccp_option_value(opt_type: int, data: bytes) -> object:
    """Typed value of one CCP option: :class:`MppeBits` for option 18 (length 6).

    Other options keep their data bytes; an empty option gives None.
    """
    if opt_type == CcpOption.MPPE and len(data) == 4:
        return MppeBits(int.from_bytes(data, "big"))
    return data if data else None
