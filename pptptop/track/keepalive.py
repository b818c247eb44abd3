"""Keepalives: PPTP Echo (RFC 2637 §2.5–2.6) and LCP Echo (RFC 1661 §5.8) health of a tunnel.

A request waits for the reply with its identifier; a reply gives the round
trip. A request still unanswered when the same side sends the next one, when
its timeout passes (:meth:`Tracker.tick`) or when the tunnel ends is a miss,
emitted as :attr:`EventKind.ECHO_MISS`.
"""

from __future__ import annotations

from pptptop.track.actions import TunnelActions
from pptptop.track.events import Event, EventKind
from pptptop.track.model import Direction, EchoStats, Tunnel

#: at most this many requests wait for their reply per echo kind
MAX_OUTSTANDING = 64


def echo_request(
    tracker: TunnelActions,
    t: Tunnel | None,
    echo: EchoStats,
    d: Direction,
    ident: int,
    ts: float,
    number: int,
    kind: str,
) -> None:
    """An Echo-Request from ``d``'s sender; its earlier unanswered requests count as missed."""
    echo.requests += 1
    echo.last_request = ts
    for key in [k for k in echo.outstanding if k[0] == d]:
        del echo.outstanding[key]
        echo_miss(tracker, t, echo, d, ts, number, kind)
    if len(echo.outstanding) < MAX_OUTSTANDING:
        echo.outstanding[(int(d), ident)] = ts


def echo_reply(echo: EchoStats, d: Direction, ident: int, ts: float) -> None:
    """An Echo-Reply: it answers the other side's request with the same identifier, if one waits."""
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


def echo_miss(
    tracker: TunnelActions,
    t: Tunnel | None,
    echo: EchoStats,
    d: Direction,
    ts: float,
    number: int | None,
    kind: str,
) -> None:
    """A request from ``d``'s sender went unanswered."""
    echo.misses += 1
    echo.consecutive_misses += 1
    if t is not None:
        t.changed = True
    tracker.emit(
        Event(
            ts,
            EventKind.ECHO_MISS,
            t,
            number,
            d,
            detail={"kind": kind, "consecutive": echo.consecutive_misses, "sender": d.sender},
        )
    )
