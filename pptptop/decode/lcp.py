"""The RFC 1661 §5 packet format, shared by LCP, IPCP, IPV6CP, CCP (and ECP, BACP).

One implementation, :func:`decode_control_packet`, reads Code, Identifier,
Length and the code-specific data; Configure-Request/Ack/Nak/Reject carry a
list of Type-Length-Data options (RFC 1661 §6) whose values are decoded by a
per-protocol function (LCP here, IPCP/IPV6CP in :mod:`ncp`, CCP in :mod:`ccp`).
Codes 12 and 13 are RFC 1570; 14 and 15 are CCP's Reset-Request/Ack (RFC 1962 §2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from pptptop.decode.ccp import CCP_OPTION_NAMES, decode_ccp_option_value
from pptptop.decode.errors import DecodeError
from pptptop.decode.ncp import (
    CBCP_CODE_NAMES,
    IPCP_OPTION_NAMES,
    IPV6CP_OPTION_NAMES,
    decode_ipcp_option_value,
    decode_ipv6cp_option_value,
)

__all__ = [
    "LCP_OPTION_NAMES",
    "AuthProtocol",
    "Callback",
    "ControlCode",
    "ControlPacket",
    "EndpointDiscriminator",
    "LcpOption",
    "Option",
    "QualityProtocol",
    "code_name",
    "decode_control_packet",
    "decode_lcp_option_value",
    "option_name",
    "pppd_code",
]

_LCP = 0xC021
_PAP = 0xC023
_CHAP = 0xC223
_EAP = 0xC227
_CBCP = 0xC029
_IPCP = 0x8021
_IPV6CP = 0x8057
_CCP = 0x80FD
_CCP_LINK = 0x80FB
_LQR = 0xC025


class ControlCode(IntEnum):
    """Packet codes of RFC 1661 §5, RFC 1570 §2 (12, 13) and RFC 1962 §2 (14, 15)."""

    CONFIGURE_REQUEST = 1
    CONFIGURE_ACK = 2
    CONFIGURE_NAK = 3
    CONFIGURE_REJECT = 4
    TERMINATE_REQUEST = 5
    TERMINATE_ACK = 6
    CODE_REJECT = 7
    PROTOCOL_REJECT = 8
    ECHO_REQUEST = 9
    ECHO_REPLY = 10
    DISCARD_REQUEST = 11
    IDENTIFICATION = 12
    TIME_REMAINING = 13
    RESET_REQUEST = 14
    RESET_ACK = 15


# Wireshark's value tables (packet-ppp.c lcp_vals, cp_vals, ccp_vals, pap_vals, chap_vals, eap_code_vals).
_CP_NAMES: dict[int, str] = {
    1: "Configuration Request",
    2: "Configuration Ack",
    3: "Configuration Nak",
    4: "Configuration Reject",
    5: "Termination Request",
    6: "Termination Ack",
    7: "Code Reject",
}
_LCP_NAMES: dict[int, str] = {
    **_CP_NAMES,
    8: "Protocol Reject",
    9: "Echo Request",
    10: "Echo Reply",
    11: "Discard Request",
    12: "Identification",
    13: "Time Remaining",
}
_CCP_NAMES: dict[int, str] = {**_CP_NAMES, 14: "Reset Request", 15: "Reset Ack"}
_PAP_NAMES: dict[int, str] = {1: "Authenticate-Request", 2: "Authenticate-Ack", 3: "Authenticate-Nak"}
_CHAP_NAMES: dict[int, str] = {1: "Challenge", 2: "Response", 3: "Success", 4: "Failure",
                               5: "Change Password (version 1)", 6: "Change Password (version 2)",
                               7: "Change-Password"}
_EAP_NAMES: dict[int, str] = {1: "Request", 2: "Response", 3: "Success", 4: "Failure",
                              5: "Initiate", 6: "Finish"}
_CODE_TABLES: dict[int, dict[int, str]] = {
    _LCP: _LCP_NAMES,
    _CCP: _CCP_NAMES,
    _CCP_LINK: _CCP_NAMES,
    _PAP: _PAP_NAMES,
    _CHAP: _CHAP_NAMES,
    _EAP: _EAP_NAMES,
    _CBCP: CBCP_CODE_NAMES,
}

# pppd 2.4.9's short names (lcp.c lcp_codenames, ccp.c ccp_codenames).
_PPPD_CODES: dict[int, str] = {
    1: "ConfReq", 2: "ConfAck", 3: "ConfNak", 4: "ConfRej", 5: "TermReq", 6: "TermAck",
    7: "CodeRej", 8: "ProtRej", 9: "EchoReq", 10: "EchoRep", 11: "DiscReq", 12: "Ident",
    13: "TimeRem", 14: "ResetReq", 15: "ResetAck",
}


def code_name(protocol: int, code: int) -> str:
    """Wireshark's name of ``code`` for ``protocol`` ("Configuration Request", "Echo Request", …).

    Unknown codes give "Unknown", as tshark's Info column does.
    """
    return _CODE_TABLES.get(protocol, _CP_NAMES).get(code, "Unknown")


def pppd_code(code: int) -> str:
    """pppd's short name of an RFC 1661/1570/1962 code ("ConfReq", "EchoRep", "ResetAck", …)."""
    return _PPPD_CODES.get(code, f"code=0x{code:x}")


