"""MPPE decryption of one direction of a tunnel (RFC 3078), as its receiver does it.

Every MPPE packet starts with two octets (RFC 3078 §3): the A (flushed), B, C
(compressed, MPPC) and D (encrypted) bits and a 12-bit coherency count; RC4
under the current session key encrypts the rest: the PPP protocol field and
the datagram.

* Stateless mode (§8.1, the H bit): the key changes for every packet, so a
  packet's key follows from its coherency count alone. Lost packets are
  skipped by changing the key once per count missed; a late or repeated
  packet is decrypted with the key kept for its count (the last
  :data:`KEYS_KEPT`), which the RFC allows a receiver to do.
* Stateful mode (§8.2): one RC4 stream runs across packets and the key
  changes every 256 packets (the "flag" packet whose count ends in 0xFF). A
  lost packet breaks the stream: the receiver discards everything until the
  sender's next flushed packet (after its CCP Reset-Request, or the next flag
  packet), changing the key once for each flag packet missed, then once for
  the flushed one, as Linux's ppp_mppe does.

A passive observer can miss what the peer received, so a flushed packet
whose plaintext does not look like PPP/IP is tried with up to
:data:`RESYNC_TRIES` further key changes before it is counted undecryptable.
"""

from __future__ import annotations

import struct
from enum import StrEnum

from Crypto.Cipher import ARC4

from pptptop.decode.mschap_crypto import initial_session_key, next_session_key

__all__ = ["CCOUNT_SPACE", "Drop", "MppeReceiver", "plaintext_ok"]

CCOUNT_SPACE = 4096
HALF = CCOUNT_SPACE // 2
FLAG = 0xFF
MPPE_A, MPPE_C, MPPE_D = 0x80, 0x20, 0x10
#: stateless mode: keys kept for late and repeated packets
KEYS_KEPT = 64
#: further key changes tried on a flushed packet that does not decrypt to PPP/IP
RESYNC_TRIES = 3
#: a direction whose first packets this many in a row do not decrypt has the wrong key: stop trying
GIVE_UP_AFTER = 8
_WORDS = {n: struct.Struct(f"!{n // 2}H") for n in range(20, 64, 4)}  # an IPv4 header as 16-bit words, by length
#: inner PPP protocols a decrypted packet may start with (RFC 1661 §2): IPv4, IPv6, VJ, CCP-less MP
_PROTOCOLS = {0x0021, 0x0057, 0x002D, 0x002F, 0x003D}


class Drop(StrEnum):
    """Why a packet was not decrypted (stable names, counted per tunnel; docs/decryption.md)."""

    NOT_ENCRYPTED = "not-encrypted"  # D bit clear: MPPC alone
    COMPRESSED = "mppc-compressed"  # C bit set: MPPC (RFC 2118) is not decompressed
    LATE = "late"  # stateless: older than the keys kept
    RESYNC = "waiting-for-flush"  # stateful: after a loss, until the sender's flushed packet
    INVALID = "invalid-plaintext"  # decrypted to something that is not PPP/IP: wrong key or desynchronised
    GAVE_UP = "wrong-key"  # the direction's first packets never decrypted: the key is wrong
    TRUNCATED = "truncated"  # shorter than the MPPE header


def plaintext_ok(p: bytes) -> bool:
    """Whether a decrypted MPPE payload looks like a PPP protocol field and a sane datagram.

    IPv4: version, header length, total length equal to what is there, header checksum (RFC 791 §3.1);
    IPv6: version and payload length (RFC 8200 §3). Other data protocols: the field alone.
    """
    if not p:
        return False
    if p[0] & 1:
        proto, off = p[0], 1
    elif len(p) >= 2:
        proto, off = (p[0] << 8) | p[1], 2
    else:
        return False
    if proto not in _PROTOCOLS:
        return False
    ip = p[off:]
    if proto == 0x0021:
        if len(ip) < 20 or ip[0] >> 4 != 4 or (ip[0] & 0x0F) < 5:
            return False
        ihl = (ip[0] & 0x0F) * 4
        if ((ip[2] << 8) | ip[3]) != len(ip) or len(ip) < ihl:
            return False
        s: int = sum(_WORDS[ihl].unpack_from(ip))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        return s == 0xFFFF
    if proto == 0x0057:
        return len(ip) >= 40 and ip[0] >> 4 == 6 and ((ip[4] << 8) | ip[5]) + 40 == len(ip)
    return True


