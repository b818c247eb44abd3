"""The ``pptptop`` command: parse the options, wire a source into the pipeline, run the UI or headless output.

``parser`` and ``validators`` hold the one parser and the one set of checks;
``config`` turns them into a frozen :class:`~pptptop.cli.config.RunConfig`;
``wiring`` opens the source and builds the engine; ``headless`` writes
``--json``, ``--report`` and the exports. The exit statuses are
:mod:`pptptop.exitcodes`. A step that cannot go on raises
:class:`~pptptop.cli.config.Refusal`, and :func:`main` prints it: one line,
``pptptop: ...``, and its status.
"""

from __future__ import annotations

import argparse
import os
import sys

from pptptop import diagnose as diagmod
from pptptop import probe, serve
from pptptop.cli.config import Refusal, RunConfig, check, check_ui, configure, demo_path, keep_root_for_the_ui
from pptptop.cli.headless import Run, run_headless
from pptptop.cli.parser import build_parser
from pptptop.cli.validators import MORE, SPEEDS, parse_speed
from pptptop.cli.wiring import SOURCE_ERRORS, build_engine, install_signals, open_source, preload, source_refusal
from pptptop.exitcodes import (
    EXIT_BAD_INPUT,
    EXIT_CANT_CREATE,
    EXIT_NO_INPUT,
    EXIT_NO_PERMISSION,
    EXIT_NO_USER,
    EXIT_OK,
    EXIT_SOFTWARE,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from pptptop.export import inside as insideout
from pptptop.export import service
from pptptop.inside import options as insideopts
from pptptop.inside.secrets import SecretStore
from pptptop.pipeline import Pipeline, tune_gc
from pptptop.privdrop import PrivDropError
from pptptop.record.session import RecordingSession
from pptptop.record.writers import RecordError
from pptptop.sources.base import Source
from pptptop.track import nat as natmod
from pptptop.track.conntrack import ConntrackMonitor, ConntrackUnavailable, check_available

__all__ = [
    "EXIT_BAD_INPUT", "EXIT_CANT_CREATE", "EXIT_NO_INPUT", "EXIT_NO_PERMISSION", "EXIT_NO_USER", "EXIT_OK",
    "EXIT_SOFTWARE", "EXIT_UNAVAILABLE", "EXIT_USAGE", "MORE", "SPEEDS", "RunConfig", "build_parser", "demo_path",
    "main", "open_source", "parse_speed", "run",
]


def run() -> None:
    """The ``pptptop`` command (the console script and ``python -m pptptop``): :func:`main`, then exit.

    By the time :func:`main` returns, everything the run started has ended: the read-ahead child is
    waited for, the capture thread has finished, the files are closed and the
    UI has given the terminal back. The exit is the interpreter's own.
    """
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (pptptop ... | head): what the signal module's documentation advises, so that
        # the interpreter's own flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """One run of ``pptptop``: its exit status (:mod:`pptptop.exitcodes`)."""
    args = build_parser().parse_args(argv)
    if args.probe is not None:  # the active probe, before any capture is set up (docs/probe.md)
        return probe.main(args)
    try:
        for warning in check(args):
            print(f"pptptop: warning: {warning}", file=sys.stderr)
        cfg = configure(args)
        if not cfg.headless:
            check_ui(cfg)
        secrets = insideopts.load_or_say(args, sys.stderr)  # read now, as root, before any privilege drop
        if secrets is None:
            return EXIT_USAGE if insideopts.usage_error(args) else EXIT_NO_INPUT
        if cfg.conntrack:
            cfg = _conntrack(cfg)
        try:
            src = open_source(cfg)
        except SOURCE_ERRORS as e:
            raise source_refusal(e) from None
        return _run(cfg, args, src, secrets)
    except Refusal as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return e.code


def _conntrack(cfg: RunConfig) -> RunConfig:
    """``--conntrack``: this machine's table must be readable; the run keeps CAP_NET_ADMIN, as root."""
    if cfg.drop_user is not None:
        raise Refusal("--conntrack needs CAP_NET_ADMIN for the whole capture: use it without -Z", EXIT_USAGE)
    try:
        check_available()
    except ConntrackUnavailable as e:
        raise Refusal(str(e), EXIT_NO_PERMISSION) from None
    return cfg.keeping_root()


def _run(cfg: RunConfig, args: argparse.Namespace, src: Source, secrets: SecretStore) -> int:
    """From an open source to the exit status: what is done as root, the drop, then the UI or headless."""
    engine = build_engine(cfg, secrets)
    notes: list[str] = []  # said on stderr now and, under the UI, in it
    kept = keep_root_for_the_ui(cfg, src.live)
    if kept:
        print(f"pptptop: {kept}", file=sys.stderr)
        notes.append(kept)
        cfg = cfg.keeping_root()
    session = RecordingSession(cfg.recording, quiet=not cfg.headless)
    try:
        session.open(src, engine.tracker)  # output files are created as root, before the privilege drop
        preload(cfg, src.live)  # the target user may not be able to read the Python installation
        fleet = service.prepare(args)  # --events, --metrics (docs/fleet.md): opened as root too
        if cfg.attach is None or cfg.drop_user is not None:  # an attached view drops only when asked (-Z)
            session.drop_privileges(src, ui=not cfg.headless or cfg.serves_browser)
    except RecordError as e:
        raise Refusal(str(e), EXIT_CANT_CREATE) from None
    except service.ServiceError as e:
        raise Refusal(str(e), e.code) from None
    except PrivDropError as e:
        raise Refusal(str(e), EXIT_NO_USER if "no such user" in str(e) else EXIT_NO_PERMISSION) from None
    views = _offer_views(cfg, fleet)
    kernel = ConntrackMonitor(engine.tracker, engine.nat) if cfg.conntrack else None
    if kernel is not None and src.live:
        kernel.start()  # its thread starts after the privilege drop
    elif kernel is not None:
        kernel.poll()
    extensions = natmod.json_extensions(engine.nat, kernel)
    extensions["diagnosis"] = diagmod.diagnosis_json
    extensions.update(insideout.json_extensions(engine.inspector))
    pipeline = Pipeline(src, engine.tracker, count=cfg.count, speed=(cfg.speed or None) if cfg.paced else None)
    tune_gc()
    session.start(pipeline)
    if views is not None:
        views.start(pipeline)
    fleet.start(pipeline, engine.diagnoser, session.summary, extensions, inspector=engine.inspector)
    if engine.inspector is not None and session.decrypted is not None:  # --decrypted
        engine.inspector.sinks.append(session.decrypted.write)
    if cfg.headless:
        return run_headless(Run(cfg, src, engine, session, pipeline, fleet, kernel, extensions, views))
    from pptptop.ui.app import UiOptions, run_ui

    install_signals(pipeline, session, ui=True)
    read_only = READ_ONLY if cfg.attach is not None else None
    try:
        return run_ui(pipeline, UiOptions(theme=cfg.theme, recording=session.status, notes=tuple(notes),
                                          read_only=read_only))
    finally:
        session.close()
        fleet.close()
        if views is not None:
            views.close()


#: why an attached UI cannot pause, save or stop anything: said when it starts and when such a key is pressed
READ_ONLY = ("attached to a running pptptop, read-only: its capture and recording are the service's; "
             "q leaves this view only, and pausing or saving here is off")


def _offer_views(cfg: RunConfig, fleet: service.Service) -> serve.Serving | None:
    """``--ui-socket`` and ``--serve``, after the privilege drop (the socket is the service user's, and the
    run still has one thread). Raises :class:`Refusal`."""
    if cfg.serving is None:
        return None
    from pptptop.serve.web import ServeError

    try:
        views = serve.open_serving(cfg.serving, fleet.say)
    except serve.FeedError as e:
        raise Refusal(str(e), EXIT_CANT_CREATE) from None
    except ServeError as e:
        raise Refusal(str(e), EXIT_UNAVAILABLE) from None
    fleet.serving = True
    return views
