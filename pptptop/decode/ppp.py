"""The PPP frame inside PPTP's enhanced GRE (RFC 1661 §2, RFC 1662 §3, RFC 2637 §4.1).

:func:`ppp_header` is the allocation-free hot-path reader of the Address/
Control and Protocol fields (both compressible: ACFC and PFC, RFC 1661
§6.5–6.6). :func:`decode_ppp` dispatches the Information field to the
protocol decoders: LCP/IPCP/IPV6CP/CCP (:mod:`lcp`), PAP/CHAP/EAP
(:mod:`auth`), CBCP (:mod:`ncp`), the MPPE header (:mod:`ccp`), and the inner
IPv4/IPv6 datagram summaries defined here.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from pptptop.decode.auth import decode_chap, decode_eap, decode_pap
from pptptop.decode.ccp import decode_mppe_header
from pptptop.decode.errors import DecodeError
from pptptop.decode.lcp import decode_control_packet
from pptptop.decode.ncp import decode_cbcp

__all__ = [
    "PPP_PROTOCOL_NAMES",
    "InnerIPv4",
    "InnerIPv6",
    "PppFrame",
    "PppProtocol",
    "decode_inner_ipv4",
    "decode_inner_ipv6",
    "decode_ppp",
    "ppp_header",
    "protocol_name",
    "short_name",
]


class PppProtocol(IntEnum):
    """PPP Protocol field values used over PPTP (RFC 1661 §2, IANA "PPP DLL Protocol Numbers")."""

    LCP = 0xC021
    PAP = 0xC023
    CHAP = 0xC223
    EAP = 0xC227
    CBCP = 0xC029
    IPCP = 0x8021
    IPV6CP = 0x8057
    CCP = 0x80FD
    CCP_LINK = 0x80FB
    ECP = 0x8053
    ECP_LINK = 0x8055
    BACP = 0xC02B
    BAP = 0xC02D
    MP = 0x003D
    IPV4 = 0x0021
    IPV6 = 0x0057
    COMPRESSED = 0x00FD
    COMPRESSED_LINK = 0x00FB
    ENCRYPTED = 0x0053
    ENCRYPTED_LINK = 0x0055
    LQR = 0xC025
    VJ_COMP = 0x002D
    VJ_UNCOMP = 0x002F


#: Wireshark's names of PPP protocols (tshark 4.0 value table of ``ppp.protocol``).
PPP_PROTOCOL_NAMES: dict[int, str] = {
    0x0001: "Padding Protocol",
    0x0003: "ROHC small-CID",
    0x0005: "ROHC large-CID",
    0x0021: "Internet Protocol version 4",
    0x0023: "OSI Network Layer",
    0x0025: "Xerox NS IDP",
    0x0027: "DECnet Phase IV",
    0x0029: "Appletalk",
    0x002B: "Novell IPX",
    0x002D: "Van Jacobson Compressed TCP/IP",
    0x002F: "Van Jacobson Uncompressed TCP/IP",
    0x0031: "Bridging PDU",
    0x0033: "Stream Protocol (ST-II)",
    0x0035: "Banyan Vines",
    0x0039: "AppleTalk EDDP",
    0x003B: "AppleTalk SmartBuffered",
    0x003D: "Multi-Link",
    0x003F: "NETBIOS Framing",
    0x0041: "Cisco Systems",
    0x0043: "Ascom Timeplex",
    0x0045: "Fujitsu Link Backup and Load Balancing (LBLB)",
    0x0047: "DCA Remote Lan",
    0x0049: "Serial Data Transport Protocol (PPP-SDTP)",
    0x004B: "SNA over 802.2",
    0x004D: "SNA",
    0x004F: "IPv6 Header Compression ",
    0x0051: "KNX Bridging Data",
    0x0053: "Encryption",
    0x0055: "Individual Link Encryption",
    0x0057: "Internet Protocol version 6",
    0x0059: "PPP Muxing",
    0x005B: "Vendor-Specific Network Protocol (VSNP)",
    0x005D: "TRILL Network Protocol (TNP)",
    0x0061: "RTP IPHC Full Header",
    0x0063: "RTP IPHC Compressed TCP",
    0x0065: "RTP IPHC Compressed Non TCP",
    0x0067: "RTP IPHC Compressed UDP 8",
    0x0069: "RTP IPHC Compressed RTP 8",
    0x006F: "Stampede Bridging",
    0x0073: "MP+ Protocol",
    0x00C1: "NTCITS IPI",
    0x00FB: "Single link compression in multilink",
    0x00FD: "Compressed datagram",
    0x0201: "802.1d Hello Packets",
    0x0203: "IBM Source Routing BPDU",
    0x0205: "DEC LANBridge100 Spanning Tree",
    0x0207: "Cisco Discovery Protocol",
    0x0209: "Netcs Twin Routing",
    0x020B: "STP - Scheduled Transfer Protocol",
    0x020D: "EDP - Extreme Discovery Protocol",
    0x0211: "Optical Supervisory Channel Protocol (OSCP)",
    0x0213: "Optical Supervisory Channel Protocol (OSCP)",
    0x0231: "Luxcom",
    0x0233: "Sigma Network Systems",
    0x0235: "Apple Client Server Protocol",
    0x0281: "MPLS Unicast",
    0x0283: "MPLS Multicast",
    0x0285: "IEEE p1284.4 standard - data packets",
    0x0287: "ETSI TETRA Network Protocol Type 1",
    0x0289: "Multichannel Flow Treatment Protocol",
    0x2063: "RTP IPHC Compressed TCP No Delta",
    0x2065: "RTP IPHC Context State",
    0x2067: "RTP IPHC Compressed UDP 16",
    0x2069: "RTP IPHC Compressed RTP 16",
    0x4001: "Cray Communications Control Protocol",
    0x4003: "CDPD Mobile Network Registration Protocol",
    0x4005: "Expand accelerator protocol",
    0x4007: "ODSICP NCP",
    0x4009: "DOCSIS DLL",
    0x400B: "Cetacean Network Detection Protocol",
    0x4021: "Stacker LZS",
    0x4023: "RefTek Protocol",
    0x4025: "Fibre Channel",
    0x4027: "EMIT Protocols",
    0x405B: "Vendor-Specific Protocol (VSP)",
    0x405D: "TRILL Link State Protocol (TLSP)",
    0x8021: "Internet Protocol Control Protocol",
    0x8023: "OSI Network Layer Control Protocol",
    0x8025: "Xerox NS IDP Control Protocol",
    0x8027: "DECnet Phase IV Control Protocol",
    0x8029: "AppleTalk Control Protocol",
    0x802B: "Novell IPX Control Protocol",
    0x8031: "Bridging NCP",
    0x8033: "Stream Protocol Control Protocol",
    0x8035: "Banyan Vines Control Protocol",
    0x803D: "Multi-Link Control Protocol",
    0x803F: "NETBIOS Framing Control Protocol",
    0x8041: "Cisco Systems Control Protocol",
    0x8043: "Ascom Timeplex",
    0x8045: "Fujitsu LBLB Control Protocol",
    0x8047: "DCA Remote Lan Network Control Protocol (RLNCP)",
    0x8049: "Serial Data Control Protocol (PPP-SDCP)",
    0x804B: "SNA over 802.2 Control Protocol",
    0x804D: "SNA Control Protocol",
    0x804F: "IP6 Header Compression Control Protocol",
    0x8051: "KNX Bridging Control Protocol",
    0x8053: "Encryption Control Protocol",
    0x8055: "Individual Link Encryption Control Protocol",
    0x8057: "IPv6 Control Protocol",
    0x8059: "PPP Muxing Control Protocol",
    0x805B: "Vendor-Specific Network Control Protocol (VSNCP)",
    0x805D: "TRILL Network Control Protocol",
    0x806F: "Stampede Bridging Control Protocol",
    0x8073: "MP+ Control Protocol",
    0x80C1: "NTCITS IPI Control Protocol",
    0x80FB: "Single link compression in multilink control",
    0x80FD: "Compression Control Protocol",
    0x8207: "Cisco Discovery Protocol Control Protocol",
    0x8209: "Netcs Twin Routing",
    0x820B: "STP - Control Protocol",
    0x820D: "EDPCP - Extreme Discovery Protocol Control Protocol",
    0x8235: "Apple Client Server Protocol Control",
    0x8281: "MPLS Control Protocol",
    0x8285: "IEEE p1284.4 standard - Protocol Control",
    0x8287: "ETSI TETRA TNP1 Control Protocol",
    0x8289: "Multichannel Flow Treatment Protocol",
    0xC021: "Link Control Protocol",
    0xC023: "Password Authentication Protocol",
    0xC025: "Link Quality Report",
    0xC027: "Shiva Password Authentication Protocol",
    0xC029: "Callback Control Protocol (CBCP)",
    0xC02B: "BACP Bandwidth Allocation Control Protocol",
    0xC02D: "BAP Bandwidth Allocation Protocol",
    0xC05B: "Vendor-Specific Authentication Protocol (VSAP)",
    0xC081: "Container Control Protocol",
    0xC223: "Challenge Handshake Authentication Protocol",
    0xC225: "RSA Authentication Protocol",
    0xC227: "Extensible Authentication Protocol",
    0xC229: "Mitsubishi Security Information Exchange Protocol (SIEP)",
    0xC26F: "Stampede Bridging Authorization Protocol",
    0xC281: "Proprietary Authentication Protocol",
    0xC283: "Proprietary Authentication Protocol",
    0xC481: "Proprietary Node ID Authentication Protocol",
}

_SHORT_NAMES: dict[int, str] = {
    PppProtocol.LCP: "LCP",
    PppProtocol.PAP: "PAP",
    PppProtocol.CHAP: "CHAP",
    PppProtocol.EAP: "EAP",
    PppProtocol.CBCP: "CBCP",
    PppProtocol.IPCP: "IPCP",
    PppProtocol.IPV6CP: "IPV6CP",
    PppProtocol.CCP: "CCP",
    PppProtocol.CCP_LINK: "CCP",
    PppProtocol.ECP: "ECP",
    PppProtocol.ECP_LINK: "ECP",
    PppProtocol.BACP: "BACP",
    PppProtocol.BAP: "BAP",
    PppProtocol.MP: "MP",
    PppProtocol.IPV4: "IP",
    PppProtocol.IPV6: "IPv6",
    PppProtocol.COMPRESSED: "Comp",
    PppProtocol.COMPRESSED_LINK: "Comp",
    PppProtocol.ENCRYPTED: "Encrypted",
    PppProtocol.ENCRYPTED_LINK: "Encrypted",
    PppProtocol.LQR: "LQR",
    PppProtocol.VJ_COMP: "VJ-Comp",
    PppProtocol.VJ_UNCOMP: "VJ-Uncomp",
}


#: PPP protocols that carry data, not negotiation (RFC 1661 §2): a data packet moves a tunnel to its data phase
DATA_PROTOCOLS = frozenset({
    PppProtocol.COMPRESSED, PppProtocol.COMPRESSED_LINK, PppProtocol.IPV4, PppProtocol.IPV6,
    PppProtocol.VJ_COMP, PppProtocol.VJ_UNCOMP, PppProtocol.MP,
})
#: the data protocols whose packets are only counted, never looked into; the others (plain IPv4 and IPv6,
#: whose inner flows the tracker follows) take the per-packet path even when a batch is counted at once
COUNTED_PROTOCOLS = DATA_PROTOCOLS - {PppProtocol.IPV4, PppProtocol.IPV6}


def protocol_name(p: int) -> str:
    """Wireshark's name of a PPP protocol ("Link Control Protocol"); "Unknown (0xNNNN)" otherwise."""
    return PPP_PROTOCOL_NAMES.get(p, f"Unknown (0x{p:04x})")


