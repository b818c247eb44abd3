"""``--events DEST``: the live event stream as JSON lines, ``"schema": 1``, for a log pipeline (docs/json.md).

The records are the live ``--json`` lines (tunnel phase changes, findings
raised and withdrawn, tunnel ends with their summary) plus capture health,
each with ``schema`` and ``host``. Destinations: a file (appended, rotated by
size, one ``write`` per line), standard output, syslog (RFC 5424 over the
local socket), ``udp://HOST:PORT`` and ``tcp://HOST:PORT``.

The capture thread only serialises a record and puts it on a bounded queue; a
writer thread delivers. A consumer that is slow or gone fills the queue, and
what does not fit is counted as dropped: the capture never waits for it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pptptop.diagnose.engine import FindingChange
from pptptop.diagnose.finding import Severity
from pptptop.export.jsonout import EventStream, Extension
from pptptop.track.events import Event, EventKind

if TYPE_CHECKING:
    from pptptop.sources.base import Source
    from pptptop.track.tracker import Tracker

SCHEMA = 1
QUEUE_LINES = 10_000  # records waiting for a slow consumer before new ones are dropped
HEALTH_EVERY = 10.0  # seconds of capture time between capture-health records
ROTATE_KEEP = 5  # FILE.1 … FILE.5
DEFAULT_ROTATE_MB = 100
SEND_TIMEOUT = 5.0  # seconds a TCP send may block the writer before the connection is given up
RECONNECT_EVERY = 1.0  # seconds between connection attempts; events meanwhile are dropped
SYSLOG_SOCKET = "/dev/log"
SYSLOG_FACILITY = 3  # daemon (RFC 5424 §6.2.1)
#: RFC 5424 severities: findings by theirs, everything else informational
_SYSLOG_SEVERITY = {"error": 3, "warning": 4}
_STOP = b""
_REOPEN = b"\0"


class EventsError(ValueError):
    """``--events`` names no destination we know."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--events",
        metavar="DEST",
        help="write structured events as JSON lines to DEST: a FILE (appended, rotated), - (standard output), "
        "syslog[:SOCKET], udp://HOST:PORT or tcp://HOST:PORT (docs/json.md)",
    )
    p.add_argument(
        "--events-rotate",
        type=int,
        default=DEFAULT_ROTATE_MB,
        metavar="MB",
        help=f"--events FILE: rename it to FILE.1 when it would pass MB MiB, keeping {ROTATE_KEEP} "
        f"(0: never; default {DEFAULT_ROTATE_MB})",
    )


class Sink(Protocol):
    def write(self, line: bytes, severity: str) -> None: ...  # raises OSError when the line is lost
    def reopen(self) -> None: ...
    def close(self) -> None: ...


