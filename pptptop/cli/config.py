"""The run configuration: the parsed options, checked and resolved once, as one frozen dataclass.

:func:`configure` turns argparse's Namespace into a :class:`RunConfig` or
raises :class:`Refusal` (a sentence and an exit status, printed by the CLI).
Later steps that learn something (``--conntrack`` and a live UI that must
stay root keep the privileges) make a changed copy with
:func:`dataclasses.replace`; nothing writes into the Namespace.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pptptop import privdrop
from pptptop.cli.validators import ignored_options, usage_problem
from pptptop.diagnose import options as diagopts
from pptptop.diagnose.config import DiagnosisConfig
from pptptop.exitcodes import EXIT_NO_INPUT, EXIT_USAGE
from pptptop.export import service
from pptptop.privdrop import PrivDropError
from pptptop.record.session import RecordingOptions
from pptptop.serve import ServeOptions
from pptptop.serve import options as serveopts
from pptptop.view.filtering import FilterError as RowFilterError
from pptptop.view.filtering import RowFilter, parse_filter


class Refusal(Exception):
    """The run cannot go on: one sentence for the user (printed after ``pptptop: ``) and the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class RunConfig:
    """What one run of ``pptptop`` was asked to do."""

    files: tuple[str, ...]  # -r FILE..., or the demo capture
    interfaces: tuple[str, ...]
    demo: bool
    bpf_filter: str | None
    count: int | None
    buffer_size: int | None  # KiB
    queue: int | None  # MiB
    json: bool
    report: bool
    headless: bool  # no UI: --json, --report, --export-tunnel, --export-hashes or --headless
    speed: float  # the UI's pacing; 0.0: as fast as the file can be read
    theme: str
    max_tunnels: int
    idle_timeout: float
    conntrack: bool
    export_tunnel: str | None
    export_match: RowFilter | None  # --export-tunnel FILTER, parsed; None for an ID
    export_hashes: str | None
    show_secrets: bool
    diagnosis: DiagnosisConfig
    recording: RecordingOptions
    attach: str | None = None  # --attach SOCKET: the frames of a running pptptop
    serving: ServeOptions | None = None  # --serve, --ui-socket: this run's frames offered to other views

    @property
    def serves_browser(self) -> bool:
        """``--serve``: headless, but textual-serve starts a UI process (``--attach``) per browser session."""
        return self.serving is not None and self.serving.serve is not None

    @property
    def paced(self) -> bool:
        """Whether ``--speed`` paces the capture: for the UI, and for the views a service offers."""
        return not self.headless or self.serving is not None

    @property
    def live(self) -> bool:
        return not self.files and self.attach is None

    @property
    def write(self) -> str | None:
        return self.recording.write

    @property
    def drop_user(self) -> str | None:
        return self.recording.drop_user

    def keeping_root(self) -> RunConfig:
        """The same run with ``--no-drop-privileges``: root with only CAP_NET_RAW and CAP_NET_ADMIN."""
        return dataclasses.replace(self, recording=dataclasses.replace(self.recording, no_drop_privileges=True))


def demo_path() -> Path:
    return Path(str(resources.files("pptptop") / "data" / "demo.pcapng"))


def _headless(args: argparse.Namespace) -> bool:
    return bool(args.json or args.report or args.export_tunnel is not None or args.export_hashes is not None
                or args.headless or args.serve is not None)


def check(args: argparse.Namespace) -> list[str]:
    """Options that cannot go together raise :class:`Refusal` (exit 64); the warnings to print otherwise."""
    problem = usage_problem(args) or service.usage_error(args) or serveopts.usage_error(args)
    if problem:
        raise Refusal(problem, EXIT_USAGE)
    return ignored_options(args, _headless(args))


