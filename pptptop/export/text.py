"""Make strings off the wire safe for a terminal.

Host names, vendor strings, user names, CHAP names and messages come from
the network: they may carry ANSI escape sequences or other control
characters meant to rewrite the operator's screen. Every such string passes
through :func:`printable` before it is printed (the UI additionally escapes
Rich markup).
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators and bidi overrides
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(s: object, limit: int = 256) -> str:
    """``s`` with every control character shown as an escape, cut to ``limit`` characters."""
    text = "" if s is None else str(s)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(_escape, text)


def quoted(s: object, limit: int = 256) -> str:
    """``printable(s)`` in double quotes, or ``-`` when there is nothing."""
    if s is None or s == "":
        return "-"
    return '"' + printable(s, limit).replace('"', '\\"') + '"'
