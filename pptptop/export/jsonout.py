"""``--json``: one JSON document for a file, one line per tunnel event live.

The key names are a stable interface (scripts and the UI depend on them);
docs/json.md documents every one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO, Any

from pptptop.track.events import Event, EventKind
from pptptop.track.model import Direction, EchoStats, Tunnel
from pptptop.track.tracker import Tracker

#: extra per-tunnel sections added by later stages (diagnosis, NAT); name -> f(tunnel) -> value
Extension = Callable[[Tunnel], Any]


def _echo(e: EchoStats) -> dict[str, Any]:
    return {
        "requests": e.requests,
        "replies": e.replies,
        "misses": e.misses,
        "rtt_ms": None if e.rtt_ms is None else round(e.rtt_ms, 3),
        "rtt_avg_ms": None if e.rtt_avg_ms is None else round(e.rtt_avg_ms, 3),
        "rtt_max_ms": None if e.rtt_max_ms is None else round(e.rtt_max_ms, 3),
    }


def tunnel_dict(t: Tunnel, now: float, extensions: dict[str, Extension] | None = None) -> dict[str, Any]:
    """Everything the tracker knows about one tunnel, as plain JSON types."""
    up, down = t.traffic[Direction.TO_SERVER], t.traffic[Direction.TO_CLIENT]
    c = t.control
    out: dict[str, Any] = {
        "id": t.id,
        "interface": t.iface,
        "client": {"ip": t.client.ip, "port": t.client.port, "call_id": t.client.call_id},
        "server": {"ip": t.server.ip, "port": t.server.port, "call_id": t.server.call_id},
        "phase": t.phase.value,
        "failed_in": t.failed_in.value if t.failed_in else None,
        "joined": t.joined,
        "control_seen": t.control_seen,
        "roles_guessed": t.roles_guessed,
        "first_seen": t.first_seen,
        "last_seen": t.last_seen,
        "phases": [
            {"phase": s.phase.value, "start": s.start, "end": s.end, "outcome": s.outcome.value}
            for s in t.phases
        ],
        "control": {
            "host_name": {"client": c.client_host, "server": c.server_host},
            "vendor": {"client": c.client_vendor, "server": c.server_vendor},
            "firmware": {"client": c.client_firmware, "server": c.server_firmware},
            "protocol_version": c.protocol_version,
            "start_result": c.start_result,
            "start_error": c.start_error,
            "call_result": c.call_result,
            "call_error": c.call_error,
            "call_cause": c.call_cause,
            "call_serial": c.call_serial,
            "connect_speed": c.connect_speed,
            "recv_window": dict(c.recv_window),
            "disconnect_result": c.disconnect_result,
            "disconnect_cause": c.disconnect_cause,
            "call_statistics": c.call_statistics,
            "stop_reason": c.stop_reason,
            "accm": {"send": c.send_accm, "receive": c.receive_accm},
            "wan_errors": dict(c.wan_errors),
        },
        "tcp": {
            "syn_count": t.tcp.syn_count,
            "established": t.tcp.established,
            "fin": sorted(t.tcp.fin),
            "rst": sorted(t.tcp.rst),
            "retransmissions": t.tcp.retransmissions,
            "out_of_order": t.tcp.out_of_order,
            "resyncs": t.tcp.resyncs,
        },
        "lcp": {
            "options": {side: dict(v) for side, v in t.lcp.options.items()},
            "opened": dict(t.lcp.opened),
            "config_requests": dict(t.lcp.config_requests),
            "naks": t.lcp.naks,
            "rejects": t.lcp.rejects,
            "identification": dict(t.lcp.identification),
            "protocol_rejects": [f"{p:#06x}" for p in t.lcp.protocol_rejects],
        },
        "auth": {
            "negotiation_seen": t.auth_seen,
            "method": t.auth.method if t.auth_seen else None,
            "user": t.auth.user,
            "server_name": t.auth.server_name,
            "result": t.auth.result if t.auth_seen else None,
            "message": t.auth.message,
            "error_code": t.auth.error_code,
            "retry": t.auth.retry,
            "attempts": t.auth.attempts,
            "password_seen": t.auth.password_seen,
        },
        "ncp": {
            "negotiation_seen": t.ncp_seen,
            "client_ip": t.ncp.client_ip,
            "server_ip": t.ncp.server_ip,
            "dns": list(t.ncp.dns),
            "nbns": list(t.ncp.nbns),
            "ipcp_opened": dict(t.ncp.ipcp_opened),
            "ipv6cp_opened": dict(t.ncp.ipv6cp_opened),
            "client_interface_id": t.ncp.client_ifid,
            "server_interface_id": t.ncp.server_ifid,
        },
        "ccp": {
            "negotiation_seen": t.ccp_seen,
            "mppe": t.ccp.mppe if t.ccp_seen or t.ccp.from_data else None,
            "from_data": t.ccp.from_data,
            "bits": t.ccp.bits,
            "stateless": t.ccp.stateless,
            "mppc": t.ccp.mppc,
            "offered": dict(t.ccp.offered),
            "rejected_by": t.ccp.rejected_by,
            "reset_requests": t.ccp.reset_requests,
        },
        "traffic": {
            name: {
                "packets": ds.packets,
                "bytes": ds.bytes,
                "payload_bytes": ds.payload_bytes,
                "data_packets": ds.data_packets,
                "ack_only": ds.ack_only,
                "control_frames": ds.control_frames,
                "rate_bps": round(ds.rate(now) * 8, 1),
            }
            for name, ds in (("to_server", up), ("to_client", down))
        },
        "gre": {
            name: {
                "lost": ds.lost,
                "duplicates": ds.duplicates,
                "reordered": ds.reordered,
                "last_seq": ds.max_seq if ds.seq_init else None,
                "last_ack": ds.last_ack,
            }
            for name, ds in (("to_server", up), ("to_client", down))
        },
        "echo": {"pptp": _echo(t.pptp_echo), "lcp": _echo(t.lcp_echo)},
        "close": {
            "by": t.close.by,
            "how": t.close.how,
            "reason": t.close.reason,
            "time": t.close.ts,
            "frame": t.close.frame,
            "steps": list(t.close.steps),
        },
        "icmp_errors": list(t.icmp_errors),
        "inner_flows": [
            {"src": k[0], "dst": k[1], "protocol": k[2], "src_port": k[3], "dst_port": k[4], "packets": n}
            for k, n in list(t.inner_flows.items())[:32]
        ],
        "malformed": t.malformed,
        "packets_stored": t.stored,
    }
    for name, fn in (extensions or {}).items():
        out[name] = fn(t)
    return out


def source_dict(tracker: Tracker, source: dict[str, Any]) -> dict[str, Any]:
    s = tracker.stats
    return {
        **source,
        "frames": s.frames,
        "bytes": s.bytes,
        "ip": s.ip,
        "pptp_tcp_segments": s.tcp_pptp,
        "control_messages": s.control_messages,
        "gre": s.gre,
        "gre_data": s.gre_data,
        "gre_unknown_call": s.gre_unknown,
        "gre_unknown_dropped": s.gre_unknown_dropped,
        "gre_unknown_sources": dict(s.gre_unknown_sources.most_common(16)),
        "tcp_unopened": s.tcp_unopened,
        "icmp": s.icmp,
        "other": s.other,
        "malformed": s.malformed,
        "malformed_by_code": dict(s.malformed_by_code),
        "tunnels_created": s.tunnels_created,
        "tunnels_evicted": s.evicted,
        "first_time": s.first_ts,
        "last_time": s.last_ts,
    }


def document(
    tracker: Tracker,
    source: dict[str, Any],
    extensions: dict[str, Extension] | None = None,
    fold: Callable[[Tunnel], int | None] | None = None,
) -> dict[str, Any]:
    """The whole ``--json`` document for a finished capture.

    ``fold(t)`` names the tunnel ``t`` is shown under (the inside leg of its
    NAT session, see track/nat.py) or None: folded tunnels leave ``tunnels``
    and appear in their parent's ``legs`` list, so each session is listed once.
    """
    src = source_dict(tracker, source)
    return {"source": src, "tunnels": list(tunnel_dicts(tracker, extensions, fold))}


def tunnel_dicts(
    tracker: Tracker,
    extensions: dict[str, Extension] | None = None,
    fold: Callable[[Tunnel], int | None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The ``tunnels`` of :func:`document`, one at a time: a writer that encodes each as it comes never
    holds the whole document (20,000 tunnels are ~0.5 GB of dicts)."""
    now = tracker.now
    ordered = sorted(tracker.tunnels.values(), key=lambda t: t.id)

    def one(t: Tunnel) -> dict[str, Any]:
        with t.reading():  # a settled tunnel's records, read for it, packed again: never all of them at once
            return tunnel_dict(t, now, extensions)

    if fold is None:
        for t in ordered:
            yield one(t)
        return
    legs: dict[int, list[Tunnel]] = {}
    top: list[Tunnel] = []
    for t in ordered:
        parent = fold(t)
        if parent is not None and parent != t.id and parent in tracker.tunnels:
            legs.setdefault(parent, []).append(t)
        else:
            top.append(t)
    for t in top:
        d = one(t)
        d["legs"] = [one(x) for x in legs.get(t.id, [])]
        yield d


