"""PPTP control over TCP 1723: connections, their messages, and the calls (tunnels) they set up.

A control connection (RFC 2637 §1.3) is keyed by its TCP 4-tuple and
interface; its byte streams are reassembled into control messages (§2), which
move every live call of the connection (Start/Stop-Control-Connection, Echo)
or one call, found by its call IDs (Outgoing/Incoming-Call, Call-Clear,
Call-Disconnect, WAN-Error, Set-Link-Info).

A connection first seen as nothing but a handshake (SYN, SYN-ACK, ACK) or a
few bytes that do not start a PPTP message is held in a bounded table, the
oldest dropped first, and becomes a connection (and a tunnel) when it shows
more: a PPTP message, a FIN or RST, a retransmitted SYN (a client waiting for
an answer), or more segments than are held. Its held segments are then
replayed, so nothing of it is lost; a SYN flood or a storm of half-open
connections costs a dict operation a segment and creates no tunnel.
"""

from __future__ import annotations

from typing import Any

from pptptop.decode import pptp as P
from pptptop.decode.errors import DecodeError
from pptptop.decode.tcp import TH_ACK, TH_FIN, TH_RST, TH_SYN, decode_tcp
from pptptop.track.actions import TunnelActions
from pptptop.track.connection import Connection, ConnKey, HeldSegment
from pptptop.track.events import Event, EventKind
from pptptop.track.keepalive import echo_reply, echo_request
from pptptop.track.model import (
    PHASE_ORDER,
    ControlInfo,
    Direction,
    Endpoint,
    Packet,
    PacketKind,
    Phase,
    Tunnel,
)

PPTP_PORT = 1723
#: segments of a connection held before it is opened anyway
HELD_SEGMENTS = 8
MAGIC = P.MAGIC_COOKIE.to_bytes(4, "big")
MAX_NAME = 64
MAX_CALL_STATISTICS = 128


def tcp_packet(tracker: TunnelActions, number: int, ts: float, iface: str, linktype: int, data: bytes, ip: Any) -> None:
    """One TCP segment: to or from port 1723 it is the control connection's, anything else is counted as other."""
    try:
        seg = decode_tcp(data, ip.payload_offset, ip.payload_end)
    except DecodeError as e:
        tracker.malformed(e, number, ts, None)
        return
    if seg.dst_port == PPTP_PORT:
        d = Direction.TO_SERVER
        ckey = (iface, ip.src, seg.src_port, ip.dst, seg.dst_port)
    elif seg.src_port == PPTP_PORT:
        d = Direction.TO_CLIENT
        ckey = (iface, ip.dst, seg.dst_port, ip.src, seg.src_port)
    else:
        tracker.stats.other += 1
        return
    tracker.stats.tcp_pptp += 1
    flags = int(seg.flags)  # plain int: IntFlag's & runs Python code
    payload = data[seg.payload_offset : seg.payload_end]
    conn = tracker.connections.open.get(ckey)
    if conn is None:
        conn = _unknown_connection(tracker, ckey, (number, ts, linktype, data, d, seg.seq, seg.ack, flags,
                                                   seg.payload_offset, seg.payload_end), payload)
        if conn is None:
            return
    _segment(tracker, conn, number, ts, iface, linktype, data, d, seg.seq, seg.ack, flags, payload)


def _unknown_connection(tracker: TunnelActions, ckey: ConnKey, seg: HeldSegment,
                        payload: bytes) -> Connection | None:
    """A segment of a connection not tracked yet: held (None) while the connection shows nothing but a
    handshake, else the connection, opened with the segments held before replayed."""
    pending = tracker.connections.pending
    held = pending.get(ckey)
    if held is None:
        if seg[7] & TH_RST and not payload:
            return None  # a reset for a connection we never saw
        if len(payload) >= 8 and payload[4:8] == MAGIC:
            return _open(tracker, ckey, seg)
        pending[ckey] = [seg]
        if len(pending) > tracker.limits.max_pending_tcp:
            pending.popitem(last=False)
            tracker.stats.tcp_unopened += 1
        return None
    verdict = _shows(held, seg, payload)
    if verdict is None:
        held.append(seg)
        return None
    if verdict:
        held.append(seg)  # replayed with the others
        open_pending(tracker, ckey)
        return None
    del pending[ckey]  # a client's reset of a handshake it never went on with: a SYN flood's backscatter
    tracker.stats.tcp_unopened += 1
    return None


