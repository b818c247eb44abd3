"""The exporters' name for :mod:`pptptop.diagnose.text`, where wire strings are made safe to show.

One definition for every layer that prints: the diagnosis, the recordings'
comments, ``--report`` and the UI.
"""

from __future__ import annotations

from pptptop.diagnose.text import printable, quoted

__all__ = ["printable", "quoted"]
