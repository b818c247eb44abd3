"""The exporters' name for :mod:`pptptop.diagnose.text`, where wire strings are made safe to show.

One definition for every layer that prints: the diagnosis, the recordings'
comments, ``--report`` and the UI.
"""

from __future__ import annotations

from pptptop.diagnose.text import printable, quoted

__all__ = ["printable", "quoted", "size"]


def size(n: float) -> str:
    """Bytes with a decimal unit: ``512 B``, ``1.5 kB``, ``3.2 MB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
