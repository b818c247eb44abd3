"""IPv4 (RFC 791) and IPv6 (RFC 8200) headers, down to the upper-layer protocol.

``decode_ip`` gives the addresses, the upper-layer protocol and where its
bytes start and end.  The end comes from the IP length field, so Ethernet
padding on short frames is never taken for payload, and is capped at the
captured length so a snaplen-truncated frame still decodes.  IPv6 extension
headers (hop-by-hop, routing, fragment, destination options; RFC 8200 §4) are
walked to the first upper-layer header.  Checksums are reported, never
checked: packet sockets on Linux routinely see unfinished checksums.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum
from socket import inet_ntoa

from pptptop.decode.errors import DecodeError

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_IPV4_MIN = 20
_IPV6_LEN = 40
_MAX_EXTENSION_HEADERS = 32


class IPProtocol(IntEnum):
    """IANA protocol numbers this program looks at (RFC 790 and registry)."""

    HOPOPT = 0
    ICMP = 1
    TCP = 6
    UDP = 17
    IPV6_ROUTE = 43
    IPV6_FRAG = 44
    GRE = 47
    ESP = 50
    AH = 51
    IPV6_ICMP = 58
    IPV6_NONXT = 59
    IPV6_OPTS = 60


# RFC 8200 §4: extension headers walked to reach the upper layer.
_IPV6_EXTENSIONS = frozenset(
    {IPProtocol.HOPOPT, IPProtocol.IPV6_ROUTE, IPProtocol.IPV6_FRAG, IPProtocol.IPV6_OPTS}
)


@dataclass(frozen=True, slots=True)
class IPv4Header:
    """Every field of the RFC 791 §3.1 header.

    ``flags`` is the 3-bit field (0x2 DF, 0x1 MF); ``fragment_offset`` is the
    raw 13-bit field in 8-octet units; ``options`` is everything between the
    20 fixed octets and IHL*4.
    """

    version: int
    ihl: int
    tos: int
    dscp: int
    ecn: int
    total_length: int
    identification: int
    flags: int
    dont_fragment: bool
    more_fragments: bool
    fragment_offset: int
    ttl: int
    protocol: int
    checksum: int
    src: bytes
    dst: bytes
    options: bytes


@dataclass(frozen=True, slots=True)
class IPv6ExtensionHeader:
    """One extension header met on the way to the upper layer (RFC 8200 §4)."""

    header_type: int  # the Next Header value that announced it
    next_header: int
    offset: int  # absolute offset in the frame
    length: int  # octets, including its own first two


@dataclass(frozen=True, slots=True)
class IPv6Header:
    """Every field of the RFC 8200 §3 header, plus the fragment header if any.

    ``fragment_offset`` (8-octet units), ``more_fragments`` and
    ``fragment_identification`` come from a Fragment header (§4.5) and are
    0/False/None without one.  ``upper_protocol`` is the Next Header value
    after the extension headers.
    """

    version: int
    traffic_class: int
    dscp: int
    ecn: int
    flow_label: int
    payload_length: int
    next_header: int
    hop_limit: int
    src: bytes
    dst: bytes
    extension_headers: tuple[IPv6ExtensionHeader, ...]
    upper_protocol: int
    fragment_offset: int
    more_fragments: bool
    fragment_identification: int | None


@dataclass(frozen=True, slots=True)
class IPPacket:
    """What the layers above need from an IP header."""

    version: int
    src: str
    dst: str
    src_raw: bytes
    dst_raw: bytes
    protocol: int
    payload_offset: int
    payload_end: int
    fragment: bool  # part of a fragmented datagram: MF set or fragment offset > 0
    ttl: int  # IPv4 TTL or IPv6 Hop Limit
    raw_header: bytes  # IPv4: the header's octets (IHL*4); IPv6: empty, see ``v6``
    v6: IPv6Header | None = None  # IPv6: the header, extension headers walked

    @property
    def header(self) -> IPv4Header | IPv6Header:
        """Every field of the header. An IPv4 header is decoded from ``raw_header`` when asked for: the
        tracker needs only the fields above, the drill-down all of them."""
        return self.v6 if self.v6 is not None else ipv4_header(self.raw_header)


def ipv4_header(raw: bytes) -> IPv4Header:
    """The RFC 791 §3.1 fields of an IPv4 header's octets (20 or more, as ``IPPacket.raw_header`` holds)."""
    vihl, tos, total_length, ident, flags_frag, ttl, proto, checksum, src, dst = _IPV4.unpack_from(raw, 0)
    flags = flags_frag >> 13
    return IPv4Header(
        version=4,
        ihl=vihl & 0x0F,
        tos=tos,
        dscp=tos >> 2,
        ecn=tos & 0x3,
        total_length=total_length,
        identification=ident,
        flags=flags,
        dont_fragment=bool(flags & 0x2),
        more_fragments=bool(flags & 0x1),
        fragment_offset=flags_frag & 0x1FFF,
        ttl=ttl,
        protocol=proto,
        checksum=checksum,
        src=src,
        dst=dst,
        options=raw[_IPV4_MIN:],
    )


