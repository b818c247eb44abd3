"""What later stages write on a tunnel: the types of :class:`~pptptop.track.model.Tunnel`'s ``findings``,
``withdrawn``, ``nat``, ``nat_problems``, ``conntrack`` and ``inside`` fields.

They live here, below the stages that write them (diagnose/, track/nat/, track/conntrack.py, inside/) and
the ones that read them (export/, record/, view/, ui/), so that every reader sees one typed joint instead
of probing a dict. Each is frozen: a stage replaces its note, nobody edits one in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """``error``: why the tunnel failed; ``warning``: unhealthy or insecure; ``info``: benign, said so."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Sort key: errors first."""
        return _RANK[self]


_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True, slots=True)
class Finding:
    """One diagnosis of one tunnel (codes, meanings and fixes: docs/diagnosis.md).

    ``ts`` is the capture time at which the finding appeared: its decisive
    packet, or the tick at which the timeout that defines it expired.
    ``evidence`` holds frame numbers of packets in the capture. A
    ``provisional`` finding is what the packets so far point to while the
    timeout that decides it still runs (SYNs unanswered before the client
    gives up): it is confirmed, or withdrawn, when that timeout expires or
    the input ends.
    """

    code: str
    severity: Severity
    title: str
    detail: str
    evidence: list[int] = field(default_factory=list)
    windows_error: int | None = None
    hint: str = ""
    ts: float = 0.0
    provisional: bool = False

    def same_content(self, other: Finding) -> bool:
        """True when only ``ts`` differs (a rule re-derived the same finding)."""
        return (self.code, self.severity, self.title, self.detail, self.evidence, self.windows_error,
                self.hint, self.provisional) == (other.code, other.severity, other.title, other.detail,
                                                 other.evidence, other.windows_error, other.hint, other.provisional)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form (docs/json.md, ``diagnosis``)."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "title": self.title,
            "detail": self.detail,
            "evidence": list(self.evidence),
            "windows_error": self.windows_error,
            "hint": self.hint,
            "time": self.ts,
            "provisional": self.provisional,
        }


def ordered(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; within one severity in order of appearance."""
    return sorted(findings, key=lambda f: (f.severity.rank, f.ts))


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """A finding that later packets contradicted, and when."""

    finding: Finding
    ts: float


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


@dataclass(frozen=True, slots=True)
class NatProblem:
    """One NAT problem (docs/nat.md), on every leg it concerns."""

    code: NatProblemCode
    ts: float
    frame: int | None
    tunnels: tuple[int, ...]
    text: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "time": self.ts, "frame": self.frame, "tunnels": list(self.tunnels),
                "text": self.text, **self.detail}


@dataclass(frozen=True, slots=True)
class NatEndpoint:
    """One end of a NATed session as a leg saw it; ``interface`` is None for the server."""

    ip: str | None
    port: int | None
    call_id: int | None
    interface: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ip": self.ip, "port": self.port, "call_id": self.call_id}
        if self.interface is not None:
            d["interface"] = self.interface
        return d


@dataclass(frozen=True, slots=True)
class NatNote:
    """The translation table of a joined NAT session, as one leg holds it (track/nat/table.py, docs/nat.md).

    ``role`` is which leg this tunnel is (``inside``: the client's side) and ``peer`` the other leg's tunnel
    id; ``inside``, ``outside`` and ``server`` the session's three ends. ``more`` holds the rest of the
    ``--json`` ``nat`` section (translated, table, gre_forwarded, evidence, conflicts, score, roles_from,
    joined_at), in its order, for the exporters only.
    """

    role: str
    peer: int
    inside: NatEndpoint
    outside: NatEndpoint
    server: NatEndpoint
    more: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The ``nat`` section of a tunnel in ``--json``."""
        return {"role": self.role, "peer": self.peer, "inside": self.inside.as_dict(),
                "outside": self.outside.as_dict(), "server": self.server.as_dict(), **self.more}


@dataclass(frozen=True, slots=True)
class ConntrackNote:
    """The kernel's view of a tunnel's session when it was last compared (track/conntrack.py, docs/nat.md).

    ``agrees``: the kernel's entries match what the wire shows; ``stale``: the kernel has dropped them
    since; ``source``: the control connection's original source as the kernel has it (address, port),
    None without a TCP entry; ``view``: the ``--json`` ``conntrack`` section.
    """

    agrees: bool
    stale: bool
    source: tuple[str, int] | None
    view: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.view)


class InsideNote:
    """What a stage that looks inside the tunnel keeps on it (``Tunnel.inside``): pptptop.inside's
    ``InsideTunnel`` is the one kind there is. Defined here so the tracker's model can hold it without
    knowing the layer above."""

    __slots__ = ()
