"""What every pptptop screen shares: the capture header on top, the footer below, and a snapshot hook."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

from pptptop.ui.widgets.capture_header import CaptureHeader

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

    def on_mount(self) -> None:
        self.ready = True
        self.update_header()
        self.on_snapshot(True)

    def on_screen_resume(self) -> None:
        if self.ready:
            self.update_header()
            self.on_snapshot(True)
