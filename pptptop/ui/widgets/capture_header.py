"""The header line: what is captured, its state, the counts, rates, drops, recording and the capture clock.

htop's top lines in one row. Each part has a priority: a narrow terminal
leaves out the least useful parts whole (the clock first) rather than cutting
the line short, so the state, the source, the tunnel counts and the frames
are there at 80 columns.
"""

from __future__ import annotations

import os
from typing import ClassVar

from rich.text import Text
from textual.widget import Widget

from pptptop.ui.format import clock, wire
from pptptop.view.snapshot import CaptureView


def capture_state(c: CaptureView) -> tuple[str, str]:
    """(label, style name) of the capture state: LIVE, REPLAY 10x, PAUSED, DONE, ERROR."""
    if c.error:
        return "ERROR", "bad"
    if c.paused:
        return "PAUSED", "warn"
    if c.done:
        return "DONE" if not c.live else "STOPPED", "dim"
    if c.live:
        return "LIVE", "good"
    if c.speed:
        return f"REPLAY {c.speed:g}x", "good"
    return "REPLAY max", "good"


def source_label(c: CaptureView) -> str:
    """The interfaces live; the file's base name (the directory it is in says nothing at 80 columns)."""
    if c.live:
        return ",".join(c.interfaces) if c.interfaces else c.name
    names = [n if n == "-" else os.path.basename(n) or n for n in c.name.split(", ")]
    return ", ".join("stdin" if n == "-" else n for n in names)


def header_parts(c: CaptureView, recording: str | None) -> list[tuple[str, str, int]]:
    """The header as (text, style name, priority) parts in order; priority 0 is always shown."""
    state, state_style = capture_state(c)
    parts: list[tuple[str, str, int]] = [
        (f" {state} ", f"state-{state_style}", 0),
        (f" {wire(source_label(c), 40)}", "source", 0),
        (f"  tunnels {c.tunnels}: {c.active} up, {c.failed} failed", "bad" if c.failed else "", 0),
    ]
    if c.live or not c.done:
        parts.append((f"  {c.packets_per_s:,.0f} pkt/s", "", 2))
    parts.append((f"  frames {c.frames:,}", "dim", 1))
    if c.live or c.kernel_drops:
        parts.append((f"  drops {c.kernel_drops:,}", "bad" if c.kernel_drops else "dim", 1))
    if c.malformed:
        parts.append((f"  malformed {c.malformed:,}", "warn", 2))
    if c.evicted:
        parts.append((f"  evicted {c.evicted:,}", "warn", 1))
    if recording:
        parts.append((f"  ● REC {wire(recording, 60)}", "bad", 1))
    else:
        parts.append(("  rec off", "dim", 3))
    parts.append((f"  {clock(c.capture_now, with_date=not c.live)}" if c.capture_now else "  --:--:--", "clock", 4))
    if c.error:
        parts.append((f"  {wire(c.error, 200)}", "bad", 0))
    return parts


#: the source's name gives up cells, down to this many, before a count or the recording state is left out
SOURCE_MIN = 20


def fit_parts(parts: list[tuple[str, str, int]], width: int) -> list[tuple[str, str, int]]:
    """The parts that fit in ``width`` cells, most important first, in their order (priority 0 always).

    A long source name is cut (with an ellipsis) to make room for the priority 1 parts.
    """
    def cells(ps: list[tuple[str, str, int]]) -> int:
        return sum(Text(t).cell_len for t, _, _ in ps)

    essential = cells([p for p in parts if p[2] <= 1])
    if essential > width:
        for i, (text, style, prio) in enumerate(parts):
            if style == "source" and len(text) > SOURCE_MIN:
                cut = max(SOURCE_MIN, len(text) - (essential - width))
                parts = [*parts[:i], (text[: cut - 1] + "…", style, prio), *parts[i + 1:]]
    used = cells([p for p in parts if p[2] == 0])
    keep = {i for i, (_, _, p) in enumerate(parts) if p == 0}
    for i in sorted(range(len(parts)), key=lambda i: parts[i][2]):
        text, _, p = parts[i]
        if p and used + Text(text).cell_len <= width:
            keep.add(i)
            used += Text(text).cell_len
    return [part for i, part in enumerate(parts) if i in keep]


def recording_label(status: object) -> str | None:
    """What the header says about ``-w`` / ``--record-failed`` from a RecordingSession.status() (None: off)."""
    parts = []
    rec = getattr(status, "recording", None)
    if rec is not None:
        if getattr(rec, "last_error", "") and not getattr(rec, "recording", False):
            parts.append(f"ERROR {getattr(rec, 'last_error', '')}")
        else:
            parts.append(f"{getattr(rec, 'path', '')} ({getattr(rec, 'packets', 0):,} pkts)")
    failed = getattr(status, "failed", None)
    if failed is not None:
        parts.append(f"failed → {getattr(failed, 'directory', '')} ({len(getattr(failed, 'files', ()))} files)")
    return "; ".join(parts) or None


class CaptureHeader(Widget):
    """One line at the top of every screen; the app updates it with each snapshot."""

    DEFAULT_CSS = """
    CaptureHeader { height: 1; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "capture-header--state-good",
        "capture-header--state-warn",
        "capture-header--state-bad",
        "capture-header--state-dim",
        "capture-header--source",
        "capture-header--clock",
        "capture-header--dim",
        "capture-header--bad",
        "capture-header--warn",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = CaptureView()
        self.recording: str | None = None

    def show(self, view: CaptureView, recording: str | None) -> None:
        self.view = view
        self.recording = recording
        self.refresh()

    def render(self) -> Text:
        out = Text(no_wrap=True, overflow="ellipsis", end="")
        for text, style, _ in fit_parts(header_parts(self.view, self.recording), self.size.width or 80):
            st = self.get_component_rich_style(f"capture-header--{style}", partial=True) if style else ""
            out.append(text, style=st)
        return out
