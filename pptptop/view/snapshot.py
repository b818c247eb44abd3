"""Read-only copies of tracker state for the UI, taken under ``pipeline.lock``.

The capture thread owns the :class:`~pptptop.track.model.Tunnel` objects; the
UI never touches them outside the lock. Ten times a second
:meth:`TunnelStore.refresh` walks the tunnels under the lock and copies only
those whose ``changed`` flag is set (sngrep's changed flag), then clears it.
Everything the table shows, sorts and filters on is in a :class:`TunnelRow`;
rates and sparklines are computed later, outside the lock, from the copied
one-second buckets.

No Textual here: these are plain data, tested without a terminal.
"""

from __future__ import annotations

import copy
import dataclasses
import operator
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pptptop.track.model import (
    AuthInfo,
    CcpInfo,
    CloseInfo,
    ControlInfo,
    Direction,
    DirectionStats,
    EchoStats,
    LcpInfo,
    NcpInfo,
    Packet,
    Phase,
    PhaseSpan,
    TcpInfo,
    Tunnel,
    decoded,
)
from pptptop.track.notes import Finding, NatEndpoint, NatNote

if TYPE_CHECKING:
    from pptptop.pipeline import Pipeline

#: seconds of one-second buckets copied per direction for the table (sparkline + rate)
ROW_HISTORY = 60
#: rows rebuilt per refresh at most; the rest keep their changed flag for the next one
MAX_REBUILD = 500
#: seconds the UI waits for the capture thread's lock before skipping one snapshot
LOCK_WAIT = 0.02
SEVERITY_RANK = {"error": 3, "warning": 2, "info": 1}
#: seconds of capture time the header's packet rate is averaged over
RATE_WINDOW = 5.0


@dataclass(frozen=True, slots=True)
class Traffic:
    """One direction's counters and its recent one-second buckets ``(second, bytes)``."""

    packets: int
    bytes: int
    data_packets: int
    lost: int
    duplicates: int
    reordered: int
    buckets: tuple[tuple[int, int], ...]

    def rate(self, now: float, window: int = 5) -> float:
        """Bytes per second over the last ``window`` whole seconds before ``now`` (as DirectionStats.rate)."""
        start = int(now) - window
        return sum(b for s, b in self.buckets if s >= start) / window

    def series(self, now: float, seconds: int = ROW_HISTORY) -> list[int]:
        """Bytes per second for the last ``seconds`` seconds, oldest first."""
        end = int(now)
        base = end - seconds + 1
        out = [0] * seconds
        for s, b in self.buckets:
            i = s - base
            if 0 <= i < seconds:
                out[i] += b
        return out


def copy_traffic(ds: DirectionStats, now: float, seconds: int = ROW_HISTORY) -> Traffic:
    """Copy the counters and the buckets of the last ``seconds`` seconds (newest history first)."""
    horizon = int(now) - seconds
    recent: list[tuple[int, int]] = []
    if ds.cur_packets and ds.cur_sec > horizon:
        recent.append((ds.cur_sec, ds.cur_bytes))
    for s, b, _ in reversed(ds.history):
        if s <= horizon:
            break
        recent.append((s, b))
    recent.reverse()
    return Traffic(ds.packets, ds.bytes, ds.data_packets, ds.lost, ds.duplicates, ds.reordered, tuple(recent))


@dataclass(frozen=True, slots=True)
class FindingView:
    """A diagnosis finding (from ``tunnel.findings``), copied field by field."""

    code: str
    severity: str
    title: str
    detail: str
    evidence: tuple[int, ...]
    windows_error: str
    hint: str
    leg: str = ""  # found on the session's other NAT leg: that leg's interface (or "other leg")


def merge_findings(own: tuple[FindingView, ...], other: tuple[FindingView, ...],
                   other_leg: str) -> tuple[FindingView, ...]:
    """A session's findings: this leg's, then those only the other NAT leg has, errors first.

    A cause seen on both legs is listed once, with the evidence frames of both. The 806 that only the
    WAN side shows (an ICMP error from beyond the NAT) is then on the session's row and Summary too.
    """
    if not other:
        return own
    mine = {f.code: i for i, f in enumerate(own)}
    out = list(own)
    for f in other:
        i = mine.get(f.code)
        if i is None:
            out.append(dataclasses.replace(f, leg=other_leg or "other leg"))
        elif f.evidence:
            out[i] = dataclasses.replace(out[i], evidence=tuple(sorted({*out[i].evidence, *f.evidence})))
    out.sort(key=lambda f: -SEVERITY_RANK.get(f.severity, 0))  # stable: this leg's first within a severity
    return tuple(out)


