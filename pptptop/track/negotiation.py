"""PPP negotiation inside GRE: LCP, authentication, IPCP, IPV6CP and CCP move a tunnel's phase.

Each Configure-Request waits for the peer's Configure-Ack, which opens that
side of the layer with the options the request asked for (RFC 1661 §5.1–5.2).
LCP open both ways leads to authentication (PAP RFC 1334, CHAP RFC 1994,
MS-CHAP RFC 2433, MS-CHAPv2 RFC 2759, EAP RFC 3748), its success to the
network phase (IPCP RFC 1332, IPV6CP RFC 5072, CCP RFC 1962 with MPPE
RFC 3078), and IPCP open both ways (and CCP, when offered) to data.
"""

from __future__ import annotations

from typing import Any

from pptptop.decode.auth import ChapPacket, EapPacket, PapPacket
from pptptop.decode.ccp import CcpOption, MppeBits
from pptptop.decode.errors import DecodeError
from pptptop.decode.lcp import AuthProtocol, ControlCode, ControlPacket, LcpOption
from pptptop.decode.ncp import IpcpOption, Ipv6cpOption
from pptptop.decode.ppp import PppFrame, PppProtocol, decode_ppp
from pptptop.track.actions import TunnelActions
from pptptop.track.events import Event, EventKind
from pptptop.track.keepalive import echo_reply, echo_request
from pptptop.track.model import PHASE_ORDER, Direction, HexData, Packet, PacketKind, Phase, Tunnel
from pptptop.track.sides import Sides

#: LCP codes of keepalives (RFC 1661 §5.8, §5.9): kept in the tunnel's keepalive ring, not its negotiation
LCP_KEEPALIVES = frozenset({ControlCode.ECHO_REQUEST, ControlCode.ECHO_REPLY, ControlCode.DISCARD_REQUEST})


MAX_PROTOCOL_REJECTS = 32
MAX_IDENTIFICATION = 256
MAX_AUTH_MESSAGE = 512


def gre_ppp(
    tracker: TunnelActions,
    t: Tunnel,
    d: Direction,
    payload: bytes,
    number: int,
    ts: float,
    iface: str,
    linktype: int,
    data: bytes,
) -> None:
    """One PPP frame of a tunnel that is not data (RFC 2637 §4): store it and follow the negotiation."""
    try:
        frame = decode_ppp(payload, chap_algorithm=t.auth.chap_algorithm)
    except DecodeError as e:
        tracker.store(
            t,
            Packet(number, ts, iface, linktype, d, PacketKind.MALFORMED, f"malformed PPP: {e.code}", data),
        )
        tracker.malformed(e, number, ts, t)
        return
    t.traffic[d].control_frames += 1
    if frame.error is not None:
        tracker.store(
            t,
            Packet(
                number,
                ts,
                iface,
                linktype,
                d,
                PacketKind.MALFORMED,
                f"malformed {frame.protocol:#06x}: {frame.error.code}",
                data,
                frame,
            ),
        )
        tracker.malformed(frame.error, number, ts, t)
        return
    msg = frame.message
    if t.roles_guessed and _looks_like_server(frame) == (d is Direction.TO_SERVER):
        tracker.swap_roles(t, ts, number, "the side answering as authenticator/address-giver is the server")
        d = d.other
    side = d.sender
    keepalive = frame.protocol == PppProtocol.LCP and isinstance(msg, ControlPacket) and msg.code in LCP_KEEPALIVES
    tracker.store(t, Packet(number, ts, iface, linktype, d, PacketKind.PPP, "", data), keepalive)
    proto = frame.protocol
    if proto == PppProtocol.LCP and isinstance(msg, ControlPacket):
        _lcp(tracker, t, d, side, msg, ts, number)
    elif proto in (PppProtocol.PAP, PppProtocol.CHAP, PppProtocol.EAP):
        _auth(tracker, t, msg, ts, number)
    elif proto == PppProtocol.IPCP and isinstance(msg, ControlPacket):
        _ipcp(tracker, t, side, msg, ts, number)
    elif proto == PppProtocol.IPV6CP and isinstance(msg, ControlPacket):
        _ipv6cp(tracker, t, side, msg, ts, number)
    elif proto in (PppProtocol.CCP, PppProtocol.CCP_LINK) and isinstance(msg, ControlPacket):
        _ccp(tracker, t, side, msg, ts, number)
    tracker.emit(Event(ts, EventKind.MESSAGE, t, number, d, frame))


