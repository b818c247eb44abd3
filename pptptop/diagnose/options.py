"""The small pieces the CLI wires with the diagnosis: its configuration from the options, live JSON lines,
``--export-hashes``. The options themselves are declared and checked in :mod:`pptptop.cli.parser`."""

from __future__ import annotations

import argparse
import json
from typing import IO

from pptptop.diagnose.config import DiagnosisConfig
from pptptop.diagnose.engine import FindingChange, Listener
from pptptop.diagnose.hashes import HashCollector


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


def write_hashes(path: str, collector: HashCollector) -> str:
    """Finish ``--export-hashes``: the sentence that says how many exchanges went where, for the CLI to print.

    Raises :class:`HashExportError` (its message a sentence too) when the file cannot be written.
    """
    try:
        n = collector.finish()
    except OSError as e:
        raise HashExportError(f"cannot write --export-hashes {path}: {e.strerror or e}") from e
    return f"wrote {n} MS-CHAP exchange{'s' if n != 1 else ''} to {path}"


class HashExportError(Exception):
    """``--export-hashes`` could not be finished: one sentence for the user."""
