"""Diagnosis: tracker events → findings (cause, Windows error, evidence packets, fix).

``Diagnoser(config).attach(tracker)`` keeps ``tunnel.findings``
current; :func:`diagnosis_json` and :func:`report_lines` are the ``--json``
and ``--report`` hooks. Every code is documented in ``docs/diagnosis.md``.
"""

from __future__ import annotations

from typing import Any

from pptptop.diagnose.config import DiagnosisConfig
from pptptop.diagnose.engine import Diagnoser, FindingChange
from pptptop.diagnose.finding import Finding, Severity, ordered
from pptptop.diagnose.rules import RULES
from pptptop.diagnose.text import printable
from pptptop.track.model import Tunnel
from pptptop.track.notes import Withdrawn

__all__ = [
    "RULES",
    "Diagnoser",
    "DiagnosisConfig",
    "Finding",
    "FindingChange",
    "Severity",
    "Withdrawn",
    "diagnosis_json",
    "ordered",
    "report_lines",
]

_MARK = {Severity.ERROR: "✗", Severity.WARNING: "!", Severity.INFO: "i"}


def diagnosis_json(tunnel: Tunnel) -> list[dict[str, Any]]:
    """The ``diagnosis`` list of a tunnel in ``--json`` (errors first)."""
    return [f.to_dict() for f in tunnel.findings]


def report_lines(tunnel: Tunnel) -> list[str]:
    """The diagnosis section of a tunnel in ``--report``."""
    found = tunnel.findings
    if not found:
        return []
    lines = ["  diagnosis"]
    for f in found:
        win = f" (Windows error {f.windows_error})" if f.windows_error is not None else ""
        ev = f"  [frames {', '.join(map(str, f.evidence[:8]))}{', …' if len(f.evidence) > 8 else ''}]" \
            if f.evidence else ""
        lines.append(f"    {_MARK[f.severity]} {f.severity.value:7} {f.code}{win}: {printable(f.title, 160)}")
        lines.append(f"        {printable(f.detail, 600)}{ev}")
        if f.hint:
            lines.append(f"        fix: {printable(f.hint, 600)}")
    return lines
