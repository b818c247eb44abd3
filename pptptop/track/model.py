"""What the tracker knows about a tunnel: plain mutable records, no logic.

A *tunnel* is one PPTP call (RFC 2637 §1.3: a session carried over one
control connection), seen on one interface. Its two directions are named from
the client's point of view: ``TO_SERVER`` is GRE/TCP from the PNS (the PPTP
client, which opens TCP 1723) to the PAC (the server), ``TO_CLIENT`` the other
way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Protocol

from pptptop.decode.pppd import format_pppd
from pptptop.decode.stored import ppp_of
from pptptop.track import records as _records
from pptptop.track.history import History
from pptptop.track.notes import ConntrackNote, Finding, InsideNote, NatNote, NatProblem, Withdrawn
from pptptop.track.sides import Sides


class PackedPackets(Protocol):
    """Stored packets, packed (track/packed.py implements it: it builds on this module)."""

    def __len__(self) -> int: ...

    def holds(self, kind: PacketKind) -> bool:
        """Whether a packet of ``kind`` is among them (without unpacking them)."""
        ...

    def unpack(self) -> list[Packet]:
        """The packets again, as a live tunnel stores them (a PPP frame not decoded)."""
        ...


class PackedRing(Protocol):
    """The data packets a settled tunnel's findings cite, packed (track/packed.py)."""

    def unpack(self) -> list[tuple[int, float, int, bytes]]:
        """(frame number, time, direction, frame) of each."""
        ...


class Phase(StrEnum):
    """Where a tunnel is on its way up (and how it ended).

    TCP → control (SCCRQ/SCCRP, RFC 2637 §2.1) → call (OCRQ/OCRP) → LCP
    (RFC 1661 Establish) → auth → NCP (Network) → data; then closed, or
    failed in the phase recorded in :attr:`Tunnel.failed_in`.
    """

    TCP = "tcp"
    CONTROL = "control"
    CALL = "call"
    LCP = "lcp"
    AUTH = "auth"
    NCP = "ncp"
    DATA = "data"
    CLOSED = "closed"
    FAILED = "failed"


#: The order phases are reached in; a tunnel never goes back down this list.
PHASE_ORDER: dict[Phase, int] = {p: i for i, p in enumerate(Phase)}


class Direction(IntEnum):
    TO_SERVER = 0
    TO_CLIENT = 1

    @property
    def sender(self) -> str:
        return "client" if self is Direction.TO_SERVER else "server"

    @property
    def other(self) -> Direction:
        return Direction.TO_CLIENT if self is Direction.TO_SERVER else Direction.TO_SERVER


#: sees a tunnel's data packets: (tunnel, direction, frame number, time, frame, start, end of the PPP frame)
DataTap = Callable[["Tunnel", Direction, int, float, bytes, int, int], None]


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    OPEN = "open"  # still in this phase
    NOT_SEEN = "not-seen"  # before the capture joined the tunnel: neither ok nor failed


@dataclass(slots=True)
class PhaseSpan:
    phase: Phase
    start: float
    end: float | None = None
    outcome: Outcome = Outcome.OPEN


@dataclass(slots=True)
class Endpoint:
    """One end of a tunnel: address, TCP port of its control connection, call ID."""

    ip: str
    port: int | None = None
    call_id: int | None = None


class PacketKind(StrEnum):
    TCP = "tcp"  # TCP segment of the control connection without a PPTP message
    CONTROL = "control"  # a PPTP control message
    PPP = "ppp"  # a non-data PPP frame in GRE (LCP, auth, NCP, CCP)
    DATA = "data"  # GRE data (MPPE, inner IP) or ack-only
    ICMP = "icmp"  # an ICMP error about this tunnel
    MALFORMED = "malformed"


