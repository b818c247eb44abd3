"""Both legs of a NATed PPTP session: pairing, the translation table, NAT problems seen on the wire.

A capture on a NAT gateway (``-i lan0 -i wan0``, a ``-both.pcapng``, or
``-r inside.pcap -r outside.pcap``) shows every PPTP session twice: once
before the translation with the client's private address and its own Call ID,
once after it with the public address and, through a PPTP-aware NAT such as
Linux's ``nf_nat_pptp``, a rewritten PNS Call ID (RFC 2637 §1.3 and §4.1: the
GRE Key carries the *peer's* Call ID, so a NAT that multiplexes several
clients towards one server has to treat the client's Call ID like a port).

:class:`NatCorrelator` subscribes to the tracker's events and pairs the two
legs on evidence that survives NAT, never on timing alone (timing is only a
window): TCP sequence numbers of the control messages (MASQUERADE keeps them),
the control messages themselves in the same order with every field the NAT
does not rewrite, identical PPP negotiation frames inside GRE, LCP Magic
Numbers (RFC 1661 §6.4), MS-CHAP challenges (RFC 2759 §4), the Call Serial
Number (RFC 2637 §2.7) and host/vendor strings (§2.1) — the last ones only as
consistency checks, since every pptp-linux client sends the same.

Results go into ``tunnel.notes["nat"]`` on both legs and NAT problems into
``tunnel.notes["nat_problems"]`` (see docs/nat.md for the shapes).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol

from pptptop.decode import pptp as P
from pptptop.decode.auth import ChapPacket
from pptptop.decode.lcp import ControlPacket
from pptptop.decode.ppp import PppFrame
from pptptop.track.events import Event, EventKind
from pptptop.track.model import PHASE_ORDER, Direction, Phase, Tunnel
from pptptop.track.tracker import Tracker

NOTE = "nat"
PROBLEMS_NOTE = "nat_problems"

#: Addresses a NAT's inside normally uses (RFC 1918, RFC 6598 shared space, link-local, ULA).
INSIDE_NETS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7",
    "fe80::/10"))
_INSIDE_NAMES = ("lan", "inside", "int", "priv", "br-lan", "eth1")
_OUTSIDE_NAMES = ("wan", "outside", "ext", "pub", "ppp", "uplink", "eth0")

#: The message type whose field names the *PNS* Call ID, by sender: the fields a PPTP NAT rewrites
#: (RFC 2637 §2.7-2.16; what Linux nf_nat_pptp's pptp_outbound_pkt/pptp_inbound_pkt touch).
_T = P.ControlMessageType
_CALL_SETUP = frozenset({_T.OUTGOING_CALL_REQUEST, _T.OUTGOING_CALL_REPLY, _T.INCOMING_CALL_REQUEST,
                         _T.INCOMING_CALL_REPLY})
_PNS_CALL_ID_FIELD: dict[tuple[Direction, int], str] = {
    (Direction.TO_SERVER, _T.OUTGOING_CALL_REQUEST): "call_id",
    (Direction.TO_SERVER, _T.INCOMING_CALL_REPLY): "call_id",
    (Direction.TO_SERVER, _T.CALL_CLEAR_REQUEST): "call_id",
    (Direction.TO_CLIENT, _T.OUTGOING_CALL_REPLY): "peer_call_id",
    (Direction.TO_CLIENT, _T.INCOMING_CALL_CONNECTED): "peer_call_id",
    (Direction.TO_CLIENT, _T.WAN_ERROR_NOTIFY): "peer_call_id",
    (Direction.TO_CLIENT, _T.SET_LINK_INFO): "peer_call_id",
}


class NatProblemCode(StrEnum):
    """Stable names of the NAT problems found on the wire (docs/nat.md)."""

    #: two control connections from one public address to one server use the same PNS Call ID:
    #: the server's GRE cannot be told apart (a NAT that does not rewrite Call IDs)
    CALL_ID_COLLISION = "call-id-collision"
    #: GRE in one direction only (on one leg, or lost between the legs: dropped by the gateway)
    GRE_ONE_WAY = "gre-one-way"
    #: GRE answered with ICMP protocol-unreachable (RFC 792; RFC 4443 §3.4 for IPv6)
    GRE_ICMP_UNREACHABLE = "gre-icmp-unreachable"
    #: more GRE entered the gateway on one leg than left it on the other
    GRE_GATEWAY_LOSS = "gre-gateway-loss"
    #: a session seen on one side of the gateway only, while others to the same server cross it
    LEG_UNMATCHED = "leg-unmatched"
    #: one leg went quiet while its peer kept carrying packets (interface gone, capture stopped)
    LEG_SILENT = "leg-silent"


#: Evidence with entropy (32-bit sequence numbers, random magic numbers and challenges, PPP frames
#: carrying them): one of these is needed to join, because every pptp-linux client sends the same
#: control messages and a server hands out the same Call IDs to different clients.
STRONG_EVIDENCE = frozenset({"tcp-seq", "lcp-magic", "chap-challenge", "ppp"})


class Role(StrEnum):
    INSIDE = "inside"  # the client's side of the NAT, before translation
    OUTSIDE = "outside"  # the server's side, after translation


@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact behind a pairing; ``points`` is what it adds to the score (0: consistency only)."""

    kind: str
    text: str
    points: int = 0


@dataclass(frozen=True, slots=True)
class NatProblem:
    code: NatProblemCode
    ts: float
    frame: int | None
    tunnels: tuple[int, ...]
    text: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "time": self.ts, "frame": self.frame, "tunnels": list(self.tunnels),
                "text": self.text, **self.detail}


