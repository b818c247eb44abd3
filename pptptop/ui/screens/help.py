"""The help screen (?): every key, from the one key table, and what the columns mean."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

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


class HelpScreen(ModalScreen[None]):
    """A table of keys; Esc, q or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 90%; max-width: 110; height: 90%; border: round $primary; background: $surface;
    }
    HelpScreen #help-title { height: 1; padding: 0 1; }
    HelpScreen DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss_help", "Close", priority=True),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("pptptop keys — Esc closes", style="bold"), id="help-title")
            table: DataTable[Text] = DataTable(id="keys", cursor_type="row", zebra_stripes=True)
            yield table

    def on_mount(self) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        table.add_columns("where", "key", "what")
        for where, key, what in help_rows():
            table.add_row(Text(where), Text(key, style="bold"), Text(what))
        table.focus()

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
