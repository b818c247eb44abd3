"""What the probe sends and reads on the wire: PPTP control messages, enhanced GRE, PPP.

Outgoing packets are built with scapy's layers (RFC 2637 §2 control
messages, §4.1 enhanced GRE; RFC 1661 LCP); what comes back is read with the
project's decoders for control messages and a few lines of ``struct`` for
GRE and PPP control packets (RFC 1661 §5): the probe sends and reads a
handful of packets, never the data path.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from scapy.layers.l2 import GRE_PPTP
from scapy.layers.pptp import (
    PPTPCallClearRequest,
    PPTPEchoReply,
    PPTPOutgoingCallRequest,
    PPTPStartControlConnectionRequest,
    PPTPStopControlConnectionRequest,
)
from scapy.packet import Raw

IPPROTO_GRE = 47
GRE_PPP = 0x880B
PPTP_PORT = 1723

# PPP protocols (RFC 1661 §2; RFC 1332; RFC 1962; RFC 1334; RFC 1994)
LCP = 0xC021
PAP = 0xC023
CHAP = 0xC223
EAP = 0xC227
IPCP = 0x8021
CCP = 0x80FD
IPV6CP = 0x8057

# control packet codes (RFC 1661 §5)
CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ = 1, 2, 3, 4
TERM_REQ, TERM_ACK, CODE_REJ, PROTO_REJ = 5, 6, 7, 8
ECHO_REQ, ECHO_REP = 9, 10

# LCP options (RFC 1661 §6, RFC 1662 §7.1)
OPT_MRU, OPT_ACCM, OPT_AUTH, OPT_MAGIC, OPT_PFC, OPT_ACFC = 1, 2, 3, 5, 7, 8
# CHAP algorithms (RFC 1994 §3; RFC 2433; RFC 2759)
CHAP_MD5, MSCHAP_V1, MSCHAP_V2 = 5, 0x80, 0x81
# IPCP options (RFC 1332 §3.3, RFC 1877)
IPCP_ADDRESS, IPCP_DNS1, IPCP_DNS2 = 3, 129, 131
# CCP MPPE option and bits (RFC 3078 §2.1)
CCP_MPPE = 18
MPPE_H, MPPE_M, MPPE_S, MPPE_L = 0x01000000, 0x80, 0x40, 0x20

AUTH_NAMES = {
    (PAP, None): "PAP",
    (CHAP, CHAP_MD5): "CHAP-MD5",
    (CHAP, MSCHAP_V1): "MS-CHAPv1",
    (CHAP, MSCHAP_V2): "MS-CHAPv2",
    (EAP, None): "EAP",
}


def auth_name(proto: int, algorithm: int | None) -> str:
    """The usual name of an Authentication-Protocol option's value (RFC 1661 §6.2)."""
    return AUTH_NAMES.get((proto, algorithm if proto == CHAP else None),
                          f"0x{proto:04x}" + (f"/0x{algorithm:02x}" if algorithm is not None else ""))


# --- PPTP control (RFC 2637 §2) -------------------------------------------------------------------------

def sccrq() -> bytes:
    return bytes(PPTPStartControlConnectionRequest(host_name=b"pptptop-probe", vendor_string=b"pptptop"))


def ocrq(call_id: int, serial: int) -> bytes:
    return bytes(PPTPOutgoingCallRequest(call_id=call_id, call_serial_number=serial))


def echo_reply(identifier: int) -> bytes:
    return bytes(PPTPEchoReply(identifier=identifier, result_code=1))


def ccrq(call_id: int) -> bytes:
    return bytes(PPTPCallClearRequest(call_id=call_id))


def stopccrq() -> bytes:
    return bytes(PPTPStopControlConnectionRequest(reason=1))


# --- GRE (RFC 2637 §4.1) ---------------------------------------------------------------------------------

