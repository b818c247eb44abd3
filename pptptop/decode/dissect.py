"""A protocol tree of one frame for the drill-down: every field the decoders know, with its bytes.

``dissect(linktype, data)`` returns a :class:`Node` tree in the shape of
Wireshark's packet details: link layer, IPv4/IPv6 (RFC 791 §3.1, RFC 8200 §3),
TCP (RFC 9293 §3.1) with the PPTP control messages it carries (RFC 2637 §2),
or enhanced GRE (RFC 2637 §4.1) with its PPP frame (RFC 1661 §2): LCP, IPCP,
IPV6CP, CCP (RFC 1661 §5-6, RFC 1332, RFC 5072, RFC 1962, RFC 3078), PAP
(RFC 1334), CHAP/MS-CHAP (RFC 1994, RFC 2433, RFC 2759), EAP (RFC 3748), the
MPPE header, inner IP; and ICMP errors with the datagram they quote.

Each node covers ``data[start:end]`` (absolute offsets in the frame), so the
hex pane can highlight a field's bytes. Pure and total: it uses the decoders
and turns their ``DecodeError`` into a "Malformed" node; it never raises.
Values are plain strings straight from the decoders (wire strings included):
escaping for the terminal is the UI's job.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pptptop.decode import pptp as P
from pptptop.decode.auth import ChapPacket, EapPacket, PapPacket, mschap_error_name
from pptptop.decode.ccp import MppeBits, MppeHeader
from pptptop.decode.errors import DecodeError
from pptptop.decode.gre import decode_gre, gre_fields
from pptptop.decode.ip import IPPacket, IPv4Header, IPv6Header, decode_ip
from pptptop.decode.lcp import AuthProtocol, ControlPacket, Option, code_name, option_name
from pptptop.decode.link import link_fields, network_offset
from pptptop.decode.ncp import CbcpPacket, IpCompression
from pptptop.decode.ppp import PppFrame, decode_ppp, protocol_name
from pptptop.decode.tcp import TcpFlags, decode_tcp

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_GRE = 47
IPPROTO_ICMPV6 = 58
PPTP_PORT = 1723
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057
MAX_DEPTH = 3  # IP in GRE in IP in ICMP ...: enough for any real packet, bounded for crafted ones

LINK_NAMES = {
    1: "Ethernet II",
    113: "Linux cooked capture v1",
    276: "Linux cooked capture v2",
    0: "Null/Loopback",
    108: "OpenBSD loopback",
    101: "Raw IP",
    228: "Raw IPv4",
    229: "Raw IPv6",
}
IP_PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 47: "GRE", 58: "ICMPv6", 50: "ESP", 51: "AH"}


@dataclass(frozen=True, slots=True)
class Node:
    """One line of the protocol tree: a label, a value, and the bytes ``[start, end)`` it covers."""

    label: str
    value: str
    start: int
    end: int
    children: tuple[Node, ...] = field(default=())

    def walk(self) -> list[Node]:
        """This node and all below it, depth first."""
        out = [self]
        for c in self.children:
            out.extend(c.walk())
        return out

    def find(self, label: str) -> Node | None:
        """The first node (depth first) with this label."""
        for n in self.walk():
            if n.label == label:
                return n
        return None


def _n(label: str, value: object, start: int, length: int, children: list[Node] | None = None) -> Node:
    return Node(
        label, "" if value is None else str(value), start, start + max(0, length), tuple(children or ())
    )


def _bad(e: DecodeError, start: int, end: int) -> Node:
    return Node("Malformed", f"{e.code}: {e.detail}", start, max(start, end))


def _hex(b: bytes, limit: int = 32) -> str:
    return b[:limit].hex() + ("…" if len(b) > limit else "")


def _u16(data: bytes, off: int) -> int:
    return int(struct.unpack_from("!H", data, off)[0])


# ---------------------------------------------------------------------- link and IP
def dissect(linktype: int, data: bytes) -> Node:
    """The protocol tree of one captured frame; never raises."""
    children: list[Node] = []
    try:
        ethertype, off = network_offset(linktype, data)
    except DecodeError as e:
        ethertype, off = 0, -1
        children.append(_bad(e, 0, len(data)))
    if off > 0 or linktype not in (101, 228, 229):
        fields = [_n(f.name, f.value, f.offset, f.length) for f in link_fields(linktype, data)]
        end = off if off > 0 else max((f.end for f in fields), default=0)
        children.append(Node(LINK_NAMES.get(linktype, f"Link type {linktype}"), "", 0, end, tuple(fields)))
    if off >= 0:
        children.extend(_ip(data, off, ethertype, 0))
    elif not children or children[-1].end < len(data):
        start = children[-1].end if children else 0
        children.append(_n("Data", f"{len(data) - start} bytes, not IP", start, len(data) - start))
    return Node("Frame", f"{len(data)} bytes captured, link type {linktype}", 0, len(data), tuple(children))


def _ip(data: bytes, off: int, ethertype: int, depth: int) -> list[Node]:
    try:
        ip = decode_ip(data, off, ethertype)
    except DecodeError as e:
        return [_bad(e, off, len(data))]
    h = ip.header
    out = [_ipv4(ip, h, off) if isinstance(h, IPv4Header) else _ipv6(ip, h, off)]
    if ip.fragment and not (isinstance(h, IPv4Header) and h.fragment_offset == 0):
        out.append(
            _n(
                "Fragment",
                f"{ip.payload_end - ip.payload_offset} bytes of a fragmented datagram",
                ip.payload_offset,
                ip.payload_end - ip.payload_offset,
            )
        )
        return out
    out.extend(_transport(data, ip, depth))
    return out


def _ipv4(ip: IPPacket, h: IPv4Header, off: int) -> Node:
    flags = [
        _n("Don't fragment", int(h.dont_fragment), off + 6, 1),
        _n("More fragments", int(h.more_fragments), off + 6, 1),
    ]
    f = [
        _n("Version", h.version, off, 1),
        _n("Header length", f"{h.ihl * 4} bytes ({h.ihl})", off, 1),
        _n("Differentiated services", f"0x{h.tos:02x} (DSCP {h.dscp}, ECN {h.ecn})", off + 1, 1),
        _n("Total length", h.total_length, off + 2, 2),
        _n("Identification", f"0x{h.identification:04x} ({h.identification})", off + 4, 2),
        _n("Flags", f"0x{h.flags:x}", off + 6, 1, flags),
        _n("Fragment offset", h.fragment_offset, off + 6, 2),
        _n("Time to live", h.ttl, off + 8, 1),
        _n("Protocol", f"{IP_PROTOCOLS.get(h.protocol, 'Unknown')} ({h.protocol})", off + 9, 1),
        _n("Header checksum", f"0x{h.checksum:04x}", off + 10, 2),
        _n("Source address", ip.src, off + 12, 4),
        _n("Destination address", ip.dst, off + 16, 4),
    ]
    if h.options:
        f.append(_n("Options", _hex(h.options), off + 20, len(h.options)))
    return Node("Internet Protocol Version 4", f"{ip.src} → {ip.dst}", off, off + h.ihl * 4, tuple(f))


def _ipv6(ip: IPPacket, h: IPv6Header, off: int) -> Node:
    f = [
        _n("Version", h.version, off, 1),
        _n("Traffic class", f"0x{h.traffic_class:02x} (DSCP {h.dscp}, ECN {h.ecn})", off, 2),
        _n("Flow label", f"0x{h.flow_label:05x}", off + 1, 3),
        _n("Payload length", h.payload_length, off + 4, 2),
        _n("Next header", f"{IP_PROTOCOLS.get(h.next_header, 'Unknown')} ({h.next_header})", off + 6, 1),
        _n("Hop limit", h.hop_limit, off + 7, 1),
        _n("Source address", ip.src, off + 8, 16),
        _n("Destination address", ip.dst, off + 24, 16),
    ]
    for x in h.extension_headers:
        f.append(_n(f"Extension header {x.header_type}", f"next header {x.next_header}", x.offset, x.length))
    return Node("Internet Protocol Version 6", f"{ip.src} → {ip.dst}", off, ip.payload_offset, tuple(f))


def _transport(data: bytes, ip: IPPacket, depth: int) -> list[Node]:
    p = ip.protocol
    if p == IPPROTO_TCP:
        return _tcp(data, ip)
    if p == IPPROTO_GRE:
        return _gre(data, ip, depth)
    if p in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        return [_icmp(data, ip, depth)]
    if p == IPPROTO_UDP and ip.payload_end - ip.payload_offset >= 8:
        o = ip.payload_offset
        return [
            Node(
                "User Datagram Protocol",
                f"{_u16(data, o)} → {_u16(data, o + 2)}",
                o,
                ip.payload_end,
                (
                    _n("Source port", _u16(data, o), o, 2),
                    _n("Destination port", _u16(data, o + 2), o + 2, 2),
                    _n("Length", _u16(data, o + 4), o + 4, 2),
                    _n("Checksum", f"0x{_u16(data, o + 4):04x}", o + 6, 2),
                ),
            )
        ]
    if ip.payload_end > ip.payload_offset:
        return [
            _n(
                "Data",
                f"{ip.payload_end - ip.payload_offset} bytes",
                ip.payload_offset,
                ip.payload_end - ip.payload_offset,
            )
        ]
    return []


# ---------------------------------------------------------------------- TCP and PPTP control
def _tcp(data: bytes, ip: IPPacket) -> list[Node]:
    o = ip.payload_offset
    try:
        s = decode_tcp(data, o, ip.payload_end)
    except DecodeError as e:
        return [_bad(e, o, ip.payload_end)]
    flag_nodes = [_n(f.name or "?", int(bool(s.flags & f)), o + 13, 1) for f in TcpFlags]
    names = ",".join(f.name or "?" for f in TcpFlags if s.flags & f)
    f = [
        _n("Source port", s.src_port, o, 2),
        _n("Destination port", s.dst_port, o + 2, 2),
        _n("Sequence number", s.seq, o + 4, 4),
        _n("Acknowledgment number", s.ack, o + 8, 4),
        _n("Header length", f"{s.header_length} bytes ({s.data_offset})", o + 12, 1),
        _n("Flags", f"0x{int(s.flags):02x} ({names})", o + 13, 1, flag_nodes),
        _n("Window", s.window, o + 14, 2),
        _n("Checksum", f"0x{s.checksum:04x} (not verified)", o + 16, 2),
        _n("Urgent pointer", s.urgent, o + 18, 2),
    ]
    if s.options:
        f.append(_n("Options", _hex(s.options), o + 20, len(s.options)))
    out = [
        Node(
            "Transmission Control Protocol",
            f"{s.src_port} → {s.dst_port} [{names}] len={s.payload_length}",
            o,
            s.payload_offset,
            tuple(f),
        )
    ]
    if s.payload_length > 0:
        if PPTP_PORT in (s.src_port, s.dst_port):
            out.extend(_pptp_stream(data, s.payload_offset, s.payload_end))
        else:
            out.append(_n("Data", f"{s.payload_length} bytes", s.payload_offset, s.payload_length))
    return out


def _named(text: str, v: int) -> str:
    """tshark's "Name (3)"; a value missing from the table is already "Unknown (0)"."""
    return text if text == f"Unknown ({v})" else f"{text} ({v})"


