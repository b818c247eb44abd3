"""One path for every input: source → decode → track (→ diagnose, record).

Live capture, ``-r`` replay and ``--demo`` all go through :class:`Pipeline`;
the UI only ever reads the tracker under :attr:`Pipeline.lock`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pptptop.sources.base import CaptureFileError, Frame, Source
from pptptop.sources.batch import batches_of
from pptptop.track.fastpath import feed_batch
from pptptop.track.tracker import Tracker

FrameHook = Callable[[int, Frame], None]


class Pipeline:
    """Feeds a source into a tracker, optionally paced, in batches under a lock."""

    BATCH = 512  # frames per lock hold: keeps the UI's snapshots cheap and the hot loop tight

    def __init__(
        self,
        source: Source,
        tracker: Tracker,
        *,
        count: int | None = None,
        speed: float | None = None,
        frame_hooks: list[FrameHook] | None = None,
    ) -> None:
        self.source = source
        self.tracker = tracker
        self.count = count
        self.speed = speed  # None or 0: as fast as possible; 1.0: real time; 10: ten times
        self.frame_hooks = frame_hooks or []
        self.lock = threading.RLock()
        self.frames = 0
        self.error: CaptureFileError | None = None
        self.crash: BaseException | None = None  # a bug, not bad input: the CLI shows the traceback
        self.done = threading.Event()
        self._stop = threading.Event()
        self.paused = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        self.source.close()

    @property
    def batched(self) -> bool:
        """Whether the vectorised data path can be used: nothing needs to see frames one by one."""
        return not (self.speed or self.frame_hooks or self.count is not None)

    def run(self) -> None:
        """Read until the source ends, ``count`` frames, or :meth:`stop`. Never raises for bad input."""
        if self.batched:
            self._run_batches()
            return
        feed = self.tracker.feed
        hooks = self.frame_hooks
        lock = self.lock
        stop = self._stop
        limit = self.count
        n = self.frames
        pacing = bool(self.speed)
        t0_wall = t0_cap = 0.0
        batch = 0
        lock.acquire()
        try:
            for frame in self.source:
                n += 1
                if pacing:
                    if not t0_cap:
                        t0_wall, t0_cap = time.monotonic(), frame.ts
                    due = t0_wall + (frame.ts - t0_cap) / (self.speed or 1.0)
                    delay = due - time.monotonic()
                    if delay > 0.002:
                        lock.release()
                        try:
                            stop.wait(min(delay, 1.0)) if delay < 1.0 else self._sleep_until(due)
                        finally:
                            lock.acquire()
                    while self.paused.is_set() and not stop.is_set():
                        lock.release()
                        try:
                            time.sleep(0.05)
                        finally:
                            lock.acquire()
                        t0_wall, t0_cap = time.monotonic(), frame.ts
                feed(n, frame.ts, frame.iface, frame.linktype, frame.data)
                for hook in hooks:
                    hook(n, frame)
                if limit is not None and n >= limit:
                    break
                batch += 1
                if batch >= self.BATCH:
                    batch = 0
                    self.frames = n
                    lock.release()
                    lock.acquire()
                    if stop.is_set():
                        break
        except CaptureFileError as e:
            self.error = e
        except Exception as e:
            self.crash = e
        finally:
            self.frames = n
            st = self.tracker.stats
            if st.last_ts is None and self.tracker.now:
                st.last_ts = self.tracker.now
            self.tracker.finish()
            lock.release()
            self.done.set()

    def _run_batches(self) -> None:
        """Max speed, no hooks: whole batches through :func:`pptptop.track.fastpath.feed_batch`."""
        lock = self.lock
        stop = self._stop
        n = self.frames
        lock.acquire()
        try:
            for batch in batches_of(self.source):
                feed_batch(self.tracker, batch, n + 1)
                n += len(batch)
                self.frames = n
                lock.release()
                lock.acquire()
                if stop.is_set():
                    break
        except CaptureFileError as e:
            self.error = e
        except Exception as e:
            self.crash = e
        finally:
            self.frames = n
            self.tracker.finish()
            lock.release()
            self.done.set()

    def _sleep_until(self, due: float) -> None:
        while not self._stop.is_set():
            left = due - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, 0.2))
