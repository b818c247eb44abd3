"""Events the tracker emits: what happened to which tunnel, at which packet.

Diagnosis rules, the live ``--json`` stream, the event log and the recorder
subscribe to these instead of looking at packets (Zeek's analyzer → event →
policy split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pptptop.track.model import Direction, Tunnel


class EventKind(StrEnum):
    TUNNEL_NEW = "tunnel-new"
    PHASE = "phase"  # the tunnel entered a new phase
    MESSAGE = "message"  # a PPTP control message or non-data PPP frame of the tunnel
    TCP = "tcp"  # SYN, SYN-ACK, FIN, RST on the control connection
    ECHO_MISS = "echo-miss"  # a keepalive request went unanswered
    ICMP = "icmp"  # an ICMP error about the tunnel's GRE or TCP
    MALFORMED = "malformed"  # a packet of (or near) the tunnel did not parse
    ROLES = "roles"  # a GRE-only tunnel's client and server were swapped on evidence
    ENDED = "ended"  # the tunnel is closed or failed
    EVICTED = "evicted"  # dropped from memory by the state bounds
    SETTLED = "settled"  # ended and quiet since: its packets are packed; stages may let go of what they keep
    MERGED = "merged"  # the same session as another tunnel, which takes it over (detail: "into")
    TICK = "tick"  # time passed (capture time), for rules with timeouts
    #: GRE of no tunnel (a flood, stray call IDs), one event per source and interval, no tunnel (track/unknown.py)
    UNKNOWN_GRE = "unknown-gre"


@dataclass(slots=True)
class Event:
    """One event. ``frame`` is the capture's frame number (1-based) or None."""

    ts: float
    kind: EventKind
    tunnel: Tunnel | None
    frame: int | None = None
    direction: Direction | None = None
    message: Any = None  # the decoded PPTP message / PPP frame, for MESSAGE
    detail: dict[str, Any] = field(default_factory=dict)
