"""Frames in, tunnels out: the session tracker.

Control connections are keyed by their TCP 4-tuple (and interface); calls
(tunnels) by their call IDs, so that GRE finds its tunnel: GRE from client to
server carries the *server's* call ID in its key and the other way round
(RFC 2637 §4.1). Each tunnel keeps its phase, what was negotiated, traffic
and echo health, and how it ended; every change is also an :class:`Event`.

The hot path — GRE data on Ethernet/IPv4 — is inlined in :meth:`Tracker.feed`:
two ``Struct.unpack_from`` calls, one dict lookup and integer updates. Every
other frame goes through the pure decoders.

This module keeps the state, the GRE index, phases and bounds; what a frame
means is read by :mod:`~pptptop.track.control` (PPTP over TCP 1723),
:mod:`~pptptop.track.negotiation` (PPP inside GRE), :mod:`~pptptop.track.icmp`
(ICMP errors) and :mod:`~pptptop.track.keepalive` (echo health), functions
that take the tracker as their first argument and act on it through the
public methods of :class:`~pptptop.track.actions.TunnelActions`, which
:class:`Tracker` implements (they never import this module). A batch of
frames is :meth:`Tracker.feed_batch`, whose numpy body is
:mod:`~pptptop.track.fastpath`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import deque
from collections.abc import Callable
from functools import lru_cache
from typing import Any, cast

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
from pptptop.decode.link import network_offset
from pptptop.decode.ppp import COUNTED_PROTOCOLS, DATA_PROTOCOLS, PppProtocol, ppp_header
from pptptop.decode.tcpstream import StreamReassembler
from pptptop.track import fastpath
from pptptop.track.capture import CaptureStats as CaptureStats
from pptptop.track.capture import Limits as Limits
from pptptop.track.connection import Connection, Connections, ConnKey
from pptptop.track.control import new_call, open_pending, tcp_packet
from pptptop.track.events import Event, EventKind
from pptptop.track.icmp import icmp_packet
from pptptop.track.keepalive import echo_miss
from pptptop.track.model import (
    LATE_PACKETS,
    NOTHING_KEPT,
    PHASE_ORDER,
    ControlInfo,
    Direction,
    DirectionStats,
    EchoStats,
    Endpoint,
    Outcome,
    Packet,
    Phase,
    PhaseSpan,
    TcpInfo,
    Tunnel,
)
from pptptop.track.negotiation import data_seen, gre_ppp, inner_ip, mppe_seen
from pptptop.track.packed import PackedPackets, PackedRing
from pptptop.track.texts import Texts
from pptptop.track.unknown import Strays, Waiting, pair_of
from pptptop.wire import LINKTYPE_ETHERNET, Batch

ETH_IPV4 = struct.Struct("!12xHBxH2xHxBxxII")  # ethertype, vhl, total length, frag, proto, src, dst
GRE_HEAD = GRE_FIXED  # flags+version, protocol, payload length, call id
GRE_PPP = GRE_PROTOCOL_PPP
ETHERTYPE_IPV4 = 0x0800
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_GRE = 47
IPPROTO_ICMPV6 = 58
MASK32 = 0xFFFFFFFF
#: IP protocol numbers of an IP header inside IP, and the ethertype of what they carry
INNER_IP = {4: 0x0800, 41: 0x86DD}
MAX_IP_NESTING = 4
#: seconds a GRE-only tunnel's LCP Terminate waits for its control connection before it ends the tunnel
GRE_ONLY_LINGER = 2.0
MASK64 = (1 << 64) - 1


@lru_cache(maxsize=4096)
def _ipkey(ip: str) -> int | bytes:
    """The address as a number (IPv4) or its 16 octets (IPv6); each call's two endpoints come again at
    every GRE index change, and parsing the text costs more than the rest of the key."""
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
_OTHER_SIDE = {"client": "server", "server": "client"}


def _swap_sides(t: Tunnel) -> None:
    """What the tunnel holds per side by name ("client"/"server"), the other way round."""
    lcp, ncp, ccp = t.lcp, t.ncp, t.ccp
    lcp.options, lcp.opened, lcp.config_requests = lcp.options.swapped(), lcp.opened.swapped(), \
        lcp.config_requests.swapped()
    lcp.identification, lcp.magic = lcp.identification.swapped(), lcp.magic.swapped()
    ncp.ipcp_opened, ncp.ipv6cp_opened = ncp.ipcp_opened.swapped(), ncp.ipv6cp_opened.swapped()
    ncp.client_ip, ncp.server_ip = ncp.server_ip, ncp.client_ip
    ncp.client_ifid, ncp.server_ifid = ncp.server_ifid, ncp.client_ifid
    ccp.offered, ccp.opened = ccp.offered.swapped(), ccp.opened.swapped()
    if ccp.rejected_by in _OTHER_SIDE:
        ccp.rejected_by = _OTHER_SIDE[ccp.rejected_by]
    c = t.close
    if c.by in _OTHER_SIDE:
        c.by = _OTHER_SIDE[c.by]
    c.steps = [" by ".join(_OTHER_SIDE.get(w.split(":")[0], w.split(":")[0]) + w[len(w.split(":")[0]):]
                           if i else w for i, w in enumerate(step.split(" by ", 1))) for step in c.steps]
    t.pending_requests = {(proto, _OTHER_SIDE.get(side, side)): m for (proto, side), m in t.pending_requests.items()}


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


class Tracker:
    """Turns frames into tunnels. Not thread-safe: one feeder, readers take snapshots under a lock."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.stats = CaptureStats()
        self.tunnels: dict[int, Tunnel] = {}
        self._next_id = 1
        self.connections = Connections()
        #: one copy of each text many tunnels repeat (track/texts.py)
        self.texts = Texts()
        self.gre_index: dict[str, dict[Any, tuple[Tunnel, Direction]]] = {}  # iface -> key -> (tunnel, dir)
        self._keys_of: dict[int, list[tuple[str, Any]]] = {}  # tunnel id -> its GRE keys
        self._orphans: dict[int, Tunnel] = {}  # GRE-only tunnels, insertion ordered
        self._orphan_pairs: dict[tuple[str, Any], int] = {}  # GRE-only tunnels by (iface, unordered address pair)
        self._orphan_pair_of: dict[int, tuple[str, Any]] = {}
        self.waiting = Waiting()  # tunnels owning one GRE direction, by the address pair of the other
        self.strays = Strays(self.limits.max_pending_gre)  # GRE keys not (yet) a tunnel's
        self._subscribers: list[Subscriber] = []
        self.now = 0.0
        self.last_tick = 0.0
        self._summary_at: float | None = None  # the last summary of stray GRE (track/unknown.py)
        #: frame numbers whose GRE sequence/ack numbers the batch path already analysed
        self.seq_done: set[int] = set()
        #: ended tunnels not settled yet, in the order they ended (settle)
        self._settling: deque[Tunnel] = deque()
        #: tunnels the user is looking at (pin): evicted last
        self._pinned: set[int] = set()

    # ------------------------------------------------------------------ events
    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    def emit(self, ev: Event) -> None:
        for cb in self._subscribers:
            cb(ev)

    # ------------------------------------------------------------------ input
    def feed(self, number: int, ts: float, iface: str, linktype: int, data: bytes) -> None:
        """Take one captured frame (``number`` is 1-based, as tshark counts)."""
        st = self.stats
        st.frames += 1
        n = len(data)
        st.bytes += n
        if ts > self.now:  # the clock, as in clock(), inline: this runs once a frame
            if st.first_ts is None:
                st.first_ts = ts
            self.now = st.last_ts = ts
            if ts - self.last_tick >= 1.0:
                self.tick(ts)
        # ---- hot path: Ethernet / IPv4 (no options, not fragmented) / GRE data
        if linktype == LINKTYPE_ETHERNET and n >= 42:
            etype, vhl, total, frag, proto, src, dst = ETH_IPV4.unpack_from(data, 0)
            if etype == ETHERTYPE_IPV4 and proto == IPPROTO_GRE and vhl == 0x45 and not frag & 0x3FFF:
                fv, gproto, plen, cid = GRE_HEAD.unpack_from(data, 34)
                if fv & GRE_PPTP_MASK == GRE_PPTP_VALUE and gproto == GRE_PPP:
                    index = self.gre_index.get(iface)
                    ent = index.get((src << 48) | (dst << 16) | cid) if index is not None else None
                    p = 42 + (4 if fv & GRE_S else 0) + (4 if fv & GRE_A else 0)
                    if ent is not None and n >= p:  # a frame cut inside its GRE header is malformed: _slow
                        st.ip += 1
                        self.gre_frame(number, ts, iface, linktype, data, ent[0], ent[1],
                                        U32.unpack_from(data, 42)[0] if fv & GRE_S else None,
                                        U32.unpack_from(data, p - 4)[0] if fv & GRE_A else None,
                                        p, min(p + plen, n, 14 + total if total else n), plen)
                        return
                    if ent is None and n >= p and (not total or 14 + total >= p):
                        # no tunnel owns the key: what the slow path would decode, without building the IP
                        # and GRE headers (a flood of bogus call IDs comes this way)
                        st.ip += 1
                        end = min(p + plen, n if not total else min(14 + total, n))
                        seq = U32.unpack_from(data, 42)[0] if fv & GRE_S else None
                        ack = U32.unpack_from(data, p - 4)[0] if fv & GRE_A else None
                        ent = self.strays.unknown(self, number, ts, iface, linktype, data,
                                                   (src << 48) | (dst << 16) | cid, seq, ack, p, end, plen)
                        if ent is not None:
                            self.gre_frame(number, ts, iface, linktype, data, ent[0], ent[1], seq, ack, p, end, plen)
                        return
        self._slow(number, ts, iface, linktype, data)

    def clock(self, ts: float) -> None:
        """Capture time reached ``ts`` (a frame's time): move the clock and run the timeouts once a second."""
        if ts > self.now:
            st = self.stats
            if st.first_ts is None:
                st.first_ts = ts
            self.now = st.last_ts = ts
            if ts - self.last_tick >= 1.0:
                self.tick(ts)

    def feed_gre(self, number: int, ts: float, iface: str, linktype: int, data: bytes, key: Any,
                 seq: int | None, ack: int | None, start: int, end: int, plen: int) -> None:
        """What :meth:`feed` does with an enhanced GRE frame whose headers the caller decoded (the batch
        path): its index ``key``, sequence and ack numbers, PPP payload ``data[start:end]``."""
        st = self.stats
        st.frames += 1
        st.bytes += len(data)
        self.clock(ts)
        st.ip += 1
        self._gre_packet_of(number, ts, iface, linktype, data, key, seq, ack, start, end, plen)

    def feed_batch(self, batch: Batch, first_number: int) -> None:
        """Take every frame of ``batch`` (frame ``i`` is number ``first_number + i``), with the result of
        :meth:`feed` on each in turn: the GRE data of tunnels in the data phase is counted a batch at a time
        (:mod:`pptptop.track.fastpath`), every other frame goes through :meth:`feed` in capture order."""
        fastpath.feed_batch(self, batch, first_number)

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
            _seq_slow(ds, seq, delta)

    # ------------------------------------------------------------------ slow path
    def _slow(self, number: int, ts: float, iface: str, linktype: int, data: bytes) -> None:
        st = self.stats
        try:
            ethertype, off = network_offset(linktype, data)
        except DecodeError as e:
            self.malformed(e, number, ts, None)
            return
        if off < 0:
            st.other += 1
            return
        try:
            ip = decode_ip(data, off, ethertype)
        except DecodeError as e:
            self.malformed(e, number, ts, None)
            return
        st.ip += 1
        for _ in range(MAX_IP_NESTING):
            # PPTP carried inside another tunnel: IPv4 in IP (RFC 2003, protocol 4), IPv6 in IP (RFC 4213 /
            # RFC 2473, protocol 41); the tunnel is the inner header's, as tshark decodes it
            if ip.fragment or ip.protocol not in INNER_IP:
                break
            try:
                ip = decode_ip(data, ip.payload_offset, INNER_IP[ip.protocol])
            except DecodeError as e:
                self.malformed(e, number, ts, None)
                return
        if ip.fragment:
            st.other += 1
            return
        proto = ip.protocol
        if proto == IPPROTO_GRE:
            self._gre_packet(number, ts, iface, linktype, data, ip)
        elif proto == IPPROTO_TCP:
            tcp_packet(self, number, ts, iface, linktype, data, ip)
        elif proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            icmp_packet(self, number, ts, iface, linktype, data, ip)
        else:
            st.other += 1

    def malformed(self, e: DecodeError, number: int, ts: float, tunnel: Tunnel | None) -> None:
        self.stats.malformed += 1
        if len(self.stats.malformed_by_code) < 256 or e.code in self.stats.malformed_by_code:
            self.stats.malformed_by_code[e.code] += 1
        if tunnel is not None:
            tunnel.malformed += 1
            tunnel.changed = True
        self.emit(
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
            self.malformed(e, number, ts, None)
            return
        start = ip.payload_offset + g.header_length
        self._gre_packet_of(number, ts, iface, linktype, data, _raw_gre_key(ip.src_raw, ip.dst_raw, g.call_id),
                            g.seq, g.ack, start, min(start + g.payload_length, ip.payload_end), g.payload_length)

    def _gre_packet_of(self, number: int, ts: float, iface: str, linktype: int, data: bytes, key: Any,
                       seq: int | None, ack: int | None, start: int, end: int, plen: int) -> None:
        """One enhanced GRE packet with index key ``key``; its PPP payload is ``data[start:end]``."""
        index = self.gre_index.get(iface)
        ent = index.get(key) if index is not None else None
        if ent is None:
            ent = self.strays.unknown(self, number, ts, iface, linktype, data, key, seq, ack, start, end, plen)
            if ent is None:
                return
        self.gre_frame(number, ts, iface, linktype, data, ent[0], ent[1], seq, ack, start, end, plen)

    def gre_frame(self, number: int, ts: float, iface: str, linktype: int, data: bytes, tunnel: Tunnel,
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
        if ts > tunnel.last_seen:  # the latest: the batch path counts a batch's data before its other frames
            tunnel.last_seen = ts
        tunnel.changed = True
        if self.seq_done and number in self.seq_done:
            self.seq_done.discard(number)  # the batch path analysed its sequence numbers already
        else:
            if seq is not None:
                self.sequence(ds, seq)
            if ack is not None:
                ds.last_ack = ack
        if not plen or start >= end:
            ds.ack_only += 1
            return
        ds.payload_bytes += plen
        pp, hl = ppp_header(data if end == n else data[:end], start)
        if pp in DATA_PROTOCOLS:
            ds.data_packets += 1
            self.stats.gre_data += 1
            tunnel.data_ring.append((number, ts, d, data))
            if tunnel.phase is not Phase.DATA and not tunnel.ended:
                data_seen(self, tunnel, ts, number)
                if pp == PppProtocol.COMPRESSED and start + hl < end:
                    mppe_seen(tunnel, data[start + hl])
            if pp not in COUNTED_PROTOCOLS:  # plain IP: its inner flows
                inner_ip(self, tunnel, d, data[start:end])
            if tunnel.tap is not None:
                tunnel.tap(tunnel, d, number, ts, data, start, end)
            return
        gre_ppp(self, tunnel, d, data[start:end], number, ts, iface, linktype, data)

    def gre_only(self, ts: float, iface: str, src: str, dst: str, call_id: int, tid: int) -> Tunnel:
        """A new GRE-only tunnel numbered ``tid``: the destination is taken for the server until evidence
        says otherwise."""
        if len(self._orphans) >= self.limits.max_orphans:
            self._evict_orphans()
        client, server = Endpoint(self.texts(src)), Endpoint(self.texts(dst), call_id=call_id)
        t = self.new_tunnel(ts, iface, client, server, Phase.CALL, tid)
        self.join(t, Phase.CALL, ts)  # GRE flows: the call was set up before the capture saw it
        t.control_seen = False
        t.roles_guessed = True
        self._orphans[t.id] = t
        self.register(t)
        return t

    def orphans_between(self, iface: str, pair: Any) -> int:
        """GRE-only tunnels on ``iface`` between the two addresses of unordered ``pair``."""
        return self._orphan_pairs.get((iface, pair), 0)

    def _sync(self, t: Tunnel) -> None:
        """Keep the GRE-only tunnels by address pair and the tunnels waiting for a call ID up to date."""
        pair = pair_of(gre_key(t.client.ip, t.server.ip, 0))
        orphan = t.id in self._orphans
        counted = self._orphan_pair_of.get(t.id)
        if orphan and counted is None:
            k = (t.iface, min(pair, pair_of(gre_key(t.server.ip, t.client.ip, 0))))
            self._orphan_pair_of[t.id] = k
            self._orphan_pairs[k] = self._orphan_pairs.get(k, 0) + 1
        elif not orphan and counted is not None:
            del self._orphan_pair_of[t.id]
            left = self._orphan_pairs[counted] - 1
            if left:
                self._orphan_pairs[counted] = left
            else:
                del self._orphan_pairs[counted]
        self.waiting.update(t, orphan, t.id in self.connections.of, pair)

    def gre_entry_of(self, iface: str, key: Any) -> tuple[Tunnel, Direction] | None:
        index = self.gre_index.get(iface)
        return index.get(key) if index is not None else None

    def gre_entry(self, iface: str, src_raw: bytes, dst_raw: bytes, call_id: int) -> tuple[Tunnel, Direction] | None:
        """The tunnel (and direction) of GRE from ``src_raw`` to ``dst_raw`` carrying ``call_id``; a key held
        pending becomes a GRE-only tunnel now (an ICMP error quoting it shows it was real)."""
        key = _raw_gre_key(src_raw, dst_raw, call_id)
        ent = self.gre_entry_of(iface, key)
        if ent is None and self.strays.take(self, iface, key) is not None:
            ent = self.gre_entry_of(iface, key)
        return ent

    def gre_owner(self, iface: str, src: str, dst: str, call_id: int) -> tuple[Tunnel, Direction] | None:
        """The tunnel (and direction) that GRE from ``src`` to ``dst`` carrying ``call_id`` belongs to; a key
        held pending becomes a GRE-only tunnel now (a control message names it)."""
        key = gre_key(src, dst, call_id)
        ent = self.gre_entry_of(iface, key)
        if ent is None and self.strays.take(self, iface, key) is not None:
            ent = self.gre_entry_of(iface, key)
        return ent

    def register(self, t: Tunnel) -> None:
        """Index a tunnel's GRE keys: client→server carries the server's call ID and vice versa."""
        index = self.gre_index.setdefault(t.iface, {})
        keys = self._keys_of.setdefault(t.id, [])
        taken: list[Any] = []
        # a newer call takes a key over from an older one (pptpd reuses call IDs, clients reuse addresses); a
        # key ``t`` had and lost that way stays lost when ``t`` is indexed again (a GRE-only tunnel learning its
        # other call ID must not take its old key back from the call that took it over)
        for call_id, k_src, k_dst, d in (
            (t.server.call_id, t.client.ip, t.server.ip, Direction.TO_SERVER),
            (t.client.call_id, t.server.ip, t.client.ip, Direction.TO_CLIENT),
        ):
            if call_id is None:
                continue
            k = gre_key(k_src, k_dst, call_id)
            if index.get(k, (None,))[0] is not t:
                if (t.iface, k) in keys and k in index:
                    continue
                index[k] = (t, d)
                keys.append((t.iface, k))
                taken.append(k)
        self._sync(t)
        for k in taken:  # GRE held under a key before this call took it is the call's
            self.strays.claim(self, t.iface, k)

    def _unregister(self, t: Tunnel) -> None:
        for iface, k in self._keys_of.pop(t.id, []):
            index = self.gre_index.get(iface)
            if index is not None and index.get(k, (None,))[0] is t:
                del index[k]
        self.waiting.drop(t)
        if t.id not in self._orphans and t.id in self._orphan_pair_of:
            self._sync(t)

    def swap_roles(self, t: Tunnel, ts: float, number: int, why: str) -> None:
        """A GRE-only tunnel turned out the other way round: swap client and server."""
        self._unfold(t)
        self._unregister(t)
        t.client, t.server = t.server, t.client
        t.traffic = (t.traffic[1], t.traffic[0])
        t.roles_guessed = False
        _swap_sides(t)
        for p in t.packets:
            p.direction = p.direction.other
        for p in t.late_packets:
            p.direction = p.direction.other
        t.data_ring = type(t.data_ring)(
            ((n, s, 1 - d, b) for n, s, d, b in t.data_ring), maxlen=t.data_ring.maxlen
        )
        self.register(t)
        self.emit(Event(ts, EventKind.ROLES, t, number, detail={"why": why}))

    # ------------------------------------------------------------------ phases and ends
    def join(self, t: Tunnel, phase: Phase, ts: float) -> None:
        """The capture met ``t``, new, already in ``phase`` or later: the phases before it were not seen."""
        t.joined = True
        t.joined_phase = t.phase = phase
        t.phases = [PhaseSpan(p, ts, ts, Outcome.NOT_SEEN) for p in PHASE_ORDER
                    if PHASE_ORDER[p] < PHASE_ORDER[phase]] + [PhaseSpan(phase, ts)]
        t.changed = True

    def infer(self, t: Tunnel, phase: Phase, ts: float) -> None:
        """A joined tunnel proved to be in ``phase`` at least (a call-level message, a keepalive) by a
        message that does not show the phase begin: the phases up to it stay not seen."""
        if not t.joined or t.ended or t.phase is not t.joined_phase or PHASE_ORDER[phase] <= PHASE_ORDER[t.phase]:
            return
        cur = t.phases[-1]
        cur.end, cur.outcome = ts, Outcome.NOT_SEEN
        t.phases.extend(PhaseSpan(p, ts, ts, Outcome.NOT_SEEN) for p in PHASE_ORDER
                        if PHASE_ORDER[t.phase] < PHASE_ORDER[p] < PHASE_ORDER[phase])
        t.phases.append(PhaseSpan(phase, ts))
        t.phase = t.joined_phase = phase
        t.changed = True

    def adopt(self, conn: Connection, t: Tunnel, gre: Tunnel, ts: float, number: int) -> Tunnel:
        """``gre``, a GRE-only tunnel, is the call ``t`` of control connection ``conn`` (a message of ``conn``
        named its call ID): one session, one tunnel. ``gre`` keeps its GRE counters and negotiation and
        takes over the control connection's side; ``t`` is dropped as merged. Returns ``gre``."""
        if gre.client.ip != conn.client_ip:
            self.swap_roles(gre, ts, number, "its control connection's TCP 1723 side is the server")
        self._unregister(gre)
        gre.client.port, gre.server.port = conn.client_port, conn.server_port
        for mine, theirs in ((gre.client, t.client), (gre.server, t.server)):
            if mine.call_id is None:
                mine.call_id = theirs.call_id
        gre.control_seen, gre.roles_guessed = True, False
        gre.tcp, gre.pptp_echo, gre.control = t.tcp, t.pptp_echo, t.control
        gre.first_seen = min(gre.first_seen, t.first_seen)
        gre.last_seen = max(gre.last_seen, t.last_seen)
        if gre.close.how is None and t.close.how is not None:
            gre.close = t.close
        self._unfold(gre)
        self._unfold(t)
        stored = sorted([*gre.packets, *t.packets], key=lambda p: p.number)
        limit = self.limits.stored_packets
        gre.packets = stored[:limit]
        if len(stored) > limit:
            self._late(gre).extend(stored[limit:])
        gre.keepalives = type(gre.keepalives)(sorted([*gre.keepalives, *t.keepalives], key=lambda p: p.number),
                                              maxlen=gre.keepalives.maxlen)
        self._orphans.pop(gre.id, None)
        conn.tunnels[conn.tunnels.index(t)] = gre
        self.connections.of.pop(t.id, None)
        self.connections.of[gre.id] = conn
        self.tunnels.pop(t.id, None)
        self._unregister(t)
        self.register(gre)
        self.emit(Event(ts, EventKind.MERGED, t, number, detail={"into": gre.id}))
        return gre

    def advance(self, t: Tunnel, phase: Phase, ts: float, number: int | None) -> None:
        if t.ended or PHASE_ORDER[phase] <= PHASE_ORDER[t.phase]:
            return
        cur = t.phases[-1]
        cur.end = ts
        if t.joined and t.phase is t.joined_phase:
            # the phase the capture joined in, and those skipped on to ``phase``: not seen
            cur.outcome = Outcome.NOT_SEEN
            t.phases.extend(PhaseSpan(p, ts, ts, Outcome.NOT_SEEN) for p in PHASE_ORDER
                            if PHASE_ORDER[t.phase] < PHASE_ORDER[p] < PHASE_ORDER[phase])
            t.joined_phase = phase if phase is Phase.DATA else None
        else:
            cur.outcome = Outcome.OK
        t.phase = phase
        t.phases.append(PhaseSpan(phase, ts))
        t.changed = True
        if phase is Phase.DATA and t.packets and t.control_seen and not t.roles_guessed:
            self._fold(t)
        self.emit(Event(ts, EventKind.PHASE, t, number, detail={"phase": phase.value}))

    @staticmethod
    def _fold(t: Tunnel) -> None:
        """Pack ``t``'s negotiation, now over: a tunnel in the data phase may stay up for days, and its
        stored packets took more than anything else it holds (issue 23). Not a GRE-only tunnel's: its roles
        may still swap, or a control connection adopt it (``_unfold``)."""
        t.folded = PackedPackets.pack(t.packets)
        t.packets = []

    @staticmethod
    def _unfold(t: Tunnel) -> None:
        """Unpack ``t``'s folded negotiation back into its stored packets, before they are changed."""
        if t.folded is not None:
            t.packets = sorted([*t.folded.unpack(), *t.packets], key=lambda p: p.number)
            t.folded = None

    def close_step(
        self, t: Tunnel, by: str, how: str, reason: str | None, ts: float, number: int | None
    ) -> None:
        """Record a terminating action; the first one says who ended the tunnel and how."""
        c = t.close
        text = self.texts(f"{how} by {by}" + (f": {reason}" if reason else ""))
        if c.steps and c.steps[-1] == text:
            return  # a retransmission of the same request
        if len(c.steps) < 16:
            c.steps.append(text)
        if c.how is None:
            c.by, c.how, c.reason, c.ts, c.frame = by, how, reason, ts, number
        t.changed = True

    def end(self, t: Tunnel, ts: float, number: int | None) -> None:
        """The tunnel is over: ``closed`` if it carried data, otherwise ``failed`` in its phase."""
        if t.ended:
            return
        t.ended = True
        t.ended_at = ts
        # keepalives still unanswered when the tunnel ends were never answered
        for key in list(t.lcp_echo.outstanding):
            del t.lcp_echo.outstanding[key]
            echo_miss(self, t, t.lcp_echo, Direction(key[0]), ts, number, "lcp")
        cur = t.phases[-1]
        cur.end = ts
        if t.phase is Phase.DATA:
            cur.outcome = Outcome.OK
            final = Phase.CLOSED
        elif t.joined and t.phase is t.joined_phase:
            # joined mid-session and nothing seen since fails: what it did before the capture is unknown
            cur.outcome = Outcome.NOT_SEEN
            final = Phase.CLOSED
        else:
            cur.outcome = Outcome.FAILED
            t.failed_in = t.phase
            final = Phase.FAILED
        t.phase = final
        t.phases.append(PhaseSpan(final, ts, ts, Outcome.OK if final is Phase.CLOSED else Outcome.FAILED))
        t.changed = True
        self._orphans.pop(t.id, None)
        self._settling.append(t)
        self._sync(t)
        self.emit(Event(ts, EventKind.PHASE, t, number, detail={"phase": final.value}))
        self.emit(
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
        self.last_tick = now
        lim = self.limits
        self.strays.expire(self, now - lim.idle_timeout)
        for t in list(self.tunnels.values()):
            if t.ended:
                if t.records is None and t.packed is not None:
                    t.pack_records()  # settled, and read since (shown, or a late packet)
                continue
            for echo, kind, timeout in (
                (t.lcp_echo, "lcp", lim.lcp_echo_timeout),
                (t.pptp_echo, "pptp", lim.pptp_echo_timeout),
            ):
                if not echo.outstanding:
                    continue
                for key, sent in list(echo.outstanding.items()):
                    if now - sent > timeout:
                        del echo.outstanding[key]
                        echo_miss(self, t, echo, Direction(key[0]), now, None, kind)
            if (
                t.phase is Phase.TCP
                and not t.tcp.established
                and t.tcp.syn is not None
                and now - t.first_seen > lim.syn_timeout
            ):
                self.close_step(t, "client", "no-answer", f"{t.tcp.syn_count} SYN unanswered", now, None)
                self.end(t, now, None)
            elif self._gre_only_down(t, now - GRE_ONLY_LINGER):
                self.end(t, t.close.ts or now, t.close.frame)
            elif now - t.last_seen > lim.idle_timeout:
                self.close_step(t, "unknown", "idle", f"no packet for {int(now - t.last_seen)} s", now, None)
                self.end(t, now, None)
        self.settle(now)
        since = self._summary_at if self._summary_at is not None else self.stats.first_ts
        if since is not None and now - since >= lim.summary_every and self.strays.to_report():
            self.strays.flush(self, now, since)  # once an interval at most
            self._summary_at = now
        self.emit(Event(now, EventKind.TICK, None))

    def idle(self, now: float) -> None:
        """The capture clock reached ``now`` with no packet: run the timeouts a packet would have run."""
        if now > self.now:
            self.now = now
            if now - self.last_tick >= 1.0:
                self.tick(now)

    @staticmethod
    def _gre_only_down(t: Tunnel, before: float) -> bool:
        """A GRE-only tunnel whose link went down (LCP Terminate-Request) before ``before``: no control
        connection will end it; one that shows up within :data:`GRE_ONLY_LINGER` binds to it first."""
        if t.ended or t.control_seen:
            return False
        c = t.close
        return c.how == "lcp-terminate" and c.ts is not None and c.ts <= before

    def finish(self) -> None:
        """End of input: run the timeouts once more at the last capture time.

        Nothing is force-closed but a connection attempt that only ever sent SYNs and retransmitted at least
        once: what the input shows is all there will be, so its verdict is given now (no answer), as the SYN
        timeout would have given it. GRE keys still pending and connections still held as a bare handshake
        never became tunnels.
        """
        since = self._summary_at if self._summary_at is not None else self.stats.first_ts
        self.strays.flush(self, self.now, self.now if since is None else since, final=True)
        self.stats.tcp_unopened += len(self.connections.pending)
        self.connections.pending.clear()
        for t in list(self.tunnels.values()):
            tcp = t.tcp
            if not t.ended and t.phase is Phase.TCP and not tcp.established and tcp.syn is not None \
                    and tcp.syn_count >= 2:
                self.close_step(t, "client", "no-answer", f"{tcp.syn_count} SYN unanswered", self.now, None)
                self.end(t, self.now, None)
            elif self._gre_only_down(t, self.now):
                self.end(t, t.close.ts or self.now, t.close.frame)
        self.emit(Event(self.now, EventKind.TICK, None, detail={"final": True}))

    # ------------------------------------------------------------------ storage and bounds
    def store(self, t: Tunnel, p: Packet, keepalive: bool = False) -> None:
        if keepalive:
            t.keepalives.append(p)
        elif len(t.packets) + (len(t.folded) if t.folded is not None else 0) \
                + (len(t.packed) if t.packed is not None else 0) < self.limits.stored_packets:
            t.packets.append(p)
        else:
            late = self._late(t)
            if len(late) == late.maxlen:
                t.packets_dropped += 1
            late.append(p)
        t.changed = True

    @staticmethod
    def _late(t: Tunnel) -> deque[Packet]:
        """``t``'s ring of late packets, made now if it has none yet."""
        if t.late_packets is NOTHING_KEPT:
            t.late_packets = deque(maxlen=LATE_PACKETS)
        return t.late_packets

    def settle(self, now: float) -> None:
        """Pack the stored packets of the tunnels that ended and have had no packet for ``settle_after``
        seconds, oldest end first (track/packed.py): a closed tunnel keeps its transcript, evidence and data
        ring in a few kilobytes. Each gets a SETTLED event, on which later stages let go of their working
        state. A tunnel that ended but still sees packets waits at the back."""
        q = self._settling
        wait = self.limits.settle_after
        for _ in range(len(q)):
            t = q[0]
            if self.tunnels.get(t.id) is not t or t.packed is not None:
                q.popleft()  # evicted, merged, or settled already
            elif now - t.last_seen >= wait:
                q.popleft()
                self._settle(t, now)
            elif now - t.ended_at >= wait:
                q.rotate(-1)  # ended long ago, but a packet came since
            else:
                break

    def _settle(self, t: Tunnel, now: float) -> None:
        # behind the negotiation folded, if it was (_fold packed it: the model names only its protocol)
        t.packed = PackedPackets.pack(t.loose_packets(), cast("PackedPackets | None", t.folded))
        t.folded = None
        cited = {n for f in t.findings for n in f.evidence}
        ring = [e for e in t.data_ring if e[0] in cited]  # data the diagnosis cites; the rest was counted
        t.packed_ring = PackedRing.pack(ring) if ring else None
        t.packets = []
        t.late_packets = t.keepalives = t.data_ring = NOTHING_KEPT
        t.pending_requests.clear()
        self.emit(Event(now, EventKind.SETTLED, t))
        t.pack_records()  # after the later stages have let go of their working state
        conn = self.connections.of.get(t.id)
        if conn is not None:
            conn.pack()  # when it is closed and this was its last call to settle

    def _drop(self, t: Tunnel, ts: float) -> None:
        self.tunnels.pop(t.id, None)
        self._orphans.pop(t.id, None)
        self._pinned.discard(t.id)
        self._unregister(t)
        conn = self.connections.of.pop(t.id, None)
        if conn is not None:
            if t in conn.tunnels:
                conn.tunnels.remove(t)
            if not conn.tunnels:
                self.connections.open.pop(conn.key, None)
        self.stats.evicted += 1
        self.emit(Event(ts, EventKind.EVICTED, t))

    def pin(self, tunnel_id: int, pinned: bool = True) -> None:
        """Keep ``tunnel_id`` in memory in preference (the UI pins the tunnel the user is looking at);
        ``pinned=False`` lets it go again. Unknown ids are ignored."""
        if pinned and tunnel_id in self.tunnels:
            self._pinned.add(tunnel_id)
        else:
            self._pinned.discard(tunnel_id)

    @property
    def pinned(self) -> frozenset[int]:
        return frozenset(self._pinned)

    def _evict(self, count: int) -> None:
        """Make room for ``count`` tunnels (issue 23): closed tunnels first, oldest end first; then failed ones,
        oldest first; then live ones, longest idle first. A pinned tunnel goes last of all."""
        pinned = self._pinned

        def rank(t: Tunnel) -> tuple[bool, int, float]:
            state = (0 if t.phase is Phase.CLOSED else 1) if t.ended else 2
            return t.id in pinned, state, t.ended_at if t.ended else t.last_seen

        for t in sorted(self.tunnels.values(), key=rank)[:count]:
            self._drop(t, self.now)

    def _evict_orphans(self) -> None:
        n = max(1, self.limits.max_orphans // 10)
        for t in sorted(self._orphans.values(), key=lambda t: t.last_seen)[:n]:
            self._drop(t, self.now)

    def reserve_ids(self, n: int) -> int:
        """Number ``n`` tunnels to come (a tunnel is numbered by its first packet); the first number."""
        tid = self._next_id
        self._next_id = tid + n
        return tid

    def new_tunnel(self, ts: float, iface: str, client: Endpoint, server: Endpoint, phase: Phase,
                    tid: int | None = None) -> Tunnel:
        """A new tunnel in ``phase`` (numbered ``tid`` when one was reserved), making room first when the
        bound is reached."""
        if len(self.tunnels) >= self.limits.max_tunnels:
            self._evict(max(1, self.limits.max_tunnels // 10))
        if tid is None:
            tid = self._next_id
            self._next_id += 1
        t = Tunnel(tid, iface, client, server, ts, ts, phase=phase, phases=[PhaseSpan(phase, ts)])
        self.tunnels[t.id] = t
        self.stats.tunnels_created += 1
        self.emit(Event(ts, EventKind.TUNNEL_NEW, t))
        return t

    def new_connection(self, ts: float, ckey: ConnKey) -> Connection:
        """A control connection first seen now, indexed by ``ckey``, with a tunnel for its first call."""
        iface, cip, cport, sip, sport = ckey
        cip, sip = self.texts(cip), self.texts(sip)
        ckey = (iface, cip, cport, sip, sport)
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
        self.connections.open[ckey] = conn
        new_call(self, conn, ts)
        return conn

    def connection_of(self, t: Tunnel) -> Connection | None:
        return self.connections.of.get(t.id)

    def connection(self, ckey: ConnKey) -> Connection | None:
        """The control connection ``ckey``; one held as a bare handshake is opened now (an ICMP error quoting
        it shows it was real)."""
        conn = self.connections.open.get(ckey)
        if conn is None and ckey in self.connections.pending:
            conn = open_pending(self, ckey)
        return conn