def short_name(p: int) -> str:
    """Short column name: tshark's "PPP xxx" without "PPP " ("LCP", "CHAP", "Comp", "IP"); else hex."""
    return _SHORT_NAMES.get(p, f"0x{p:04x}")


def ppp_header(payload: bytes, off: int = 0) -> tuple[int, int]:
    """(protocol, header length) of the PPP frame at ``payload[off]``; (-1, 0) if too short.

    Address/Control 0xFF 0x03 may be absent (ACFC) and the Protocol field may
    be one octet (PFC: its low bit is set), RFC 1661 §6.5–6.6. A few byte
    indexes, no allocation beyond the result: the tracker calls this per GRE packet.
    """
    try:
        b = payload[off]
        if b == 0xFF and payload[off + 1] == 0x03:
            b = payload[off + 2]
            if b & 1:
                return b, 3
            return (b << 8) | payload[off + 3], 4
        if b & 1:
            return b, 1
        return (b << 8) | payload[off + 1], 2
    except IndexError:
        return -1, 0


@dataclass(frozen=True, slots=True)
class InnerIPv4:
    """Summary of the IPv4 datagram in a PPP protocol 0x0021 frame (RFC 791).

    Ports are set for TCP, UDP, SCTP and UDP-Lite first fragments; ICMP
    type/code for ICMP. ``length`` is the IPv4 Total Length.
    """

    src: str
    dst: str
    protocol: int
    src_port: int | None
    dst_port: int | None
    length: int
    ttl: int = 0
    icmp_type: int | None = None
    icmp_code: int | None = None