class MppeReceiver:
    """Decrypts one direction's MPPE packets in arrival order.

    ``start_key`` is the direction's start key (RFC 3079: the client's send key for client→server),
    ``bits`` 40, 56 or 128, ``stateless`` the H bit CCP agreed.
    """

    __slots__ = ("_bad_run", "_ccount", "_discard", "_key", "_keys", "_rc4", "_start", "bits", "good", "stateless")

    def __init__(self, start_key: bytes, bits: int, stateless: bool) -> None:
        self.bits = bits
        self.stateless = stateless
        self._start = start_key
        self._key = initial_session_key(start_key, bits)
        self._ccount = CCOUNT_SPACE - 1  # so that the first packet, count 0, is one step on (Linux ppp_mppe)
        self._keys: dict[int, bytes] = {}
        self._rc4 = ARC4.new(self._key)
        self._discard = False
        self.good = 0  # packets decrypted to valid PPP/IP
        self._bad_run = 0

    def _rekey(self) -> None:
        self._key = next_session_key(self._start, self._key, self.bits)

    def decrypt(self, header: int, ccount: int, body: bytes) -> bytes | Drop:
        """The plaintext (PPP protocol field and datagram) of one packet, or why not.

        ``header`` is the MPPE header's first octet, ``ccount`` its coherency count, ``body`` what follows.
        """
        if not self.good and self._bad_run >= GIVE_UP_AFTER:
            return Drop.GAVE_UP
        if not header & MPPE_D:
            return Drop.NOT_ENCRYPTED
        out = self._stateless(ccount, body) if self.stateless else self._stateful(bool(header & MPPE_A), ccount, body)
        if isinstance(out, Drop):
            return out
        if header & MPPE_C:
            return Drop.COMPRESSED
        if plaintext_ok(out):
            self.good += 1
            self._bad_run = 0
            return out
        self._bad_run += 1
        return Drop.INVALID

    # ------------------------------------------------------------------ RFC 3078 §8.1
    def _stateless(self, ccount: int, body: bytes) -> bytes | Drop:
        delta = (ccount - self._ccount) % CCOUNT_SPACE
        if 0 < delta < HALF:
            keys = self._keys
            for _ in range(delta):
                self._rekey()
                self._ccount = (self._ccount + 1) % CCOUNT_SPACE
                keys[self._ccount] = self._key
            while len(keys) > KEYS_KEPT:
                del keys[next(iter(keys))]
            key = self._key
        else:
            found = self._keys.get(ccount)  # late or repeated
            if found is None:
                return Drop.LATE
            key = found
        return ARC4.new(key).decrypt(body)

    # ------------------------------------------------------------------ RFC 3078 §8.2
    def _stateful(self, flushed: bool, ccount: int, body: bytes) -> bytes | Drop:
        if not self._discard:
            expected = (self._ccount + 1) % CCOUNT_SPACE
            if ccount != expected and not flushed:
                self._discard = True  # the receiver now sends a CCP Reset-Request
                return Drop.RESYNC
            if ccount != expected:  # lost packets, but this one restarts the stream
                self._skip_flags(ccount)
            self._ccount = ccount
        else:
            if not flushed:
                return Drop.RESYNC
            self._skip_flags(ccount)
            self._discard = False
            self._ccount = ccount
        if not flushed:
            return self._rc4.decrypt(body)
        return self._flushed(body)

    def _skip_flags(self, ccount: int) -> None:
        """One key change per flag packet (count ending 0xFF) missed before ``ccount``."""
        while (ccount & ~FLAG) != (self._ccount & ~FLAG):
            self._rekey()
            self._ccount = (self._ccount + FLAG + 1) % CCOUNT_SPACE

    def _flushed(self, body: bytes) -> bytes:
        """A flushed packet: a new key and the RC4 stream restarted (Linux ppp_mppe). When that does not give
        PPP/IP: the stream restarted on the current key (a sender that flushes without changing it), then up
        to :data:`RESYNC_TRIES` further key changes (flushed packets the capture missed)."""
        first = next_session_key(self._start, self._key, self.bits)
        candidates = [first, self._key]
        key = first
        for _ in range(RESYNC_TRIES):
            key = next_session_key(self._start, key, self.bits)
            candidates.append(key)
        for key in candidates:
            rc4 = ARC4.new(key)
            out = rc4.decrypt(body)
            if plaintext_ok(out):
                break
        else:
            key = first
            rc4 = ARC4.new(key)
            out = rc4.decrypt(body)
        self._key, self._rc4 = key, rc4
        return out