def _pptp_value(mt: int, name: str, v: object) -> str:
    if isinstance(v, str):
        return v
    assert isinstance(v, int)
    if name == "magic_cookie":
        return f"0x{v:08x}" + ("" if v == P.MAGIC_COOKIE else " (wrong)")
    if name == "message_type":
        return f"{P.message_name(v)} ({v})"
    if name == "pptp_type":
        return f"{P.pptp_type_name(v)} ({v})"
    if name == "result_code":
        return f"{P.result_name(mt, v)} ({v})"
    if name == "error_code":
        return f"{P.error_name(v)} ({v})"
    if name == "reason":
        return f"{P.reason_name(v)} ({v})"
    if name in ("framing_capabilities", "framing_type"):
        return _named(P.framing_name(v), v)
    if name in ("bearer_capabilities", "bearer_type"):
        return _named(P.bearer_name(v), v)
    if name == "protocol_version":
        return f"{v >> 8}.{v & 0xFF} (0x{v:04x})"
    if name in ("send_accm", "receive_accm", "physical_channel_id"):
        return f"0x{v:08x}"
    return str(v)


def _pptp_stream(data: bytes, start: int, end: int) -> list[Node]:
    """The PPTP control messages in one TCP payload, as far as they start at message boundaries."""
    out: list[Node] = []
    pos = start
    while pos < end:
        head = P.peek_header(data[:end], pos)
        if head is None or head[1] != P.MAGIC_COOKIE or head[0] < P.HEADER_LENGTH:
            out.append(
                _n(
                    "PPTP data",
                    f"{end - pos} bytes not at a message boundary (segment continues a "
                    "message or is not PPTP)",
                    pos,
                    end - pos,
                )
            )
            break
        length, _, mt = head
        stop = min(pos + length, end)
        out.append(_pptp(data[pos:stop], pos, mt))
        if pos + length > end:
            break
        pos += length
    return out