def gre(call_id: int, seq: int, ack: int | None, ppp: bytes) -> bytes:
    """Enhanced GRE with a sequence number (and the last one received as an ack) around a PPP frame
    in HDLC-like framing (address 0xFF, control 0x03: RFC 1662 §3.1)."""
    pkt = GRE_PPTP(call_id=call_id, seqnum_present=1, sequence_number=seq,
                   acknum_present=int(ack is not None), ack_number=ack or 0)
    return bytes(pkt / Raw(load=b"\xff\x03" + ppp))


@dataclass(frozen=True, slots=True)
class GrePacket:
    """One enhanced GRE packet received: who sent it, the key's Call ID, and the PPP frame it carries."""

    source: str
    call_id: int
    seq: int | None
    protocol: int | None  # PPP protocol; None for an ack-only packet
    payload: bytes


def parse_gre(datagram: bytes) -> GrePacket | None:
    """An IPv4 datagram from a raw IPPROTO_GRE socket, if it holds enhanced GRE (version 1, PPP)."""
    if len(datagram) < 20:
        return None
    ihl = (datagram[0] & 0x0F) * 4
    if len(datagram) < ihl + 8 or datagram[9] != IPPROTO_GRE:
        return None
    flags, proto, plen, call_id = struct.unpack_from("!HHHH", datagram, ihl)
    if flags & 7 != 1 or proto != GRE_PPP:
        return None
    off = ihl + 8
    seq = None
    if flags & 0x1000:
        seq = struct.unpack_from("!I", datagram, off)[0] if len(datagram) >= off + 4 else None
        off += 4
    if flags & 0x0080:
        off += 4
    ppp = datagram[off:off + plen]
    src = socket.inet_ntoa(datagram[12:16])
    if not ppp:
        return GrePacket(src, call_id, seq, None, b"")
    if ppp[:2] == b"\xff\x03":
        ppp = ppp[2:]
    if not ppp:
        return None
    if ppp[0] & 1:  # a compressed (one-octet) protocol field, RFC 1661 §6.5
        return GrePacket(src, call_id, seq, ppp[0], ppp[1:])
    if len(ppp) < 2:
        return None
    return GrePacket(src, call_id, seq, struct.unpack_from("!H", ppp)[0], ppp[2:])


def parse_icmp_gre(datagram: bytes, server: str) -> tuple[int, int] | None:
    """(type, code) of an ICMP Destination Unreachable quoting GRE sent to ``server`` (RFC 792), else None."""
    if len(datagram) < 20:
        return None
    ihl = (datagram[0] & 0x0F) * 4
    icmp = datagram[ihl:]
    if len(icmp) < 8 + 20 or icmp[0] != 3:
        return None
    quoted = icmp[8:]
    if quoted[9] != IPPROTO_GRE or socket.inet_ntoa(quoted[16:20]) != server:
        return None
    return icmp[0], icmp[1]


# --- PPP control packets (RFC 1661 §5) -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Control:
    """One PPP control packet: code, identifier, data (options, magic, text...)."""

    code: int
    ident: int
    data: bytes


def parse_control(payload: bytes) -> Control | None:
    if len(payload) < 4:
        return None
    code, ident, length = struct.unpack_from("!BBH", payload)
    if length < 4 or length > len(payload):
        return None
    return Control(code, ident, payload[4:length])


def control(protocol: int, code: int, ident: int, data: bytes) -> bytes:
    """A PPP frame (protocol field and packet) with a control packet (RFC 1661 §5)."""
    return struct.pack("!HBBH", protocol, code, ident & 0xFF, len(data) + 4) + data


Option = tuple[int, bytes]


def parse_options(data: bytes) -> list[Option] | None:
    """The options of a Configure-* packet (RFC 1661 §6); None when malformed."""
    out: list[Option] = []
    off = 0
    while off < len(data):
        if off + 2 > len(data):
            return None
        kind, length = data[off], data[off + 1]
        if length < 2 or off + length > len(data):
            return None
        out.append((kind, data[off + 2:off + length]))
        off += length
    return out


def options(opts: list[Option]) -> bytes:
    return b"".join(bytes((k, len(v) + 2)) + v for k, v in opts)


def u16(v: int) -> bytes:
    return struct.pack("!H", v)


def u32(v: int) -> bytes:
    return struct.pack("!I", v)
