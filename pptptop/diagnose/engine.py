"""The :class:`Diagnoser`: tracker events in, findings per tunnel out.

It subscribes to the tracker (events arrive synchronously, in capture order),
keeps :class:`~pptptop.diagnose.observe.Observations` per tunnel, and after
each event of a tunnel runs the rules on it; on TICK it runs the rules that
depend on time. A finding appears at the event that completes its evidence
and is withdrawn when its rule stops holding. The current findings of a
tunnel are in ``tunnel.findings`` (errors first) for the UI and the
exporters; :meth:`Diagnoser.subscribe` reports appearances and withdrawals
live. Nothing is sent back into the tracker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pptptop.diagnose.config import DiagnosisConfig
from pptptop.diagnose.finding import Finding, Severity, ordered
from pptptop.diagnose.observe import CATEGORIES, Observations, Ref, category, routine
from pptptop.diagnose.rules import RULES, Case, Collision, Hit, Quiet, Rule
from pptptop.track.events import Event, EventKind
from pptptop.track.model import Phase, Tunnel
from pptptop.track.notes import Withdrawn
from pptptop.track.texts import Texts
from pptptop.track.tracker import Tracker

MAX_WITHDRAWN = 16


@dataclass(frozen=True, slots=True)
class FindingChange:
    """A finding appeared (``kind`` "finding") or was withdrawn ("withdrawn") at capture time ``ts``."""

    kind: str
    tunnel: Tunnel
    finding: Finding
    ts: float

    def to_dict(self) -> dict[str, Any]:
        """One line of the live ``--json`` stream."""
        t = self.tunnel
        return {"time": self.ts, "event": self.kind, "frame": None,
                "tunnel": {"id": t.id, "client": {"ip": t.client.ip, "call_id": t.client.call_id},
                           "server": {"ip": t.server.ip, "call_id": t.server.call_id}, "phase": t.phase.value,
                           "user": t.auth.user},
                "finding": self.finding.to_dict()}


Listener = Callable[[FindingChange], None]
CallKey = tuple[str, str, str, int]


# enum members read at every event, looked up once: on 3.11 every attribute read on an enum class goes
# through EnumType's __getattr__ hook (docs/benchmark.md)
_TICK, _EVICTED, _MERGED, _TUNNEL_NEW, _MESSAGE, _ENDED = (EventKind.TICK, EventKind.EVICTED, EventKind.MERGED,
                                                            EventKind.TUNNEL_NEW, EventKind.MESSAGE, EventKind.ENDED)
_SETTLED = EventKind.SETTLED
_ERROR = Severity.ERROR
_DATA = Phase.DATA

#: rules whose answer a keepalive (LCP/PPTP echo) can change, besides the timed ones
KEEPALIVE_RULES = frozenset({"echo-timeout", "echo-rtt-spike", "lcp-loopback"})
#: seconds of capture time between evaluations of a healthy tunnel's keepalives (warnings only can result)
KEEPALIVE_EVERY = 5.0


class _Watch:
    """What the diagnoser keeps of one tunnel until it settles: its observations, the case its rules read
    (made once), the findings its rules raised (``raw``, with their ``hits``) and those shown, and the rules
    asleep (code -> the Quiet answer whose categories and time wake it)."""

    __slots__ = ("asleep", "case", "hits", "obs", "raw", "shown", "tunnel")

    def __init__(self, tunnel: Tunnel, obs: Observations, cfg: DiagnosisConfig, show_secrets: bool) -> None:
        self.tunnel = tunnel
        self.obs = obs
        self.case = Case(tunnel, obs, cfg, 0.0, show_secrets)
        self.raw: dict[str, Finding] = {}
        self.hits: dict[str, Hit] = {}
        self.asleep: dict[str, Quiet] = {}
        self.shown: dict[str, Finding] = {}


class Diagnoser:
    """Runs the rules over a tracker's events. Not thread-safe: it runs in the capture thread."""

    def __init__(self, config: DiagnosisConfig | None = None, *, show_secrets: bool = False,
                 rules: Sequence[Rule] | None = None, exhaustive: bool = False) -> None:
        """``exhaustive`` runs every rule after every event, ignoring :attr:`Rule.on` (the reference)."""
        self.cfg = config or DiagnosisConfig()
        self.show_secrets = show_secrets
        self.rules = list(RULES if rules is None else rules)
        self._by_code = {r.code: r for r in self.rules}
        #: one copy of a finding's sentence that many tunnels repeat (the same user's hang-up, day after day)
        self._texts = Texts()
        self._timed = [r for r in self.rules if r.timed]
        #: what a keepalive can change: the timed rules and the ones about echoes
        self._keepalive = [r for r in self.rules if r.timed or r.code in KEEPALIVE_RULES]
        keep = set(self._keepalive)
        #: per event category, the rules it can change, without and with deferred keepalives
        self._after: dict[str | None, tuple[list[Rule], list[Rule]]] = {
            cat: ([r for r in self.rules if r.on is None or cat in r.on],
                  [r for r in self.rules if r.on is None or cat in r.on or r in keep])
            for cat in CATEGORIES}
        if exhaustive:
            self._after.clear()
        #: rules may answer Quiet and sleep until an event can change their answer (never in the reference)
        self._sleepy = not exhaustive
        #: per tunnel until it settles: its observations, the rules' case, its findings, the rules asleep
        self._watch: dict[int, _Watch] = {}
        self._live: set[int] = set()
        self._listeners: list[Listener] = []
        self._calls: dict[CallKey, set[int]] = {}
        self._call_key: dict[int, CallKey] = {}
        self._pairs: dict[tuple[str, frozenset[str]], set[int]] = {}
        self._new: list[int] = []
        self._clock = 0.0  # the latest capture time seen: time never runs backwards for the rules

    # ------------------------------------------------------------------ wiring
    def attach(self, tracker: Tracker) -> Diagnoser:
        """Subscribe to ``tracker``'s events; returns self."""
        tracker.subscribe(self)
        return self

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` for every finding that appears or is withdrawn."""
        self._listeners.append(listener)

    @property
    def tracked(self) -> int:
        """How many tunnels the diagnoser holds state for (evicted ones are forgotten)."""
        return len(self._watch)

    def findings(self, tunnel: Tunnel) -> tuple[Finding, ...]:
        """The tunnel's current findings, errors first."""
        return tunnel.findings

    def __call__(self, ev: Event) -> None:
        self.on_event(ev)

    # ------------------------------------------------------------------ events
    def on_event(self, ev: Event) -> None:
        kind = ev.kind
        if ev.ts > self._clock:
            self._clock = ev.ts
        now = self._clock
        if kind is _TICK:
            self._tick(now, final=bool(ev.detail.get("final")))
            return
        t = ev.tunnel
        if t is None:
            return
        if kind is _EVICTED or kind is _MERGED or kind is _SETTLED:
            self._forget(t)  # settled: ended and quiet, its findings stay on the tunnel as they are
            return
        if t.packed is not None:
            return  # a settled tunnel's diagnosis is final
        w = self._watch.get(t.id)
        if w is None:
            w = self._watch[t.id] = _Watch(t, Observations(self.cfg), self.cfg, self.show_secrets)
            self._live.add(t.id)
            self._new.append(t.id)
        obs = w.obs
        obs.update(ev)
        if kind is _TUNNEL_NEW:
            return
        cat = category(ev)
        asleep = w.asleep
        if asleep:  # wake the rules this kind of event can change (an event of no category: every rule)
            if cat is None:
                asleep.clear()
            else:
                for code in [code for code, q in asleep.items() if cat in q.wake]:
                    del asleep[code]
        if self._new:
            self._check_new(now)
        if kind is _MESSAGE and t.id not in self._call_key:
            self._index_call(w, now)
        if kind is _ENDED:
            self._live.discard(t.id)
        if (routine(ev) and not (t.lcp_echo.consecutive_misses or t.pptp_echo.consecutive_misses)
                and not any(f.severity is _ERROR for f in w.raw.values())):
            # a keepalive of a working tunnel (no miss, no error standing) is evaluated at the next tick: a
            # warning it could change (RTT, loopback) may wait KEEPALIVE_EVERY seconds, while a lossy tunnel's
            # standing gre-loss no longer costs a full evaluation at every echo
            obs.deferred = True
            return
        after = self._after.get(cat)
        self._evaluate(w, now, self.rules if after is None else after[obs.deferred])
        for col in w.case.collisions:
            peer = self._watch.get(col.tunnel.id)
            if peer is not None:
                self._evaluate(peer, now, self.rules)
        if kind is _ENDED:
            self._unindex(t)

    def _tick(self, now: float, final: bool = False) -> None:
        if self._new:
            self._check_new(now)
        horizon = self.cfg.horizon
        for tid in list(self._live):
            w = self._watch[tid]
            t, obs = w.tunnel, w.obs
            if final:
                self._evaluate(w, now, self.rules, final=True)  # the end of the input: everything, now
            elif obs.deferred and now - obs.last_eval >= KEEPALIVE_EVERY:
                self._evaluate(w, now, self._keepalive)
            elif now - t.last_seen <= horizon:
                if (t.phase is _DATA and now - obs.last_eval < KEEPALIVE_EVERY
                        and not (t.lcp_echo.outstanding or t.pptp_echo.outstanding)):
                    # carrying data, no keepalive awaiting its answer: only GRE health warnings can
                    # change, and they can wait a few seconds
                    continue
                self._evaluate(w, now, self._timed)

    def _forget(self, t: Tunnel) -> None:
        self._unindex(t)
        self._watch.pop(t.id, None)
        self._live.discard(t.id)

    # ------------------------------------------------------------------ rules
    def _evaluate(self, w: _Watch, now: float, rules: Sequence[Rule], final: bool = False) -> None:
        case = w.case
        case.now = now
        case.final = final
        raw, hits, asleep = w.raw, w.hits, w.asleep
        dirty = False
        full = rules is self.rules  # every rule runs, asleep or not (a cross-tunnel fact, the end, the reference)
        sleepy = self._sleepy
        for r in rules:
            code = r.code
            if code in asleep and not full:
                if now < asleep[code].until:
                    continue
                del asleep[code]  # its timeout may have come: run it
            hit = r.fn(case)
            if hit is None or isinstance(hit, Quiet):
                if hit is not None and sleepy:
                    asleep[code] = hit
                elif full and asleep:
                    asleep.pop(code, None)
                if code in raw:
                    del raw[code]
                    del hits[code]
                    dirty = True
                continue
            if full and asleep:
                asleep.pop(code, None)
            if hits.get(code) == hit:
                continue
            old = raw.get(code)
            hits[code] = hit
            # a provisional finding confirmed appears anew, at the time it was decided
            kept = old is not None and not (old.provisional and not hit.provisional)
            raw[code] = Finding(code, r.severity, hit.title, self._texts(hit.detail), hit.evidence,
                                hit.windows_error if hit.windows_error is not None else r.windows_error, hit.hint,
                                old.ts if kept and old is not None else now, hit.provisional)
            dirty = True
        obs = w.obs
        obs.last_eval = now  # every evaluation runs the timed rules
        obs.deferred = False  # and the keepalives' rules, when some wait (on_event)
        if dirty:
            self._publish(w, now)

    def _publish(self, w: _Watch, now: float) -> None:
        t, raw = w.tunnel, w.raw
        present = set(raw)
        by_code = self._by_code
        shown = {c: f for c, f in raw.items() if not (by_code[c].unless & present)}
        explained = any(f.severity is Severity.ERROR and not self._by_code[c].fallback for c, f in shown.items())
        if explained:
            shown = {c: f for c, f in shown.items() if not self._by_code[c].fallback}
        before = w.shown
        if before.keys() == shown.keys() and all(before[c] is shown[c] for c in shown):
            return
        w.shown = shown
        t.findings = tuple(ordered(list(shown.values())))
        t.changed = True
        for code, f in shown.items():
            old = before.get(code)
            if old is None or (old.provisional and not f.provisional):
                self._emit(FindingChange("finding", t, f, now))  # new, or a provisional one confirmed
        for code, f in before.items():
            if code not in shown:
                if len(t.withdrawn) < MAX_WITHDRAWN:
                    t.withdrawn = (*t.withdrawn, Withdrawn(f, now))
                self._emit(FindingChange("withdrawn", t, f, now))

    def _emit(self, change: FindingChange) -> None:
        for listener in self._listeners:
            listener(change)

    # ------------------------------------------------------------------ cross-tunnel facts
    def _index_call(self, w: _Watch, now: float) -> None:
        """Index a controlled call by (interface, client, server, PNS call ID) to spot collisions (RFC 2637 §4.1)."""
        t = w.tunnel
        if not t.control_seen or t.client.call_id is None or t.ended:
            return
        key: CallKey = (t.iface, t.client.ip, t.server.ip, t.client.call_id)
        self._call_key[t.id] = key
        self._pairs.setdefault((t.iface, frozenset((t.client.ip, t.server.ip))), set()).add(t.id)
        peers = self._calls.setdefault(key, set())
        for pid in list(peers):
            ow = self._watch.get(pid)
            if ow is None or ow.tunnel.ended or ow.tunnel.client.port == t.client.port:
                continue
            w.case.collisions.append(Collision(ow.tunnel, ow.obs))
            ow.case.collisions.append(Collision(t, w.obs))
            self._evaluate(ow, now, self.rules)
        peers.add(t.id)

    def _unindex(self, t: Tunnel) -> None:
        key = self._call_key.pop(t.id, None)
        if key is None:
            return
        peers = self._calls.get(key)
        if peers is not None:
            peers.discard(t.id)
            if not peers:
                del self._calls[key]
        pair = (t.iface, frozenset((t.client.ip, t.server.ip)))
        known = self._pairs.get(pair)
        if known is not None:
            known.discard(t.id)
            if not known:
                del self._pairs[pair]

    def _check_new(self, now: float) -> None:
        """GRE-only tunnels between the addresses of a known call carry a call ID nobody announced."""
        new, self._new = self._new, []
        for tid in new:
            tw = self._watch.get(tid)
            if tw is None or tw.tunnel.control_seen:
                continue
            t = tw.tunnel
            cid = t.server.call_id if t.server.call_id is not None else t.client.call_id
            if cid is None:
                continue
            first = t.data_ring[0][0] if t.data_ring else (t.packets[0].number if t.packets else None)
            for pid in self._pairs.get((t.iface, frozenset((t.client.ip, t.server.ip))), set()):
                kw = self._watch[pid]
                known = kw.tunnel
                if known.joined or known.first_seen > t.first_seen:
                    # the GRE flowed before that call was set up, or the capture joined the known call
                    # mid-session and may have missed the control connection of another one: another session
                    continue
                strays = kw.case.stray_call_ids
                if len(strays) < 4:
                    strays.append((cid, Ref(first, t.first_seen)))
                    self._evaluate(kw, now, self.rules)
