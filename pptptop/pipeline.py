"""One path for every input: source → decode → track (→ diagnose, record).

Live capture, ``-r`` replay and ``--demo`` all go through :class:`Pipeline`;
the UI only ever reads the tracker under :attr:`Pipeline.lock`.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

from pptptop.sources.base import CaptureFileError, Frame, Source
from pptptop.sources.batch import Batch, batch_from_frames
from pptptop.track.tracker import Tracker

FrameHook = Callable[[int, Frame], None]
#: called with the number of the batch's first frame and the batch (frames of a reused buffer: copy them)
BatchHook = Callable[[int, Batch], None]

#: cyclic-GC thresholds while capturing: a full collection walks the tracker's whole heap and stops every
#: thread meanwhile; collecting young objects rarer keeps UI keys responsive and the CPU of a run lower
#: (docs/benchmark.md has the figures)
GC_THRESHOLDS = (50_000, 20, 100)
#: frames fed to the tracker at once: a file's batch holds up to 128k frames, and the batch path's arrays
#: and lists for all of them (a few MB each) made the peak RSS of a reconnect storm ~20 MB higher and left
#: the allocator's heaps fragmented; the lock is also let go between parts (docs/benchmark.md)
FEED_FRAMES = 16_384


def tune_gc() -> None:
    """Fewer, later cyclic collections, and none over what exists at start-up (modules, tables).

    Most of what the capture allocates dies young without cycles; ``gc.freeze``
    moves the imported modules out of every later collection's way.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Pipeline:
    """Feeds a source into a tracker, optionally paced, in batches under a lock."""

    TICK = 1.0  # seconds between clock ticks on a quiet link

    def __init__(
        self,
        source: Source,
        tracker: Tracker,
        *,
        count: int | None = None,
        speed: float | None = None,
        frame_hooks: list[FrameHook] | None = None,
        batch_hooks: list[BatchHook] | None = None,
    ) -> None:
        self.source = source
        self.tracker = tracker
        self.count = count
        self.speed = speed  # None or 0: as fast as possible; 1.0: real time; 10: ten times
        self.frame_hooks = frame_hooks or []
        self.batch_hooks = batch_hooks or []  # see every frame too, a batch at a time (the recorder)
        self.lock = threading.RLock()
        self.frames = 0
        self.error: CaptureFileError | None = None
        self.crash: BaseException | None = None  # a bug, not bad input: the CLI shows the traceback
        self.done = threading.Event()
        self._stop = threading.Event()
        self.paused = threading.Event()
        self._t0_wall = 0.0  # pacing: wall clock and capture time of the first paced frame
        self._t0_cap = 0.0

    def stop(self) -> None:
        self._stop.set()
        self.source.close()

    @property
    def batched(self) -> bool:
        """Whether the vectorised data path can be used: nothing needs to see frames one by one.

        Batch hooks do not count: on the per-frame path they get one-frame batches.
        """
        if self.speed or self.frame_hooks:
            return False
        # a live source must cut its own batches: grouping its frames would wait for thousands of them
        return not self.source.live or self.source.cuts_batches

    def run(self) -> None:
        """Read until the source ends, ``count`` frames, or :meth:`stop`. Never raises for bad input.

        The lock is held only while frames are processed, never while waiting
        for the source, so the UI can take snapshots of a quiet live link; a
        clock thread ticks the tracker once a second when no packet does, so
        timeouts (unanswered SYNs, echoes, LCP) fire on a silent link too.
        """
        if self.source.live or self.speed:
            threading.Thread(target=self._clock, name="pptptop-clock", daemon=True).start()
        try:
            if self.batched:
                self._run_batches()
            else:
                self._run_frames()
        except CaptureFileError as e:
            self.error = e
        except Exception as e:
            self.crash = e
        finally:
            try:
                with self.lock:
                    st = self.tracker.stats
                    if st.last_ts is None and self.tracker.now:
                        st.last_ts = self.tracker.now
                    self.tracker.finish()
            except Exception as e:  # a bug in the final timeouts: reported, and the run still ends
                self.crash = self.crash or e
            finally:
                self.done.set()

    def capture_clock(self) -> float | None:
        """Capture time now: the wall clock live, the replay's position when paced, else None."""
        if self.source.live:
            return time.time()
        if self.speed and self._t0_cap:
            return self._t0_cap + (time.monotonic() - self._t0_wall) * self.speed
        return None

    def _clock(self) -> None:
        while not self.done.wait(self.TICK):
            if self.paused.is_set():
                continue
            now = self.capture_clock()
            if now is not None:
                with self.lock:
                    self.tracker.idle(now)

    def _run_frames(self) -> None:
        feed = self.tracker.feed
        hooks = self.frame_hooks
        batch_hooks = self.batch_hooks
        lock = self.lock
        stop = self._stop
        limit = self.count
        n = self.frames
        speed = self.speed
        for frame in self.source:
            n += 1
            if speed:
                if not self._t0_cap:
                    self._t0_wall, self._t0_cap = time.monotonic(), frame.ts
                due = self._t0_wall + (frame.ts - self._t0_cap) / speed
                delay = due - time.monotonic()
                if delay > 0.002:
                    self._sleep_until(due)
                while self.paused.is_set() and not stop.is_set():
                    time.sleep(0.05)
                    self._t0_wall, self._t0_cap = time.monotonic(), frame.ts
            with lock:
                feed(n, frame.ts, frame.iface, frame.linktype, frame.data)
                for hook in hooks:
                    hook(n, frame)
                if batch_hooks:
                    one = batch_from_frames([frame])
                    for bhook in batch_hooks:
                        bhook(n, one)
                self.frames = n
            if (limit is not None and n >= limit) or stop.is_set():
                break

    def _run_batches(self) -> None:
        """Max speed, no frame hooks: the source's batches through :meth:`Tracker.feed_batch`, then to the
        batch hooks (``-c N`` cuts the batch holding the Nth frame; a stop, the part being fed)."""
        stop = self._stop
        limit = self.count
        hooks = self.batch_hooks
        feed_batch = self.tracker.feed_batch
        for batch in self.source.batches():
            if limit is not None and self.frames + len(batch) >= limit:
                batch = batch.part(0, limit - self.frames)  # -c N: the frames after the Nth are not fed
            first = self.frames + 1
            for lo in range(0, len(batch), FEED_FRAMES):
                part = batch if len(batch) <= FEED_FRAMES else batch.part(lo, lo + FEED_FRAMES)
                with self.lock:
                    feed_batch(part, first + lo)
                    self.frames += len(part)
                time.sleep(0)  # let a thread waiting for the lock (the UI's snapshot) have it
                if stop.is_set():  # q or Ctrl-C: within a part's time, and the hooks get what was fed
                    batch = batch.part(0, lo + len(part))
                    break
            for hook in hooks:  # outside the lock: a recorder waiting for the disk does not hold up the UI
                hook(first, batch)
            if stop.is_set() or (limit is not None and self.frames >= limit):
                break

    def _sleep_until(self, due: float) -> None:
        while not self._stop.is_set():
            left = due - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, 0.2))
