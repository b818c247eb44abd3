"""Wire strings are shown literally: Rich markup, ANSI escapes and control characters are neutralised.

A crafted session (ui_hostile.py) carries ``[red]``, ``[/]``, ``[link=…]``,
``ESC[2J``, an OSC title sequence, BEL and BS in its host name, vendor, CHAP
names, Failure message and LCP Terminate text. Every screen that shows them
must show the characters themselves, and nothing may crash.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import Static
from ui_helpers import SIZE, replayed_app, screen_text
from ui_hostile import HOST, SERVER_NAME, TERMINATE, USER, VENDOR, write_hostile

from pptptop.export.text import printable
from pptptop.ui.app import PptpTopApp


@pytest.fixture
def hostile_app(tmp_path: Path, utc: None) -> PptpTopApp:
    return replayed_app(write_hostile(tmp_path / "hostile.pcap"), save_dir=tmp_path)


def assert_inert(text: str) -> None:
    """No raw escape or control character reached the screen."""
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0]
    assert not bad, [hex(ord(c)) for c in bad]


def test_the_engine_kept_the_strings_raw(hostile_app: PptpTopApp) -> None:
    t = hostile_app.pipeline.tracker.tunnels[1]
    assert t.control.client_host == HOST and t.control.client_vendor == VENDOR
    assert t.auth.user == USER and t.auth.server_name == SERVER_NAME
    assert t.close.reason == TERMINATE


def test_every_screen_shows_them_literally(hostile_app: PptpTopApp) -> None:
    app = hostile_app

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            main = screen_text(app)
            assert_inert(main)
            assert printable(USER) in main  # status line: \x1b]0;pwned\x07[red]mallory[/red]
            assert "[red]mallory[/red]" in main
            await pilot.press("enter")
            await pilot.pause()
            flow = screen_text(app)
            assert_inert(flow)
            assert "[red]evil[/]" in flow  # the SCCRQ arrow's host="…"
            await pilot.press("2")
            summary = str(app.screen.query_one("#summary-text", Static).render())
            assert_inert(summary)
            for s in (HOST, VENDOR, USER, SERVER_NAME, TERMINATE):
                assert printable(s) in summary, s
            assert "[blink]denied\\x1b[31m" in summary  # the M= text of the CHAP Failure
            await pilot.press("4")
            transcript = str(app.screen.query_one("#transcript-text", Static).render())
            assert_inert(transcript)
            assert "[blink]denied" in transcript and "[reverse]" in transcript
            await pilot.press("1", "end", "enter")  # the last packet: LCP TermReq
            await pilot.pause()
            tree_screen = screen_text(app)
            assert_inert(tree_screen)
            root = app.screen.root
            assert root is not None
            msg = root.find("Message")
            assert msg is not None and msg.value == TERMINATE
            await pilot.press("escape", "escape", "e")
            await pilot.pause()
            assert_inert(screen_text(app))
            app.save_screenshot(str(Path(app.save_dir or ".") / "hostile.svg"))
    asyncio.run(run())


def test_the_packet_tree_escapes_chap_names(hostile_app: PptpTopApp) -> None:
    from pptptop.ui.screens.packet import node_label

    t = hostile_app.pipeline.tracker.tunnels[1]
    from pptptop.decode.dissect import dissect

    names = []
    for p in t.all_packets():
        n = dissect(p.linktype, p.data).find("Name")
        if n is not None:
            names.append(n.value)
            label = node_label(n)
            assert printable(n.value) in label.plain and not label.spans
    assert names == [SERVER_NAME, USER]
