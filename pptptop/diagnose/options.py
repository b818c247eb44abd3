"""Command-line options of the diagnosis and the small pieces the CLI wires with them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO

from pptptop.diagnose.config import DiagnosisConfig
from pptptop.diagnose.engine import FindingChange, Listener
from pptptop.diagnose.hashes import HashCollector

_DEFAULT = DiagnosisConfig()


def _positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if x <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return x


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--export-hashes``, ``--show-secrets`` and the timeouts (defaults from the protocols)."""
    g = p.add_argument_group("diagnosis")
    g.add_argument("--export-hashes", metavar="FILE",
                   help="write every captured MS-CHAP exchange to FILE as NetNTLMv1 lines for an authorised "
                        "audit (hashcat -m 5500, john --format=netntlm); the file is created mode 0600")
    g.add_argument("--show-secrets", action="store_true",
                   help="show passwords seen in clear (PAP) in the findings; hidden by default")
    g.add_argument("--lcp-restart", type=_positive_float, default=_DEFAULT.lcp_restart, metavar="SECONDS",
                   help="PPP Restart timer (RFC 1661 §4.6, default %(default)s s)")
    g.add_argument("--lcp-max-configure", type=_positive_int, default=_DEFAULT.lcp_max_configure, metavar="N",
                   help="PPP Max-Configure (RFC 1661 §4.6, default %(default)s): a negotiation unanswered for "
                        "restart × N seconds has failed")
    g.add_argument("--lcp-echo-failures", type=_positive_int, default=_DEFAULT.lcp_echo_failures, metavar="N",
                   help="unanswered LCP Echo-Requests in a row that mean a dead link (default %(default)s)")
    g.add_argument("--pptp-echo-timeout", type=_positive_float, default=_DEFAULT.pptp_echo_timeout,
                   metavar="SECONDS", help="PPTP Echo-Reply wait (RFC 2637 §2.5, default %(default)s s)")
    g.add_argument("--syn-timeout", type=_positive_float, default=_DEFAULT.syn_timeout, metavar="SECONDS",
                   help="how long unanswered SYNs to TCP 1723 mean an unreachable server (default %(default)s s)")


def config(args: argparse.Namespace) -> DiagnosisConfig:
    """The rules' configuration from parsed arguments."""
    return DiagnosisConfig(lcp_restart=args.lcp_restart, lcp_max_configure=args.lcp_max_configure,
                           lcp_echo_failures=args.lcp_echo_failures, pptp_echo_timeout=args.pptp_echo_timeout,
                           syn_timeout=args.syn_timeout)


def json_lines(out: IO[str]) -> Listener:
    """Live ``--json``: one line per finding that appears or is withdrawn, flushed at once."""

    def write(change: FindingChange) -> None:
        out.write(json.dumps(change.to_dict(), default=str) + "\n")
        out.flush()

    return write


def write_hashes(path: str, collector: HashCollector) -> bool:
    """Finish ``--export-hashes`` and say how many exchanges went where (stderr); False on a write error."""
    try:
        n = collector.finish()
    except OSError as e:
        print(f"pptptop: cannot write --export-hashes {path}: {e.strerror or e}", file=sys.stderr)
        return False
    print(f"pptptop: wrote {n} MS-CHAP exchange{'s' if n != 1 else ''} to {path}", file=sys.stderr)
    return True
