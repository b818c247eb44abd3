"""A reader thread between the live rings and the tracker: a burst waits in memory, not in the kernel.

The kernel drops what arrives while a ring is full, and a ring is emptied
only when blocks are copied out of it. The tracker is sometimes busy for a
while: the handshakes of two hundred clients reconnecting at once (a server
restart) cost tens of microseconds a packet, and for most of a second no
block would be copied out while the data behind them keeps arriving at line
rate. A thread that does nothing but drain the rings keeps them empty; what
it drained (batches, or lists of frames) waits here, in capture order, up to
``limit`` bytes. Past that the thread stops draining and the ring takes the
rest, so a sustained overload still ends in the kernel's (counted) drops and
memory stays bounded.

The draining thread needs the interpreter lock only to copy a block (a
fraction of a millisecond per MiB); the tracker thread lets it have the lock
at every switch interval (5 ms), far less than a ring's worth of traffic.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

#: how much drained traffic may wait for the tracker (on top of each interface's kernel ring)
SPILL_LIMIT = 256 << 20

C = TypeVar("C")  # a chunk: a Batch, or a list of frames


class Spill(Generic[C]):
    """Iterate ``chunks`` in a thread of its own; they are handed over in order.

    ``size`` tells a chunk's bytes (what counts against ``limit``). ``stop``
    ends the source (it is called when the consumer is done); an exception
    raised by the source is raised again by the consumer after the chunks
    before it.
    """

    def __init__(self, chunks: Iterator[C], stop: Callable[[], None], size: Callable[[C], int],
                 limit: int = SPILL_LIMIT, name: str = "pptptop-ring") -> None:
        self._source = chunks
        self._stop = stop
        self._size = size
        self._limit = limit
        self._queue: deque[tuple[C, int]] = deque()
        self._bytes = 0
        self.peak = 0  #: most bytes that waited at once
        self._ended = False  # the source is exhausted (or failed)
        self._closed = False  # the consumer is gone
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._fill, name=name, daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Bytes drained but not yet taken."""
        return self._bytes

    def _fill(self) -> None:
        cond = self._cond
        try:
            for chunk in self._source:
                size = self._size(chunk)
                with cond:
                    # a chunk bigger than the limit still goes through, alone
                    while self._queue and self._bytes + size > self._limit and not self._closed:
                        cond.wait(0.1)
                    if self._closed:
                        break
                    self._queue.append((chunk, size))
                    self._bytes += size
                    if self._bytes > self.peak:
                        self.peak = self._bytes
                    cond.notify_all()
        except BaseException as e:  # handed to the consumer, raised there
            self._error = e
        finally:
            close = getattr(self._source, "close", None)
            if callable(close):
                close()  # a generator's own cleanup (the rings' release) runs here, in this thread
            with cond:
                self._ended = True
                cond.notify_all()

    def __iter__(self) -> Iterator[C]:
        return self

    def __next__(self) -> C:
        cond = self._cond
        with cond:
            while not self._queue:
                if self._ended:
                    err, self._error = self._error, None
                    if err is not None:
                        raise err
                    raise StopIteration
                cond.wait()
            chunk, size = self._queue.popleft()
            self._bytes -= size
            cond.notify_all()
            return chunk

    def close(self) -> None:
        """The consumer is done: stop the source and wait until its thread has released it."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._bytes = 0
            self._cond.notify_all()
        self._stop()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
