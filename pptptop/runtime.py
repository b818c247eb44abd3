"""Adjustments the ``pptptop`` command makes to its own interpreter before it starts.

Only :func:`pptptop.cli.run` (the console script and ``python -m pptptop``)
calls these: importing pptptop as a library changes nothing.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterator


def enum_lookup_as_in_3_12() -> bool:
    """On Python 3.11, look enum members up as 3.12 does: without ``EnumType.__getattr__``.

    Every member is an attribute of its class (``EventKind.MESSAGE`` is in
    ``EventKind.__dict__``); ``EnumType.__getattr__`` only searches
    ``_member_map_`` again when that lookup fails, which it never does for a
    member. But a metaclass with a ``__getattr__`` routes *every* attribute
    read on every enum class through CPython's generic hook: 75 ns instead of
    18 ns. pptptop's per-packet code (decoders, tracker, NAT correlator,
    diagnosis) reads enum members some 30 times per negotiation or keepalive
    frame: without the hook that path takes 15 % less time, a ``-r FILE
    --json`` run of the 1M-packet benchmark about 4 % less. Python
    3.12 deleted the method as dead code (python/cpython#106762); textual,
    rich, numpy, scapy and psutil all run on 3.12, so none relies on it.

    Done only when every member of every enum created so far is in its
    class's ``__dict__`` (what makes the method dead code). Returns whether
    the method was removed.
    """
    if sys.version_info >= (3, 12) or "__getattr__" not in vars(enum.EnumType):
        return False
    if any(name not in vars(cls) for cls in _enums(enum.Enum) for name in cls._member_map_):
        return False
    del enum.EnumType.__getattr__  # type: ignore[attr-defined]
    return True


def _enums(base: type[enum.Enum]) -> Iterator[type[enum.Enum]]:
    for cls in base.__subclasses__():
        yield cls
        yield from _enums(cls)
