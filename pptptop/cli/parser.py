"""The one parser of the ``pptptop`` command: every option, its type from :mod:`.validators`, its help."""

from __future__ import annotations

import argparse
from typing import NoReturn

from pptptop import __version__, probe
from pptptop.cli.validators import MORE, parse_speed, positive, whole
from pptptop.diagnose.config import DiagnosisConfig
from pptptop.exitcodes import EXIT_USAGE
from pptptop.export import service
from pptptop.inside import options as insideopts
from pptptop.serve import options as serveopts
from pptptop.track.tracker import Limits


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
    _capture_arguments(p)
    _recording_arguments(p)
    service.add_arguments(p)
    serveopts.add_arguments(p)
    _diagnosis_arguments(p)
    insideopts.add_arguments(p)
    probe.add_arguments(p)
    p.add_argument("--version", action="version", version=f"pptptop {__version__}")
    return p


def _capture_arguments(p: argparse.ArgumentParser) -> None:
    """Input, output mode, the UI and the tracker's bounds."""
    p.add_argument("interfaces", nargs="*", metavar="IFACE", help="interfaces to capture on live (or 'any')")
    p.add_argument("-i", "--interface", action="append", default=[], dest="iface_opt", metavar="IFACE",
                   help="an interface to capture on (repeatable)")
    p.add_argument("-r", "--read", action="append", default=[], metavar="FILE",
                   help="read a pcap/pcapng file ('-' for standard input); repeat to merge files by time")
    p.add_argument("-f", "--filter", metavar="EXPR",
                   help="capture filter (pcap syntax) instead of the default PPTP filter")
    p.add_argument("-c", "--count", type=whole(1), metavar="N", help="stop after N packets")
    p.add_argument("-B", "--buffer-size", type=whole(1), metavar="KiB",
                   help="live: the kernel's capture ring per interface, in KiB as tcpdump's -B "
                   "(default 65536; 8192 per interface with 'any')")
    p.add_argument("--queue", type=whole(0), metavar="MB",
                   help="live: at most this many MiB of packets drained from the rings wait while the tracker is "
                   "busy (default 256; 0: only the rings ride out a burst)")
    p.add_argument("--json", action="store_true",
                   help="print JSON (a document for files, one line per event live)")
    p.add_argument("--report", action="store_true", help="print a readable summary per tunnel")
    p.add_argument("--demo", action="store_true", help="replay the bundled demo capture")
    p.add_argument("--speed", default=None, type=parse_speed, metavar="1|10|max",
                   help="the UI's replay speed: 1 = real time, 10 = ten times, max = as fast as possible "
                   "(default: max for -r FILE, 1 for --demo; --json and --report always read at max)")
    p.add_argument("--theme", default="dark", metavar="NAME|FILE.tcss",
                   help="UI theme: dark, light, contrast, or a .tcss file")
    p.add_argument("--max-tunnels", type=whole(1), default=Limits().max_tunnels, metavar="N",
                   help="tunnels kept in memory before the oldest ended ones are evicted")
    p.add_argument("--idle-timeout", type=positive("a number of seconds"), default=Limits().idle_timeout,
                   metavar="SECONDS", help="a tunnel with no packet for this long is ended as idle")
    p.add_argument("--conntrack", action="store_true",
                   help="compare the NAT mapping seen on the wire with this machine's conntrack table "
                   "(Linux, root; implies --no-drop-privileges)")


def _recording_arguments(p: argparse.ArgumentParser) -> None:
    """The recording and privilege options (tcpdump's letters where tcpdump has one); docs/recording.md."""
    g = p.add_argument_group("recording")
    g.add_argument("-w", "--write", metavar="FILE",
                   help="record every captured packet to FILE (pcapng, one interface block per interface; "
                        "classic pcap if FILE ends in .pcap); with --export-tunnel, the export's file")
    g.add_argument("--pcap", action="store_true", help="write classic pcap instead of pcapng")
    g.add_argument("-C", "--file-size", type=positive(), metavar="MB",
                   help="start a new -w file before this many million bytes")
    g.add_argument("-G", "--rotate-seconds", type=positive(), metavar="SECONDS",
                   help="start a new -w file every SECONDS of capture time")
    g.add_argument("-W", "--file-count", type=whole(1), metavar="N",
                   help="with -C or -G: keep only the last N files")
    g.add_argument("--export-tunnel", metavar="ID|FILTER",
                   help="headless: write the packets kept for tunnel ID (or every tunnel the UI filter "
                        "FILTER matches, e.g. 'failed user=bob'), both NAT legs, to -w FILE")
    g.add_argument("--record-failed", metavar="DIR",
                   help="write one pcapng per tunnel that ends failed into DIR, with its diagnosis "
                        "as a comment")
    z = p.add_argument_group("privileges")
    z.add_argument("-Z", "--relinquish-privileges", dest="drop_user", metavar="USER",
                   help="after opening the capture and output files as root, run as USER "
                        "(default for live capture: $SUDO_USER, else nobody)")
    z.add_argument("--no-drop-privileges", action="store_true",
                   help="stay root, but keep only CAP_NET_ADMIN and CAP_NET_RAW (e.g. for conntrack reads)")


def _diagnosis_arguments(p: argparse.ArgumentParser) -> None:
    """``--export-hashes``, ``--show-secrets`` and the timeouts (defaults from the protocols)."""
    d = DiagnosisConfig()
    g = p.add_argument_group("diagnosis")
    g.add_argument("--export-hashes", metavar="FILE",
                   help="write every captured MS-CHAP exchange to FILE as NetNTLMv1 lines for an authorised "
                        "audit (hashcat -m 5500, john --format=netntlm); the file is created mode 0600")
    g.add_argument("--show-secrets", action="store_true",
                   help="show passwords seen in clear (PAP) in the findings; hidden by default")
    g.add_argument("--lcp-restart", type=positive(), default=d.lcp_restart, metavar="SECONDS",
                   help="PPP Restart timer (RFC 1661 §4.6, default %(default)s s)")
    g.add_argument("--lcp-max-configure", type=whole(1), default=d.lcp_max_configure, metavar="N",
                   help="PPP Max-Configure (RFC 1661 §4.6, default %(default)s): a negotiation unanswered for "
                        "restart × N seconds has failed")
    g.add_argument("--lcp-echo-failures", type=whole(1), default=d.lcp_echo_failures, metavar="N",
                   help="unanswered LCP Echo-Requests in a row that mean a dead link (default %(default)s)")
    g.add_argument("--pptp-echo-timeout", type=positive(), default=d.pptp_echo_timeout,
                   metavar="SECONDS", help="PPTP Echo-Reply wait (RFC 2637 §2.5, default %(default)s s)")
    g.add_argument("--syn-timeout", type=positive(), default=d.syn_timeout, metavar="SECONDS",
                   help="how long unanswered SYNs to TCP 1723 mean an unreachable server (default %(default)s s)")
