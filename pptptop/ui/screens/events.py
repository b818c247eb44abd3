"""The events screen: a scrolling log of tunnel events (new tunnels, phase changes, failures, echo misses)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Footer, Static

from pptptop.ui.keys import bindings
from pptptop.ui.screens.base import PptpScreen
from pptptop.ui.widgets.capture_header import CaptureHeader
from pptptop.ui.widgets.event_log import EventLog
from pptptop.ui.widgets.line_list import LineList


class EventsScreen(PptpScreen):
    """The log; Enter opens the line's tunnel, f jumps back to following the newest events."""

    KEY_SCOPE = "events"
    DEFAULT_CSS = """
    EventsScreen #count { height: 1; }
    EventsScreen EventLog { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*bindings("events")]

    def __init__(self) -> None:
        super().__init__()
        self.seen = -1

    def compose(self) -> ComposeResult:
        yield CaptureHeader(id="header")
        yield Static(id="count")
        yield EventLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        log = self.query_one(EventLog)
        log.focus()
        self.action_follow()

    def on_snapshot(self, changed: bool) -> None:
        feed = self.pptp.feed
        if feed.total == self.seen:
            return
        self.seen = feed.total
        self.query_one(EventLog).set_lines(list(feed.log))
        dropped = feed.total - len(feed.log)
        note = f" {feed.total} events" + (
            f" (the oldest {dropped} dropped: the log keeps {feed.log.maxlen})" if dropped else ""
        )
        self.query_one("#count", Static).update(Text(note, style="dim"))

    def action_follow(self) -> None:
        log = self.query_one(EventLog)
        log.move_cursor(log.row_count() - 1, notify=False)

    @on(LineList.Activated, "#log")
    def _open(self, event: LineList.Activated) -> None:
        log = self.query_one(EventLog)
        if 0 <= event.index < len(log.lines):
            tid = log.lines[event.index].tunnel
            if tid is not None:
                self.pptp.open_tunnel(tid)
