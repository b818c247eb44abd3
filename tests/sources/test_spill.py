"""The reader thread's hand-over between the live rings and the tracker (pptptop.sources.spill)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pptptop.sources.base import Frame
from pptptop.sources.batch import Batch, batch_from_frames
from pptptop.sources.spill import Spill


def size(b: Batch) -> int:
    return len(b.buf)


def batch(k: int, size: int = 1000) -> Batch:
    """A one-frame batch whose payload says which it is."""
    return batch_from_frames([Frame(float(k), "eth0", 1, k.to_bytes(4, "big") * (size // 4))])


def numbers(batches: Iterator[Batch]) -> list[int]:
    return [int.from_bytes(b.frame(0).data[:4], "big") for b in batches]


def test_batches_come_out_in_order_and_complete() -> None:
    stops: list[bool] = []
    spill = Spill(iter([batch(k) for k in range(500)]), lambda: stops.append(True), size, limit=10_000)
    assert numbers(spill) == list(range(500))
    assert spill.waiting == 0
    assert stops == []  # a source that ends by itself is not told to stop


def test_a_source_error_comes_after_the_batches_before_it() -> None:
    def source() -> Iterator[Batch]:
        yield batch(1)
        yield batch(2)
        raise OSError("ring gone")

    spill = Spill(source(), lambda: None, size)
    got = [next(spill), next(spill)]
    with pytest.raises(OSError, match="ring gone"):
        next(spill)
    assert numbers(iter(got)) == [1, 2]


def test_what_waits_is_bounded_by_the_limit() -> None:
    """A slow consumer: the thread stops draining at the limit (the kernel ring would take the rest)."""
    produced: list[int] = []

    def source() -> Iterator[Batch]:
        for k in range(200):
            produced.append(k)
            yield batch(k, 1000)

    spill = Spill(source(), lambda: None, size, limit=10_000)
    time.sleep(0.3)
    assert len(produced) <= 12  # ten waiting, one held back at the limit, one being made
    assert spill.waiting <= 10_000
    got = []
    for b in spill:
        got.append(b)
        assert spill.waiting <= 10_000
    assert numbers(iter(got)) == list(range(200))
    assert 9_000 <= spill.peak <= 10_000


def test_a_batch_bigger_than_the_limit_still_goes_through() -> None:
    spill = Spill(iter([batch(1, 100), batch(2, 50_000), batch(3, 100)]), lambda: None, size, limit=10_000)
    assert numbers(spill) == [1, 2, 3]


def test_close_stops_the_source_and_waits_for_its_cleanup() -> None:
    """The consumer leaves early (-c N): the source is stopped and its own cleanup runs in the thread."""
    stop = threading.Event()
    cleaned: list[str] = []

    def source() -> Iterator[Batch]:
        try:
            k = 0
            while not stop.is_set():
                yield batch(k)
                k += 1
        finally:
            time.sleep(0.2)  # releasing the rings takes a moment
            cleaned.append(threading.current_thread().name)

    spill = Spill(source(), stop.set, size, limit=5_000)  # the thread soon blocks at the limit
    assert numbers(iter([next(spill), next(spill)])) == [0, 1]
    spill.close()
    assert stop.is_set()
    assert cleaned == ["pptptop-ring"]  # done before close() returned, in the draining thread
    with pytest.raises(StopIteration):
        next(spill)


def test_leaving_a_for_loop_closes_it() -> None:
    """``yield from`` (LiveSource.batches) closes the spill when the pipeline's loop ends early."""
    stop = threading.Event()

    def source() -> Iterator[Batch]:
        k = 0
        while not stop.is_set():
            yield batch(k)
            k += 1

    def outer() -> Iterator[Batch]:
        yield from Spill(source(), stop.set, size, limit=5_000)

    for n, _ in enumerate(outer()):
        if n == 3:
            break
    assert stop.wait(5)
