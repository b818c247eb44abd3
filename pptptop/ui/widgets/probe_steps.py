"""The probe's steps under every screen while ``pptptop --probe HOST`` runs in the UI (docs/probe.md).

The probe runs in a worker thread and writes its steps into a feed; this
widget reads the feed's lines at each snapshot. The lines hold strings from
the server, escaped by the probe; they go into Rich ``Text``, never markup.
"""

from __future__ import annotations

from typing import Protocol

from rich.text import Text
from textual.widgets import Static

from pptptop.ui.format import wire

#: step lines shown (the last ones); the panel's height follows
SHOWN = 10


class StepFeed(Protocol):
    """What the UI reads of the probe (pptptop.probe.live.ProbeFeed)."""

    version: int

    def lines(self) -> tuple[str, tuple[str, ...]]: ...


class ProbeSteps(Static):
    """A title line (host and state) and the probe's last step lines, each marked by its outcome."""

    DEFAULT_CSS = """
    ProbeSteps { height: auto; max-height: 12; border-top: solid $primary 30%; padding: 0 1; }
    """

    def __init__(self, feed: StepFeed, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.feed = feed
        self.version = -1

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        if self.feed.version == self.version:
            return
        self.version = self.feed.version
        title, lines = self.feed.lines()
        out = Text(no_wrap=True, overflow="ellipsis", end="")
        out.append(wire(title, 200), style="bold")
        for line in lines[-SHOWN:]:
            style = "bold red" if "[FAIL]" in line[:10] else "green" if "[ ok ]" in line[:10] else ""
            out.append("\n" + wire(line, 400), style=style)
        self.update(out)