def _shows(held: list[HeldSegment], seg: HeldSegment, payload: bytes) -> bool | None:
    """Whether segment ``seg`` of a held connection shows a real one (True), ends it unopened (False) or
    tells nothing yet (None)."""
    flags, d = seg[7], seg[4]
    if len(payload) >= 8 and payload[4:8] == MAGIC:  # a PPTP message (RFC 2637 §2)
        return True
    if flags & TH_RST:
        return d is Direction.TO_CLIENT  # the server refused or reset it; the client's own reset ends it
    if flags & TH_FIN or len(held) >= HELD_SEGMENTS:
        return True
    if d is not Direction.TO_SERVER:
        return None
    if flags & (TH_SYN | TH_ACK) == TH_SYN:  # the client sent its SYN again: it waits for an answer
        return any(h[7] & (TH_SYN | TH_ACK) == TH_SYN for h in held) or None
    # the client acknowledges the server's SYN-ACK: the three-way handshake is complete (RFC 9293 §3.5)
    return any(h[7] & (TH_SYN | TH_ACK) == TH_SYN | TH_ACK and (h[5] + 1) & 0xFFFFFFFF == seg[6] for h in held) \
        or None


def open_pending(tracker: TunnelActions, ckey: ConnKey) -> Connection:
    """Open the held connection ``ckey``, replaying its segments in order."""
    held = tracker.connections.pending.pop(ckey)
    conn = _open(tracker, ckey, held[0])
    iface = ckey[0]
    for number, ts, linktype, data, d, seq, ack, flags, start, end in held:
        _segment(tracker, conn, number, ts, iface, linktype, data, d, seq, ack, flags, data[start:end])
    return conn


def _open(tracker: TunnelActions, ckey: ConnKey, first: HeldSegment) -> Connection:
    """A control connection whose first segment seen is ``first``."""
    conn = tracker.new_connection(first[1], ckey)
    if not first[7] & TH_SYN:
        conn.tcp.established = True  # joined mid-stream: what came before is not seen, never failed
        tracker.join(conn.tunnels[0], Phase.TCP, first[1])
    return conn


def _segment(tracker: TunnelActions, conn: Connection, number: int, ts: float, iface: str, linktype: int, data: bytes,
             d: Direction, seq: int, ack: int, flags: int, payload: bytes) -> None:
    """One segment of control connection ``conn``: its TCP state, and the PPTP messages it completes."""
    packed = conn.records is not None  # a late segment of a connection whose calls have settled
    conn.last_seen = ts
    side = d.sender
    tunnels = [t for t in conn.tunnels if not t.ended] or conn.tunnels[-1:]
    for t in tunnels:
        t.last_seen = ts
        t.changed = True
    summary = _tcp_summary(flags, len(payload))
    if flags & (TH_SYN | TH_FIN | TH_RST):
        for t in tunnels:
            tracker.store(t, Packet(number, ts, iface, linktype, d, PacketKind.TCP, summary, data))
    if flags & TH_SYN:
        if flags & TH_ACK:
            conn.tcp.synack = conn.tcp.synack or ts
            conn.tcp.established = True
        else:
            conn.tcp.syn = conn.tcp.syn or ts
            conn.tcp.syn_count += 1
        tracker.emit(
            Event(ts, EventKind.TCP, tunnels[0] if tunnels else None, number, d, detail={"flags": summary})
        )
    stream = conn.streams[d]
    before = (stream.retransmissions, stream.out_of_order, stream.resyncs)
    items = stream.feed(seq, flags, payload)
    conn.tcp.retransmissions += stream.retransmissions - before[0]
    conn.tcp.out_of_order += stream.out_of_order - before[1]
    conn.tcp.resyncs += stream.resyncs - before[2]
    if flags & TH_ACK:
        # the peer's ACK proves what the other direction sent: a hole there was lost by the capture
        for item in conn.streams[d.other].acknowledged(ack):
            if isinstance(item, DecodeError):
                tracker.malformed(item, number, ts, tunnels[0] if tunnels else None)
            else:
                _control(tracker, conn, d.other, d.other.sender, item, number, ts, iface, linktype, data)
    for item in items:
        if isinstance(item, DecodeError):
            tracker.malformed(item, number, ts, tunnels[0] if tunnels else None)
            continue
        _control(tracker, conn, d, side, item, number, ts, iface, linktype, data)
    if flags & TH_RST:
        conn.tcp.rst[side] = ts
        tracker.emit(
            Event(ts, EventKind.TCP, tunnels[0] if tunnels else None, number, d, detail={"flags": summary})
        )
        refused = not conn.tcp.established and side == "server"
        for t in [t for t in conn.tunnels if not t.ended]:
            tracker.close_step(t, side, "tcp-rst", "connection refused" if refused else None, ts, number)
            tracker.end(t, ts, number)
        conn.closed = True
    elif flags & TH_FIN:
        conn.tcp.fin[side] = ts
        tracker.emit(
            Event(ts, EventKind.TCP, tunnels[0] if tunnels else None, number, d, detail={"flags": summary})
        )
        for t in [t for t in conn.tunnels if not t.ended]:
            tracker.close_step(t, side, "tcp-fin", None, ts, number)
            tracker.end(t, ts, number)
        if len(conn.tcp.fin) == 2:
            conn.closed = True
    if packed:
        conn.pack()  # packed again, as it was found (unless the segment began a call)


