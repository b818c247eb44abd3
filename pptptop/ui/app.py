"""The Textual application: capture thread, ≤10 Hz snapshots, screens, themes, keys.

The capture (source → decode → track) runs in its own thread through
:class:`~pptptop.pipeline.Pipeline`; the UI thread never waits for it. A timer
takes a snapshot under ``pipeline.lock`` (only the tunnels whose changed flag
is set) and hands it to the screen on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.errors import StylesheetError
from textual.css.query import NoMatches
from textual.css.stylesheet import Stylesheet
from textual.css.tokenizer import TokenError
from textual.screen import Screen

from pptptop.exitcodes import EXIT_BAD_INPUT, EXIT_OK, EXIT_SOFTWARE, EXIT_USAGE
from pptptop.pipeline import Pipeline, tune_gc
from pptptop.record.export import gather, save_path, write_export
from pptptop.record.writers import RecordError
from pptptop.track.model import Packet
from pptptop.ui.format import wire
from pptptop.ui.keys import KEYS
from pptptop.ui.screens.base import PptpScreen
from pptptop.ui.screens.tunnels import TunnelsScreen
from pptptop.ui.themes import CONTRAST_THEME, ThemeError, ThemeSpec, load_theme, next_theme
from pptptop.ui.widgets.capture_header import recording_label
from pptptop.view.eventfeed import EventFeed
from pptptop.view.snapshot import TunnelStore, detail_of

if TYPE_CHECKING:
    from pptptop.record.session import RecordingStatus
    from pptptop.ui.widgets.probe_steps import StepFeed

REFRESH_INTERVAL = 0.1  # seconds: at most ten snapshots a second
#: seconds the UI has to leave after SIGTERM or SIGHUP before the signal's default action ends the process
SIGNAL_GRACE = 2.0
THEME_SOURCE = ("pptptop-theme", "")


def _app_bindings() -> list[BindingType]:
    out: list[BindingType] = []
    for k in KEYS:
        if k.scope == "global":
            out.append(
                Binding(
                    k.keys,
                    k.action.removeprefix("app."),
                    k.description,
                    show=k.show,
                    priority=k.keys == "ctrl+c",
                )
            )
    return out


class PptpTopApp(App[int]):
    """pptptop's terminal UI over one :class:`Pipeline`."""

    TITLE = "pptptop"
    BINDINGS: ClassVar[list[BindingType]] = _app_bindings()
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        pipeline: Pipeline,
        theme: ThemeSpec | None = None,
        *,
        start_capture: bool = True,
        refresh_interval: float = REFRESH_INTERVAL,
        save_dir: Path | None = None,
        recording: Callable[[], object] | None = None,
        read_only: str | None = None,
    ) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.store = TunnelStore()
        self.feed = EventFeed()
        self.feed.attach(pipeline.tracker)
        self.theme_spec = theme or load_theme("dark")
        self.user_theme = (
            self.theme_spec if self.theme_spec.name not in ("dark", "light", "contrast") else None
        )
        self.start_capture = start_capture
        self.refresh_interval = refresh_interval
        self.save_dir = save_dir
        self.recording: str | None = None
        self.recording_status = recording  # RecordingSession.status, read once a second
        self._recording_at = 0.0
        self.capture_thread: threading.Thread | None = None
        self.saved: list[Path] = []
        self.notes: list[str] = []  # said once the screen is up (e.g. why root was kept)
        self.probe: StepFeed | None = None  # pptptop --probe HOST: its steps, shown under every screen
        self.left = threading.Event()  # run() has returned: a signal's deadline no longer applies
        #: attached to another pptptop's capture (--attach): why pausing and saving are off, said when tried
        self.read_only = read_only

    # ---------------------------------------------------------------- lifecycle
    def get_default_screen(self) -> Screen[Any]:
        return TunnelsScreen()

    def on_mount(self) -> None:
        self._trap_signals()
        self.register_theme(CONTRAST_THEME)
        self.apply_theme(self.theme_spec)
        if self.start_capture and not self.pipeline.done.is_set():
            self.capture_thread = threading.Thread(
                target=self.pipeline.run, name="pptptop-capture", daemon=True
            )
            self.capture_thread.start()
        self.snapshot()
        self.set_interval(self.refresh_interval, self.snapshot)
        for note in self.notes:
            self.notify(note, severity="warning", timeout=15, markup=False)
        if self.read_only:
            self.notify(self.read_only, title="Read-only", timeout=8, markup=False)

    def _trap_signals(self) -> None:
        """SIGHUP (the terminal went away) and SIGTERM end the UI in every state.

        After whatever the CLI set up for them (the recordings are closed at
        once), the app is asked to leave. The handler runs in the main thread
        even while the event loop is stuck: a terminal that is gone or no
        longer read leaves Textual waiting to write to it. So the signal gets
        its default action back, for a second one, and if the app has not left
        within :data:`SIGNAL_GRACE` seconds the signal is sent again and ends
        the process.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        signals = (signal.SIGHUP, signal.SIGTERM)
        for sig in signals:
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: FrameType | None, previous: object = previous) -> None:
                for s in signals:
                    signal.signal(s, signal.SIG_DFL)
                if callable(previous):
                    previous(signum, frame)
                self.pipeline.stop()
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    loop.call_soon_threadsafe(self.exit, EXIT_OK)
                threading.Thread(target=self._deadline, args=(signum,), name="pptptop-deadline",
                                 daemon=True).start()

            signal.signal(sig, handler)

    def _deadline(self, signum: int) -> None:
        if not self.left.wait(SIGNAL_GRACE):
            os.kill(os.getpid(), signum)  # its default action now: the process ends

    def on_unmount(self) -> None:
        self.stop_capture()

    def stop_capture(self) -> None:
        self.pipeline.stop()
        if self.capture_thread is not None:
            self.capture_thread.join(timeout=2.0)

    def snapshot(self) -> None:
        """Copy what changed (under the lock) and let the screen on top redraw from it."""
        changed = self.store.refresh(self.pipeline)
        self.feed.drain()
        self._poll_recording()
        if not self.screen_stack:
            return  # quitting: the screens are gone and the timer has one more tick to run
        screen = self.screen
        if isinstance(screen, PptpScreen) and screen.ready:
            try:
                screen.update_header()
                screen.on_snapshot(changed)
            except NoMatches:
                pass  # the screen is being torn down (quit or pop) between two ticks

    def _poll_recording(self) -> None:
        if self.recording_status is None or time.monotonic() - self._recording_at < 1.0:
            return
        self._recording_at = time.monotonic()
        try:
            self.recording = recording_label(self.recording_status())
        except Exception as e:
            self.recording = f"ERROR {e}"

    # ---------------------------------------------------------------- navigation
    def open_tunnel(self, tunnel_id: int) -> None:
        from pptptop.ui.screens.tunnel import TunnelScreen

        if detail_of(self.pipeline, tunnel_id) is None:
            self.notify(f"tunnel {tunnel_id} is no longer in memory", severity="warning")
            return
        self.push_screen(TunnelScreen(tunnel_id))

    def open_packet(self, packets: list[Packet], index: int, evidence: frozenset[int] = frozenset(),
                    inner: Mapping[int, bytes] | None = None) -> None:
        """``inner``: frame number → the inner datagram decrypted from it, shown beside the frame."""
        from pptptop.ui.screens.packet import PacketScreen

        self.push_screen(PacketScreen(packets, index, evidence, inner))

    def save_tunnel(self, tunnel_id: int) -> Path | None:
        """Write the tunnel's kept packets, both NAT legs, to pcapng (as ``--export-tunnel``) and say where.

        Off when attached (:attr:`read_only`): the file would be written on the service's machine, by the
        service's user, from a browser."""
        if self.read_only:
            self.notify(self.read_only, title="Read-only", severity="warning", markup=False)
            return None
        with self.pipeline.lock:  # copied under the lock, written without it
            t = self.pipeline.tracker.tunnels.get(tunnel_id)
            export = None if t is None else gather([t], self.pipeline.tracker)
        if export is None:
            self.notify(f"tunnel {tunnel_id} is no longer in memory", severity="warning")
            return None
        path = save_path(tunnel_id, self.save_dir)
        try:  # 0600, never through a planted symlink: the file holds user names and MS-CHAP exchanges
            count = write_export(export, path, replace=False)
        except RecordError as e:
            self.notify(f"could not save tunnel {tunnel_id}: {e}", severity="error", markup=False)
            return None
        self.saved.append(path)
        self.notify(
            f"saved {count} packets of tunnel {tunnel_id} to {path}", title="Save", markup=False, timeout=8
        )
        return path

    # ---------------------------------------------------------------- actions
    async def action_back(self) -> None:
        screen = self.screen
        if isinstance(screen, PptpScreen) and screen.back():
            return
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_help(self) -> None:
        from pptptop.ui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_events(self) -> None:
        from pptptop.ui.screens.events import EventsScreen

        if not isinstance(self.screen, EventsScreen):
            self.push_screen(EventsScreen())

    def action_nat(self) -> None:
        from pptptop.ui.screens.nat import NatScreen

        if not isinstance(self.screen, NatScreen):
            self.push_screen(NatScreen())

    def action_pause(self) -> None:
        p = self.pipeline
        if self.read_only:
            self.notify(self.read_only, title="Read-only", severity="warning", markup=False)
            return
        if p.source.live or not p.speed:
            self.notify("pause works when replaying at a set speed (--speed 1 or 10)", severity="warning")
            return
        if p.paused.is_set():
            p.paused.clear()
        else:
            p.paused.set()
        self.snapshot()

    def action_cycle_theme(self) -> None:
        current = (
            self.theme_spec.name
            if self.user_theme is None or self.theme_spec is not self.user_theme
            else str(self.user_theme.path)
        )
        name = next_theme(current, self.user_theme)
        try:
            spec = (
                self.user_theme
                if self.user_theme is not None and name == str(self.user_theme.path)
                else load_theme(name)
            )
            assert spec is not None
            self.apply_theme(spec)
        except (ThemeError, StylesheetError) as e:
            self.notify(str(e), severity="error", markup=False)
            return
        self.notify(f"theme: {spec.name}", timeout=2, markup=False)

    async def action_quit(self) -> None:
        self.stop_capture()
        self.exit(EXIT_OK)

    # ---------------------------------------------------------------- themes
    def apply_theme(self, spec: ThemeSpec) -> None:
        """Swap the theme's CSS in the stylesheet and switch the base palette."""
        self.stylesheet.add_source(spec.css, read_from=THEME_SOURCE)
        self.theme_spec = spec
        if self.theme != spec.base:
            self.theme = spec.base  # refreshes the CSS
        else:
            self.refresh_css()

    # ---------------------------------------------------------------- command palette
    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        scope = getattr(screen, "KEY_SCOPE", "")
        seen: set[str] = set()
        for k in KEYS:
            if not k.palette or k.action in seen or k.scope not in ("global", scope):
                continue
            seen.add(k.action)
            yield SystemCommand(
                f"{k.description} ({k.label or k.keys})",
                f"pptptop: {k.description.lower()}",
                self._palette_callback(k.action),
            )

    def _palette_callback(self, action: str) -> _Run:
        return _Run(self, action)


