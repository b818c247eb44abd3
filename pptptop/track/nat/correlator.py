"""The NAT correlator: a tracker subscriber that pairs the two legs of NATed PPTP sessions.

It owns the legs and hands each event to pairing (:mod:`.pairing`), the translation table
(:mod:`.table`) and the problem checks (:mod:`.problems`); see the package docstring.
"""

from __future__ import annotations

from typing import Any

from pptptop.decode.ppp import PppFrame
from pptptop.track.events import Event, EventKind
from pptptop.track.model import Direction, Tunnel
from pptptop.track.nat.evidence import CALL_SETUP, changes_mapping, score_pair
from pptptop.track.nat.legs import Leg, NatLimits, Pair, Role
from pptptop.track.nat.pairing import Pairing
from pptptop.track.nat.problems import ProblemCallback, ProblemFinder
from pptptop.track.nat.table import write_notes
from pptptop.track.notes import NatNote, NatProblem
from pptptop.track.tracker import Tracker

# enum members read at every event, looked up once: on 3.11 every attribute read on an enum class goes
# through EnumType's __getattr__ hook (docs/benchmark.md)
_TICK, _EVICTED, _MERGED, _MESSAGE, _ROLES, _ICMP, _ENDED = (
    EventKind.TICK, EventKind.EVICTED, EventKind.MERGED, EventKind.MESSAGE, EventKind.ROLES, EventKind.ICMP,
    EventKind.ENDED)
_TO_SERVER = Direction.TO_SERVER