LATE_PACKETS = 256  # the latest packets kept past ``Limits.stored_packets`` (Tunnel.late_packets)
KEEPALIVES_KEPT = 64  # the latest keepalive packets kept per tunnel (32 request/reply pairs)
DATA_RING = 64  # the last data packets kept per tunnel (Tunnel.data_ring)
#: what a settled tunnel has in place of its packet rings: a deque of no length keeps nothing (appending to it
#: does nothing), so every settled tunnel shares it; what they held is in ``Tunnel.packed``/``packed_ring``
NOTHING_KEPT: deque[Any] = deque(maxlen=0)


@dataclass(slots=True)
class Packet:
    """One stored packet of a tunnel, for the ladder, the transcript and evidence.

    ``number`` is the frame number in the capture (1-based, as tshark counts).
    ``message`` is the decoded PPTP message or PPP frame (never mutated). A tunnel stores a PPP frame with
    none (``Tunnel.all_packets`` decodes it again from ``data``): a decoded frame weighs several times
    its bytes (issue 23).
    """

    number: int
    ts: float
    iface: str
    linktype: int
    direction: Direction
    kind: PacketKind
    label: str  # "" for a PPP frame: its pppd-style summary is made when first asked for
    data: bytes
    message: Any = None

    @property
    def summary(self) -> str:
        """One line for the ladder and lists (PPP frames in pppd's debug-log style)."""
        if not self.label and self.kind is PacketKind.PPP and self.message is not None:
            self.label = format_pppd(self.message)
        return self.label


def _number(p: Packet) -> int:
    return p.number


def decoded(packets: Iterable[Packet], chap_algorithm: int | None) -> list[Packet]:
    """``packets`` (a tunnel's, as stored) with each PPP frame's message decoded again from its frame, as
    the tracker decoded it (``chap_algorithm``: the tunnel's ``AuthInfo.chap_algorithm``)."""
    ppp = PacketKind.PPP
    return [Packet(p.number, p.ts, p.iface, p.linktype, p.direction, ppp, p.label, p.data,
                   ppp_of(p.linktype, p.data, chap_algorithm))
            if p.kind is ppp and p.message is None and not p.label else p
            for p in packets]


@dataclass(slots=True)
class DirectionStats:
    """GRE traffic in one direction, with sequence analysis (RFC 2637 §4.2-4.4)."""

    packets: int = 0
    bytes: int = 0
    payload_bytes: int = 0
    data_packets: int = 0
    ack_only: int = 0
    control_frames: int = 0
    # sequence analysis
    seq_init: bool = False
    max_seq: int = 0
    window: int = 0  # bit i set = max_seq - i was seen (64 packets of history)
    lost: int = 0
    duplicates: int = 0
    reordered: int = 0
    last_ack: int | None = None
    # rates: the current one-second bucket and a bounded history of past ones
    cur_sec: int = 0
    cur_bytes: int = 0
    cur_packets: int = 0
    history: History = field(default_factory=History)

    def roll(self, sec: int) -> None:
        """Close the current one-second bucket and start the one for ``sec``."""
        if self.cur_packets:
            self.history.append((self.cur_sec, self.cur_bytes, self.cur_packets))
        self.cur_sec = sec
        self.cur_bytes = 0
        self.cur_packets = 0

    def rate(self, now: float, window: int = 5) -> float:
        """Bytes per second over the last ``window`` whole seconds before ``now``."""
        start = int(now) - window
        total = sum(b for s, b, _ in self.history if s >= start)
        if self.cur_sec >= start:
            total += self.cur_bytes
        return total / window

    def series(self, now: float, seconds: int = 60) -> list[int]:
        """Bytes per second for the last ``seconds`` seconds, oldest first (sparklines)."""
        end = int(now)
        out = [0] * seconds
        for s, b, _ in self.history:
            i = s - (end - seconds + 1)
            if 0 <= i < seconds:
                out[i] += b
        i = self.cur_sec - (end - seconds + 1)
        if 0 <= i < seconds:
            out[i] += self.cur_bytes
        return out


