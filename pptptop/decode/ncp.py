"""Network Control Protocols: IPCP, IPV6CP option values, and CBCP.

IPCP (RFC 1332, RFC 1877) and IPV6CP (RFC 5072) packets use the RFC 1661 §5
format decoded by :func:`pptptop.decode.lcp.decode_control_packet`; this
module decodes their option values. CBCP (PPP protocol 0xC029) is Microsoft's
Callback Control Protocol, documented only in draft-ietf-pppext-callback-cp-02
and Wireshark's dissector: it has its own packet and option format.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pptptop.decode.errors import DecodeError

__all__ = [
    "CBCP_CODE_NAMES",
    "CBCP_OPTION_NAMES",
    "IPCP_OPTION_NAMES",
    "IPV6CP_OPTION_NAMES",
    "CbcpCode",
    "CbcpOption",
    "CbcpOptionType",
    "CbcpPacket",
    "IpCompression",
    "IpcpOption",
    "Ipv6cpOption",
    "decode_cbcp",
    "decode_ipcp_option_value",
    "decode_ipv6cp_option_value",
    "interface_identifier_text",
]

#: Van Jacobson TCP/IP header compression, the IP-Compression-Protocol value (RFC 1332 §3.2).
VJ_COMPRESSION = 0x002D


class IpcpOption(IntEnum):
    """IPCP Configuration Options (RFC 1332 §3, RFC 2290, RFC 1877)."""

    IP_ADDRESSES = 1
    IP_COMPRESSION = 2
    IP_ADDRESS = 3
    MOBILE_IPV4 = 4
    PRIMARY_DNS = 129
    PRIMARY_NBNS = 130
    SECONDARY_DNS = 131
    SECONDARY_NBNS = 132


class Ipv6cpOption(IntEnum):
    """IPV6CP Configuration Options (RFC 5072 §4)."""

    INTERFACE_IDENTIFIER = 1
    IPV6_COMPRESSION = 2


#: Wireshark's option names (tshark 4.0 ``ipcp.opt.*`` subtrees).
IPCP_OPTION_NAMES: dict[int, str] = {
    1: "IP Addresses (deprecated)",
    2: "IP Compression Protocol",
    3: "IP Address",
    4: "Mobile Node's Home IP Address",
    129: "Primary DNS Server IP Address",
    130: "Primary NBNS Server IP Address",
    131: "Secondary DNS Server IP Address",
    132: "Secondary NBNS Server IP Address",
}

#: Wireshark's option names (tshark 4.0 ``ipv6cp.opt.*`` subtrees).
IPV6CP_OPTION_NAMES: dict[int, str] = {
    1: "Interface Identifier",
    2: "IPv6 compression",
}

_IPV4_OPTIONS = frozenset({IpcpOption.IP_ADDRESS, IpcpOption.MOBILE_IPV4, IpcpOption.PRIMARY_DNS,
                           IpcpOption.PRIMARY_NBNS, IpcpOption.SECONDARY_DNS, IpcpOption.SECONDARY_NBNS})


@dataclass(frozen=True, slots=True)
class IpCompression:
    """IP-Compression-Protocol option (RFC 1332 §3.2; RFC 5072 §4.2 for IPv6).

    For Van Jacobson (0x002D) ``max_slot_id`` and ``comp_slot_id`` are set;
    for other protocols (IPHC 0x0061, ROHC 0x0003) they are None and the raw
    parameters are in ``parameters``.
    """

    protocol: int
    max_slot_id: int | None
    comp_slot_id: int | None
    parameters: bytes = b""


def _ipv4(b: bytes) -> str:
    return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"


def _compression(data: bytes) -> IpCompression:
    proto = (data[0] << 8) | data[1]
    params = data[2:]
    if proto == VJ_COMPRESSION and len(params) == 2:
        return IpCompression(proto, params[0], params[1], params)
    return IpCompression(proto, None, None, params)


def decode_ipcp_option_value(opt_type: int, data: bytes) -> object:
    """Typed value of one IPCP option (RFC 1332 §3, RFC 1877 §1).

    Addresses are dotted strings; IP-Addresses (option 1) is a (source,
    destination) pair; IP-Compression-Protocol is an :class:`IpCompression`.
    A length that does not fit the type leaves the data bytes.
    """
    n = len(data)
    if opt_type in _IPV4_OPTIONS and n == 4:
        return _ipv4(data)
    if opt_type == IpcpOption.IP_COMPRESSION and n >= 2:
        return _compression(data)
    if opt_type == IpcpOption.IP_ADDRESSES and n == 8:
        return (_ipv4(data[:4]), _ipv4(data[4:]))
    return data if data else None


def interface_identifier_text(ifid: bytes) -> str:
    """pppd's form of an IPV6CP Interface-Identifier: ``fe80::xxxx:xxxx:xxxx:xxxx`` (eui64.c)."""
    if len(ifid) != 8:
        return ifid.hex()
    h = ifid.hex()
    return f"fe80::{h[0:4]}:{h[4:8]}:{h[8:12]}:{h[12:16]}"