def decode_ip(data: bytes, off: int, ethertype: int) -> IPPacket:
    """Decode the IPv4 or IPv6 header at ``data[off:]``.

    ``ethertype`` is 0x0800 or 0x86DD; 0 means "take the version nibble"
    (raw-IP link types).  Raises ``DecodeError`` for a header that cannot
    be read: ``truncated_ip``, ``ip_bad_version``, ``ip_bad_ihl``,
    ``ip_bad_length``, ``ip_unknown_ethertype``, ``ipv6_bad_extension``.
    """
    if off < 0 or off >= len(data):
        raise DecodeError("truncated_ip", "no bytes left for an IP header", off)
    version = data[off] >> 4
    if ethertype == 0:
        if version not in (4, 6):
            raise DecodeError("ip_bad_version", f"IP version {version} is neither 4 nor 6", off)
        expected = version
    elif ethertype == ETHERTYPE_IPV4:
        expected = 4
    elif ethertype == ETHERTYPE_IPV6:
        expected = 6
    else:
        raise DecodeError("ip_unknown_ethertype", f"ethertype 0x{ethertype:04x} is not IPv4 or IPv6", off)
    if version != expected:
        raise DecodeError("ip_bad_version", f"IP version {version} under an IPv{expected} ethertype", off)
    if version == 4:
        return _decode_ipv4(data, off)
    return _decode_ipv6(data, off)


def _decode_ipv4(data: bytes, off: int) -> IPPacket:
    if len(data) - off < _IPV4_MIN:
        raise DecodeError("truncated_ip", f"{len(data) - off} octets, IPv4 needs 20", off)
    (vihl, _tos, total_length, _ident, flags_frag, ttl, proto, _checksum, src, dst) = _IPV4.unpack_from(
        data, off
    )
    ihl = vihl & 0x0F
    header_len = ihl * 4
    if ihl < 5:
        raise DecodeError("ip_bad_ihl", f"IHL {ihl} is below the minimum of 5", off)
    if len(data) - off < header_len:
        raise DecodeError(
            "truncated_ip", f"IHL {ihl} needs {header_len} octets, {len(data) - off} captured", off
        )
    if total_length == 0:
        # RFC 791 forbids it, but TSO/LSO captures on the sender carry 0 (Wireshark does the same).
        end = len(data)
    elif total_length < header_len:
        raise DecodeError(
            "ip_bad_length", f"total length {total_length} is below the header length {header_len}", off
        )
    else:
        end = min(off + total_length, len(data))
    frag_off = flags_frag & 0x1FFF
    mf = bool(flags_frag & 0x2000)
    return IPPacket(
        version=4,
        src=inet_ntoa(src),  # what str(IPv4Address) gives, for less (docs/benchmark.md)
        dst=inet_ntoa(dst),
        src_raw=src,
        dst_raw=dst,
        protocol=proto,
        payload_offset=off + header_len,
        payload_end=end,
        fragment=mf or frag_off > 0,
        ttl=ttl,
        raw_header=bytes(data[off : off + header_len]),
    )


def _decode_ipv6(data: bytes, off: int) -> IPPacket:
    if len(data) - off < _IPV6_LEN:
        raise DecodeError("truncated_ip", f"{len(data) - off} octets, IPv6 needs 40", off)
    vtcfl, payload_length, next_header, hop_limit, src, dst = _IPV6.unpack_from(data, off)
    traffic_class = (vtcfl >> 20) & 0xFF
    start = off + _IPV6_LEN
    # Payload Length 0 means a jumbogram (RFC 2675) or a TSO capture: take what was captured.
    end = len(data) if payload_length == 0 else min(start + payload_length, len(data))

    extensions: list[IPv6ExtensionHeader] = []
    proto = next_header
    pos = start
    frag_offset = 0
    more = False
    frag_id: int | None = None
    while proto in _IPV6_EXTENSIONS:
        if len(extensions) >= _MAX_EXTENSION_HEADERS:
            raise DecodeError(
                "ipv6_bad_extension", f"more than {_MAX_EXTENSION_HEADERS} extension headers", pos
            )
        if end - pos < 8:
            raise DecodeError("ipv6_bad_extension", f"extension header {proto} cut short", pos)
        nxt = data[pos]
        if proto == IPProtocol.IPV6_FRAG:
            length = 8
            fo_m, ident = struct.unpack_from("!HI", data, pos + 2)
            frag_offset = fo_m >> 3
            more = bool(fo_m & 1)
            frag_id = ident
        else:
            length = (data[pos + 1] + 1) * 8
            if end - pos < length:
                raise DecodeError(
                    "ipv6_bad_extension",
                    f"extension header {proto} claims {length} octets, {end - pos} left",
                    pos,
                )
        extensions.append(IPv6ExtensionHeader(header_type=proto, next_header=nxt, offset=pos, length=length))
        pos += length
        proto = nxt
        if frag_offset > 0:
            break  # a later fragment: what follows is not a header

    header = IPv6Header(
        version=6,
        traffic_class=traffic_class,
        dscp=traffic_class >> 2,
        ecn=traffic_class & 0x3,
        flow_label=vtcfl & 0xFFFFF,
        payload_length=payload_length,
        next_header=next_header,
        hop_limit=hop_limit,
        src=src,
        dst=dst,
        extension_headers=tuple(extensions),
        upper_protocol=proto,
        fragment_offset=frag_offset,
        more_fragments=more,
        fragment_identification=frag_id,
    )
    return IPPacket(
        version=6,
        src=str(ipaddress.IPv6Address(src)),
        dst=str(ipaddress.IPv6Address(dst)),
        src_raw=src,
        dst_raw=dst,
        protocol=proto,
        payload_offset=pos,
        payload_end=end,
        fragment=more or frag_offset > 0,
        ttl=hop_limit,
        raw_header=b"",
        v6=header,
    )
