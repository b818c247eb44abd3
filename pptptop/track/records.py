"""A settled tunnel's records in one compressed string, and back (issue 23: memory per tunnel).

``Tunnel.pack_records`` keeps what a closed tunnel's negotiation left (its LCP, auth, NCP and CCP records,
its end...) as one string of a few hundred bytes until someone reads it again. The records are pickled:
our own objects only, never anything read off the wire as a pickle. A record (a dataclass with slots, or a
:class:`~pptptop.track.sides.Sides`) is pickled as its class and the tuple of its slots' values: the
``__getstate__`` a dataclass with slots is given builds a list through ``dataclasses.fields()`` for each
object, and took four fifths of the time. zlib then starts from a preset dictionary, the same records of a
new tunnel (``zdict``): every tunnel's pickle names the same classes. :func:`stow` and :func:`restore` pack
and unpack an object's attributes in place, for a settled tunnel and a closed connection alike.
"""

from __future__ import annotations

import io
import operator
import pickle
import zlib
from collections.abc import Callable
from typing import Any

_PROTOCOL = pickle.HIGHEST_PROTOCOL
#: zlib's level: the strings are small and read rarely; level 1 packs a storm tunnel's records to 0.75 KB
_LEVEL = 1
#: zlib's window (4 KB, enough for the preset dictionary and one tunnel's records) and its memory level: the
#: defaults' 256 KB of state, set to zero for every string, took a fifth of the time
_WBITS = 12
_MEMLEVEL = 4

#: per class: its slots' names and a getter of their values (None: pickled as pickle does)
_LAYOUT: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]] | None] = {}


def _layout(cls: type) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]] | None:
    try:
        return _LAYOUT[cls]
    except KeyError:
        pass
    names = tuple(s for c in reversed(cls.__mro__) for s in vars(c).get("__slots__", ())
                  if s not in ("__weakref__", "__dict__"))
    # ours, with every attribute in a slot (an instance with a __dict__ would lose what is in it)
    mine = cls.__module__.startswith("pptptop.") and cls.__dictoffset__ == 0 and len(names) >= 2
    layout = (names, operator.attrgetter(*names)) if mine else None
    _LAYOUT[cls] = layout
    return layout


def _record(cls: type, values: tuple[Any, ...]) -> Any:
    """A record again: its class, its slots set (unpickling calls this)."""
    obj: Any = object.__new__(cls)
    layout = _layout(cls)
    assert layout is not None
    for name, value in zip(layout[0], values, strict=True):
        object.__setattr__(obj, name, value)
    return obj


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        layout = _layout(type(obj))
        if layout is None:
            return NotImplemented
        try:
            values = layout[1](obj)
        except AttributeError:
            return NotImplemented  # a slot with no value: as pickle does it (it leaves such a slot out)
        return _record, (type(obj), values)


def dumps(values: tuple[Any, ...]) -> bytes:
    """``values`` pickled, records as their slots' values."""
    buf = io.BytesIO()
    _Pickler(buf, _PROTOCOL).dump(values)
    return buf.getvalue()


def pack(values: tuple[Any, ...], zdict: bytes) -> bytes:
    """``values`` in one compressed string (``zdict``: :func:`dumps` of typical values)."""
    z = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, _MEMLEVEL, zlib.Z_DEFAULT_STRATEGY, zdict)
    return z.compress(dumps(values)) + z.flush()


def unpack(blob: bytes, zdict: bytes) -> tuple[Any, ...]:
    """What :func:`pack` packed, with the same ``zdict``."""
    values: tuple[Any, ...] = pickle.loads(zlib.decompressobj(_WBITS, zdict).decompress(blob))
    return values


def stow(obj: Any, names: tuple[str, ...], zdict: bytes, packed: type) -> None:
    """Pack ``obj``'s attributes ``names`` into its ``records``, leave them with no value, and make ``obj`` of
    class ``packed``: a subclass of its own whose ``__getattr__`` (called only for an attribute with no
    value) is :func:`restore`'s. Should one of them hold what pickle cannot take, ``obj`` is left as it is:
    it takes more memory, and nothing is lost."""
    try:
        blob = pack(tuple(getattr(obj, name) for name in names), zdict)
    except (pickle.PicklingError, TypeError):
        return
    restow(obj, blob, names, packed)


def restow(obj: Any, blob: bytes, names: tuple[str, ...], packed: type) -> None:
    """Make ``obj`` packed as ``blob`` again: what :func:`stow` packed and :func:`restore` unpacked, when only
    a reader (an export) came between, so that the values are those ``blob`` holds."""
    for name in names:
        delattr(obj, name)
    obj.records = blob
    obj.__class__ = packed


def restore(obj: Any, name: str, names: tuple[str, ...], zdict: bytes, plain: type) -> Any:
    """``obj.name``, one of the attributes :func:`stow` packed: all of them set again, and ``obj`` of class
    ``plain`` (as :class:`importlib.util.LazyLoader` makes a lazy module a plain one on its first read)."""
    blob = obj.records
    if name not in names or blob is None:
        raise AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}")
    for n, v in zip(names, unpack(blob, zdict), strict=True):
        setattr(obj, n, v)
    obj.records = None
    obj.__class__ = plain
    return getattr(obj, name)
