"""A read-only copy of what :mod:`pptptop.inside` sees in one tunnel, for the tunnel screen's Inside tab.

Taken under ``pipeline.lock`` like :func:`pptptop.view.snapshot.detail_of`
(the capture thread owns :class:`~pptptop.inside.state.InsideTunnel`); read
outside it. No secret, hash or key is in an ``InsideTunnel``, so none can be
here; ``secret_from`` is where the secret came from (a file and line,
``--password``), never the secret. Strings are copied raw: the UI escapes them.
No Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pptptop.decode.dns import rcode_name, type_name
from pptptop.inside.inner import PROTO_NAMES
from pptptop.inside.mppe import Drop
from pptptop.inside.state import DecryptState, InsideTunnel, inside_of
from pptptop.track.model import Tunnel
from pptptop.view.snapshot import capture_now

if TYPE_CHECKING:
    from pptptop.pipeline import Pipeline

__all__ = ["DnsLine", "FlowLine", "InsideView", "ProblemLine", "copy_inside", "inside_view", "why_empty"]

MAX_FLOWS = 64
MAX_NAMES = 64
TALKERS = 5
#: the states in which inner packets are read
READING = (DecryptState.DECRYPTING, DecryptState.PLAIN)
_MPPC = (Drop.COMPRESSED.value, Drop.NOT_ENCRYPTED.value)


@dataclass(frozen=True, slots=True)
class FlowLine:
    src: str
    dst: str
    protocol: str
    src_port: int | None
    dst_port: int | None
    packets: int
    bytes: int
    rate_bps: float | None  # over the flow's life; None for a flow of one instant


@dataclass(frozen=True, slots=True)
class DnsLine:
    name: str
    type: str
    queries: int
    responses: int
    rcode: str | None
    answers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProblemLine:
    kind: str  # stable name (docs/decryption.md)
    detail: str
    count: int
    frames: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class InsideView:
    """One tunnel seen from the inside. ``looked`` is False when nothing looked inside (no secret given)."""

    looked: bool
    state: str  # DecryptState value, or "" when not looked
    why: str
    user: str | None = None
    secret_from: str | None = None
    bits: int | None = None
    stateless: bool | None = None
    decrypted: int = 0
    decrypted_bytes: int = 0
    dropped: tuple[tuple[str, int], ...] = ()
    packets: int = 0
    inner_bytes: int = 0
    malformed: int = 0
    flows: tuple[FlowLine, ...] = ()
    flows_total: int = 0
    flows_not_kept: int = 0
    talkers: tuple[tuple[str, int], ...] = ()
    dns: tuple[DnsLine, ...] = ()
    problems: tuple[ProblemLine, ...] = ()
    #: (frame number, inner datagram) of the latest frames read inside, for the packet view
    inner_frames: tuple[tuple[int, bytes], ...] = ()

    @property
    def reading(self) -> bool:
        """Whether inner packets are being read (decrypted, or plain IP)."""
        return self.state in {s.value for s in READING} or self.decrypted > 0


def copy_inside(t: Tunnel, now: float) -> InsideView:
    """Copy one tunnel's inside state. Call with the pipeline lock held."""
    inside: InsideTunnel | None = inside_of(t)
    if inside is None:
        return InsideView(False, "", "")
    inner = inside.inner
    flows = sorted(inner.flows.items(), key=lambda x: -x[1].bytes)[:MAX_FLOWS]
    return InsideView(
        looked=True,
        state=inside.state.value,
        why=inside.why,
        user=inside.user,
        secret_from=inside.secret_from,
        bits=inside.bits,
        stateless=inside.stateless,
        decrypted=inside.decrypted,
        decrypted_bytes=inside.decrypted_bytes,
        dropped=tuple(sorted(inside.dropped.items())),
        packets=inner.packets,
        inner_bytes=inner.bytes,
        malformed=inner.malformed,
        flows=tuple(FlowLine(k[0], k[1], PROTO_NAMES.get(k[2], str(k[2])), k[3], k[4], f.packets, f.bytes,
                             8 * f.bytes / (f.last - f.first) if f.last > f.first else None)
                    for k, f in flows),
        flows_total=len(inner.flows),
        flows_not_kept=inner.flows_dropped,
        talkers=tuple(inner.top_talkers(TALKERS)),
        dns=tuple(DnsLine(e.name, type_name(e.type), e.queries, e.responses,
                          rcode_name(e.rcode) if e.rcode is not None else None, tuple(e.answers))
                  for e in list(inner.names.values())[:MAX_NAMES]),
        problems=tuple(ProblemLine(p.kind, p.detail, p.count, tuple(p.frames)) for p in inner.problems(now)),
        inner_frames=tuple(inside.recent),
    )


def inside_view(pipeline: Pipeline, tunnel_id: int) -> InsideView | None:
    """Take the lock and copy one tunnel's inside state (None once the tunnel has been evicted)."""
    with pipeline.lock:
        t = pipeline.tracker.tunnels.get(tunnel_id)
        if t is None:
            return None
        return copy_inside(t, capture_now(pipeline))


def why_empty(v: InsideView) -> str:
    """One sentence saying why no inner traffic is shown, or "" when there is some to show. Never a secret."""
    if v.reading:
        return ""
    if not v.looked:
        return ("no secret was given, so nothing inside the tunnel is read: start pptptop with "
                "--secrets FILE, --password USER:PASS or --nt-hash USER:HEX (docs/decryption.md)")
    dropped = dict(v.dropped)
    mppc = sum(dropped.get(k, 0) for k in _MPPC)
    if mppc and mppc == sum(dropped.values()):
        return ("the data is MPPC-compressed (RFC 2118) without MPPE encryption, or compressed before it; "
                "pptptop does not decompress MPPC")
    if v.state == DecryptState.NO_SECRET.value:
        return v.why or "no secret for this tunnel's user"
    if v.state == DecryptState.WRONG_SECRET.value:
        return "wrong secret: " + (v.why or "the captured response does not follow from the secret given")
    return v.why or f"no inner packet read yet ({v.state})"
