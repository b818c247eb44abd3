"""A value per side of a tunnel, ``"client"`` and ``"server"``, with a dict's interface in three slots.

A tunnel holds a dozen of these (options each side asked for, which side opened LCP, its magic number, its
FIN...). As dicts they took 184 bytes each once a key was set, a sixth of what a closed tunnel holds
(issue 23); a :class:`Sides` takes 56. The keys iterate in the order they were first set, as a dict's
would: the JSON export keeps that order.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, TypeVar

V = TypeVar("V")

SIDES = ("client", "server")
_SERVER_FIRST = ("server", "client")
_CLIENT = ("client",)
_SERVER = ("server",)


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"

    # one sentinel, also in copies (the UI's snapshots deep-copy a tunnel's records)
    def __copy__(self) -> _Unset:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Unset:
        return self

    def __reduce__(self) -> str:
        return "_UNSET"


_UNSET: Any = _Unset()


class Sides(MutableMapping[str, V]):
    """``"client"`` and ``"server"`` to a value each, either unset. Any other key is a ``KeyError``."""

    __slots__ = ("_client", "_server", "_server_first")

    def __init__(self, client: V = _UNSET, server: V = _UNSET) -> None:
        self._client = client
        self._server = server
        self._server_first = client is _UNSET and server is not _UNSET

    def __getitem__(self, side: str) -> V:
        v = self._client if side == "client" else self._server if side == "server" else _UNSET
        if v is _UNSET:
            raise KeyError(side)
        return v  # type: ignore[no-any-return]

    def get(self, side: str, default: Any = None) -> Any:
        v = self._client if side == "client" else self._server if side == "server" else _UNSET
        return default if v is _UNSET else v

    def __contains__(self, side: object) -> bool:
        return (side == "client" and self._client is not _UNSET) or (side == "server" and self._server is not _UNSET)

    def __setitem__(self, side: str, value: V) -> None:
        if side == "client":
            if self._client is _UNSET:  # a new key goes last, as in a dict
                self._server_first = self._server is not _UNSET
            self._client = value
        elif side == "server":
            if self._server is _UNSET:
                self._server_first = self._client is _UNSET
            self._server = value
        else:
            raise KeyError(side)

    def __delitem__(self, side: str) -> None:
        if side not in self:
            raise KeyError(side)
        if side == "client":
            self._client = _UNSET
        else:
            self._server = _UNSET

    def __iter__(self) -> Iterator[str]:
        client, server = self._client is not _UNSET, self._server is not _UNSET
        if client and server:
            return iter(_SERVER_FIRST if self._server_first else SIDES)
        return iter(_CLIENT if client else _SERVER if server else ())

    def setdefault(self, side: str, default: Any = None) -> Any:
        """``self[side]``, set to ``default`` first if unset (the mixin's would raise and catch a KeyError)."""
        v = self.get(side, _UNSET)
        if v is _UNSET:
            self[side] = default
            return default
        return v

    def __len__(self) -> int:
        return (self._client is not _UNSET) + (self._server is not _UNSET)

    def __repr__(self) -> str:
        return f"Sides({dict(self)!r})"

    def swapped(self) -> Sides[V]:
        """The same values, each on the other side (the roles were guessed the wrong way round)."""
        s: Sides[V] = Sides()
        for side in self:  # in this order, as a dict comprehension over the items would
            s["server" if side == "client" else "client"] = self[side]
        return s
