"""The events log (toolong style): capped, drawn on the line API, following the tail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text

from pptptop.ui.format import clock, wire
from pptptop.ui.widgets.line_list import LineList
from pptptop.view.eventfeed import EventLine


class EventLog(LineList):
    """Tunnel events, oldest first; the cursor stays on the newest line while it is at the end."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "event-log--time",
        "event-log--tunnel",
        "event-log--info",
        "event-log--ok",
        "event-log--warning",
        "event-log--error",
    }
    follow_tail = True

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: Sequence[EventLine] = ()

    @property
    def component_prefix(self) -> str:
        return "event-log"

    def set_lines(self, lines: Sequence[EventLine]) -> None:
        self.lines = lines
        self.rows_changed()

    def row_count(self) -> int:
        return len(self.lines)

    def render_row(self, index: int, width: int, selected: bool) -> Text:
        e = self.lines[index]
        out = Text(no_wrap=True, end="")
        out.append(f"{clock(e.ts, with_date=True)} ", style=self.style_of("time"))
        out.append(f"#{e.tunnel:<5}" if e.tunnel is not None else "      ", style=self.style_of("tunnel"))
        out.append(f" {e.kind:<10} ", style=self.style_of("time"))
        out.append(wire(e.text, 400), style=self.style_of(e.level))
        if e.frame is not None:
            out.append(f"  (frame {e.frame})", style=self.style_of("time"))
        return out
