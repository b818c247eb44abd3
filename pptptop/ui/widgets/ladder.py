"""The ladder diagram (sngrep's call flow): client and server columns, one arrow per message.

Arrows carry the message name and key fields; failures are drawn in the
theme's "bad" colour and diagnosis evidence gets a marker and a background.
With both NAT legs known a third column (the NAT) sits in the middle.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.message import Message

from pptptop.ui.format import wire
from pptptop.ui.tunnel_text import TEXT_CLASSES
from pptptop.ui.widgets.line_list import LineList
from pptptop.view.ladder_model import LadderEntry, Lane

GUTTER = 18  # mark(1) + frame number(6) + space + seconds(9) + space
KIND_STYLE = {
    "tcp": "tcp",
    "control": "control",
    "ppp": "ppp",
    "icmp": "icmp",
    "malformed": "bad",
    "data": "ppp",
}


def lane_x(lane: Lane, width: int, with_nat: bool) -> int:
    """The screen column of a lane's vertical line within the drawing area of ``width`` cells."""
    last = max(width - 1, 2)
    if lane is Lane.CLIENT:
        return 0
    if lane is Lane.SERVER:
        return last
    return last // 2 if with_nat else last


def arrow(width: int, rightward: bool, label: str) -> str:
    """``───── label ─────▶`` filling ``width`` cells (the tip included); the label is cut to fit."""
    if width < 3:
        return ("▶" if rightward else "◀").rjust(width) if width > 0 else ""
    inner = width - 1
    text = f" {label} "
    if len(text) > inner - 2:
        text = text[: max(0, inner - 3)] + "…" if inner > 3 else ""
    left = (inner - len(text)) // 2
    right = inner - len(text) - left
    body = "─" * left + text + "─" * right
    return body + "▶" if rightward else "◀" + body


class LadderView(LineList):
    """One line per message between the lanes; Enter opens the packet."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "ladder--client",
        "ladder--server",
        "ladder--nat",
        "ladder--axis",
        "ladder--time",
        "ladder--bad",
        "ladder--warn",
        "ladder--evidence",
        "ladder--tcp",
        "ladder--control",
        "ladder--ppp",
        "ladder--icmp",
        *TEXT_CLASSES,  # the tunnel screen's other tabs resolve their theme classes through the ladder
    }
    header_height = 1

    class Open(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entries: list[LadderEntry] = []
        self.with_nat = False
        self.t0 = 0.0
        self.titles: dict[Lane, str] = {}

    @property
    def component_prefix(self) -> str:
        return "ladder"

    def set_entries(
        self, entries: list[LadderEntry], with_nat: bool, titles: dict[Lane, str], t0: float
    ) -> None:
        keep = (
            self.entries[self.cursor].packet.number
            if self.entries and self.cursor < len(self.entries)
            else None
        )
        self.entries, self.with_nat, self.titles, self.t0 = entries, with_nat, titles, t0
        if keep is not None:
            for i, e in enumerate(entries):
                if e.packet.number == keep:
                    self.cursor = i
                    break
        self.rows_changed()

    def row_count(self) -> int:
        return len(self.entries)

    def render_header(self, line: int, width: int) -> Text:
        area = max(3, width - GUTTER)
        out = Text(" " + "frame".rjust(6) + " " + "seconds".rjust(9) + " ", no_wrap=True, end="")
        cells = [" "] * area
        lanes = [Lane.CLIENT, Lane.NAT, Lane.SERVER] if self.with_nat else [Lane.CLIENT, Lane.SERVER]
        head = Text(no_wrap=True, end="")
        spans: list[tuple[int, str, str]] = []
        for lane in lanes:
            title = self.titles.get(lane, lane.name.lower())
            x = lane_x(lane, area, self.with_nat)
            start = (
                0
                if lane is Lane.CLIENT
                else max(0, x - len(title) + 1)
                if lane is Lane.SERVER
                else max(0, x - len(title) // 2)
            )
            spans.append((start, title, lane.name.lower()))
        pos = 0
        for start, title, style in sorted(spans):
            start = max(start, pos)
            if start > pos:
                head.append("".join(cells[pos:start]))
            head.append(title[: max(0, area - start)], style=self.style_of(style))
            pos = start + len(title)
        out.append_text(head)
        return out

    def render_row(self, index: int, width: int, selected: bool) -> Text:
        e = self.entries[index]
        p = e.packet
        area = max(3, width - GUTTER)
        line = Text(no_wrap=True, end="")
        if e.evidence:
            line.stylize_before(self.style_of("evidence"))
        line.append("◆" if e.evidence else " ", style=self.style_of("bad") if e.evidence else "")
        line.append(f"{p.number:>6} ", style=self.style_of("time"))
        line.append(f"{p.ts - self.t0:>9.3f}", style=self.style_of("time"))
        xa = lane_x(e.src, area, self.with_nat)
        xb = lane_x(e.dst, area, self.with_nat)
        lo, hi = min(xa, xb), max(xa, xb)
        lanes = [Lane.CLIENT, Lane.NAT, Lane.SERVER] if self.with_nat else [Lane.CLIENT, Lane.SERVER]
        chars = [" "] * area
        for lane in lanes:
            chars[lane_x(lane, area, self.with_nat)] = "│"
        body = arrow(hi - lo - 1, xa < xb, wire(e.label, 400))
        chars[lo + 1 : lo + 1 + len(body)] = list(body)
        kind = (
            "bad"
            if e.verdict == "bad"
            else "warn"
            if e.verdict == "warn"
            else KIND_STYLE.get(p.kind.value, "ppp")
        )
        line.append(" ")
        line.append("".join(chars[: lo + 1]), style=self.style_of("axis"))
        line.append(body, style=self.style_of(kind))
        line.append("".join(chars[lo + 1 + len(body) :]), style=self.style_of("axis"))
        return line

    def on_line_list_activated(self, event: LineList.Activated) -> None:
        event.stop()
        self.post_message(self.Open(event.index))