def _pptp(msg: bytes, base: int, mt: int) -> Node:
    title = f"Point-to-Point Tunnelling Protocol: {P.message_name(mt)}"
    try:
        m = P.decode_control(msg)
    except DecodeError as e:
        return Node(title, "", base, base + len(msg), (_bad(e, base + (e.offset or 0), base + len(msg)),))
    fields = []
    for cf in P.control_fields(mt):
        if cf.name.startswith("reserved"):
            fields.append(
                _n("Reserved", _hex(msg[cf.offset : cf.offset + cf.size]), base + cf.offset, cf.size)
            )
            continue
        label = cf.name.replace("_", " ").capitalize()
        fields.append(_n(label, _pptp_value(mt, cf.name, getattr(m, cf.name)), base + cf.offset, cf.size))
    return Node(title, "", base, base + len(msg), tuple(fields))


# ---------------------------------------------------------------------- GRE and PPP
def _gre(data: bytes, ip: IPPacket, depth: int) -> list[Node]:
    o = ip.payload_offset
    try:
        g = decode_gre(data, o, ip.payload_end)
    except DecodeError as e:
        return [_bad(e, o, ip.payload_end)]
    fields = []
    for gf in gre_fields(g, o):
        label = gf.name.replace("_", " ").capitalize()
        value: str = f"0x{gf.value:04x}" if gf.name in ("flags_version", "protocol") else str(gf.value)
        fields.append(_n(label, value, gf.offset, gf.length))
    seq = f" seq={g.seq}" if g.seq is not None else ""
    ack = f" ack={g.ack}" if g.ack is not None else ""
    out = [
        Node(
            "Generic Routing Encapsulation (PPTP)",
            f"call id {g.call_id}{seq}{ack} len={g.payload_length}",
            o,
            g.payload_offset,
            tuple(fields),
        )
    ]
    if g.payload_end > g.payload_offset:
        out.append(_ppp(data, g.payload_offset, g.payload_end, depth))
    return out