def _looks_like_server(frame: PppFrame) -> bool | None:
    """True when this frame is one only a server (authenticator) sends; None if it tells nothing."""
    msg = frame.message
    if isinstance(msg, ChapPacket):
        return msg.code in (1, 3, 4)
    if isinstance(msg, PapPacket):
        return msg.code in (2, 3)
    if (
        isinstance(msg, ControlPacket)
        and frame.protocol == PppProtocol.IPCP
        and msg.code == ControlCode.CONFIGURE_NAK
    ):
        return True
    return None


def _other(side: str) -> str:
    return "server" if side == "client" else "client"


def _lcp(tracker: TunnelActions, t: Tunnel, d: Direction, side: str, m: ControlPacket, ts: float, number: int) -> None:
    """LCP (RFC 1661 §5): the link's options, magic numbers, echoes and terminations."""
    other = _other(side)
    code = m.code
    lcp = t.lcp
    if code <= ControlCode.CONFIGURE_REJECT:
        tracker.advance(t, Phase.LCP, ts, number)
    elif code == ControlCode.TERMINATE_REQUEST:
        if t.joined and t.phase is t.joined_phase:
            tracker.infer(t, Phase.LCP, ts)  # a link going down that the capture did not see come up
        else:
            tracker.advance(t, Phase.LCP, ts, number)
    if code == ControlCode.CONFIGURE_REQUEST:
        lcp.config_requests[side] += 1
        t.pending_requests[(PppProtocol.LCP, side)] = m
        magic = m.option(LcpOption.MAGIC_NUMBER)
        if magic is not None and isinstance(magic.value, int):
            lcp.magic[side] = magic.value
    elif code == ControlCode.CONFIGURE_ACK:
        req = t.pending_requests.pop((PppProtocol.LCP, other), None) or m
        lcp.options[other] = {_option_name(o): _option_value(o) for o in req.options}
        lcp.opened[other] = True
        for o in req.options:
            if o.type == LcpOption.AUTH_PROTOCOL and isinstance(o.value, AuthProtocol):
                t.auth.method = o.value.method
                t.auth.chap_algorithm = o.value.algorithm
        if (
            lcp.opened["client"]
            and lcp.opened["server"]
            and PHASE_ORDER[t.phase] <= PHASE_ORDER[Phase.LCP]
        ):
            # an authenticator whose method was refused may open LCP without one: whether it lets the peer
            # in unauthenticated is its authentication phase's decision (pppd auth.c link_established)
            authenticates = t.auth.method != "none" or lcp.auth_refused_by is not None
            tracker.advance(t, Phase.AUTH if authenticates else Phase.NCP, ts, number)
    elif code in (ControlCode.CONFIGURE_NAK, ControlCode.CONFIGURE_REJECT):
        if code == ControlCode.CONFIGURE_NAK:
            lcp.naks += 1
        else:
            lcp.rejects += 1
        if m.option(LcpOption.AUTH_PROTOCOL) is not None:
            lcp.auth_refused_by = side
    elif code == ControlCode.TERMINATE_REQUEST:
        tracker.close_step(t, side, "lcp-terminate", terminate_reason(m.data), ts, number)
        # GRE only: no control connection may ever say the call is over; the link going down ends the tunnel
        # at the next tick after Tracker's GRE_ONLY_LINGER, unless its control connection binds it first
    elif code == ControlCode.PROTOCOL_REJECT:
        if m.rejected_protocol is not None and len(lcp.protocol_rejects) < MAX_PROTOCOL_REJECTS:
            lcp.protocol_rejects.append(m.rejected_protocol)
    elif code == ControlCode.ECHO_REQUEST:
        echo_request(tracker, t, t.lcp_echo, d, m.identifier, ts, number, "lcp")
    elif code == ControlCode.ECHO_REPLY:
        echo_reply(t.lcp_echo, d, m.identifier, ts)
    elif code == ControlCode.IDENTIFICATION:
        lcp.identification[side] = m.message[:MAX_IDENTIFICATION]