def new_call(tracker: TunnelActions, conn: Connection, ts: float) -> Tunnel:
    """A tunnel for the next call on ``conn``, sharing its TCP and echo state."""
    t = tracker.new_tunnel(
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
        tracker.advance(
            t,
            prev.phase if PHASE_ORDER[prev.phase] <= PHASE_ORDER[Phase.CONTROL] else Phase.CONTROL,
            ts,
            None,
        )
    conn.tunnels.append(t)
    tracker.connections.of[t.id] = conn
    return t


def _control(
    tracker: TunnelActions,
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
    """One reassembled control message (RFC 2637 §2) from ``side``: store it with its tunnels and apply it."""
    try:
        msg: Any = P.decode_control(raw)
    except DecodeError as e:
        t0 = conn.tunnels[-1] if conn.tunnels else None
        if t0 is not None:
            tracker.store(
                t0,
                Packet(number, ts, iface, linktype, d, PacketKind.MALFORMED, f"malformed PPTP: {e.code}", data),
            )
        tracker.malformed(e, number, ts, t0)
        return
    tracker.stats.control_messages += 1
    mt = msg.message_type
    T = P.ControlMessageType
    info = conn.info
    targets: list[Tunnel]
    live = [t for t in conn.tunnels if not t.ended]
    # the tunnels this message ends: ended after its MESSAGE event, so that what the message says (a
    # Call-Clear-Request, a refusal) is observed before the tunnel's ENDED event carries its verdict
    ending: list[Tunnel] = []
    if mt in (T.START_CONTROL_CONNECTION_REQUEST, T.START_CONTROL_CONNECTION_REPLY):
        targets = live or conn.tunnels[-1:]
        host, vendor = tracker.texts(msg.host_name[:MAX_NAME]), tracker.texts(msg.vendor_string[:MAX_NAME])
        if side == "client":
            info.client_host, info.client_vendor, info.client_firmware = host, vendor, msg.firmware_revision
        else:
            info.server_host, info.server_vendor, info.server_firmware = host, vendor, msg.firmware_revision
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
            tracker.advance(t, Phase.CONTROL, ts, number)
    elif mt in (
        T.ECHO_REQUEST,
        T.ECHO_REPLY,
        T.STOP_CONTROL_CONNECTION_REQUEST,
        T.STOP_CONTROL_CONNECTION_REPLY,
    ):
        targets = live or conn.tunnels[-1:]
        for t in targets:  # a keepalive or a Stop: the control connection was up
            tracker.infer(t, Phase.CONTROL, ts)
    else:
        targets = [_call_for(tracker, conn, side, msg, ts, number, ending)]
    summary = _control_summary(msg)
    keepalive = mt in (T.ECHO_REQUEST, T.ECHO_REPLY)
    for t in targets:
        tracker.store(t, Packet(number, ts, iface, linktype, d, PacketKind.CONTROL, summary, data, msg), keepalive)
    # effects
    if mt == T.START_CONTROL_CONNECTION_REPLY and msg.result_code != 1:
        for t in targets:
            tracker.close_step(t, "server", "control-refused", P.result_name(mt, msg.result_code), ts, number)
            ending.append(t)
    elif mt == T.ECHO_REQUEST:
        echo_request(tracker, targets[0] if targets else None, conn.echo, d, msg.identifier, ts, number, "pptp")
    elif mt == T.ECHO_REPLY:
        echo_reply(conn.echo, d, msg.identifier, ts)
    elif mt == T.STOP_CONTROL_CONNECTION_REQUEST:
        info.stop_reason = msg.reason
        for t in targets:
            t.control.stop_reason = msg.reason
            why = f"{P.reason_name(msg.reason)} ({msg.reason})"  # "None (1)": reason 1's name, not a missing one
            tracker.close_step(t, side, "stop-control", why, ts, number)
            ending.append(t)
    for t in targets:
        tracker.emit(Event(ts, EventKind.MESSAGE, t, number, d, msg))
    for t in ending:
        tracker.end(t, ts, number)


def _call_for(tracker: TunnelActions, conn: Connection, side: str, msg: Any, ts: float, number: int,
              ending: list[Tunnel]) -> Tunnel:
    """The tunnel a call-level message belongs to, creating it for a new call; a call it ends is put on
    ``ending``."""
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
        return new_call(tracker, conn, ts)

    t: Tunnel | None
    if mt in (T.CALL_CLEAR_REQUEST, T.CALL_DISCONNECT_NOTIFY, T.SET_LINK_INFO, T.WAN_ERROR_NOTIFY,
              T.INCOMING_CALL_CONNECTED):
        # a message about an established call: first bind it to the GRE-only tunnel of its call, if the
        # capture met that GRE before the control connection, so that what it does applies to one tunnel
        base = (find(side, msg.call_id) if hasattr(msg, "call_id") else find(other, msg.peer_call_id)) or (
            conn.tunnels[-1] if conn.tunnels else fresh())
        tracker.infer(_bind_gre(tracker, conn, base, side, msg, ts, number), Phase.CALL, ts)
    if mt in (T.OUTGOING_CALL_REQUEST, T.INCOMING_CALL_REQUEST):
        t = find(side, msg.call_id)
        if t is None or t.ended:
            t = fresh()
            ep = t.client if side == "client" else t.server
            ep.call_id = msg.call_id
        t.control.call_serial = msg.call_serial_number
        if hasattr(msg, "packet_recv_window_size"):
            t.control.recv_window[side] = msg.packet_recv_window_size
        tracker.advance(t, Phase.CALL, ts, number)
        tracker.register(t)
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
        tracker.advance(t, Phase.CALL, ts, number)
        tracker.register(t)
        if msg.result_code != 1:
            tracker.close_step(t, side, "call-refused", P.result_name(mt, msg.result_code), ts, number)
            ending.append(t)
    elif mt == T.INCOMING_CALL_CONNECTED:
        t = find(other, msg.peer_call_id) or fresh()
        t.control.connect_speed = msg.connect_speed
        t.control.recv_window[side] = msg.packet_recv_window_size
    elif mt == T.CALL_CLEAR_REQUEST:
        t = find(side, msg.call_id) or (conn.tunnels[-1] if conn.tunnels else fresh())
        tracker.close_step(t, side, "call-clear", None, ts, number)
        ending.append(t)
    elif mt == T.CALL_DISCONNECT_NOTIFY:
        t = find(side, msg.call_id) or (conn.tunnels[-1] if conn.tunnels else fresh())
        t.control.disconnect_result, t.control.disconnect_cause = msg.result_code, msg.cause_code
        t.control.call_statistics = msg.call_statistics[:MAX_CALL_STATISTICS]
        tracker.close_step(t, side, "call-disconnect", P.result_name(mt, msg.result_code), ts, number)
        ending.append(t)
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


def _bind_gre(tracker: TunnelActions, conn: Connection, t: Tunnel, side: str, msg: Any, ts: float,
              number: int) -> Tunnel:
    """A call-level message names call IDs: a GRE-only tunnel carrying one of them (the capture saw its GRE
    before its control connection) is this call. Its own Call ID travels in the GRE sent to ``side``
    (RFC 2637 §4.1: the key is the receiver's call ID), the peer's in the GRE ``side`` sends."""
    me, peer = (conn.client_ip, conn.server_ip) if side == "client" else (conn.server_ip, conn.client_ip)
    for src, dst, cid in ((peer, me, getattr(msg, "call_id", None)), (me, peer, getattr(msg, "peer_call_id", None))):
        if cid is None:
            continue
        ent = tracker.gre_owner(conn.iface, src, dst, cid)
        if ent is not None and ent[0] is not t and not ent[0].control_seen:
            return tracker.adopt(conn, t, ent[0], ts, number)
    return t


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
