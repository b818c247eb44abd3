"""Pilot tests of the tunnels screen: rows, sort, filter, open and back, save, themes, quit."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from ui_helpers import DATA, SIZE, screen_text, wired_app

from pptptop.cli import main
from pptptop.ui.app import PptpTopApp
from pptptop.ui.screens.help import HelpScreen
from pptptop.ui.screens.tunnel import TunnelScreen
from pptptop.ui.screens.tunnels import TunnelsScreen
from pptptop.ui.widgets.tunnel_table import TunnelTable

S1 = "s1-mschapv2-mppe128-both.pcapng"
S2 = "s2-mschapv2-wrong-password-both.pcapng"
S5 = "s5-two-clients-same-nat-both.pcapng"


def table(app: PptpTopApp) -> TunnelTable:
    return app.screen.query_one(TunnelTable)


class TestRows:
    def test_one_row_per_tunnel_with_phase_user_and_crypto(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S5)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                t = table(app)
                assert [r.id for r in t.view] == sorted(app.pipeline.tracker.tunnels)
                text = screen_text(app)
                rows = [x for x in text.splitlines() if "CLOSED" in x and "MPPE-128" in x]
                assert len(rows) == 4
                assert sum("alice" in x for x in rows) == 2 and sum("bob" in x for x in rows) == 2
                assert "10.0.0.3" in text and "198.51.100.2" in text
                assert " DONE " in text  # the capture state in the header
        asyncio.run(run())

    def test_failed_tunnel_shows_failed_phase(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S2)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                assert "FAIL AUTH" in screen_text(app)
                assert all(r.failed for r in table(app).view)
        asyncio.run(run())

    def test_80x24_keeps_what_matters(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S5)

        async def run() -> None:
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                keys = [c.key for c in table(app).columns]
                for must in ("diag", "id", "client", "server", "user", "phase", "age", "down", "up"):
                    assert must in keys
                lines = screen_text(app).splitlines()
                assert len(lines) == 24 and all(len(x) <= 80 for x in lines)
                assert any("10.0.0.2" in x and "alice" in x and "CLOSED" in x for x in lines)
        asyncio.run(run())


class TestSortAndFilter:
    def test_sort_key_and_header_click(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S5)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                t = table(app)
                await pilot.press("s")  # next column after '#': client
                assert t.sort_key == "client"
                ips = [r.client_ip for r in t.view]
                assert ips == sorted(ips, key=lambda ip: tuple(int(x) for x in ip.split(".")))
                await pilot.press("r")
                assert t.reverse and [r.client_ip for r in t.view] == ips[::-1]
                # click the "User" title in the header line
                x = sum(c.width + 1 for c in t.columns[: [c.key for c in t.columns].index("user")])
                await pilot.click(TunnelTable, offset=(x + 1, 0))
                assert t.sort_key == "user"
                assert [r.user for r in t.view] == sorted(r.user or "" for r in t.view)
        asyncio.run(run())

    def test_sort_keeps_the_selected_tunnel(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S5)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                t = table(app)
                await pilot.press("down", "down")
                chosen = t.selected
                assert chosen is not None
                await pilot.press("s", "s", "s")
                assert t.selected is not None and t.selected.id == chosen.id
        asyncio.run(run())

    def test_filter_user_failed_and_free_text(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S5)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                t = table(app)
                await pilot.press("slash", *"user=bob", "enter")
                assert {r.user for r in t.view} == {"bob"} and len(t.view) == 2
                assert "filter: user=bob" in screen_text(app)
                await pilot.press("slash", "ctrl+a", "ctrl+k", *"ip=10.0.0.0/24", "enter")
                assert sorted(r.client_ip for r in t.view) == ["10.0.0.2", "10.0.0.3"]
                await pilot.press("slash", "ctrl+a", "ctrl+k", *"failed", "enter")
                assert t.view == []
                assert "no tunnel matches" in screen_text(app)
                await pilot.press("slash", "ctrl+a", "ctrl+k", *"alice", "space", *"lan0", "enter")
                assert [(r.user, r.iface) for r in t.view] == [("alice", "lan0")]  # space separates terms
                assert not app.pipeline.paused.is_set()
                await pilot.press("c")
                assert len(t.view) == 4
        asyncio.run(run())

    def test_bad_filter_is_refused_with_a_sentence(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S5)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                await pilot.press("slash", *"phase=sideways", "enter")
                await pilot.pause()
                assert len(table(app).view) == 4
                assert "phase=sideways is not a phase" in screen_text(app)
                assert app.screen.query_one("#filter").has_class("visible")
                await pilot.press("escape")
                assert not app.screen.query_one("#filter").has_class("visible")
        asyncio.run(run())


class TestNavigation:
    def test_open_tunnel_and_go_back(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S1)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                await pilot.press("enter")
                await pilot.pause()
                assert isinstance(app.screen, TunnelScreen)
                assert app.screen.tunnel_id == table_first(app)
                await pilot.press("escape")
                assert isinstance(app.screen, TunnelsScreen)
                await pilot.press("escape")  # nothing below the main screen: stays
                assert isinstance(app.screen, TunnelsScreen)
        asyncio.run(run())

    def test_double_click_opens(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S1)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                await pilot.click(TunnelTable, offset=(5, 2), times=2)
                await pilot.pause()
                assert isinstance(app.screen, TunnelScreen)
                assert app.screen.tunnel_id == 2
        asyncio.run(run())

    def test_help_lists_every_key_and_closes(self, make_app: Callable[..., PptpTopApp]) -> None:
        from pptptop.ui.keys import KEYS

        app = make_app(S1)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("question_mark")
                await pilot.pause()
                assert isinstance(app.screen, HelpScreen)
                from pptptop.ui.screens.help import help_rows

                listed = {key for _, key, _ in help_rows()}
                for k in KEYS:
                    if k.keys != "ctrl+c":
                        assert (k.label or k.keys) in listed
                assert "Sort back" in screen_text(app)
                await pilot.press("escape")
                assert isinstance(app.screen, TunnelsScreen)
        asyncio.run(run())

    def test_q_quits(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S1)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("q")
                await pilot.pause()
        asyncio.run(run())
        assert app.return_value == 0
        # the refresh timer can fire once more after the last screen is popped (a CI run caught it)
        assert app.screen_stack == []
        app.snapshot()  # what that late tick runs: no ScreenStackError


def table_first(app: PptpTopApp) -> int:
    return int(min(app.pipeline.tracker.tunnels))


class TestSave:
    def test_save_writes_both_legs_as_export_tunnel_does(self, tmp_path: Path) -> None:
        """The save key and ``--export-tunnel ID`` are one exporter: both NAT legs, the same packets."""
        app = wired_app(DATA / S1, save_dir=tmp_path)
        tracker = app.pipeline.tracker
        legs = sorted(tracker.tunnels)
        assert len(legs) == 2  # the session's two NAT legs (wan0 and lan0)

        async def run() -> None:
            async with app.run_test(size=SIZE, notifications=True) as pilot:
                await pilot.pause()
                await pilot.press("w")
                await pilot.pause(0.5)
                assert "saved" in screen_text(app)
        asyncio.run(run())
        [path] = app.saved
        saved = int(path.name.split("-")[1])  # the leg the folded row shows
        assert path.parent == tmp_path and saved in legs and path.suffix == ".pcapng"
        assert path.stat().st_mode & 0o777 == 0o600  # user names and MS-CHAP exchanges: owner only
        expected = sorted({p.number for t in tracker.tunnels.values() for p in t.all_packets()}
                          | {e[0] for t in tracker.tunnels.values() for e in t.data_ring})
        cli = tmp_path / "cli.pcapng"
        assert main(["-r", str(DATA / S1), "--export-tunnel", str(saved), "-w", str(cli)]) == 0
        assert path.read_bytes() == cli.read_bytes()  # byte for byte the file --export-tunnel writes
        if shutil.which("tshark") is None:
            pytest.skip("tshark is not installed (apt-get install tshark)")
        out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name"],
                             capture_output=True, text=True, check=True).stdout.split()
        assert len(out) == len(expected) and set(out) == {"wan0", "lan0"}


class TestThemes:
    def test_t_cycles_themes_and_colours_change(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S2)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                t = table(app)
                dark = t.style_of("phase-failed")
                assert app.theme_spec.name == "dark" and app.theme == "textual-dark"
                await pilot.press("t")
                await pilot.pause()
                assert app.theme_spec.name == "light" and app.theme == "textual-light"
                await pilot.press("t")
                await pilot.pause()
                assert app.theme_spec.name == "contrast"
                contrast = t.style_of("phase-failed")
                assert dark.bgcolor != contrast.bgcolor
                await pilot.press("t")
                assert app.theme_spec.name == "dark"
        asyncio.run(run())

    def test_user_tcss_file_by_path(self, tmp_path: Path, utc: None) -> None:
        from ui_helpers import DATA, replayed_app

        from pptptop.ui.themes import load_theme, themes_dir

        mine = tmp_path / "mine.tcss"
        mine.write_text("/* base: light */\n" + (themes_dir() / "dark.tcss").read_text().replace(
            ".tunnel-table--phase-failed { background: #b02a1f;", ".tunnel-table--phase-failed { background: #123456;"))
        spec = load_theme(str(mine))
        assert spec.base == "textual-light"
        app = replayed_app(DATA / S2)
        app.theme_spec = spec
        app.user_theme = spec

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                style = table(app).style_of("phase-failed")
                assert style.bgcolor is not None and style.bgcolor.triplet is not None
                assert style.bgcolor.triplet.hex == "#123456"
        asyncio.run(run())
