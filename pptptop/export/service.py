"""A gateway's service mode: ``--headless``, ``--metrics`` and ``--events`` around one pipeline (docs/fleet.md).

The CLI calls :func:`prepare` before the privilege drop, :meth:`Service.start`
once the pipeline exists, :meth:`Service.install_signals` for a headless run,
:meth:`Service.linger` when the input has ended and :meth:`Service.close` last.
Messages for the operator go to standard error, one line each (journald keeps them).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from pptptop.exitcodes import EXIT_CANT_CREATE, EXIT_UNAVAILABLE
from pptptop.export import events as eventsmod
from pptptop.export import metrics_options
from pptptop.export.jsonout import EventStream, Extension
from pptptop.inside import options as insideopts
from pptptop.inside.secrets import SecretError

if TYPE_CHECKING:
    from pptptop.export.metrics import MetricsServer
    from pptptop.inside.inspector import Inspector
    from pptptop.pipeline import Pipeline

#: seconds after SIGTERM for the capture thread to stop by itself before the run ends without it
STOP_GRACE = 2.0


class ServiceError(Exception):
    """An output of the service cannot be started: one sentence, and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--headless",
        action="store_true",
        help="run as a service, without a terminal: messages on standard error, SIGHUP reopens the --events "
        "file and re-reads --secrets, SIGTERM ends with every file complete; after -r FILE, --metrics is "
        "served until SIGTERM",
    )
    metrics_options.add_arguments(p)
    eventsmod.add_arguments(p)


def usage_error(args: argparse.Namespace) -> str | None:
    """One sentence about a service option that cannot work, or None."""
    if args.metrics_per_tunnel and args.metrics is None:
        return "--metrics-per-tunnel adds series to --metrics: give --metrics [ADDR:]PORT too"
    if args.metrics is not None:
        try:
            metrics_options.parse_address(args.metrics)
        except metrics_options.MetricsAddressError as e:
            return f"--metrics: {e}"
    if args.events is not None:
        try:
            eventsmod.check_destination(args.events)
        except eventsmod.EventsError as e:
            return f"--events: {e}"
        if args.events in ("-", "stdout") and (args.json or args.report):
            return "--events - and --json/--report both write to standard output: send the events elsewhere"
        if args.events in ("-", "stdout") and not (args.headless or args.export_tunnel or args.export_hashes):
            return "--events - would write over the UI: add --headless, or send the events to a file or socket"
    if args.events_rotate < 0:
        return "--events-rotate takes a number of MiB, 0 for never"
    return None