def _ppp(data: bytes, start: int, end: int, depth: int) -> Node:
    payload = data[start:end]
    try:
        frame = decode_ppp(payload)
    except DecodeError as e:
        return Node("Point-to-Point Protocol", "", start, end, (_bad(e, start, end),))
    fields = []
    pos = start
    if frame.address_control:
        fields.append(_n("Address", "0xff", pos, 1))
        fields.append(_n("Control", "0x03", pos + 1, 1))
        pos += 2
    plen = frame.header_length - (2 if frame.address_control else 0)
    fields.append(_n("Protocol", f"{protocol_name(frame.protocol)} (0x{frame.protocol:04x})", pos, plen))
    info = start + frame.header_length
    ppp = Node("Point-to-Point Protocol", frame.protocol_name, start, info, tuple(fields))
    body = _ppp_message(data, frame, info, end, depth)
    return Node(ppp.label, ppp.value, start, end, (*ppp.children, *body))


def _ppp_message(data: bytes, frame: PppFrame, info: int, end: int, depth: int) -> list[Node]:
    m = frame.message
    if frame.error is not None:
        e = frame.error
        return [_bad(e, info + (e.offset or 0), end)]
    if isinstance(m, ControlPacket):
        return [_control_packet(frame.protocol, m, info)]
    if isinstance(m, ChapPacket):
        return [_chap(m, info)]
    if isinstance(m, PapPacket):
        return [_pap(frame.info, m, info)]
    if isinstance(m, EapPacket):
        return [_eap(m, info)]
    if isinstance(m, CbcpPacket):
        opts = [_n(f"Option {o.type}", _hex(o.data), info + o.offset, o.length) for o in m.options]
        return [
            Node(
                "Callback Control Protocol",
                f"code {m.code}",
                info,
                info + m.length,
                (
                    _n("Code", m.code, info, 1),
                    _n("Identifier", m.identifier, info + 1, 1),
                    _n("Length", m.length, info + 2, 2),
                    *opts,
                ),
            )
        ]
    if isinstance(m, MppeHeader):
        bits = [
            _n("A: flushed", int(m.flushed), info, 1),
            _n("B: at front", int(m.at_front), info, 1),
            _n("C: compressed", int(m.compressed), info, 1),
            _n("D: encrypted", int(m.encrypted), info, 1),
            _n("Coherency count", m.coherency_count, info, 2),
        ]
        return [
            Node("MPPE/MPPC header", f"coherency count {m.coherency_count}", info, info + 2, tuple(bits)),
            _n(
                "Encrypted data" if m.encrypted else "Compressed data",
                f"{end - info - 2} bytes",
                info + 2,
                end - info - 2,
            ),
        ]
    if frame.protocol in (PPP_IPV4, PPP_IPV6) and depth < MAX_DEPTH:
        return _ip(
            data[:end], info, ETHERTYPE_IPV4 if frame.protocol == PPP_IPV4 else ETHERTYPE_IPV6, depth + 1
        )
    if end > info:
        return [_n("Data", f"{end - info} bytes", info, end - info)]
    return []


