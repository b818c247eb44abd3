"""The help screen (?): every key, from the one key table, and what the columns mean.

A Rich table in a scrolling view: the "what" column wraps to the window's
width, so every line is there whole at 80 columns as at 200.
"""

from __future__ import annotations

from typing import ClassVar

from rich import box
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from pptptop.ui.columns import COLUMNS
from pptptop.ui.keys import KEYS, MOVEMENT, SCOPE_TITLES, key_label


def help_rows() -> list[tuple[str, str, str]]:
    """(where, key, what) for every binding worth listing, then movement and the table's columns."""
    rows: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for k in KEYS:
        label = key_label(k)
        if (k.scope, label) in seen or (k.keys == "ctrl+c"):
            continue
        seen.add((k.scope, label))
        rows.append((SCOPE_TITLES[k.scope], label, k.description))
    rows += [("lists", key, what) for key, what in MOVEMENT]
    rows += [("column", c.title, c.help) for c in COLUMNS]
    return rows


def help_table() -> Table:
    """Every row of :func:`help_rows`; the last column wraps."""
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False)
    table.add_column("where", no_wrap=True)
    table.add_column("key", no_wrap=True, style="bold")
    table.add_column("what", ratio=1, overflow="fold")
    for where, key, what in help_rows():
        table.add_row(where, key, what)
    return table


class HelpScreen(ModalScreen[None]):
    """The keys and columns; Esc, q or ? closes it; the list moves as every list does."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 90%; max-width: 110; height: 90%; border: round $primary; background: $surface;
    }
    HelpScreen #help-title { height: 1; padding: 0 1; }
    HelpScreen VerticalScroll { height: 1fr; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss_help", "Close", priority=True),
        Binding("j", "scroll('down')", "Down", show=False),
        Binding("k", "scroll('up')", "Up", show=False),
        Binding("g", "scroll('home')", "First", show=False),
        Binding("G", "scroll('end')", "Last", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("pptptop keys — Esc closes", style="bold"), id="help-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_table(), id="help-keys")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_scroll(self, where: str) -> None:
        view = self.query_one(VerticalScroll)
        {"down": view.scroll_down, "up": view.scroll_up, "home": view.scroll_home, "end": view.scroll_end}[where](
            animate=False)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
