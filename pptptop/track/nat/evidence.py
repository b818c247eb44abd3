"""Evidence that two legs are one session: what survives NAT, and the score it adds up to.

Signatures index what each leg sends (a control message minus the PNS Call ID the NAT rewrites,
a PPP frame's bytes); :func:`score` weighs a candidate pair's matches and the facts both legs know
(LCP Magic Numbers, RFC 1661 §6.4; MS-CHAP challenges, RFC 2759 §4; the Call Serial Number,
RFC 2637 §2.7; host and vendor strings, §2.1 — the last only as consistency checks).
"""

from __future__ import annotations

import hashlib
from dataclasses import fields
from typing import Any

from pptptop.decode import pptp as P
from pptptop.decode.auth import ChapPacket
from pptptop.decode.lcp import ControlPacket
from pptptop.decode.ppp import PppFrame
from pptptop.track.events import Event, EventKind
from pptptop.track.model import Direction
from pptptop.track.nat.legs import Evidence, Pair

#: The message type whose field names the *PNS* Call ID, by sender: the fields a PPTP NAT rewrites
#: (RFC 2637 §2.7-2.16; what Linux nf_nat_pptp's pptp_outbound_pkt/pptp_inbound_pkt touch).
_T = P.ControlMessageType
CALL_SETUP = frozenset({_T.OUTGOING_CALL_REQUEST, _T.OUTGOING_CALL_REPLY, _T.INCOMING_CALL_REQUEST,
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

#: Evidence with entropy (32-bit sequence numbers, random magic numbers and challenges, PPP frames
#: carrying them): one of these is needed to join, because every pptp-linux client sends the same
#: control messages and a server hands out the same Call IDs to different clients.
STRONG_EVIDENCE = frozenset({"tcp-seq", "lcp-magic", "chap-challenge", "ppp"})

#: A pair's score: (points, evidence, vetoes).
Score = tuple[int, list[Evidence], list[str]]


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def control_signature(d: Direction, msg: Any) -> tuple[Any, ...]:
    """A control message's fields minus the PNS Call ID, which a PPTP NAT rewrites (RFC 2637 §2)."""
    names = _FIELD_NAMES.get(type(msg))
    if names is None:
        names = _FIELD_NAMES[type(msg)] = tuple(f.name for f in fields(msg))
    skip = _PNS_CALL_ID_FIELD.get((d, msg.message_type))
    return tuple(getattr(msg, n) for n in names if n != skip)


def distinctive(frame: PppFrame) -> bool:
    """Whether a PPP frame carries per-session randomness: LCP with a magic number, a CHAP challenge/response."""
    m = frame.message
    if frame.protocol == 0xC021 and isinstance(m, ControlPacket):
        if m.code in (9, 10, 11, 12, 13):  # Echo, Discard, Identification, Time-Remaining carry the magic
            return bool(m.magic_number)
        return m.code <= 4 and m.option(5) is not None
    if frame.protocol == 0xC223 and isinstance(m, ChapPacket):
        return m.code in (1, 2)
    return False


def index_key(server: str, d: Direction, kind: str, signature: bytes) -> bytes:
    """What the pairing index keys a message by: a 16-octet digest of the server it goes to, its direction,
    its kind and its signature (:func:`ppp_signature`, or a control message's fields but the PNS Call ID as
    :func:`control_signature` gives them). One bytes object, not a tuple holding the message's
    fields: a reconnect storm indexes thousands a second."""
    return hashlib.blake2b(f"{server}|{int(d)}|{kind}|".encode() + signature, digest_size=16).digest()


def ppp_signature(frame: PppFrame) -> bytes:
    """PPP frames in GRE pass a NAT untouched: their bytes identify them (RFC 2637 §4): the protocol and the
    information field, digested by :func:`index_key`."""
    return frame.protocol.to_bytes(2, "big") + frame.info


def changes_mapping(ev: Event) -> bool:
    """Events after which a joined pair's notes are rewritten at once (the rest wait for the next TICK):
    control messages, PPP negotiation (not LCP Echo), phases, ICMP errors, role swaps."""
    if ev.kind is EventKind.MESSAGE:
        m = ev.message
        if isinstance(m, PppFrame):
            return not (m.protocol == 0xC021 and getattr(m.message, "code", 0) in (9, 10, 11))
        return True
    return ev.kind in (EventKind.PHASE, EventKind.ICMP, EventKind.ROLES)


def score_pair(pair: Pair) -> Score:
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
