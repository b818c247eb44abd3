"""The one set of checks on the command line: argparse types for values, and sentences for combinations.

Every number an option takes is parsed by :func:`whole` or :func:`positive`,
so a bad value reads the same whatever option it was given to. The checks of
combinations return one sentence (or None); the CLI prints it and exits 64.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

SPEEDS = ("1", "10", "max")
MORE = "pptptop --help lists every option"


def whole(least: int) -> Callable[[str], int]:
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


def positive(what: str = "a number") -> Callable[[str], float]:
    """An argparse type: a number greater than 0 (``what`` names it in the complaint: "a number of seconds")."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
        return v

    return parse


def parse_speed(value: str) -> float:
    """``--speed``: 1 (real time), 10, or max (0.0: as fast as the file can be read)."""
    if value not in SPEEDS:
        raise argparse.ArgumentTypeError(f"takes 1, 10 or max, not {value!r}")
    return 0.0 if value == "max" else float(value)


def usage_problem(args: argparse.Namespace) -> str | None:
    """One sentence about options that cannot go together, or None."""
    ifaces = list(args.interfaces) + list(args.iface_opt)
    if not ifaces and not args.read and not args.demo and args.attach is None:
        return f"give an interface (sudo pptptop eth0), -r FILE, or --demo ({MORE})"
    if args.demo and (ifaces or args.read):
        return "--demo replays the bundled capture: give it without interfaces or -r FILE"
    if ifaces and args.read:
        return "give either interfaces to capture on or files to read (-r), not both"
    if args.json and args.report:
        return "--json and --report both write to standard output: choose one"
    return recording_problem(args)


def recording_problem(args: argparse.Namespace) -> str | None:
    """A one-sentence complaint about contradictory recording options, or None."""
    rotating = args.file_size is not None or args.rotate_seconds is not None
    if not args.write and (rotating or args.file_count is not None or args.pcap):
        return "-C, -G, -W and --pcap need -w FILE"
    if args.file_count is not None and not rotating:
        return "-W N keeps the last N rotated files: give -C MB or -G SECONDS too"
    if args.export_tunnel is not None and not args.write:
        return "--export-tunnel needs -w FILE for the export"
    if args.export_tunnel is not None and rotating:
        return "--export-tunnel writes one file: -C, -G and -W do not apply"
    if args.drop_user is not None and args.no_drop_privileges:
        return "-Z USER and --no-drop-privileges contradict each other"
    return None


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
    elif args.speed is not None and headless and args.serve is None and args.ui_socket is None:
        out.append("--speed paces the UI's replay: headless output reads the file as fast as it can")
    return out
