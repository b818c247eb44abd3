"""Command line: parse arguments and wire a source into the pipeline."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

from pptptop import __version__
from pptptop import diagnose as diagmod
from pptptop.diagnose import options as diagopts
from pptptop.diagnose.hashes import HashCollector
from pptptop.inside import options as insideopts
from pptptop.export.jsonout import EventStream, document
from pptptop.export.report import report
from pptptop.pipeline import Pipeline, tune_gc
from pptptop.privdrop import PrivDropError
from pptptop.record import session as recording
from pptptop.record.writers import RecordError, open_output
from pptptop.runtime import enum_lookup_as_in_3_12
from pptptop.sources.base import CaptureFileError, Source
from pptptop.sources.live import LiveSource
from pptptop.sources.owner import local_pptp_listeners
from pptptop.track import nat as natmod
from pptptop.track.conntrack import ConntrackMonitor, ConntrackUnavailable, check_available
from pptptop.track.model import Tunnel
from pptptop.track.tracker import Limits, Tracker

EXIT_OK = 0
EXIT_USAGE = 64  # sysexits EX_USAGE
EXIT_BAD_INPUT = 65  # EX_DATAERR: corrupt or truncated capture
EXIT_NO_INPUT = 66  # EX_NOINPUT
EXIT_NO_USER = 67  # EX_NOUSER: -Z names no such user
EXIT_SOFTWARE = 70  # EX_SOFTWARE: a bug
EXIT_CANT_CREATE = 73  # EX_CANTCREAT: the --export-tunnel file
EXIT_NO_PERMISSION = 77  # EX_NOPERM


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pptptop",
        description="Live terminal UI and analyser for PPTP VPN tunnels (RFC 2637 control, GRE, PPP).",
        epilog="examples:  sudo pptptop eth0 | pptptop -r capture.pcapng --report | "
        "ssh gw tcpdump -U -w - 'tcp port 1723 or proto 47' | pptptop -r - --json",
    )
    p.add_argument("interfaces", nargs="*", metavar="IFACE", help="interfaces to capture on live (or 'any')")
    p.add_argument(
        "-i",
        "--interface",
        action="append",
        default=[],
        dest="iface_opt",
        metavar="IFACE",
        help="an interface to capture on (repeatable)",
    )
    p.add_argument(
        "-r",
        "--read",
        action="append",
        default=[],
        metavar="FILE",
        help="read a pcap/pcapng file ('-' for standard input); repeat to merge files by time",
    )
    p.add_argument(
        "-f",
        "--filter",
        metavar="EXPR",
        help="capture filter (pcap syntax) instead of the default PPTP filter",
    )
    p.add_argument("-c", "--count", type=int, metavar="N", help="stop after N packets")
    p.add_argument(
        "-B",
        "--buffer-size",
        type=_whole(1),
        metavar="KiB",
        help="live: the kernel's capture ring per interface, in KiB as tcpdump's -B "
        "(default 65536; 8192 per interface with 'any')",
    )
    p.add_argument(
        "--queue",
        type=_whole(0),
        metavar="MB",
        help="live: at most this many MiB of packets drained from the rings wait while the tracker is busy "
        "(default 256; 0: only the rings ride out a burst)",
    )
    p.add_argument(
        "--json", action="store_true", help="print JSON (a document for files, one line per event live)"
    )
    p.add_argument("--report", action="store_true", help="print a readable summary per tunnel")
    p.add_argument("--demo", action="store_true", help="replay the bundled demo capture")
    p.add_argument(
        "--speed",
        default=None,
        metavar="1|10|max",
        help="replay speed for files: 1 = real time, 10 = ten times, max = as fast as possible",
    )
    p.add_argument(
        "--theme",
        default="dark",
        metavar="NAME|FILE.tcss",
        help="UI theme: dark, light, contrast, or a .tcss file",
    )
    p.add_argument(
        "--max-tunnels",
        type=int,
        default=Limits().max_tunnels,
        metavar="N",
        help="tunnels kept in memory before the oldest ended ones are evicted",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=Limits().idle_timeout,
        metavar="SECONDS",
        help="a tunnel with no packet for this long is ended as idle",
    )
    p.add_argument(
        "--conntrack",
        action="store_true",
        help="compare the NAT mapping seen on the wire with this machine's conntrack table "
        "(Linux, root; implies --no-drop-privileges)",
    )
    recording.add_arguments(p)
    diagopts.add_arguments(p)
    insideopts.add_arguments(p)
    p.add_argument("--version", action="version", version=f"pptptop {__version__}")
    return p


def demo_path() -> Path:
    return Path(str(resources.files("pptptop") / "data" / "demo.pcapng"))


def _whole(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``least``."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if v < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, not {text}")
        return v

    return parse


def parse_speed(value: str | None, default: float | None) -> float | None:
    if value is None:
        return default
    if value in ("max", "0"):
        return None
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed takes 1, 10 or max, not {value!r}") from None
    if speed <= 0:
        raise argparse.ArgumentTypeError("--speed must be positive (or max)")
    return speed


def open_source(args: argparse.Namespace) -> Source:
    from pptptop import sources

    files: list[str] = list(args.read)
    if args.demo:
        files = [str(demo_path())]
    if files:
        return sources.open_file(files[0]) if len(files) == 1 else sources.open_files(files)
    ifaces = list(args.interfaces) + list(args.iface_opt)
    ring = None if args.buffer_size is None else args.buffer_size << 10  # None: the size for named/any
    queue = sources.SPILL_LIMIT if args.queue is None else args.queue << 20
    return sources.open_live(ifaces, args.filter or None, ring_size=ring, spill_limit=queue)


def _source_info(src: Source, args: argparse.Namespace) -> dict[str, Any]:
    info: dict[str, Any] = {"name": src.name, "live": src.live, "interfaces": list(src.interfaces)}
    if src.live:
        # on a VPN server: which process answers on TCP 1723 (pptpd), as psutil sees it
        info["pptp_listeners"] = [str(x) for x in local_pptp_listeners()]
    return info


def run() -> None:
    """The ``pptptop`` command: :func:`main`, then out without tearing the interpreter down.

    Before it, the interpreter gets Python 3.12's enum member lookup
    (:func:`pptptop.runtime.enum_lookup_as_in_3_12`). By the time
    :func:`main` returns, everything the run writes is closed (recordings,
    hash files) and the UI has given the terminal back; what the interpreter
    would still do is free the tracker's heap object by object, 60 ms after a
    million packets (a twentieth of the run), and wait for nothing. So flush
    the standard streams and leave.
    """
    enum_lookup_as_in_3_12()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that went away (pptptop ... | head)
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ifaces = list(args.interfaces) + list(args.iface_opt)
    if not ifaces and not args.read and not args.demo:
        parser.print_usage(sys.stderr)
        print(
            "pptptop: name an interface to capture on (e.g. 'sudo pptptop eth0'), "
            "a file with -r FILE, or try --demo",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if ifaces and args.read:
        print(
            "pptptop: give either interfaces to capture on or files to read (-r), not both", file=sys.stderr
        )
        return EXIT_USAGE
    try:
        speed = parse_speed(args.speed, 1.0 if args.demo else None)
    except argparse.ArgumentTypeError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_USAGE
    problem = recording.usage_error(args)
    if problem:
        print(f"pptptop: {problem}", file=sys.stderr)
        return EXIT_USAGE
    headless = args.json or args.report or args.export_tunnel is not None or args.export_hashes is not None
    secrets = insideopts.load_or_say(args, sys.stderr)  # read now, as root, before any privilege drop
    if secrets is None:
        return EXIT_USAGE if insideopts.usage_error(args) else EXIT_NO_INPUT
    if args.conntrack:
        if args.drop_user is not None:
            print("pptptop: --conntrack needs CAP_NET_ADMIN for the whole capture: use it without -Z",
                  file=sys.stderr)
            return EXIT_USAGE
        try:
            check_available()
        except ConntrackUnavailable as e:
            print(f"pptptop: {e}", file=sys.stderr)
            return EXIT_NO_PERMISSION
        args.no_drop_privileges = True  # keeps only CAP_NET_ADMIN and CAP_NET_RAW, as root
    try:
        src = open_source(args)
    except FileNotFoundError as e:
        print(f"pptptop: cannot read {e.filename}: no such file", file=sys.stderr)
        return EXIT_NO_INPUT
    except PermissionError as e:
        what = e.filename or "the capture interface"
        hint = "" if e.filename else " (live capture needs root or CAP_NET_RAW: try sudo)"
        print(f"pptptop: permission denied for {what}{hint}", file=sys.stderr)
        return EXIT_NO_PERMISSION
    except CaptureFileError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_NO_INPUT

    tracker = Tracker(Limits(max_tunnels=args.max_tunnels, idle_timeout=args.idle_timeout))
    nat = natmod.attach(tracker)  # pairs the legs of NATed sessions (tunnel.notes["nat"])
    diagnoser = diagmod.Diagnoser(diagopts.config(args), show_secrets=args.show_secrets).attach(tracker)
    try:  # created now, before any privilege drop; 0600, never through a link (docs/recording.md)
        hashes = (HashCollector(open_output(args.export_hashes)).attach(tracker)
                  if args.export_hashes is not None else None)
    except RecordError as e:
        print(f"pptptop: --export-hashes: {e}", file=sys.stderr)
        return EXIT_CANT_CREATE
    session = recording.RecordingSession(args, quiet=not headless)
    try:
        session.open(src, tracker)  # output files are created as root, before the privilege drop
        _preload(args, headless, src.live)  # the target user may not be able to read the Python installation
        session.drop_privileges(src, ui=not headless)
    except RecordError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_CANT_CREATE
    except PrivDropError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_NO_USER if "no such user" in str(e) else EXIT_NO_PERMISSION
    kernel = ConntrackMonitor(tracker, nat) if args.conntrack else None
    if kernel is not None and src.live:
        kernel.start()  # its thread starts after the privilege drop
    elif kernel is not None:
        kernel.poll()
    extensions = natmod.json_extensions(nat, kernel)
    extensions["diagnosis"] = diagmod.diagnosis_json
    pipeline = Pipeline(src, tracker, count=args.count, speed=speed if not headless else None)
    tune_gc()
    session.start(pipeline)
    if not headless:
        from pptptop.ui.app import run_ui

        args.recording_session = session  # the header reads session.status()
        _install_signals(pipeline, session, ui=True)
        try:
            return run_ui(pipeline, args)
        finally:
            session.close()

    if args.json and src.live:
        tracker.subscribe(EventStream(sys.stdout, extensions))
        nat.subscribe(_nat_problem_line)
        diagnoser.subscribe(diagopts.json_lines(sys.stdout))
    _install_signals(pipeline, session)
    worker = threading.Thread(target=pipeline.run, name="pptptop-capture", daemon=True)
    worker.start()
    while not pipeline.done.wait(0.2):
        pass
    session.close()
    info = _source_info(src, args)
    info.update({"frames_read": pipeline.frames, "kernel_drops": src.stats().kernel_drops})
    if pipeline.crash is not None:
        # a bug: what was read before it is still reported (the outputs below), then the traceback
        info["error"] = f"internal error after frame {tracker.stats.frames}: {type(pipeline.crash).__name__}"
    elif pipeline.error is not None:
        info["error"] = str(pipeline.error)
    if hashes is not None and not diagopts.write_hashes(args.export_hashes, hashes):
        return EXIT_CANT_CREATE
    if args.export_tunnel is not None:
        code = _export(session, args, tracker)
        if code != EXIT_OK:
            return code
    if args.json and not src.live:
        doc = document(tracker, info, extensions, fold=nat.fold)
        if kernel is not None:
            kernel.poll()
            doc["conntrack"] = kernel.summary()
        # dumps, no indent: only json.dumps without indent runs the C encoder (json.dump never does), ten
        # times faster than the pure-Python one (use jq to read)
        sys.stdout.write(json.dumps({**doc, **session.summary()}, default=str) + "\n")
    elif args.json:
        st = src.stats()
        end = {
            "event": "capture-end",
            "time": tracker.now,
            "frames": pipeline.frames,
            "kernel_drops": st.kernel_drops,
            "pptp_listeners": info.get("pptp_listeners", []),
            "interfaces": session.interfaces_dict(),
            "buffers": src.buffers() if isinstance(src, LiveSource) else {},
            **session.summary(),
            "nat": natmod.nat_table(nat, kernel),
        }
        if kernel is not None:
            end["conntrack"] = kernel.summary()
        sys.stdout.write(json.dumps(end) + "\n")
    if args.report:
        sys.stdout.write(report(tracker, info, [natmod.report_lines(nat, kernel), diagmod.report_lines]))
    sys.stdout.flush()
    if pipeline.crash is not None:
        import traceback

        traceback.print_exception(pipeline.crash)
        print(f"pptptop: internal error (a bug) after frame {tracker.stats.frames} (the frames before it are "
              "reported): please report it with the traceback above", file=sys.stderr)
        return EXIT_SOFTWARE
    if pipeline.error is not None:
        print(f"pptptop: {pipeline.error} (everything before it was read and reported)", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _nat_problem_line(p: natmod.NatProblem) -> None:
    """Live ``--json``: a NAT problem found on the wire, as its own event line."""
    sys.stdout.write(json.dumps({"event": "nat-problem", **p.as_dict()}, default=str) + "\n")
    sys.stdout.flush()


def _preload(args: argparse.Namespace, headless: bool, live: bool) -> None:
    """Import now, as root, what is otherwise imported after the privilege drop."""
    import importlib

    names = ["traceback"] + ([] if headless else ["pptptop.ui.app"]) + (["psutil"] if live else [])
    if live or args.drop_user is not None:
        names.append("numpy.ma")  # numpy's set routines (np.unique: the data path, the recorder) import it late
    if args.export_tunnel is not None:
        names += ["pptptop.ui.filtering", "pptptop.ui.snapshot"]
    for name in names:
        importlib.import_module(name)


def _export(session: recording.RecordingSession, args: argparse.Namespace, tracker: Tracker) -> int:
    """``--export-tunnel ID|FILTER``: the filter is the UI's ``/`` filter language."""
    match = None
    if not args.export_tunnel.strip().isdigit():
        from pptptop.ui.filtering import FilterError, parse_filter
        from pptptop.ui.snapshot import make_row

        try:
            flt = parse_filter(args.export_tunnel)
        except FilterError as e:
            print(f"pptptop: --export-tunnel: {e}", file=sys.stderr)
            return EXIT_USAGE
        now = tracker.now

        def match(t: Tunnel) -> bool:
            return flt(make_row(t, now))

    try:
        n = session.export(match)
    except ValueError as e:
        print(f"pptptop: --export-tunnel: {e}", file=sys.stderr)
        return EXIT_NO_INPUT
    except RecordError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_CANT_CREATE
    if not args.json:
        print(f"pptptop: wrote {n} packets to {args.write}", file=sys.stderr)
    return EXIT_OK


def _install_signals(pipeline: Pipeline, session: recording.RecordingSession, *, ui: bool = False) -> None:
    """SIGINT/SIGTERM/SIGHUP end the capture; the recording is flushed and closed cleanly.

    Under the UI, SIGINT is the UI's (Ctrl-C); SIGTERM and SIGHUP close the
    files at once, so they are complete even if the terminal is gone.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        if ui:
            session.close()
        pipeline.stop()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP) if ui else (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stop)


if __name__ == "__main__":
    sys.exit(main())
