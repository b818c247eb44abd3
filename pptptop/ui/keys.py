"""Every key binding, as one data table (sngrep keeps its keys the same way).

Screens build their ``BINDINGS`` from it, the help screen lists it and the
command palette offers its actions, so the three never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True, slots=True)
class Key:
    keys: str  # Textual key names, comma-separated
    action: str
    description: str  # footer label
    scope: str  # "global", "main", "tunnel", "packet", "nat", "events"
    show: bool = True  # in the footer
    palette: bool = True  # offered in the command palette
    label: str = ""  # how the help screen writes the key, when not the key names
    #: checked when the key arrives, before the keys typed after it are handed on: "/" must move the focus
    #: to the filter box before the filter's first characters reach the table
    priority: bool = False


KEYS: tuple[Key, ...] = (
    Key("q", "app.quit", "Quit", "global", label="q / Ctrl+C"),
    Key("ctrl+c", "app.quit", "Quit", "global", show=False, palette=False),
    Key("question_mark", "app.help", "Help", "global", label="?"),
    Key("escape", "app.back", "Back", "global", show=False, palette=False, label="Esc"),
    Key("t", "app.cycle_theme", "Theme", "global"),
    Key("e", "app.events", "Events", "global"),
    Key("n", "app.nat", "NAT", "global"),
    Key("space", "app.pause", "Pause", "global", show=False, label="Space"),
    Key("slash", "screen.filter", "Filter", "main", label="/", priority=True),
    Key("s", "screen.sort(1)", "Sort", "main"),
    Key("S", "screen.sort(-1)", "Sort back", "main", show=False),
    Key("r", "screen.reverse", "Reverse", "main", show=False),
    Key("c", "screen.clear_filter", "Clear filter", "main", show=False),
    Key("enter", "screen.open", "Open", "main", label="Enter"),
    Key("w", "screen.save", "Save pcap", "main"),
    Key("enter", "screen.open_packet", "Packet", "tunnel", label="Enter"),
    Key("w", "screen.save", "Save pcap", "tunnel"),
    Key("1", "screen.tab('flow')", "Flow", "tunnel", show=False),
    Key("2", "screen.tab('summary')", "Summary", "tunnel", show=False),
    Key("3", "screen.tab('traffic')", "Traffic", "tunnel", show=False),
    Key("4", "screen.tab('transcript')", "Transcript", "tunnel", show=False),
    Key("5", "screen.tab('packets')", "Packets", "tunnel", show=False),
    Key("6", "screen.tab('inside')", "Inside", "tunnel", show=False),
    Key("v", "screen.pov", "Point of view", "tunnel", show=False),
    Key("d", "screen.tshark", "tshark view", "packet"),
    Key("left_square_bracket", "screen.step(-1)", "Prev packet", "packet", label="["),
    Key("right_square_bracket", "screen.step(1)", "Next packet", "packet", label="]"),
    Key("enter", "screen.open", "Open tunnel", "nat", label="Enter"),
    Key("f", "screen.follow", "Follow", "events"),
)

#: what the cursor keys do everywhere (listed in help; handled by the list widgets)
MOVEMENT: tuple[tuple[str, str], ...] = (
    ("↑ ↓ / k j", "move"),
    ("PgUp PgDn", "page"),
    ("Home End / g G", "first / last"),
    ("mouse", "click selects, double click opens, wheel scrolls, click a column title to sort"),
    ("Ctrl+P", "command palette: every action by name"),
)

SCOPE_TITLES = {
    "global": "everywhere",
    "main": "tunnels",
    "tunnel": "tunnel",
    "packet": "packet",
    "nat": "NAT",
    "events": "events",
}


def bindings(scope: str) -> list[Binding]:
    """The Textual bindings of one scope, straight from :data:`KEYS`."""
    out = []
    for k in KEYS:
        if k.scope != scope:
            continue
        action = k.action.split(".", 1)[1] if k.action.startswith("screen.") else k.action
        out.append(Binding(k.keys, action, k.description, show=k.show, priority=k.priority or k.keys == "ctrl+c"))
    return out


def key_label(k: Key) -> str:
    return k.label or k.keys
