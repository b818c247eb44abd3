"""The ladder (sngrep's call flow) as data: one entry per stored packet, with its lane and its verdict.

Pure: no Textual. :func:`ladder_entries` merges a tunnel's packets (and, when
NAT correlation found the other leg, the peer tunnel's) in time order and
says for each which way the arrow goes, between which columns, its label,
and whether it is a failure or diagnosis evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pptptop.decode.auth import ChapPacket, EapPacket, PapPacket
from pptptop.decode.lcp import ControlPacket
from pptptop.decode.ppp import PppFrame
from pptptop.track.model import Direction, Packet, PacketKind
from pptptop.view.snapshot import TunnelDetail

#: PPTP control message types that are bad news whatever they carry (RFC 2637 §2.2, §2.13-2.14)
BAD_CONTROL = frozenset(
    {3, 13, 14}
)  # Stop-Control-Connection-Request, Call-Disconnect-Notify, WAN-Error-Notify
#: replies whose Result Code 1 means success (SCCRP, Echo-Reply, OCRP, ICRP)
RESULT_REPLIES = frozenset({2, 6, 8, 10})
#: RFC 1661 §5 codes that end or refuse something
BAD_PPP_CODES = frozenset({5, 7, 8})  # Terminate-Request, Code-Reject, Protocol-Reject
WARN_PPP_CODES = frozenset({4})  # Configure-Reject


class Lane(IntEnum):
    """Columns of the ladder: client, NAT (only when both legs are known), server."""

    CLIENT = 0
    NAT = 1
    SERVER = 2


@dataclass(frozen=True, slots=True)
class LadderEntry:
    packet: Packet
    src: Lane
    dst: Lane
    label: str
    verdict: str  # "ok", "warn", "bad"
    evidence: bool
    outside: bool  # on the NAT's outside leg (peer tunnel) when the ladder has a NAT column


def verdict(p: Packet) -> str:
    """Is this packet a failure ("bad"), a refusal worth noticing ("warn"), or normal ("ok")?"""
    if p.kind in (PacketKind.MALFORMED, PacketKind.ICMP):
        return "bad"
    if p.kind is PacketKind.TCP:
        return "bad" if "RST" in p.summary else "ok"
    m = p.message
    if p.kind is PacketKind.CONTROL and m is not None:
        mt = getattr(m, "message_type", 0)
        if mt in BAD_CONTROL:
            return "bad"
        if mt in RESULT_REPLIES and getattr(m, "result_code", 1) != 1:
            return "bad"
        return "ok"
    if isinstance(m, PppFrame):
        if m.error is not None:
            return "bad"
        inner = m.message
        if isinstance(inner, ControlPacket):
            if inner.code in BAD_PPP_CODES:
                return "bad"
            if inner.code in WARN_PPP_CODES:
                return "warn"
        elif (
            (isinstance(inner, ChapPacket) and inner.code == 4)
            or (isinstance(inner, PapPacket) and inner.code == 3)
            or (isinstance(inner, EapPacket) and inner.code == 4)
        ):
            return "bad"
    return "ok"


def label(p: Packet) -> str:
    """The arrow's text: the stored summary without pppd's brackets."""
    s = p.summary
    if p.kind is PacketKind.PPP and s.startswith("[") and s.endswith("]"):
        s = s[1:-1]
    return s


def ladder_entries(d: TunnelDetail) -> tuple[list[LadderEntry], bool]:
    """The ladder of a tunnel; the flag says whether it has a NAT column (both legs known)."""
    evidence = {n for f in d.row.findings for n in f.evidence}
    nat = d.row.nat
    with_nat = bool(d.peer_packets) and nat is not None
    this_inside = with_nat and nat is not None and nat.inside.ip == d.row.client_ip
    legs: list[tuple[Packet, bool]] = [(p, with_nat and not this_inside) for p in d.packets]
    legs += [(p, this_inside) for p in d.peer_packets]
    legs.sort(key=lambda x: (x[0].ts, x[0].number))
    out = []
    for p, outside in legs:
        if not with_nat:
            a, b = Lane.CLIENT, Lane.SERVER
        elif outside:
            a, b = Lane.NAT, Lane.SERVER
        else:
            a, b = Lane.CLIENT, Lane.NAT
        src, dst = (a, b) if p.direction is Direction.TO_SERVER else (b, a)
        out.append(LadderEntry(p, src, dst, label(p), verdict(p), p.number in evidence, outside))
    return out, with_nat


def data_packet(d: TunnelDetail, entry: tuple[int, float, int, bytes]) -> Packet:
    """A Packet for one frame of the data ring (the ring keeps no summary or link type)."""
    number, ts, direction, data = entry
    return Packet(
        number,
        ts,
        d.row.iface,
        d.linktype,
        Direction(direction),
        PacketKind.DATA,
        f"GRE data, {len(data)} bytes",
        data,
    )


def all_frames(d: TunnelDetail) -> list[Packet]:
    """Stored packets and the data ring, once each, in capture order (the packets tab)."""
    seen = {p.number for p in d.packets}
    frames = list(d.packets) + [data_packet(d, e) for e in d.data_ring if e[0] not in seen]
    frames.sort(key=lambda p: p.number)
    return frames
