"""Pilot tests of the tunnel screen's Inside tab (issue 19 §4): the lab's s1 session decrypted with alice's
password (tests/data/lab-chap-secrets) shows its inner ping flow and never the secret; without a secret, or
with a wrong one, one line says why nothing is shown."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Static, TabbedContent
from ui_helpers import DATA, SIZE, screen_text

from pptptop import diagnose, sources
from pptptop.inside.inspector import Inspector
from pptptop.inside.secrets import SecretStore, from_password
from pptptop.pipeline import Pipeline
from pptptop.track import nat
from pptptop.track.tracker import Tracker
from pptptop.ui.app import PptpTopApp
from pptptop.ui.screens.tunnel import TunnelScreen
from pptptop.ui.themes import load_theme

S1 = DATA / "s1-mschapv2-mppe128-inside.pcap"
ALICE = "wonderland-42"  # alice's secret in tests/data/lab-chap-secrets


@pytest.fixture(autouse=True)
def _utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def app_with(path: Path, passwords: tuple[tuple[str, str], ...] | None) -> PptpTopApp:
    """The app as the command wires it with ``--password USER:PASS`` (inspector before the diagnosis), or
    without any secret when ``passwords`` is None; the whole capture already read."""
    tracker = Tracker()
    if passwords is not None:
        Inspector(SecretStore([from_password(u, p, "--password") for u, p in passwords])).attach(tracker)
    nat.attach(tracker)
    diagnose.Diagnoser().attach(tracker)
    pipe = Pipeline(sources.open_file(str(path)), tracker)
    app = PptpTopApp(pipe, load_theme("dark"))
    pipe.run()
    return app


async def inside_tab(app: PptpTopApp) -> tuple[str, str]:
    """Open tunnel 1, press 6; the tab's text and the whole screen's."""
    async with app.run_test(size=SIZE) as pilot:
        app.open_tunnel(1)
        await pilot.pause()
        assert isinstance(app.screen, TunnelScreen)
        await pilot.press("6")
        await pilot.pause()
        assert app.screen.query_one(TabbedContent).active == "inside"
        return str(app.screen.query_one("#inside-text", Static).render()), screen_text(app)


class TestInsideTab:
    def test_decrypted_tunnel_shows_the_inner_ping_flow_and_no_secret(self) -> None:
        tab, screen = asyncio.run(inside_tab(app_with(S1, (("alice", ALICE),))))
        assert "decryption decrypting  MPPE-128 stateless" in tab
        # the pings through the tunnel: 8 echo requests and 8 replies of 513 octets
        assert "192.0.2.10               192.0.2.1                icmp          8    4.1 kB" in tab
        assert "192.0.2.1                192.0.2.10               icmp          8    4.1 kB" in tab
        assert "Top talkers" in tab and "user alice" in tab and "secret from --password" in tab
        assert "192.0.2.10" in screen and "icmp" in screen
        assert ALICE not in tab and ALICE not in screen

    def test_without_a_secret_one_line_says_why(self) -> None:
        tab, screen = asyncio.run(inside_tab(app_with(S1, None)))
        assert tab.startswith("no secret was given")
        assert "\n" not in tab.strip() and "icmp" not in tab
        assert "no secret was given" in screen

    def test_no_secret_for_this_user(self) -> None:
        tab, _ = asyncio.run(inside_tab(app_with(S1, (("bob", "builder-7"),))))
        assert tab == "no secret names user 'alice' at server 'pptpsrv'"
        assert "builder-7" not in tab

    def test_wrong_secret(self) -> None:
        tab, screen = asyncio.run(inside_tab(app_with(S1, (("alice", "not-her-password"),))))
        assert tab.startswith("wrong secret: ") and "icmp" not in tab
        assert "not-her-password" not in screen


class TestWireStrings:
    def test_user_dns_and_details_are_escaped(self) -> None:
        from rich.style import Style

        from pptptop.ui.inside_text import inside
        from pptptop.view.inside import DnsLine, InsideView, ProblemLine

        hostile = "evil\x1b[2J[red]x\x07"
        v = InsideView(True, "decrypting", "", user=hostile, secret_from="--password", decrypted=1,
                       dns=(DnsLine(hostile, "A", 1, 1, "NXDOMAIN", (hostile,)),),
                       problems=(ProblemLine("dns-error", f"answered '{hostile}'", 1, (5,)),))
        text = inside(v, lambda name: Style())
        assert "\x1b" not in text.plain and "\x07" not in text.plain
        assert "evil\\x1b[2J[red]x\\x07" in text.plain  # visible, and text, never markup
        assert text.plain.count("[red]") == 4  # user, name, answer, detail
        assert all("red" not in str(s.style) for s in text.spans)


class TestDecryptedPacket:
    def test_packet_view_shows_the_inner_packet_beside_the_outer_one(self) -> None:
        from textual.widgets import Tree

        from pptptop.decode.dissect import Node
        from pptptop.ui.screens.packet import PacketScreen
        from pptptop.ui.widgets.hex_view import HexView
        from pptptop.ui.widgets.packet_list import PacketList

        app = app_with(S1, (("alice", ALICE),))

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                app.open_tunnel(1)
                await pilot.pause()
                scr = app.screen
                assert isinstance(scr, TunnelScreen) and scr.inner
                await pilot.press("5")
                i = next(i for i, p in enumerate(scr.frames) if p.number in scr.inner)
                number = scr.frames[i].number
                scr.query_one(PacketList).cursor = i
                await pilot.press("enter")
                await pilot.pause()
                pk = app.screen
                assert isinstance(pk, PacketScreen) and pk.packet.number == number
                outer: Tree[Node] = pk.query_one("#tree", Tree)
                inner: Tree[Node] = pk.query_one("#inner-tree", Tree)
                assert inner.display and pk.query_one("#inner-hex", HexView).display
                assert any(str(n.label).startswith("Point-to-Point Protocol") for n in outer.root.children)
                assert str(inner.root.label).startswith("Decrypted inner packet: ")
                layers = [str(n.label) for n in inner.root.children]
                assert layers[0].startswith("Internet Protocol Version")
                assert pk.query_one("#inner-hex", HexView).data == scr.inner[number]
                assert pk.query_one("#hex", HexView).data == pk.packet.data
                text = screen_text(app)
                assert "Decrypted inner packet" in text and ALICE not in text
                # a frame with nothing decrypted (the control connection) has no inner pane
                await pilot.press("escape")
                await pilot.pause()
                j = next(i for i, p in enumerate(scr.frames) if p.number not in scr.inner)
                scr.query_one(PacketList).cursor = j
                await pilot.press("enter")
                await pilot.pause()
                assert not app.screen.query_one("#inner-tree", Tree).display
        asyncio.run(run())