@dataclass(frozen=True, slots=True)
class InnerIPv6:
    """Summary of the IPv6 datagram in a PPP protocol 0x0057 frame (RFC 8200).

    ``protocol`` is the upper-layer protocol after the extension headers;
    ``length`` is 40 plus the Payload Length.
    """

    src: str
    dst: str
    protocol: int
    src_port: int | None
    dst_port: int | None
    length: int
    hop_limit: int = 0
    icmp_type: int | None = None
    icmp_code: int | None = None


_PORT_PROTOCOLS = frozenset({6, 17, 132, 136})
_IPV6_EXTENSIONS = frozenset({0, 43, 60})
_IPV6_FRAGMENT = 44


def _transport(protocol: int, data: bytes, pos: int, icmp: int) -> tuple[int | None, int | None,
                                                                          int | None, int | None]:
    if protocol in _PORT_PROTOCOLS and pos + 4 <= len(data):
        return ((data[pos] << 8) | data[pos + 1], (data[pos + 2] << 8) | data[pos + 3], None, None)
    if protocol == icmp and pos + 2 <= len(data):
        return None, None, data[pos], data[pos + 1]
    return None, None, None, None


def decode_inner_ipv4(info: bytes) -> InnerIPv4:
    """Summarise the IPv4 header of a PPP 0x0021 payload (RFC 791 §3.1)."""
    if len(info) < 20:
        raise DecodeError("inner_ip_truncated", f"an IPv4 header needs 20 octets, got {len(info)}", 0)
    if info[0] >> 4 != 4:
        raise DecodeError("inner_ip_bad_version", f"IP version {info[0] >> 4} in a PPP IPv4 frame", 0)
    ihl = (info[0] & 0x0F) * 4
    if ihl < 20:
        raise DecodeError("inner_ip_truncated", f"IPv4 header length {ihl} is below 20", 0)
    protocol = info[9]
    first = ((info[6] & 0x1F) << 8 | info[7]) == 0
    ports = _transport(protocol, info, ihl, 1) if first else (None, None, None, None)
    return InnerIPv4(socket.inet_ntop(socket.AF_INET, info[12:16]),
                     socket.inet_ntop(socket.AF_INET, info[16:20]),
                     protocol, ports[0], ports[1], (info[2] << 8) | info[3], info[8], ports[2], ports[3])