@dataclass(slots=True)
class EchoStats:
    """Keepalives of one kind (PPTP Echo, RFC 2637 §2.5; LCP Echo, RFC 1661 §5.8)."""

    requests: int = 0
    replies: int = 0
    misses: int = 0
    consecutive_misses: int = 0
    rtt_ms: float | None = None  # the last one
    rtt_max_ms: float | None = None
    rtt_sum_ms: float = 0.0
    last_request: float | None = None
    last_reply: float | None = None
    # (direction of the request, identifier) -> time sent
    outstanding: dict[tuple[int, int], float] = field(default_factory=dict)

    @property
    def rtt_avg_ms(self) -> float | None:
        return self.rtt_sum_ms / self.replies if self.replies else None


@dataclass(slots=True)
class AuthInfo:
    method: str = "none"  # PAP CHAP-MD5 MS-CHAP MS-CHAPv2 EAP none
    chap_algorithm: int | None = None
    user: str | None = None
    server_name: str | None = None
    result: str = "none"  # success failure none
    message: str | None = None
    error_code: int | None = None  # MS-CHAP E=
    retry: bool | None = None
    attempts: int = 0
    password_seen: bool = False  # PAP sent a password in clear
    # the raw exchange, for --export-hashes (MS-CHAP) and the drill-down
    challenge: bytes | None = None
    peer_challenge: bytes | None = None
    nt_response: bytes | None = None
    lm_response: bytes | None = None
    password: str | None = None  # PAP only; never shown unless --show-secrets


@dataclass(slots=True)
class LcpInfo:
    """Options each side asked for and the other acknowledged (RFC 1661 §5.2)."""

    options: Sides[dict[str, Any]] = field(default_factory=lambda: Sides({}, {}))
    opened: Sides[bool] = field(default_factory=lambda: Sides(False, False))
    naks: int = 0
    rejects: int = 0
    config_requests: Sides[int] = field(default_factory=lambda: Sides(0, 0))
    identification: Sides[str] = field(default_factory=Sides)
    protocol_rejects: list[int] = field(default_factory=list)
    magic: Sides[int] = field(default_factory=Sides)
    #: the side that Configure-Nak'd or -Rejected the other's Authentication-Protocol (RFC 1661 §6.2)
    auth_refused_by: str | None = None


@dataclass(slots=True)
class NcpInfo:
    client_ip: str | None = None
    server_ip: str | None = None
    dns: list[str] = field(default_factory=list)
    nbns: list[str] = field(default_factory=list)
    ipcp_opened: Sides[bool] = field(default_factory=lambda: Sides(False, False))
    ipv6cp_opened: Sides[bool] = field(default_factory=lambda: Sides(False, False))
    client_ifid: str | None = None
    server_ifid: str | None = None
    naks: int = 0
    rejects: int = 0


@dataclass(slots=True)
class CcpInfo:
    mppe: bool = False
    #: MPPE known only from the data (PPP 0x00FD with the encrypted bit, RFC 3078 §3): CCP was not captured
    from_data: bool = False
    bits: int | None = None
    stateless: bool | None = None
    mppc: bool = False
    offered: Sides[str] = field(default_factory=Sides)  # side -> pppd rendering of its last ConfReq
    opened: Sides[bool] = field(default_factory=lambda: Sides(False, False))
    rejected_by: str | None = None  # the side that Configure-Rejected MPPE
    naks: int = 0
    reset_requests: int = 0
    last_coherency: dict[int, int] = field(default_factory=dict)


class HexData(str):
    """Octets off the wire that are not text, written in hex: ``data 00 00 00 03 a4 d2 09 6b (8 octets, not
    text)``. An LCP Terminate-Request's data (RFC 1661 §5.5) is uninterpreted: a peer may put a cause code or
    its magic number there. Shown as it is, never quoted as a message."""

    __slots__ = ()


