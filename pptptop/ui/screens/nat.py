"""The NAT translations screen: inside ↔ public ↔ server, per tunnel (the seed article's NAT table).

PPTP through NAT works because the gateway rewrites the client's call ID like
a port (RFC 2637 has none for GRE). Until NAT correlation has paired a
tunnel's two legs (``tunnel.nat``), each tunnel shows what its own
leg says and the public columns stay empty. One line per leg: this is the
translation table, where the tunnels table shows one row per session.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Footer, Static

from pptptop.ui.keys import bindings
from pptptop.ui.screens.base import PptpScreen
from pptptop.ui.widgets.capture_header import CaptureHeader
from pptptop.ui.widgets.line_list import LineList
from pptptop.ui.widgets.nat_table import NatTable

RELOAD_EVERY = 1.0


class NatScreen(PptpScreen):
    """Every tunnel's addresses, ports and call IDs on each side of the NAT."""

    KEY_SCOPE = "nat"
    DEFAULT_CSS = """
    NatScreen #note { height: auto; padding: 0 1; }
    NatScreen NatTable { height: 1fr; }
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
        yield NatTable(id="nat")
        yield Footer()

    @property
    def table(self) -> NatTable:
        return self.query_one(NatTable)

    def on_mount(self) -> None:
        self.table.focus()

    def on_snapshot(self, changed: bool) -> None:
        store = self.pptp.store
        if store.generation == self.generation or time.monotonic() - self.loaded_at < RELOAD_EVERY:
            return
        self.generation = store.generation
        self.loaded_at = time.monotonic()
        self.table.set_rows(sorted(store.rows.values(), key=lambda r: r.id))

    @on(LineList.Activated, "#nat")
    def _activated(self, event: LineList.Activated) -> None:
        self.action_open()

    def action_open(self) -> None:
        sel = self.table.selected
        if sel is not None:
            self.pptp.open_tunnel(sel.id)