def decode_inner_ipv6(info: bytes) -> InnerIPv6:
    """Summarise the IPv6 header of a PPP 0x0057 payload (RFC 8200 §3), walking extension headers."""
    if len(info) < 40:
        raise DecodeError("inner_ip_truncated", f"an IPv6 header needs 40 octets, got {len(info)}", 0)
    if info[0] >> 4 != 6:
        raise DecodeError("inner_ip_bad_version", f"IP version {info[0] >> 4} in a PPP IPv6 frame", 0)
    nh = info[6]
    pos = 40
    first = True
    while nh in _IPV6_EXTENSIONS or nh == _IPV6_FRAGMENT:
        if pos + 8 > len(info):
            break
        if nh == _IPV6_FRAGMENT:
            first = first and ((info[pos + 2] << 8 | info[pos + 3]) & 0xFFF8) == 0
            size = 8
        else:
            size = (info[pos + 1] + 1) * 8
        nh = info[pos]
        pos += size
    ports = _transport(nh, info, pos, 58) if first else (None, None, None, None)
    return InnerIPv6(socket.inet_ntop(socket.AF_INET6, info[8:24]),
                     socket.inet_ntop(socket.AF_INET6, info[24:40]),
                     nh, ports[0], ports[1], 40 + ((info[4] << 8) | info[5]), info[7], ports[2], ports[3])


