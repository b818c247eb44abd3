"""What a diagnosis says about a tunnel: a :class:`Finding`.

A finding names one cause (a stable ``code`` such as ``auth-failed``), how bad
it is, the packets that prove it (capture frame numbers, 1-based as tshark
counts), the error number a Windows client shows for it (KB923944), and what
to change. Codes, meanings and fixes are listed in ``docs/diagnosis.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """``error``: why the tunnel failed; ``warning``: unhealthy or insecure; ``info``: benign, said so."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Sort key: errors first."""
        return _RANK[self]


_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True, slots=True)
class Finding:
    """One diagnosis of one tunnel.

    ``ts`` is the capture time at which the finding appeared: its decisive
    packet, or the tick at which the timeout that defines it expired.
    ``evidence`` holds frame numbers of packets in the capture. A
    ``provisional`` finding is what the packets so far point to while the
    timeout that decides it still runs (SYNs unanswered before the client
    gives up): it is confirmed, or withdrawn, when that timeout expires or
    the input ends.
    """

    code: str
    severity: Severity
    title: str
    detail: str
    evidence: list[int] = field(default_factory=list)
    windows_error: int | None = None
    hint: str = ""
    ts: float = 0.0
    provisional: bool = False

    def same_content(self, other: Finding) -> bool:
        """True when only ``ts`` differs (a rule re-derived the same finding)."""
        return (self.code, self.severity, self.title, self.detail, self.evidence, self.windows_error,
                self.hint, self.provisional) == (other.code, other.severity, other.title, other.detail,
                                                 other.evidence, other.windows_error, other.hint, other.provisional)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form (docs/json.md, ``diagnosis``)."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "title": self.title,
            "detail": self.detail,
            "evidence": list(self.evidence),
            "windows_error": self.windows_error,
            "hint": self.hint,
            "time": self.ts,
            "provisional": self.provisional,
        }


def ordered(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; within one severity in order of appearance."""
    return sorted(findings, key=lambda f: (f.severity.rank, f.ts))
