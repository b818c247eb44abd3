"""Small text helpers for the UI: rates, ages, sparklines, and wire strings made safe.

Pure functions (Rich only, no Textual), so they are tested without a terminal.
Every string that came off the wire goes through :func:`wire` (or
:func:`wire_text`): control characters become visible escapes
(:func:`pptptop.export.text.printable`) and the result is a Rich ``Text``, never
markup, so ``[red]`` in a user name is shown as the six characters it is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.text import Text

from pptptop.export.text import printable

SPARK_BLOCKS = " ▁▂▃▄▅▆▇█"


def wire(s: object, limit: int = 256) -> str:
    """A string off the wire with every control character escaped (still plain text, not markup)."""
    return printable(s, limit)


def wire_text(s: object, limit: int = 256, style: str = "") -> Text:
    """A string off the wire as a Rich ``Text``: escaped controls, no markup interpretation."""
    return Text(printable(s, limit), style=style, no_wrap=True)


def bits_rate(bytes_per_s: float) -> str:
    """A compact bit rate the way iftop prints it: ``0``, ``820b``, ``12.3k``, ``1.20M``."""
    bits = bytes_per_s * 8
    if bits < 1:
        return "0"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bits >= scale:
            v = bits / scale
            return f"{v:.2f}{unit}" if v < 10 else f"{v:.1f}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{bits:.0f}b"


def age(seconds: float) -> str:
    """A duration in at most two units: ``12s``, ``5m03s``, ``2h14m``, ``3d04h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def duration(seconds: float) -> str:
    """A phase duration with sub-second precision where it matters: ``0.004s``, ``1.25s``, ``2m03s``."""
    if seconds < 1:
        return f"{seconds:.3f}s"
    if seconds < 60:
        return f"{seconds:.2f}s"
    return age(seconds)


def sparkline(values: Sequence[int], width: int) -> str:
    """``values`` squeezed into ``width`` block characters (sums of equal groups), scaled to the max."""
    if width <= 0:
        return ""
    n = len(values)
    if n == 0:
        return " " * width
    buckets: list[int] = []
    for i in range(width):
        lo = i * n // width
        hi = max(lo + 1, (i + 1) * n // width)
        buckets.append(sum(values[lo:hi]))
    top = max(buckets)
    if top <= 0:
        return " " * width
    steps = len(SPARK_BLOCKS) - 1
    out = []
    for b in buckets:
        if b <= 0:
            out.append(" ")
        else:
            out.append(SPARK_BLOCKS[max(1, round(b / top * steps))])
    return "".join(out)


def clock(ts: float, with_date: bool = False) -> str:
    """A capture timestamp in local time, to the millisecond: ``14:03:07.125``."""
    if not ts:
        return "--:--:--"
    lt = time.localtime(ts)
    ms = int((ts - int(ts)) * 1000)
    base = time.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S", lt)
    return f"{base}.{ms:03d}"
