"""Pairing: which legs may be one session, and when the evidence is enough to join them.

Every control message and PPP frame a leg sends is indexed by its signature for ``max_skew``
seconds; the same signature seen on another leg to the same server is a match. Only a TCP sequence
number or per-session randomness opens a candidate pair (else every pptp-linux session would pair
with every other); the rest corroborates open pairs. Timing is only a window, never evidence.
"""

from __future__ import annotations

from collections.abc import Callable

from pptptop.decode.ppp import PppFrame
from pptptop.track.events import Event
from pptptop.track.model import Direction
from pptptop.track.nat.evidence import (
    STRONG_EVIDENCE,
    control_signature,
    distinctive,
    index_key,
    ppp_signature,
    score_pair,
)
from pptptop.track.nat.legs import Leg, NatLimits, Pair

#: one sighting of a signature: capture time, tunnel id, the leg's epoch, and a control message's TCP sequence
Entry = tuple[float, int, int, int | None]


class Pairing:
    """Candidate pairs between the correlator's legs; ``on_join`` is called with each pair it joins."""

    def __init__(self, legs: dict[int, Leg], limits: NatLimits, on_join: Callable[[Pair], None]) -> None:
        self.legs = legs
        self.limits = limits
        self.on_join = on_join
        self.joined = 0
        self._npairs = 0  # candidate pairs held in the legs' ``candidates``
        #: signature key (:func:`index_key`) -> the latest legs that sent it, oldest first, at most
        #: ``index_fanout``: one entry as it is, a list once there are more. Nearly every signature is one
        #: session's alone, and a storm indexes thousands a second (a deque took 600 bytes for its one entry)
        self._index: dict[bytes, Entry | list[Entry]] = {}

    def observe(self, leg: Leg, ev: Event, d: Direction, seq: int | None) -> None:
        """Index what ``leg`` sent (``seq``: its TCP sequence number, for a control message) and match it."""
        t = leg.tunnel
        msg = ev.message
        is_distinctive = False
        if isinstance(msg, PppFrame):
            kind = "ppp"
            key = index_key(t.server.ip, d, kind, ppp_signature(msg))
            is_distinctive = distinctive(msg)
        elif msg is not None and hasattr(msg, "message_type"):
            kind = "control"
            key = index_key(t.server.ip, d, kind, repr(control_signature(d, msg)).encode())
        else:
            return
        leg.items += 1
        touched: list[Pair] = []
        bucket = self._index.get(key)
        # only a TCP sequence number or per-session randomness opens a pair (below); without either, and
        # with no pair open, no entry can match: spare the scan (the same messages of many sessions)
        opening = seq is not None if kind == "control" else is_distinctive
        if bucket is not None and (opening or leg.candidates):
            for ts2, lid, epoch, seq2 in (bucket if isinstance(bucket, list) else (bucket,)):
                if lid == t.id or abs(ev.ts - ts2) > self.limits.max_skew:
                    continue
                if lid not in leg.candidates and not (
                        seq is not None and seq == seq2 if kind == "control" else is_distinctive):
                    # Many sessions send the same control messages and the same IPCP/CCP/IPV6CP requests:
                    # alone, such a match proves nothing and would pair every session with every other
                    # (n²). A pair is opened only by equal TCP sequence numbers (the server's survive
                    # even a NAT that renumbers the client's) or by a PPP frame carrying per-session
                    # randomness (LCP magic numbers, CHAP challenges); the rest corroborates open pairs.
                    continue
                other = self.legs.get(lid)
                if other is None or other.epoch != epoch or not self._eligible(leg, other):
                    continue
                pair = self._pair(leg, other, ev.ts)
                if pair is None or key in pair.matched:
                    continue
                pair.matched.add(key)
                if kind == "ppp":
                    pair.ppp += 1
                else:
                    pair.control += 1
                if seq is not None and seq2 is not None:
                    if seq == seq2:
                        pair.seq_match[d] += 1
                    else:
                        pair.seq_mismatch[d] += 1
                # nearer the client: first to see what the client sends, last to see what the server sends
                if ts2 != ev.ts:
                    first_is_other = ts2 < ev.ts
                    near = other if first_is_other == (d is Direction.TO_SERVER) else leg
                    votes = pair.client_side_votes
                    votes[near.tunnel.id] = votes.get(near.tunnel.id, 0) + 1
                touched.append(pair)
        entry = (ev.ts, t.id, leg.epoch, seq)
        if bucket is None:
            self._index[key] = entry
            if len(self._index) > self.limits.max_index_keys:
                self.prune_index(ev.ts, force=True)
        elif isinstance(bucket, list):
            if len(bucket) >= self.limits.index_fanout:
                del bucket[0]
            bucket.append(entry)
        else:
            self._index[key] = [bucket, entry]
        for pair in touched:
            self._consider(pair, ev)
        if leg.pair is None:
            # tunnel-level facts (magic, challenge) may have completed a pair without a new match
            for pair in list(leg.candidates.values()):
                if pair not in touched:
                    self._consider(pair, ev)

    def _eligible(self, x: Leg, y: Leg) -> bool:
        """Two legs may be one session: same server, different viewpoint, neither joined elsewhere."""
        if x.pair is not None or y.pair is not None:
            return False
        a, b = x.tunnel, y.tunnel
        if a.server.ip != b.server.ip:
            return False
        if a.server.port is not None and b.server.port is not None and a.server.port != b.server.port:
            return False
        return a.iface != b.iface or a.client.ip != b.client.ip

    def _pair(self, x: Leg, y: Leg, ts: float) -> Pair | None:
        pair = x.candidates.get(y.tunnel.id)
        if pair is None:
            if self._npairs >= self.limits.max_pairs:
                self._prune_pairs(ts)
                if self._npairs >= self.limits.max_pairs:
                    return None
            pair = Pair(x, y, ts) if x.tunnel.id < y.tunnel.id else Pair(y, x, ts)
            x.candidates[y.tunnel.id] = y.candidates[x.tunnel.id] = pair
            self._npairs += 1
        return pair

    def _unpair(self, pair: Pair) -> None:
        if pair.a.candidates.pop(pair.b.tunnel.id, None) is not None:
            self._npairs -= 1
        pair.b.candidates.pop(pair.a.tunnel.id, None)

    def _consider(self, pair: Pair, ev: Event) -> None:
        if pair.joined or pair.a.pair is not None or pair.b.pair is not None:
            return
        score, evidence, veto = score_pair(pair)
        pair.score, pair.evidence = score, evidence
        if veto:
            self._unpair(pair)
            return
        kinds = {e.kind for e in evidence if e.points}
        lim = self.limits
        if score < lim.join_points or len(kinds) < lim.join_kinds or not kinds & STRONG_EVIDENCE:
            return
        # a rival candidate just as good for either leg: wait for more evidence
        for other in [*pair.a.candidates.values(), *pair.b.candidates.values()]:
            if other is not pair:
                s, _, v = score_pair(other)
                if not v and s >= score:
                    return
        self._join(pair, ev)

    def _join(self, pair: Pair, ev: Event) -> None:
        pair.joined = True
        pair.joined_ts = ev.ts
        pair.joined_frame = ev.frame
        pair.a.pair = pair.b.pair = pair
        self.joined += 1
        self.drop_pairs(pair.a)
        self.drop_pairs(pair.b)
        pair.base = {(leg.tunnel.id, d): leg.tunnel.traffic[d].packets
                     for leg in (pair.a, pair.b) for d in Direction}
        self.on_join(pair)

    def drop_pairs(self, leg: Leg) -> None:
        for pair in list(leg.candidates.values()):
            self._unpair(pair)

    def prune_index(self, now: float, force: bool = False) -> None:
        horizon = now - self.limits.max_skew - 1.0
        idx = self._index
        stale = [k for k, b in idx.items() if (b[-1] if isinstance(b, list) else b)[0] < horizon]
        for k in stale:
            del idx[k]
        if force and len(idx) > self.limits.max_index_keys:
            for k in list(idx)[: len(idx) - self.limits.max_index_keys * 9 // 10]:
                del idx[k]

    def _prune_pairs(self, now: float) -> None:
        horizon = now - 4 * self.limits.max_skew
        for leg in self.legs.values():
            for pair in [p for p in leg.candidates.values() if p.created < horizon]:
                self._unpair(pair)
