"""Pilot tests of memory bounds in the UI: the header says how many tunnels were evicted, the tunnel the user
is looking at is pinned (evicted last) while its screen is open, and a settled tunnel still shows and saves."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ui_helpers import SIZE, screen_text

from pptptop import sources
from pptptop.bench import generate_storm
from pptptop.pipeline import Pipeline
from pptptop.track.tracker import Limits, Tracker
from pptptop.ui.app import PptpTopApp
from pptptop.ui.screens.tunnel import TunnelScreen
from pptptop.ui.themes import load_theme
from pptptop.ui.widgets.ladder import LadderView

SESSIONS = 60
KEPT = 20


def storm_app(tmp_path: Path) -> PptpTopApp:
    path = tmp_path / "storm.pcap"
    generate_storm(path, SESSIONS, concurrent=10, data=2)
    pipe = Pipeline(sources.open_file(str(path)), Tracker(Limits(max_tunnels=KEPT)))
    app = PptpTopApp(pipe, load_theme("dark"), save_dir=tmp_path)
    pipe.run()
    return app


def test_the_header_counts_the_evicted(tmp_path: Path, utc: None) -> None:
    app = storm_app(tmp_path)
    evicted = app.pipeline.tracker.stats.evicted
    assert evicted >= SESSIONS - KEPT

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert f"evicted {evicted:,}" in screen_text(app)

    asyncio.run(run())


def test_the_open_tunnel_is_pinned_until_its_screen_closes(tmp_path: Path, utc: None) -> None:
    app = storm_app(tmp_path)
    tracker = app.pipeline.tracker
    tid = min(tracker.tunnels)  # the oldest kept: the next to go without the pin

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            app.open_tunnel(tid)
            await pilot.pause()
            assert isinstance(app.screen, TunnelScreen) and tracker.pinned == {tid}
            with app.pipeline.lock:
                tracker._evict(KEPT - 1)
            assert list(tracker.tunnels) == [tid]
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, TunnelScreen) and tracker.pinned == frozenset()

    asyncio.run(run())


def test_a_settled_tunnel_shows_its_ladder_and_saves(tmp_path: Path, utc: None) -> None:
    """A closed tunnel whose packets were packed (Tracker.settle) still draws its ladder from them, its PPP
    frames decoded again, and saves to pcapng."""
    app = storm_app(tmp_path)
    tracker = app.pipeline.tracker
    tid = max(tracker.tunnels)
    before = [(p.number, p.summary) for p in tracker.tunnels[tid].all_packets()]
    tracker.tick(tracker.now + tracker.limits.settle_after)
    assert tracker.tunnels[tid].packed is not None

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            app.open_tunnel(tid)
            await pilot.pause()
            ladder = app.screen.query_one(LadderView)
            assert [(e.packet.number, e.packet.summary) for e in ladder.entries] == before
            assert any(e.label.startswith("LCP ConfReq") for e in ladder.entries)
            path = app.save_tunnel(tid)
            assert path is not None and path.stat().st_size > 0

    asyncio.run(run())
