"""Pilot tests of what got in a newcomer's way in the first hour (issue 17, "The UI").

The apps are wired as the ``pptptop`` command wires them (NAT correlation and
the diagnosis), over the lab captures.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from textual import events
from textual.widgets import Input
from ui_helpers import DATA, screen_text, wired_app

from pptptop.ui.app import PptpTopApp
from pptptop.ui.columns import verdict_text
from pptptop.ui.keys import MOVEMENT
from pptptop.ui.screens.help import HelpScreen, help_rows
from pptptop.ui.screens.nat import NatScreen
from pptptop.ui.screens.tunnel import TunnelScreen
from pptptop.ui.widgets.nat_table import NatTable
from pptptop.ui.widgets.tunnel_table import TunnelTable
from pptptop.view.snapshot import TunnelStore

S1 = "s1-mschapv2-mppe128-both.pcapng"
S2 = "s2-mschapv2-wrong-password-both.pcapng"
S3B = "s3b-gre-forward-drop-both.pcapng"
S5 = "s5-two-clients-same-nat-both.pcapng"
DEMO = Path(__file__).resolve().parents[2] / "pptptop" / "data" / "demo.pcapng"

App = Callable[..., PptpTopApp]


@pytest.fixture
def app_of(tmp_path: Path, utc: None) -> App:
    def make(name: str | Path, **kw: object) -> PptpTopApp:
        return wired_app(DATA / name if isinstance(name, str) else name, save_dir=tmp_path, **kw)  # type: ignore[arg-type]
    return make


def lines(app: PptpTopApp) -> list[str]:
    return screen_text(app).splitlines()


def type_fast(app: PptpTopApp, text: str) -> None:
    """Keys as a terminal delivers a fast typist's (or a paste's) keys: all queued before the first is handled."""
    for ch in text:
        key = {"/": "slash", "=": "equals_sign", " ": "space", ".": "full_stop", "\r": "enter"}.get(ch, ch)
        app.post_message(events.Key(key, None if ch == "\r" else ch))


class TestFilterBox:
    @pytest.mark.parametrize("size", [(80, 24), (160, 20), (200, 50)])
    def test_what_is_typed_fast_is_all_there_and_visible(self, app_of: App, size: tuple[int, int]) -> None:
        app = app_of(S5)

        async def run() -> None:
            async with app.run_test(size=size) as pilot:
                await pilot.pause()
                type_fast(app, "/ip=10.0.0.3")
                await pilot.pause(0.3)
                box = app.screen.query_one("#filter", Input)
                assert box.value == "ip=10.0.0.3"
                shown = lines(app)
                assert sum("ip=10.0.0.3" in x for x in shown) == 1  # on the screen, once, not under the footer
                assert box.region.y < size[1] - 1 and box.region.height == 1
                type_fast(app, "\r")
                await pilot.pause(0.3)
                table = app.screen.query_one(TunnelTable)
                assert [r.client_ip for r in table.view] == ["10.0.0.3"]
                assert not box.has_class("visible") and app.focused is table
        asyncio.run(run())

    def test_a_slash_inside_the_filter_is_a_character(self, app_of: App) -> None:
        app = app_of(S5)

        async def run() -> None:
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                type_fast(app, "/ip=10.0.0.0/24 bob\r")
                await pilot.pause(0.3)
                table = app.screen.query_one(TunnelTable)
                assert table.row_filter.text == "ip=10.0.0.0/24 bob"
                assert [r.user for r in table.view] == ["bob"]
        asyncio.run(run())


class TestVerdict:
    def test_the_table_says_what_failed_at_80_columns(self, app_of: App) -> None:
        app = app_of(S2)

        async def run() -> None:
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                table = app.screen.query_one(TunnelTable)
                assert "verdict" in [c.key for c in table.columns]
                row = next(x for x in lines(app) if "FAIL AUTH" in x)
                assert "auth-failed 691" in row and len(row) <= 80
        asyncio.run(run())

    def test_no_verdict_column_when_nothing_is_wrong(self, app_of: App) -> None:
        """s1 has only info findings: its 80 columns keep the age and the rates instead."""
        app = app_of(S1)

        async def run() -> None:
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                keys = [c.key for c in app.screen.query_one(TunnelTable).columns]
                assert "verdict" not in keys and {"age", "down", "up"} <= set(keys)
        asyncio.run(run())

    def test_the_tunnel_screen_says_it_above_the_tabs(self, app_of: App) -> None:
        app = app_of(S2)

        async def run() -> None:
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                await pilot.press("enter")
                await pilot.pause()
                assert isinstance(app.screen, TunnelScreen)
                shown = lines(app)
                tabs = next(i for i, x in enumerate(shown) if "1 Flow" in x)
                verdict = next(i for i, x in enumerate(shown) if "Authentication failed" in x)
                assert verdict < tabs and "691" in shown[verdict]
                assert "finding" not in screen_text(app)  # not "⚑ 2 findings": the reason itself
        asyncio.run(run())


class TestHeader:
    def test_80x24_shows_the_file_name_and_the_counts(self, app_of: App) -> None:
        app = app_of(S2)

        async def run() -> None:
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                head = lines(app)[0]
                state, name = head.split()[:2]
                assert state == "DONE" and "/" not in head
                assert S2.startswith(name.rstrip("…")) and len(name) >= 20  # the base name, cut to make room
                assert "tunnels 1: 0 up, 1 failed" in head
                assert f"frames {app.pipeline.frames}" in head
        asyncio.run(run())


class TestHelp:
    @pytest.mark.parametrize("size", [(200, 120), (80, 150)])
    def test_every_line_is_whole(self, app_of: App, size: tuple[int, int]) -> None:
        """Tall enough for the whole list: every description is on the screen, wrapped, never cut."""
        app = app_of(S1)
        boxes = re.compile("[\u2500-\u259f]")  # the frame and the scroll bar

        async def run() -> None:
            async with app.run_test(size=size) as pilot:
                await pilot.press("question_mark")
                await pilot.pause()
                assert isinstance(app.screen, HelpScreen)
                seen = " ".join(boxes.sub(" ", screen_text(app)).split())
                mouse = dict(MOVEMENT)["mouse"]
                assert mouse in seen  # "... click a column title to sort", not "... to sor"
                for _, _, what in help_rows():
                    assert " ".join(what.split()) in seen, what
        asyncio.run(run())


class TestNatScreen:
    def test_every_list_key_moves(self, app_of: App) -> None:
        app = app_of(S5)

        async def run() -> None:
            async with app.run_test(size=(120, 36)) as pilot:
                await pilot.press("n")
                await pilot.pause()
                assert isinstance(app.screen, NatScreen)
                table = app.screen.query_one(NatTable)
                last = len(table.rows) - 1
                assert last == 3 and table.cursor == 0
                for key, where in [("j", 1), ("G", last), ("k", last - 1), ("g", 0), ("end", last),
                                   ("home", 0), ("down", 1)]:
                    await pilot.press(key)
                    assert table.cursor == where, key
                await pilot.press("enter")
                await pilot.pause()
                assert isinstance(app.screen, TunnelScreen) and app.screen.tunnel_id == table.rows[1].id
        asyncio.run(run())

    def test_80_columns_never_cut_an_address_without_saying_so(self, app_of: App) -> None:
        app = app_of(S5)

        async def run() -> None:
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press("n")
                await pilot.pause()
                table = app.screen.query_one(NatTable)
                titles = [c.title for c in table.columns]
                assert {"inside IP", "public IP", "server IP"} <= set(titles)
                shown = lines(app)
                for r in table.rows:
                    line = next(x for x in shown if x.lstrip().startswith(f"{r.id} "))
                    assert r.server_ip in line and len(line) <= 80
                v6 = replace(table.rows[0], server_ip="2001:db8:ffff:1234:5678:9abc:def0:1")
                cells = table._line([c.cell(v6) for c in table.columns]).plain
                assert "2001:db8:ffff:…" in cells  # cut to its column, with an ellipsis
        asyncio.run(run())


class TestRates:
    def test_an_ended_tunnel_has_no_current_rate(self, app_of: App) -> None:
        app = app_of(S2)

        async def run() -> None:
            async with app.run_test(size=(120, 36)) as pilot:
                await pilot.pause()
                table = app.screen.query_one(TunnelTable)
                row = table.view[0]
                assert row.ended and row.down.rate(table.now) > 0  # traffic in its last 5 s of capture...
                assert row.rate(row.down, table.now) == 0 and row.rate(row.up, table.now) == 0  # ...is over
                shown = {c.key: c.cell(row, table.now, table.style_of).plain for c in table.columns}
                assert shown["down"] == "0" and shown["up"] == "0"
                await pilot.press("enter", "3")
                await pilot.pause()
                text = screen_text(app)
                assert "down (server → client)  now 0/s" in text and "up (client → server)  now 0/s" in text
        asyncio.run(run())

    def test_packets_per_second_come_from_capture_time(self) -> None:
        """The demo at 1x: every snapshot after the first second shows the capture's packet rate, not the
        frames that happened to arrive in the last tenth of a second (mostly none)."""
        app = wired_app(DEMO, speed=1.0, run=False)
        pipe = app.pipeline
        store = TunnelStore()
        worker = threading.Thread(target=pipe.run, daemon=True)
        worker.start()
        rates = []
        try:
            start = time.monotonic()
            while time.monotonic() - start < 3.0:
                store.refresh(pipe)
                if time.monotonic() - start > 1.2:
                    rates.append(store.capture.packets_per_s)
                time.sleep(0.1)
        finally:
            pipe.stop()
            worker.join(5)
        assert len(rates) > 10 and min(rates) > 5  # the demo's first seconds: 8 to 84 frames a second
        assert max(rates) < 100

    def test_the_header_shows_a_packet_rate_while_the_demo_plays(self, utc: None) -> None:
        app = wired_app(DEMO, speed=1.0, run=False)

        async def run() -> None:
            async with app.run_test(size=(120, 36)) as pilot:
                shown = []
                for _ in range(12):
                    await pilot.pause(0.25)
                    shown.append(lines(app)[0])
                rates = [int(m.group(1)) for h in shown[4:] if (m := re.search(r"(\d+) pkt/s", h))]
                assert len(rates) == len(shown[4:]) and min(rates) > 0, shown
        asyncio.run(run())
        app.stop_capture()


class TestNatSessions:
    def test_one_session_counted_once_with_both_legs_findings(self, app_of: App) -> None:
        """s3b: the inside leg sees its LCP unanswered (gre-blocked 806); only the WAN leg sees the ICMP
        protocol-unreachable that says why (gre-icmp-unreachable 806)."""
        app = app_of(S3B)
        tracker = app.pipeline.tracker
        assert len(tracker.tunnels) == 2

        async def run() -> None:
            async with app.run_test(size=(120, 36)) as pilot:
                await pilot.pause()
                table = app.screen.query_one(TunnelTable)
                assert len(table.view) == 1
                assert "tunnels 1: 0 up, 1 failed" in lines(app)[0]
                row = table.view[0]
                assert {f.code for f in row.findings} == {"gre-blocked", "gre-icmp-unreachable"}
                assert verdict_text(row) == "gre-blocked 806"
                await pilot.press("enter", "2")
                await pilot.pause()
                text = " ".join(screen_text(app).split())
                assert "GRE blocked: LCP never answered [gre-blocked]" in text
                assert "GRE refused by ICMP [gre-icmp-unreachable, seen on the other NAT leg (wan0)]" in text
        asyncio.run(run())

    def test_two_sessions_of_two_legs_are_two_tunnels(self, app_of: App) -> None:
        app = app_of(S5)

        async def run() -> None:
            async with app.run_test(size=(120, 36)) as pilot:
                await pilot.pause()
                assert len(app.pipeline.tracker.tunnels) == 4
                assert len(app.screen.query_one(TunnelTable).view) == 2
                assert "tunnels 2: 0 up, 0 failed" in lines(app)[0]
        asyncio.run(run())
