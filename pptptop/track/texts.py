"""One copy of each short text that many tunnels repeat (issue 23: memory per tunnel).

A server's address, its host name and vendor string, the success message it
sends, the CCP options each side asks for, the steps of a teardown ("call-clear
by client"): every tunnel of one server stores the same few texts, each decoded
or formatted anew. The tracker passes such a text through :class:`Texts` where a
tunnel keeps it, and keeps the first copy of each. Strings are immutable, so
sharing one changes nothing a reader can see.

Bounded: texts off the wire are cut short before they get here, and once
``limit`` different ones are held the table starts afresh (a flood of distinct
names costs the sharing, never memory).
"""

from __future__ import annotations

#: different texts held at most before the table starts afresh
TEXTS_LIMIT = 4096


class Texts:
    """``texts(s)`` is ``s``, or the equal string given before."""

    __slots__ = ("_held", "limit")

    def __init__(self, limit: int = TEXTS_LIMIT) -> None:
        self._held: dict[str, str] = {}
        self.limit = limit

    def __call__(self, s: str) -> str:
        held = self._held
        got = held.get(s)
        if got is not None:
            return got
        if len(held) >= self.limit:
            held.clear()
        held[s] = s
        return s

    def __len__(self) -> int:
        return len(self._held)
