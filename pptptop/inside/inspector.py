"""The :class:`Inspector`: tracker events and data packets in, ``tunnel.inside`` out.

It follows each tunnel's authentication from the tracker's events (CHAP
Challenge/Response/Success/Failure, PAP Request/Ack/Nak, RFC 1994, 1334,
2433, 2759), looks the user up in the secrets, checks the response, and once
the server has accepted it derives that session's MPPE keys (RFC 3079). Only
then does it set the tunnel's data tap (:attr:`Tunnel.tap`): the tracker hands
it that tunnel's data packets, which it decrypts (:mod:`~pptptop.inside.mppe`)
and gives to the tunnel's :class:`~pptptop.inside.inner.InnerTraffic` and to
its sinks (the recorder of decrypted packets). Every other tunnel keeps the
tracker's batch data path.

Subscribe it to the tracker before the diagnosis, whose credential rules read
what it finds on the same event. It runs in the capture thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pptptop.decode import mschap_crypto as mc
from pptptop.decode.auth import ChapCode, ChapPacket, PapCode, PapPacket
from pptptop.decode.lcp import ControlCode, ControlPacket
from pptptop.decode.ppp import PppFrame, PppProtocol, ppp_header
from pptptop.inside.credentials import (
    CredentialCheck,
    Match,
    check_chap_md5,
    check_mschapv1,
    check_mschapv2,
    check_mschapv2_authenticator,
    check_pap,
)
from pptptop.inside.inner import DEFAULT_MRU, InnerTraffic
from pptptop.inside.mppe import Drop, MppeReceiver
from pptptop.inside.secrets import Secret, SecretStore
from pptptop.inside.state import DecryptState, InsideTunnel, inside_of
from pptptop.track.events import Event, EventKind
from pptptop.track.model import Direction, Phase, Tunnel
from pptptop.track.tracker import Tracker

__all__ = ["Inspector", "Sink"]

#: receives each inner datagram read from a tunnel: (tunnel, frame number, capture time, IP datagram)
Sink = Callable[[Tunnel, int, float, bytes], None]

MSCHAPV2_CHALLENGE = 16
MSCHAPV1_CHALLENGE = 8
CCP_RESET_REQUEST, CCP_RESET_ACK = 14, 15
IPV4, IPV6, COMPRESSED = 0x0021, 0x0057, 0x00FD


@dataclass(slots=True)
class _Attempt:
    """The response being checked, kept until the server answers it (for S= and the keys)."""

    method: str
    username: bytes
    challenge: bytes
    peer_challenge: bytes
    nt_response: bytes
    secret: Secret = field(repr=False)


@dataclass(slots=True)
class _Private:
    """What must never leave the inspector: the secret in use and the session's keys."""

    challenge: bytes | None = None
    server_name: str | None = None
    attempt: _Attempt | None = None
    #: per direction, its candidate start keys: a 16-octet one serves every strength, an 8-octet one 40/56 bits
    start_keys: dict[Direction, list[bytes]] = field(default_factory=dict, repr=False)
    receivers: dict[Direction, list[MppeReceiver]] = field(default_factory=dict, repr=False)


