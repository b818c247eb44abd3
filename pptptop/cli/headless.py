"""Headless output: ``--json`` (a document for files, lines live), ``--report``, ``--export-tunnel``,
``--export-hashes``, and the run's end (exit status, a crash's traceback) without the UI."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from pptptop import diagnose as diagmod
from pptptop.cli.config import Refusal, RunConfig
from pptptop.cli.wiring import Engine, install_signals, source_info
from pptptop.diagnose import options as diagopts
from pptptop.exitcodes import EXIT_BAD_INPUT, EXIT_CANT_CREATE, EXIT_NO_INPUT, EXIT_OK, EXIT_SOFTWARE
from pptptop.export import inside as insideout
from pptptop.export import service
from pptptop.export.jsonout import EventStream, Extension, source_dict, tunnel_dicts
from pptptop.export.report import report
from pptptop.pipeline import Pipeline
from pptptop.record.session import RecordingSession
from pptptop.record.writers import RecordError
from pptptop.serve import Serving
from pptptop.sources.base import Source
from pptptop.sources.live import LiveSource
from pptptop.track import nat as natmod
from pptptop.track.conntrack import ConntrackMonitor
from pptptop.track.model import Tunnel


@dataclass(frozen=True, slots=True)
class Run:
    """Everything a started run is made of, for the output that ends it."""

    cfg: RunConfig
    src: Source
    engine: Engine
    session: RecordingSession
    pipeline: Pipeline
    fleet: service.Service
    kernel: ConntrackMonitor | None
    extensions: dict[str, Extension]
    views: Serving | None = None  # --ui-socket, --serve


def run_headless(r: Run) -> int:
    """Read to the end (or a signal), then write what was asked for; the exit status."""
    cfg, src, engine = r.cfg, r.src, r.engine
    if cfg.json and src.live:  # one line per event, as it happens
        engine.tracker.subscribe(EventStream(sys.stdout, r.extensions))
        engine.nat.subscribe(_nat_problem_line)
        engine.diagnoser.subscribe(diagopts.json_lines(sys.stdout))
    install_signals(r.pipeline, r.session)
    r.fleet.install_signals()  # --headless: SIGHUP reopens, SIGTERM ends
    worker = threading.Thread(target=r.pipeline.run, name="pptptop-capture", daemon=True)
    worker.start()
    while not r.pipeline.done.wait(0.2) and not r.fleet.given_up():
        pass
    r.fleet.linger()
    if r.views is not None:
        r.views.close()
    r.fleet.close()
    r.session.close()
    info = _info(r)
    if engine.hashes is not None and cfg.export_hashes is not None:
        try:
            print(f"pptptop: {diagopts.write_hashes(cfg.export_hashes, engine.hashes)}", file=sys.stderr)
        except diagopts.HashExportError as e:
            print(f"pptptop: {e}", file=sys.stderr)
            return EXIT_CANT_CREATE
    if cfg.export_tunnel is not None:
        try:
            _export(r)
        except Refusal as e:
            print(f"pptptop: {e}", file=sys.stderr)
            return e.code
    if cfg.json and not src.live:
        _json_document(r, info)
    elif cfg.json:
        _json_end_line(r, info)
    if cfg.report:
        sys.stdout.write(report(engine.tracker, info, [natmod.report_lines(engine.nat, r.kernel),
                                                       diagmod.report_lines,
                                                       *insideout.report_extensions(engine.inspector)]))
    sys.stdout.flush()
    return _end(r.pipeline, engine)


def _info(r: Run) -> dict[str, Any]:
    """The ``source`` part of the outputs: what was read, and why the reading ended early."""
    info = source_info(r.src)
    info.update({"frames_read": r.pipeline.frames, "kernel_drops": r.src.stats().kernel_drops})
    if r.pipeline.crash is not None:
        # a bug: what was read before it is still reported (the outputs), then the traceback
        info["error"] = (f"internal error after frame {r.engine.tracker.stats.frames}: "
                         f"{type(r.pipeline.crash).__name__}")
    elif r.pipeline.error is not None:
        info["error"] = str(r.pipeline.error)
    return info


def _json_document(r: Run, info: dict[str, Any]) -> None:
    """``--json`` of a file: one document, written a tunnel at a time (the bytes ``json.dumps`` gives for the
    whole document, without holding it)."""
    tracker = r.engine.tracker
    out = sys.stdout
    # dumps, no indent: only json.dumps without indent runs the C encoder (json.dump never does), ten
    # times faster than the pure-Python one (use jq to read)
    out.write('{"source": ' + json.dumps(source_dict(tracker, info), default=str) + ', "tunnels": [')
    for i, d in enumerate(tunnel_dicts(tracker, r.extensions, fold=r.engine.nat.fold)):
        out.write((", " if i else "") + json.dumps(d, default=str))
    out.write("]")
    rest: dict[str, Any] = {}
    if r.kernel is not None:
        r.kernel.poll()
        rest["conntrack"] = r.kernel.summary()
    rest.update(r.session.summary())
    for key, value in rest.items():
        out.write(", " + json.dumps(key) + ": " + json.dumps(value, default=str))
    out.write("}\n")


def _json_end_line(r: Run, info: dict[str, Any]) -> None:
    """Live ``--json``: the ``capture-end`` line after the event lines."""
    src = r.src
    end = {
        "event": "capture-end",
        "time": r.engine.tracker.now,
        "frames": r.pipeline.frames,
        "kernel_drops": src.stats().kernel_drops,
        "pptp_listeners": info.get("pptp_listeners", []),
        "interfaces": r.session.interfaces_dict(),
        "buffers": src.buffers() if isinstance(src, LiveSource) else {},
        **r.session.summary(),
        "nat": natmod.nat_table(r.engine.nat, r.kernel),
    }
    if r.kernel is not None:
        end["conntrack"] = r.kernel.summary()
    sys.stdout.write(json.dumps(end) + "\n")


def _end(pipeline: Pipeline, engine: Engine) -> int:
    """The exit status of a run whose output is written: a crash's traceback, an input's error."""
    if pipeline.crash is not None:
        traceback.print_exception(pipeline.crash)
        print(f"pptptop: internal error (a bug) after frame {engine.tracker.stats.frames} (the frames before it "
              "are reported): please report it with the traceback above", file=sys.stderr)
        return EXIT_SOFTWARE
    if pipeline.error is not None:
        print(f"pptptop: {pipeline.error} (everything before it was read and reported)", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _nat_problem_line(p: natmod.NatProblem) -> None:
    """Live ``--json``: a NAT problem found on the wire, as its own event line."""
    sys.stdout.write(json.dumps({"event": "nat-problem", **p.as_dict()}, default=str) + "\n")
    sys.stdout.flush()


def _export(r: Run) -> None:
    """``--export-tunnel ID|FILTER``: the filter is the UI's ``/`` filter language. Raises :class:`Refusal`.

    When nothing matches, no file is left behind: the export's file exists only with something in it.
    """
    cfg, flt = r.cfg, r.cfg.export_match
    write = cfg.write
    assert write is not None  # checked with the options
    match = None
    if flt is not None:
        from pptptop.view.snapshot import make_row

        now = r.engine.tracker.now

        def match(t: Tunnel) -> bool:
            return flt(make_row(t, now))

    try:
        n = r.session.export(match)
    except ValueError as e:
        with contextlib.suppress(OSError):
            os.unlink(write)  # created before the capture was read (as root, before a privilege drop)
        raise Refusal(f"--export-tunnel: {e}; {write} was not written", EXIT_NO_INPUT) from None
    except RecordError as e:
        raise Refusal(str(e), EXIT_CANT_CREATE) from None
    if not cfg.json:
        print(f"pptptop: wrote {n} packets to {write}", file=sys.stderr)
