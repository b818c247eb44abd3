"""Frames in, tunnels out: the session tracker.

Control connections are keyed by their TCP 4-tuple (and interface); calls
(tunnels) by their call IDs, so that GRE finds its tunnel: GRE from client to
server carries the *server's* call ID in its key and the other way round
(RFC 2637 §4.1). Each tunnel keeps its phase, what was negotiated, traffic
and echo health, and how it ended; every change is also an :class:`Event`.

The hot path — GRE data on Ethernet/IPv4 — is inlined in :meth:`Tracker.feed`:
two ``Struct.unpack_from`` calls, one dict lookup and integer updates. Every
other frame goes through the pure decoders.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pptptop.decode import pptp as P
from pptptop.decode.auth import ChapPacket, EapPacket, PapPacket
from pptptop.decode.ccp import CcpOption, MppeBits
from pptptop.decode.errors import DecodeError
from pptptop.decode.gre import (
    GRE_A,
    GRE_FIXED,
    GRE_PPTP_MASK,
    GRE_PPTP_VALUE,
    GRE_PROTOCOL_PPP,
    GRE_S,
    U32,
    decode_gre,
)
from pptptop.decode.ip import decode_ip
from pptptop.decode.lcp import AuthProtocol, ControlCode, ControlPacket, LcpOption
from pptptop.decode.link import network_offset
from pptptop.decode.ncp import IpcpOption, Ipv6cpOption
from pptptop.decode.ppp import PppFrame, PppProtocol, decode_ppp, ppp_header
from pptptop.decode.tcp import TcpFlags, decode_tcp
from pptptop.decode.tcpstream import StreamReassembler
from pptptop.track.events import Event, EventKind
from pptptop.track.model import (
    PHASE_ORDER,
    ControlInfo,
    Direction,
    DirectionStats,
    EchoStats,
    Endpoint,
    Outcome,
    Packet,
    PacketKind,
    Phase,
    PhaseSpan,
    TcpInfo,
    Tunnel,
)

PPTP_PORT = 1723
TH_FIN, TH_SYN, TH_RST, TH_ACK = int(TcpFlags.FIN), int(TcpFlags.SYN), int(TcpFlags.RST), int(TcpFlags.ACK)
ETH_IPV4 = struct.Struct("!12xHBxH2xHxBxxII")  # ethertype, vhl, total length, frag, proto, src, dst
GRE_HEAD = GRE_FIXED  # flags+version, protocol, payload length, call id
GRE_PPP = GRE_PROTOCOL_PPP
LINKTYPE_ETHERNET = 1
ETHERTYPE_IPV4 = 0x0800
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_GRE = 47
IPPROTO_ICMPV6 = 58
MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1
#: PPP protocols that are data, not negotiation: counted on the hot path
DATA_PROTOCOLS = frozenset({0x00FD, 0x00FB, 0x0021, 0x0057, 0x002D, 0x002F, 0x003D})

SIDE = ("client", "server")  # index by Direction: who sent it


@dataclass(slots=True)
class Limits:
    """State bounds: days of traffic and floods of bogus IDs keep memory flat."""

    max_tunnels: int = 20_000
    max_orphans: int = 2_000  # GRE-only tunnels (control connection not seen)
    stored_packets: int = 512  # negotiation packets kept from the start of a tunnel
    idle_timeout: float = 300.0  # no packet at all for this long: the tunnel is gone
    syn_timeout: float = 30.0  # SYNs with no answer for this long: give up
    pptp_echo_timeout: float = 60.0  # RFC 2637 §2.5
    lcp_echo_timeout: float = 10.0
    max_inner_flows: int = 256


@dataclass(slots=True)
class CaptureStats:
    frames: int = 0
    bytes: int = 0
    ip: int = 0
    tcp_pptp: int = 0
    control_messages: int = 0
    gre: int = 0
    gre_data: int = 0
    gre_unknown: int = 0
    icmp: int = 0
    other: int = 0
    malformed: int = 0
    malformed_by_code: Counter[str] = field(default_factory=Counter)
    tunnels_created: int = 0
    evicted: int = 0
    first_ts: float | None = None
    last_ts: float | None = None


@dataclass(slots=True, eq=False)
class Connection:
    """One PPTP control connection (TCP 1723) on one interface."""

    iface: str
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    streams: tuple[StreamReassembler, StreamReassembler]
    tcp: TcpInfo
    echo: EchoStats
    info: ControlInfo
    tunnels: list[Tunnel] = field(default_factory=list)
    last_seen: float = 0.0
    closed: bool = False

    @property
    def key(self) -> tuple[str, str, int, str, int]:
        return (self.iface, self.client_ip, self.client_port, self.server_ip, self.server_port)


def _ipkey(ip: str) -> int | bytes:
    addr = ipaddress.ip_address(ip)
    return int(addr) if addr.version == 4 else addr.packed


def gre_key(src: str, dst: str, call_id: int) -> Any:
    """The GRE index key for packets from ``src`` to ``dst`` carrying ``call_id``."""
    s, d = _ipkey(src), _ipkey(dst)
    if isinstance(s, int) and isinstance(d, int):
        return (s << 48) | (d << 16) | call_id
    return (
        bytes(s) if isinstance(s, bytes) else s.to_bytes(4, "big"),
        bytes(d) if isinstance(d, bytes) else d.to_bytes(4, "big"),
        call_id,
    )


def _raw_gre_key(src_raw: bytes, dst_raw: bytes, call_id: int) -> Any:
    if len(src_raw) == 4 and len(dst_raw) == 4:
        return (int.from_bytes(src_raw, "big") << 48) | (int.from_bytes(dst_raw, "big") << 16) | call_id
    return (src_raw, dst_raw, call_id)


Subscriber = Callable[[Event], None]


class Tracker:
    """Turns frames into tunnels. Not thread-safe: one feeder, readers take snapshots under a lock."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.stats = CaptureStats()
        self.tunnels: dict[int, Tunnel] = {}
        self._next_id = 1
        self._conns: dict[tuple[str, str, int, str, int], Connection] = {}
        self._conn_of: dict[int, Connection] = {}  # tunnel id -> its control connection
        self._gre: dict[str, dict[Any, tuple[Tunnel, Direction]]] = {}  # iface -> key -> (tunnel, dir)
        self._keys_of: dict[int, list[tuple[str, Any]]] = {}  # tunnel id -> its GRE keys
        self._orphans: dict[int, Tunnel] = {}  # GRE-only tunnels, insertion ordered
        self._subscribers: list[Subscriber] = []
        self.now = 0.0
        self._last_tick = 0.0
        #: frame numbers whose GRE sequence/ack numbers the batch path already analysed
        self._seq_done: set[int] = set()

    # ------------------------------------------------------------------ events
    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    def _emit(self, ev: Event) -> None:
        for cb in self._subscribers:
            cb(ev)

    # ------------------------------------------------------------------ input
    def feed(self, number: int, ts: float, iface: str, linktype: int, data: bytes) -> None:
        """Take one captured frame (``number`` is 1-based, as tshark counts)."""
        st = self.stats
        st.frames += 1
        n = len(data)
        st.bytes += n
        if ts > self.now:
            if st.first_ts is None:
                st.first_ts = ts
            self.now = st.last_ts = ts
            if ts - self._last_tick >= 1.0:
                self.tick(ts)
        # ---- hot path: Ethernet / IPv4 (no options, not fragmented) / GRE data
        if linktype == LINKTYPE_ETHERNET and n >= 42:
            etype, vhl, total, frag, proto, src, dst = ETH_IPV4.unpack_from(data, 0)
            if etype == ETHERTYPE_IPV4 and proto == IPPROTO_GRE and vhl == 0x45 and not frag & 0x3FFF:
                fv, gproto, plen, cid = GRE_HEAD.unpack_from(data, 34)
                if fv & GRE_PPTP_MASK == GRE_PPTP_VALUE and gproto == GRE_PPP:
                    index = self._gre.get(iface)
                    ent = index.get((src << 48) | (dst << 16) | cid) if index is not None else None
                    if ent is not None:
                        st.ip += 1
                        p = 42 + (4 if fv & GRE_S else 0) + (4 if fv & GRE_A else 0)
                        self._gre_frame(number, ts, iface, linktype, data, ent[0], ent[1],
                                        U32.unpack_from(data, 42)[0] if fv & GRE_S else None,
                                        U32.unpack_from(data, p - 4)[0] if fv & GRE_A else None,
                                        p, min(p + plen, n, 14 + total), plen)
                        return
        self._slow(number, ts, iface, linktype, data)

    @staticmethod
    def sequence(ds: DirectionStats, seq: int) -> None:
        """One GRE sequence number in arrival order (RFC 2637 §4.3): count gaps, duplicates, late packets."""
        if not ds.seq_init:
            ds.seq_init, ds.max_seq, ds.window = True, seq, 1
            return
        delta = (seq - ds.max_seq) & MASK32
        if delta == 1:
            ds.max_seq = seq
            ds.window = ((ds.window << 1) | 1) & MASK64
        else:
            Tracker._seq_slow(ds, seq, delta)

    @staticmethod
    def _seq_slow(ds: DirectionStats, seq: int, delta: int) -> None:
        """GRE sequence analysis off the in-order path: gaps, duplicates, late packets."""
        if delta == 0:
            ds.duplicates += 1
        elif delta < 0x80000000:
            ds.lost += delta - 1
            ds.window = ((ds.window << delta) | 1) & MASK64 if delta < 64 else 1
            ds.max_seq = seq
        else:
            back = (ds.max_seq - seq) & MASK32
            if back < 64:
                bit = 1 << back
                if ds.window & bit:
                    ds.duplicates += 1
                else:
                    ds.window |= bit
                    ds.reordered += 1
                    if ds.lost:
                        ds.lost -= 1
            else:
                ds.reordered += 1

    # ------------------------------------------------------------------ slow path
    def _slow(self, number: int, ts: float, iface: str, linktype: int, data: bytes) -> None:
        st = self.stats
        try:
            ethertype, off = network_offset(linktype, data)
        except DecodeError as e:
            self._malformed(e, number, ts, None)
            return
        if off < 0:
            st.other += 1
            return
        try:
            ip = decode_ip(data, off, ethertype)
        except DecodeError as e:
            self._malformed(e, number, ts, None)
            return
        st.ip += 1
        if ip.fragment:
            st.other += 1
            return
        proto = ip.protocol
        if proto == IPPROTO_GRE:
            self._gre_packet(number, ts, iface, linktype, data, ip)
        elif proto == IPPROTO_TCP:
            self._tcp_packet(number, ts, iface, linktype, data, ip)
        elif proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            self._icmp_packet(number, ts, iface, linktype, data, ip)
        else:
            st.other += 1

    def _malformed(self, e: DecodeError, number: int, ts: float, tunnel: Tunnel | None) -> None:
        self.stats.malformed += 1
        if len(self.stats.malformed_by_code) < 256 or e.code in self.stats.malformed_by_code:
            self.stats.malformed_by_code[e.code] += 1
        if tunnel is not None:
            tunnel.malformed += 1
            tunnel.changed = True
        self._emit(
            Event(ts, EventKind.MALFORMED, tunnel, number, detail={"code": e.code, "detail": e.detail})
        )

    # ------------------------------------------------------------------ GRE
    def _gre_packet(self, number: int, ts: float, iface: str, linktype: int, data: bytes, ip: Any) -> None:
        try:
            g = decode_gre(data, ip.payload_offset, ip.payload_end)
        except DecodeError as e:
            if e.code == "gre_not_pptp":
                self.stats.other += 1
                return
            self._malformed(e, number, ts, None)
            return
        key = _raw_gre_key(ip.src_raw, ip.dst_raw, g.call_id)
        index = self._gre.get(iface)
        ent = index.get(key) if index is not None else None
        if ent is None:
            ent = self._unknown_gre(ts, iface, ip, g.call_id, key)
        start = ip.payload_offset + g.header_length
        end = min(start + g.payload_length, ip.payload_end)
        self._gre_frame(number, ts, iface, linktype, data, ent[0], ent[1], g.seq, g.ack, start, end,
                        g.payload_length)

    def _gre_frame(self, number: int, ts: float, iface: str, linktype: int, data: bytes, tunnel: Tunnel,
                   d: Direction, seq: int | None, ack: int | None, start: int, end: int, plen: int) -> None:
        """Account one GRE packet of a known tunnel; its PPP payload is ``data[start:end]`` (RFC 2637 §4)."""
        ds = tunnel.traffic[d]
        n = len(data)
        self.stats.gre += 1
        ds.packets += 1
        ds.bytes += n
        sec = int(ts)
        if sec != ds.cur_sec:
            ds.roll(sec)
        ds.cur_bytes += n
        ds.cur_packets += 1
        tunnel.last_seen = ts
        tunnel.changed = True
        if self._seq_done and number in self._seq_done:
            self._seq_done.discard(number)  # the batch path analysed its sequence numbers already
        else:
            if seq is not None:
                self.sequence(ds, seq)
            if ack is not None:
                ds.last_ack = ack
        if not plen or start >= end:
            ds.ack_only += 1
            return
        ds.payload_bytes += plen
        pp, _ = ppp_header(data if end == n else data[:end], start)
        if pp in DATA_PROTOCOLS:
            ds.data_packets += 1
            self.stats.gre_data += 1
            tunnel.data_ring.append((number, ts, d, data))
            if tunnel.phase is not Phase.DATA and not tunnel.ended:
                self._data_seen(tunnel, ts, number)
            if pp in (0x0021, 0x0057):
                self._inner_ip(tunnel, d, data[start:end])
            return
        self._gre_ppp(tunnel, d, data[start:end], number, ts, iface, linktype, data)

    def _unknown_gre(
        self, ts: float, iface: str, ip: Any, call_id: int, key: Any
    ) -> tuple[Tunnel, Direction]:
        """GRE whose key no known call owns: the capture started mid-session, or a stray/bogus ID."""
        self.stats.gre_unknown += 1
        # a call whose control connection we saw but one call ID is still unknown
        for t in self._half_known(iface, ip.src, ip.dst):
            if t.client.ip == ip.src and t.server.call_id is None:
                t.server.call_id = call_id
                self._register(t)
                return (t, Direction.TO_SERVER)
            if t.server.ip == ip.src and t.client.call_id is None:
                t.client.call_id = call_id
                self._register(t)
                return (t, Direction.TO_CLIENT)
        # the other direction of a GRE-only tunnel seen so far one way
        for t in reversed(list(self._orphans.values())):
            if t.iface != iface:
                continue
            if t.client.ip == ip.dst and t.server.ip == ip.src and t.client.call_id is None:
                t.client.call_id = call_id
                self._register(t)
                return (t, Direction.TO_CLIENT)
            if t.server.ip == ip.dst and t.client.ip == ip.src and t.server.call_id is None:
                t.server.call_id = call_id
                self._register(t)
                return (t, Direction.TO_SERVER)
        # a new GRE-only tunnel: the destination is taken for the server until evidence says otherwise
        t = self._new_tunnel(ts, iface, Endpoint(ip.src), Endpoint(ip.dst, call_id=call_id), Phase.LCP)
        t.control_seen = False
        t.roles_guessed = True
        self._orphans[t.id] = t
        if len(self._orphans) > self.limits.max_orphans:
            self._evict_orphans()
        self._register(t)
        return (t, Direction.TO_SERVER)

    def _half_known(self, iface: str, a: str, b: str) -> list[Tunnel]:
        out: list[Tunnel] = []
        for conn in self._conns.values():
            if conn.iface == iface and {conn.client_ip, conn.server_ip} == {a, b}:
                out.extend(
                    t
                    for t in conn.tunnels
                    if not t.ended and (t.client.call_id is None) != (t.server.call_id is None)
                )
        return out

    def _register(self, t: Tunnel) -> None:
        """Index a tunnel's GRE keys: client→server carries the server's call ID and vice versa."""
        index = self._gre.setdefault(t.iface, {})
        keys = self._keys_of.setdefault(t.id, [])
        # a newer call takes a key over from an older one (pptpd reuses call IDs, clients reuse addresses)
        for call_id, k_src, k_dst, d in (
            (t.server.call_id, t.client.ip, t.server.ip, Direction.TO_SERVER),
            (t.client.call_id, t.server.ip, t.client.ip, Direction.TO_CLIENT),
        ):
            if call_id is None:
                continue
            k = gre_key(k_src, k_dst, call_id)
            if index.get(k, (None,))[0] is not t:
                index[k] = (t, d)
                keys.append((t.iface, k))

    def _unregister(self, t: Tunnel) -> None:
        for iface, k in self._keys_of.pop(t.id, []):
            index = self._gre.get(iface)
            if index is not None and index.get(k, (None,))[0] is t:
                del index[k]

    def _swap_roles(self, t: Tunnel, ts: float, number: int, why: str) -> None:
        """A GRE-only tunnel turned out the other way round: swap client and server."""
        self._unregister(t)
        t.client, t.server = t.server, t.client
        t.traffic = (t.traffic[1], t.traffic[0])
        t.roles_guessed = False
        for p in t.packets:
            p.direction = p.direction.other
        for p in t.late_packets:
            p.direction = p.direction.other
        t.data_ring = type(t.data_ring)(
            ((n, s, 1 - d, b) for n, s, d, b in t.data_ring), maxlen=t.data_ring.maxlen
        )
        self._register(t)
        self._emit(Event(ts, EventKind.ROLES, t, number, detail={"why": why}))

    # ------------------------------------------------------------------ PPP in GRE
    def _gre_ppp(
        self,
        t: Tunnel,
        d: Direction,
        payload: bytes,
        number: int,
        ts: float,
        iface: str,
        linktype: int,
        data: bytes,
    ) -> None:
        try:
            frame = decode_ppp(payload, chap_algorithm=t.auth.chap_algorithm)
        except DecodeError as e:
            self._store(
                t,
                Packet(
                    number, ts, iface, linktype, d, PacketKind.MALFORMED, f"malformed PPP: {e.code}", data
                ),
            )
            self._malformed(e, number, ts, t)
            return
        t.traffic[d].control_frames += 1
        if frame.error is not None:
            self._store(
                t,
                Packet(
                    number,
                    ts,
                    iface,
                    linktype,
                    d,
                    PacketKind.MALFORMED,
                    f"malformed {frame.protocol:#06x}: {frame.error.code}",
                    data,
                    frame,
                ),
            )
            self._malformed(frame.error, number, ts, t)
            return
        msg = frame.message
        if t.roles_guessed and self._looks_like_server(frame) == (d is Direction.TO_SERVER):
            self._swap_roles(t, ts, number, "the side answering as authenticator/address-giver is the server")
            d = d.other
        side = SIDE[d]
        self._store(
            t, Packet(number, ts, iface, linktype, d, PacketKind.PPP, "", data, frame)
        )
        proto = frame.protocol
        if proto == PppProtocol.LCP and isinstance(msg, ControlPacket):
            self._lcp(t, d, side, msg, ts, number)
        elif proto in (PppProtocol.PAP, PppProtocol.CHAP, PppProtocol.EAP):
            self._auth(t, d, side, msg, ts, number)
        elif proto == PppProtocol.IPCP and isinstance(msg, ControlPacket):
            self._ipcp(t, d, side, msg, ts, number)
        elif proto == PppProtocol.IPV6CP and isinstance(msg, ControlPacket):
            self._ipv6cp(t, side, msg, ts, number)
        elif proto in (PppProtocol.CCP, PppProtocol.CCP_LINK) and isinstance(msg, ControlPacket):
            self._ccp(t, side, msg, ts, number)
        self._emit(Event(ts, EventKind.MESSAGE, t, number, d, frame))

    @staticmethod
    def _looks_like_server(frame: PppFrame) -> bool | None:
        """True when this frame is one only a server (authenticator) sends; None if it tells nothing."""
        msg = frame.message
        if isinstance(msg, ChapPacket):
            return msg.code in (1, 3, 4)
        if isinstance(msg, PapPacket):
            return msg.code in (2, 3)
        if (
            isinstance(msg, ControlPacket)
            and frame.protocol == PppProtocol.IPCP
            and msg.code == ControlCode.CONFIGURE_NAK
        ):
            return True
        return None

    def _lcp(self, t: Tunnel, d: Direction, side: str, m: ControlPacket, ts: float, number: int) -> None:
        other = SIDE[1 - d]
        code = m.code
        lcp = t.lcp
        if code <= ControlCode.CONFIGURE_REJECT or code in (ControlCode.TERMINATE_REQUEST,):
            self._advance(t, Phase.LCP, ts, number)
        if code == ControlCode.CONFIGURE_REQUEST:
            lcp.config_requests[side] += 1
            t.pending_requests[(PppProtocol.LCP, side)] = m
            magic = m.option(LcpOption.MAGIC_NUMBER)
            if magic is not None and isinstance(magic.value, int):
                lcp.magic[side] = magic.value
        elif code == ControlCode.CONFIGURE_ACK:
            req = t.pending_requests.pop((PppProtocol.LCP, other), None) or m
            lcp.options[other] = {_option_name(o): _option_value(o) for o in req.options}
            lcp.opened[other] = True
            for o in req.options:
                if o.type == LcpOption.AUTH_PROTOCOL and isinstance(o.value, AuthProtocol):
                    t.auth.method = o.value.method
                    t.auth.chap_algorithm = o.value.algorithm
            if (
                lcp.opened["client"]
                and lcp.opened["server"]
                and PHASE_ORDER[t.phase] <= PHASE_ORDER[Phase.LCP]
            ):
                self._advance(t, Phase.AUTH if t.auth.method != "none" else Phase.NCP, ts, number)
        elif code == ControlCode.CONFIGURE_NAK:
            lcp.naks += 1
        elif code == ControlCode.CONFIGURE_REJECT:
            lcp.rejects += 1
        elif code == ControlCode.TERMINATE_REQUEST:
            self._close_step(t, side, "lcp-terminate", m.message or None, ts, number)
        elif code == ControlCode.PROTOCOL_REJECT:
            if m.rejected_protocol is not None and len(lcp.protocol_rejects) < 32:
                lcp.protocol_rejects.append(m.rejected_protocol)
        elif code == ControlCode.ECHO_REQUEST:
            self._echo_request(t, t.lcp_echo, d, m.identifier, ts, number, "lcp")
        elif code == ControlCode.ECHO_REPLY:
            self._echo_reply(t.lcp_echo, d, m.identifier, ts)
        elif code == ControlCode.IDENTIFICATION:
            lcp.identification[side] = m.message[:256]

    def _auth(self, t: Tunnel, d: Direction, side: str, m: Any, ts: float, number: int) -> None:
        a = t.auth
        self._advance(t, Phase.AUTH, ts, number)
        if isinstance(m, PapPacket):
            a.method = "PAP"
            if m.code == 1:
                a.user = m.peer_id
                a.password = m.password
                a.password_seen = m.password is not None
                a.attempts += 1
            elif m.code == 2:
                self._auth_result(t, True, m.message, ts, number)
            elif m.code == 3:
                self._auth_result(t, False, m.message, ts, number)
        elif isinstance(m, ChapPacket):
            if m.code == 1:
                a.server_name = m.name
                a.challenge = m.value
            elif m.code == 2:
                a.user = m.name
                a.attempts += 1
                if m.mschapv2_response is not None:
                    a.method = "MS-CHAPv2"
                    a.peer_challenge = m.mschapv2_response.peer_challenge
                    a.nt_response = m.mschapv2_response.nt_response
                elif m.mschapv1_response is not None:
                    a.method = "MS-CHAP"
                    a.lm_response = m.mschapv1_response.lm_response
                    a.nt_response = m.mschapv1_response.nt_response
                elif a.method == "none":
                    a.method = "CHAP-MD5"
            elif m.code == 3:
                msg = m.success.message if m.success is not None else m.message
                if m.success is not None and a.method in ("none", "CHAP-MD5"):
                    a.method = "MS-CHAPv2"
                self._auth_result(t, True, msg, ts, number)
            elif m.code == 4:
                f = m.failure
                if f is not None:
                    a.error_code = f.error
                    a.retry = f.retry
                    if f.challenge:
                        a.challenge = f.challenge
                self._auth_result(t, False, (f.message if f is not None else None) or m.message, ts, number)
        elif isinstance(m, EapPacket):
            a.method = "EAP"
            if m.code == 2 and m.identity is not None:
                a.user = m.identity
            elif m.code == 3:
                self._auth_result(t, True, None, ts, number)
            elif m.code == 4:
                self._auth_result(t, False, None, ts, number)

    def _auth_result(self, t: Tunnel, ok: bool, message: str | None, ts: float, number: int) -> None:
        t.auth.result = "success" if ok else "failure"
        if message is not None:
            t.auth.message = message[:512]
        if ok:
            self._advance(t, Phase.NCP, ts, number)

    def _ipcp(self, t: Tunnel, d: Direction, side: str, m: ControlPacket, ts: float, number: int) -> None:
        other = SIDE[1 - d]
        n = t.ncp
        self._advance(t, Phase.NCP, ts, number)
        if m.code == ControlCode.CONFIGURE_REQUEST:
            t.pending_requests[(PppProtocol.IPCP, side)] = m
        elif m.code == ControlCode.CONFIGURE_ACK:
            req = t.pending_requests.pop((PppProtocol.IPCP, other), None) or m
            n.ipcp_opened[other] = True
            for o in req.options:
                if o.type == IpcpOption.IP_ADDRESS and isinstance(o.value, str):
                    if other == "client":
                        n.client_ip = o.value
                    else:
                        n.server_ip = o.value
                elif other == "client" and isinstance(o.value, str):
                    if o.type in (IpcpOption.PRIMARY_DNS, IpcpOption.SECONDARY_DNS) and o.value not in n.dns:
                        n.dns.append(o.value)
                    elif o.type in (IpcpOption.PRIMARY_NBNS, IpcpOption.SECONDARY_NBNS) and o.value not in n.nbns:
                        n.nbns.append(o.value)
            self._maybe_data(t, ts, number)
        elif m.code == ControlCode.CONFIGURE_NAK:
            n.naks += 1
        elif m.code == ControlCode.CONFIGURE_REJECT:
            n.rejects += 1
        elif m.code == ControlCode.TERMINATE_REQUEST:
            n.ipcp_opened = {"client": False, "server": False}

    def _ipv6cp(self, t: Tunnel, side: str, m: ControlPacket, ts: float, number: int) -> None:
        other = "server" if side == "client" else "client"
        n = t.ncp
        self._advance(t, Phase.NCP, ts, number)
        if m.code == ControlCode.CONFIGURE_REQUEST:
            t.pending_requests[(PppProtocol.IPV6CP, side)] = m
        elif m.code == ControlCode.CONFIGURE_ACK:
            req = t.pending_requests.pop((PppProtocol.IPV6CP, other), None) or m
            n.ipv6cp_opened[other] = True
            for o in req.options:
                if o.type == Ipv6cpOption.INTERFACE_IDENTIFIER:
                    if other == "client":
                        n.client_ifid = str(o.value)
                    else:
                        n.server_ifid = str(o.value)

    def _ccp(self, t: Tunnel, side: str, m: ControlPacket, ts: float, number: int) -> None:
        other = "server" if side == "client" else "client"
        c = t.ccp
        self._advance(t, Phase.NCP, ts, number)
        if m.code == ControlCode.CONFIGURE_REQUEST:
            t.pending_requests[(PppProtocol.CCP, side)] = m
            o = m.option(CcpOption.MPPE)
            c.offered[side] = (
                f"mppe {o.value.pppd()}"
                if o is not None and isinstance(o.value, MppeBits)
                else (" ".join(_option_name(x) for x in m.options) or "(none)")
            )
        elif m.code == ControlCode.CONFIGURE_ACK:
            req = t.pending_requests.pop((PppProtocol.CCP, other), None) or m
            c.opened[other] = True
            o = req.option(CcpOption.MPPE)
            if o is not None and isinstance(o.value, MppeBits):
                bits = o.value
                c.mppe = bool(bits.strengths)
                c.bits = max(bits.strengths) if bits.strengths else None
                c.stateless = bits.stateless
                c.mppc = bits.mppc
            self._maybe_data(t, ts, number)
        elif m.code == ControlCode.CONFIGURE_REJECT:
            if m.option(CcpOption.MPPE) is not None:
                c.rejected_by = side
        elif m.code == ControlCode.CONFIGURE_NAK:
            c.naks += 1
        elif m.code == ControlCode.RESET_REQUEST:
            c.reset_requests += 1

    def _maybe_data(self, t: Tunnel, ts: float, number: int) -> None:
        """NCP done: IPCP open both ways, and CCP too if anyone asked for it."""
        n, c = t.ncp, t.ccp
        if not (n.ipcp_opened["client"] and n.ipcp_opened["server"]):
            return
        if c.offered and not (c.opened["client"] and c.opened["server"]):
            return
        self._advance(t, Phase.DATA, ts, number)

    def _data_seen(self, t: Tunnel, ts: float, number: int) -> None:
        self._advance(t, Phase.DATA, ts, number)

    def _inner_ip(self, t: Tunnel, d: int, payload: bytes) -> None:
        """Unencrypted inner IP (PPP 0x0021/0x0057): keep a bounded table of inner 5-tuples."""
        try:
            frame = decode_ppp(payload)
        except DecodeError:
            return
        m: Any = frame.message
        if m is None or not hasattr(m, "src"):
            return
        key = (m.src, m.dst, m.protocol, getattr(m, "src_port", None), getattr(m, "dst_port", None))
        flows = t.inner_flows
        if key in flows or len(flows) < self.limits.max_inner_flows:
            flows[key] = flows.get(key, 0) + 1

    # ------------------------------------------------------------------ TCP / PPTP control
    def _tcp_packet(self, number: int, ts: float, iface: str, linktype: int, data: bytes, ip: Any) -> None:
        try:
            seg = decode_tcp(data, ip.payload_offset, ip.payload_end)
        except DecodeError as e:
            self._malformed(e, number, ts, None)
            return
        if seg.dst_port == PPTP_PORT:
            d = Direction.TO_SERVER
            ckey = (iface, ip.src, seg.src_port, ip.dst, seg.dst_port)
        elif seg.src_port == PPTP_PORT:
            d = Direction.TO_CLIENT
            ckey = (iface, ip.dst, seg.dst_port, ip.src, seg.src_port)
        else:
            self.stats.other += 1
            return
        self.stats.tcp_pptp += 1
        flags = int(seg.flags)  # plain int: IntFlag's & runs Python code
        payload = data[seg.payload_offset : seg.payload_end]
        conn = self._conns.get(ckey)
        if conn is None:
            if flags & TH_RST and not payload:
                return  # a reset for a connection we never saw
            conn = self._new_connection(ts, ckey)
            if not flags & TH_SYN:
                conn.tcp.established = True  # joined mid-stream
        conn.last_seen = ts
        side = SIDE[d]
        tunnels = [t for t in conn.tunnels if not t.ended] or conn.tunnels[-1:]
        for t in tunnels:
            t.last_seen = ts
            t.changed = True
        summary = _tcp_summary(flags, len(payload))
        if flags & (TH_SYN | TH_FIN | TH_RST):
            for t in tunnels:
                self._store(t, Packet(number, ts, iface, linktype, d, PacketKind.TCP, summary, data))
        if flags & TH_SYN:
            if flags & TH_ACK:
                conn.tcp.synack = conn.tcp.synack or ts
                conn.tcp.established = True
            else:
                conn.tcp.syn = conn.tcp.syn or ts
                conn.tcp.syn_count += 1
            self._emit(
                Event(
                    ts, EventKind.TCP, tunnels[0] if tunnels else None, number, d, detail={"flags": summary}
                )
            )
        stream = conn.streams[d]
        before = (stream.retransmissions, stream.out_of_order, stream.resyncs)
        items = stream.feed(seg.seq, int(flags), payload)
        conn.tcp.retransmissions += stream.retransmissions - before[0]
        conn.tcp.out_of_order += stream.out_of_order - before[1]
        conn.tcp.resyncs += stream.resyncs - before[2]
        if flags & TH_ACK:
            # the peer's ACK proves what the other direction sent: a hole there was lost by the capture
            for item in conn.streams[d.other].acknowledged(seg.ack):
                if isinstance(item, DecodeError):
                    self._malformed(item, number, ts, tunnels[0] if tunnels else None)
                else:
                    self._control(conn, d.other, SIDE[d.other], item, number, ts, iface, linktype, data)
        for item in items:
            if isinstance(item, DecodeError):
                self._malformed(item, number, ts, tunnels[0] if tunnels else None)
                continue
            self._control(conn, d, side, item, number, ts, iface, linktype, data)
        if flags & TH_RST:
            conn.tcp.rst[side] = ts
            self._emit(
                Event(
                    ts, EventKind.TCP, tunnels[0] if tunnels else None, number, d, detail={"flags": summary}
                )
            )
            refused = not conn.tcp.established and side == "server"
            for t in [t for t in conn.tunnels if not t.ended]:
                self._close_step(t, side, "tcp-rst", "connection refused" if refused else None, ts, number)
                self._end(t, ts, number)
            conn.closed = True
        elif flags & TH_FIN:
            conn.tcp.fin[side] = ts
            self._emit(
                Event(
                    ts, EventKind.TCP, tunnels[0] if tunnels else None, number, d, detail={"flags": summary}
                )
            )
            for t in [t for t in conn.tunnels if not t.ended]:
                self._close_step(t, side, "tcp-fin", None, ts, number)
                self._end(t, ts, number)
            if len(conn.tcp.fin) == 2:
                conn.closed = True

    def _new_connection(self, ts: float, ckey: tuple[str, str, int, str, int]) -> Connection:
        iface, cip, cport, sip, sport = ckey
        conn = Connection(
            iface,
            cip,
            cport,
            sip,
            sport,
            (StreamReassembler(), StreamReassembler()),
            TcpInfo(),
            EchoStats(),
            ControlInfo(),
            last_seen=ts,
        )
        self._conns[ckey] = conn
        self._new_call(conn, ts)
        return conn

    def _new_call(self, conn: Connection, ts: float) -> Tunnel:
        """A tunnel for the next call on ``conn``, sharing its TCP and echo state."""
        t = self._new_tunnel(
            ts,
            conn.iface,
            Endpoint(conn.client_ip, conn.client_port),
            Endpoint(conn.server_ip, conn.server_port),
            Phase.TCP,
        )
        t.tcp = conn.tcp
        t.pptp_echo = conn.echo
        info = conn.info
        t.control = ControlInfo(
            client_host=info.client_host,
            client_vendor=info.client_vendor,
            server_host=info.server_host,
            server_vendor=info.server_vendor,
            client_firmware=info.client_firmware,
            server_firmware=info.server_firmware,
            protocol_version=info.protocol_version,
            start_result=info.start_result,
            start_error=info.start_error,
        )
        if conn.tunnels:
            prev = conn.tunnels[0]
            self._advance(
                t,
                prev.phase if PHASE_ORDER[prev.phase] <= PHASE_ORDER[Phase.CONTROL] else Phase.CONTROL,
                ts,
                None,
            )
        conn.tunnels.append(t)
        self._conn_of[t.id] = conn
        return t

    def _new_tunnel(self, ts: float, iface: str, client: Endpoint, server: Endpoint, phase: Phase) -> Tunnel:
        if len(self.tunnels) >= self.limits.max_tunnels:
            self._evict(max(1, self.limits.max_tunnels // 10))
        t = Tunnel(self._next_id, iface, client, server, ts, ts, phase=phase, phases=[PhaseSpan(phase, ts)])
        self._next_id += 1
        self.tunnels[t.id] = t
        self.stats.tunnels_created += 1
        self._emit(Event(ts, EventKind.TUNNEL_NEW, t))
        return t

    def _control(
        self,
        conn: Connection,
        d: Direction,
        side: str,
        raw: bytes,
        number: int,
        ts: float,
        iface: str,
        linktype: int,
        data: bytes,
    ) -> None:
        try:
            msg: Any = P.decode_control(raw)
        except DecodeError as e:
            t0 = conn.tunnels[-1] if conn.tunnels else None
            if t0 is not None:
                self._store(
                    t0,
                    Packet(
                        number,
                        ts,
                        iface,
                        linktype,
                        d,
                        PacketKind.MALFORMED,
                        f"malformed PPTP: {e.code}",
                        data,
                    ),
                )
            self._malformed(e, number, ts, t0)
            return
        self.stats.control_messages += 1
        mt = msg.message_type
        T = P.ControlMessageType
        info = conn.info
        targets: list[Tunnel]
        live = [t for t in conn.tunnels if not t.ended]
        if mt in (T.START_CONTROL_CONNECTION_REQUEST, T.START_CONTROL_CONNECTION_REPLY):
            targets = live or conn.tunnels[-1:]
            host, vendor = msg.host_name[:64], msg.vendor_string[:64]
            if side == "client":
                info.client_host, info.client_vendor, info.client_firmware = (
                    host,
                    vendor,
                    msg.firmware_revision,
                )
            else:
                info.server_host, info.server_vendor, info.server_firmware = (
                    host,
                    vendor,
                    msg.firmware_revision,
                )
            info.protocol_version = msg.protocol_version
            if mt == T.START_CONTROL_CONNECTION_REPLY:
                info.start_result, info.start_error = msg.result_code, msg.error_code
            for t in targets:
                c = t.control
                c.client_host, c.client_vendor, c.client_firmware = (
                    info.client_host,
                    info.client_vendor,
                    info.client_firmware,
                )
                c.server_host, c.server_vendor, c.server_firmware = (
                    info.server_host,
                    info.server_vendor,
                    info.server_firmware,
                )
                c.protocol_version, c.start_result, c.start_error = (
                    info.protocol_version,
                    info.start_result,
                    info.start_error,
                )
                self._advance(t, Phase.CONTROL, ts, number)
        elif mt in (
            T.ECHO_REQUEST,
            T.ECHO_REPLY,
            T.STOP_CONTROL_CONNECTION_REQUEST,
            T.STOP_CONTROL_CONNECTION_REPLY,
        ):
            targets = live or conn.tunnels[-1:]
        else:
            targets = [self._call_for(conn, d, side, msg, ts, number)]
        summary = _control_summary(msg)
        for t in targets:
            self._store(t, Packet(number, ts, iface, linktype, d, PacketKind.CONTROL, summary, data, msg))
        # effects
        if mt == T.START_CONTROL_CONNECTION_REPLY and msg.result_code != 1:
            for t in targets:
                self._close_step(
                    t, "server", "control-refused", P.result_name(mt, msg.result_code), ts, number
                )
                self._end(t, ts, number)
        elif mt == T.ECHO_REQUEST:
            self._echo_request(
                targets[0] if targets else None, conn.echo, d, msg.identifier, ts, number, "pptp"
            )
        elif mt == T.ECHO_REPLY:
            self._echo_reply(conn.echo, d, msg.identifier, ts)
        elif mt == T.STOP_CONTROL_CONNECTION_REQUEST:
            info.stop_reason = msg.reason
            for t in targets:
                t.control.stop_reason = msg.reason
                self._close_step(t, side, "stop-control", P.reason_name(msg.reason), ts, number)
                self._end(t, ts, number)
        for t in targets:
            self._emit(Event(ts, EventKind.MESSAGE, t, number, d, msg))

    def _call_for(
        self, conn: Connection, d: Direction, side: str, msg: Any, ts: float, number: int
    ) -> Tunnel:
        """The tunnel a call-level message belongs to, creating it for a new call."""
        T = P.ControlMessageType
        mt = msg.message_type
        other = "server" if side == "client" else "client"

        def find(who: str, call_id: int) -> Tunnel | None:
            for t in reversed(conn.tunnels):
                ep = t.client if who == "client" else t.server
                if ep.call_id == call_id:
                    return t
            return None

        def fresh() -> Tunnel:
            for t in conn.tunnels:
                if t.client.call_id is None and t.server.call_id is None and not t.ended:
                    return t
            return self._new_call(conn, ts)

        t: Tunnel | None
        if mt in (T.OUTGOING_CALL_REQUEST, T.INCOMING_CALL_REQUEST):
            t = find(side, msg.call_id)
            if t is None or t.ended:
                t = fresh()
                ep = t.client if side == "client" else t.server
                ep.call_id = msg.call_id
            t.control.call_serial = msg.call_serial_number
            if hasattr(msg, "packet_recv_window_size"):
                t.control.recv_window[side] = msg.packet_recv_window_size
            self._advance(t, Phase.CALL, ts, number)
            self._register(t)
        elif mt in (T.OUTGOING_CALL_REPLY, T.INCOMING_CALL_REPLY):
            t = find(other, msg.peer_call_id)
            if t is None:
                t = fresh()
                (t.client if other == "client" else t.server).call_id = msg.peer_call_id
            (t.client if side == "client" else t.server).call_id = msg.call_id
            t.control.call_result, t.control.call_error = msg.result_code, msg.error_code
            t.control.recv_window[side] = msg.packet_recv_window_size
            if mt == T.OUTGOING_CALL_REPLY:
                t.control.call_cause = msg.cause_code
                t.control.connect_speed = msg.connect_speed
            self._advance(t, Phase.CALL, ts, number)
            self._register(t)
            if msg.result_code != 1:
                self._close_step(t, side, "call-refused", P.result_name(mt, msg.result_code), ts, number)
                self._end(t, ts, number)
        elif mt == T.INCOMING_CALL_CONNECTED:
            t = find(other, msg.peer_call_id) or fresh()
            t.control.connect_speed = msg.connect_speed
            t.control.recv_window[side] = msg.packet_recv_window_size
        elif mt == T.CALL_CLEAR_REQUEST:
            t = find(side, msg.call_id) or (conn.tunnels[-1] if conn.tunnels else fresh())
            self._close_step(t, side, "call-clear", None, ts, number)
            self._end(t, ts, number)
        elif mt == T.CALL_DISCONNECT_NOTIFY:
            t = find(side, msg.call_id) or (conn.tunnels[-1] if conn.tunnels else fresh())
            t.control.disconnect_result, t.control.disconnect_cause = msg.result_code, msg.cause_code
            t.control.call_statistics = msg.call_statistics[:128]
            self._close_step(t, side, "call-disconnect", P.result_name(mt, msg.result_code), ts, number)
            self._end(t, ts, number)
        elif mt == T.SET_LINK_INFO:
            t = find(other, msg.peer_call_id) or conn.tunnels[-1]
            t.control.send_accm, t.control.receive_accm = msg.send_accm, msg.receive_accm
        elif mt == T.WAN_ERROR_NOTIFY:
            t = find(other, msg.peer_call_id) or conn.tunnels[-1]
            t.control.wan_errors = {
                "crc": msg.crc_errors,
                "framing": msg.framing_errors,
                "hardware_overruns": msg.hardware_overruns,
                "buffer_overruns": msg.buffer_overruns,
                "timeouts": msg.timeout_errors,
                "alignment": msg.alignment_errors,
            }
        else:
            t = conn.tunnels[-1] if conn.tunnels else fresh()
        return t

    # ------------------------------------------------------------------ ICMP
    def _icmp_packet(self, number: int, ts: float, iface: str, linktype: int, data: bytes, ip: Any) -> None:
        """ICMP errors quoting our GRE or TCP 1723 (e.g. protocol-unreachable for GRE, lab s3b)."""
        self.stats.icmp += 1
        off, end = ip.payload_offset, ip.payload_end
        if end - off < 8 + 20:
            return
        itype, icode = data[off], data[off + 1]
        if ip.version == 4 and itype not in (3, 11, 12):
            return
        if ip.version == 6 and itype not in (1, 2, 3, 4):
            return
        try:
            inner = decode_ip(data, off + 8, 0x0800 if ip.version == 4 else 0x86DD)
        except DecodeError:
            return
        t: Tunnel | None = None
        d = Direction.TO_SERVER
        iend = min(end, len(data))
        if inner.protocol == IPPROTO_GRE and inner.payload_offset + 8 <= iend:
            cid = int.from_bytes(data[inner.payload_offset + 6 : inner.payload_offset + 8], "big")
            ent = self._gre.get(iface, {}).get(_raw_gre_key(inner.src_raw, inner.dst_raw, cid))
            if ent is not None:
                t, d = ent
        elif inner.protocol == IPPROTO_TCP and inner.payload_offset + 4 <= iend:
            sport = int.from_bytes(data[inner.payload_offset : inner.payload_offset + 2], "big")
            dport = int.from_bytes(data[inner.payload_offset + 2 : inner.payload_offset + 4], "big")
            conn = self._conns.get((iface, inner.src, sport, inner.dst, dport)) or self._conns.get(
                (iface, inner.dst, dport, inner.src, sport)
            )
            if conn is not None and conn.tunnels:
                t = conn.tunnels[-1]
                d = Direction.TO_SERVER if inner.dst == conn.server_ip else Direction.TO_CLIENT
        if t is None:
            return
        what = _icmp_text(ip.version, itype, icode)
        carried = "GRE" if inner.protocol == IPPROTO_GRE else "TCP"
        text = f"{what} from {ip.src} for {carried} {inner.src} → {inner.dst}"
        if len(t.icmp_errors) < 16:
            t.icmp_errors.append(text)
        t.changed = True
        self._store(t, Packet(number, ts, iface, linktype, d, PacketKind.ICMP, text, data))
        self._emit(
            Event(
                ts,
                EventKind.ICMP,
                t,
                number,
                d,
                detail={
                    "type": itype,
                    "code": icode,
                    "from": ip.src,
                    "inner_protocol": inner.protocol,
                    "text": text,
                },
            )
        )

    # ------------------------------------------------------------------ keepalives
    def _echo_request(
        self, t: Tunnel | None, echo: EchoStats, d: Direction, ident: int, ts: float, number: int, kind: str
    ) -> None:
        echo.requests += 1
        echo.last_request = ts
        for key in [k for k in echo.outstanding if k[0] == d]:
            del echo.outstanding[key]
            self._echo_miss(t, echo, d, ts, number, kind)
        if len(echo.outstanding) < 64:
            echo.outstanding[(int(d), ident)] = ts

    def _echo_reply(self, echo: EchoStats, d: Direction, ident: int, ts: float) -> None:
        sent = echo.outstanding.pop((int(d.other), ident), None)
        if sent is None:
            return
        echo.replies += 1
        echo.last_reply = ts
        echo.consecutive_misses = 0
        rtt = (ts - sent) * 1000.0
        echo.rtt_ms = rtt
        echo.rtt_sum_ms += rtt
        if echo.rtt_max_ms is None or rtt > echo.rtt_max_ms:
            echo.rtt_max_ms = rtt

    def _echo_miss(
        self, t: Tunnel | None, echo: EchoStats, d: Direction, ts: float, number: int | None, kind: str
    ) -> None:
        echo.misses += 1
        echo.consecutive_misses += 1
        if t is not None:
            t.changed = True
        self._emit(
            Event(
                ts,
                EventKind.ECHO_MISS,
                t,
                number,
                d,
                detail={"kind": kind, "consecutive": echo.consecutive_misses, "sender": SIDE[d]},
            )
        )

    # ------------------------------------------------------------------ phases and ends
    def _advance(self, t: Tunnel, phase: Phase, ts: float, number: int | None) -> None:
        if t.ended or PHASE_ORDER[phase] <= PHASE_ORDER[t.phase]:
            return
        cur = t.phases[-1]
        cur.end = ts
        cur.outcome = Outcome.OK
        t.phase = phase
        t.phases.append(PhaseSpan(phase, ts))
        t.changed = True
        self._emit(Event(ts, EventKind.PHASE, t, number, detail={"phase": phase.value}))

    def _close_step(
        self, t: Tunnel, by: str, how: str, reason: str | None, ts: float, number: int | None
    ) -> None:
        """Record a terminating action; the first one says who ended the tunnel and how."""
        c = t.close
        text = f"{how} by {by}" + (f": {reason}" if reason else "")
        if c.steps and c.steps[-1] == text:
            return  # a retransmission of the same request
        if len(c.steps) < 16:
            c.steps.append(text)
        if c.how is None:
            c.by, c.how, c.reason, c.ts, c.frame = by, how, reason, ts, number
        t.changed = True

    def _end(self, t: Tunnel, ts: float, number: int | None) -> None:
        """The tunnel is over: ``closed`` if it carried data, otherwise ``failed`` in its phase."""
        if t.ended:
            return
        t.ended = True
        # keepalives still unanswered when the tunnel ends were never answered
        for key in list(t.lcp_echo.outstanding):
            del t.lcp_echo.outstanding[key]
            self._echo_miss(t, t.lcp_echo, Direction(key[0]), ts, number, "lcp")
        cur = t.phases[-1]
        cur.end = ts
        if t.phase is Phase.DATA:
            cur.outcome = Outcome.OK
            final = Phase.CLOSED
        else:
            cur.outcome = Outcome.FAILED
            t.failed_in = t.phase
            final = Phase.FAILED
        t.phase = final
        t.phases.append(PhaseSpan(final, ts, ts, Outcome.OK if final is Phase.CLOSED else Outcome.FAILED))
        t.changed = True
        self._orphans.pop(t.id, None)
        self._emit(Event(ts, EventKind.PHASE, t, number, detail={"phase": final.value}))
        self._emit(
            Event(
                ts,
                EventKind.ENDED,
                t,
                number,
                detail={
                    "phase": final.value,
                    "failed_in": t.failed_in.value if t.failed_in else None,
                    "by": t.close.by,
                    "how": t.close.how,
                    "reason": t.close.reason,
                },
            )
        )

    def tick(self, now: float) -> None:
        """Run timeouts at capture time ``now``: echo misses, unanswered SYNs, idle tunnels."""
        self._last_tick = now
        lim = self.limits
        for t in list(self.tunnels.values()):
            if t.ended:
                continue
            for echo, kind, timeout in (
                (t.lcp_echo, "lcp", lim.lcp_echo_timeout),
                (t.pptp_echo, "pptp", lim.pptp_echo_timeout),
            ):
                for key, sent in list(echo.outstanding.items()):
                    if now - sent > timeout:
                        del echo.outstanding[key]
                        self._echo_miss(t, echo, Direction(key[0]), now, None, kind)
            if (
                t.phase is Phase.TCP
                and not t.tcp.established
                and t.tcp.syn is not None
                and now - t.first_seen > lim.syn_timeout
            ):
                self._close_step(t, "client", "no-answer", f"{t.tcp.syn_count} SYN unanswered", now, None)
                self._end(t, now, None)
            elif now - t.last_seen > lim.idle_timeout:
                self._close_step(t, "unknown", "idle", f"no packet for {int(now - t.last_seen)} s", now, None)
                self._end(t, now, None)
        self._emit(Event(now, EventKind.TICK, None))

    def idle(self, now: float) -> None:
        """The capture clock reached ``now`` with no packet: run the timeouts a packet would have run."""
        if now > self.now:
            self.now = now
            if now - self._last_tick >= 1.0:
                self.tick(now)

    def finish(self) -> None:
        """End of input: run the timeouts once more at the last capture time (nothing is force-closed)."""
        self._emit(Event(self.now, EventKind.TICK, None, detail={"final": True}))

    # ------------------------------------------------------------------ storage and bounds
    def _store(self, t: Tunnel, p: Packet) -> None:
        if len(t.packets) < self.limits.stored_packets:
            t.packets.append(p)
        else:
            if len(t.late_packets) == t.late_packets.maxlen:
                t.packets_dropped += 1
            t.late_packets.append(p)
        t.changed = True

    def _drop(self, t: Tunnel, ts: float) -> None:
        self.tunnels.pop(t.id, None)
        self._orphans.pop(t.id, None)
        self._unregister(t)
        conn = self._conn_of.pop(t.id, None)
        if conn is not None:
            if t in conn.tunnels:
                conn.tunnels.remove(t)
            if not conn.tunnels:
                self._conns.pop(conn.key, None)
        self.stats.evicted += 1
        self._emit(Event(ts, EventKind.EVICTED, t))

    def _evict(self, count: int) -> None:
        """Make room: ended tunnels first, then the longest idle, oldest first."""
        victims = sorted(self.tunnels.values(), key=lambda t: (not t.ended, t.last_seen))[:count]
        for t in victims:
            self._drop(t, self.now)

    def _evict_orphans(self) -> None:
        n = max(1, self.limits.max_orphans // 10)
        for t in sorted(self._orphans.values(), key=lambda t: t.last_seen)[:n]:
            self._drop(t, self.now)

    def connection_of(self, t: Tunnel) -> Connection | None:
        return self._conn_of.get(t.id)


# ---------------------------------------------------------------------- helpers
def _option_name(o: Any) -> str:
    for enum in (LcpOption,):
        try:
            return enum(o.type).name.lower()
        except ValueError:
            pass
    return f"opt{o.type}"


def _option_value(o: Any) -> Any:
    v = o.value
    if isinstance(v, AuthProtocol):
        return v.method
    if v is None:
        return True
    if isinstance(v, (int, str, bool, float)):
        return v
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def _tcp_summary(flags: int, n: int) -> str:
    names = [
        name
        for bit, name in (
            (TH_SYN, "SYN"),
            (TH_FIN, "FIN"),
            (TH_RST, "RST"),
            (TH_ACK, "ACK"),
        )
        if flags & bit
    ]
    return "TCP " + ",".join(names) + (f" len={n}" if n else "")


def _control_summary(msg: Any) -> str:
    T = P.ControlMessageType
    mt = msg.message_type
    name = P.message_name(mt)
    parts = [name]
    if hasattr(msg, "call_id"):
        parts.append(f"call_id={msg.call_id}")
    if hasattr(msg, "peer_call_id"):
        parts.append(f"peer={msg.peer_call_id}")
    if mt in (T.START_CONTROL_CONNECTION_REQUEST, T.START_CONTROL_CONNECTION_REPLY) and msg.host_name:
        parts.append(f'host="{msg.host_name[:32]}"')
    if (hasattr(msg, "result_code") and mt != T.ECHO_REPLY) or (mt == T.ECHO_REPLY and msg.result_code != 1):
        parts.append(f"result={P.result_name(mt, msg.result_code)}")
        if getattr(msg, "error_code", 0):
            parts.append(f"error={P.error_name(msg.error_code)}")
    if hasattr(msg, "reason"):
        parts.append(f"reason={P.reason_name(msg.reason)}")
    if hasattr(msg, "identifier"):
        parts.append(f"id={msg.identifier:#x}")
    return " ".join(parts)


def _icmp_text(version: int, itype: int, code: int) -> str:
    if version == 4 and itype == 3:
        return {
            0: "ICMP network unreachable",
            1: "ICMP host unreachable",
            2: "ICMP protocol unreachable",
            3: "ICMP port unreachable",
            4: "ICMP fragmentation needed",
            9: "ICMP network prohibited",
            10: "ICMP host prohibited",
            13: "ICMP administratively prohibited",
        }.get(code, f"ICMP destination unreachable (code {code})")
    if version == 4 and itype == 11:
        return "ICMP time exceeded"
    if version == 6 and itype == 1:
        return f"ICMPv6 destination unreachable (code {code})"
    if version == 6 and itype == 4:
        return "ICMPv6 parameter problem"
    return f"ICMP type {itype} code {code}"