@dataclass(slots=True)
class NatLimits:
    """Windows and bounds of the correlator."""

    max_skew: float = 2.0  # a message seen on both legs is seen within this many seconds
    join_points: int = 4  # score needed to join two legs ...
    join_kinds: int = 2  # ... from at least this many different kinds of evidence
    items_per_leg: int = 96  # control messages and PPP frames remembered per leg
    max_index_keys: int = 50_000  # distinct recent messages indexed (a window of max_skew seconds)
    max_pairs: int = 8_192  # candidate pairs under consideration
    index_fanout: int = 32  # legs remembered per identical message
    gre_grace: float = 3.0  # GRE one way for this long (after the first GRE packet) is a problem
    silent_after: float = 10.0  # a leg with no packet this long while its peer has them is silent
    unmatched_after: float = 10.0  # a session this old without its other leg is reported
    loss_min: int = 3  # GRE packets missing on the far leg before gre-gateway-loss is reported
    one_way_min: int = 3  # GRE packets one way (none back) on a single leg before gre-one-way is reported


@dataclass(slots=True, eq=False)
class _Leg:
    tunnel: Tunnel
    first_ts: float
    first_frame: int | None = None
    epoch: int = 0  # bumped when the tracker swaps a GRE-only tunnel's roles
    items: int = 0
    pair: _Pair | None = None  # set once joined
    flagged: set[str] = field(default_factory=set)
    gre_first: float | None = None
    candidates: dict[int, _Pair] = field(default_factory=dict)  # other leg's tunnel id -> pair
    collision_keys: list[tuple[str, str, str, int]] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Pair:
    a: _Leg
    b: _Leg
    created: float
    control: int = 0
    ppp: int = 0
    seq_match: list[int] = field(default_factory=lambda: [0, 0])
    seq_mismatch: list[int] = field(default_factory=lambda: [0, 0])
    client_side_votes: dict[int, int] = field(default_factory=dict)  # tunnel id -> "saw it nearer the client"
    matched: set[Any] = field(default_factory=set)
    joined: bool = False
    joined_ts: float | None = None
    joined_frame: int | None = None
    base: dict[tuple[int, int], int] = field(default_factory=dict)  # (tunnel id, direction) -> GRE at join
    #: (tunnel id, direction) -> GRE when either leg saw the session begin to end: what enters after that races
    #: the teardown (a PPTP helper drops the call's mapping at the Call-Disconnect-Notify), it is not lost
    closing: dict[tuple[int, int], int] | None = None
    inside: _Leg | None = None
    roles_from: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    score: int = 0

    def other(self, leg: _Leg) -> _Leg:
        return self.b if leg is self.a else self.a


ProblemCallback = Callable[[NatProblem], None]


@lru_cache(maxsize=4096)
def _is_inside_address(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in INSIDE_NETS if net.version == addr.version)


def _iface_hint(name: str) -> int:
    """+1 for an inside-looking interface name, -1 for an outside-looking one, 0 otherwise."""
    n = name.lower()
    if any(h in n for h in _INSIDE_NAMES):
        return 1
    if any(h in n for h in _OUTSIDE_NAMES):
        return -1
    return 0


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def control_signature(d: Direction, msg: Any) -> tuple[Any, ...]:
    """A control message's fields minus the PNS Call ID, which a PPTP NAT rewrites (RFC 2637 §2)."""
    names = _FIELD_NAMES.get(type(msg))
    if names is None:
        names = _FIELD_NAMES[type(msg)] = tuple(f.name for f in fields(msg))
    skip = _PNS_CALL_ID_FIELD.get((d, msg.message_type))
    return tuple(getattr(msg, n) for n in names if n != skip)


def _distinctive(frame: PppFrame) -> bool:
    """Whether a PPP frame carries per-session randomness: LCP with a magic number, a CHAP challenge/response."""
    m = frame.message
    if frame.protocol == 0xC021 and isinstance(m, ControlPacket):
        if m.code in (9, 10, 11, 12, 13):  # Echo, Discard, Identification, Time-Remaining carry the magic
            return bool(m.magic_number)
        return m.code <= 4 and m.option(5) is not None
    if frame.protocol == 0xC223 and isinstance(m, ChapPacket):
        return m.code in (1, 2)
    return False


def ppp_signature(frame: PppFrame) -> bytes:
    """PPP frames in GRE pass a NAT untouched: their bytes identify them (RFC 2637 §4)."""
    return hashlib.blake2b(frame.protocol.to_bytes(2, "big") + frame.info, digest_size=12).digest()


def _changes_mapping(ev: Event) -> bool:
    """Events after which a joined pair's notes are rewritten at once (the rest wait for the next TICK):
    control messages, PPP negotiation (not LCP Echo), phases, ICMP errors, role swaps."""
    if ev.kind is EventKind.MESSAGE:
        m = ev.message
        if isinstance(m, PppFrame):
            return not (m.protocol == 0xC021 and getattr(m.message, "code", 0) in (9, 10, 11))
        return True
    return ev.kind in (EventKind.PHASE, EventKind.ICMP, EventKind.ROLES)