class Inspector:
    """See the module docstring. ``secrets`` is the user's :class:`SecretStore`."""

    def __init__(self, secrets: SecretStore) -> None:
        self.secrets = secrets
        self.sinks: list[Sink] = []
        self._private: dict[int, _Private] = {}
        self.now = 0.0  # the capture time of the latest event

    def attach(self, tracker: Tracker) -> Inspector:
        tracker.subscribe(self)
        return self

    # ------------------------------------------------------------------ events
    def __call__(self, ev: Event) -> None:
        if ev.ts > self.now:
            self.now = ev.ts
        t = ev.tunnel
        if t is None:
            return
        kind = ev.kind
        if kind is EventKind.EVICTED or kind is EventKind.MERGED:
            self._private.pop(t.id, None)
            t.tap = None
            return
        if kind is not EventKind.MESSAGE or not isinstance(ev.message, PppFrame):
            return
        frame = ev.message
        m = frame.message
        if isinstance(m, ChapPacket):
            self._chap(t, m, ev.frame)
        elif isinstance(m, PapPacket):
            self._pap(t, m, ev.frame)
        elif frame.protocol == PppProtocol.CCP and isinstance(m, ControlPacket):
            self._ccp(t, m)

    def _inside(self, t: Tunnel) -> InsideTunnel:
        inside = inside_of(t)
        if inside is None:
            inside = InsideTunnel(t.id, InnerTraffic(_mru_of(t)))
            t.inside = inside
        return inside

    def _state(self, t: Tunnel) -> _Private:
        p = self._private.get(t.id)
        if p is None:
            p = self._private[t.id] = _Private()
        return p

    def _lookup(self, t: Tunnel, user: str, server: str | None) -> Secret | None:
        inside = self._inside(t)
        inside.user = user
        secret = self.secrets.lookup(user, server)
        if secret is None:
            inside.state = DecryptState.NO_SECRET
            inside.secret_from = None
            inside.why = f"no secret names user '{user}'" + (f" at server '{server}'" if server else "")
        else:
            inside.secret_from = secret.source
        return secret

    # ------------------------------------------------------------------ CHAP, MS-CHAP (RFC 1994, 2433, 2759)
    def _chap(self, t: Tunnel, m: ChapPacket, number: int | None) -> None:
        p = self._state(t)
        if m.code == ChapCode.CHALLENGE:
            p.challenge, p.server_name = m.value, m.name
        elif m.code == ChapCode.RESPONSE:
            self._response(t, p, m, number)
        elif m.code == ChapCode.SUCCESS:
            self._result(t, p, True, number, m)
        elif m.code == ChapCode.FAILURE:
            self._result(t, p, False, number, m)
            if m.failure is not None and m.failure.challenge:
                p.challenge = m.failure.challenge  # the retry answers this one (RFC 2759 §6)

    def _response(self, t: Tunnel, p: _Private, m: ChapPacket, number: int | None) -> None:
        p.attempt = None
        secret = self._lookup(t, m.name, p.server_name)
        if secret is None or p.challenge is None:
            return
        inside = self._inside(t)
        name = m.name.encode("latin-1")
        chal = p.challenge
        why = ""
        v2, v1 = m.mschapv2_response, m.mschapv1_response
        if v2 is not None and len(chal) == MSCHAPV2_CHALLENGE:
            method = "MS-CHAPv2"
            match = check_mschapv2(secret, chal, v2.peer_challenge, name, v2.nt_response)
            p.attempt = _Attempt(method, name, chal, v2.peer_challenge, v2.nt_response, secret)
        elif v1 is not None and len(chal) == MSCHAPV1_CHALLENGE:
            method = "MS-CHAP"
            match, why = check_mschapv1(secret, chal, v1.lm_response, v1.nt_response, v1.use_nt == 1)
            p.attempt = _Attempt(method, name, chal, b"", v1.nt_response, secret)
        elif len(m.value) == 16 and v1 is None and v2 is None:
            method = "CHAP-MD5"
            match, why = check_chap_md5(secret, m.identifier, chal, m.value)
            p.attempt = _Attempt(method, name, chal, b"", b"", secret)
        else:
            return
        inside.add_check(CredentialCheck(method, m.name, secret.source, match, number, why))
        self._after_check(inside, match, why)

    def _after_check(self, inside: InsideTunnel, match: Match, why: str) -> None:
        if match is Match.MATCH:
            inside.state, inside.why = DecryptState.WAITING, "waiting for the server's answer"
        elif match is Match.MISMATCH:
            inside.state = DecryptState.WRONG_SECRET
            inside.why = "the captured response does not follow from the secret given for this user"
        else:
            inside.state, inside.why = DecryptState.UNVERIFIABLE, why

    def _result(self, t: Tunnel, p: _Private, ok: bool, number: int | None, m: ChapPacket | None) -> None:
        inside = inside_of(t)
        check = inside.last_check if inside is not None else None
        if inside is None or check is None or check.server is not None:
            return
        check.server, check.server_frame = ("success" if ok else "failure"), number
        if m is not None and m.failure is not None:
            check.error_code = m.failure.error
        if not ok:
            inside.state = DecryptState.AUTH_FAILED
            inside.why = "the server refused the authentication: the session has no keys"
            return
        if check.response is not Match.MATCH:
            if check.response is Match.MISMATCH:
                inside.why = ("the server accepted a response that does not follow from the secret given for this "
                              "user: the user's password is another one")
            return
        a = p.attempt
        if a is not None and a.method == "MS-CHAPv2" and m is not None and m.success is not None:
            check.authenticator = check_mschapv2_authenticator(a.secret, a.challenge, a.peer_challenge, a.username,
                                                               a.nt_response, m.success.authenticator)
            check.authenticator_frame = number
        self._keys(t, p, inside)
        t.tap = self._data

    # ------------------------------------------------------------------ PAP (RFC 1334)
    def _pap(self, t: Tunnel, m: PapPacket, number: int | None) -> None:
        p = self._state(t)
        if m.code == PapCode.AUTHENTICATE_REQUEST and m.peer_id is not None:
            p.attempt = None
            secret = self._lookup(t, m.peer_id, None)
            if secret is None:
                return
            inside = self._inside(t)
            match, why = check_pap(secret, m.password or "")
            inside.add_check(CredentialCheck("PAP", m.peer_id, secret.source, match, number, why))
            self._after_check(inside, match, why)
            p.attempt = _Attempt("PAP", m.peer_id.encode("latin-1"), b"", b"", b"", secret)
        elif m.code in (PapCode.AUTHENTICATE_ACK, PapCode.AUTHENTICATE_NAK):
            self._result(t, p, m.code == PapCode.AUTHENTICATE_ACK, number, None)

    # ------------------------------------------------------------------ keys (RFC 3079) and CCP (RFC 1962)
    def _keys(self, t: Tunnel, p: _Private, inside: InsideTunnel) -> None:
        """The start keys of both directions, once the server accepted a response that matched."""
        a = p.attempt
        inside.state, inside.why = DecryptState.WAITING, "waiting for the MPPE negotiation (CCP) and data"
        if a is None or a.method not in ("MS-CHAPv2", "MS-CHAP"):
            p.start_keys = {}
            return
        hh = mc.hash_nt_password_hash(a.secret.nt_hash)
        if a.method == "MS-CHAPv2":
            master = mc.get_master_key(hh, a.nt_response)
            p.start_keys = {
                Direction.TO_SERVER: [mc.get_asymmetric_start_key(master, 16, is_send=True, is_server=False)],
                Direction.TO_CLIENT: [mc.get_asymmetric_start_key(master, 16, is_send=False, is_server=False)]}
        else:
            nt_start = mc.mschapv1_start_key(hh, a.challenge)
            candidates = [nt_start]
            if a.secret.password is not None:
                candidates.append(mc.lm_password_hash(a.secret.password)[:8])  # RFC 3079 §2.1-2.2: 40/56-bit only
            p.start_keys = {Direction.TO_SERVER: candidates, Direction.TO_CLIENT: list(candidates)}
        p.receivers = {}
        self._receivers(t, p, inside)

    def _receivers(self, t: Tunnel, p: _Private, inside: InsideTunnel) -> None:
        """One receiver per direction (and candidate key) once both the keys and CCP's choice are known."""
        c = t.ccp
        if p.receivers or not p.start_keys or not c.mppe or c.bits not in mc.MPPE_KEY_LENGTH:
            return
        bits, stateless = c.bits, bool(c.stateless)
        n = mc.MPPE_KEY_LENGTH[bits]
        for d, keys in p.start_keys.items():
            p.receivers[d] = [MppeReceiver(k[:n], bits, stateless) for k in keys if len(k) >= n]
        inside.bits, inside.stateless = bits, stateless
        inside.state, inside.why = DecryptState.WAITING, "waiting for data"

    def _ccp(self, t: Tunnel, m: ControlPacket) -> None:
        inside = inside_of(t)
        if inside is None:
            return
        if m.code == ControlCode.CONFIGURE_ACK:
            p = self._private.get(t.id)
            if p is not None:
                self._receivers(t, p, inside)
        elif m.code == CCP_RESET_REQUEST:
            inside.reset_requests += 1
        elif m.code == CCP_RESET_ACK:
            inside.reset_acks += 1

    # ------------------------------------------------------------------ data (the tunnel's tap)
    def _data(self, t: Tunnel, d: Direction, number: int, ts: float, data: bytes, start: int, end: int) -> None:
        """One data packet of a tunnel whose user's response matched and was accepted."""
        inside = inside_of(t)
        p = self._private.get(t.id)
        if inside is None or p is None:
            return
        pp, hl = ppp_header(data, start)
        if pp == COMPRESSED:
            off = start + hl
            if off + 2 > end:
                inside.dropped[Drop.TRUNCATED.value] += 1
                return
            rxs = p.receivers.get(d)
            if not rxs:
                self._no_receiver(t, inside, p)
                return
            head = data[off]
            body = data[off + 2:end]
            ccount = ((head & 0x0F) << 8) | data[off + 1]
            out: bytes | Drop = rxs[0].decrypt(head, ccount, body)
            if len(rxs) > 1:  # MS-CHAPv1 40/56-bit: the RFC's key and pppd's; the first to decrypt stays
                outs = [out, *(r.decrypt(head, ccount, body) for r in rxs[1:])]
                good = next((i for i, o in enumerate(outs) if not isinstance(o, Drop)), 0)
                out = outs[good]
                if not isinstance(out, Drop):
                    p.receivers[d] = [rxs[good]]
            if isinstance(out, Drop):
                inside.dropped[out.value] += 1
                if out is Drop.GAVE_UP and inside.state is not DecryptState.FAILING:
                    inside.state = DecryptState.FAILING
                    inside.why = ("the keys derived from the secret do not decrypt the data (a secret that is not the "
                                  "one used, or a key derivation pptptop does not know)")
                return
            if inside.state is not DecryptState.DECRYPTING:
                inside.state, inside.why = DecryptState.DECRYPTING, ""
            if out[0] & 1:
                proto, plain, extra = out[0], out[1:], 1
            else:
                proto, plain, extra = (out[0] << 8) | out[1], out[2:], 2
            overhead = hl + 2 + extra
        elif pp in (IPV4, IPV6):
            proto, plain, overhead = pp, data[start + hl:end], hl
            if inside.state is not DecryptState.PLAIN and inside.state is not DecryptState.DECRYPTING:
                inside.state, inside.why = DecryptState.PLAIN, "the data is not encrypted: read as it is"
        else:
            return
        if proto not in (IPV4, IPV6):
            return
        inside.decrypted += 1
        inside.decrypted_bytes += len(plain)
        inside.inner.packet(number, ts, d, plain, overhead)
        inside.recent.append((number, bytes(plain)))
        for sink in self.sinks:
            sink(t, number, ts, plain)

    def _no_receiver(self, t: Tunnel, inside: InsideTunnel, p: _Private) -> None:
        inside.dropped["no-key"] += 1
        if inside.state is DecryptState.DECRYPTING:
            return
        if not p.start_keys:
            inside.state = DecryptState.NO_KEYS
            method = inside.last_check.method if inside.last_check else t.auth.method
            inside.why = f"MPPE keys come from MS-CHAP (RFC 3079), and this tunnel authenticated with {method}"
        elif not t.ccp.mppe or t.ccp.bits is None:
            inside.state = DecryptState.NO_CCP
            inside.why = "the MPPE negotiation (CCP) was not captured: key strength and mode are unknown"

    # ------------------------------------------------------------------ output
    def inner_json(self, t: Tunnel, now: float | None = None) -> dict[str, Any] | None:
        """The tunnel's ``inner`` section of ``--json`` as of ``now`` (the latest event's time by default); for a
        tunnel that carried data but was never looked into, why not; else None."""
        inside = inside_of(t)
        if inside is not None:
            return inside.as_dict(self.now if now is None else now)
        if t.traffic[0].data_packets or t.traffic[1].data_packets or t.phase is Phase.DATA:
            why = ("the capture began after the authentication: the MPPE keys come from it"
                   if t.auth.attempts == 0 else "no secret for this tunnel's user")
            state = DecryptState.NOT_SEEN if t.auth.attempts == 0 else DecryptState.NO_SECRET
            return {"user": t.auth.user, "decryption": {"state": state.value, "why": why}}
        return None


def _mru_of(t: Tunnel) -> Callable[[Direction], int]:
    """The MRU of the side a direction goes to (RFC 1661 §6.1, the LCP option that side asked for)."""

    def mru(d: Direction) -> int:
        side = "server" if d is Direction.TO_SERVER else "client"
        v = t.lcp.options.get(side, {}).get("mru")
        return v if isinstance(v, int) and v > 0 else DEFAULT_MRU

    return mru
