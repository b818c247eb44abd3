"""TCP header (RFC 9293 §3.1), enough to carry the PPTP control connection.

The checksum is reported and never validated: on a Linux NAT gateway the
packets ``nf_nat_pptp`` rewrites reach the packet socket as CHECKSUM_PARTIAL,
so a capture taken there shows "wrong" checksums on perfectly good segments.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag

from pptptop.decode.errors import DecodeError

_TCP = struct.Struct("!HHIIBBHHH")
TCP_MIN_HEADER = 20


class TcpFlags(IntFlag):
    """Control bits (RFC 9293 §3.1; ECE and CWR from RFC 3168 §6.1)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


#: the flags as plain ints, for hot paths: an int & an IntFlag member runs the enum's Python code
TH_FIN, TH_SYN, TH_RST, TH_ACK = int(TcpFlags.FIN), int(TcpFlags.SYN), int(TcpFlags.RST), int(TcpFlags.ACK)
#: values of the flags octet seen so far, as their TcpFlags (at most 256): ``TcpFlags(x)`` runs the enum's
#: Python code, and making all 256 at import would cost every start ~10 ms
_FLAGS: dict[int, TcpFlags] = {}


@dataclass(frozen=True, slots=True)
class TcpSegment:
    """One TCP header and where its payload lies in the frame.

    ``data_offset`` is the raw field in 32-bit words; ``reserved`` the four
    bits after it (the lowest was the experimental NS bit of RFC 3540).
    """

    src_port: int
    dst_port: int
    seq: int
    ack: int
    data_offset: int
    reserved: int
    flags: TcpFlags
    window: int
    checksum: int
    urgent: int
    options: bytes
    payload_offset: int
    payload_end: int

    @property
    def header_length(self) -> int:
        """Header length in octets (data offset times four)."""
        return self.data_offset * 4

    @property
    def payload_length(self) -> int:
        return self.payload_end - self.payload_offset


def decode_tcp(data: bytes, off: int, end: int) -> TcpSegment:
    """Decode the TCP header at ``data[off:end]`` (``end`` from the IP length).

    Raises ``DecodeError`` ``truncated_tcp`` when fewer than 20 octets remain
    and ``tcp_bad_data_offset`` when the data offset is below 5 or points past
    ``end``.
    """
    end = min(end, len(data))
    if off < 0 or end - off < TCP_MIN_HEADER:
        raise DecodeError("truncated_tcp", f"{max(end - off, 0)} octets, TCP needs 20", off)
    sport, dport, seq, ack, doff_res, flags, window, checksum, urgent = _TCP.unpack_from(data, off)
    data_offset = doff_res >> 4
    header_len = data_offset * 4
    if data_offset < 5:
        raise DecodeError("tcp_bad_data_offset", f"data offset {data_offset} is below the minimum of 5", off)
    if header_len > end - off:
        raise DecodeError(
            "tcp_bad_data_offset", f"data offset {data_offset} points past the {end - off} octets there", off
        )
    bits = _FLAGS.get(flags)
    if bits is None:
        bits = _FLAGS[flags] = TcpFlags(flags)
    return TcpSegment(
        src_port=sport,
        dst_port=dport,
        seq=seq,
        ack=ack,
        data_offset=data_offset,
        reserved=doff_res & 0x0F,
        flags=bits,
        window=window,
        checksum=checksum,
        urgent=urgent,
        options=bytes(data[off + TCP_MIN_HEADER : off + header_len]),
        payload_offset=off + header_len,
        payload_end=end,
    )
