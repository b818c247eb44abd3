"""What every pptptop screen shares: the capture header on top, the footer below, and a snapshot hook."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, cast

from textual.screen import Screen
from textual.widgets import Footer

from pptptop.pipeline import Pipeline
from pptptop.track.model import Packet
from pptptop.ui.widgets.capture_header import CaptureHeader
from pptptop.ui.widgets.probe_steps import ProbeSteps, StepFeed
from pptptop.view.eventfeed import EventFeed
from pptptop.view.snapshot import TunnelStore


class ScreenHost(Protocol):
    """What a screen asks of the app it runs in (``ui.app.PptpTopApp`` implements it): the screens never
    import the app, which imports them."""

    pipeline: Pipeline
    store: TunnelStore
    feed: EventFeed
    recording: str | None
    probe: StepFeed | None  # pptptop --probe HOST: the probe's steps, shown under every screen

    def open_tunnel(self, tunnel_id: int) -> None:
        """Push the tunnel's screen."""

    def open_packet(self, packets: list[Packet], index: int, evidence: frozenset[int] = frozenset(),
                    inner: Mapping[int, bytes] | None = None) -> None:
        """Push the packet screen on ``packets[index]``."""

    def save_tunnel(self, tunnel_id: int) -> Path | None:
        """Write the tunnel's kept packets to pcapng and say where."""


class PptpScreen(Screen[None]):
    """A screen that the app calls :meth:`on_snapshot` on after each refresh (≤10 Hz)."""

    ready = False  # composed and mounted: safe to query its widgets

    @property
    def pptp(self) -> ScreenHost:
        return cast("ScreenHost", self.app)

    def on_snapshot(self, changed: bool) -> None:
        """The app took a new snapshot; ``changed`` says whether any tunnel changed."""

    def back(self) -> bool:
        """Esc: undo something local (close a filter box) and return True, or False to leave the screen."""
        return False

    def update_header(self) -> None:
        for h in self.query(CaptureHeader):
            h.show(self.pptp.store.capture, self.pptp.recording)
        for p in self.query(ProbeSteps):
            p.show()

    def on_mount(self) -> None:
        feed = self.pptp.probe
        if feed is not None:  # pptptop --probe HOST in the UI: its steps above the footer of every screen
            footer = self.query(Footer)
            self.mount(ProbeSteps(feed, id="probe-steps"), before=footer.first() if footer else None)
        self.ready = True
        self.update_header()
        self.on_snapshot(True)

    def on_screen_resume(self) -> None:
        if self.ready:
            self.update_header()
            self.on_snapshot(True)
