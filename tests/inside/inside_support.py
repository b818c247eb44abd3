"""Helpers for the inside tests: run frames with secrets, craft MS-CHAP exchanges and MPPE data.

The crafted exchanges use the RFCs' own sample values (RFC 2759 §9.2, RFC 2433
B.2, RFC 3079 §3.5), so a crafted session checks pptptop against the
published numbers, not against itself.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from Crypto.Cipher import ARC4

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "diagnose"))

from diag_support import CCP, CHAP, MPPE_H, MPPE_L, MPPE_M, MPPE_S, PAP, Frame, Wire, cp, mppe

from pptptop.decode import mschap_crypto as mc
from pptptop.diagnose import Diagnoser
from pptptop.inside.inspector import Inspector
from pptptop.inside.secrets import SecretStore, from_password
from pptptop.inside.state import InsideTunnel, inside_of
from pptptop.sources import open_file
from pptptop.track.model import Tunnel
from pptptop.track.tracker import Tracker

__all__ = ["CCP", "CHAP", "DATA", "PAP", "Run", "Sender", "Wire", "cp", "ipv4_icmp", "mppe", "rfc_mschapv2",
           "rfc_senders", "rfc_session", "run", "run_file", "secret_values", "secrets"]

DATA = Path(__file__).resolve().parent.parent / "data"
H = bytes.fromhex
# RFC 2759 §9.2
USER = b"User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = H("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = H("21402324255E262A28295F2B3A337C7E")
NT_RESPONSE = H("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
AUTHENTICATOR = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"


def secrets(*pairs: tuple[str, str]) -> SecretStore:
    return SecretStore([from_password(u, p, "--password") for u, p in pairs])


@dataclass
class Run:
    tracker: Tracker
    inspector: Inspector
    diagnoser: Diagnoser

    @property
    def only(self) -> Tunnel:
        assert len(self.tracker.tunnels) == 1
        return next(iter(self.tracker.tunnels.values()))

    def inside(self, t: Tunnel | None = None) -> InsideTunnel:
        got = inside_of(t or self.only)
        assert got is not None
        return got

    def codes(self, t: Tunnel | None = None) -> list[str]:
        return [f.code for f in (t or self.only).findings]


def run(frames: Iterable[Frame], store: SecretStore) -> Run:
    """Feed frames one by one with the inspector subscribed before the diagnosis, as the CLI does."""
    tracker = Tracker()
    inspector = Inspector(store).attach(tracker)
    diagnoser = Diagnoser().attach(tracker)
    for n, (ts, iface, lt, data) in enumerate(frames, 1):
        tracker.feed(n, ts, iface, lt, data)
    tracker.finish()
    return Run(tracker, inspector, diagnoser)


def run_file(path: Path | str, store: SecretStore) -> Run:
    return run(((f.ts, f.iface, f.linktype, f.data) for f in open_file(str(path))), store)


def rfc_mschapv2(w: Wire, result: bytes | None = AUTHENTICATOR, failure: bytes = b"E=691 R=0 C=" + b"00" * 16
                 + b" V=3 M=Access denied") -> Wire:
    """RFC 2759 §9.2's exchange: Challenge, Response of "User", then ``result`` (a Success message) or,
    when None, a Failure with ``failure``."""
    w.ppp("server", CHAP, cp(1, 9, b"\x10" + AUTH_CHALLENGE + b"srv"))
    w.ppp("client", CHAP, cp(2, 9, b"\x31" + PEER_CHALLENGE + bytes(8) + NT_RESPONSE + b"\x00" + USER))
    if result is None:
        return w.ppp("server", CHAP, cp(4, 9, failure))
    return w.ppp("server", CHAP, cp(3, 9, result + b" M=Access granted"))


def rfc_session(bits: int = 128, stateless: bool = True, mru: int | None = None) -> Wire:
    """RFC 2759 §9.2's user authenticated (the client asking for ``mru``), CCP agreeing on MPPE with ``bits``
    and the mode, IPCP up: ready for :func:`rfc_senders`' packets."""
    w = rfc_mschapv2(Wire().setup().lcp_up(mru=mru))
    o = mppe((MPPE_H if stateless else 0) | {128: MPPE_S, 56: MPPE_M, 40: MPPE_L}[bits])
    w.ppp("client", CCP, cp(1, 1, o)).ppp("server", CCP, cp(1, 1, o))
    w.ppp("server", CCP, cp(2, 1, o)).ppp("client", CCP, cp(2, 1, o))
    return w.ipcp_up()


def ipv4_icmp(src: bytes, dst: bytes, ident: int, seq: int, size: int = 64) -> bytes:
    """An ICMP echo request with correct IPv4 and ICMP checksums (RFC 791, RFC 792)."""

    def csum(b: bytes) -> int:
        if len(b) % 2:
            b += b"\0"
        s = sum(struct.unpack(f"!{len(b) // 2}H", b))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        return ~s & 0xFFFF

    body = bytes((i * 7) & 0xFF for i in range(size))
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + body
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + icmp


class Sender:
    """One direction's MPPE sender, as Linux ppp_mppe's compressor does it (RFC 3078 §7-8).

    Stateless: a new key for every packet, every packet flushed. Stateful: one RC4 stream; a new key and
    the flushed bit on the "flag" packet (count ending 0xFF) and after a CCP Reset-Request.
    """

    def __init__(self, start_key: bytes, bits: int, stateless: bool) -> None:
        self.start, self.bits, self.stateless = start_key, bits, stateless
        self.key = mc.initial_session_key(start_key, bits)
        self.rc4 = ARC4.new(self.key)
        self.ccount = 4095
        self.reset = False

    def packet(self, plain: bytes) -> bytes:
        """The PPP frame (with Address/Control) of one encrypted packet; ``plain`` starts with the protocol."""
        self.ccount = (self.ccount + 1) % 4096
        flushed = self.stateless or (self.ccount & 0xFF) == 0xFF or self.reset
        if flushed:
            self.key = mc.next_session_key(self.start, self.key, self.bits)
            self.rc4 = ARC4.new(self.key)
        self.reset = False
        head = (0x90 if flushed else 0x10) | (self.ccount >> 8)
        return b"\xff\x03\x00\xfd" + bytes((head, self.ccount & 0xFF)) + self.rc4.encrypt(plain)


def rfc_senders(bits: int, stateless: bool) -> tuple[Sender, Sender]:
    """The client's and the server's senders for RFC 2759 §9.2's session (RFC 3079 §3.4 start keys)."""
    master = mc.get_master_key(mc.hash_nt_password_hash(mc.nt_password_hash(PASSWORD)), NT_RESPONSE)
    n = mc.MPPE_KEY_LENGTH[bits]
    client = mc.get_asymmetric_start_key(master, n, is_send=True, is_server=False)
    server = mc.get_asymmetric_start_key(master, n, is_send=True, is_server=True)
    return Sender(client, bits, stateless), Sender(server, bits, stateless)


def secret_values() -> list[str]:
    """Every value that must never appear in an output of the RFC session: the password, its hashes, the keys."""
    ph = mc.nt_password_hash(PASSWORD)
    hh = mc.hash_nt_password_hash(ph)
    master = mc.get_master_key(hh, NT_RESPONSE)
    out = [PASSWORD, ph.hex(), hh.hex(), master.hex()]
    for send in (True, False):
        start = mc.get_asymmetric_start_key(master, 16, is_send=send, is_server=False)
        out += [start.hex(), mc.initial_session_key(start, 128).hex()]
    return out + [x.upper() for x in out[1:]]