@dataclass(slots=True)
class CloseInfo:
    by: str | None = None  # client server gateway unknown
    how: str | None = None  # call-clear, call-disconnect, stop-control, lcp-terminate, tcp-fin, tcp-rst, idle, ...
    reason: str | None = None  # a Terminate's text, or its data as HexData
    ts: float | None = None
    frame: int | None = None
    steps: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ControlInfo:
    """What the control connection said (RFC 2637 §2.1-2.4)."""

    client_host: str | None = None
    client_vendor: str | None = None
    server_host: str | None = None
    server_vendor: str | None = None
    client_firmware: int | None = None
    server_firmware: int | None = None
    protocol_version: int | None = None
    start_result: int | None = None
    start_error: int | None = None
    call_result: int | None = None
    call_error: int | None = None
    call_cause: int | None = None
    call_serial: int | None = None
    connect_speed: int | None = None
    recv_window: Sides[int] = field(default_factory=Sides)
    disconnect_result: int | None = None
    disconnect_cause: int | None = None
    call_statistics: str | None = None
    stop_reason: int | None = None
    send_accm: int | None = None
    receive_accm: int | None = None
    wan_errors: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class TcpInfo:
    syn: float | None = None
    syn_count: int = 0
    synack: float | None = None
    established: bool = False
    fin: Sides[float] = field(default_factory=Sides)
    rst: Sides[float] = field(default_factory=Sides)
    retransmissions: int = 0
    out_of_order: int = 0
    resyncs: int = 0


#: what a settled tunnel keeps packed (:meth:`Tunnel.pack_records`): the detail of its negotiation and its
#: end. Not ``tcp`` and ``pptp_echo``, which its control connection shares with its other calls, nor what is
#: read of every tunnel while the capture runs: ``traffic`` (the metrics), the endpoints, the findings, and
#: when it ended (``ended_at``: eviction)
PACKED_RECORDS = ("phases", "control", "lcp", "auth", "ncp", "ccp", "lcp_echo", "close", "icmp_errors",
                  "inner_flows", "pending_requests")