class EventStream:
    """Live ``--json``: one JSON object per tunnel event, one per line, flushed at once."""

    KINDS = frozenset(
        {
            EventKind.TUNNEL_NEW,
            EventKind.PHASE,
            EventKind.ECHO_MISS,
            EventKind.ICMP,
            EventKind.ENDED,
            EventKind.ROLES,
            EventKind.EVICTED,
            EventKind.MERGED,
        }
    )

    def __init__(self, out: IO[str], extensions: dict[str, Extension] | None = None) -> None:
        self.out = out
        self.extensions = extensions

    def __call__(self, ev: Event) -> None:
        rec = self.record(ev)
        if rec is not None:
            self.out.write(json.dumps(rec, default=str) + "\n")
            self.out.flush()

    def record(self, ev: Event) -> dict[str, Any] | None:
        """The line's object for ``ev``, or None for an event the stream leaves out (``--events`` too)."""
        if ev.kind is EventKind.UNKNOWN_GRE:  # no tunnel: a summary by source, once an interval (track/unknown.py)
            return {"time": ev.ts, "event": ev.kind.value, **ev.detail}
        if ev.kind not in self.KINDS or ev.tunnel is None:
            return None
        rec: dict[str, Any] = {"time": ev.ts, "event": ev.kind.value, "frame": ev.frame, **ev.detail}
        rec["tunnel"] = (
            tunnel_dict(ev.tunnel, ev.ts, self.extensions)
            if ev.kind is EventKind.ENDED
            else {
                "id": ev.tunnel.id,
                "client": {"ip": ev.tunnel.client.ip, "call_id": ev.tunnel.client.call_id},
                "server": {"ip": ev.tunnel.server.ip, "call_id": ev.tunnel.server.call_id},
                "phase": ev.tunnel.phase.value,
                "user": ev.tunnel.auth.user,
            }
        )
        return rec
