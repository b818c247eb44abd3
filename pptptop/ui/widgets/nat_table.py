"""The NAT translations as a list on the line API: inside ↔ public ↔ server, one line per tunnel (NAT leg).

Like the tunnels table, the columns that fit are drawn, most important first,
and a cell too long for its column ends in an ellipsis, never cut mid-address.
The list takes the keys every list takes (↑ ↓ k j, PgUp PgDn, Home End g G).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from rich.text import Text
from textual import events

from pptptop.ui.columns import phase_chip
from pptptop.ui.format import wire
from pptptop.ui.widgets.line_list import LineList
from pptptop.view.snapshot import TunnelRow

SEPARATOR = 1


def _v(x: object) -> str:
    return "-" if x is None else str(x)


def _inside(r: TunnelRow) -> tuple[str | None, int | None, int | None]:
    if r.nat is not None:
        return r.nat.inside.ip, r.nat.inside.port, r.nat.inside.call_id
    return r.client_ip, r.client_port, r.client_call


def _public(r: TunnelRow) -> tuple[str | None, int | None, int | None]:
    if r.nat is not None:
        return r.nat.outside.ip, r.nat.outside.port, r.nat.outside.call_id
    return None, None, None


@dataclass(frozen=True, slots=True)
class NatColumn:
    title: str
    width: int
    priority: int  # 0 always shown; higher numbers are left out first on a narrow terminal
    cell: Callable[[TunnelRow], str]
    right: bool = False


NAT_COLUMNS: tuple[NatColumn, ...] = (
    NatColumn("#", 4, 0, lambda r: str(r.id), right=True),
    NatColumn("iface", 6, 3, lambda r: wire(r.iface, 16)),
    NatColumn("inside IP", 15, 0, lambda r: wire(_v(_inside(r)[0]), 39)),
    NatColumn("port", 5, 2, lambda r: _v(_inside(r)[1]), right=True),
    NatColumn("call ID", 7, 1, lambda r: _v(_inside(r)[2]), right=True),
    NatColumn("public IP", 15, 0, lambda r: wire(_v(_public(r)[0]), 39)),
    NatColumn("port", 5, 2, lambda r: _v(_public(r)[1]), right=True),
    NatColumn("call ID", 7, 1, lambda r: _v(_public(r)[2]), right=True),
    NatColumn("server IP", 15, 0, lambda r: wire(r.server_ip, 39)),
    NatColumn("port", 5, 4, lambda r: _v(r.server_port), right=True),
    NatColumn("call ID", 7, 1, lambda r: _v(r.server_call), right=True),
    NatColumn("user", 8, 3, lambda r: wire(r.user or "-", 32)),
    NatColumn("phase", 10, 2, phase_chip),
)


def fit_nat_columns(width: int) -> list[NatColumn]:
    """The columns that fit in ``width`` cells, most important first, kept in order."""
    chosen: set[int] = set()
    used = 0
    for i in sorted(range(len(NAT_COLUMNS)), key=lambda i: NAT_COLUMNS[i].priority):
        c = NAT_COLUMNS[i]
        need = c.width + (SEPARATOR if chosen else 0)
        if c.priority == 0 or used + need <= width:
            chosen.add(i)
            used += need
    return [c for i, c in enumerate(NAT_COLUMNS) if i in chosen]


def nat_cells(r: TunnelRow) -> list[str]:
    """Every column's text for one tunnel, in :data:`NAT_COLUMNS` order (escaped, not cut)."""
    return [c.cell(r) for c in NAT_COLUMNS]


class NatTable(LineList):
    """Every tunnel's addresses, ports and call IDs on each side of the NAT; Enter opens the tunnel."""

    header_height = 1

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[TunnelRow] = []
        self._cols: list[NatColumn] = list(NAT_COLUMNS)

    @property
    def columns(self) -> list[NatColumn]:
        return self._cols

    def set_rows(self, rows: list[TunnelRow]) -> None:
        keep = self.selected.id if self.selected is not None else None
        self.rows = rows
        self._fit()
        if keep is not None:
            for i, r in enumerate(rows):
                if r.id == keep:
                    self.cursor = i
                    break
        self.rows_changed()

    @property
    def selected(self) -> TunnelRow | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def on_resize(self, event: events.Resize) -> None:
        self._fit()
        super().on_resize(event)

    def _fit(self) -> None:
        self._cols = fit_nat_columns(self.scrollable_content_region.width or self.size.width or 80)

    def row_count(self) -> int:
        return len(self.rows)

    def row_key(self, index: int, width: int, selected: bool) -> Hashable:
        r = self.rows[index]
        return (id(r), selected, width, len(self._cols))

    def render_header(self, line: int, width: int) -> Text:
        return self._line([c.title for c in self._cols])

    def render_row(self, index: int, width: int, selected: bool) -> Text:
        r = self.rows[index]
        return self._line([c.cell(r) for c in self._cols])

    def _line(self, cells: list[str]) -> Text:
        line = Text(no_wrap=True, end="")
        for i, (c, text) in enumerate(zip(self._cols, cells, strict=True)):
            if i:
                line.append(" " * SEPARATOR)
            cell = Text(text)
            cell.truncate(c.width, overflow="ellipsis", pad=True)
            if c.right and len(text) < c.width:
                cell = Text(text.rjust(c.width))
            line.append_text(cell)
        return line
