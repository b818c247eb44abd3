"""``--export-hashes FILE``: captured MS-CHAP exchanges as NetNTLMv1 lines for an audit.

MS-CHAPv2's NT-Response is DES of an 8-octet challenge under the NT password
hash, exactly NetNTLMv1 (RFC 2759 §8.1, §8.5), where the challenge is
``SHA1(PeerChallenge ‖ AuthenticatorChallenge ‖ UserName)[:8]`` (RFC 2759
§8.2, ChallengeHash; the user name without any ``DOMAIN\\`` prefix).
MS-CHAPv1 (RFC 2433 §A.5) uses the 8-octet authenticator challenge directly.
Each exchange becomes one line in the L0phtCrack form that hashcat (mode 5500)
and John the Ripper (format netntlm) read::

    user::::NTResponseHex:ChallengeHex
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace

from pptptop.decode.auth import ChapCode, ChapPacket
from pptptop.decode.ppp import PppFrame
from pptptop.track.events import Event, EventKind
from pptptop.track.tracker import Tracker

MSCHAPV2_CHALLENGE_SIZE = 16
MSCHAPV1_CHALLENGE_SIZE = 8


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: bytes) -> bytes:
    """RFC 2759 §8.2 ChallengeHash: the 8-octet challenge MS-CHAPv2's NT-Response answers."""
    user = username.rsplit(b"\\", 1)[-1]
    return hashlib.sha1(peer_challenge + authenticator_challenge + user).digest()[:8]


@dataclass(frozen=True, slots=True)
class ChapExchange:
    """One MS-CHAP Challenge/Response pair (RFC 2433 §5, RFC 2759 §4) and how it ended."""

    tunnel_id: int
    method: str  # MS-CHAPv2 or MS-CHAP
    user: str  # the Name field as text (for display)
    user_raw: bytes  # the Name field as sent (for the challenge hash)
    authenticator_challenge: bytes
    peer_challenge: bytes | None
    nt_response: bytes
    challenge_frame: int | None
    response_frame: int | None
    result: str | None = None  # success, failure, or None when not seen

    @property
    def challenge(self) -> bytes:
        """The 8-octet challenge the NT-Response was computed over."""
        if self.method == "MS-CHAPv2" and self.peer_challenge is not None:
            return challenge_hash(self.peer_challenge, self.authenticator_challenge, self.user_raw)
        return self.authenticator_challenge[:MSCHAPV1_CHALLENGE_SIZE]


def _line_user(user: str) -> str:
    """The user field of a hash line: no separators or control characters from the wire."""
    return "".join(ch if ch.isprintable() and ch not in ":" else "_" for ch in user) or "_"


def netntlm_line(ex: ChapExchange) -> str:
    """``user::::NTResponse:Challenge`` (hashcat -m 5500, john --format=netntlm)."""
    return f"{_line_user(ex.user)}::::{ex.nt_response.hex()}:{ex.challenge.hex()}"


def _name_bytes(frame: PppFrame) -> bytes:
    """The raw Name field of a CHAP Challenge/Response (RFC 1994 §4.1): after Value-Size and Value."""
    info = frame.info
    if len(info) < 5:
        return b""
    length = min((info[2] << 8) | info[3], len(info))
    return bytes(info[5 + info[4]:length])


class ExchangeBuilder:
    """Pairs each MS-CHAP Response with the challenge it answers, for one tunnel.

    The challenge is the last Challenge's value, or the new one a MS-CHAP
    Failure carries in ``C=`` for the retry (RFC 2759 §6).
    """

    def __init__(self, tunnel_id: int) -> None:
        self.tunnel_id = tunnel_id
        self.exchanges: list[ChapExchange] = []
        self._challenge: tuple[bytes, int | None] | None = None

    def feed(self, number: int | None, frame: PppFrame) -> None:
        m = frame.message
        if not isinstance(m, ChapPacket):
            return
        if m.code == ChapCode.CHALLENGE:
            self._challenge = (m.value, number)
        elif m.code == ChapCode.RESPONSE and self._challenge is not None and len(self.exchanges) < 64:
            chal, chal_no = self._challenge
            v2, v1 = m.mschapv2_response, m.mschapv1_response
            if v2 is not None and len(chal) == MSCHAPV2_CHALLENGE_SIZE:
                self.exchanges.append(ChapExchange(self.tunnel_id, "MS-CHAPv2", m.name, _name_bytes(frame), chal,
                                                   v2.peer_challenge, v2.nt_response, chal_no, number))
            elif v1 is not None and len(chal) == MSCHAPV1_CHALLENGE_SIZE:
                self.exchanges.append(ChapExchange(self.tunnel_id, "MS-CHAP", m.name, _name_bytes(frame), chal,
                                                   None, v1.nt_response, chal_no, number))
        elif m.code in (ChapCode.SUCCESS, ChapCode.FAILURE):
            if self.exchanges and self.exchanges[-1].result is None:
                result = "success" if m.code == ChapCode.SUCCESS else "failure"
                self.exchanges[-1] = replace(self.exchanges[-1], result=result)
            if m.failure is not None and m.failure.challenge:
                self._challenge = (m.failure.challenge, number)


class HashCollector:
    """Collects exchanges live from tracker events, so evicted tunnels are not lost.

    ``out`` is the descriptor :meth:`finish` writes to. This layer creates no
    file: ``--export-hashes`` opens it with
    :func:`pptptop.record.writers.open_output` (mode 0600, never through a
    link, docs/recording.md) before any privilege drop.
    """

    def __init__(self, out: int | None = None) -> None:
        self._builders: dict[int, ExchangeBuilder] = {}
        self._out = out

    def attach(self, tracker: Tracker) -> HashCollector:
        tracker.subscribe(self)
        return self

    def __call__(self, ev: Event) -> None:
        if ev.kind is not EventKind.MESSAGE or ev.tunnel is None or not isinstance(ev.message, PppFrame):
            return
        if not isinstance(ev.message.message, ChapPacket):
            return
        b = self._builders.get(ev.tunnel.id)
        if b is None:
            b = self._builders[ev.tunnel.id] = ExchangeBuilder(ev.tunnel.id)
        b.feed(ev.frame, ev.message)

    @property
    def exchanges(self) -> list[ChapExchange]:
        return [ex for b in self._builders.values() for ex in b.exchanges]

    def lines(self) -> list[str]:
        """One line per distinct exchange, in the order they were captured."""
        return list(dict.fromkeys(netntlm_line(ex) for ex in self.exchanges))

    def finish(self) -> int:
        """Write the lines to the descriptor given at creation and close it; return how many."""
        if self._out is None:
            raise ValueError("HashCollector was created without an output")
        fd, self._out = self._out, None
        lines = self.lines()
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
        return len(lines)
