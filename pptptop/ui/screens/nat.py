"""The NAT translations screen: inside ↔ public ↔ server, per tunnel (the seed article's NAT table).

PPTP through NAT works because the gateway rewrites the client's call ID like
a port (RFC 2637 has none for GRE). Until NAT correlation has paired a
tunnel's two legs (``tunnel.notes["nat"]``), each tunnel shows what its own
leg says and the public columns stay empty.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Footer, Static

from pptptop.ui.columns import phase_chip
from pptptop.ui.format import wire
from pptptop.ui.keys import bindings
from pptptop.ui.screens.base import PptpScreen
from pptptop.ui.snapshot import TunnelRow
from pptptop.ui.widgets.capture_header import CaptureHeader

COLUMNS = (
    "#",
    "iface",
    "inside IP",
    "port",
    "call ID",
    "public IP",
    "port",
    "call ID",
    "server IP",
    "port",
    "call ID",
    "user",
    "phase",
)
RELOAD_EVERY = 1.0


def _v(x: object) -> str:
    return "-" if x is None else str(x)


def nat_cells(r: TunnelRow) -> list[Text]:
    """One row of the NAT table for a tunnel; escaped Text cells."""
    if r.nat is not None:
        ins, out = r.nat.inside, r.nat.outside
        inside = (ins.ip, ins.port, ins.call_id)
        public = (out.ip, out.port, out.call_id)
    else:
        inside = (r.client_ip, r.client_port, r.client_call)
        public = (None, None, None)
    cells = [
        str(r.id),
        wire(r.iface, 16),
        *map(_v, inside),
        *map(_v, public),
        r.server_ip,
        _v(r.server_port),
        _v(r.server_call),
        wire(r.user or "-", 32),
        phase_chip(r),
    ]
    return [Text(c, no_wrap=True) for c in cells]


class NatScreen(PptpScreen):
    """Every tunnel's addresses, ports and call IDs on each side of the NAT."""

    KEY_SCOPE = "nat"
    DEFAULT_CSS = """
    NatScreen #note { height: auto; padding: 0 1; }
    NatScreen DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*bindings("nat")]

    def __init__(self) -> None:
        super().__init__()
        self.loaded_at = 0.0
        self.generation = -1

    def compose(self) -> ComposeResult:
        yield CaptureHeader(id="header")
        yield Static(
            Text(
                "NAT translations: the client's call ID is rewritten like a port. Public columns fill in "
                "when both legs of a tunnel are seen (capture inside and outside the gateway).",
                style="dim",
            ),
            id="note",
        )
        table: DataTable[Text] = DataTable(id="nat", cursor_type="row", zebra_stripes=True)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for i, title in enumerate(COLUMNS):
            table.add_column(title, key=f"c{i}")
        table.focus()

    def on_snapshot(self, changed: bool) -> None:
        store = self.pptp.store
        if store.generation == self.generation or time.monotonic() - self.loaded_at < RELOAD_EVERY:
            return
        self.generation = store.generation
        self.loaded_at = time.monotonic()
        table: DataTable[Text] = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for r in sorted(store.rows.values(), key=lambda r: r.id):
            table.add_row(*nat_cells(r), key=str(r.id))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    def _selected_id(self) -> int | None:
        table: DataTable[Text] = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key is not None else None

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        tid = self._selected_id()
        if tid is not None:
            self.pptp.open_tunnel(tid)