@dataclass(slots=True, eq=False)
class Tunnel:
    """One PPTP call on one interface, from its TCP SYN (or first GRE) to its end."""

    id: int
    iface: str
    client: Endpoint
    server: Endpoint
    first_seen: float
    last_seen: float
    phase: Phase = Phase.TCP
    phases: list[PhaseSpan] = field(default_factory=list)
    failed_in: Phase | None = None
    ended: bool = False
    #: when it ended: the start of its closed or failed phase (read without unpacking a settled tunnel's phases)
    ended_at: float = 0.0
    control_seen: bool = True
    roles_guessed: bool = False  # GRE-only tunnel: who is the client is inferred
    #: the capture met the tunnel after it began (no SYN, no Start-Control-Connection-Request, or GRE first):
    #: the phases before ``joined_phase`` were not seen, and the tunnel is not failed for what it was not seen to do
    joined: bool = False
    joined_phase: Phase | None = None
    control: ControlInfo = field(default_factory=ControlInfo)
    tcp: TcpInfo = field(default_factory=TcpInfo)
    lcp: LcpInfo = field(default_factory=LcpInfo)
    auth: AuthInfo = field(default_factory=AuthInfo)
    ncp: NcpInfo = field(default_factory=NcpInfo)
    ccp: CcpInfo = field(default_factory=CcpInfo)
    traffic: tuple[DirectionStats, DirectionStats] = field(
        default_factory=lambda: (DirectionStats(), DirectionStats())
    )
    pptp_echo: EchoStats = field(default_factory=EchoStats)
    lcp_echo: EchoStats = field(default_factory=EchoStats)
    close: CloseInfo = field(default_factory=CloseInfo)
    malformed: int = 0
    icmp_errors: list[str] = field(default_factory=list)
    # stored packets: the first ones kept in order, later ones in a ring of LATE_PACKETS, made when the
    # first of them comes (most tunnels never have one: an empty deque takes 600 bytes)
    packets: list[Packet] = field(default_factory=list)
    late_packets: deque[Packet] = field(default_factory=lambda: NOTHING_KEPT)
    #: keepalives (PPTP and LCP Echo, LCP Discard), the latest only: EchoStats counts them all, and a tunnel
    #: up for days would otherwise fill ``packets`` and ``late_packets`` with them
    keepalives: deque[Packet] = field(default_factory=lambda: deque(maxlen=KEEPALIVES_KEPT))
    data_ring: deque[tuple[int, float, int, bytes]] = field(default_factory=lambda: deque(maxlen=DATA_RING))
    packets_dropped: int = 0
    #: a settled tunnel's stored packets and data ring, packed (``Tracker`` settles a tunnel that ended and
    #: went quiet, track/packed.py); ``packets``, ``late_packets``, ``keepalives`` and ``data_ring`` are then
    #: empty: read them through :meth:`all_packets`, :meth:`ring` and :attr:`stored`
    packed: PackedPackets | None = None
    packed_ring: PackedRing | None = None
    #: the packets stored before the tunnel reached the data phase (its negotiation), packed when it got there
    #: (``Tracker.advance``): a tunnel up for days keeps its transcript in a few kilobytes, and ``packets``
    #: goes on from there; read them through :meth:`all_packets` as well. Settling moves them into ``packed``
    folded: PackedPackets | None = None
    inner_flows: dict[tuple[str, str, int, int | None, int | None], int] = field(default_factory=dict)
    #: the last Configure-Request of each (PPP protocol, side), awaiting its Ack/Nak/Reject
    pending_requests: dict[tuple[int, str], Any] = field(default_factory=dict)
    #: sngrep's "changed" flag: set by every update, cleared by whoever redraws
    changed: bool = True
    # what later stages note (track/notes.py): the diagnosis, NAT correlation, the kernel's view, the inside
    #: the current findings, errors first (pptptop.diagnose)
    findings: tuple[Finding, ...] = ()
    #: findings that later packets contradicted (the first 16)
    withdrawn: tuple[Withdrawn, ...] = ()
    #: this leg's translation table, when NAT correlation joined it to its other leg (track/nat/)
    nat: NatNote | None = None
    nat_problems: tuple[NatProblem, ...] = ()
    #: the kernel's conntrack view of the session (--conntrack, track/conntrack.py)
    conntrack: ConntrackNote | None = None
    #: what pptptop.inside found inside the tunnel (its user's secret known)
    inside: InsideNote | None = None
    #: called with every data packet of this tunnel, ``tap(tunnel, direction, number, ts, data, start, end)``
    #: (its PPP frame is ``data[start:end]``): set by a later stage that looks inside (pptptop.inside decrypting
    #: MPPE); a tunnel with a tap takes the per-packet path, never the batch counts
    tap: DataTap | None = None
    #: a settled tunnel's :data:`PACKED_RECORDS`, pickled and compressed (:meth:`pack_records`); reading one of
    #: them unpacks them all again
    records: bytes | None = None

    def pack_records(self) -> None:
        """Pack a settled tunnel's :data:`PACKED_RECORDS` into :attr:`records` (issue 23: a closed tunnel
        kept in a few kilobytes). They are read when the tunnel is shown or exported, not while the capture
        runs; the first read unpacks them all (:class:`_PackedTunnel`), and whoever walks every tunnel packs them
        again after it (the tracker's tick, the exports). A tunnel not settled, or packed already, is left
        as it is."""
        if self.packed is None or self.records is not None:
            return
        _records.stow(self, PACKED_RECORDS, _RECORDS_ZDICT, _PackedTunnel)

    @contextmanager
    def reading(self) -> Iterator[Tunnel]:
        """For an export that reads every tunnel: a settled tunnel's records, unpacked by the read, are packed
        again after it. One packed before is given back the same string, without packing it again: a read
        writes nothing to them."""
        blob = self.records
        try:
            yield self
        finally:
            if blob is not None and self.records is None:
                _records.restow(self, blob, PACKED_RECORDS, _PackedTunnel)
            else:
                self.pack_records()

    @property
    def link_seen(self) -> bool:
        """Whether both sides' LCP Configure-Requests were captured: from there on, a negotiation that does
        not appear did not happen (no CCP means no MPPE); before that, it is unknown."""
        r = self.lcp.config_requests
        return bool(r["client"] and r["server"])

    @property
    def auth_seen(self) -> bool:
        """Whether the capture shows how the tunnel authenticated (or that it did not). A tunnel seen from its
        start shows everything: what does not appear did not happen."""
        return not self.joined or self.link_seen or self.auth.method != "none" or self.auth.attempts > 0

    @property
    def ccp_seen(self) -> bool:
        """Whether the capture shows the compression/encryption negotiation, or the link come up without one."""
        c = self.ccp
        return not self.joined or self.link_seen or bool(c.offered) or c.rejected_by is not None

    @property
    def ncp_seen(self) -> bool:
        """Whether the capture shows IPCP/IPV6CP (addresses), or the link come up before them."""
        n = self.ncp
        return (not self.joined or self.link_seen or any(n.ipcp_opened.values()) or any(n.ipv6cp_opened.values())
                or n.client_ip is not None)

    def loose_packets(self) -> list[Packet]:
        """The stored non-data packets not packed (neither folded nor settled), in capture order."""
        stored = [*self.packets, *self.late_packets]
        if not self.keepalives:
            return stored
        return sorted([*stored, *self.keepalives], key=_number)

    def stored_packets(self) -> list[Packet]:
        """Every stored non-data packet, in capture order, as stored (a PPP frame not decoded)."""
        loose = self.loose_packets()
        if self.folded is None and self.packed is None:
            return loose
        packed = [p for c in (self.folded, self.packed) if c is not None for p in c.unpack()]
        return sorted([*packed, *loose], key=_number)

    def has_stored(self, kind: PacketKind) -> bool:
        """Whether a packet of ``kind`` is stored outside the keepalives' ring (a settled tunnel has packed
        its keepalives with the rest)."""
        return (any(p.kind is kind for p in (*self.packets, *self.late_packets))
                or any(c is not None and c.holds(kind) for c in (self.folded, self.packed)))

    def all_packets(self) -> list[Packet]:
        """Every stored non-data packet, in capture order, each PPP frame decoded."""
        return decoded(self.stored_packets(), self.auth.chap_algorithm)

    @property
    def stored(self) -> int:
        """How many non-data packets are stored (packed or not)."""
        packed = sum(len(c) for c in (self.folded, self.packed) if c is not None)
        return packed + len(self.packets) + len(self.late_packets) + len(self.keepalives)

    def ring(self) -> list[tuple[int, float, int, bytes]]:
        """The last data packets (frame number, time, direction, frame), oldest first."""
        if self.packed_ring is None:
            return list(self.data_ring)
        return [*self.packed_ring.unpack(), *self.data_ring]

    @property
    def label(self) -> str:
        c = self.client
        s = self.server
        cc = "?" if c.call_id is None else c.call_id
        sc = "?" if s.call_id is None else s.call_id
        return f"{c.ip}:{cc} ↔ {s.ip}:{sc}"


class _PackedTunnel(Tunnel):
    """A settled tunnel whose :data:`PACKED_RECORDS` are packed in ``records``: the first read of one of them
    unpacks them all, and the tunnel is a :class:`Tunnel` again (as :class:`importlib.util.LazyLoader` makes a
    lazy module a plain one on its first read). A tunnel only takes this class while packed: a class with
    ``__getattr__`` pays a lookup on every attribute read, and the live ones are read per packet."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return _records.restore(self, name, PACKED_RECORDS, _RECORDS_ZDICT, Tunnel)


#: zlib's preset dictionary for :meth:`Tunnel.pack_records` (track/records.py): a new tunnel's records
_RECORDS_ZDICT = _records.dumps(tuple(getattr(Tunnel(0, "", Endpoint("", 0), Endpoint("", 0), 0.0, 0.0), name)
                                      for name in PACKED_RECORDS))
