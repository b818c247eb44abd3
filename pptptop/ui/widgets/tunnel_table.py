"""The tunnels table: one row per tunnel, sorted and filtered, drawn on the line API.

Rows are :class:`~pptptop.view.snapshot.TunnelRow` copies; the table keeps the
selected tunnel under the cursor (by id) while rows move, appear and vanish,
and only redraws the lines on screen, so 5,000 tunnels update in place at
10 Hz without flicker.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.message import Message

from pptptop.ui.columns import (
    COLUMN_BY_KEY,
    COLUMNS,
    Column,
    column_at,
    fit_columns,
    render_header,
    render_row,
)
from pptptop.ui.widgets.line_list import LineList
from pptptop.view.filtering import NO_FILTER, RowFilter
from pptptop.view.snapshot import TunnelRow

PHASE_CLASSES = {
    f"tunnel-table--phase-{p}"
    for p in ("tcp", "control", "call", "lcp", "auth", "ncp", "data", "closed", "failed")
}


class TunnelTable(LineList):
    """Sessions, one per line, under a sticky header of column titles (click one to sort)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        *PHASE_CLASSES,
        "tunnel-table--sev-error",
        "tunnel-table--sev-warning",
        "tunnel-table--sev-info",
        "tunnel-table--dim",
        "tunnel-table--bad",
        "tunnel-table--warn",
        "tunnel-table--good",
        "tunnel-table--spark",
        "tunnel-table--ended",
    }
    header_height = 1

    class Opened(Message):
        """Enter (or a double click) on a tunnel."""

        def __init__(self, tunnel_id: int) -> None:
            super().__init__()
            self.tunnel_id = tunnel_id

    class SortChanged(Message):
        def __init__(self, key: str, reverse: bool) -> None:
            super().__init__()
            self.key = key
            self.reverse = reverse

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.all_rows: dict[int, TunnelRow] = {}
        self.view: list[TunnelRow] = []
        self.now = 0.0
        self.sort_key = "id"
        self.reverse = False
        self.row_filter: RowFilter = NO_FILTER
        self.selected_id: int | None = None
        self._cols: list[Column] = list(COLUMNS)
        self._cols_key: tuple[str, ...] = ()

    @property
    def component_prefix(self) -> str:
        return "tunnel-table"

    # ---------------------------------------------------------------- data
    def set_rows(self, rows: dict[int, TunnelRow], now: float) -> None:
        """New snapshot: refilter, resort, keep the selected tunnel under the cursor."""
        self.all_rows = rows
        self.now = now
        self._rebuild()

    def set_filter(self, f: RowFilter) -> None:
        self.row_filter = f
        self._rebuild()

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        if key not in COLUMN_BY_KEY:
            return
        if reverse is None:
            reverse = (
                (not self.reverse) if key == self.sort_key else key in ("down", "up", "spark", "loss", "diag")
            )
        self.sort_key, self.reverse = key, reverse
        self._rebuild()
        self.post_message(self.SortChanged(key, reverse))

    def cycle_sort(self, step: int = 1) -> None:
        keys = [c.key for c in self._cols]
        i = keys.index(self.sort_key) if self.sort_key in keys else 0
        self.sort_by(keys[(i + step) % len(keys)], reverse=False)

    @property
    def selected(self) -> TunnelRow | None:
        if 0 <= self.cursor < len(self.view):
            return self.view[self.cursor]
        return None

    def _rebuild(self) -> None:
        f = self.row_filter
        # the rows are sessions already (TunnelStore.sessions): a NAT's outside leg is in its inside leg's row
        rows = list(self.all_rows.values()) if f.empty else [r for r in self.all_rows.values() if f(r)]
        col = COLUMN_BY_KEY[self.sort_key]
        now = self.now
        rows.sort(key=lambda r: r.id)
        rows.sort(key=lambda r: col.sort(r, now), reverse=self.reverse)
        self.view = rows
        if self.selected_id is not None:
            for i, r in enumerate(rows):
                if r.id == self.selected_id:
                    self.cursor = i
                    break
        self._fit()
        self.rows_changed()
        sel = self.selected
        self.selected_id = sel.id if sel is not None else self.selected_id
        if self.is_mounted:
            self.scroll_to_cursor()

    def _fit(self) -> None:
        width = self.scrollable_content_region.width or self.size.width or 80
        rows = self.all_rows.values()
        # the NAT public address and the Verdict take room only when some tunnel has one
        absent = {key for key, present in (("public", any(r.nat_public for r in rows)),
                                           ("verdict", any(r.verdict for r in rows))) if not present}
        cols = tuple(c for c in COLUMNS if c.key not in absent) if absent else COLUMNS
        self._cols = fit_columns(width, cols)
        self._cols_key = tuple(c.key for c in self._cols)

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    @property
    def columns(self) -> list[Column]:
        return self._cols

    # ---------------------------------------------------------------- drawing
    def row_count(self) -> int:
        return len(self.view)

    def render_header(self, line: int, width: int) -> Text:
        return render_header(self._cols, self.sort_key, self.reverse, self.style_of("line-list--header"))

    def row_key(self, index: int, width: int, selected: bool) -> Hashable:
        r = self.view[index]
        return (r.id, id(r), int(self.now), selected, width, self._cols_key)

    def render_row(self, index: int, width: int, selected: bool) -> Text:
        r = self.view[index]
        base = self.style_of("ended") if r.ended and not selected else None
        return render_row(r, self.now, self._cols, self.style_of, base)

    # ---------------------------------------------------------------- input
    def header_click(self, x: int, line: int) -> None:
        col = column_at(self._cols, x)
        if col is not None:
            self.sort_by(col.key)

    def move_cursor(self, index: int, *, notify: bool = True) -> None:
        super().move_cursor(index, notify=notify)
        sel = self.selected
        if sel is not None:
            self.selected_id = sel.id

    def on_line_list_activated(self, event: LineList.Activated) -> None:
        event.stop()
        if 0 <= event.index < len(self.view):
            self.post_message(self.Opened(self.view[event.index].id))