class LcpOption(IntEnum):
    """LCP Configuration Options (RFC 1661 §6 and IANA "PPP LCP Configuration Option Types")."""

    VENDOR_SPECIFIC = 0
    MRU = 1
    ACCM = 2
    AUTH_PROTOCOL = 3
    QUALITY_PROTOCOL = 4
    MAGIC_NUMBER = 5
    LINK_QUALITY_MONITORING = 6
    PFC = 7
    ACFC = 8
    FCS_ALTERNATIVES = 9
    SELF_DESCRIBING_PAD = 10
    NUMBERED_MODE = 11
    MULTILINK_PROCEDURE = 12
    CALLBACK = 13
    CONNECT_TIME = 14
    COMPOUND_FRAMES = 15
    NOMINAL_DATA_ENCAPSULATION = 16
    MRRU = 17
    SHORT_SEQUENCE = 18
    ENDPOINT_DISCRIMINATOR = 19
    PROPRIETARY = 20
    DCE_IDENTIFIER = 21
    MULTILINK_PLUS_PROCEDURE = 22
    LINK_DISCRIMINATOR = 23
    LCP_AUTHENTICATION = 24
    COBS = 25
    PREFIX_ELISION = 26
    MULTILINK_HEADER_FORMAT = 27
    INTERNATIONALIZATION = 28
    SONET_SDH = 29
    PPP_MUXING = 30


#: Wireshark's option names (tshark 4.0 ``lcp.opt.*`` subtrees).
LCP_OPTION_NAMES: dict[int, str] = {
    0: "Vendor Specific",
    1: "Maximum Receive Unit",
    2: "Async Control Character Map",
    3: "Authentication Protocol",
    4: "Quality Protocol",
    5: "Magic Number",
    6: "Link Quality Monitoring",
    7: "Protocol Field Compression",
    8: "Address and Control Field Compression",
    9: "FCS Alternatives",
    10: "Self Describing Pad",
    11: "Numbered Mode",
    12: "Multi Link Procedure",
    13: "Callback",
    14: "Connect Time",
    15: "Compound Frames (Deprecated)",
    16: "Nominal Data Encapsulation (Deprecated)",
    17: "Multilink MRRU",
    18: "Multilink Short Sequence Number Header",
    19: "Multilink Endpoint Discriminator",
    20: "Proprietary",
    21: "DCE Identifier",
    22: "Multi Link Plus Procedure",
    23: "Link Discriminator for BACP",
    24: "Authentication Option",
    25: "Consistent Overhead Byte Stuffing (COBS)",
    26: "Prefix Elision",
    27: "Multilink header format",
    28: "Internationalization",
    29: "Simple Data Link on SONET/SDH",
}

_OPTION_TABLES: dict[int, dict[int, str]] = {
    _LCP: LCP_OPTION_NAMES,
    _IPCP: IPCP_OPTION_NAMES,
    _IPV6CP: IPV6CP_OPTION_NAMES,
    _CCP: CCP_OPTION_NAMES,
    _CCP_LINK: CCP_OPTION_NAMES,
}


def option_name(protocol: int, opt_type: int) -> str:
    """Wireshark's name of a Configuration Option of ``protocol``; "Unknown (N)" otherwise."""
    return _OPTION_TABLES.get(protocol, {}).get(opt_type, f"Unknown ({opt_type})")


_CHAP_ALGORITHMS: dict[int, tuple[str, str]] = {
    5: ("CHAP-MD5", "chap MD5"),
    0x80: ("MS-CHAP", "chap MS"),
    0x81: ("MS-CHAPv2", "chap MS-v2"),
}


