"""The packet screen (Wireshark's details and bytes panes): protocol tree over a hex/ASCII dump.

Selecting a field in the tree lights up its bytes. ``d`` shows tshark's own
dissection of the packet beside ours (worker thread; a sentence when tshark is
missing). ``[`` and ``]`` step through the tunnel's packets. For a data frame
pptptop decrypted (docs/decryption.md), the inner IP datagram's tree and bytes
stand beside the outer ones.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from pptptop.wire import LINKTYPE_RAW


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
    PacketScreen #tree, PacketScreen #inner-tree { width: 1fr; }
    PacketScreen #inner-tree, PacketScreen #inner-hex { display: none; border-left: solid $primary; }
    PacketScreen.decrypted #inner-tree, PacketScreen.decrypted #inner-hex { display: block; }
    PacketScreen #bytes { height: 2fr; }
    PacketScreen #tshark-pane { width: 1fr; display: none; border-left: solid $primary; }
    PacketScreen #tshark-pane.visible { display: block; }
    PacketScreen HexView { height: 1fr; width: 1fr; border-top: solid $primary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*bindings("packet")]

    def __init__(self, packets: list[Packet], index: int, evidence: frozenset[int] = frozenset(),
                 inner: Mapping[int, bytes] | None = None) -> None:
        super().__init__()
        self.inner = inner or {}
        self.inner_root: Node | None = None
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
            yield Tree[Node]("Decrypted", id="inner-tree")
            with VerticalScroll(id="tshark-pane"):
                yield Static(id="tshark")
        with Horizontal(id="bytes"):
            yield HexView(id="hex")
            yield HexView(id="inner-hex")
        yield Footer()

    def on_mount(self) -> None:
        self.show()
        self.query_one("#tree", Tree).focus()

    def show(self) -> None:
        p = self.packet
        self.query_one("#title", Static).update(
            packet_title(p, self.index, len(self.packets), p.number in self.evidence)
        )
        self.root = self._fill(self.query_one("#tree", Tree), dissect(p.linktype, p.data))
        self.query_one("#hex", HexView).set_data(p.data)
        inner = self.inner.get(p.number)
        self.set_class(inner is not None, "decrypted")
        if inner is not None:
            root = dissect(LINKTYPE_RAW, inner)
            root = Node("Decrypted inner packet", f"{len(inner)} bytes, from frame {p.number}", root.start,
                        root.end, root.children)
            self.inner_root = self._fill(self.query_one("#inner-tree", Tree), root, move=False)
            self.query_one("#inner-hex", HexView).set_data(inner)
        else:
            self.inner_root = None
        if self.query_one("#tshark-pane").has_class("visible"):
            self.load_tshark()

    def _fill(self, tree: Tree[Node], root: Node, move: bool = True) -> Node:
        tree.clear()
        tree.root.set_label(node_label(root))
        tree.root.data = root
        last = len(root.children) - 1
        focus: TreeNode[Node] | None = None
        for i, child in enumerate(root.children):
            focus = self._add(tree.root, child, expand=i == last)
        tree.root.expand()
        if focus is not None and move:
            # like Wireshark, open on the innermost protocol: its layer selected, the outer ones folded
            tree.call_after_refresh(tree.move_cursor, focus)
        return root

    def _add(self, parent: TreeNode[Node], n: Node, expand: bool) -> TreeNode[Node]:
        """Add ``n`` under ``parent``; an expanded layer also opens its sub-messages (PPP → LCP)."""
        if not n.children:
            return parent.add_leaf(node_label(n), data=n)
        node = parent.add(node_label(n), data=n, expand=expand)
        for c in n.children:
            self._add(node, c, expand=expand and parent.is_root and len(c.children) > 2)
        return node

    @staticmethod
    def _layer_of(root: Node | None, target: Node) -> tuple[int, int]:
        if root is None:
            return (0, 0)
        for top in root.children:
            if any(x is target for x in top.walk()):
                return (top.start, top.end)
        return (0, 0)

    @on(Tree.NodeHighlighted, "#tree")
    def _highlight(self, event: Tree.NodeHighlighted[Node]) -> None:
        self._light(event.node.data, self.root, self.query_one("#hex", HexView))

    @on(Tree.NodeHighlighted, "#inner-tree")
    def _highlight_inner(self, event: Tree.NodeHighlighted[Node]) -> None:
        self._light(event.node.data, self.inner_root, self.query_one("#inner-hex", HexView))

    def _light(self, n: Node | None, root: Node | None, hexv: HexView) -> None:
        if n is None:
            return
        if n is root:
            hexv.highlight(0, 0)
            return
        hexv.highlight(n.start, n.end, self._layer_of(root, n))

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
