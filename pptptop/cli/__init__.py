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
from typing import TYPE_CHECKING, Any, NoReturn

from pptptop import __version__, privdrop, probe
from pptptop import diagnose as diagmod
from pptptop.diagnose import options as diagopts
from pptptop.diagnose.hashes import HashCollector
from pptptop.export import inside as insideout
from pptptop.export import service
from pptptop.export.jsonout import EventStream, document
from pptptop.export.report import report
from pptptop.inside import options as insideopts
from pptptop.pipeline import Pipeline, tune_gc
from pptptop.privdrop import PrivDropError
from pptptop.record import session as recording
from pptptop.record.writers import RecordError, open_output
from pptptop.runtime import enum_lookup_as_in_3_12
from pptptop.sources.base import CaptureFileError, Source
from pptptop.sources.bpf import FilterError
from pptptop.sources.live import LiveCaptureError, LiveSource, NoSuchInterface
from pptptop.sources.owner import local_pptp_listeners
from pptptop.track import nat as natmod
from pptptop.track.conntrack import ConntrackMonitor, ConntrackUnavailable, check_available
from pptptop.track.model import Tunnel
from pptptop.track.tracker import Limits, Tracker

if TYPE_CHECKING:
    from pptptop.view.filtering import RowFilter

EXIT_OK = 0
EXIT_USAGE = 64  # sysexits EX_USAGE
EXIT_BAD_INPUT = 65  # EX_DATAERR: corrupt or truncated capture
EXIT_NO_INPUT = 66  # EX_NOINPUT
EXIT_NO_USER = 67  # EX_NOUSER: -Z names no such user
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: an interface that exists but cannot be captured on
EXIT_SOFTWARE = 70  # EX_SOFTWARE: a bug
EXIT_CANT_CREATE = 73  # EX_CANTCREAT: the --export-tunnel file
EXIT_NO_PERMISSION = 77  # EX_NOPERM
SPEEDS = ("1", "10", "max")
MORE = "pptptop --help lists every option"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line and exit 64 (EX_USAGE), not the usage block and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"pptptop: {message} ({MORE})\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
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
    p.add_argument("-c", "--count", type=_whole(1), metavar="N", help="stop after N packets")
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
        type=parse_speed,
        metavar="1|10|max",
        help="the UI's replay speed: 1 = real time, 10 = ten times, max = as fast as possible "
        "(default: max for -r FILE, 1 for --demo; --json and --report always read at max)",
    )
    p.add_argument(
        "--theme",
        default="dark",
        metavar="NAME|FILE.tcss",
        help="UI theme: dark, light, contrast, or a .tcss file",
    )
    p.add_argument(
        "--max-tunnels",
        type=_whole(1),
        default=Limits().max_tunnels,
        metavar="N",
        help="tunnels kept in memory before the oldest ended ones are evicted",
    )
    p.add_argument(
        "--idle-timeout",
        type=_seconds,
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
    service.add_arguments(p)
    diagopts.add_arguments(p)
    insideopts.add_arguments(p)
    probe.add_arguments(p)
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


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds greater than 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return v


def parse_speed(value: str) -> float:
    """``--speed``: 1 (real time), 10, or max (0.0: as fast as the file can be read)."""
    if value not in SPEEDS:
        raise argparse.ArgumentTypeError(f"takes 1, 10 or max, not {value!r}")
    return 0.0 if value == "max" else float(value)


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


def usage_problem(args: argparse.Namespace) -> str | None:
    """One sentence about options that cannot go together, or None."""
    ifaces = list(args.interfaces) + list(args.iface_opt)
    if not ifaces and not args.read and not args.demo:
        return f"give an interface (sudo pptptop eth0), -r FILE, or --demo ({MORE})"
    if args.demo and (ifaces or args.read):
        return "--demo replays the bundled capture: give it without interfaces or -r FILE"
    if ifaces and args.read:
        return "give either interfaces to capture on or files to read (-r), not both"
    if args.json and args.report:
        return "--json and --report both write to standard output: choose one"
    return recording.usage_error(args)


def ignored_options(args: argparse.Namespace, headless: bool) -> list[str]:
    """Warnings for options that the chosen input or output leaves without effect."""
    files = bool(args.read or args.demo)
    out = []
    if files and args.filter is not None:
        out.append("-f applies to live capture only: the file is read whole")
    if files and (args.buffer_size is not None or args.queue is not None):
        out.append("-B and --queue apply to live capture only")
    if args.speed is not None and not files:
        out.append("--speed applies to replayed files only")
    elif args.speed is not None and headless:
        out.append("--speed paces the UI's replay: headless output reads the file as fast as it can")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.probe is not None:  # the active probe, before any capture is set up (docs/probe.md)
        return probe.main(args)
    problem = usage_problem(args) or service.usage_error(args)
    if problem:
        print(f"pptptop: {problem}", file=sys.stderr)
        return EXIT_USAGE
    headless = (args.json or args.report or args.export_tunnel is not None or args.export_hashes is not None
                or args.headless)
    for warning in ignored_options(args, headless):
        print(f"pptptop: warning: {warning}", file=sys.stderr)
    speed = args.speed if args.speed is not None else (1.0 if args.demo else 0.0)
    export_match, problem = _export_filter(args)  # a bad filter is refused before its file is created
    if problem:
        print(f"pptptop: --export-tunnel: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if not headless:
        problem = _check_theme(args.theme) or _take_terminal(args)
        if problem:
            print(f"pptptop: {problem}", file=sys.stderr)
            return EXIT_USAGE
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
    except IsADirectoryError as e:
        print(f"pptptop: cannot read {e.filename}: it is a directory, not a capture file", file=sys.stderr)
        return EXIT_NO_INPUT
    except PermissionError as e:
        what = e.filename or "the capture interface"
        hint = "" if e.filename else " (live capture needs root or CAP_NET_RAW: try sudo)"
        print(f"pptptop: permission denied for {what}{hint}", file=sys.stderr)
        return EXIT_NO_PERMISSION
    except CaptureFileError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FilterError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_USAGE
    except NoSuchInterface as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_NO_INPUT
    except LiveCaptureError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_NO_PERMISSION if isinstance(e.__cause__, PermissionError) else EXIT_UNAVAILABLE
    except OSError as e:
        print(f"pptptop: cannot read {e.filename or 'the input'}: {e.strerror or e}", file=sys.stderr)
        return EXIT_NO_INPUT

    tracker = Tracker(Limits(max_tunnels=args.max_tunnels, idle_timeout=args.idle_timeout))
    inspector = insideopts.inspector(secrets, tracker)  # before the diagnosis, whose rules read what it finds
    nat = natmod.attach(tracker)  # pairs the legs of NATed sessions (tunnel.notes["nat"])
    diagnoser = diagmod.Diagnoser(diagopts.config(args), show_secrets=args.show_secrets).attach(tracker)
    try:  # created now, before any privilege drop; 0600, never through a link (docs/recording.md)
        hashes = (HashCollector(open_output(args.export_hashes)).attach(tracker)
                  if args.export_hashes is not None else None)
    except RecordError as e:
        print(f"pptptop: --export-hashes: {e}", file=sys.stderr)
        return EXIT_CANT_CREATE
    session = recording.RecordingSession(args, quiet=not headless)
    notes: list[str] = []  # said on stderr now and, under the UI, in it
    kept = _keep_root_for_the_ui(args, src.live, headless)
    if kept:
        print(f"pptptop: {kept}", file=sys.stderr)
        notes.append(kept)
    try:
        session.open(src, tracker)  # output files are created as root, before the privilege drop
        _preload(args, headless, src.live)  # the target user may not be able to read the Python installation
        fleet = service.prepare(args)  # --events, --metrics (docs/fleet.md): opened as root too
        session.drop_privileges(src, ui=not headless)
    except RecordError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return EXIT_CANT_CREATE
    except service.ServiceError as e:
        print(f"pptptop: {e}", file=sys.stderr)
        return e.code
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
    extensions.update(insideout.json_extensions(inspector))
    pipeline = Pipeline(src, tracker, count=args.count, speed=(speed or None) if not headless else None)
    tune_gc()
    session.start(pipeline)
    fleet.start(pipeline, diagnoser, session.summary, extensions, inspector=inspector)
    if inspector is not None and session.decrypted is not None:  # --decrypted
        inspector.sinks.append(session.decrypted.write)
    if not headless:
        from pptptop.ui.app import run_ui

        args.recording_session = session  # the header reads session.status()
        args.notes = notes
        _install_signals(pipeline, session, ui=True)
        try:
            return run_ui(pipeline, args)
        finally:
            session.close()
            fleet.close()

    if args.json and src.live:
        tracker.subscribe(EventStream(sys.stdout, extensions))
        nat.subscribe(_nat_problem_line)
        diagnoser.subscribe(diagopts.json_lines(sys.stdout))
    _install_signals(pipeline, session)
    fleet.install_signals()  # --headless: SIGHUP reopens, SIGTERM ends
    worker = threading.Thread(target=pipeline.run, name="pptptop-capture", daemon=True)
    worker.start()
    while not pipeline.done.wait(0.2) and not fleet.given_up():
        pass
    fleet.linger()
    fleet.close()
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
        code = _export(session, args, export_match)
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
        sys.stdout.write(report(tracker, info, [natmod.report_lines(nat, kernel), diagmod.report_lines,
                                                    *insideout.report_extensions(inspector)]))
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
        names += ["pptptop.view.filtering", "pptptop.view.snapshot"]
    for name in names:
        importlib.import_module(name)


def _check_theme(theme: str) -> str | None:
    """A theme that cannot be loaded or parsed, in one sentence, before anything else is opened."""
    from pptptop.ui.app import check_theme
    from pptptop.ui.themes import ThemeError, load_theme

    try:
        check_theme(load_theme(theme or "dark"))
    except ThemeError as e:
        return str(e)
    return None


def _take_terminal(args: argparse.Namespace) -> str | None:
    """Give the UI the terminal's keys on standard input, as ``less`` does; a sentence when it cannot.

    The UI reads keys from file descriptor 0. When that is not a terminal (``cat FILE | pptptop -r -``),
    the controlling terminal (``/dev/tty``) takes its place, and a capture read from standard input
    (``-r -``) reads the original from another descriptor. A UI started in the background (``&``,
    ``timeout`` without ``--foreground``) would be stopped by the terminal at its first write: refused.
    """
    if not os.isatty(0):
        try:
            tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            return "the UI reads its keys from a terminal, and there is none here: use --json or --report"
        if "-" in args.read:
            capture = os.dup(0)
            sys.stdin = os.fdopen(capture, "r", closefd=True)  # open_file("-") reads sys.stdin.buffer
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


def _keep_root_for_the_ui(args: argparse.Namespace, live: bool, headless: bool) -> str | None:
    """Before the default privilege drop of a live UI: stay root, with two capabilities, if need be.

    The UI imports modules as it runs, so the user it drops to must be able to read the Python
    installation; a pyenv or venv under /root is not readable by ``nobody``. Then the drop is not done:
    uid 0 keeps only CAP_NET_RAW and CAP_NET_ADMIN, as ``--no-drop-privileges`` does. Returns the
    sentence that says so, or None. ``-Z USER``, asked for by name, is never overridden.
    """
    if headless or not live or os.geteuid() != 0 or args.no_drop_privileges or args.drop_user is not None:
        return None
    user = privdrop.default_user()
    try:
        bad = privdrop.unreadable_installation(user)
    except PrivDropError:
        return None  # no such user: the drop itself says so
    if not bad:
        return None
    args.no_drop_privileges = True
    return (f"staying root with only CAP_NET_RAW and CAP_NET_ADMIN (as --no-drop-privileges): {user} cannot "
            f"read {bad[0]}, where this Python is installed (install pptptop where {user} can read it, "
            "or name a user who can with -Z USER)")


def _export_filter(args: argparse.Namespace) -> tuple[RowFilter | None, str | None]:
    """``--export-tunnel FILTER`` parsed now, before its file is created: (the filter, or a complaint).

    A tunnel ID (digits) gives (None, None): :func:`_export` selects by ID.
    """
    if args.export_tunnel is None or args.export_tunnel.strip().isdigit():
        return None, None
    from pptptop.view.filtering import FilterError as RowFilterError
    from pptptop.view.filtering import parse_filter

    try:
        return parse_filter(args.export_tunnel), None
    except RowFilterError as e:
        return None, str(e)


def _export(session: recording.RecordingSession, args: argparse.Namespace, flt: RowFilter | None) -> int:
    """``--export-tunnel ID|FILTER``: the filter is the UI's ``/`` filter language.

    When nothing matches, no file is left behind: the export's file exists only with something in it.
    """
    match = None
    if flt is not None:
        from pptptop.view.snapshot import make_row

        tracker = session.tracker
        assert tracker is not None
        now = tracker.now

        def match(t: Tunnel) -> bool:
            return flt(make_row(t, now))

    try:
        n = session.export(match)
    except ValueError as e:
        with contextlib.suppress(OSError):
            os.unlink(args.write)  # created before the capture was read (as root, before a privilege drop)
        print(f"pptptop: --export-tunnel: {e}; {args.write} was not written", file=sys.stderr)
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