@dataclass(frozen=True, slots=True)
class AuthProtocol:
    """Authentication-Protocol option value (RFC 1661 §6.2; CHAP algorithm per RFC 1994 §3).

    ``algorithm`` is the CHAP Algorithm octet (5 MD5, 0x80 MS-CHAP, 0x81 MS-CHAPv2), None otherwise.
    """

    protocol: int
    algorithm: int | None

    @property
    def method(self) -> str:
        """"PAP", "CHAP-MD5", "MS-CHAP", "MS-CHAPv2", "EAP", "CHAP-<alg>" or the protocol in hex."""
        if self.protocol == _PAP:
            return "PAP"
        if self.protocol == _EAP:
            return "EAP"
        if self.protocol == _CHAP:
            if self.algorithm is None:
                return "CHAP"
            known = _CHAP_ALGORITHMS.get(self.algorithm)
            return known[0] if known else f"CHAP-{self.algorithm}"
        return f"0x{self.protocol:04x}"

    @property
    def pppd(self) -> str:
        """What pppd prints after ``auth `` ("chap MS-v2", "chap MD5", "chap MS", "pap", "eap").

        pppd prints an unknown CHAP algorithm octet as a trailing hex byte,
        which :func:`pptptop.decode.pppd.format_pppd` adds; here it is only "chap".
        """
        if self.protocol == _PAP:
            return "pap"
        if self.protocol == _EAP:
            return "eap"
        if self.protocol == _CHAP:
            known = _CHAP_ALGORITHMS.get(self.algorithm) if self.algorithm is not None else None
            return known[1] if known else "chap"
        return f"0x{self.protocol:x}"


@dataclass(frozen=True, slots=True)
class QualityProtocol:
    """Quality-Protocol option (RFC 1661 §6.3); LQR (0xC025) carries a Reporting-Period (RFC 1989 §2.5)."""

    protocol: int
    data: bytes
    reporting_period: int | None


@dataclass(frozen=True, slots=True)
class Callback:
    """Callback option (RFC 1570 §2.3); operation 6 means "use CBCP" (Microsoft)."""

    operation: int
    message: bytes


@dataclass(frozen=True, slots=True)
class EndpointDiscriminator:
    """Multilink Endpoint Discriminator (RFC 1990 §5.1.3): class and address."""

    klass: int
    address: bytes


@dataclass(frozen=True, slots=True)
class Option:
    """One Type-Length-Data option (RFC 1661 §6); ``offset`` is within the packet's info bytes."""

    type: int
    length: int
    data: bytes
    offset: int
    value: object


def _u(data: bytes) -> int:
    return int.from_bytes(data, "big")


def decode_lcp_option_value(opt_type: int, data: bytes) -> object:
    """Typed value of one LCP option (RFC 1661 §6, RFC 1570, RFC 1990).

    ints for MRU, ACCM, Magic-Number, FCS-Alternatives, Self-Describing-Pad,
    MRRU and Link Discriminator; :class:`AuthProtocol`,
    :class:`QualityProtocol`, :class:`Callback`,
    :class:`EndpointDiscriminator`; None for empty options (PFC, ACFC, SSNHF);
    the data bytes when the length does not fit the type.
    """
    n = len(data)
    if opt_type in (LcpOption.MRU, LcpOption.MRRU, LcpOption.LINK_DISCRIMINATOR) and n == 2:
        return _u(data)
    if opt_type in (LcpOption.ACCM, LcpOption.MAGIC_NUMBER) and n == 4:
        return _u(data)
    if opt_type in (LcpOption.FCS_ALTERNATIVES, LcpOption.SELF_DESCRIBING_PAD) and n == 1:
        return data[0]
    if opt_type == LcpOption.AUTH_PROTOCOL and n >= 2:
        proto = _u(data[:2])
        return AuthProtocol(proto, data[2] if proto == _CHAP and n >= 3 else None)
    if opt_type == LcpOption.QUALITY_PROTOCOL and n >= 2:
        proto = _u(data[:2])
        rest = data[2:]
        return QualityProtocol(proto, rest, _u(rest) if proto == _LQR and len(rest) == 4 else None)
    if opt_type == LcpOption.CALLBACK and n >= 1:
        return Callback(data[0], data[1:])
    if opt_type == LcpOption.ENDPOINT_DISCRIMINATOR and n >= 1:
        return EndpointDiscriminator(data[0], data[1:])
    return data if data else None


def _generic_option_value(opt_type: int, data: bytes) -> object:
    return data if data else None


