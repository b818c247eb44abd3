"""A direction's traffic by the second: the bounded history of one-second buckets a tunnel keeps."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

#: the one-second buckets of traffic a tunnel keeps per direction: 2 minutes
HISTORY_SECONDS = 120
Bucket = tuple[int, int, int]  # (capture second, bytes, packets)


class History:
    """A direction's past one-second buckets (``DirectionStats.history``), oldest first, the newest
    :data:`HISTORY_SECONDS` kept: three numbers a second in one array, not a tuple each in a deque (a deque
    takes 600 bytes before its first entry, issue 23)."""

    __slots__ = ("flat",)

    def __init__(self, buckets: Iterable[Bucket] = ()) -> None:
        self.flat = array("q", [v for b in buckets for v in b][-3 * HISTORY_SECONDS:])

    def append(self, bucket: Bucket, /) -> None:
        self.flat.extend(bucket)
        if len(self.flat) > 3 * HISTORY_SECONDS:
            del self.flat[:3]

    def __len__(self) -> int:
        return len(self.flat) // 3

    def __getitem__(self, i: int, /) -> Bucket:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("history index out of range")
        f = self.flat
        return f[3 * i], f[3 * i + 1], f[3 * i + 2]

    def __iter__(self) -> Iterator[Bucket]:
        f = self.flat
        for i in range(0, len(f), 3):
            yield f[i], f[i + 1], f[i + 2]

    def __reversed__(self) -> Iterator[Bucket]:
        f = self.flat
        for i in range(len(f) - 3, -1, -3):
            yield f[i], f[i + 1], f[i + 2]
