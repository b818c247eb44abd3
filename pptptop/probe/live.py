"""The probe's runs, in the caller's thread (printed) or in a worker thread under the UI (docs/probe.md, "In the UI").

:class:`Runs` repeats the probe (``--probe-repeat``, ``--interval``) and tells
a :class:`ProbeFeed` each step as it ends. Under the UI the runs go in a
worker thread while the capture beside the probe feeds the ordinary pipeline
and tracker, so the tunnel screen shows the probe's packets (ladder,
transcript, diagnosis); the UI reads the feed's lines, never the probe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pptptop.probe import render
from pptptop.probe.client import Credentials, Probe, ProbeResult, ProbeSockets, Step

#: lines the feed keeps: the steps of the last runs (a repeated probe's oldest lines go)
FEED_LINES = 64


class ProbeFeed:
    """What the UI shows of the probe: a state line and one line per step, copied under a lock.

    Every wire string in a step was escaped by the client; the UI still puts them
    in Rich ``Text``, never markup.
    """

    def __init__(self, title: str) -> None:
        self._lock = threading.Lock()
        self._title = title
        self._state = "starting"
        self._lines: list[str] = []
        self.version = 0

    def step(self, step: Step) -> None:
        with self._lock:
            self._lines.append(render.step_lines(step)[0])
            del self._lines[:-FEED_LINES]
            self._state = f"running, {step.name} {step.status.value}"
            self.version += 1

    def state(self, text: str, line: str | None = None) -> None:
        with self._lock:
            self._state = text
            if line is not None:
                self._lines.append(line)
                del self._lines[:-FEED_LINES]
            self.version += 1

    def lines(self) -> tuple[str, tuple[str, ...]]:
        """(the title with the state, the step lines so far)."""
        with self._lock:
            return f"{self._title}: {self._state}", tuple(self._lines)


class Runs:
    """``--probe-repeat`` runs of the probe, ``--interval`` seconds from start to start; :meth:`stop` ends the
    current run at its next wait (its teardown still sends what it would, without waiting for answers)."""

    def __init__(self, host: str, address: str, sockets: ProbeSockets, *, timeout: float, repeat: int,
                 interval: float, credentials: Credentials | None, feed: ProbeFeed | None = None) -> None:
        self.host, self.address, self.sockets = host, address, sockets
        self.timeout, self.repeat, self.interval, self.credentials = timeout, repeat, interval, credentials
        self.feed = feed
        self.results: list[ProbeResult] = []
        self.stopping = threading.Event()
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def run(self, on_step: Callable[[Step], None] | None = None,
            on_run: Callable[[int, ProbeResult | None], None] | None = None) -> list[ProbeResult]:
        """Every run, in this thread. ``on_run(i, None)`` before run ``i`` (0-based), ``on_run(i, result)`` after."""
        def step(s: Step) -> None:
            if self.feed is not None:
                self.feed.step(s)
            if on_step is not None:
                on_step(s)

        try:
            for i in range(self.repeat):
                start = time.monotonic()
                if self.feed is not None:
                    what = f"run {i + 1} of {self.repeat}" if self.repeat > 1 else "running"
                    self.feed.state(what, f"run {i + 1} of {self.repeat}" if self.repeat > 1 else None)
                if on_run is not None:
                    on_run(i, None)
                r = Probe(self.host, self.address, self.sockets, timeout=self.timeout,
                          credentials=self.credentials, on_step=step, stop=self.stopping).run()
                if self.stopping.is_set():
                    break  # stopped in the middle: this run says nothing about the server
                self.results.append(r)
                if self.feed is not None:
                    self.feed.state(render.verdict(r).removeprefix("result: "), render.verdict(r))
                if on_run is not None:
                    on_run(i, r)
                if i + 1 < self.repeat and self.stopping.wait(max(0.0, self.interval - (time.monotonic() - start))):
                    break
        finally:
            self.done.set()
            if self.feed is not None and self.stopping.is_set() and not self.results:
                self.feed.state("stopped")
        return self.results

    def start(self) -> None:
        """The runs in a worker thread (under the UI)."""
        self.thread = threading.Thread(target=self.run, name="pptptop-probe", daemon=True)
        self.thread.start()

    def stop(self, wait: float = 10.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(wait)