@dataclass(frozen=True, slots=True)
class PppFrame:
    """One PPP frame: header facts, the Information field, and its decoded message.

    ``message`` is a :class:`~pptptop.decode.lcp.ControlPacket` (LCP, IPCP,
    IPV6CP, CCP, ECP, BACP), ``PapPacket``/``ChapPacket``/``EapPacket``,
    ``CbcpPacket``, an ``MppeHeader`` (0x00FD/0x00FB), an :class:`InnerIPv4`
    or :class:`InnerIPv6`, or None for other protocols. When the message does
    not parse, ``message`` is None and ``error`` holds the DecodeError.
    """

    address_control: bool
    protocol: int
    header_length: int
    info: bytes
    message: object | None
    error: DecodeError | None

    @property
    def protocol_name(self) -> str:
        """Wireshark's protocol name."""
        return protocol_name(self.protocol)

    @property
    def short_name(self) -> str:
        return short_name(self.protocol)


def _control(protocol: int) -> Callable[[bytes, int | None], object]:
    def decode(info: bytes, _alg: int | None) -> object:
        return decode_control_packet(protocol, info)
    return decode


_DECODERS: dict[int, Callable[[bytes, int | None], object]] = {
    PppProtocol.LCP: _control(PppProtocol.LCP),
    PppProtocol.IPCP: _control(PppProtocol.IPCP),
    PppProtocol.IPV6CP: _control(PppProtocol.IPV6CP),
    PppProtocol.CCP: _control(PppProtocol.CCP),
    PppProtocol.CCP_LINK: _control(PppProtocol.CCP_LINK),
    PppProtocol.ECP: _control(PppProtocol.ECP),
    PppProtocol.ECP_LINK: _control(PppProtocol.ECP_LINK),
    PppProtocol.BACP: _control(PppProtocol.BACP),
    PppProtocol.PAP: lambda info, _alg: decode_pap(info),
    PppProtocol.CHAP: decode_chap,
    PppProtocol.EAP: lambda info, _alg: decode_eap(info),
    PppProtocol.CBCP: lambda info, _alg: decode_cbcp(info),
    PppProtocol.COMPRESSED: lambda info, _alg: decode_mppe_header(info),
    PppProtocol.COMPRESSED_LINK: lambda info, _alg: decode_mppe_header(info),
    PppProtocol.IPV4: lambda info, _alg: decode_inner_ipv4(info),
    PppProtocol.IPV6: lambda info, _alg: decode_inner_ipv6(info),
}


def decode_ppp(payload: bytes, *, chap_algorithm: int | None = None) -> PppFrame:
    """Decode a PPP frame (the payload of an enhanced GRE packet).

    ``chap_algorithm`` is the CHAP Algorithm LCP negotiated, for splitting
    CHAP Response values. A DecodeError inside the message is caught into
    ``error``; DecodeError ``ppp_header_truncated`` is raised only when not
    even the PPP header can be read.
    """
    protocol, hlen = ppp_header(payload)
    if hlen == 0:
        raise DecodeError("ppp_header_truncated",
                          f"{len(payload)} octets cannot hold a PPP Protocol field", 0)
    info = bytes(payload[hlen:])
    decoder = _DECODERS.get(protocol)
    message: object | None = None
    error: DecodeError | None = None
    if decoder is not None:
        try:
            message = decoder(info, chap_algorithm)
        except DecodeError as exc:
            error = exc
    return PppFrame(hlen in (3, 4), protocol, hlen, info, message, error)