#: octets of a Terminate-Request's data shown in hex when it is not text
TERMINATE_HEX = 16


def terminate_reason(data: bytes) -> str | None:
    """What a Terminate-Request's data says (RFC 1661 §5.5: uninterpreted, usually a reason text such as
    pppd's "User request"): the text, without C-string NUL padding, when it is UTF-8 text (three quarters
    printable at least, beginning with a printable character);
    otherwise the octets as :class:`HexData`; None when there is no data."""
    body = data.rstrip(b"\x00")
    if not body:
        return HexData(_hex(data)) if data else None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return HexData(_hex(data))
    shown = sum(1 for ch in text if ch.isprintable() or ch in "\t\r\n")
    if text.strip() and text[0].isprintable() and shown * 4 >= len(text) * 3:
        # text, if with a few control characters in it (the displays escape them): a hostile peer's escape
        # sequences stay readable as what they are
        return text
    return HexData(_hex(data))


def _hex(data: bytes) -> str:
    shown = " ".join(f"{b:02x}" for b in data[:TERMINATE_HEX]) + (" …" if len(data) > TERMINATE_HEX else "")
    return f"data {shown} ({len(data)} octet{'s' if len(data) != 1 else ''}, not text)"


def _auth(tracker: TunnelActions, t: Tunnel, m: Any, ts: float, number: int) -> None:
    """PAP (RFC 1334 §2), CHAP (RFC 1994 §4) with MS-CHAP (RFC 2433) and MS-CHAPv2 (RFC 2759), EAP (RFC 3748)."""
    a = t.auth
    tracker.advance(t, Phase.AUTH, ts, number)
    if isinstance(m, PapPacket):
        a.method = "PAP"
        if m.code == 1:
            a.user = m.peer_id
            a.password = m.password
            a.password_seen = m.password is not None
            a.attempts += 1
        elif m.code == 2:
            _auth_result(tracker, t, True, m.message, ts, number)
        elif m.code == 3:
            _auth_result(tracker, t, False, m.message, ts, number)
    elif isinstance(m, ChapPacket):
        if m.code == 1:
            a.server_name = m.name
            a.challenge = m.value
        elif m.code == 2:
            a.user = m.name
            a.attempts += 1
            if m.mschapv2_response is not None:
                a.method = "MS-CHAPv2"
                a.peer_challenge = m.mschapv2_response.peer_challenge
                a.nt_response = m.mschapv2_response.nt_response
            elif m.mschapv1_response is not None:
                a.method = "MS-CHAP"
                a.lm_response = m.mschapv1_response.lm_response
                a.nt_response = m.mschapv1_response.nt_response
            elif a.method == "none":
                a.method = "CHAP-MD5"
        elif m.code == 3:
            msg = m.success.message if m.success is not None else m.message
            if m.success is not None and a.method in ("none", "CHAP-MD5"):
                a.method = "MS-CHAPv2"
            _auth_result(tracker, t, True, msg, ts, number)
        elif m.code == 4:
            f = m.failure
            if f is not None:
                a.error_code = f.error
                a.retry = f.retry
                if f.challenge:
                    a.challenge = f.challenge
            _auth_result(tracker, t, False, (f.message if f is not None else None) or m.message, ts, number)
    elif isinstance(m, EapPacket):
        a.method = "EAP"
        if m.code == 2 and m.identity is not None:
            a.user = m.identity
        elif m.code == 3:
            _auth_result(tracker, t, True, None, ts, number)
        elif m.code == 4:
            _auth_result(tracker, t, False, None, ts, number)