class Service:
    """The outputs of a service run; every method is safe to call when no output was asked for.

    :func:`prepare` opens them (as root, before the privilege drop, as the
    recordings are); :meth:`start` subscribes them to the pipeline.
    """

    def __init__(self, args: argparse.Namespace, say: Callable[[str], None] | None = None) -> None:
        self.args = args
        self.say = say or _stderr
        self.pipeline: Pipeline | None = None
        self.inspector: Inspector | None = None
        self.metrics: MetricsServer | None = None
        self.events: eventsmod.EventLog | None = None
        self.stopping = threading.Event()
        self.serving = False  # --ui-socket or --serve: a service too, lingering after -r FILE for its views
        self._stop_at: float | None = None

    def start(self, pipeline: Pipeline, diagnoser: Any, recording: Callable[[], dict[str, Any]] | None = None,
              extensions: dict[str, Extension] | None = None, inspector: Inspector | None = None) -> None:
        """Feed the opened outputs from ``pipeline``'s tracker and ``diagnoser``."""
        self.pipeline, self.inspector = pipeline, inspector
        tracker = pipeline.tracker
        if self.events is not None:
            self.events.source = pipeline.source
            self.events.stream = EventStream(sys.stdout, extensions)
            self.events.attach(tracker, diagnoser)
            self.events.start()
        if self.metrics is not None:
            from pptptop.export import metrics as metricsmod  # loaded with --metrics only (export/metrics_options.py)

            ev = self.events.counters if self.events is not None else None
            metricsmod.Metrics(tracker, lock=pipeline.lock, source=pipeline.source, recording=recording, events=ev,
                               per_tunnel=self.args.metrics_per_tunnel, registry=self.metrics.registry
                               ).attach(tracker, diagnoser)
            self.metrics.start()

    def install_signals(self) -> None:
        """``--headless``: SIGHUP reopens the outputs; SIGTERM and SIGINT end the capture and any lingering."""
        if not (self.args.headless or self.serving) or threading.current_thread() is not threading.main_thread():
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            if self._stop_at is None:
                self._stop_at = time.monotonic()
            self.stopping.set()
            if self.pipeline is not None:
                self.pipeline.stop()

        def reload(signum: int, frame: FrameType | None) -> None:
            self.reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def reload(self) -> None:
        """SIGHUP: reopen the ``--events`` output; read the ``--secrets`` files again (new logins use them)."""
        if self.events is not None:
            self.events.reopen()
            self.say("SIGHUP: reopening the --events output")
        if self.inspector is not None and self.pipeline is not None and self.args.secrets:
            try:
                store, warnings = insideopts.load(self.args)
            except SecretError as e:
                self.say(f"SIGHUP: keeping the secrets read before: {e}")
                return
            for w in warnings:
                self.say(f"warning: {w}")
            with self.pipeline.lock:
                self.inspector.secrets = store
            self.say(f"SIGHUP: read {len(store)} secrets again")

    def given_up(self) -> bool:
        """Whether to stop waiting for the capture thread: SIGTERM came :data:`STOP_GRACE` seconds ago and
        it is still blocked in a read that closing the source does not interrupt (``-r -`` from a pipe
        whose writer stays). Then the input ends here, under the pipeline's lock, as it would at its end."""
        if self._stop_at is None or self.pipeline is None or time.monotonic() - self._stop_at < STOP_GRACE:
            return False
        with self.pipeline.lock:
            if not self.pipeline.done.is_set():
                self.pipeline.tracker.finish()
        return True

    def linger(self) -> None:
        """``--headless -r FILE --metrics`` (or ``--ui-socket``, ``--serve``): the file is read; keep the
        endpoint and the views up until SIGTERM."""
        if (not (self.args.headless or self.serving) or (self.metrics is None and not self.serving)
                or self.pipeline is None or self.pipeline.source.live):
            return
        if not self.stopping.is_set() and self.metrics is not None:
            host, port = self.metrics.address
            self.say(f"the input is read; serving its metrics on http://{_url_host(host)}:{port}/metrics "
                     "until SIGTERM")
        elif not self.stopping.is_set():
            self.say("the input is read; serving it to attached views until SIGTERM")
        while not self.stopping.wait(0.5):  # short waits: the main thread stays free for SIGTERM's handler
            pass

    def close(self) -> None:
        """Deliver the last events (a ``capture-end`` record) and stop serving."""
        if self.events is not None:
            now = self.pipeline.tracker.now if self.pipeline is not None else time.time()
            self.events.close(final=self.events.health("capture-end", now))
            if self.events.dropped:
                self.say(f"--events: {self.events.dropped} events were dropped (the consumer was slow or gone)")
        if self.metrics is not None:
            self.metrics.close()


def prepare(args: argparse.Namespace, say: Callable[[str], None] | None = None) -> Service:
    """Open ``--events`` and listen on ``--metrics``, before any privilege drop (a log file root may write, a
    port below 1024), importing now what they would import later; no thread starts before :meth:`Service.start`
    (the drop must happen while the process has one). Raises :class:`ServiceError`."""
    import encodings.idna  # noqa: F401  host names: the lookup loads this codec, unreadable to `nobody` later

    svc = Service(args, say)
    if args.events is not None:
        try:
            sink = eventsmod.open_sink(args.events, args.events_rotate << 20)
        except (OSError, eventsmod.EventsError) as e:
            raise ServiceError(f"--events: cannot open {args.events}: {getattr(e, 'strerror', None) or e}",
                               EXIT_CANT_CREATE) from None
        svc.events = eventsmod.EventLog(sink, on_error=lambda p: svc.say(f"--events {args.events}: {p}"),
                                        start=False)
    if args.metrics is not None:
        import prometheus_client.openmetrics.exposition  # noqa: F401  what Prometheus asks for, loaded late
        from prometheus_client import CollectorRegistry

        from pptptop.export.metrics import MetricsServer

        addr, port = metrics_options.parse_address(args.metrics)
        try:
            svc.metrics = MetricsServer(CollectorRegistry(auto_describe=True), addr, port)
        except OSError as e:
            if svc.events is not None:
                svc.events.close(timeout=0.5)
            raise ServiceError(f"--metrics: cannot listen on {args.metrics}: {e.strerror or e}",
                               EXIT_UNAVAILABLE) from None
        host, port = svc.metrics.address
        svc.say(f"serving metrics on http://{_url_host(host)}:{port}/metrics")
    return svc


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _stderr(text: str) -> None:
    print(f"pptptop: {text}", file=sys.stderr, flush=True)