class FileSink:
    """Appends lines, each with one ``write(2)`` of ``O_APPEND``: a crash leaves whole lines behind."""

    def __init__(self, path: str, rotate_bytes: int = 0, keep: int = ROTATE_KEEP) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self.fd = -1
        self.size = 0
        self.problem = ""  # a rotation that failed: said once by the writer, the lines go on in the old file
        self._open()

    def _open(self) -> None:
        """Open the name; the file open before stays in use when that fails (a privilege drop since)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = fd
        self.size = os.fstat(fd).st_size

    def write(self, line: bytes, severity: str) -> None:
        if self.rotate_bytes and self.size and self.size + len(line) > self.rotate_bytes:
            try:
                self._rotate()
            except OSError as e:
                self.size = 0  # the next attempt after another rotate_bytes, not at every line
                self.problem = f"cannot rotate: {e.strerror or e}"
        n = os.write(self.fd, line)
        self.size += n
        if n < len(line):  # a full disk: the rest in a second write rather than lost silently
            self.size += os.write(self.fd, line[n:])

    def _rotate(self) -> None:
        for i in range(self.keep - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rename(f"{self.path}.{i}", f"{self.path}.{i + 1}")
        os.rename(self.path, f"{self.path}.1")
        self._open()

    def reopen(self) -> None:
        """SIGHUP: logrotate moved the file; start a new one at the name."""
        self._open()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class StdoutSink:
    def write(self, line: bytes, severity: str) -> None:
        os.write(sys.stdout.fileno(), line)

    def reopen(self) -> None:
        pass  # standard output is the process's own: nothing to reopen on SIGHUP

    def close(self) -> None:
        pass


class SyslogSink:
    """RFC 5424 messages (one event, one datagram) to the local syslog socket (journald, rsyslog)."""

    def __init__(self, path: str = SYSLOG_SOCKET) -> None:
        self.path = path
        self.host = socket.gethostname() or "-"
        self.sock: socket.socket | None = None
        self._connect()

    def _connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.settimeout(SEND_TIMEOUT)  # a stalled syslog daemon: the message is dropped, not waited for
        try:
            s.connect(self.path)
        except OSError:
            s.close()
            raise
        self.sock = s

    def write(self, line: bytes, severity: str) -> None:
        pri = SYSLOG_FACILITY * 8 + _SYSLOG_SEVERITY.get(severity, 6)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1000000:06d}Z"
        head = f"<{pri}>1 {stamp} {self.host} pptptop {os.getpid()} event - ".encode()
        if self.sock is None:
            self._connect()
        assert self.sock is not None
        try:
            self.sock.send(head + line.rstrip(b"\n"))
        except OSError:
            self.sock.close()
            self.sock = None
            raise

    def reopen(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def close(self) -> None:
        self.reopen()


class UdpSink:
    """One datagram per event (a record too long for one datagram is dropped, and counted)."""

    def __init__(self, host: str, port: int) -> None:
        self.addr = (host, port)
        self.sock = socket.socket(_family(host), socket.SOCK_DGRAM)

    def write(self, line: bytes, severity: str) -> None:
        self.sock.sendto(line, self.addr)

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        self.sock.close()


class TcpSink:
    """Newline-delimited JSON over one connection, made again when it breaks (at most once a second)."""

    def __init__(self, host: str, port: int) -> None:
        self.addr = (host, port)
        self.sock: socket.socket | None = None
        self._next_try = 0.0

    def _connect(self) -> socket.socket:
        now = time.monotonic()
        if now < self._next_try:
            raise ConnectionError("not connected")
        self._next_try = now + RECONNECT_EVERY
        s = socket.create_connection(self.addr, timeout=SEND_TIMEOUT)
        s.settimeout(SEND_TIMEOUT)
        self.sock = s
        return s

    def write(self, line: bytes, severity: str) -> None:
        s = self.sock or self._connect()
        try:
            s.sendall(line)
        except OSError:
            self.reopen()
            raise

    def reopen(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def close(self) -> None:
        self.reopen()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _host_port(rest: str, dest: str) -> tuple[str, int]:
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EventsError(f"expected HOST:PORT in {dest!r}")
    return host.strip("[]"), int(port)


def check_destination(dest: str) -> None:
    """Raise :class:`EventsError` for a destination that cannot be meant (before anything is opened)."""
    if dest.startswith(("udp://", "tcp://")):
        _host_port(dest[6:], dest)
    elif "://" in dest:
        raise EventsError(f"{dest!r}: give a FILE, -, syslog, udp://HOST:PORT or tcp://HOST:PORT")


def open_sink(dest: str, rotate_bytes: int = 0) -> Sink:
    """The sink ``dest`` names. Raises :class:`EventsError` or :class:`OSError`."""
    check_destination(dest)
    if dest in ("-", "stdout"):
        return StdoutSink()
    if dest == "syslog" or dest.startswith("syslog:"):
        return SyslogSink(dest.partition(":")[2] or SYSLOG_SOCKET)
    if dest.startswith("udp://"):
        return UdpSink(*_host_port(dest[6:], dest))
    if dest.startswith("tcp://"):
        return TcpSink(*_host_port(dest[6:], dest))
    return FileSink(dest, rotate_bytes)


class EventLog:
    """Serialises events in the capture thread, delivers them from a writer thread; never blocks the capture."""

    def __init__(self, sink: Sink, *, source: Source | None = None,
                 extensions: dict[str, Extension] | None = None, maxlen: int = QUEUE_LINES,
                 on_error: Callable[[str], None] | None = None, start: bool = True) -> None:
        """``start=False``: the writer thread waits for :meth:`start` (after a privilege drop, which must
        happen while the process has one thread); records queue meanwhile."""
        self.sink = sink
        self.source = source
        self.host = socket.gethostname()
        self.stream = EventStream(sys.stdout, extensions)  # only its record(): the live --json objects
        self.queue: queue.Queue[tuple[bytes, str]] = queue.Queue(maxlen)
        self.written = 0
        self.overflowed = 0  # the queue was full (counted by the capture thread only)
        self.failed = 0  # the destination lost them: gone, refused, too long (counted by the writer only)
        self.abandoned = 0  # still queued when the exit could wait no longer
        self.on_error = on_error
        self._last_error = ""
        self._last_health = 0.0
        self._tracker: Tracker | None = None
        self._thread = threading.Thread(target=self._run, name="pptptop-events", daemon=True)
        if start:
            self._thread.start()

    # ------------------------------------------------------------------ wiring
    def start(self) -> None:
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()

    def attach(self, tracker: Tracker, diagnoser: Any = None) -> EventLog:
        self._tracker = tracker
        tracker.subscribe(self.on_event)
        if diagnoser is not None:
            diagnoser.subscribe(self.on_finding)
        return self

    @property
    def dropped(self) -> int:
        """Records that never reached the destination; each part has one writer thread, so no lock."""
        return self.overflowed + self.failed + self.abandoned

    def counters(self) -> dict[str, int]:
        return {"written": self.written, "dropped": self.dropped}

    # ------------------------------------------------------------------ capture thread
    def on_event(self, ev: Event) -> None:
        if ev.kind is EventKind.TICK:
            if not self._last_health:
                self._last_health = ev.ts  # the first record is the first tunnel's, the health follows
            elif ev.ts - self._last_health >= HEALTH_EVERY:
                self._last_health = ev.ts
                self.put(self.health("capture-health", ev.ts))
            return
        rec = self.stream.record(ev)
        if rec is not None:
            self.put(rec)

    def on_finding(self, change: FindingChange) -> None:
        self.put(change.to_dict(), change.finding.severity.value
                 if change.kind == "finding" and change.finding.severity is not Severity.INFO else "info")

    def health(self, name: str, ts: float) -> dict[str, Any]:
        """Capture health: frames, malformed, kernel drops, events dropped so far."""
        out: dict[str, Any] = {"time": ts, "event": name}
        if self._tracker is not None:
            st = self._tracker.stats
            out.update(frames=st.frames, malformed=st.malformed, tunnels=len(self._tracker.tunnels),
                       tunnels_created=st.tunnels_created)
        if self.source is not None:
            out["kernel_drops"] = self.source.stats().kernel_drops
        out["events_dropped"] = self.dropped
        return out

    def put(self, rec: dict[str, Any], severity: str = "info") -> None:
        line = json.dumps({"schema": SCHEMA, "host": self.host, **rec}, default=str) + "\n"
        try:
            self.queue.put_nowait((line.encode(), severity))
        except queue.Full:
            self.overflowed += 1

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        while True:
            line, severity = self.queue.get()
            if line == _STOP:
                return
            if line == _REOPEN:
                try:
                    self.sink.reopen()
                except OSError as e:
                    self._say(f"cannot reopen it, the lines go on where they went: {e.strerror or e}")
                continue
            try:
                self.sink.write(line, severity)
                self.written += 1
                if isinstance(self.sink, FileSink) and self.sink.problem:
                    self._say(self.sink.problem)
                    self.sink.problem = ""
            except OSError as e:
                self.failed += 1
                self._say(str(e))

    def _say(self, problem: str) -> None:
        if problem != self._last_error and self.on_error is not None:
            self.on_error(problem)
        self._last_error = problem

    # ------------------------------------------------------------------ control (any thread)
    def reopen(self) -> None:
        """SIGHUP: reopen the file (after logrotate), reconnect a socket."""
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait((_REOPEN, ""))

    def close(self, timeout: float = 2 * SEND_TIMEOUT, final: dict[str, Any] | None = None) -> None:
        """Deliver what waits (at most ``timeout`` seconds: a stuck consumer does not hold the exit), close."""
        self.start()
        if final is not None:
            self.put(final)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.queue.put((_STOP, ""), timeout=0.05)
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self.abandoned = self.queue.qsize()  # left for a consumer that never took them
        else:
            self.sink.close()
