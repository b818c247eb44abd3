"""What the rules look at: per-tunnel facts gathered from tracker events, with their frames.

The tracker's :class:`~pptptop.track.model.Tunnel` says what was agreed; the
rules also need *which packet* said what (the evidence) and the order things
happened in. :class:`Observations` is updated in O(1) per event
(:meth:`Observations.update`) so that rules stay cheap: they read these
fields and the tunnel, never scan packets.

Sides are named from the client's point of view, as in the tracker
(``client`` is the PNS, RFC 2637 §1.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pptptop.decode import pptp as P
from pptptop.decode.auth import ChapPacket, EapPacket, PapPacket
from pptptop.decode.ccp import CcpOption, MppeBits
from pptptop.decode.lcp import AuthProtocol, ControlCode, ControlPacket, LcpOption, option_name
from pptptop.decode.ncp import IpcpOption
from pptptop.decode.ppp import PppFrame, PppProtocol
from pptptop.diagnose.config import DiagnosisConfig
from pptptop.track.events import Event, EventKind
from pptptop.track.model import Direction
from pptptop.track.negotiation import terminate_reason
from pptptop.track.sides import Sides

# enum members read at every event, looked up once: on 3.11 every attribute read on an enum class goes
# through EnumType's __getattr__ hook (docs/benchmark.md)
_MESSAGE, _TCP, _ICMP, _PHASE, _ENDED, _ROLES = (EventKind.MESSAGE, EventKind.TCP, EventKind.ICMP, EventKind.PHASE,
                                                EventKind.ENDED, EventKind.ROLES)
_LCP, _CCP, _CCP_LINK, _IPCP = PppProtocol.LCP, PppProtocol.CCP, PppProtocol.CCP_LINK, PppProtocol.IPCP
_ECHO_REQUEST, _ECHO_REPLY, _DISCARD_REQUEST = (ControlCode.ECHO_REQUEST, ControlCode.ECHO_REPLY,
                                                ControlCode.DISCARD_REQUEST)

SIDES = ("client", "server")
MAX_REFS = 32  # frames kept per list: evidence, not history
T = P.ControlMessageType


def side_of(d: Direction | None) -> str:
    """Who sent a packet travelling in direction ``d``."""
    return "server" if d is Direction.TO_CLIENT else "client"


def other(side: str) -> str:
    return "server" if side == "client" else "client"


class Ref(NamedTuple):
    """A packet: its frame number (None for a tick) and capture time. A named tuple, not a frozen
    dataclass: one is made for every event the diagnosis takes, and a tuple is made in a fifth of the time."""

    frame: int | None
    ts: float


@dataclass(frozen=True, slots=True)
class Term:
    """A terminating action (RFC 1661 §5.5 Terminate-Request, RFC 2637 §2.12-2.13, §2.3, TCP FIN/RST)."""

    ref: Ref
    side: str
    how: str  # lcp-terminate call-clear call-disconnect stop-control tcp-fin tcp-rst (ccp-, ipcp-terminate)
    reason: str  # a Terminate's text, or its data as HexData when it is not text


@dataclass(frozen=True, slots=True)
class AuthFail:
    """A CHAP/MS-CHAP Failure (RFC 1994 §4.2, RFC 2759 §6), PAP Authenticate-Nak or EAP Failure."""

    ref: Ref
    kind: str  # chap pap eap
    error: int | None  # MS-CHAP E=
    retry: bool | None
    message: str


@dataclass(frozen=True, slots=True)
class NakRej:
    """A Configure-Nak or -Reject (RFC 1661 §5.3-5.4) of the options named in ``what``."""

    ref: Ref
    sender: str
    code: int
    what: str


@dataclass(frozen=True, slots=True)
class AuthNak:
    """An LCP Nak/Reject of the Authentication-Protocol option (RFC 1661 §6.2).

    ``asked`` is what the authenticator asked for, ``offered`` what the peer
    suggested instead (None: the peer rejected authentication altogether, or
    Nak'd it with a method not known here); ``rejected``: a Configure-Reject.
    """

    ref: Ref
    sender: str
    asked: str | None
    offered: str | None
    rejected: bool = False


@dataclass(frozen=True, slots=True)
class CcpOffer:
    """A CCP Configure-Request or -Nak's MPPE bits (RFC 3078 §2.1)."""

    ref: Ref
    sender: str
    bits: MppeBits | None
    text: str


@dataclass(frozen=True, slots=True)
class IpcpNak:
    """An IPCP Configure-Nak of IP-Address (RFC 1332 §3.3): ``asked`` → ``offered``."""

    ref: Ref
    sender: str
    asked: str | None
    offered: str | None


@dataclass(frozen=True, slots=True)
class IcmpSeen:
    """An ICMP error quoting the tunnel's GRE or TCP (RFC 792)."""

    ref: Ref
    type: int
    code: int
    sender: str
    inner_protocol: int
    direction: Direction | None
    text: str
    quoted: Ref | None  # the last PPP frame seen in the quoted packet's direction
    late: bool = False  # part of an orderly teardown (track.icmp.late), not a path problem


@dataclass(frozen=True, slots=True)
class Spike:
    """An echo round trip far above the ones before it."""

    kind: str
    rtt_ms: float
    baseline_ms: float
    request: Ref
    reply: Ref


@dataclass(slots=True)
class EchoTrack:
    """Keepalives of one kind (PPTP Echo RFC 2637 §2.5, LCP Echo RFC 1661 §5.8), per sender."""

    kind: str
    #: sender -> its requests since the peer last answered one (the current run of misses)
    unanswered: Sides[list[Ref]] = field(default_factory=lambda: Sides([], []))
    outstanding: dict[tuple[str, int], Ref] = field(default_factory=dict)
    requests: Sides[int] = field(default_factory=lambda: Sides(0, 0))
    replies: int = 0
    rtt_count: int = 0
    rtt_sum: float = 0.0
    spike: Spike | None = None
    last_reply: Ref | None = None

    def request(self, sender: str, ident: int, ref: Ref) -> None:
        self.requests[sender] += 1
        run = self.unanswered[sender]
        if len(run) >= MAX_REFS:
            del run[0]
        run.append(ref)
        if len(self.outstanding) < 64:
            self.outstanding[(sender, ident)] = ref

    def reply(self, replier: str, ident: int, ref: Ref, cfg: DiagnosisConfig) -> None:
        sender = other(replier)
        self.replies += 1
        self.last_reply = ref
        self.unanswered[sender] = []
        req = self.outstanding.pop((sender, ident), None)
        if req is None:
            return
        rtt = (ref.ts - req.ts) * 1000.0
        if self.rtt_count >= 3:
            base = self.rtt_sum / self.rtt_count
            if rtt >= cfg.rtt_spike_factor * base and rtt - base >= cfg.rtt_spike_min_ms and (
                    self.spike is None or rtt - base > self.spike.rtt_ms - self.spike.baseline_ms):
                self.spike = Spike(self.kind, rtt, base, req, ref)
        self.rtt_count += 1
        self.rtt_sum += rtt

    def swap(self) -> None:
        self.unanswered = self.unanswered.swapped()
        self.requests = self.requests.swapped()
        self.outstanding = {(other(s), i): r for (s, i), r in self.outstanding.items()}


def _method(o: Any) -> str | None:
    return o.value.method if isinstance(o.value, AuthProtocol) else None


def _mppe(m: ControlPacket) -> MppeBits | None:
    o = m.option(CcpOption.MPPE)
    return o.value if o is not None and isinstance(o.value, MppeBits) else None


def _addr(m: ControlPacket) -> str | None:
    o = m.option(IpcpOption.IP_ADDRESS)
    return o.value if o is not None and isinstance(o.value, str) else None


def _names(m: ControlPacket) -> str:
    return ", ".join(_option_label(m.protocol, o.type) for o in m.options) or "(no options)"


def _option_label(protocol: int, t: int) -> str:
    return option_name(protocol, t)


@dataclass(slots=True)
class Observations:
    """The facts of one tunnel, with the frames that carried them."""

    cfg: DiagnosisConfig
    # TCP and the control connection (RFC 2637 §2)
    syns: list[Ref] = field(default_factory=list)
    synack: Ref | None = None
    refused: Ref | None = None  # RST from the server before the handshake completed
    fin: Sides[Ref] = field(default_factory=Sides)
    rst: Sides[Ref] = field(default_factory=Sides)
    icmp: list[IcmpSeen] = field(default_factory=list)
    sccrq: Ref | None = None
    sccrp: Ref | None = None
    sccrp_msg: Any = None
    ocrq: Ref | None = None
    ocrp: Ref | None = None
    ocrp_msg: Any = None
    call_clear: Term | None = None
    cdn: tuple[Term, Any] | None = None
    stop: tuple[Term, Any] | None = None
    wan_error: tuple[Ref, Any] | None = None
    pptp_echo: EchoTrack = field(default_factory=lambda: EchoTrack("pptp"))
    # LCP (RFC 1661)
    lcp_unanswered: Sides[list[Ref]] = field(default_factory=lambda: Sides([], []))
    lcp_first_request: Sides[Ref] = field(default_factory=Sides)
    lcp_requests: Sides[int] = field(default_factory=lambda: Sides(0, 0))
    lcp_answered: Sides[Ref] = field(default_factory=Sides)  # side -> the peer's last answer to it
    lcp_acked: Sides[Ref] = field(default_factory=Sides)  # side -> the peer's Ack of its request
    #: side -> Configure-Requests it sent after the peer acked its request: the Ack never reached it
    lcp_request_after_ack: Sides[list[Ref]] = field(default_factory=Sides)
    lcp_nakrej: list[NakRej] = field(default_factory=list)
    auth_nakrej: list[AuthNak] = field(default_factory=list)
    auth_asked: Sides[str] = field(default_factory=Sides)  # side -> method in its last ConfReq
    auth_agreed: tuple[Ref, str] | None = None
    auth_first_asked: str | None = None
    mru: Sides[tuple[int, Ref]] = field(default_factory=Sides)  # side -> MRU the peer acked
    magic: Sides[int] = field(default_factory=Sides)
    loopback: Ref | None = None
    protocol_rejects: list[tuple[Ref, str, int]] = field(default_factory=list)
    lcp_echo: EchoTrack = field(default_factory=lambda: EchoTrack("lcp"))
    # authentication (RFC 1334, 1994, 2433, 2759, 3748)
    challenge: Ref | None = None
    response: Ref | None = None
    auth_fail: AuthFail | None = None
    auth_success: Ref | None = None
    pap_request: tuple[Ref, str | None, str | None] | None = None
    # CCP / MPPE (RFC 1962, RFC 3078)
    ccp_first: Sides[CcpOffer] = field(default_factory=Sides)
    ccp_last: Sides[CcpOffer] = field(default_factory=Sides)
    ccp_naks: list[CcpOffer] = field(default_factory=list)
    ccp_reject: tuple[Ref, str] | None = None  # MPPE rejected, by whom
    ccp_acked: Sides[CcpOffer] = field(default_factory=Sides)  # side -> its request the peer acked
    ccp_resets: list[Ref] = field(default_factory=list)
    ccp_reset_count: int = 0
    # IPCP (RFC 1332)
    ipcp_unanswered: Sides[list[Ref]] = field(default_factory=lambda: Sides([], []))
    ipcp_naks: list[IpcpNak] = field(default_factory=list)
    ipcp_nak_count: int = 0
    ipcp_rejects: list[NakRej] = field(default_factory=list)
    ipcp_opened: Sides[Ref] = field(default_factory=Sides)
    #: actions that end the session (LCP Terminate-Request, Call-Clear, CDN, StopCCRQ, FIN, RST), in order;
    #: an NCP's or CCP's own Terminate-Request only closes that protocol (kept in ipcp_term, ccp_term)
    terms: list[Term] = field(default_factory=list)
    lcp_term: Sides[Term] = field(default_factory=Sides)
    ipcp_term: Sides[Term] = field(default_factory=Sides)
    ccp_term: Sides[Term] = field(default_factory=Sides)
    ended: Ref | None = None
    end_detail: dict[str, Any] = field(default_factory=dict)
    phase_at: dict[str, Ref] = field(default_factory=dict)
    #: side -> its last PPP frame (a dict: set at every PPP frame, where a Sides' Python-level item
    #: assignment would cost more than the 128 bytes it saves)
    last_message: dict[str, Ref] = field(default_factory=dict)
    last_eval: float = 0.0
    deferred: bool = False  # routine events since the last evaluation (evaluated at the next tick)

    # ------------------------------------------------------------------ queries
    @property
    def first_term(self) -> Term | None:
        return self.terms[0] if self.terms else None

    @property
    def lcp_open(self) -> bool:
        """Both sides' LCP Configure-Requests were acknowledged (RFC 1661 §4.2 Opened)."""
        return "client" in self.lcp_acked and "server" in self.lcp_acked

    @property
    def lcp_any_answer(self) -> bool:
        return bool(self.lcp_answered)

    def end_ref(self) -> Ref | None:
        """The first sign that the tunnel is going away (a terminate, clear, FIN/RST or its end)."""
        t = self.first_term
        if t is not None:
            return t.ref
        return self.ended

    # ------------------------------------------------------------------ updates
    def _term(self, ref: Ref, side: str, how: str, reason: str) -> Term:
        t = Term(ref, side, how, reason)
        if len(self.terms) < MAX_REFS:
            self.terms.append(t)
        return t

    def swap_sides(self) -> None:
        """A GRE-only tunnel's client and server were swapped by the tracker (ROLES)."""
        for name in self.__slots__:  # every per-side fact: a list of names had missed two
            value = getattr(self, name)
            if isinstance(value, Sides):
                setattr(self, name, value.swapped())
        self.last_message = {other(k): v for k, v in self.last_message.items()}
        self.lcp_nakrej = [NakRej(x.ref, other(x.sender), x.code, x.what) for x in self.lcp_nakrej]
        self.auth_nakrej = [AuthNak(x.ref, other(x.sender), x.asked, x.offered, x.rejected) for x in self.auth_nakrej]
        self.terms = [Term(x.ref, other(x.side), x.how, x.reason) for x in self.terms]
        self.pptp_echo.swap()
        self.lcp_echo.swap()

    def update(self, ev: Event) -> None:
        """Take one tracker event for this tunnel."""
        ref = Ref(ev.frame, ev.ts)
        kind = ev.kind
        if kind is _MESSAGE:
            msg = ev.message
            side = side_of(ev.direction)
            if isinstance(msg, PppFrame):
                self._ppp(msg, side, ref)
            elif isinstance(msg, P.ControlHeader):
                self._control(msg, side, ref)
        elif kind is _TCP:
            self._tcp(str(ev.detail.get("flags", "")), side_of(ev.direction), ref)
        elif kind is _ICMP:
            if len(self.icmp) < MAX_REFS:
                d = ev.detail
                self.icmp.append(IcmpSeen(ref, int(d.get("type", 0)), int(d.get("code", 0)), str(d.get("from", "")),
                                          int(d.get("inner_protocol", 0)), ev.direction, str(d.get("text", "")),
                                          self.last_message.get(side_of(ev.direction)), bool(d.get("late"))))
        elif kind is _PHASE:
            self.phase_at.setdefault(str(ev.detail.get("phase")), ref)
        elif kind is _ENDED:
            if self.ended is None:
                self.ended = ref
                self.end_detail = dict(ev.detail)
        elif kind is _ROLES:
            self.swap_sides()

    def _tcp(self, flags: str, side: str, ref: Ref) -> None:
        words = flags.split()  # the tracker's summary: "TCP SYN,ACK" or "TCP FIN,ACK len=16"
        names = set(words[1].split(",")) if len(words) > 1 else set()
        if "SYN" in names:
            if "ACK" in names:
                self.synack = self.synack or ref
            elif len(self.syns) < MAX_REFS:
                self.syns.append(ref)
        if "RST" in names:
            if side not in self.rst:
                self.rst[side] = ref
                self._term(ref, side, "tcp-rst", "")
            if side == "server" and self.synack is None and self.syns and self.refused is None:
                self.refused = ref
        elif "FIN" in names and side not in self.fin:
            self.fin[side] = ref
            self._term(ref, side, "tcp-fin", "")

    def _control(self, msg: Any, side: str, ref: Ref) -> None:
        mt = msg.message_type
        if mt == T.START_CONTROL_CONNECTION_REQUEST:
            self.sccrq = self.sccrq or ref
        elif mt == T.START_CONTROL_CONNECTION_REPLY:
            self.sccrp, self.sccrp_msg = ref, msg
        elif mt in (T.OUTGOING_CALL_REQUEST, T.INCOMING_CALL_REQUEST):
            self.ocrq = self.ocrq or ref
        elif mt in (T.OUTGOING_CALL_REPLY, T.INCOMING_CALL_REPLY):
            self.ocrp, self.ocrp_msg = ref, msg
        elif mt == T.ECHO_REQUEST:
            self.pptp_echo.request(side, msg.identifier, ref)
        elif mt == T.ECHO_REPLY:
            self.pptp_echo.reply(side, msg.identifier, ref, self.cfg)
        elif mt == T.CALL_CLEAR_REQUEST:
            if self.call_clear is None:
                self.call_clear = self._term(ref, side, "call-clear", "")
        elif mt == T.CALL_DISCONNECT_NOTIFY:
            if self.cdn is None:
                reason = P.result_name(mt, msg.result_code)
                self.cdn = (self._term(ref, side, "call-disconnect", reason), msg)
        elif mt == T.STOP_CONTROL_CONNECTION_REQUEST:
            if self.stop is None:
                self.stop = (self._term(ref, side, "stop-control", P.reason_name(msg.reason)), msg)
        elif mt == T.WAN_ERROR_NOTIFY:
            self.wan_error = (ref, msg)

    def _ppp(self, frame: PppFrame, side: str, ref: Ref) -> None:
        msg = frame.message
        proto = frame.protocol
        self.last_message[side] = ref
        if proto == PppProtocol.LCP and isinstance(msg, ControlPacket):
            self._lcp(msg, side, ref)
        elif isinstance(msg, (ChapPacket, PapPacket, EapPacket)):
            self._auth(msg, side, ref)
        elif proto in (PppProtocol.CCP, PppProtocol.CCP_LINK) and isinstance(msg, ControlPacket):
            self._ccp(msg, side, ref)
        elif proto == PppProtocol.IPCP and isinstance(msg, ControlPacket):
            self._ipcp(msg, side, ref)

    def _lcp(self, m: ControlPacket, side: str, ref: Ref) -> None:
        code = m.code
        peer = other(side)
        if code == ControlCode.CONFIGURE_REQUEST:
            self.lcp_requests[side] += 1
            self.lcp_first_request.setdefault(side, ref)
            run = self.lcp_unanswered[side]
            if len(run) < MAX_REFS:
                run.append(ref)
            if side in self.lcp_acked:
                again = self.lcp_request_after_ack.setdefault(side, [])
                if len(again) < MAX_REFS:
                    again.append(ref)
            auth = m.option(LcpOption.AUTH_PROTOCOL)
            method = _method(auth) if auth is not None else None
            if method is not None:
                self.auth_asked[side] = method
                self.auth_first_asked = self.auth_first_asked or method
            else:
                self.auth_asked.pop(side, None)
            magic = m.option(LcpOption.MAGIC_NUMBER)
            if magic is not None and isinstance(magic.value, int):
                self.magic[side] = magic.value
            mru_opt = m.option(LcpOption.MRU)
            self._pending_mru[side] = mru_opt.value if mru_opt is not None and isinstance(mru_opt.value, int) else None
        elif code in (ControlCode.CONFIGURE_ACK, ControlCode.CONFIGURE_NAK, ControlCode.CONFIGURE_REJECT):
            self.lcp_unanswered[peer] = []
            self.lcp_answered[peer] = ref
            if code == ControlCode.CONFIGURE_ACK:
                self.lcp_acked[peer] = ref
                asked = self.auth_asked.get(peer)
                if asked is not None:
                    self.auth_agreed = (ref, asked)
                asked_mru = self._pending_mru.get(peer)
                if asked_mru is not None:
                    self.mru[peer] = (asked_mru, ref)
                return
            auth = m.option(LcpOption.AUTH_PROTOCOL)
            if auth is not None and len(self.auth_nakrej) < MAX_REFS:
                offered = _method(auth) if code == ControlCode.CONFIGURE_NAK else None
                self.auth_nakrej.append(AuthNak(ref, side, self.auth_asked.get(peer), offered,
                                                code == ControlCode.CONFIGURE_REJECT))
            rest = [o for o in m.options if o.type != LcpOption.AUTH_PROTOCOL]
            if rest and len(self.lcp_nakrej) < MAX_REFS:
                what = ", ".join(_option_label(m.protocol, o.type) for o in rest)
                self.lcp_nakrej.append(NakRej(ref, side, code, what))
        elif code == ControlCode.TERMINATE_REQUEST:
            t = self._term(ref, side, "lcp-terminate", terminate_reason(m.data) or "")
            self.lcp_term.setdefault(side, t)
        elif code == ControlCode.PROTOCOL_REJECT:
            if m.rejected_protocol is not None and len(self.protocol_rejects) < MAX_REFS:
                self.protocol_rejects.append((ref, side, m.rejected_protocol))
        elif code == ControlCode.ECHO_REQUEST:
            self.lcp_echo.request(side, m.identifier, ref)
        elif code == ControlCode.ECHO_REPLY:
            requester_magic = self.magic.get(peer)
            if m.magic_number and requester_magic and m.magic_number == requester_magic and \
                    self.magic.get(side) != requester_magic:
                self.loopback = self.loopback or ref
            self.lcp_echo.reply(side, m.identifier, ref, self.cfg)

    def _auth(self, m: ChapPacket | PapPacket | EapPacket, side: str, ref: Ref) -> None:
        if isinstance(m, ChapPacket):
            if m.code == 1:
                self.challenge = ref
            elif m.code == 2:
                self.response = ref
            elif m.code == 3:
                self.auth_success = ref
            elif m.code == 4:
                f = m.failure
                self.auth_fail = AuthFail(ref, "chap", f.error if f else None, f.retry if f else None,
                                          (f.message if f else m.message)[:256])
        elif isinstance(m, PapPacket):
            if m.code == 1:
                self.pap_request = (ref, m.peer_id, m.password)
                self.response = ref
            elif m.code == 2:
                self.auth_success = ref
            elif m.code == 3:
                self.auth_fail = AuthFail(ref, "pap", None, None, (m.message or "")[:256])
        else:
            if m.code == 3:
                self.auth_success = ref
            elif m.code == 4:
                self.auth_fail = AuthFail(ref, "eap", None, None, "")

    def _ccp(self, m: ControlPacket, side: str, ref: Ref) -> None:
        code = m.code
        peer = other(side)
        if code == ControlCode.CONFIGURE_REQUEST:
            bits = _mppe(m)
            offer = CcpOffer(ref, side, bits, f"mppe {bits.pppd()}" if bits else _names(m))
            self.ccp_first.setdefault(side, offer)
            self.ccp_last[side] = offer
        elif code == ControlCode.CONFIGURE_ACK:
            req = self.ccp_last.get(peer)
            if req is not None:
                self.ccp_acked[peer] = CcpOffer(ref, peer, req.bits, req.text)
        elif code == ControlCode.CONFIGURE_NAK:
            bits = _mppe(m)
            if len(self.ccp_naks) < MAX_REFS:
                self.ccp_naks.append(CcpOffer(ref, side, bits, f"mppe {bits.pppd()}" if bits else _names(m)))
        elif code == ControlCode.CONFIGURE_REJECT:
            if m.option(CcpOption.MPPE) is not None and self.ccp_reject is None:
                self.ccp_reject = (ref, side)
        elif code == ControlCode.TERMINATE_REQUEST:
            self.ccp_term.setdefault(side, Term(ref, side, "ccp-terminate", terminate_reason(m.data) or ""))
        elif code == ControlCode.RESET_REQUEST:
            self.ccp_reset_count += 1
            if len(self.ccp_resets) < MAX_REFS:
                self.ccp_resets.append(ref)

    def _ipcp(self, m: ControlPacket, side: str, ref: Ref) -> None:
        code = m.code
        peer = other(side)
        if code == ControlCode.CONFIGURE_REQUEST:
            run = self.ipcp_unanswered[side]
            if len(run) < MAX_REFS:
                run.append(ref)
            self._ipcp_asked[side] = _addr(m)
        elif code == ControlCode.CONFIGURE_ACK:
            self.ipcp_unanswered[peer] = []
            self.ipcp_opened.setdefault(peer, ref)
        elif code == ControlCode.CONFIGURE_NAK:
            self.ipcp_unanswered[peer] = []
            self.ipcp_nak_count += 1
            if len(self.ipcp_naks) < MAX_REFS:
                self.ipcp_naks.append(IpcpNak(ref, side, self._ipcp_asked.get(peer), _addr(m)))
        elif code == ControlCode.CONFIGURE_REJECT:
            self.ipcp_unanswered[peer] = []
            if len(self.ipcp_rejects) < MAX_REFS:
                self.ipcp_rejects.append(NakRej(ref, side, code, _names(m)))
        elif code == ControlCode.TERMINATE_REQUEST:
            self.ipcp_term.setdefault(side, Term(ref, side, "ipcp-terminate", terminate_reason(m.data) or ""))

    # scratch state of the last Configure-Requests (not evidence)
    _pending_mru: Sides[int | None] = field(default_factory=Sides)
    _ipcp_asked: Sides[str | None] = field(default_factory=Sides)


def routine(ev: Event) -> bool:
    """Keepalives: the echo rules need them counted, not a full evaluation at each one.

    They are most of the events of a long healthy session (an LCP echo every
    few seconds each way); the rules see them at the next clock tick, within
    a second, and echo misses arrive as their own events.
    """
    if ev.kind is not _MESSAGE:
        return False
    m = ev.message
    if isinstance(m, PppFrame):
        c = m.message
        return m.protocol == _LCP and isinstance(c, ControlPacket) and c.code in (
            _ECHO_REQUEST, _ECHO_REPLY, _DISCARD_REQUEST)
    return getattr(m, "message_type", None) in (T.ECHO_REQUEST, T.ECHO_REPLY)


#: what an event can change, for the rules that say which kinds of event matter to them (Rule.on)
CATEGORIES = frozenset({"tcp", "control", "lcp", "auth", "ccp", "ipcp", "ppp", "icmp", "phase", "ended"})


def category(ev: Event) -> str | None:
    """The kind of fact ``ev`` brings (one of :data:`CATEGORIES`), or None when it can change anything.

    A MESSAGE is named after its protocol, as :meth:`Observations.update`
    files it (and the tracker: LCP also carries the agreed authentication
    method, authentication the user name and result, CCP the MPPE state).
    """
    kind = ev.kind
    if kind is _MESSAGE:
        m = ev.message
        if isinstance(m, PppFrame):
            proto, msg = m.protocol, m.message
            if proto == _LCP:
                return "lcp"
            if isinstance(msg, (ChapPacket, PapPacket, EapPacket)):
                return "auth"
            if proto in (_CCP, _CCP_LINK):
                return "ccp"
            if proto == _IPCP:
                return "ipcp"
            return "ppp"
        return "control" if isinstance(m, P.ControlHeader) else None
    return _KINDS.get(kind)


_KINDS = {EventKind.TCP: "tcp", EventKind.ICMP: "icmp", EventKind.PHASE: "phase", EventKind.ENDED: "ended"}
