"""Pilot tests of the tunnel screen: ladder, summary, transcript, packets tab, diagnosis, save."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.widgets import Static, TabbedContent
from ui_helpers import SIZE, screen_text

from pptptop.track.model import PacketKind
from pptptop.track.notes import Finding, Severity
from pptptop.ui.app import PptpTopApp
from pptptop.ui.screens.packet import PacketScreen
from pptptop.ui.screens.tunnel import TunnelScreen
from pptptop.ui.widgets.ladder import LadderView
from pptptop.ui.widgets.packet_list import PacketList
from pptptop.view.ladder_model import Lane

S1 = "s1-mschapv2-mppe128-inside.pcap"
S2 = "s2-mschapv2-wrong-password-inside.pcap"


def static_text(app: PptpTopApp, wid: str) -> str:
    return str(app.screen.query_one(wid, Static).render())


class TestLadder:
    def test_one_arrow_per_stored_packet_in_order(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S1)
        t = app.pipeline.tracker.tunnels[1]

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                app.open_tunnel(1)
                await pilot.pause()
                ladder = app.screen.query_one(LadderView)
                assert [e.packet.number for e in ladder.entries] == [p.number for p in t.all_packets()]
                text = screen_text(app)
                assert "client 10.0.0.2" in text and "server 198.51.100.2" in text
                assert "Start-Control-Connection-Request" in text
                assert "▶│" in text and "│◀" in text
                # arrows go the way the packets went
                first = ladder.entries[0]
                assert (first.src, first.dst) == (Lane.CLIENT, Lane.SERVER)
        asyncio.run(run())

    def test_failures_are_marked_bad(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S2)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                app.open_tunnel(1)
                await pilot.pause()
                ladder = app.screen.query_one(LadderView)
                bad = [e.label for e in ladder.entries if e.verdict == "bad"]
                assert any(x.startswith("CHAP Failure") for x in bad)
                assert any(x.startswith("LCP TermReq") for x in bad)
                assert not any(x.startswith("LCP ConfReq") for x in bad)
                row = next(i for i, e in enumerate(ladder.entries) if e.label.startswith("CHAP Failure"))
                ladder.move_cursor(row)
                await pilot.pause()
                detail = str(app.screen.query_one("#arrow", Static).render())
                assert "server → client" in detail and "M=Access denied" in detail  # the whole label
                line = ladder.render_row(row, 100, False)
                assert any(span.style == ladder.style_of("bad") for span in line.spans)
        asyncio.run(run())

    def test_enter_opens_the_packet_and_escape_returns(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S2)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("enter")
                await pilot.pause()
                assert isinstance(app.screen, TunnelScreen)
                await pilot.press("down", "down", "enter")
                await pilot.pause()
                assert isinstance(app.screen, PacketScreen)
                assert "Start-Control-Connection-Request" in screen_text(app)
                await pilot.press("escape")
                assert isinstance(app.screen, TunnelScreen)
                await pilot.press("escape")
                assert not isinstance(app.screen, TunnelScreen)
        asyncio.run(run())

    def test_diagnosis_findings_are_shown_and_evidence_marked(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S2)
        t = app.pipeline.tracker.tunnels[1]
        failure = next(p.number for p in t.all_packets() if p.summary.startswith("[CHAP Failure"))
        finding = Finding(code="auth_failed", severity=Severity.ERROR, title="Wrong user name or password",
                          detail="The server answered CHAP Failure E=691.", evidence=[failure],
                          windows_error=691, hint="Check the password in chap-secrets.")
        with app.pipeline.lock:
            t.findings = (finding,)
            t.changed = True

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                assert any("✗" in line and "bob" in line for line in screen_text(app).splitlines())
                app.open_tunnel(1)
                await pilot.pause()
                ladder = app.screen.query_one(LadderView)
                marked = [e.packet.number for e in ladder.entries if e.evidence]
                assert marked == [failure]
                await pilot.press("2")
                await pilot.pause()
                text = screen_text(app)
                assert "Wrong user name or password" in text
                assert "Windows client shows: 691" in text
                assert "fix: Check the password in chap-secrets." in text
        asyncio.run(run())


class TestTabs:
    def test_summary_has_phases_negotiation_and_end(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S1)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                app.open_tunnel(1)
                await pilot.pause()
                await pilot.press("2")
                assert app.screen.query_one(TabbedContent).active == "summary"
                text = static_text(app, "#summary-text")
                for phase in ("TCP", "CTRL", "CALL", "LCP", "AUTH", "NCP", "DATA"):
                    assert f"✓ {phase}" in text
                assert 'MS-CHAPv2 user "alice"' in text and '"Access granted"' in text
                assert "client 192.0.2.10  server 192.0.2.1" in text
                assert "128-bit stateless" in text
                assert "lcp-terminate" in text and '"MPPE disabled"' in text
                assert "12/12 answered" in text  # LCP echo
                ladder = app.screen.query_one(LadderView)
                for name in ("timeline--ok", "tunnel-text--chart", "tunnel-table--phase-closed"):
                    st = ladder.style_of(name)
                    assert st.color is not None or st.bgcolor is not None, name  # resolved from the theme
        asyncio.run(run())

    def test_transcript_in_pppd_style_from_either_side(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S1)
        t = app.pipeline.tracker.tunnels[1]
        first_ppp = next(p for p in t.all_packets() if p.kind is PacketKind.PPP)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                app.open_tunnel(1)
                await pilot.pause()
                await pilot.press("4")
                text = static_text(app, "#transcript-text")
                assert "as the server would write it" in text
                # the client sent the first LCP ConfReq: the server received it
                assert f"rcvd {first_ppp.summary}" in text
                await pilot.press("v")
                text = static_text(app, "#transcript-text")
                assert "as the client would write it" in text and f"sent {first_ppp.summary}" in text
        asyncio.run(run())

    def test_packets_tab_lists_data_frames_too(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S1)
        t = app.pipeline.tracker.tunnels[1]
        expected = sorted({p.number for p in t.all_packets()} | {e[0] for e in t.data_ring})

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                app.open_tunnel(1)
                await pilot.pause()
                await pilot.press("5")
                plist = app.screen.query_one(PacketList)
                assert [p.number for p in plist.packets] == expected
                assert plist.has_focus
                data_index = next(i for i, p in enumerate(plist.packets) if p.kind is PacketKind.DATA)
                plist.move_cursor(data_index)
                await pilot.press("enter")
                await pilot.pause()
                assert isinstance(app.screen, PacketScreen)
                root = app.screen.root
                assert root is not None and root.find("MPPE/MPPC header") is not None
        asyncio.run(run())

    def test_traffic_tab_charts_both_directions(self, make_app: Callable[..., PptpTopApp]) -> None:
        app = make_app(S1)

        async def run() -> None:
            async with app.run_test(size=SIZE) as pilot:
                app.open_tunnel(1)
                await pilot.pause()
                await pilot.press("3")
                text = static_text(app, "#traffic-text")
                assert "down (server → client)" in text and "up (client → server)" in text
                assert any(ch in text for ch in "▁▂▃▄▅▆▇█")
        asyncio.run(run())