def _option_value(o: Option) -> str:
    v = o.value
    if isinstance(v, AuthProtocol):
        return f"{v.method} (0x{v.protocol:04x}" + (
            f", algorithm 0x{v.algorithm:02x})" if v.algorithm is not None else ")"
        )
    if isinstance(v, MppeBits):
        return f"0x{v.supported_bits:08x} ({v.pppd()})"
    if isinstance(v, IpCompression):
        return f"protocol 0x{v.protocol:04x}"
    if isinstance(v, bool) or v is None:
        return "(no data)"
    if isinstance(v, int):
        return f"0x{v:x} ({v})" if o.length >= 6 else str(v)
    if isinstance(v, bytes):
        return _hex(v)
    return str(v)


def _control_packet(protocol: int, m: ControlPacket, base: int) -> Node:
    name = {
        0xC021: "Link Control Protocol",
        0x8021: "Internet Protocol Control Protocol",
        0x8057: "IPv6 Control Protocol",
        0x80FD: "Compression Control Protocol",
        0x80FB: "Compression Control Protocol",
    }.get(protocol, protocol_name(protocol))
    f = [
        _n("Code", f"{code_name(protocol, m.code)} ({m.code})", base, 1),
        _n("Identifier", f"{m.identifier} (0x{m.identifier:02x})", base + 1, 1),
        _n("Length", m.length, base + 2, 2),
    ]
    for o in m.options:
        start = base + o.offset
        sub = [_n("Type", o.type, start, 1), _n("Length", o.length, start + 1, 1)]
        if o.length > 2:
            sub.append(_n("Value", _option_value(o), start + 2, o.length - 2))
        f.append(_n(option_name(protocol, o.type), _option_value(o), start, o.length, sub))
    body = base + 4
    if m.magic_number is not None:
        f.append(_n("Magic number", f"0x{m.magic_number:08x}", body, 4))
        body += 4
    if m.seconds_remaining is not None:
        f.append(_n("Seconds remaining", m.seconds_remaining, body, 4))
        body += 4
    if m.rejected_protocol is not None:
        f.append(
            _n(
                "Rejected protocol",
                f"{protocol_name(m.rejected_protocol)} (0x{m.rejected_protocol:04x})",
                body,
                2,
            )
        )
        body += 2
    if m.message:
        f.append(_n("Message", m.message, body, base + m.length - body))
    elif m.data and body < base + m.length and not m.options:
        f.append(_n("Data", _hex(m.data), body, base + m.length - body))
    return Node(name, code_name(protocol, m.code), base, base + m.length, tuple(f))


def _auth_head(m: ChapPacket | PapPacket | EapPacket, base: int, names: dict[int, str]) -> list[Node]:
    return [
        _n("Code", f"{names.get(m.code, 'Unknown')} ({m.code})", base, 1),
        _n("Identifier", f"{m.identifier} (0x{m.identifier:02x})", base + 1, 1),
        _n("Length", m.length, base + 2, 2),
    ]