def _auth_result(tracker: TunnelActions, t: Tunnel, ok: bool, message: str | None, ts: float, number: int) -> None:
    t.auth.result = "success" if ok else "failure"
    if message is not None:
        t.auth.message = tracker.texts(message[:MAX_AUTH_MESSAGE])
    if ok:
        tracker.advance(t, Phase.NCP, ts, number)


def _configure(
    tracker: TunnelActions,
    t: Tunnel,
    proto: int,
    opened: Sides[bool],
    side: str,
    m: ControlPacket,
    ts: float,
    number: int,
) -> ControlPacket | None:
    """The Configure-Request/Ack bookkeeping IPCP, IPV6CP and CCP share (RFC 1661 §5.1–5.2).

    Any of their packets means the network phase; a Configure-Request waits for the peer's Ack, and
    the Ack opens the layer for the side that asked. For an Ack, returns the request it answers (or
    the Ack itself, which repeats the options); for anything else, None.
    """
    tracker.advance(t, Phase.NCP, ts, number)
    if m.code == ControlCode.CONFIGURE_REQUEST:
        t.pending_requests[(proto, side)] = m
    elif m.code == ControlCode.CONFIGURE_ACK:
        other = _other(side)
        req: ControlPacket = t.pending_requests.pop((proto, other), None) or m
        opened[other] = True
        return req
    return None


def _ipcp(tracker: TunnelActions, t: Tunnel, side: str, m: ControlPacket, ts: float, number: int) -> None:
    """IPCP (RFC 1332, DNS/NBNS RFC 1877): the addresses the server gives."""
    n = t.ncp
    req = _configure(tracker, t, PppProtocol.IPCP, n.ipcp_opened, side, m, ts, number)
    if req is not None:
        other = _other(side)
        for o in req.options:
            if o.type == IpcpOption.IP_ADDRESS and isinstance(o.value, str):
                if other == "client":
                    n.client_ip = tracker.texts(o.value)
                else:
                    n.server_ip = tracker.texts(o.value)
            elif other == "client" and isinstance(o.value, str):
                if o.type in (IpcpOption.PRIMARY_DNS, IpcpOption.SECONDARY_DNS) and o.value not in n.dns:
                    n.dns.append(o.value)
                elif o.type in (IpcpOption.PRIMARY_NBNS, IpcpOption.SECONDARY_NBNS) and o.value not in n.nbns:
                    n.nbns.append(o.value)
        _maybe_data(tracker, t, ts, number)
    elif m.code == ControlCode.CONFIGURE_NAK:
        n.naks += 1
    elif m.code == ControlCode.CONFIGURE_REJECT:
        n.rejects += 1
    elif m.code == ControlCode.TERMINATE_REQUEST:
        n.ipcp_opened = Sides(False, False)


def _ipv6cp(tracker: TunnelActions, t: Tunnel, side: str, m: ControlPacket, ts: float, number: int) -> None:
    """IPV6CP (RFC 5072 §4): the interface identifiers."""
    n = t.ncp
    req = _configure(tracker, t, PppProtocol.IPV6CP, n.ipv6cp_opened, side, m, ts, number)
    if req is not None:
        other = _other(side)
        for o in req.options:
            if o.type == Ipv6cpOption.INTERFACE_IDENTIFIER:
                if other == "client":
                    n.client_ifid = str(o.value)
                else:
                    n.server_ifid = str(o.value)


