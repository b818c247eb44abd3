"""What pptptop sees inside one tunnel: ``tunnel.inside``.

:class:`InsideTunnel` is the typed joint between :mod:`pptptop.inside` and
the stages after it (diagnosis rules, ``--json``, ``--report``, the recorder
of decrypted packets). It holds the credential checks, the decryption state
with its counts, and the inner traffic; the keys stay in
:class:`~pptptop.inside.inspector.Inspector`'s private state and never appear
here.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pptptop.inside.inner import InnerTraffic
from pptptop.track.model import Tunnel
from pptptop.track.notes import InsideNote

__all__ = ["CredentialCheck", "DecryptState", "InsideTunnel", "Match", "inside_of"]

MAX_CHECKS = 16
#: inner datagrams kept for the packet view: as many as the tunnel's data ring keeps frames (Tunnel.data_ring)
RECENT = 64


class Match(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    UNVERIFIABLE = "unverifiable"


@dataclass(slots=True)
class CredentialCheck:
    """One authentication attempt checked against the known secret, and how the server answered it."""

    method: str  # MS-CHAPv2, MS-CHAP, CHAP-MD5, PAP
    user: str
    secret_from: str  # where the secret came from (Secret.source): a file and line, --password, --nt-hash
    response: Match
    response_frame: int | None
    why: str = ""  # for UNVERIFIABLE
    server: str | None = None  # success, failure; None until the server answers
    server_frame: int | None = None
    error_code: int | None = None  # MS-CHAP Failure E=
    authenticator: Match | None = None  # MS-CHAPv2 S= (RFC 2759 §5), checked when the response matched
    authenticator_frame: int | None = None

    def as_dict(self) -> dict[str, object]:
        """For ``--json``: what was checked and found, never a secret or a value derived from one."""
        return {"method": self.method, "user": self.user, "secret_from": self.secret_from,
                "response": self.response.value, "response_frame": self.response_frame, "why": self.why or None,
                "server": self.server, "server_frame": self.server_frame, "error_code": self.error_code,
                "authenticator": self.authenticator.value if self.authenticator else None}


class DecryptState(StrEnum):
    """Where decryption of a tunnel stands (stable names, docs/decryption.md)."""

    NO_SECRET = "no-secret"  # no secret names the tunnel's user
    WAITING = "waiting"  # a secret is known: waiting for the authentication, CCP or data
    WRONG_SECRET = "wrong-secret"  # the captured response does not follow from the secret
    UNVERIFIABLE = "unverifiable"  # the method needs the password and only the NT hash is known
    AUTH_FAILED = "auth-failed"  # the server refused the authentication: no session keys
    NO_KEYS = "no-keys"  # MPPE keys come from MS-CHAP (RFC 3079), and the tunnel used another method
    NOT_SEEN = "auth-not-seen"  # the capture began after the authentication: the keys cannot be derived
    NO_CCP = "ccp-not-seen"  # MPPE data, but the CCP negotiation (key strength, mode) was not captured
    PLAIN = "not-encrypted"  # the data is plain PPP IP (no MPPE): read as it is
    DECRYPTING = "decrypting"
    FAILING = "undecryptable"  # the keys do not decrypt the data


@dataclass(slots=True, eq=False)
class InsideTunnel(InsideNote):
    """One tunnel seen from the inside; see the module docstring."""

    tunnel_id: int
    inner: InnerTraffic
    user: str | None = None
    secret_from: str | None = None  # where the secret came from (never the secret)
    checks: list[CredentialCheck] = field(default_factory=list)
    state: DecryptState = DecryptState.NO_SECRET
    why: str = ""
    bits: int | None = None
    stateless: bool | None = None
    decrypted: int = 0  # inner datagrams read (decrypted, or plain)
    decrypted_bytes: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # MPPE packets not decrypted, by reason (mppe.Drop)
    reset_requests: int = 0  # CCP Reset-Request (RFC 1962 §2.2): a receiver lost stateful sync
    reset_acks: int = 0
    #: (frame number, inner datagram) of the latest frames read inside, for the UI's packet view
    recent: deque[tuple[int, bytes]] = field(default_factory=lambda: deque(maxlen=RECENT))

    @property
    def last_check(self) -> CredentialCheck | None:
        return self.checks[-1] if self.checks else None

    def add_check(self, check: CredentialCheck) -> None:
        if len(self.checks) >= MAX_CHECKS:
            del self.checks[0]
        self.checks.append(check)

    def as_dict(self, now: float) -> dict[str, Any]:
        """The ``inner`` section of a tunnel in ``--json`` (docs/json.md): no secret, hash or key in it."""
        return {
            "user": self.user,
            "secret_from": self.secret_from,
            "credentials": [c.as_dict() for c in self.checks],
            "decryption": {"state": self.state.value, "why": self.why or None, "mppe_bits": self.bits,
                           "stateless": self.stateless, "packets": self.decrypted, "bytes": self.decrypted_bytes,
                           "undecrypted": dict(self.dropped), "reset_requests": self.reset_requests,
                           "reset_acks": self.reset_acks},
            **self.inner.as_dict(now),
        }


def inside_of(tunnel: Tunnel) -> InsideTunnel | None:
    """The tunnel's :class:`InsideTunnel`, or None when nothing looked inside it (``Tunnel.inside`` holds
    an :class:`~pptptop.track.notes.InsideNote`, and this is the only kind)."""
    v = tunnel.inside
    return v if isinstance(v, InsideTunnel) else None
