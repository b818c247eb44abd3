"""The packet screen (Wireshark's details and bytes panes): protocol tree over a hex/ASCII dump.

Selecting a field in the tree lights up its bytes. ``d`` shows tshark's own
dissection of the packet beside ours (worker thread; a sentence when tshark is
missing). ``[`` and ``]`` step through the tunnel's packets.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Static, Tree
from textual.widgets.tree import TreeNode

from pptptop.decode.dissect import Node, dissect
from pptptop.track.model import Direction, Packet
from pptptop.ui.format import clock, wire
from pptptop.ui.keys import bindings
from pptptop.ui.screens.base import PptpScreen
from pptptop.ui.widgets.capture_header import CaptureHeader
from pptptop.ui.widgets.hex_view import HexView
from pptptop.view.tshark import tshark_dissect, without_frame_block


def node_label(n: Node) -> Text:
    """A tree label: the field name in bold, its value escaped (values may be wire strings)."""
    out = Text(no_wrap=True, end="")
    out.append(wire(n.label, 80), style="bold" if n.children else "")
    if n.value:
        out.append(": ")
        out.append(wire(n.value, 300))
    return out


def packet_title(p: Packet, index: int, total: int, evidence: bool) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis", end="")
    out.append(f" Frame {p.number} ", style="bold reverse")
    arrow = "client → server" if p.direction is Direction.TO_SERVER else "server → client"
    out.append(f" {clock(p.ts)}  {arrow}  {len(p.data)} bytes  ({index + 1} of {total})  ")
    if evidence:
        out.append("◆ diagnosis evidence  ", style="bold")
    out.append(wire(p.summary, 300))
    return out


class PacketScreen(PptpScreen):
    """One packet: tree, bytes, and tshark's view on demand."""

    KEY_SCOPE = "packet"
    DEFAULT_CSS = """
    PacketScreen #title { height: 1; }
    PacketScreen #panes { height: 3fr; }
    PacketScreen #tree { width: 1fr; }
    PacketScreen #tshark-pane { width: 1fr; display: none; border-left: solid $primary; }
    PacketScreen #tshark-pane.visible { display: block; }
    PacketScreen HexView { height: 2fr; border-top: solid $primary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*bindings("packet")]

    def __init__(self, packets: list[Packet], index: int, evidence: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.packets = packets
        self.index = max(0, min(index, len(packets) - 1))
        self.evidence = evidence
        self.root: Node | None = None
        self.tshark_text: dict[int, Text] = {}

    @property
    def packet(self) -> Packet:
        return self.packets[self.index]

    def compose(self) -> ComposeResult:
        yield CaptureHeader(id="header")
        yield Static(id="title")
        with Horizontal(id="panes"):
            yield Tree[Node]("Frame", id="tree")
            with VerticalScroll(id="tshark-pane"):
                yield Static(id="tshark")
        yield HexView(id="hex")
        yield Footer()

    def on_mount(self) -> None:
        self.show()
        self.query_one("#tree", Tree).focus()

    def show(self) -> None:
        p = self.packet
        self.query_one("#title", Static).update(
            packet_title(p, self.index, len(self.packets), p.number in self.evidence)
        )
        self.root = dissect(p.linktype, p.data)
        tree: Tree[Node] = self.query_one("#tree", Tree)
        tree.clear()
        tree.root.set_label(node_label(self.root))
        tree.root.data = self.root
        last = len(self.root.children) - 1
        focus: TreeNode[Node] | None = None
        for i, child in enumerate(self.root.children):
            focus = self._add(tree.root, child, expand=i == last)
        tree.root.expand()
        if focus is not None:
            # like Wireshark, open on the innermost protocol: its layer selected, the outer ones folded
            tree.call_after_refresh(tree.move_cursor, focus)
        self.query_one(HexView).set_data(p.data)
        if self.query_one("#tshark-pane").has_class("visible"):
            self.load_tshark()

    def _add(self, parent: TreeNode[Node], n: Node, expand: bool) -> TreeNode[Node]:
        """Add ``n`` under ``parent``; an expanded layer also opens its sub-messages (PPP → LCP)."""
        if not n.children:
            return parent.add_leaf(node_label(n), data=n)
        node = parent.add(node_label(n), data=n, expand=expand)
        for c in n.children:
            self._add(node, c, expand=expand and parent.is_root and len(c.children) > 2)
        return node

    def _layer_of(self, target: Node) -> tuple[int, int]:
        if self.root is None:
            return (0, 0)
        for top in self.root.children:
            if any(x is target for x in top.walk()):
                return (top.start, top.end)
        return (0, 0)

    @on(Tree.NodeHighlighted, "#tree")
    def _highlight(self, event: Tree.NodeHighlighted[Node]) -> None:
        n = event.node.data
        if n is None:
            return
        hexv = self.query_one(HexView)
        if n is self.root:
            hexv.highlight(0, 0)
            return
        hexv.highlight(n.start, n.end, self._layer_of(n))

    # ---------------------------------------------------------------- actions
    def action_step(self, delta: int) -> None:
        new = max(0, min(len(self.packets) - 1, self.index + delta))
        if new != self.index:
            self.index = new
            self.show()

    def action_tshark(self) -> None:
        pane = self.query_one("#tshark-pane")
        pane.toggle_class("visible")
        if pane.has_class("visible"):
            self.load_tshark()

    def load_tshark(self) -> None:
        number = self.packet.number
        cached = self.tshark_text.get(number)
        if cached is not None:
            self.query_one("#tshark", Static).update(cached)
            return
        self.query_one("#tshark", Static).update(Text("running tshark -V …", style="dim"))
        self._run_tshark(self.packet)

    @work(thread=True, exclusive=True, group="tshark")
    def _run_tshark(self, p: Packet) -> None:
        ok, text = tshark_dissect(p)
        if ok:
            text = without_frame_block(text)
        body = Text("tshark -V\n", style="bold")
        body.append(wire_block(text), style="" if ok else "bold")
        self.app.call_from_thread(self._tshark_done, p.number, body)

    def _tshark_done(self, number: int, body: Text) -> None:
        self.tshark_text[number] = body
        if self.packet.number == number:
            self.query_one("#tshark", Static).update(body)


def wire_block(text: str) -> str:
    """Multi-line text from a tool (tshark quotes wire strings): each line escaped, newlines kept."""
    return "\n".join(wire(line, 2000) for line in text.splitlines())