def decode_ipv6cp_option_value(opt_type: int, data: bytes) -> object:
    """Typed value of one IPV6CP option (RFC 5072 §4): the Interface-Identifier in pppd's form."""
    if opt_type == Ipv6cpOption.INTERFACE_IDENTIFIER and len(data) == 8:
        return interface_identifier_text(data)
    if opt_type == Ipv6cpOption.IPV6_COMPRESSION and len(data) >= 2:
        return IpCompression((data[0] << 8) | data[1], None, None, data[2:])
    return data if data else None


class CbcpCode(IntEnum):
    """CBCP packet codes (draft-ietf-pppext-callback-cp-02 §3)."""

    CALLBACK_REQUEST = 1
    CALLBACK_RESPONSE = 2
    CALLBACK_ACK = 3


#: Wireshark's names (packet-ppp.c ``cbcp_vals``).
CBCP_CODE_NAMES: dict[int, str] = {
    1: "Callback Request",
    2: "Callback Response",
    3: "Callback Ack",
}


class CbcpOptionType(IntEnum):
    """CBCP Callback Configuration Option types (draft-ietf-pppext-callback-cp-02 §4)."""

    NO_CALLBACK = 1
    USER_SPECIFIED = 2
    PRE_SPECIFIED = 3
    ANY_OF_LIST = 4


#: Wireshark's option names (tshark 4.0 ``cbcp.opt.*`` subtrees).
CBCP_OPTION_NAMES: dict[int, str] = {
    1: "No callback",
    2: "Callback to a user-specified number",
    3: "Callback to a pre-specified or admin-specified number",
    4: "Callback to any of a list of numbers",
}


@dataclass(frozen=True, slots=True)
class CbcpOption:
    """One CBCP option: callback delay, then (address type, NUL-terminated address) pairs.

    ``address_type`` and ``address`` repeat the first pair for convenience;
    address type 1 is a PSTN/ISDN dial string. ``offset`` is within the
    packet's info bytes.
    """

    type: int
    length: int
    data: bytes
    offset: int
    delay: int | None
    addresses: tuple[tuple[int, str], ...]

    @property
    def address_type(self) -> int | None:
        return self.addresses[0][0] if self.addresses else None

    @property
    def address(self) -> str | None:
        return self.addresses[0][1] if self.addresses else None


@dataclass(frozen=True, slots=True)
class CbcpPacket:
    """A CBCP packet: Code, Identifier, Length, options (draft-ietf-pppext-callback-cp-02 §3)."""

    code: int
    identifier: int
    length: int
    options: tuple[CbcpOption, ...]

    @property
    def code_name(self) -> str:
        return CBCP_CODE_NAMES.get(self.code, "Unknown")


def _cbcp_addresses(data: bytes) -> tuple[tuple[int, str], ...]:
    out: list[tuple[int, str]] = []
    pos = 1
    while pos < len(data):
        addr_type = data[pos]
        end = data.find(b"\x00", pos + 1)
        if end < 0:
            end = len(data)
        out.append((addr_type, data[pos + 1:end].decode("utf-8", "backslashreplace")))
        pos = end + 1
    return tuple(out)


def decode_cbcp(info: bytes) -> CbcpPacket:
    """Decode a CBCP packet (PPP protocol 0xC029).

    Raises DecodeError ``ppp_truncated`` when the Length field claims more
    than was captured and ``ppp_bad_option_length`` for an option whose length
    is under 2 or runs past the packet.
    """
    if len(info) < 4:
        raise DecodeError("ppp_truncated", f"CBCP header needs 4 octets, got {len(info)}", 0)
    length = (info[2] << 8) | info[3]
    if length < 4:
        raise DecodeError("ppp_bad_length", f"CBCP Length {length} is below the 4-octet header", 2)
    if length > len(info):
        raise DecodeError("ppp_truncated", f"CBCP Length {length} but only {len(info)} octets", 2)
    code = info[0]
    options: list[CbcpOption] = []
    pos = 4
    if code in (1, 2, 3):
        while pos < length:
            if length - pos < 2:
                raise DecodeError("ppp_bad_option_length", "a lone octet where a CBCP option should be", pos)
            otype, olen = info[pos], info[pos + 1]
            if olen < 2 or pos + olen > length:
                raise DecodeError("ppp_bad_option_length",
                                  f"CBCP option {otype} length {olen} does not fit the packet", pos + 1)
            data = info[pos + 2:pos + olen]
            delay = data[0] if data else None
            options.append(CbcpOption(otype, olen, data, pos, delay, _cbcp_addresses(data)))
            pos += olen
    return CbcpPacket(code, info[1], length, tuple(options))
