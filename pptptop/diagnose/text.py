"""Make strings off the wire safe to show: the one escaping function of pptptop.

Host names, vendor strings, user names, CHAP names and messages, LCP
Terminate texts and interface names come from the network or from a capture
file: they may carry ANSI escape sequences (``ESC[2J``), OSC sequences (an
OSC 52 clipboard write), CR/LF that forge a line, or bidirectional overrides
meant to rewrite what the operator reads. Every such string passes through
:func:`printable` before it reaches a terminal, a report, a finding or a
comment in a recording (the UI additionally escapes Rich markup).

It lives here, in the lowest layer that writes text for people, so that the
diagnosis, the recordings' comments, the exporters and the UI share it.
:func:`printable` never escapes a backslash, so applying it to text it has
already escaped changes nothing: a later layer may apply it again safely.
"""

from __future__ import annotations


def _escape(ch: str) -> str:
    if ch.isprintable():
        return ch
    c = ord(ch)
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


def printable(s: object, limit: int = 256) -> str:
    """``s`` cut to ``limit`` characters (then ``…``), every character that is not printable shown as an escape.

    "Printable" is :meth:`str.isprintable`: C0 and C1 controls, DEL, line and
    paragraph separators, format characters (bidirectional overrides,
    zero-width characters) and unassigned code points are escaped as
    ``\\x1b``, ``\\u202e``; the space is kept.
    """
    text = "" if s is None else str(s)
    cut = len(text) > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():
        text = "".join(map(_escape, text))
    return text + "…" if cut else text


def quoted(s: object, limit: int = 256, mark: str = '"') -> str:
    """``printable(s)`` between ``mark`` quotes (a quote inside shown as ``\\"``), or ``-`` when there is nothing."""
    if s is None or s == "":
        return "-"
    return mark + printable(s, limit).replace(mark, "\\" + mark) + mark