def verdict_finding(findings: Iterable[FindingView]) -> FindingView | None:
    """The finding that says what is wrong: the first error, else the first warning (info says nothing)."""
    first_warning = None
    for f in findings:
        if f.severity == "error":
            return f
        if f.severity == "warning" and first_warning is None:
            first_warning = f
    return first_warning


def copy_findings(found: Iterable[Finding]) -> tuple[FindingView, ...]:
    """Copy the diagnosis's findings for the UI."""
    return tuple(
        FindingView(
            code=f.code,
            severity=f.severity.value,
            title=f.title,
            detail=f.detail,
            evidence=tuple(f.evidence),
            windows_error="" if f.windows_error is None else str(f.windows_error),
            hint=f.hint,
        )
        for f in found
    )


@dataclass(frozen=True, slots=True)
class NatLeg:
    ip: str | None
    port: int | None
    call_id: int | None


@dataclass(frozen=True, slots=True)
class NatView:
    """What NAT correlation found (``tunnel.nat``): inside and outside leg, and the peer tunnel."""

    inside: NatLeg
    outside: NatLeg
    peer: int | None
    role: str | None = None  # "inside" or "outside": which leg this tunnel is


def _leg(e: NatEndpoint) -> NatLeg:
    return NatLeg(e.ip, e.port, e.call_id)


def copy_nat(nat: NatNote | None) -> NatView | None:
    if nat is None:
        return None
    return NatView(_leg(nat.inside), _leg(nat.outside), nat.peer, nat.role)


@dataclass(frozen=True, slots=True)
class TunnelRow:
    """Everything one row of the tunnels table shows, sorts and filters on."""

    id: int
    iface: str
    client_ip: str
    client_port: int | None
    client_call: int | None
    server_ip: str
    server_port: int | None
    server_call: int | None
    user: str | None
    auth_method: str
    auth_result: str
    phase: Phase
    failed_in: Phase | None
    first_seen: float
    last_seen: float
    up: Traffic  # client → server
    down: Traffic  # server → client
    echo_rtt_ms: float | None
    echo_misses: int
    echo_requests: int
    echo_consecutive_misses: int
    encryption: str  # "MPPE-128", "MPPE-40", "MPPE" (strength unknown), "none", "" (not yet), "?" (not seen)
    findings: tuple[FindingView, ...]
    nat: NatView | None
    control_seen: bool
    joined: bool  # met mid-session: the phases before were not seen
    client_host: str | None
    server_host: str | None

    @property
    def failed(self) -> bool:
        return self.phase is Phase.FAILED

    def rate(self, traffic: Traffic, now: float) -> float:
        """Bytes per second of ``traffic`` (``up`` or ``down``) now: 0 once the tunnel has ended."""
        return 0.0 if self.ended else traffic.rate(now)

    @property
    def verdict(self) -> FindingView | None:
        return verdict_finding(self.findings)

    @property
    def ended(self) -> bool:
        return self.phase in (Phase.CLOSED, Phase.FAILED)

    @property
    def lost(self) -> int:
        return self.up.lost + self.down.lost

    @property
    def loss_ratio(self) -> float:
        """GRE packets lost per packet expected (received + lost), both directions."""
        seen = self.up.packets + self.down.packets
        lost = self.lost
        return lost / (seen + lost) if seen + lost else 0.0

    @property
    def worst_severity(self) -> str | None:
        if not self.findings:
            return None
        return max(self.findings, key=lambda f: SEVERITY_RANK.get(f.severity, 0)).severity

    @property
    def nat_public(self) -> str | None:
        """The client's public (outside) address when NAT correlation knows it and it differs."""
        if self.nat is None or self.nat.outside.ip is None:
            return None
        return self.nat.outside.ip if self.nat.outside.ip != self.client_ip else None


def _encryption(t: Tunnel) -> str:
    c = t.ccp
    if c.mppe:
        return f"MPPE-{c.bits}" if c.bits else "MPPE"
    if not t.ccp_seen:
        return "?"  # negotiated before the capture joined the tunnel, and no data says what
    if c.rejected_by or t.phase in (Phase.DATA, Phase.CLOSED):
        return "none"
    return ""


