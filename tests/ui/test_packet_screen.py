"""Pilot tests of the packet screen: protocol tree, byte highlight, stepping, tshark's view."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable

import pytest
from textual.widgets import Static, Tree
from ui_helpers import SIZE, screen_text

from pptptop.decode.dissect import Node
from pptptop.ui.app import PptpTopApp
from pptptop.ui.screens.packet import PacketScreen
from pptptop.ui.widgets.hex_view import HexView

S2 = "s2-mschapv2-wrong-password-inside.pcap"


def open_chap_failure(app: PptpTopApp) -> int:
    t = app.pipeline.tracker.tunnels[1]
    packets = t.all_packets()
    i = next(i for i, p in enumerate(packets) if p.summary.startswith("[CHAP Failure"))
    app.open_packet(packets, i)
    return i


class TestTreeAndBytes:
    def test_tree_shows_every_layer(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S2)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                open_chap_failure(app)
                await pilot.pause()
                assert isinstance(app.screen, PacketScreen)
                tree = app.screen.query_one(Tree)
                labels = [str(n.label) for n in tree.root.children]
                assert labels[0].startswith("Ethernet II")
                assert labels[1].startswith("Internet Protocol Version 4")
                assert labels[2].startswith("Generic Routing Encapsulation (PPTP)")
                assert labels[3].startswith("Point-to-Point Protocol")
                text = screen_text(app)
                assert "Frame" in text and "CHAP Failure" in text
        asyncio.run(run())

    def test_selecting_a_field_highlights_its_bytes(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S2)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                open_chap_failure(app)
                await pilot.pause()
                tree: Tree[Node] = app.screen.query_one(Tree)
                hexv = app.screen.query_one(HexView)
                ppp = tree.root.children[3]
                assert tree.cursor_node is ppp and ppp.is_expanded  # opens on the innermost protocol
                assert ppp.data is not None and hexv.hl_field == (ppp.data.start, len(hexv.data))
                gre = tree.root.children[2]
                assert not gre.is_expanded
                gre.expand()
                await pilot.pause()
                call_id = next(c for c in gre.children if str(c.label).startswith("Call id"))
                tree.move_cursor(call_id)
                await pilot.pause()
                assert hexv.hl_field == (40, 42)  # Ethernet 14 + IPv4 20 + GRE offset 6
                assert hexv.hl_layer == (34, 50)  # the GRE header with seq and ack
                line = hexv.render_row(2, 80, False)  # bytes 0x20-0x2f hold offset 40
                hot = [s for s in line.spans if s.style == hexv.style_of("selected")]
                shown = [line.plain[x.start:x.end] for x in hot]
                data = hexv.data
                def ascii(b: int) -> str:
                    return chr(b) if 0x20 <= b < 0x7F else "."

                # each of the two bytes lit up in the hex and in the ASCII column
                assert shown == [f"{data[40]:02x}", ascii(data[40]), f"{data[41]:02x}", ascii(data[41])]
        asyncio.run(run())

    def test_brackets_step_through_the_tunnel(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S2)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                i = open_chap_failure(app)
                await pilot.pause()
                screen = app.screen
                assert isinstance(screen, PacketScreen)
                await pilot.press("right_square_bracket")
                assert screen.index == i + 1
                await pilot.press("left_square_bracket", "left_square_bracket")
                assert screen.index == i - 1
                assert f"Frame {screen.packet.number}" in screen_text(app)
        asyncio.run(run())


@pytest.mark.tshark
class TestTsharkView:
    def test_d_shows_tsharks_dissection(self, make_app: Callable[..., PptpTopApp]) -> None:
        assert shutil.which("tshark")
        app = make_app(S2)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                open_chap_failure(app)
                await pilot.pause()
                await pilot.press("d")
                for _ in range(100):
                    await pilot.pause(0.1)
                    if "Challenge Handshake" in str(app.screen.query_one("#tshark", Static).render()):
                        break
                body = str(app.screen.query_one("#tshark", Static).render())
                assert "tshark -V" in body and "Challenge Handshake Authentication Protocol" in body
                assert "E=691" in body
        asyncio.run(run())


def test_missing_tshark_gives_a_sentence(monkeypatch: pytest.MonkeyPatch, make_app: Callable[..., PptpTopApp]) -> None:
    from pptptop.view import tshark

    monkeypatch.setattr(tshark.shutil, "which", lambda name: None)
    app = make_app(S2)
    p = app.pipeline.tracker.tunnels[1].all_packets()[0]
    ok, text = tshark.tshark_dissect(p)
    assert not ok and "tshark is not installed" in text
