"""The header line: what is captured, its state, the capture clock, rates, drops and recording.

htop's top lines in one row: the most important parts come first, so a narrow
terminal cuts the least useful ones.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widget import Widget

from pptptop.ui.format import clock, wire
from pptptop.ui.snapshot import CaptureView


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


def header_parts(c: CaptureView, recording: str | None) -> list[tuple[str, str]]:
    """The header as (text, style name) parts, most important first."""
    state, state_style = capture_state(c)
    source = ",".join(c.interfaces) if c.live and c.interfaces else c.name
    parts: list[tuple[str, str]] = [
        (f" {state} ", f"state-{state_style}"),
        (f" {wire(source, 48)}", "source"),
        (f"  {clock(c.capture_now, with_date=not c.live)}" if c.capture_now else "  --:--:--", "clock"),
        (f"  tunnels {c.tunnels} ({c.active} up, {c.failed} failed)", ""),
    ]
    if c.live or not c.done:
        parts.append((f"  {c.packets_per_s:,.0f} pkt/s", ""))
    parts.append((f"  frames {c.frames:,}", "dim"))
    if c.live or c.kernel_drops:
        parts.append((f"  drops {c.kernel_drops:,}", "bad" if c.kernel_drops else "dim"))
    if c.malformed:
        parts.append((f"  malformed {c.malformed:,}", "warn"))
    parts.append(
        (f"  ● REC {wire(recording, 60)}" if recording else "  rec off", "bad" if recording else "dim")
    )
    if c.error:
        parts.append((f"  {wire(c.error, 200)}", "bad"))
    return parts


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
        for text, style in header_parts(self.view, self.recording):
            st = self.get_component_rich_style(f"capture-header--{style}", partial=True) if style else ""
            out.append(text, style=st)
        return out