def _echo(t: Tunnel) -> EchoStats:
    """The keepalive to show: LCP echo when the tunnel uses it, else PPTP echo."""
    return t.lcp_echo if t.lcp_echo.requests else t.pptp_echo


def make_row(t: Tunnel, now: float) -> TunnelRow:
    """Copy one tunnel into a row. Call with the pipeline lock held."""
    e = _echo(t)
    misses = t.lcp_echo.misses + t.pptp_echo.misses
    return TunnelRow(
        id=t.id,
        iface=t.iface,
        client_ip=t.client.ip,
        client_port=t.client.port,
        client_call=t.client.call_id,
        server_ip=t.server.ip,
        server_port=t.server.port,
        server_call=t.server.call_id,
        user=t.auth.user,
        auth_method=t.auth.method if t.auth_seen else "?",
        auth_result=t.auth.result,
        phase=t.phase,
        failed_in=t.failed_in,
        first_seen=t.first_seen,
        last_seen=t.last_seen,
        up=copy_traffic(t.traffic[Direction.TO_SERVER], now),
        down=copy_traffic(t.traffic[Direction.TO_CLIENT], now),
        echo_rtt_ms=e.rtt_ms,
        echo_misses=misses,
        echo_requests=t.lcp_echo.requests + t.pptp_echo.requests,
        echo_consecutive_misses=max(t.lcp_echo.consecutive_misses, t.pptp_echo.consecutive_misses),
        encryption=_encryption(t),
        findings=copy_findings(t.findings),
        nat=copy_nat(t.nat),
        control_seen=t.control_seen,
        joined=t.joined,
        client_host=t.control.client_host,
        server_host=t.control.server_host,
    )


@dataclass(slots=True)
class CaptureView:
    """The header's numbers: source, counters and state, copied under the lock."""

    name: str = ""
    live: bool = False
    interfaces: tuple[str, ...] = ()
    frames: int = 0
    capture_now: float = 0.0
    first_ts: float | None = None
    kernel_drops: int = 0
    done: bool = False
    paused: bool = False
    error: str | None = None
    speed: float | None = None
    packets_per_s: float = 0.0
    tunnels: int = 0  # sessions: the two NAT legs of one session count once
    active: int = 0
    failed: int = 0
    malformed: int = 0
    evicted: int = 0  # tunnels dropped from memory by --max-tunnels
    clock: float = 0.0  # capture time now: the wall clock live, the replay's position when paced


def session_rows(rows: dict[int, TunnelRow],
                 cache: dict[int, tuple[TunnelRow, TunnelRow, TunnelRow]] | None = None) -> dict[int, TunnelRow]:
    """One row per session: a NAT's outside leg folds into its inside leg, which shows both legs' findings.

    ``cache`` keeps the merged row of each session while neither leg's row changes.
    """
    out: dict[int, TunnelRow] = {}
    for tid, r in rows.items():
        nat = r.nat
        if nat is None or nat.peer is None:
            out[tid] = r
            continue
        peer = rows.get(nat.peer)
        if peer is None:
            out[tid] = r
        elif nat.role != "outside":
            hit = cache.get(tid) if cache is not None else None
            if hit is not None and hit[0] is r and hit[1] is peer:
                out[tid] = hit[2]
                continue
            session = r
            if peer.findings and not {f.code for f in peer.findings} <= {f.code for f in r.findings}:
                # what only the other leg found; the tunnel screen also joins the evidence of both
                session = _with_findings(r, merge_findings(r.findings, peer.findings, peer.iface))
            if cache is not None:
                cache[tid] = (r, peer, session)
            out[tid] = session
    return out


_ROW_FIELDS = tuple(f.name for f in dataclasses.fields(TunnelRow))
_ROW_VALUES = operator.attrgetter(*_ROW_FIELDS)
_FINDINGS_AT = _ROW_FIELDS.index("findings")


def _with_findings(r: TunnelRow, findings: tuple[FindingView, ...]) -> TunnelRow:
    """``dataclasses.replace(r, findings=...)`` at half the cost (a table of thousands of NAT sessions)."""
    values = list(_ROW_VALUES(r))
    values[_FINDINGS_AT] = findings
    return TunnelRow(*values)