class _Run:
    """A command-palette callback that runs an action string on the screen or the app."""

    def __init__(self, app: PptpTopApp, action: str) -> None:
        self.app = app
        self.action = action

    def __call__(self) -> None:
        target = self.action.removeprefix("app.").removeprefix("screen.")
        if self.action.startswith("screen."):
            self.app.call_later(self.app.screen.run_action, target)
        else:
            self.app.call_later(self.app.run_action, target)


def check_theme(spec: ThemeSpec) -> None:
    """Parse a theme before the terminal is taken over; raises ThemeError with one sentence."""
    sheet = Stylesheet(variables=App().get_css_variables())
    sheet.add_source(spec.css, read_from=(str(spec.path), ""))
    try:
        sheet.parse()
    except StylesheetError:
        raise ThemeError(f"theme file {spec.path} is not valid Textual CSS") from None
    except TokenError as e:  # a syntax error (UnexpectedEnd is one too)
        line = e.start[0] if e.start else 0
        reason = wire(str(e).split(";")[0].rstrip("."), 120)
        raise ThemeError(f"theme file {spec.path} is not valid Textual CSS: line {line}: {reason}") from None


@dataclass(frozen=True, slots=True)
class UiOptions:
    """What the CLI hands the UI besides the pipeline."""

    theme: str = "dark"  # a built-in name or a .tcss file
    recording: Callable[[], RecordingStatus] | None = None  # the header's recording and capture health
    notes: tuple[str, ...] = ()  # sentences said on stderr at start, shown in the UI too
    probe: StepFeed | None = None  # pptptop --probe HOST: the steps of the probe running beside the capture
    read_only: str | None = None  # attached to another pptptop's capture: why pausing and saving are off


def run_ui(pipeline: Pipeline, options: UiOptions) -> int:
    """Run the UI over ``pipeline`` until the user quits; the exit status for the CLI."""
    try:
        spec = load_theme(options.theme or "dark")
        check_theme(spec)
    except ThemeError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_USAGE
    tune_gc()
    app = PptpTopApp(pipeline, spec, recording=options.recording, read_only=options.read_only)
    app.notes = list(options.notes)
    app.probe = options.probe
    try:
        code = app.run()
    finally:
        app.left.set()
    app.stop_capture()
    crash = pipeline.crash
    if crash is not None:
        traceback.print_exception(crash)
        print("pptptop: internal error (a bug): please report it with the traceback above", file=sys.stderr)
        return EXIT_SOFTWARE
    if pipeline.error is not None:
        print(f"pptptop: {pipeline.error} (everything before it was read)", file=sys.stderr)
        return EXIT_BAD_INPUT
    return code if isinstance(code, int) else EXIT_OK
