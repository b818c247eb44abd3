"""Pilot tests of the NAT, events and help screens, the command palette and pausing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ui_helpers import SIZE, screen_text

from pptptop.track.notes import NatEndpoint, NatNote
from pptptop.ui.app import PptpTopApp
from pptptop.ui.screens.events import EventsScreen
from pptptop.ui.screens.nat import NatScreen
from pptptop.ui.screens.tunnel import TunnelScreen
from pptptop.ui.widgets.event_log import EventLog
from pptptop.ui.widgets.nat_table import NatTable, nat_cells

S5 = "s5-two-clients-same-nat-both.pcapng"
S3 = "s3-gre-blocked-both.pcapng"


class TestNat:
    def test_table_from_each_leg(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S5)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("n")
                await pilot.pause()
                assert isinstance(app.screen, NatScreen)
                rows = [nat_cells(r) for r in app.screen.query_one(NatTable).rows]
                inside = {(r[2], r[4]) for r in rows if r[1] == "lan0"}
                # the lab README: inside PNS call IDs are random per run; outside they are the NATed ports
                assert {ip for ip, _ in inside} == {"10.0.0.2", "10.0.0.3"}
                outside = [r for r in rows if r[1] == "wan0"]
                assert all(r[2] == "198.51.100.1" and r[3] == r[4] for r in outside)
                assert all(r[8] == "198.51.100.2" and r[9] == "1723" for r in rows)
        asyncio.run(run())

    def test_correlated_legs_fill_the_public_columns(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S5)
        tr = app.pipeline.tracker
        inside = next(t for t in tr.tunnels.values() if t.client.ip == "10.0.0.2")
        outside = next(t for t in tr.tunnels.values() if t.iface == "wan0" and t.client.port == inside.client.port)
        nat = NatNote("inside", outside.id, NatEndpoint(inside.client.ip, inside.client.port, inside.client.call_id),
                      NatEndpoint(outside.client.ip, outside.client.port, outside.client.call_id),
                      NatEndpoint(inside.server.ip, inside.server.port, inside.server.call_id))
        with app.pipeline.lock:
            inside.nat = nat
            inside.changed = True

        async def run() -> None:
            async with app.run_test(size=(160, 36)) as pilot:  # the column comes after the Verdict's and rates
                await pilot.pause()
                assert "NAT public" in screen_text(app)  # the column appears once a NAT is known
                await pilot.press("n")
                await pilot.pause()
                nat = app.screen.query_one(NatTable)
                index = next(i for i, r in enumerate(nat.rows) if r.id == inside.id)
                row = nat_cells(nat.rows[index])
                assert row[2:8] == [inside.client.ip, str(inside.client.port), str(inside.client.call_id),
                                    "198.51.100.1", str(outside.client.port), str(outside.client.call_id)]
                nat.move_cursor(index)
                await pilot.press("enter")
                await pilot.pause()
                assert isinstance(app.screen, TunnelScreen)
                assert "NAT 198.51.100.1" in screen_text(app)  # the ladder's middle column
        asyncio.run(run())


class TestEvents:
    def test_log_lists_phases_and_failures_and_follows(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S3)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("e")
                await pilot.pause()
                assert isinstance(app.screen, EventsScreen)
                log = app.screen.query_one(EventLog)
                texts = [e.text for e in log.lines]
                assert any(t.startswith("new tunnel") for t in texts)
                assert any(t.startswith("phase LCP") for t in texts)
                assert any(t.startswith("failed in LCP") for t in texts)
                assert log.cursor == len(log.lines) - 1  # following the newest
                assert "failed in LCP" in screen_text(app)
                await pilot.press("home", "enter")
                await pilot.pause()
                assert isinstance(app.screen, TunnelScreen)
        asyncio.run(run())

    def test_the_log_is_capped(self) -> None:
        from pptptop.track.events import Event, EventKind
        from pptptop.view.eventfeed import EventFeed

        feed = EventFeed(cap=10)
        for i in range(25):
            feed(Event(float(i), EventKind.TCP, None, i, detail={"flags": "TCP SYN"}))
            feed(Event(float(i), EventKind.TICK, None))  # never logged
        assert feed.drain() == 10 and len(feed.log) == 10  # the inbox is capped too
        assert [e.frame for e in feed.log] == list(range(15, 25))


class TestPaletteAndPause:
    def test_palette_offers_the_actions(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S5)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                titles = [c.title for c in app.get_system_commands(app.screen)]
                for want in ("Filter (/)", "Save pcap (w)", "NAT (n)", "Events (e)", "Theme (t)"):
                    assert want in titles
                cmd = next(c for c in app.get_system_commands(app.screen) if c.title == "Events (e)")
                cmd.callback()
                await pilot.pause()
                assert isinstance(app.screen, EventsScreen)
        asyncio.run(run())

    def test_pause_is_refused_at_max_speed(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S5)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("space")
                assert not app.pipeline.paused.is_set()
        asyncio.run(run())