class TunnelStore:
    """The UI's copy of the tunnels, kept current by :meth:`refresh` (sngrep's changed-flag redraw)."""

    def __init__(self, max_rebuild: int = MAX_REBUILD) -> None:
        self.rows: dict[int, TunnelRow] = {}  # one per tunnel (NAT leg): the NAT screen, the tunnel screen
        self.sessions: dict[int, TunnelRow] = {}  # one per session: the tunnels table and the header's counts
        self._merged: dict[int, tuple[TunnelRow, TunnelRow, TunnelRow]] = {}
        self.versions: dict[int, int] = {}
        self.capture = CaptureView()
        self._rate_samples: deque[tuple[float, int]] = deque()
        self.max_rebuild = max_rebuild
        self._last_frames = 0
        self._last_wall = 0.0
        self._cursor = 0
        self.lock_misses = 0  # snapshots skipped because the capture thread held the lock
        self.generation = 0  # bumped whenever anything the table shows changed

    def now(self) -> float:
        """The time rates are computed at: capture time (the wall clock live, the replay's position)."""
        return self.capture.clock or self.capture.capture_now

    def refresh(self, pipeline: Pipeline) -> bool:
        """Copy what changed since the last call; True if the table has anything new to show."""
        changed = False
        tracker = pipeline.tracker
        # never wait long for the capture thread: a busy capture keeps the UI answering keys
        if not pipeline.lock.acquire(timeout=LOCK_WAIT):
            self.lock_misses += 1
            return False
        try:
            now = tracker.now
            clock = None if pipeline.done.is_set() else pipeline.capture_clock()
            if clock is not None:
                now = max(now, clock)
            tunnels = tracker.tunnels
            rows = self.rows
            gone = [i for i in rows if i not in tunnels] if rows.keys() != tunnels.keys() else []
            budget = self.max_rebuild
            values = list(tunnels.values())
            n = len(values)
            start = self._cursor % n if n else 0
            versions = self.versions
            for k, t in enumerate(values[start:] + values[:start]):
                if t.changed or t.id not in rows:
                    if budget <= 0 and t.id in rows:
                        # out of budget: resume here next time so no tunnel starves
                        self._cursor = start + k
                        break
                    budget -= 1
                    rows[t.id] = make_row(t, now)
                    versions[t.id] = versions.get(t.id, 0) + 1
                    t.changed = False
                    changed = True
            st = tracker.stats
            frames = pipeline.frames
            cap = self.capture
            cap.name = pipeline.source.name
            cap.live = pipeline.source.live
            cap.interfaces = tuple(pipeline.source.interfaces)
            cap.capture_now = tracker.now
            cap.clock = now
            cap.first_ts = st.first_ts
            cap.malformed = st.malformed
            if st.evicted != cap.evicted:
                cap.evicted = st.evicted
                changed = True
            cap.done = pipeline.done.is_set()
            cap.paused = pipeline.paused.is_set()
            cap.error = None if pipeline.error is None else str(pipeline.error)
            cap.speed = pipeline.speed
        finally:
            pipeline.lock.release()
        try:
            cap.kernel_drops = pipeline.source.stats().kernel_drops
        except Exception:
            cap.kernel_drops = 0
        for i in gone:
            del self.rows[i]
            self.versions.pop(i, None)
            self._merged.pop(i, None)
            changed = True
        cap.packets_per_s = 0.0 if cap.done else self._packet_rate(now, frames)
        if frames != cap.frames:
            changed = True
        cap.frames = frames
        if changed:
            self.sessions = session_rows(self.rows, self._merged)
            cap.tunnels = len(self.sessions)
            cap.active = sum(1 for r in self.sessions.values() if not r.ended)
            cap.failed = sum(1 for r in self.sessions.values() if r.failed)
            self.generation += 1
        return changed

    def _packet_rate(self, clock: float, frames: int) -> float:
        """Frames per second of capture time over the last :data:`RATE_WINDOW` seconds of it.

        Capture time, not the wall clock: a replay at 1x shows the capture's own rate however often the
        screen is refreshed, and a file read at full speed the rate its traffic had.
        """
        samples = self._rate_samples
        if clock <= 0:
            return 0.0  # no frame yet: no capture time to count in
        if samples and (clock < samples[-1][0] or frames < samples[-1][1]):
            samples.clear()  # another capture (a test's pipeline) or a clock that went back
        samples.append((clock, frames))
        while len(samples) > 2 and samples[1][0] <= clock - RATE_WINDOW:
            samples.popleft()
        t0, f0 = samples[0]
        return (frames - f0) / (clock - t0) if clock > t0 else 0.0


