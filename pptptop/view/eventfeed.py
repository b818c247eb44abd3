"""Tracker events → lines of the events screen.

:class:`EventFeed` subscribes to the tracker. Its callback runs on the capture
thread (under ``pipeline.lock``), so it only filters and appends a small tuple
to a bounded deque; the UI thread drains that inbox into its own capped log
ten times a second (toolong's "I/O thread posts, UI coalesces"). Text is made
here from event fields; wire strings are escaped when the line is drawn.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pptptop.track.events import Event, EventKind

if TYPE_CHECKING:
    from pptptop.track.tracker import Tracker

#: events worth a line: not every message (those are in the ladder) and not clock ticks
SHOWN = frozenset(
    {
        EventKind.TUNNEL_NEW,
        EventKind.PHASE,
        EventKind.TCP,
        EventKind.ECHO_MISS,
        EventKind.ICMP,
        EventKind.MALFORMED,
        EventKind.ROLES,
        EventKind.ENDED,
        EventKind.EVICTED,
        EventKind.MERGED,
    }
)
LOG_CAP = 10_000


@dataclass(frozen=True, slots=True)
class EventLine:
    """One line of the events log; ``text`` may hold wire strings (escape before drawing)."""

    ts: float
    kind: str
    tunnel: int | None
    frame: int | None
    text: str
    level: str  # "info", "warning", "error", "ok"


def describe(ev: Event) -> tuple[str, str]:
    """(text, level) for one event."""
    k = ev.kind
    d = ev.detail
    t = ev.tunnel
    if k is EventKind.TUNNEL_NEW and t is not None:
        return f"new tunnel {t.client.ip} → {t.server.ip} on {t.iface or '-'}", "info"
    if k is EventKind.PHASE:
        phase = str(d.get("phase", "?"))
        level = "error" if phase == "failed" else "ok" if phase in ("data", "closed") else "info"
        return f"phase {phase.upper()}", level
    if k is EventKind.ENDED:
        how = d.get("how") or "?"
        by = d.get("by") or "unknown"
        reason = f": {d['reason']}" if d.get("reason") else ""
        if d.get("phase") == "failed":
            return f"failed in {str(d.get('failed_in') or '?').upper()} — {how} by {by}{reason}", "error"
        return f"closed — {how} by {by}{reason}", "ok"
    if k is EventKind.ECHO_MISS:
        return (
            f"{str(d.get('kind', '')).upper()} echo from {d.get('sender', '?')} unanswered "
            f"({d.get('consecutive', '?')} in a row)"
        ), "warning"
    if k is EventKind.ICMP:
        return str(d.get("text", "ICMP error")), "error"
    if k is EventKind.MALFORMED:
        return f"malformed packet: {d.get('code', '?')} — {d.get('detail', '')}", "warning"
    if k is EventKind.TCP:
        flags = str(d.get("flags", ""))
        return flags, "warning" if "RST" in flags else "info"
    if k is EventKind.ROLES:
        return f"client and server swapped: {d.get('why', '')}", "info"
    if k is EventKind.EVICTED:
        return "dropped from memory (state bounds)", "info"
    if k is EventKind.MERGED:
        return f"the same session as tunnel {d.get('into')}: merged into it", "info"
    return k.value, "info"


class EventFeed:
    """The tracker subscriber behind the events screen."""

    def __init__(self, cap: int = LOG_CAP) -> None:
        self.inbox: deque[EventLine] = deque(maxlen=cap)
        self.log: deque[EventLine] = deque(maxlen=cap)
        self.total = 0  # lines ever logged (also those that fell off the cap)

    def attach(self, tracker: Tracker) -> None:
        tracker.subscribe(self)

    def __call__(self, ev: Event) -> None:
        if ev.kind not in SHOWN:
            return
        text, level = describe(ev)
        self.inbox.append(
            EventLine(
                ev.ts, ev.kind.value, ev.tunnel.id if ev.tunnel is not None else None, ev.frame, text, level
            )
        )

    def drain(self) -> int:
        """Move what the capture thread queued into the log; returns how many lines arrived."""
        n = 0
        inbox, log = self.inbox, self.log
        while inbox:
            try:
                log.append(inbox.popleft())
            except IndexError:
                break
            n += 1
        self.total += n
        return n