def configure(args: argparse.Namespace) -> RunConfig:
    """The configuration of options that passed :func:`check`; raises :class:`Refusal` (exit 64)."""
    headless = _headless(args)
    try:  # a bad filter is refused before its file is created
        match = _export_filter(args.export_tunnel)
    except RowFilterError as e:
        raise Refusal(f"--export-tunnel: {e}", EXIT_USAGE) from None
    files = [str(demo_path())] if args.demo else list(args.read)
    try:
        serving = serveopts.serving(args, args.theme or "dark")
    except serveopts.TokenError as e:
        raise Refusal(str(e), EXIT_NO_INPUT) from None
    cfg = RunConfig(
        files=tuple(files), interfaces=(*args.interfaces, *args.iface_opt), demo=bool(args.demo),
        bpf_filter=args.filter or None, count=args.count, buffer_size=args.buffer_size, queue=args.queue,
        json=bool(args.json), report=bool(args.report), headless=headless,
        speed=args.speed if args.speed is not None else (1.0 if args.demo else 0.0),
        theme=args.theme or "dark", max_tunnels=args.max_tunnels, idle_timeout=args.idle_timeout,
        conntrack=bool(args.conntrack), export_tunnel=args.export_tunnel, export_match=match,
        export_hashes=args.export_hashes, show_secrets=bool(args.show_secrets),
        diagnosis=diagopts.config(args), recording=RecordingOptions.from_args(args), attach=args.attach,
        serving=serving)
    return cfg


def _export_filter(selector: str | None) -> RowFilter | None:
    """``--export-tunnel FILTER`` parsed now; None for a tunnel ID (digits), selected by ID."""
    if selector is None or selector.strip().isdigit():
        return None
    return parse_filter(selector)


def check_ui(cfg: RunConfig) -> None:
    """Before anything is opened for the UI: its theme loads, and it can have the terminal. Raises Refusal."""
    problem = _check_theme(cfg.theme) or take_terminal(cfg)
    if problem:
        raise Refusal(problem, EXIT_USAGE)


def _check_theme(theme: str) -> str | None:
    """A theme that cannot be loaded or parsed, in one sentence, before anything else is opened."""
    from pptptop.ui.app import check_theme
    from pptptop.ui.themes import ThemeError, load_theme

    try:
        check_theme(load_theme(theme))
    except ThemeError as e:
        return str(e)
    return None


def take_terminal(cfg: RunConfig) -> str | None:
    """Give the UI the terminal's keys on standard input, as ``less`` does; a sentence when it cannot.

    The UI reads keys from file descriptor 0. When that is not a terminal (``cat FILE | pptptop -r -``),
    the controlling terminal (``/dev/tty``) takes its place, and a capture read from standard input
    (``-r -``) reads the original from another descriptor. A UI started in the background (``&``,
    ``timeout`` without ``--foreground``) would be stopped by the terminal at its first write: refused.
    """
    if os.environ.get("TEXTUAL_DRIVER", "").startswith("textual.drivers.web_driver"):
        return None  # a session of --serve: textual-serve relays the browser's keys and screen
    if not os.isatty(0):
        try:
            tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            return "the UI reads its keys from a terminal, and there is none here: use --json or --report"
        if "-" in cfg.files:
            capture = os.dup(0)
            sys.stdin = os.fdopen(capture, "r", closefd=True)  # open_file("-") reads sys.stdin's descriptor
        os.dup2(tty, 0)
        os.close(tty)
    try:
        foreground = os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        foreground = True  # a terminal that is not ours to ask: let the UI try
    if not foreground:
        return ("the UI needs the terminal, but pptptop was started in the background (with & or by timeout "
                "without --foreground): run it in the foreground, or use --json or --report")
    return None


def keep_root_for_the_ui(cfg: RunConfig, live: bool) -> str | None:
    """Before the default privilege drop of a live UI: stay root, with two capabilities, if need be.

    The UI imports modules as it runs (and ``--serve`` starts a UI process per browser session, as the
    same user), so the user it drops to must be able to read the Python installation; a pyenv or venv
    under /root is not readable by ``nobody``. Then the drop is not done:
    uid 0 keeps only CAP_NET_RAW and CAP_NET_ADMIN, as ``--no-drop-privileges`` does (the caller makes
    that copy: :meth:`RunConfig.keeping_root`). Returns the sentence that says so, or None. ``-Z USER``,
    asked for by name, is never overridden.
    """
    rec = cfg.recording
    if (cfg.headless and not cfg.serves_browser) or not live or cfg.attach is not None:
        return None  # an attached view opened no capture: it runs as whoever started it (docs/fleet.md)
    if os.geteuid() != 0 or rec.no_drop_privileges or rec.drop_user is not None:
        return None
    user = privdrop.default_user()
    try:
        bad = privdrop.unreadable_installation(user)
    except PrivDropError:
        return None  # no such user: the drop itself says so
    if not bad:
        return None
    return (f"staying root with only CAP_NET_RAW and CAP_NET_ADMIN (as --no-drop-privileges): {user} cannot "
            f"read {bad[0]}, where this Python is installed (install pptptop where {user} can read it, "
            "or name a user who can with -Z USER)")
