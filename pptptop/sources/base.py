"""The one small interface every capture source implements.

A source is an iterator of :class:`~pptptop.wire.Frame` — ``(timestamp, interface,
linktype, bytes)`` — plus the names of its interfaces and its counters.
Files, pipes and live AF_PACKET rings all look the same to the pipeline,
which is what lets ``-r``, ``--demo`` and live capture share one path.
Every source also yields its frames as :class:`~pptptop.wire.Batch` es
(:meth:`Source.batches`): a source that can cut its input cheaply (a file's
chunks, a ring's blocks) has its own batch reader and says so
(:attr:`Source.cuts_batches`); the default groups the frames.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

from pptptop.sources.batch import group_frames
from pptptop.wire import Batch, Frame

#: Frame lives on the ground floor (pptptop.wire); named here for the modules that import it from sources
__all__ = ["CaptureFileError", "Frame", "InterfaceStats", "Source", "SourceStats"]

#: frames grouped into one batch for a source without a batch reader of its own
BATCH_FRAMES = 8192


@dataclass(slots=True)
class InterfaceStats:
    """Counters for one interface, as far as the source can know them."""

    name: str
    linktype: int = 0
    received: int = 0  # frames delivered to the pipeline
    kernel_drops: int = 0  # PACKET_STATISTICS tp_drops (live only)
    if_drops: int = 0  # interface-level drops from psutil (live only)
    up: bool = True
    error: str = ""  # last problem with this interface, for the header/log


@dataclass(slots=True)
class SourceStats:
    """What a source reports about itself: per interface and in total."""

    interfaces: dict[str, InterfaceStats] = field(default_factory=dict)
    bytes_read: int = 0  # file sources: offset reached in the file

    @property
    def received(self) -> int:
        return sum(i.received for i in self.interfaces.values())

    @property
    def kernel_drops(self) -> int:
        return sum(i.kernel_drops for i in self.interfaces.values())


class CaptureFileError(Exception):
    """A capture file that is corrupt or truncated.

    Raised only after every good frame before ``offset`` has been yielded,
    so the caller can report what was read and then the error.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path}: {reason} at byte offset {offset}")
        self.path = path
        self.offset = offset
        self.reason = reason


class Source(ABC):
    """A stream of frames from a file, a pipe or live interfaces."""

    #: True for live capture (the UI shows a live clock and drop counters).
    live: bool = False
    #: True when :meth:`batches` is the source's own reader, which cuts a batch of what is there as it comes;
    #: the default groups :data:`BATCH_FRAMES` frames, which on a live link would wait for thousands of them
    cuts_batches: bool = False

    @property
    @abstractmethod
    def name(self) -> str:
        """What the user asked for: a path, "-", or interface names."""

    @property
    @abstractmethod
    def interfaces(self) -> list[str]:
        """Interface names known so far (pcapng IDBs, live interfaces)."""

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Yield frames until the source ends or :meth:`close` is called."""

    def batches(self) -> Iterator[Batch]:
        """The same frames as :meth:`__iter__`, many at a time: by default grouped :data:`BATCH_FRAMES` at a
        time (copies); a source with a batch reader of its own overrides this and sets :attr:`cuts_batches`.
        Raises what iterating raises, after a batch of every frame before it."""
        return group_frames(self, BATCH_FRAMES)

    @abstractmethod
    def stats(self) -> SourceStats:
        """Counters; cheap enough to call ten times a second."""

    def close(self) -> None:  # noqa: B027 - optional for sources with nothing to release
        """Stop iterating and release resources; safe to call twice."""
