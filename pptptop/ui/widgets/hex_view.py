"""Wireshark's bytes pane: offset, sixteen bytes in hex, the same as ASCII; the selected field lit up."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from pptptop.ui.widgets.line_list import LineList

PER_LINE = 16


def hex_line(data: bytes, row: int) -> tuple[str, list[tuple[int, int, int]]]:
    """The text of one row and, per byte, its (offset, hex column, ascii column) in that text."""
    base = row * PER_LINE
    chunk = data[base : base + PER_LINE]
    parts = [f"{base:04x}  "]
    cols: list[tuple[int, int, int]] = []
    pos = 6
    for i in range(PER_LINE):
        if i == 8:
            parts.append(" ")
            pos += 1
        if i < len(chunk):
            parts.append(f"{chunk[i]:02x} ")
            cols.append((base + i, pos, 0))
        else:
            parts.append("   ")
        pos += 3
    parts.append(" ")
    pos += 1
    for i, b in enumerate(chunk):
        parts.append(chr(b) if 0x20 <= b < 0x7F else ".")
        cols[i] = (cols[i][0], cols[i][1], pos + i)
    return "".join(parts), cols


class HexView(LineList):
    """The frame's bytes; :meth:`highlight` marks a field (and its layer) and scrolls to it."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"hex-view--offset", "hex-view--selected", "hex-view--layer"}
    has_cursor = False

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data = b""
        self.hl_field = (0, 0)
        self.hl_layer = (0, 0)

    @property
    def component_prefix(self) -> str:
        return "hex-view"

    def set_data(self, data: bytes) -> None:
        self.data = data
        self.hl_field = self.hl_layer = (0, 0)
        self.scroll_to(y=0, animate=False, immediate=True)
        self.rows_changed()

    def highlight(self, start: int, end: int, layer: tuple[int, int] = (0, 0)) -> None:
        self.hl_field = (start, end)
        self.hl_layer = layer
        row = start // PER_LINE
        top = int(self.scroll_offset.y)
        if row < top or row >= top + self.visible_rows:
            self.scroll_to(y=max(0, row - 1), animate=False, immediate=True)
        self.refresh()

    def row_count(self) -> int:
        return (len(self.data) + PER_LINE - 1) // PER_LINE

    def render_row(self, index: int, width: int, selected: bool) -> Text:
        text, cols = hex_line(self.data, index)
        line = Text(text, no_wrap=True, end="")
        line.stylize(self.style_of("offset"), 0, 4)
        for style, (a, b) in (("layer", self.hl_layer), ("selected", self.hl_field)):
            if b <= a:
                continue
            st = self.style_of(style)
            for off, hx, asc in cols:
                if a <= off < b:
                    line.stylize(st, hx, hx + 2)
                    line.stylize(st, asc, asc + 1)
        return line
