"""What every pptptop screen shares: the capture header on top, the footer below, and a snapshot hook."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen
from textual.widgets import Footer

from pptptop.ui.widgets.capture_header import CaptureHeader
from pptptop.ui.widgets.probe_steps import ProbeSteps

if TYPE_CHECKING:
    from pptptop.ui.app import PptpTopApp


class PptpScreen(Screen[None]):
    """A screen that the app calls :meth:`on_snapshot` on after each refresh (≤10 Hz)."""

    ready = False  # composed and mounted: safe to query its widgets

    @property
    def pptp(self) -> PptpTopApp:
        return cast("PptpTopApp", self.app)

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
