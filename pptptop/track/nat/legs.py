"""The correlator's state: one :class:`Leg` per tunnel seen, one :class:`Pair` per candidate session.

Shared by pairing (which opens and joins pairs), the translation table (which writes a joined
pair's notes) and the problem checks (which read both legs' counters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pptptop.track.model import Tunnel


class Role(StrEnum):
    INSIDE = "inside"  # the client's side of the NAT, before translation
    OUTSIDE = "outside"  # the server's side, after translation


@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact behind a pairing; ``points`` is what it adds to the score (0: consistency only)."""

    kind: str
    text: str
    points: int = 0


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
class Leg:
    """One tunnel as the correlator knows it: a leg of a session, joined to its peer or not yet."""

    tunnel: Tunnel
    first_ts: float
    first_frame: int | None = None
    epoch: int = 0  # bumped when the tracker swaps a GRE-only tunnel's roles
    items: int = 0
    pair: Pair | None = None  # set once joined
    #: the problems reported of it, by kind, once each; made at the first (an empty set takes 216 bytes, and
    #: most legs never have one: issue 23)
    flagged: set[str] | None = None
    gre_first: float | None = None
    candidates: dict[int, Pair] = field(default_factory=dict)  # other leg's tunnel id -> pair
    collision_keys: list[tuple[str, str, str, int]] = field(default_factory=list)

    def has(self, flag: str) -> bool:
        """Whether ``flag`` was reported of this leg."""
        return self.flagged is not None and flag in self.flagged

    def flag(self, flag: str) -> None:
        """Note ``flag`` as reported of this leg."""
        if self.flagged is None:
            self.flagged = {flag}
        else:
            self.flagged.add(flag)


@dataclass(slots=True, eq=False)
class Pair:
    """Two legs that may be one session: the matches counted so far and, once joined, the mapping."""

    a: Leg
    b: Leg
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
    inside: Leg | None = None
    roles_from: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    score: int = 0

    def other(self, leg: Leg) -> Leg:
        return self.b if leg is self.a else self.a

    def role(self, leg: Leg) -> Role | None:
        """``leg``'s side of the gateway, once the roles are decided."""
        if self.inside is None:
            return None
        return Role.INSIDE if self.inside is leg else Role.OUTSIDE
