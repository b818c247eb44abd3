"""``--metrics [ADDR:]PORT``: the tracker and the diagnosis as Prometheus metrics (docs/metrics.md).

Two kinds of numbers, read two ways:

* what happens once (a finding raised, a tunnel up after its handshake, an
  echo answered) is counted as it happens, from the tracker's events and the
  diagnoser's finding changes, in the capture thread (:class:`Metrics` is a
  subscriber of both, as the live ``--json`` stream is);
* what *is* (tunnels by phase, the capture's counters, GRE totals, the
  recording's state) is read at scrape time under :attr:`Pipeline.lock`
  (:meth:`Metrics.collect`), so nothing runs per packet on the data path.

Label values are stable code names of ours (finding codes, malformed
reasons, phases), never strings off the wire, except the opt-in per-tunnel
series (``--metrics-per-tunnel``), whose user label is cut short and whose
number of tunnels is capped: the rest are summed into one ``tunnel="other"``
series, so a flood of bogus call IDs cannot grow the exposition.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pptptop import __version__
from pptptop.decode import pptp as P
from pptptop.decode.lcp import ControlCode, ControlPacket
from pptptop.decode.ppp import PppFrame, PppProtocol
from pptptop.diagnose.engine import FindingChange
from pptptop.diagnose.finding import Severity
from pptptop.diagnose.text import printable
from pptptop.export.metrics_options import TUNNEL_CAP
from pptptop.track.events import Event, EventKind
from pptptop.track.model import PHASE_ORDER, Direction, DirectionStats, Phase, Tunnel

if TYPE_CHECKING:
    from pptptop.sources.base import Source
    from pptptop.track.tracker import Tracker

#: characters of a user name kept in a label (the name comes off the wire)
USER_LABEL_MAX = 64
#: seconds, SYN to data: a LAN handshake takes ~0.1 s, a Windows client gives up after ~30 s
HANDSHAKE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: seconds, an echo's round trip
RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_DIRECTIONS = (("to_server", Direction.TO_SERVER), ("to_client", Direction.TO_CLIENT))
_GRE_FIELDS = ("packets", "bytes", "lost", "reordered", "duplicates")


@dataclass(slots=True)
class _Retired:
    """GRE totals of tunnels no longer in the tracker (evicted, merged): the counters never go down."""

    gre: dict[tuple[str, str], int] = field(default_factory=dict)


class Metrics:
    """The metrics of one capture: subscribe it with :meth:`attach`, register it, serve the registry."""

    def __init__(self, tracker: Tracker, *, lock: Any = None, source: Source | None = None,
                 recording: Callable[[], dict[str, Any]] | None = None,
                 events: Callable[[], dict[str, int]] | None = None,
                 per_tunnel: bool = False, tunnel_cap: int = TUNNEL_CAP,
                 registry: CollectorRegistry | None = None) -> None:
        """``recording()`` gives the ``--json`` ``recording``/``record_failed`` sections; ``events()`` the
        structured event sink's counters (``written``, ``dropped``)."""
        self.tracker = tracker
        self.lock = lock if lock is not None else threading.RLock()
        self.source = source
        self.recording = recording
        self.events = events
        self.per_tunnel = per_tunnel
        self.tunnel_cap = tunnel_cap
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.failures = Counter("pptptop_tunnel_failures", "Error findings raised (a tunnel failure, by its cause)",
                                ["code"], registry=r)
        self.findings = Counter("pptptop_findings", "Findings raised (confirmed), by code and severity",
                                ["code", "severity"], registry=r)
        self.withdrawn = Counter("pptptop_findings_withdrawn", "Counted findings that later packets contradicted",
                                 ["code", "severity"], registry=r)
        self.ended = Counter("pptptop_tunnels_ended", "Tunnels ended, by how (closed or failed) and failed phase",
                             ["outcome", "failed_in"], registry=r)
        self.handshake = Histogram("pptptop_handshake_duration_seconds",
                                   "Time from the control connection's SYN to the first data phase",
                                   buckets=HANDSHAKE_BUCKETS, registry=r)
        self.rtt = Histogram("pptptop_echo_rtt_seconds", "Round trip of answered keepalives (PPTP and LCP echo)",
                             ["protocol"], buckets=RTT_BUCKETS, registry=r)
        self.echo_misses = Counter("pptptop_echo_misses", "Keepalive requests that went unanswered",
                                   ["protocol"], registry=r)
        for proto in ("pptp", "lcp"):
            self.rtt.labels(proto)
            self.echo_misses.labels(proto)
        self._retired = _Retired()
        self._counted: dict[int, set[str]] = {}  # tunnel id -> codes counted in findings (for withdrawals)
        self._last_pptp_reply: int | None = None
        r.register(self)

    # ------------------------------------------------------------------ wiring
    def attach(self, tracker: Tracker, diagnoser: Any = None) -> Metrics:
        """Subscribe to ``tracker``'s events and, if given, ``diagnoser``'s finding changes (after it)."""
        tracker.subscribe(self.on_event)
        if diagnoser is not None:
            diagnoser.subscribe(self.on_finding)
        return self

    # ------------------------------------------------------------------ capture thread
    def on_event(self, ev: Event) -> None:
        kind = ev.kind
        if kind is EventKind.MESSAGE:
            self._keepalive(ev)
            return
        t = ev.tunnel
        if t is None:
            return
        if kind is EventKind.PHASE:
            if t.phase is Phase.DATA and not t.joined and t.phases and t.phases[0].phase is Phase.TCP:
                self.handshake.observe(max(0.0, ev.ts - t.phases[0].start))
        elif kind is EventKind.ENDED:
            failed = t.phase is Phase.FAILED
            self.ended.labels("failed" if failed else "closed",
                              t.failed_in.value if failed and t.failed_in else "").inc()
        elif kind is EventKind.ECHO_MISS:
            self.echo_misses.labels(str(ev.detail.get("kind", "lcp"))).inc()
        elif kind is EventKind.EVICTED or kind is EventKind.MERGED:
            self._counted.pop(t.id, None)
            gre = self._retired.gre
            for name, d in _DIRECTIONS:
                ds = t.traffic[d]
                for f in _GRE_FIELDS:
                    gre[(f, name)] = gre.get((f, name), 0) + getattr(ds, f)

    def _keepalive(self, ev: Event) -> None:
        """An answered echo: its round trip, as :func:`pptptop.track.keepalive.echo_reply` just measured it."""
        msg, t = ev.message, ev.tunnel
        if t is None:
            return
        if isinstance(msg, PppFrame):
            inner = msg.message
            if msg.protocol != PppProtocol.LCP or not isinstance(inner, ControlPacket) \
                    or inner.code != ControlCode.ECHO_REPLY:
                return
            echo = t.lcp_echo
            proto = "lcp"
        else:
            if getattr(msg, "message_type", None) != P.ControlMessageType.ECHO_REPLY:
                return
            if ev.frame == self._last_pptp_reply:
                return  # one reply, one message event per call of its control connection
            self._last_pptp_reply = ev.frame
            echo = t.pptp_echo
            proto = "pptp"
        if echo.last_reply == ev.ts and echo.rtt_ms is not None:
            self.rtt.labels(proto).observe(echo.rtt_ms / 1000.0)

    def on_finding(self, change: FindingChange) -> None:
        f = change.finding
        counted = self._counted.setdefault(change.tunnel.id, set())
        if change.kind == "finding":
            if f.provisional or f.code in counted:
                return
            counted.add(f.code)
            self.findings.labels(f.code, f.severity.value).inc()
            if f.severity is Severity.ERROR:
                self.failures.labels(f.code).inc()
        elif change.kind == "withdrawn" and f.code in counted:
            counted.discard(f.code)
            self.withdrawn.labels(f.code, f.severity.value).inc()

    # ------------------------------------------------------------------ scrape time
    def describe(self) -> Iterable[Metric]:
        return ()  # no description: collected anew at each scrape, never at registration

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            yield from self._collect()

    def _collect(self) -> Iterator[Metric]:
        tracker = self.tracker
        st = tracker.stats
        info = GaugeMetricFamily("pptptop_build_info", "The pptptop version serving these metrics",
                                 labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        tunnels = list(tracker.tunnels.values())
        by_phase = dict.fromkeys(PHASE_ORDER, 0)
        standing: dict[tuple[str, str], int] = {}
        gre = dict(self._retired.gre)
        for t in tunnels:
            by_phase[t.phase] += 1
            for f in t.findings:
                k = (f.code, f.severity.value)
                standing[k] = standing.get(k, 0) + 1
            for name, d in _DIRECTIONS:
                ds = t.traffic[d]
                for fld in _GRE_FIELDS:
                    gre[(fld, name)] = gre.get((fld, name), 0) + getattr(ds, fld)
        g = GaugeMetricFamily("pptptop_tunnels", "Tunnels in memory, by phase", labels=["phase"])
        for phase, n in by_phase.items():
            g.add_metric([phase.value], n)
        yield g
        g = GaugeMetricFamily("pptptop_findings_standing", "Findings that stand now on tunnels in memory "
                              "(provisional ones included), by code and severity", labels=["code", "severity"])
        for (code, sev), n in sorted(standing.items()):
            g.add_metric([code, sev], n)
        yield g
        yield _counter("pptptop_tunnels_created", "Tunnels created", st.tunnels_created)
        yield _counter("pptptop_tunnels_evicted", "Tunnels dropped from memory by --max-tunnels", st.evicted)
        for fld, help_ in (("packets", "GRE packets of known tunnels"), ("bytes", "GRE bytes of known tunnels"),
                           ("lost", "GRE packets missing from the sequence (RFC 2637 §4.3)"),
                           ("reordered", "GRE packets that arrived after a later one"),
                           ("duplicates", "GRE packets seen twice")):
            c = CounterMetricFamily(f"pptptop_gre_{fld}", help_, labels=["direction"])
            for name, _ in _DIRECTIONS:
                c.add_metric([name], gre.get((fld, name), 0))
            yield c
        yield _counter("pptptop_gre_unknown_call", "GRE packets of no known tunnel", st.gre_unknown)
        yield _counter("pptptop_capture_frames", "Frames read from the capture", st.frames)
        yield _counter("pptptop_capture_bytes", "Bytes of the frames read", st.bytes)
        yield _counter("pptptop_control_messages", "PPTP control messages decoded", st.control_messages)
        c = CounterMetricFamily("pptptop_malformed", "Packets that did not parse, by reason (docs/malformed.md)",
                                labels=["code"])
        for code, n in sorted(st.malformed_by_code.items()):
            c.add_metric([code], n)
        yield c
        if self.source is not None:
            c = CounterMetricFamily("pptptop_capture_kernel_drops",
                                    "Packets the kernel dropped because the capture ring was full",
                                    labels=["interface"])
            for name, s in sorted(self.source.stats().interfaces.items()):
                c.add_metric([printable(name, 64)], s.kernel_drops)  # a capture file names its interfaces
            yield c
        yield from self._recording()
        if self.events is not None:
            ev = self.events()
            yield _counter("pptptop_events_written", "Structured events delivered (--events)", ev["written"])
            yield _counter("pptptop_events_dropped", "Structured events dropped: the consumer was slow or gone",
                           ev["dropped"])
        if self.per_tunnel:
            yield from self._tunnel_series(tunnels)

    def _recording(self) -> Iterator[Metric]:
        sections = self.recording() if self.recording is not None else {}
        for what, help_ in (("errors", "Failed opens and writes of the recording"),
                            ("unrecorded", "Captured packets missing from the recording"),
                            ("packets", "Packets written to the recording")):
            c = CounterMetricFamily(f"pptptop_recording_{what}", help_, labels=["recording"])
            for key, label in (("recording", "write"), ("record_failed", "record_failed")):
                sec = sections.get(key)
                if sec is not None:
                    c.add_metric([label], int(sec.get(what, 0)))
            yield c

    def _tunnel_series(self, tunnels: list[Tunnel]) -> Iterator[Metric]:
        """Per tunnel, at most :attr:`tunnel_cap` of them: those with a control connection, furthest up
        the handshake, most recent first; the others summed into ``tunnel="other"``."""
        ranked = sorted(tunnels, key=lambda t: (not t.control_seen, -PHASE_ORDER[t.phase], -t.last_seen))
        own, rest = ranked[: self.tunnel_cap], ranked[self.tunnel_cap:]
        labels = ["tunnel", "user", "client", "server"]
        up = GaugeMetricFamily("pptptop_tunnel_info", "One tunnel: 1, its phase as a label",
                               labels=[*labels, "phase"])
        fams = {fld: CounterMetricFamily(f"pptptop_tunnel_gre_{fld}", f"GRE {fld} of one tunnel",
                                         labels=[*labels, "direction"]) for fld in ("packets", "bytes", "lost")}
        rtt = GaugeMetricFamily("pptptop_tunnel_echo_rtt_seconds", "The last answered echo's round trip",
                                labels=[*labels, "protocol"])
        for t in own:
            names = [str(t.id), _user(t.auth.user), t.client.ip, t.server.ip]
            up.add_metric([*names, t.phase.value], 1)
            for name, d in _DIRECTIONS:
                ds = t.traffic[d]
                for fld, fam in fams.items():
                    fam.add_metric([*names, name], getattr(ds, fld))
            for proto, echo in (("pptp", t.pptp_echo), ("lcp", t.lcp_echo)):
                if echo.rtt_ms is not None:
                    rtt.add_metric([*names, proto], echo.rtt_ms / 1000.0)
        if rest:
            names = ["other", "", "", ""]
            up.add_metric([*names, "other"], len(rest))
            for name, d in _DIRECTIONS:
                sums: list[DirectionStats] = [t.traffic[d] for t in rest]
                for fld, fam in fams.items():
                    fam.add_metric([*names, name], sum(getattr(ds, fld) for ds in sums))
        yield up
        yield from fams.values()
        yield rtt


def _counter(name: str, help_: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_, value=value)


def _user(user: str | None) -> str:
    """A user name (off the wire) as a label value: cut short, every control character escaped (the text format
    escapes only backslash, quote and newline, and ``curl …/metrics`` prints to a terminal)."""
    return "" if user is None else printable(user, USER_LABEL_MAX)


class MetricsServer:
    """The HTTP endpoint: ``prometheus_client.make_wsgi_app`` in a threading WSGI server.

    It listens from construction, before any privilege drop (a port below
    1024); its threads start with :meth:`start`, after the drop, which must
    happen while the process has one thread. A scrape before then waits in
    the listen queue.
    """

    def __init__(self, registry: CollectorRegistry, addr: str, port: int) -> None:
        from wsgiref.simple_server import make_server

        from prometheus_client import make_wsgi_app

        self.registry = registry
        family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("_Server", (_ThreadingWSGIServer,), {"address_family": family})
        self._server: WSGIServer = make_server(addr, port, make_wsgi_app(registry), server_class, _QuietHandler)
        self.address: tuple[str, int] = self._server.server_address[:2]  # type: ignore[assignment]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="pptptop-metrics", daemon=True)
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress does not hold the exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line on stderr per scrape."""
