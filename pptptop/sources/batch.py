"""Many frames at once, without an object per frame: the fast path's input.

A :class:`~pptptop.wire.Batch` is a buffer (a file chunk, or a TPACKET_V3 ring block) and
arrays of where each frame's bytes start, how long they are and when they
were captured. The tracker's vectorised data path classifies and counts GRE
data packets in it with numpy and turns only the rest into :class:`Frame`
objects. Sources that can cut their input into batches cheaply implement
``batches()`` themselves; :meth:`Source.batches <pptptop.sources.base.Source.batches>` groups any other
source's frames with :func:`group_frames`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from pptptop.wire import Batch, Frame

#: Batch lives on the ground floor (pptptop.wire); named here for the modules that import it from sources
__all__ = ["Batch", "batch_from_frames", "group_frames", "merge_by_time"]


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


def merge_by_time(batches: list[Batch]) -> Batch:
    """``batches`` (of several interfaces, each in time order) as one batch in time order: what a live
    capture read from each interface's ring in turn, so that a session's frames on two interfaces reach
    the tracker in the order they crossed the wire. Frames of the same time keep their order."""
    if len(batches) == 1:
        return batches[0]
    index: dict[tuple[str, int], int] = {}
    bufs: list[bytes | memoryview] = []
    offsets, idx = [], []
    base = 0
    for b in batches:
        local = np.array([index.setdefault(x, len(index)) for x in b.ifaces], dtype=np.int64)
        offsets.append(b.offsets + base)
        idx.append(local[b.ifidx] if b.ifidx is not None else np.full(len(b), local[0], dtype=np.int64))
        bufs.append(b.buf)
        base += len(b.buf)
    ifaces = list(index)
    ts = np.concatenate([b.ts for b in batches])
    order = np.argsort(ts, kind="stable")
    return Batch(b"".join(bufs), np.concatenate(offsets)[order], np.concatenate([b.lengths for b in batches])[order],
                 ts[order], ifaces, np.concatenate(idx)[order] if len(ifaces) > 1 else None)


def group_frames(frames: Iterable[Frame], size: int = 8192) -> Iterator[Batch]:
    """``frames`` grouped ``size`` at a time (copies; the last batch may be shorter)."""
    chunk: list[Frame] = []
    try:
        for frame in frames:
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