def _chap(m: ChapPacket, base: int) -> Node:
    names = {
        1: "Challenge",
        2: "Response",
        3: "Success",
        4: "Failure",
        5: "Change Password (version 1)",
        6: "Change Password (version 2)",
        7: "Change-Password",
    }
    f = _auth_head(m, base, names)
    if m.code in (1, 2):
        vpos = base + 5
        f.append(_n("Value size", len(m.value), base + 4, 1))
        sub = []
        if m.mschapv2_response is not None:
            r = m.mschapv2_response
            sub = [
                _n("Peer challenge", r.peer_challenge.hex(), vpos, 16),
                _n("Reserved", r.reserved.hex(), vpos + 16, 8),
                _n("NT response", r.nt_response.hex(), vpos + 24, 24),
                _n("Flags", r.flags, vpos + 48, 1),
            ]
        elif m.mschapv1_response is not None:
            r1 = m.mschapv1_response
            sub = [
                _n("LM response", r1.lm_response.hex(), vpos, 24),
                _n("NT response", r1.nt_response.hex(), vpos + 24, 24),
                _n("Use NT", r1.use_nt, vpos + 48, 1),
            ]
        f.append(_n("Value", _hex(m.value, 64), vpos, len(m.value), sub))
        f.append(_n("Name", m.name, vpos + len(m.value), base + m.length - vpos - len(m.value)))
    elif m.code in (3, 4):
        sub = []
        if m.failure is not None:
            fl = m.failure
            sub = [
                _n("Error", f"{fl.error} ({mschap_error_name(fl.error)})", base + 4, 0),
                _n("Retry", int(fl.retry), base + 4, 0),
                _n("Challenge", fl.challenge.hex(), base + 4, 0),
                _n("Version", fl.version, base + 4, 0),
                _n("Text", fl.message, base + 4, 0),
            ]
        elif m.success is not None:
            sub = [
                _n("Authenticator response", m.success.authenticator, base + 4, 0),
                _n("Text", m.success.message, base + 4, 0),
            ]
        sub = [Node(s.label, s.value, base + 4, base + m.length) for s in sub]
        f.append(_n("Message", m.message, base + 4, m.length - 4, sub))
    elif m.value:
        f.append(_n("Data", _hex(m.value), base + 4, m.length - 4))
    return Node(
        "PPP Challenge Handshake Authentication Protocol",
        names.get(m.code, "Unknown"),
        base,
        base + m.length,
        tuple(f),
    )


def _pap(info: bytes, m: PapPacket, base: int) -> Node:
    names = {1: "Authenticate-Request", 2: "Authenticate-Ack", 3: "Authenticate-Nak"}
    f = _auth_head(m, base, names)
    if m.code == 1 and m.peer_id is not None:
        plen = info[4]
        f.append(_n("Peer-ID length", plen, base + 4, 1))
        f.append(_n("Peer-ID", m.peer_id, base + 5, plen))
        wpos = base + 5 + plen
        wlen = info[5 + plen] if 5 + plen < len(info) else 0
        f.append(_n("Password length", wlen, wpos, 1))
        f.append(_n("Password", f"(hidden, {wlen} characters, sent in clear)", wpos + 1, wlen))
    elif m.message is not None and m.length > 4:
        f.append(_n("Message length", info[4], base + 4, 1))
        f.append(_n("Message", m.message, base + 5, m.length - 5))
    return Node(
        "PPP Password Authentication Protocol", names.get(m.code, "Unknown"), base, base + m.length, tuple(f)
    )


def _eap(m: EapPacket, base: int) -> Node:
    names = {1: "Request", 2: "Response", 3: "Success", 4: "Failure", 5: "Initiate", 6: "Finish"}
    f = _auth_head(m, base, names)
    if m.type is not None:
        f.append(_n("Type", f"{m.type_name} ({m.type})", base + 4, 1))
        if m.identity is not None:
            f.append(_n("Identity", m.identity, base + 5, m.length - 5))
        elif m.data:
            f.append(_n("Data", _hex(m.data), base + 5, m.length - 5))
    return Node(
        "Extensible Authentication Protocol", names.get(m.code, "Unknown"), base, base + m.length, tuple(f)
    )


# ---------------------------------------------------------------------- ICMP
def _icmp(data: bytes, ip: IPPacket, depth: int) -> Node:
    o, end = ip.payload_offset, ip.payload_end
    v6 = ip.protocol == IPPROTO_ICMPV6
    name = "Internet Control Message Protocol" + (" v6" if v6 else "")
    if end - o < 4:
        return _bad(DecodeError("truncated_icmp", f"{end - o} octets, ICMP needs 4", o), o, end)
    itype, code = data[o], data[o + 1]
    f = [
        _n("Type", itype, o, 1),
        _n("Code", code, o + 1, 1),
        _n("Checksum", f"0x{_u16(data, o + 2):04x}", o + 2, 2),
    ]
    errors = (1, 2, 3, 4) if v6 else (3, 4, 5, 11, 12)
    if itype in errors and end - o > 8 and depth < MAX_DEPTH:
        inner = _ip(data[:end], o + 8, ETHERTYPE_IPV6 if v6 else ETHERTYPE_IPV4, depth + 1)
        f.append(Node("Original datagram", f"{end - o - 8} bytes", o + 8, end, tuple(inner)))
    elif end - o > 4:
        f.append(_n("Data", f"{end - o - 4} bytes", o + 4, end - o - 4))
    return Node(name, f"type {itype} code {code}", o, end, tuple(f))
