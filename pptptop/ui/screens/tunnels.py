"""The main screen: every tunnel, one per row (sngrep's call list, htop's process list)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Footer, Input, Static

from pptptop.ui.columns import COLUMN_BY_KEY, phase_chip
from pptptop.ui.format import wire
from pptptop.ui.keys import bindings
from pptptop.ui.screens.base import PptpScreen
from pptptop.ui.widgets.capture_header import CaptureHeader
from pptptop.ui.widgets.tunnel_table import TunnelTable
from pptptop.view.filtering import NO_FILTER, FilterError, parse_filter
from pptptop.view.snapshot import TunnelRow


def status_line(r: TunnelRow | None, shown: int, total: int, filter_text: str) -> Text:
    """The line under the table: the selected tunnel in words, and what the filter hides."""
    out = Text(no_wrap=True, overflow="ellipsis", end="")
    if filter_text:
        out.append(f" filter: {filter_text}  ({shown} of {total})  ", style="bold")
    if r is None:
        out.append(" no tunnel yet" if not total else " no tunnel matches")
        return out
    out.append(f" #{r.id} {phase_chip(r)}")
    if r.user:
        out.append(f"  user {wire(r.user, 48)}")
        if r.auth_method and r.auth_method != "none":
            out.append(f" ({r.auth_method} {r.auth_result})")
    out.append(
        f"  {r.client_ip}:{r.client_port or '-'} call {r.client_call if r.client_call is not None else '-'}"
        f" → {r.server_ip} call {r.server_call if r.server_call is not None else '-'}"
    )
    f = r.verdict
    if f is not None:
        out.append(f"  ⚑ {wire(f.title, 120)}", style="bold")
    return out


class TunnelsScreen(PptpScreen):
    """Tunnels table, filter line, status line and footer."""

    KEY_SCOPE = "main"
    DEFAULT_CSS = """
    TunnelsScreen TunnelTable { height: 1fr; }
    TunnelsScreen #status { height: 1; }
    TunnelsScreen #filter { display: none; height: 1; border: none; padding: 0 1; }
    TunnelsScreen #filter.visible { display: block; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [*bindings("main")]

    def compose(self) -> ComposeResult:
        yield CaptureHeader(id="header")
        yield TunnelTable(id="tunnels")
        yield Static(id="status")
        yield Input(
            placeholder="type a filter (Enter applies, Esc cancels)",
            id="filter",
        )
        yield Footer()

    @property
    def table(self) -> TunnelTable:
        return self.query_one(TunnelTable)

    def on_mount(self) -> None:
        self.table.focus()

    def on_snapshot(self, changed: bool) -> None:
        store = self.pptp.store
        if changed or self.table.now != store.now():
            self.table.set_rows(store.sessions, store.now())
        self._status()

    filter_error: str | None = None

    def _status(self) -> None:
        if self.filter_error:
            self.query_one("#status", Static).update(Text(f" {self.filter_error}", style="bold red", no_wrap=True))
            return
        if self.query_one("#filter", Input).has_class("visible"):
            self.query_one("#status", Static).update(Text(
                " filter: Enter applies, Esc cancels; text, user=, ip=, phase=, iface=, id=, failed, active, "
                "diag, !term", no_wrap=True, overflow="ellipsis", end=""))
            return
        t = self.table
        self.query_one("#status", Static).update(
            status_line(t.selected, len(t.view), len(t.all_rows), t.row_filter.text)
        )

    @on(TunnelTable.Highlighted)
    def _moved(self) -> None:
        self._status()

    @on(TunnelTable.Opened)
    def _opened(self, event: TunnelTable.Opened) -> None:
        self.pptp.open_tunnel(event.tunnel_id)

    @on(TunnelTable.SortChanged)
    def _sorted(self, event: TunnelTable.SortChanged) -> None:
        col = COLUMN_BY_KEY[event.key]
        self.notify(f"sorted by {col.title} {'descending' if event.reverse else 'ascending'}", timeout=2)

    # ---------------------------------------------------------------- actions
    def action_open(self) -> None:
        sel = self.table.selected
        if sel is not None:
            self.pptp.open_tunnel(sel.id)

    def action_sort(self, step: int) -> None:
        self.table.cycle_sort(step)

    def action_reverse(self) -> None:
        self.table.sort_by(self.table.sort_key, reverse=not self.table.reverse)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # "/" typed in the box (ip=10.0.0.0/24) is a character, not the key that opens it
        return not (action == "filter" and self.focused is self.query_one("#filter", Input))

    def action_filter(self) -> None:
        """Open the filter box above the footer and give it the keys typed after "/" (a priority binding:
        the focus moves before the next key is handed on, so a fast typist loses nothing)."""
        box = self.query_one("#filter", Input)
        box.value = self.table.row_filter.text
        box.add_class("visible")
        self.set_focus(box)
        self._status()

    def action_clear_filter(self) -> None:
        self.table.set_filter(NO_FILTER)
        self._status()

    def action_save(self) -> None:
        sel = self.table.selected
        if sel is not None:
            self.pptp.save_tunnel(sel.id)

    @on(Input.Submitted, "#filter")
    def _apply_filter(self, event: Input.Submitted) -> None:
        try:
            f = parse_filter(event.value)
        except FilterError as e:
            self.filter_error = str(e)
            self._status()
            return
        self.table.set_filter(f)
        self._close_filter()

    def _close_filter(self) -> None:
        self.filter_error = None
        box = self.query_one("#filter", Input)
        box.remove_class("visible")
        self.table.focus()
        self._status()

    def back(self) -> bool:
        box = self.query_one("#filter", Input)
        if box.has_class("visible"):
            self._close_filter()
            return True
        return False
