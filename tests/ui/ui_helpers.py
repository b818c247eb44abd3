"""Helpers for the UI tests: an app over a capture already run through the engine, and screen text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pptptop import sources
from pptptop.pipeline import Pipeline
from pptptop.track.tracker import Tracker
from pptptop.ui.app import PptpTopApp

DATA = Path(__file__).parent.parent / "data"
SIZE = (120, 36)


def replayed_app(path: Path | str, save_dir: Path | None = None, theme: str = "dark") -> PptpTopApp:
    """An app whose pipeline has already read the whole capture (as `-r FILE --speed max` ends up)."""
    from pptptop.ui.themes import load_theme

    pipe = Pipeline(sources.open_file(str(path)), Tracker())
    app = PptpTopApp(pipe, load_theme(theme), save_dir=save_dir)  # subscribes to events before the run
    pipe.run()
    return app


def wired_app(path: Path | str, save_dir: Path | None = None, speed: float | None = None,
              run: bool = True) -> PptpTopApp:
    """An app over a capture as the ``pptptop`` command wires it: NAT correlation (so the two legs of a
    session fold into one row) and the diagnosis (findings) before the tracker's other subscribers."""
    from pptptop import diagnose
    from pptptop.track import nat
    from pptptop.ui.themes import load_theme

    tracker = Tracker()
    nat.attach(tracker)
    diagnose.Diagnoser().attach(tracker)
    pipe = Pipeline(sources.open_file(str(path)), tracker, speed=speed)
    app = PptpTopApp(pipe, load_theme("dark"), save_dir=save_dir, start_capture=not run)
    if run:
        pipe.run()
    return app


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain text (one line per row), from the compositor."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)