_VALUE_DECODERS: dict[int, Callable[[int, bytes], object]] = {
    _LCP: decode_lcp_option_value,
    _IPCP: decode_ipcp_option_value,
    _IPV6CP: decode_ipv6cp_option_value,
    _CCP: decode_ccp_option_value,
    _CCP_LINK: decode_ccp_option_value,
}


@dataclass(frozen=True, slots=True)
class ControlPacket:
    """An RFC 1661 §5 packet of LCP, IPCP, IPV6CP, CCP (or ECP, BACP).

    ``options`` for codes 1–4; ``data`` is what follows the code's fixed
    fields: the Terminate reason, the rejected packet of a Code-Reject, the
    Echo/Discard data after the Magic-Number, the Identification message, the
    Reset-Request/Ack data. ``message`` is the text of Terminate,
    Identification and Time-Remaining (UTF-8, undecodable octets escaped).
    """

    protocol: int
    code: int
    identifier: int
    length: int
    options: tuple[Option, ...]
    data: bytes
    magic_number: int | None
    message: str
    rejected_protocol: int | None
    rejected_info: bytes
    seconds_remaining: int | None

    def option(self, type: int) -> Option | None:
        """The first option of this type, or None."""
        for o in self.options:
            if o.type == type:
                return o
        return None

    @property
    def code_name(self) -> str:
        """Wireshark's name of the code."""
        return code_name(self.protocol, self.code)


def _text(b: bytes) -> str:
    """A message as sent (Terminate, Identification): one character per octet (latin-1), like every wire
    string, so that no two different octet strings read the same."""
    return b.decode("latin-1")


def _parse_options(protocol: int, info: bytes, end: int) -> tuple[Option, ...]:
    decode_value = _VALUE_DECODERS.get(protocol, _generic_option_value)
    options: list[Option] = []
    pos = 4
    while pos < end:
        if end - pos < 2:
            raise DecodeError("ppp_bad_option_length",
                              "a lone octet where a Type-Length option should be", pos)
        otype = info[pos]
        olen = info[pos + 1]
        if olen < 2 or pos + olen > end:
            raise DecodeError("ppp_bad_option_length",
                              f"option {otype} has length {olen}, which does not fit the packet", pos + 1)
        data = info[pos + 2:pos + olen]
        options.append(Option(otype, olen, data, pos, decode_value(otype, data)))
        pos += olen
    return tuple(options)


def decode_control_packet(protocol: int, info: bytes) -> ControlPacket:
    """Decode one RFC 1661 §5 packet of ``protocol`` from the PPP Information field.

    Octets past the Length field (padding, RFC 1661 §5) are ignored. Raises
    DecodeError ``ppp_truncated`` (fewer than 4 octets, or Length larger than
    the info), ``ppp_bad_length`` (Length under 4), ``ppp_bad_option_length``
    (an option shorter than 2 or running past the packet) and
    ``lcp_short_data`` (an LCP code whose fixed fields do not fit).
    """
    if len(info) < 4:
        raise DecodeError("ppp_truncated", f"a control packet needs 4 octets, got {len(info)}", 0)
    code = info[0]
    length = (info[2] << 8) | info[3]
    if length < 4:
        raise DecodeError("ppp_bad_length", f"Length {length} is below the 4-octet header", 2)
    if length > len(info):
        raise DecodeError("ppp_truncated", f"Length {length} but only {len(info)} octets captured", 2)
    options: tuple[Option, ...] = ()
    data = b""
    magic: int | None = None
    message = ""
    rej_proto: int | None = None
    rej_info = b""
    seconds: int | None = None
    body = info[4:length]
    if 1 <= code <= 4:
        options = _parse_options(protocol, info, length)
    elif code in (5, 6):
        data = body
        message = _text(body)
    elif protocol == _LCP and 8 <= code <= 13:
        need = {8: 2, 13: 8}.get(code, 4)
        if len(body) < need:
            raise DecodeError("lcp_short_data",
                              f"LCP code {code} needs {need} data octets, got {len(body)}", 4)
        if code == 8:
            rej_proto = _u(body[:2])
            rej_info = body[2:]
            data = body
        else:
            magic = _u(body[:4])
            if code == 13:
                seconds = _u(body[4:8])
                data = body[8:]
                message = _text(data)
            else:
                data = body[4:]
                if code == 12:
                    message = _text(data)
    else:
        data = body
    return ControlPacket(protocol, code, info[1], length, options, data, magic, message,
                         rej_proto, rej_info, seconds)