def _ccp(tracker: TunnelActions, t: Tunnel, side: str, m: ControlPacket, ts: float, number: int) -> None:
    """CCP (RFC 1962) with the MPPE/MPPC option (RFC 3078 §2, RFC 2118): encryption offered and agreed."""
    c = t.ccp
    req = _configure(tracker, t, PppProtocol.CCP, c.opened, side, m, ts, number)
    if m.code == ControlCode.CONFIGURE_REQUEST:
        o = m.option(CcpOption.MPPE)
        c.offered[side] = tracker.texts(
            f"mppe {o.value.pppd()}"
            if o is not None and isinstance(o.value, MppeBits)
            else (" ".join(_option_name(x) for x in m.options) or "(none)")
        )
    elif req is not None:
        o = req.option(CcpOption.MPPE)
        if o is not None and isinstance(o.value, MppeBits):
            bits = o.value
            c.mppe = bool(bits.strengths)
            c.bits = max(bits.strengths) if bits.strengths else None
            c.stateless = bits.stateless
            c.mppc = bits.mppc
        _maybe_data(tracker, t, ts, number)
    elif m.code == ControlCode.CONFIGURE_REJECT:
        if m.option(CcpOption.MPPE) is not None:
            c.rejected_by = side
    elif m.code == ControlCode.CONFIGURE_NAK:
        c.naks += 1
    elif m.code == ControlCode.RESET_REQUEST:
        c.reset_requests += 1


def _maybe_data(tracker: TunnelActions, t: Tunnel, ts: float, number: int) -> None:
    """NCP done: IPCP open both ways, and CCP too if anyone asked for it."""
    n, c = t.ncp, t.ccp
    if not (n.ipcp_opened["client"] and n.ipcp_opened["server"]):
        return
    if c.offered and not (c.opened["client"] and c.opened["server"]):
        return
    tracker.advance(t, Phase.DATA, ts, number)


def data_seen(tracker: TunnelActions, t: Tunnel, ts: float, number: int) -> None:
    """Data flows: the tunnel is in the data phase whatever negotiation the capture missed."""
    tracker.advance(t, Phase.DATA, ts, number)


#: the MPPE header's first octet (RFC 3078 §3): C, the packet is compressed (MPPC); D, it is encrypted
MPPE_C, MPPE_D = 0x20, 0x10


def mppe_seen(t: Tunnel, first: int) -> None:
    """The tunnel's first data packet is PPP 0x00FD and the capture saw no CCP: the MPPE header shows what
    was negotiated before the capture (the strength stays unknown)."""
    c = t.ccp
    if c.offered or c.mppe:
        return
    if first & MPPE_D:
        c.mppe, c.from_data = True, True
    if first & MPPE_C:
        c.mppc, c.from_data = True, True


def inner_ip(tracker: TunnelActions, t: Tunnel, d: int, payload: bytes) -> None:
    """Unencrypted inner IP (PPP 0x0021/0x0057): keep a bounded table of inner 5-tuples."""
    try:
        frame = decode_ppp(payload)
    except DecodeError:
        return
    m: Any = frame.message
    if m is None or not hasattr(m, "src"):
        return
    key = (m.src, m.dst, m.protocol, getattr(m, "src_port", None), getattr(m, "dst_port", None))
    flows = t.inner_flows
    if key in flows or len(flows) < tracker.limits.max_inner_flows:
        flows[key] = flows.get(key, 0) + 1


#: LCP option names by type, as the transcript keys them ("mru", "auth_protocol"), looked up once
_LCP_OPTION_NAMES = {int(m): m.name.lower() for m in LcpOption}


def _option_name(o: Any) -> str:
    name = _LCP_OPTION_NAMES.get(o.type)
    return name if name is not None else f"opt{o.type}"


def _option_value(o: Any) -> Any:
    v = o.value
    if isinstance(v, AuthProtocol):
        return v.method
    if v is None:
        return True
    if isinstance(v, (int, str, bool, float)):
        return v
    if isinstance(v, bytes):
        return v.hex()
    return str(v)
