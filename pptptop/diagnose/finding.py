"""What a diagnosis says about a tunnel: a :class:`Finding`.

A finding names one cause (a stable ``code`` such as ``auth-failed``), how bad
it is, the packets that prove it (capture frame numbers, 1-based as tshark
counts), the error number a Windows client shows for it (KB923944), and what
to change. Codes, meanings and fixes are listed in ``docs/diagnosis.md``.
The types live in :mod:`pptptop.track.notes`, below every stage that reads
``Tunnel.findings``.
"""

from __future__ import annotations

from pptptop.track.notes import Finding, Severity, ordered

__all__ = ["Finding", "Severity", "ordered"]
