"""The translation table of a joined session: which leg is inside, and the mapping written on both legs.

``tunnel.nat`` (a :class:`~pptptop.track.notes.NatNote`) on both legs holds the same table with the
leg's own ``role`` and ``peer`` (docs/nat.md for the shape): the TCP mapping of the control connection
and the GRE mappings of the call, whose Call IDs a PPTP-aware NAT rewrites like ports (RFC 2637 §1.3, §4.1).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from pptptop.track.model import Direction, Tunnel
from pptptop.track.nat.evidence import Score
from pptptop.track.nat.legs import Pair, Role
from pptptop.track.notes import NatEndpoint, NatNote

#: Addresses a NAT's inside normally uses (RFC 1918, RFC 6598 shared space, link-local, ULA).
INSIDE_NETS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7",
    "fe80::/10"))
_INSIDE_NAMES = ("lan", "inside", "int", "priv", "br-lan", "eth1")
_OUTSIDE_NAMES = ("wan", "outside", "ext", "pub", "ppp", "uplink", "eth0")


@lru_cache(maxsize=4096)
def _is_inside_address(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in INSIDE_NETS if net.version == addr.version)


def _iface_hint(name: str) -> int:
    """+1 for an inside-looking interface name, -1 for an outside-looking one, 0 otherwise."""
    n = name.lower()
    if any(h in n for h in _INSIDE_NAMES):
        return 1
    if any(h in n for h in _OUTSIDE_NAMES):
        return -1
    return 0


def decide_roles(pair: Pair) -> None:
    """Which leg is nearer the client: timing of matched messages, private addresses, Call ID = port."""
    a, b = pair.a, pair.b
    ta, tb = a.tunnel, b.tunnel
    votes: dict[str, int] = {}  # reason -> +n for a inside, -n for b inside
    va, vb = pair.client_side_votes.get(ta.id, 0), pair.client_side_votes.get(tb.id, 0)
    if va != vb and (va == 0 or vb == 0 or max(va, vb) >= 3 * min(va, vb)):
        votes["timing"] = 2 if va > vb else -2
    pa, pb = _is_inside_address(ta.client.ip), _is_inside_address(tb.client.ip)
    if pa != pb:
        votes["address"] = 3 if pa else -3
    ca, cb = ta.client.call_id, tb.client.call_id
    if ca is not None and cb is not None and ca != cb:
        ea = ta.client.port is not None and ca == ta.client.port
        eb = tb.client.port is not None and cb == tb.client.port
        if ea != eb:
            votes["call-id-equals-port"] = -2 if ea else 2
    ha, hb = _iface_hint(ta.iface), _iface_hint(tb.iface)
    if ta.iface != tb.iface and ha != hb:
        votes["interface-name"] = 1 if ha > hb else -1
    total = sum(votes.values())
    if total == 0:
        total = 1 if (va, ta.first_seen) >= (vb, tb.first_seen) else -1
        votes.setdefault("first-seen", 0)
    pair.inside = a if total > 0 else b
    pair.roles_from = [r for r, v in votes.items() if v == 0 or (v > 0) == (total > 0)]


def write_notes(pair: Pair, scored: Score) -> None:
    """Decide the roles and write the table into both legs' notes."""
    decide_roles(pair)
    score, evidence, veto = scored
    pair.score = score
    inside = pair.inside or pair.a
    outside = pair.other(inside)
    ti, to = inside.tunnel, outside.tunnel
    server_call = to.server.call_id if to.server.call_id is not None else ti.server.call_id

    def ep(t: Tunnel) -> NatEndpoint:
        c = t.client
        return NatEndpoint(c.ip, c.port, c.call_id, t.iface)

    up_i, up_o = ti.traffic[Direction.TO_SERVER].packets, to.traffic[Direction.TO_SERVER].packets
    dn_i, dn_o = ti.traffic[Direction.TO_CLIENT].packets, to.traffic[Direction.TO_CLIENT].packets
    ends = (ep(ti), ep(to), NatEndpoint(to.server.ip, to.server.port if to.server.port is not None
                                        else ti.server.port, server_call))
    more: dict[str, Any] = {
        "translated": {
            "address": ti.client.ip != to.client.ip,
            "port": ti.client.port != to.client.port,
            "call_id": (None if ti.client.call_id is None or to.client.call_id is None
                        else ti.client.call_id != to.client.call_id),
        },
        "table": [
            {"protocol": "tcp", "inside": {"ip": ti.client.ip, "port": ti.client.port},
             "outside": {"ip": to.client.ip, "port": to.client.port},
             "server": {"ip": to.server.ip, "port": to.server.port}},
            {"protocol": "gre", "direction": "to_client",
             "inside": {"ip": ti.client.ip, "call_id": ti.client.call_id},
             "outside": {"ip": to.client.ip, "call_id": to.client.call_id},
             "server": {"ip": to.server.ip}},
            {"protocol": "gre", "direction": "to_server",
             "inside": {"ip": ti.client.ip, "call_id": ti.server.call_id},
             "outside": {"ip": to.client.ip, "call_id": to.server.call_id},
             "server": {"ip": to.server.ip}},
        ],
        "gre_forwarded": {
            "to_server": {"inside": up_i, "outside": up_o},
            "to_client": {"outside": dn_o, "inside": dn_i},
        },
        "evidence": [{"kind": e.kind, "text": e.text, "points": e.points} for e in evidence],
        "conflicts": veto,
        "score": score,
        "roles_from": list(pair.roles_from),
        "joined_at": {
            "frame": pair.joined_frame, "time": pair.joined_ts,
            "after_frames": (pair.joined_frame - min(f for f in (inside.first_frame, outside.first_frame,
                                                                  pair.joined_frame) if f is not None))
            if pair.joined_frame is not None else None,
            "after_seconds": None if pair.joined_ts is None else round(
                pair.joined_ts - min(inside.first_ts, outside.first_ts), 6),
        },
    }
    ti.nat = NatNote(Role.INSIDE.value, to.id, *ends, more)
    to.nat = NatNote(Role.OUTSIDE.value, ti.id, *ends, more)
    ti.changed = to.changed = True