class NatCorrelator:
    """Pairs the inside and outside legs of PPTP sessions and reports NAT problems.

    Create it with the tracker (it subscribes itself); read ``tunnel.notes["nat"]``
    and ``tunnel.notes["nat_problems"]``, or :meth:`view`, :meth:`sessions`.
    Runs in the tracker's thread, like every subscriber.
    """

    def __init__(self, tracker: Tracker, limits: NatLimits | None = None) -> None:
        self.tracker = tracker
        self.limits = limits or NatLimits()
        self.problems: list[NatProblem] = []
        self.pairs_joined = 0
        self.pairs_split = 0
        self.max_problems = 4096
        self._legs: dict[int, _Leg] = {}
        self._npairs = 0  # candidate pairs held in the legs' ``candidates``
        self._index: dict[tuple[Any, ...], deque[tuple[float, int, int, int | None]]] = {}
        self._callids: dict[tuple[str, str, str, int], int] = {}
        self._callbacks: list[ProblemCallback] = []
        self._ifaces: set[str] = set()
        self._active: dict[int, _Leg] = {}  # legs whose tunnel has not ended
        self._crossing: dict[str, set[str]] = {}  # server -> interfaces its joined sessions were seen on
        tracker.subscribe(self)

    # ------------------------------------------------------------------ public
    def subscribe(self, callback: ProblemCallback) -> None:
        """Call ``callback`` with every new :class:`NatProblem`."""
        self._callbacks.append(callback)

    def peer(self, t: Tunnel) -> Tunnel | None:
        """The other leg of ``t``'s session, once joined."""
        leg = self._legs.get(t.id)
        if leg is None or leg.pair is None:
            return None
        return leg.pair.other(leg).tunnel

    def role(self, t: Tunnel) -> Role | None:
        leg = self._legs.get(t.id)
        if leg is None or leg.pair is None or leg.pair.inside is None:
            return None
        return Role.INSIDE if leg.pair.inside is leg else Role.OUTSIDE

    def fold(self, t: Tunnel) -> int | None:
        """For ``--json``: the id of the inside leg ``t`` is listed under, if ``t`` is an outside leg."""
        leg = self._legs.get(t.id)
        if leg is None or leg.pair is None or leg.pair.inside is None or leg.pair.inside is leg:
            return None
        inside = leg.pair.inside.tunnel
        return inside.id if inside.id in self.tracker.tunnels else None

    def view(self, t: Tunnel) -> dict[str, Any] | None:
        """``tunnel.notes["nat"]``, brought up to date; None for a leg without a peer."""
        leg = self._legs.get(t.id)
        if leg is None or leg.pair is None or not self._refresh(leg.pair):
            return None
        note: dict[str, Any] = t.notes[NOTE]
        return note

    def problems_of(self, t: Tunnel) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = t.notes.get(PROBLEMS_NOTE, [])
        return out

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
                out.append({"tunnel": inside.tunnel.id, **v})
        return sorted(out, key=lambda s: s["tunnel"])

    # ------------------------------------------------------------------ events
    def __call__(self, ev: Event) -> None:
        kind = ev.kind
        t = ev.tunnel
        if kind is EventKind.TICK:
            self._tick(ev.ts, final=bool(ev.detail.get("final")))
            return
        if t is None:
            return
        if kind is EventKind.EVICTED or kind is EventKind.MERGED:
            self._forget(t)
            return
        leg = self._legs.get(t.id)
        if leg is None:
            leg = self._legs[t.id] = self._active[t.id] = _Leg(t, ev.ts, ev.frame)
            self._ifaces.add(t.iface)
        elif leg.first_frame is None:
            leg.first_frame = ev.frame
        pair = leg.pair
        if pair is not None and pair.closing is None and t.close.how is not None:
            pair.closing = {(x.tunnel.id, d): x.tunnel.traffic[d].packets for x in (pair.a, pair.b) for d in Direction}
        if kind is EventKind.MESSAGE and ev.direction is not None:
            self._message(leg, ev)
        elif kind is EventKind.ROLES:
            leg.epoch += 1
            self._drop_pairs(leg)
        elif kind is EventKind.ICMP:
            self._icmp(leg, ev)
        elif kind is EventKind.ENDED:
            self._ended(leg, ev)
        if leg.pair is not None and kind is not EventKind.ENDED and _changes_mapping(ev):
            self._refresh(leg.pair)

    # ------------------------------------------------------------------ pairing
    def _message(self, leg: _Leg, ev: Event) -> None:
        t = leg.tunnel
        msg = ev.message
        if leg.gre_first is None and isinstance(msg, PppFrame):
            leg.gre_first = ev.ts
        if leg.items >= self.limits.items_per_leg and getattr(msg, "message_type", None) not in _CALL_SETUP:
            return  # this leg's evidence is all in: spare its keepalives the signature and the index
        d = Direction(ev.direction) if ev.direction is not None else Direction.TO_SERVER
        seq: int | None = None
        distinctive = False
        if isinstance(msg, PppFrame):
            kind = "ppp"
            sig: Any = ppp_signature(msg)
            distinctive = _distinctive(msg)
        elif msg is not None and hasattr(msg, "message_type"):
            kind = "control"
            sig = control_signature(d, msg)
            conn = self.tracker.connection_of(t)
            if conn is not None:
                seq = conn.streams[d].next_seq
            if msg.message_type in _CALL_SETUP:
                self._check_collision(leg, ev)
        else:
            return
        if leg.items >= self.limits.items_per_leg:
            return
        leg.items += 1
        key = (t.server.ip, int(d), kind, sig)
        touched: list[_Pair] = []
        bucket = self._index.get(key)
        # only a TCP sequence number or per-session randomness opens a pair (below); without either, and
        # with no pair open, no entry can match: spare the scan (the same messages of many sessions)
        opening = seq is not None if kind == "control" else distinctive
        if bucket is not None and (opening or leg.candidates):
            for ts2, lid, epoch, seq2 in bucket:
                if lid == t.id or abs(ev.ts - ts2) > self.limits.max_skew:
                    continue
                if lid not in leg.candidates and not (
                        seq is not None and seq == seq2 if kind == "control" else distinctive):
                    # Many sessions send the same control messages and the same IPCP/CCP/IPV6CP requests:
                    # alone, such a match proves nothing and would pair every session with every other
                    # (n²). A pair is opened only by equal TCP sequence numbers (the server's survive
                    # even a NAT that renumbers the client's) or by a PPP frame carrying per-session
                    # randomness (LCP magic numbers, CHAP challenges); the rest corroborates open pairs.
                    continue
                other = self._legs.get(lid)
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
        elif bucket is None:
            bucket = self._index[key] = deque(maxlen=self.limits.index_fanout)
            if len(self._index) > self.limits.max_index_keys:
                self._prune_index(ev.ts, force=True)
        bucket.append((ev.ts, t.id, leg.epoch, seq))
        for pair in touched:
            self._consider(pair, ev)
        if leg.pair is None:
            # tunnel-level facts (magic, challenge) may have completed a pair without a new match
            for pair in list(leg.candidates.values()):
                if pair not in touched:
                    self._consider(pair, ev)

    def _eligible(self, x: _Leg, y: _Leg) -> bool:
        """Two legs may be one session: same server, different viewpoint, neither joined elsewhere."""
        if x.pair is not None or y.pair is not None:
            return False
        a, b = x.tunnel, y.tunnel
        if a.server.ip != b.server.ip:
            return False
        if a.server.port is not None and b.server.port is not None and a.server.port != b.server.port:
            return False
        return a.iface != b.iface or a.client.ip != b.client.ip

    def _pair(self, x: _Leg, y: _Leg, ts: float) -> _Pair | None:
        pair = x.candidates.get(y.tunnel.id)
        if pair is None:
            if self._npairs >= self.limits.max_pairs:
                self._prune_pairs(ts)
                if self._npairs >= self.limits.max_pairs:
                    return None
            pair = _Pair(x, y, ts) if x.tunnel.id < y.tunnel.id else _Pair(y, x, ts)
            x.candidates[y.tunnel.id] = y.candidates[x.tunnel.id] = pair
            self._npairs += 1
        return pair

    def _unpair(self, pair: _Pair) -> None:
        if pair.a.candidates.pop(pair.b.tunnel.id, None) is not None:
            self._npairs -= 1
        pair.b.candidates.pop(pair.a.tunnel.id, None)

    def _score(self, pair: _Pair) -> tuple[int, list[Evidence], list[str]]:
        """Score a pair: (points, evidence, vetoes); a veto is a fact both legs know and differ on."""
        a, b = pair.a.tunnel, pair.b.tunnel
        ev: list[Evidence] = []
        veto: list[str] = []
        port = a.server.port or b.server.port or "-"
        ev.append(Evidence("server", f"same server {a.server.ip} port {port}"))
        for d, name in ((Direction.TO_SERVER, "to server"), (Direction.TO_CLIENT, "to client")):
            if pair.seq_match[d] and not pair.seq_mismatch[d]:
                ev.append(Evidence("tcp-seq", f"TCP sequence numbers equal at {pair.seq_match[d]} control "
                                              f"message(s) {name}", 2))
            elif pair.seq_mismatch[d] and not pair.seq_match[d]:
                ev.append(Evidence("tcp-seq-differs", f"TCP sequence numbers differ {name} "
                                                      "(the NAT renumbers them)"))
        if pair.control:
            ev.append(Evidence("control", f"{pair.control} control message(s) identical apart from the "
                                          "client's Call ID, in order", min(pair.control, 2)))
        if pair.ppp:
            ev.append(Evidence("ppp", f"{pair.ppp} PPP negotiation frame(s) in GRE identical",
                               min(pair.ppp, 3)))
        for side in ("client", "server"):
            ma, mb = a.lcp.magic.get(side), b.lcp.magic.get(side)
            if ma is not None and mb is not None:
                if ma == mb:
                    ev.append(Evidence("lcp-magic", f"LCP Magic-Number of the {side} {ma:#010x}", 2))
                else:
                    veto.append(f"LCP Magic-Number of the {side} differs")
        for attr, label, pts in (("challenge", "MS-CHAP challenge", 3),
                                 ("peer_challenge", "MS-CHAPv2 peer challenge", 2)):
            va, vb = getattr(a.auth, attr), getattr(b.auth, attr)
            if va is not None and vb is not None:
                if va == vb:
                    ev.append(Evidence("chap-challenge", f"{label} {bytes(va[:8]).hex()}…", pts))
                else:
                    veto.append(f"{label} differs")
        ca, cb = a.control, b.control
        if ca.call_serial is not None and cb.call_serial is not None:
            if ca.call_serial != cb.call_serial:
                veto.append("Call Serial Number differs")
            elif ca.call_serial:
                ev.append(Evidence("call-serial", f"Call Serial Number {ca.call_serial}", 1))
        if a.server.call_id is not None and b.server.call_id is not None:
            if a.server.call_id != b.server.call_id:
                veto.append("the server's Call ID differs")
            else:
                ev.append(Evidence("server-call-id", f"server Call ID {a.server.call_id} (not rewritten)", 1))
        for label, va2, vb2 in (("host name", ca.client_host, cb.client_host),
                                ("vendor", ca.client_vendor, cb.client_vendor),
                                ("server host name", ca.server_host, cb.server_host)):
            if va2 is not None and vb2 is not None:
                if va2 != vb2:
                    veto.append(f"client {label} differs" if "server" not in label else f"{label} differs")
                else:
                    ev.append(Evidence("host-vendor", f"{label} {va2[:32]!r}"))
        if a.auth.user is not None and b.auth.user is not None:
            if a.auth.user != b.auth.user:
                veto.append("user name differs")
            else:
                ev.append(Evidence("user", f"user {a.auth.user[:32]!r}"))
        return sum(e.points for e in ev), ev, veto

    def _consider(self, pair: _Pair, ev: Event) -> None:
        if pair.joined or pair.a.pair is not None or pair.b.pair is not None:
            return
        score, evidence, veto = self._score(pair)
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
                s, _, v = self._score(other)
                if not v and s >= score:
                    return
        self._join(pair, ev)

    def _join(self, pair: _Pair, ev: Event) -> None:
        pair.joined = True
        pair.joined_ts = ev.ts
        pair.joined_frame = ev.frame
        pair.a.pair = pair.b.pair = pair
        self.pairs_joined += 1
        self._drop_pairs(pair.a)
        self._drop_pairs(pair.b)
        pair.base = {(leg.tunnel.id, d): leg.tunnel.traffic[d].packets
                     for leg in (pair.a, pair.b) for d in Direction}
        self._crossing.setdefault(pair.a.tunnel.server.ip, set()).update((pair.a.tunnel.iface, pair.b.tunnel.iface))
        self._write_notes(pair)

    def _drop_pairs(self, leg: _Leg) -> None:
        for pair in list(leg.candidates.values()):
            self._unpair(pair)

    # ------------------------------------------------------------------ roles and notes
    def _decide_roles(self, pair: _Pair) -> None:
        """Which leg is nearer the client: timing of matched messages, private addresses, Call ID = port."""
        a, b = pair.a, pair.b
        ta, tb = a.tunnel, b.tunnel
        votes: dict[str, int] = {}  # reason -> +n for a inside, -n for b inside
        va, vb = pair.client_side_votes.get(ta.id, 0), pair.client_side_votes.get(tb.id, 0)
        if va != vb and (va == 0 or vb == 0 or max(va, vb) >= 3 * min(va, vb)):
            votes["timing"] = 2 if va > vb else -2
        pa, pb = _is_inside_address(ta.client.ip), _is_inside_address(tb.client.ip)
        if pa != pb:
            votes["address"] = 3 if pa else -3
        ca, cb = ta.client.call_id, tb.client.call_id
        if ca is not None and cb is not None and ca != cb:
            ea = ta.client.port is not None and ca == ta.client.port
            eb = tb.client.port is not None and cb == tb.client.port
            if ea != eb:
                votes["call-id-equals-port"] = -2 if ea else 2
        ha, hb = _iface_hint(ta.iface), _iface_hint(tb.iface)
        if ta.iface != tb.iface and ha != hb:
            votes["interface-name"] = 1 if ha > hb else -1
        total = sum(votes.values())
        if total == 0:
            total = 1 if (va, ta.first_seen) >= (vb, tb.first_seen) else -1
            votes.setdefault("first-seen", 0)
        pair.inside = a if total > 0 else b
        pair.roles_from = [r for r, v in votes.items() if v == 0 or (v > 0) == (total > 0)]

    def _refresh(self, pair: _Pair) -> bool:
        """Bring both legs' notes up to date; split the pair if a fact learnt since the join contradicts it.

        A pair whose TCP sequence numbers matched both ways stays joined (the contradiction is listed
        under ``conflicts``: e.g. one leg missed a retransmitted LCP Configure-Request).
        """
        scored = self._score(pair)
        if scored[2] and not (pair.seq_match[0] and pair.seq_match[1]):
            self.pairs_split += 1
            for leg in (pair.a, pair.b):
                leg.pair = None
                leg.tunnel.notes.pop(NOTE, None)
                leg.tunnel.changed = True
            return False
        self._write_notes(pair, scored)
        return True

    def _write_notes(self, pair: _Pair, scored: tuple[int, list[Evidence], list[str]] | None = None) -> None:
        self._decide_roles(pair)
        score, evidence, veto = scored or self._score(pair)
        pair.score = score
        inside = pair.inside or pair.a
        outside = pair.other(inside)
        ti, to = inside.tunnel, outside.tunnel
        server_call = to.server.call_id if to.server.call_id is not None else ti.server.call_id

        def ep(t: Tunnel) -> dict[str, Any]:
            c = t.client
            return {"ip": c.ip, "port": c.port, "call_id": c.call_id, "interface": t.iface}

        up_i, up_o = ti.traffic[Direction.TO_SERVER].packets, to.traffic[Direction.TO_SERVER].packets
        dn_i, dn_o = ti.traffic[Direction.TO_CLIENT].packets, to.traffic[Direction.TO_CLIENT].packets
        base: dict[str, Any] = {
            "inside": ep(ti),
            "outside": ep(to),
            "server": {"ip": to.server.ip,
                       "port": to.server.port if to.server.port is not None else ti.server.port,
                       "call_id": server_call},
            "translated": {
                "address": ti.client.ip != to.client.ip,
                "port": ti.client.port != to.client.port,
                "call_id": (None if ti.client.call_id is None or to.client.call_id is None
                            else ti.client.call_id != to.client.call_id),
            },
            "table": [
                {"protocol": "tcp", "inside": {"ip": ti.client.ip, "port": ti.client.port},
                 "outside": {"ip": to.client.ip, "port": to.client.port},
                 "server": {"ip": to.server.ip, "port": to.server.port}},
                {"protocol": "gre", "direction": "to_client",
                 "inside": {"ip": ti.client.ip, "call_id": ti.client.call_id},
                 "outside": {"ip": to.client.ip, "call_id": to.client.call_id},
                 "server": {"ip": to.server.ip}},
                {"protocol": "gre", "direction": "to_server",
                 "inside": {"ip": ti.client.ip, "call_id": ti.server.call_id},
                 "outside": {"ip": to.client.ip, "call_id": to.server.call_id},
                 "server": {"ip": to.server.ip}},
            ],
            "gre_forwarded": {
                "to_server": {"inside": up_i, "outside": up_o},
                "to_client": {"outside": dn_o, "inside": dn_i},
            },
            "evidence": [{"kind": e.kind, "text": e.text, "points": e.points} for e in evidence],
            "conflicts": veto,
            "score": score,
            "roles_from": list(pair.roles_from),
            "joined_at": {
                "frame": pair.joined_frame, "time": pair.joined_ts,
                "after_frames": (pair.joined_frame - min(f for f in (inside.first_frame, outside.first_frame,
                                                                      pair.joined_frame) if f is not None))
                if pair.joined_frame is not None else None,
                "after_seconds": None if pair.joined_ts is None else round(
                    pair.joined_ts - min(inside.first_ts, outside.first_ts), 6),
            },
        }
        ti.notes[NOTE] = {"role": Role.INSIDE.value, "peer": to.id, **base}
        to.notes[NOTE] = {"role": Role.OUTSIDE.value, "peer": ti.id, **base}
        ti.changed = to.changed = True

    # ------------------------------------------------------------------ problems
    def _report(self, p: NatProblem, legs: list[_Leg]) -> None:
        if len(self.problems) < self.max_problems:
            self.problems.append(p)
        d = p.as_dict()
        for leg in legs:
            lst = leg.tunnel.notes.setdefault(PROBLEMS_NOTE, [])
            if len(lst) < 32:
                lst.append(d)
            leg.tunnel.changed = True
        for cb in self._callbacks:
            cb(p)

    def _check_collision(self, leg: _Leg, ev: Event) -> None:
        """Two live control connections from one address to one server, one PNS Call ID (RFC 2637 §4.1)."""
        t = leg.tunnel
        cid = t.client.call_id
        if cid is None:
            return
        key = (t.iface, t.client.ip, t.server.ip, cid)
        if key in leg.collision_keys:
            return
        leg.collision_keys.append(key)
        owner = self._callids.get(key)
        if owner is None or owner == t.id:
            self._callids[key] = t.id
            return
        other = self._legs.get(owner)
        ot = other.tunnel if other is not None else None
        if other is None or ot is None or ot.ended or (ot.client.port == t.client.port):
            self._callids[key] = t.id
            return
        insides = []
        for lg in (other, leg):
            peer = lg.pair.other(lg).tunnel if lg.pair is not None else None
            if peer is not None and peer.client.ip != lg.tunnel.client.ip:
                insides.append(f"{peer.client.ip} call {peer.client.call_id}")
        text = (f"two control connections from {t.client.ip} (ports {ot.client.port} and {t.client.port}) to "
                f"{t.server.ip} both use Call ID {cid}: the server's GRE for Call ID {cid} cannot be told "
                "apart. "
                "The NAT in front of these clients does not rewrite PPTP Call IDs, so only one client "
                "behind it can connect at a time")
        if insides:
            text += f" (inside: {', '.join(insides)})"
        self._report(NatProblem(NatProblemCode.CALL_ID_COLLISION, ev.ts, ev.frame, (ot.id, t.id), text, {
            "address": t.client.ip, "server": t.server.ip, "call_id": cid, "interface": t.iface,
            "ports": [ot.client.port, t.client.port]}), [other, leg])

    def _icmp(self, leg: _Leg, ev: Event) -> None:
        """ICMP protocol-unreachable quoting GRE (RFC 792 type 3 code 2; RFC 4443 §3.4 type 4 code 1)."""
        det = ev.detail
        itype, code, inner = det.get("type"), det.get("code"), det.get("inner_protocol")
        src = str(det.get("from", ""))
        v6 = ":" in src
        if inner != 47 or not ((not v6 and itype == 3 and code == 2) or (v6 and itype == 4 and code == 1)):
            return
        if det.get("late"):
            return  # late GRE racing an orderly teardown (track.icmp.late): normal, not a NAT problem
        if f"icmp:{src}" in leg.flagged:
            return
        leg.flagged.add(f"icmp:{src}")
        t = leg.tunnel
        peer = leg.pair.other(leg) if leg.pair is not None else None
        public = t.client.ip if peer is None or self.role(t) is Role.OUTSIDE else peer.tunnel.client.ip
        by_gateway = peer is not None and src == public
        if by_gateway:
            text = (f"the NAT gateway ({src}) itself answered the server's GRE with ICMP "
                    "protocol-unreachable: no conntrack expectation matched it, so the gateway took it for "
                    "itself (GRE dropped in its forward path, or no pptp helper assigned to TCP 1723)")
        elif src == public:
            text = (f"{src}, the client's address as the server sees it, answered GRE with ICMP "
                    "protocol-unreachable: nothing there accepts GRE (a NAT whose pptp helper had no "
                    "expectation for it, or no PPTP client running)")
        else:
            text = f"{src} answered GRE with ICMP protocol-unreachable: it does not forward or accept GRE"
        legs = [leg] + ([peer] if peer is not None else [])
        self._report(NatProblem(NatProblemCode.GRE_ICMP_UNREACHABLE, ev.ts, ev.frame,
                                tuple(x.tunnel.id for x in legs), text,
                                {"from": src, "by_gateway": by_gateway, "interface": t.iface}), legs)

    def _ended(self, leg: _Leg, ev: Event) -> None:
        self._active.pop(leg.tunnel.id, None)
        self._gre_checks(leg, ev.ts, ev.frame, ended=True, final=False)
        if leg.pair is None:
            self._unmatched(leg, ev.ts, final=True)
        for key in leg.collision_keys:
            if self._callids.get(key) == leg.tunnel.id:
                del self._callids[key]
        if leg.pair is not None:
            self._refresh(leg.pair)

    def _gre_checks(self, leg: _Leg, now: float, frame: int | None, *, ended: bool, final: bool) -> None:
        """GRE one way: on this leg (the wire), and between the legs (the gateway)."""
        t = leg.tunnel
        up, down = t.traffic[Direction.TO_SERVER].packets, t.traffic[Direction.TO_CLIENT].packets
        if not (up or down):
            return
        if leg.gre_first is None:
            leg.gre_first = now
        if not (ended or final or now - leg.gre_first >= self.limits.gre_grace):
            return
        pair = leg.pair
        if pair is not None:
            peer = pair.other(leg)
            pt = peer.tunnel
            if final or pt.ended or not ended or now - pt.last_seen >= self.limits.gre_grace:
                self._pair_gre(pair, now, frame)
        if "gre-one-way" in leg.flagged or (up > 0) == (down > 0) or up + down < self.limits.one_way_min:
            return
        leg.flagged.add("gre-one-way")
        n = up or down
        text = (f"GRE only {'from the client to the server' if up else 'from the server to the client'} on "
                f"{t.iface or 'this capture'} ({n} packet(s)), none the other way")
        self._report(NatProblem(NatProblemCode.GRE_ONE_WAY, now, frame, (t.id,), text, {
            "direction": "to_server" if up else "to_client", "packets": n, "interface": t.iface,
            "where": "wire"}), [leg])

    def _pair_gre(self, pair: _Pair, now: float, frame: int | None) -> None:
        """GRE that entered the gateway on one leg and did not leave on the other (counted since the join)."""
        inside = pair.inside or pair.a
        outside = pair.other(inside)
        ti, to = inside.tunnel, outside.tunnel
        for d, src_leg, dst_leg, what in ((Direction.TO_SERVER, inside, outside, "client → server"),
                                          (Direction.TO_CLIENT, outside, inside, "server → client")):
            st, dt = src_leg.tunnel, dst_leg.tunnel
            total_in, total_out = st.traffic[d].packets, dt.traffic[d].packets
            if pair.closing is not None:  # what entered once the session was ending may be dropped
                total_in = min(total_in, pair.closing.get((st.id, d), total_in))
            n_in = total_in - pair.base.get((st.id, d), 0)
            n_out = total_out - pair.base.get((dt.id, d), 0)
            # Counted since the join (a leg captured late must not look lossy) and also in total: live,
            # the two interfaces' rings are read in turns, so a burst of GRE can be counted on one leg
            # before the join and on the other after it although the gateway forwarded every packet.
            lost = min(n_in - n_out, total_in - total_out)
            dname = "to_server" if d is Direction.TO_SERVER else "to_client"
            if n_in and not n_out and not total_out:
                code = NatProblemCode.GRE_ONE_WAY
                text = (f"{what} GRE entered the gateway on {st.iface} ({n_in} packet(s)) and never left on "
                        f"{dt.iface}: the gateway dropped it")
            elif lost >= self.limits.loss_min:
                code = NatProblemCode.GRE_GATEWAY_LOSS
                text = (f"{what} GRE: {n_in} packet(s) entered the gateway on {st.iface}, {n_out} left on "
                        f"{dt.iface}: {lost} dropped by the gateway")
            else:
                continue
            flag = f"pair:{code.value}:{dname}"
            if flag in inside.flagged:
                continue
            inside.flagged.add(flag)
            outside.flagged.add(flag)
            self._report(NatProblem(code, now, frame, (ti.id, to.id), text, {
                "direction": dname, "packets": n_in, "forwarded": n_out, "seen_on": st.iface,
                "missing_on": dt.iface, "where": "gateway"}), [inside, outside])

    def _tick(self, now: float, *, final: bool) -> None:
        """Once per second of capture time (and at the end): timeouts over the live legs."""
        self._prune_index(now)
        refreshed: set[int] = set()
        for leg in list(self._legs.values() if final else self._active.values()):
            t = leg.tunnel
            if not t.ended or final:
                self._gre_checks(leg, now, None, ended=t.ended, final=final)
            pair = leg.pair
            if pair is None:
                self._unmatched(leg, now, final=final)
                continue
            self._silent(leg, pair, now)
            if id(pair) not in refreshed and leg.pair is not None:
                refreshed.add(id(pair))
                self._refresh(pair)  # GRE counters move without events

    def _unmatched(self, leg: _Leg, now: float, *, final: bool) -> None:
        """A session seen on one side of the gateway only, while others to its server cross it."""
        t = leg.tunnel
        if "unmatched" in leg.flagged or len(self._ifaces) < 2:
            return
        ifaces = self._crossing.get(t.server.ip)
        if not ifaces or t.iface not in ifaces or len(ifaces) < 2:
            return
        reached = PHASE_ORDER[t.failed_in or t.phase] >= PHASE_ORDER[Phase.CALL] or not t.control_seen
        if reached and (final or now - t.first_seen >= self.limits.unmatched_after):
            leg.flagged.add("unmatched")
            others = sorted(ifaces - {t.iface})
            text = (f"this session to {t.server.ip} was seen on {t.iface} only, never on "
                    f"{', '.join(others)}, although other sessions to that server cross the gateway there")
            self._report(NatProblem(NatProblemCode.LEG_UNMATCHED, now, None, (t.id,), text, {
                "interface": t.iface, "other_interfaces": others}), [leg])

    def _silent(self, leg: _Leg, pair: _Pair, now: float) -> None:
        """One leg quiet while the other still carries the session: an interface or its capture went away."""
        t = leg.tunnel
        peer = pair.other(leg)
        pt = peer.tunnel
        quiet = now - t.last_seen
        lim = self.limits
        if ("silent" in leg.flagged or t.ended or pt.ended or quiet < lim.silent_after
                or pt.last_seen - t.last_seen < lim.silent_after / 2):
            return
        leg.flagged.add("silent")
        text = (f"no packet of this session on {t.iface} for {quiet:.0f} s while {pt.iface} still carries it:"
                " the interface went away, its capture stopped, or the gateway stopped forwarding")
        self._report(NatProblem(NatProblemCode.LEG_SILENT, now, None, (t.id, pt.id), text, {
            "interface": t.iface, "peer_interface": pt.iface, "quiet_seconds": round(quiet, 3)}), [leg, peer])

    # ------------------------------------------------------------------ bounds
    def _prune_index(self, now: float, force: bool = False) -> None:
        horizon = now - self.limits.max_skew - 1.0
        idx = self._index
        stale = [k for k, b in idx.items() if not b or b[-1][0] < horizon]
        for k in stale:
            del idx[k]
        if force and len(idx) > self.limits.max_index_keys:
            for k in list(idx)[: len(idx) - self.limits.max_index_keys * 9 // 10]:
                del idx[k]

    def _prune_pairs(self, now: float) -> None:
        horizon = now - 4 * self.limits.max_skew
        for leg in self._legs.values():
            for pair in [p for p in leg.candidates.values() if p.created < horizon]:
                self._unpair(pair)

    def _forget(self, t: Tunnel) -> None:
        self._active.pop(t.id, None)
        leg = self._legs.pop(t.id, None)
        if leg is None:
            return
        self._drop_pairs(leg)
        for key in leg.collision_keys:
            if self._callids.get(key) == t.id:
                del self._callids[key]
        if leg.pair is not None:
            peer = leg.pair.other(leg)
            peer.pair = None
            peer.tunnel.notes.pop(NOTE, None)


def attach(tracker: Tracker, limits: NatLimits | None = None) -> NatCorrelator:
    """Subscribe a correlator to ``tracker`` (every run does this; it costs nothing without NAT)."""
    return NatCorrelator(tracker, limits)


class KernelView(Protocol):
    """What :class:`pptptop.track.conntrack.ConntrackMonitor` offers the exporters."""

    def view(self, t: Tunnel) -> dict[str, Any] | None: ...


def json_extensions(nat: NatCorrelator, kernel: KernelView | None = None) -> dict[str, Callable[[Tunnel], Any]]:
    """Per-tunnel ``--json`` sections: ``nat``, ``nat_problems`` and, with ``--conntrack``, ``conntrack``."""
    ext: dict[str, Callable[[Tunnel], Any]] = {"nat": nat.view, "nat_problems": nat.problems_of}
    if kernel is not None:
        ext["conntrack"] = kernel.view
    return ext


def nat_table(nat: NatCorrelator, kernel: KernelView | None = None) -> list[dict[str, Any]]:
    """Every joined session's mapping (the inside leg's view), with the kernel's view when known."""
    rows = nat.sessions()
    if kernel is not None:
        for row in rows:
            t = nat.tracker.tunnels.get(row["tunnel"])
            row["conntrack"] = kernel.view(t) if t is not None else None
    return rows


def _safe(s: object, limit: int = 64) -> str:
    """Interface names come from capture files: escape control characters for the terminal."""
    return repr(str(s))[1:-1][:limit]


def report_lines(nat: NatCorrelator, kernel: KernelView | None = None) -> Callable[[Tunnel], list[str]]:
    """A ``--report`` extension: the translation row, NAT problems and the kernel's view of a tunnel."""

    def lines(t: Tunnel) -> list[str]:
        out: list[str] = []
        v = nat.view(t)
        if v is not None:
            i, o, s = v["inside"], v["outside"], v["server"]
            out.append(f"  nat      {v['role']} leg (peer tunnel {v['peer']}): inside {i['ip']}:{i['port']} "
                       f"call {i['call_id']} ⇄ outside {o['ip']}:{o['port']} call {o['call_id']} ⇄ server "
                       f"{s['ip']}:{s['port']} call {s['call_id']}  [{_safe(i['interface'])} | "
                       f"{_safe(o['interface'])}]")
        for p in nat.problems_of(t)[:8]:
            out.append(f"  nat!     {p['code']}: {_safe(p['text'], 240)}")
        if kernel is not None:
            k = kernel.view(t)
            if k is not None and k.get("kernel"):
                ki, ko = k["kernel"]["inside"], k["kernel"]["outside"]
                state = "agrees" if k["agrees"] else "; ".join(_safe(d["text"], 200) for d in k["disagreements"][:3])
                out.append(f"  kernel   conntrack {ki['ip']}:{ki['port']} call {ki['call_id']} ⇄ "
                           f"{ko['ip']}:{ko['port']} call {ko['call_id']}: {state}")
            elif k is not None and k["disagreements"]:
                out.append(f"  kernel   {k['disagreements'][0]['text']}")
        return out

    return lines