class NatCorrelator:
    """Pairs the inside and outside legs of PPTP sessions and reports NAT problems.

    Create it with the tracker (it subscribes itself); read ``tunnel.nat``
    and ``tunnel.nat_problems``, or :meth:`view`, :meth:`sessions`.
    Runs in the tracker's thread, like every subscriber.
    """

    def __init__(self, tracker: Tracker, limits: NatLimits | None = None) -> None:
        self.tracker = tracker
        self.limits = limits or NatLimits()
        self._legs: dict[int, Leg] = {}
        self._active: dict[int, Leg] = {}  # legs whose tunnel has not ended
        # legs that ended without their other leg, by tunnel id, with their end time: judged unmatched only
        # once the capture clock is max_skew past it, as the other interface's frames of the same moments
        # may still be on their way (a live capture reads each interface's ring in turn)
        self._ended_alone: dict[int, tuple[Leg, float]] = {}
        self._pairing = Pairing(self._legs, self.limits, self._joined)
        self._finder = ProblemFinder(self._legs, self.limits)
        self.problems: list[NatProblem] = self._finder.problems
        self.pairs_split = 0
        tracker.subscribe(self)

    @property
    def pairs_joined(self) -> int:
        return self._pairing.joined

    # ------------------------------------------------------------------ public
    def subscribe(self, callback: ProblemCallback) -> None:
        """Call ``callback`` with every new :class:`NatProblem`."""
        self._finder.callbacks.append(callback)

    def peer(self, t: Tunnel) -> Tunnel | None:
        """The other leg of ``t``'s session, once joined."""
        leg = self._legs.get(t.id)
        if leg is None or leg.pair is None:
            return None
        return leg.pair.other(leg).tunnel

    def role(self, t: Tunnel) -> Role | None:
        leg = self._legs.get(t.id)
        if leg is None or leg.pair is None:
            return None
        return leg.pair.role(leg)

    def fold(self, t: Tunnel) -> int | None:
        """For ``--json``: the id of the inside leg ``t`` is listed under, if ``t`` is an outside leg."""
        leg = self._legs.get(t.id)
        if leg is None or leg.pair is None or leg.pair.inside is None or leg.pair.inside is leg:
            return None
        inside = leg.pair.inside.tunnel
        return inside.id if inside.id in self.tracker.tunnels else None

    def view(self, t: Tunnel) -> NatNote | None:
        """``tunnel.nat``, brought up to date; None for a leg without a peer."""
        leg = self._legs.get(t.id)
        if leg is None or leg.pair is None or not self._refresh(leg.pair):
            return None
        return t.nat

    def problems_of(self, t: Tunnel) -> tuple[NatProblem, ...]:
        return t.nat_problems

    def sessions(self) -> list[dict[str, Any]]:
        """The translation table: one entry per joined session (the inside leg's view)."""
        out = []
        seen: set[int] = set()
        for leg in list(self._legs.values()):
            p = leg.pair
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            inside = p.inside or p.a
            v = self.view(inside.tunnel)
            if v is not None:
                out.append({"tunnel": inside.tunnel.id, **v.as_dict()})
        return sorted(out, key=lambda s: s["tunnel"])

    # ------------------------------------------------------------------ events
    def __call__(self, ev: Event) -> None:
        kind = ev.kind
        t = ev.tunnel
        if kind is _TICK:
            self._tick(ev.ts, final=bool(ev.detail.get("final")))
            return
        if t is None:
            return
        if kind is _EVICTED or kind is _MERGED:
            self._forget(t)
            return
        leg = self._legs.get(t.id)
        if leg is None:
            leg = self._legs[t.id] = self._active[t.id] = Leg(t, ev.ts, ev.frame)
            self._finder.ifaces.add(t.iface)
        elif leg.first_frame is None:
            leg.first_frame = ev.frame
        pair = leg.pair
        if pair is not None and pair.closing is None and t.close.how is not None:
            pair.closing = {(x.tunnel.id, d): x.tunnel.traffic[d].packets for x in (pair.a, pair.b) for d in Direction}
        if kind is _MESSAGE and ev.direction is not None:
            self._message(leg, ev)
        elif kind is _ROLES:
            leg.epoch += 1
            self._pairing.drop_pairs(leg)
        elif kind is _ICMP:
            self._finder.icmp(leg, ev)
        elif kind is _ENDED:
            self._ended(leg, ev)
        if leg.pair is not None and kind is not _ENDED and changes_mapping(ev):
            self._refresh(leg.pair)

    # ------------------------------------------------------------------ steps
    def _message(self, leg: Leg, ev: Event) -> None:
        msg = ev.message
        if leg.gre_first is None and isinstance(msg, PppFrame):
            leg.gre_first = ev.ts
        call_setup = getattr(msg, "message_type", None) in CALL_SETUP
        if leg.items >= self.limits.items_per_leg and not call_setup:
            return  # this leg's evidence is all in: spare its keepalives the signature and the index
        d = ev.direction if ev.direction is not None else _TO_SERVER
        seq: int | None = None
        if not isinstance(msg, PppFrame) and msg is not None and hasattr(msg, "message_type"):
            conn = self.tracker.connection_of(leg.tunnel)
            if conn is not None:
                seq = conn.streams[d].next_seq
            if call_setup:
                self._finder.check_collision(leg, ev)
        if leg.items >= self.limits.items_per_leg:
            return
        self._pairing.observe(leg, ev, d, seq)

    def _joined(self, pair: Pair) -> None:
        self._finder.joined(pair)
        write_notes(pair, score_pair(pair))

    def _ended(self, leg: Leg, ev: Event) -> None:
        self._active.pop(leg.tunnel.id, None)
        self._finder.gre_checks(leg, ev.ts, ev.frame, ended=True, final=False)
        if leg.pair is None:
            self._ended_alone[leg.tunnel.id] = (leg, ev.ts)
        self._finder.release(leg)
        if leg.pair is not None:
            self._refresh(leg.pair)

    def _tick(self, now: float, *, final: bool) -> None:
        """Once per second of capture time (and at the end): timeouts over the live legs."""
        self._pairing.prune_index(now)
        for tid, (leg, end) in list(self._ended_alone.items()):
            if final or now - end >= self.limits.max_skew:
                del self._ended_alone[tid]
                if leg.pair is None and self._legs.get(tid) is leg:
                    self._finder.unmatched(leg, end, final=True)
        refreshed: set[int] = set()
        for leg in list(self._legs.values() if final else self._active.values()):
            t = leg.tunnel
            if not t.ended or final:
                self._finder.gre_checks(leg, now, None, ended=t.ended, final=final)
            pair = leg.pair
            if pair is None:
                self._finder.unmatched(leg, now, final=final)
                continue
            self._finder.silent(leg, pair, now)
            if id(pair) not in refreshed and leg.pair is not None:
                refreshed.add(id(pair))
                self._refresh(pair)  # GRE counters move without events

    def _refresh(self, pair: Pair) -> bool:
        """Bring both legs' notes up to date; split the pair if a fact learnt since the join contradicts it.

        A pair whose TCP sequence numbers matched both ways stays joined (the contradiction is listed
        under ``conflicts``: e.g. one leg missed a retransmitted LCP Configure-Request).
        """
        scored = score_pair(pair)
        if scored[2] and not (pair.seq_match[0] and pair.seq_match[1]):
            self.pairs_split += 1
            for leg in (pair.a, pair.b):
                leg.pair = None
                leg.tunnel.nat = None
                leg.tunnel.changed = True
            return False
        write_notes(pair, scored)
        return True

    def _forget(self, t: Tunnel) -> None:
        self._active.pop(t.id, None)
        self._ended_alone.pop(t.id, None)
        leg = self._legs.pop(t.id, None)
        if leg is None:
            return
        self._pairing.drop_pairs(leg)
        self._finder.release(leg)
        if leg.pair is not None:
            peer = leg.pair.other(leg)
            peer.pair = None
            peer.tunnel.nat = None