@dataclass(frozen=True, slots=True)
class TunnelDetail:
    """A deep copy of one tunnel for the tunnel screen (taken under the lock, read outside it)."""

    row: TunnelRow
    phases: tuple[PhaseSpan, ...]
    control: ControlInfo
    tcp: TcpInfo
    lcp: LcpInfo
    auth: AuthInfo
    ncp: NcpInfo
    ccp: CcpInfo
    close: CloseInfo
    pptp_echo: EchoStats
    lcp_echo: EchoStats
    traffic: tuple[Traffic, Traffic]  # indexed by Direction, last 300 s
    packets: tuple[Packet, ...]
    data_ring: tuple[tuple[int, float, int, bytes], ...]
    packets_dropped: int
    malformed: int
    icmp_errors: tuple[str, ...]
    roles_guessed: bool
    linktype: int
    peer_packets: tuple[Packet, ...] = ()
    peer_row: TunnelRow | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _copy_echo(e: EchoStats) -> EchoStats:
    c = copy.copy(e)
    c.outstanding = dict(e.outstanding)
    return c


def make_detail(t: Tunnel, now: float, peer: Tunnel | None = None, decode: bool = True) -> TunnelDetail:
    """Copy one tunnel (and its NAT peer's packets) for the tunnel screen. Call with the lock held.

    ``decode=False`` leaves the PPP frames as stored, for :func:`decode_detail` to decode once the lock is
    let go: a tunnel's hundreds of stored frames are not decoded while the capture waits."""
    packets = tuple(t.all_packets() if decode else t.stored_packets())
    linktype = packets[0].linktype if packets else 1
    return TunnelDetail(
        row=make_row(t, now),
        phases=tuple(copy.copy(s) for s in t.phases),
        control=copy.deepcopy(t.control),
        tcp=copy.deepcopy(t.tcp),
        lcp=copy.deepcopy(t.lcp),
        auth=copy.deepcopy(t.auth),
        ncp=copy.deepcopy(t.ncp),
        ccp=copy.deepcopy(t.ccp),
        close=copy.deepcopy(t.close),
        pptp_echo=_copy_echo(t.pptp_echo),
        lcp_echo=_copy_echo(t.lcp_echo),
        traffic=(copy_traffic(t.traffic[0], now, 300), copy_traffic(t.traffic[1], now, 300)),
        packets=packets,
        data_ring=tuple(t.ring()),
        packets_dropped=t.packets_dropped,
        malformed=t.malformed,
        icmp_errors=tuple(t.icmp_errors),
        roles_guessed=t.roles_guessed,
        linktype=linktype,
        peer_packets=(tuple(peer.all_packets() if decode else peer.stored_packets()) if peer is not None
                      else ()),
        peer_row=make_row(peer, now) if peer is not None else None,
    )


def decode_detail(d: TunnelDetail, alg: int | None, peer_alg: int | None) -> TunnelDetail:
    """``d`` (made with ``decode=False``) with its PPP frames decoded (``alg``, ``peer_alg``: the tunnel's and
    its peer's ``AuthInfo.chap_algorithm``)."""
    return dataclasses.replace(d, packets=tuple(decoded(d.packets, alg)),
                               peer_packets=tuple(decoded(d.peer_packets, peer_alg)))


def capture_now(pipeline: Pipeline) -> float:
    """The capture time to show against (call with the lock held): the tracker's, or the capture clock while
    a live or paced capture runs ahead of the last packet."""
    now = pipeline.tracker.now
    clock = None if pipeline.done.is_set() else pipeline.capture_clock()
    return now if clock is None else max(now, clock)


def detail_of(pipeline: Pipeline, tunnel_id: int) -> TunnelDetail | None:
    """Take the lock and copy one tunnel (None once it has been evicted)."""
    with pipeline.lock:
        t = pipeline.tracker.tunnels.get(tunnel_id)
        if t is None:
            return None
        now = capture_now(pipeline)
        nat = copy_nat(t.nat)
        peer = pipeline.tracker.tunnels.get(nat.peer) if nat is not None and nat.peer is not None else None
        d = make_detail(t, now, peer, decode=False)
        algs = t.auth.chap_algorithm, peer.auth.chap_algorithm if peer is not None else None
    d = decode_detail(d, *algs)
    if d.peer_row is not None and d.peer_row.findings:  # the session's findings, as on its row
        merged = merge_findings(d.row.findings, d.peer_row.findings, d.peer_row.iface)
        d = dataclasses.replace(d, row=dataclasses.replace(d.row, findings=merged))
    return d
