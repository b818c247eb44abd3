"""Many frames at once, without an object per frame: the fast path's input.

A :class:`Batch` is a buffer (a file chunk, or a TPACKET_V3 ring block) and
arrays of where each frame's bytes start, how long they are and when they
were captured. The tracker's vectorised data path classifies and counts GRE
data packets in it with numpy and turns only the rest into :class:`Frame`
objects. Sources that can cut their input into batches cheaply implement
``batches()``; :func:`batches_of` wraps any other source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pptptop.sources.base import Frame, Source

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


@dataclass(slots=True)
class Batch:
    """Frames ``i`` are ``buf[offsets[i]:offsets[i] + lengths[i]]``, captured at ``ts[i]``.

    ``ifaces`` names the interfaces as ``(name, linktype)``; ``ifidx[i]``
    indexes it, or ``ifidx`` is None when every frame is on ``ifaces[0]``.
    """

    buf: bytes | memoryview
    offsets: I64
    lengths: I64
    ts: F64
    ifaces: list[tuple[str, int]]
    ifidx: I64 | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def frame(self, i: int) -> Frame:
        off = int(self.offsets[i])
        name, linktype = self.ifaces[0 if self.ifidx is None else int(self.ifidx[i])]
        return Frame(float(self.ts[i]), name, linktype, bytes(self.buf[off : off + int(self.lengths[i])]))

    def view(self) -> U8:
        return np.frombuffer(self.buf, dtype=np.uint8)

    def part(self, lo: int, hi: int) -> Batch:
        """Frames ``lo`` to ``hi`` (the same buffer, no copy)."""
        return Batch(self.buf, self.offsets[lo:hi], self.lengths[lo:hi], self.ts[lo:hi], self.ifaces,
                     None if self.ifidx is None else self.ifidx[lo:hi])


def batch_from_frames(frames: list[Frame]) -> Batch:
    """One batch holding copies of ``frames`` (for sources without a native batch reader)."""
    ifaces: list[tuple[str, int]] = []
    index: dict[tuple[str, int], int] = {}
    idx = np.empty(len(frames), dtype=np.int64)
    lengths = np.fromiter((len(f.data) for f in frames), dtype=np.int64, count=len(frames))
    offsets = np.zeros(len(frames), dtype=np.int64)
    if len(frames) > 1:
        np.cumsum(lengths[:-1], out=offsets[1:])
    for i, f in enumerate(frames):
        key = (f.iface, f.linktype)
        j = index.get(key)
        if j is None:
            j = index[key] = len(ifaces)
            ifaces.append(key)
        idx[i] = j
    ts = np.fromiter((f.ts for f in frames), dtype=np.float64, count=len(frames))
    return Batch(
        b"".join(f.data for f in frames),
        offsets,
        lengths,
        ts,
        ifaces or [("", 1)],
        None if len(ifaces) <= 1 else idx,
    )


def batches_of(source: Source, size: int = 8192) -> Iterator[Batch]:
    """The source's own batches if it has a batch reader, else its frames grouped ``size`` at a time."""
    native = getattr(source, "batches", None)
    if callable(native):
        yield from native()
        return
    chunk: list[Frame] = []
    try:
        for frame in source:
            chunk.append(frame)
            if len(chunk) >= size:
                yield batch_from_frames(chunk)
                chunk = []
    except Exception:
        # a corrupt file raises here: what was read before it still goes through first
        if chunk:
            yield batch_from_frames(chunk)
        raise
    if chunk:
        yield batch_from_frames(chunk)
