"""TCP reassembly of one direction of a PPTP control connection.

PPTP control messages (RFC 2637 §1.3, §2) ride TCP port 1723 and are framed
only by their 16-bit Length: one segment may carry several, one message may
span several segments.  :class:`StreamReassembler` puts the segments of one
direction back in sequence order (RFC 9293 §3.4: SYN and FIN each take one
sequence number, arithmetic is modulo 2**32) and cuts the byte stream into
whole messages.

A sniffer sees what the endpoints see plus its own losses, so nothing here is
fatal: retransmitted bytes are dropped, partly new segments are trimmed,
segments that arrive early wait in a bounded buffer, and a hole that will not
fill is skipped (a *gap*).  When the bytes where a header should start do not
look like one (wrong Magic Cookie, impossible Length), a ``DecodeError`` is
returned in the output, counted as a *resync*, and the stream is scanned for
the next plausible header: the cookie at +4 and a Length between 12 and
``max_message``.

Memory is bounded whatever is fed: at most ``max_buffer`` octets in at most
``max_segments`` early segments, plus less than ``max_message`` octets of a
partial message.
"""

from __future__ import annotations

from pptptop.decode.errors import DecodeError
from pptptop.decode.pptp import HEADER_LENGTH, MAGIC_COOKIE, PEEK_LENGTH, peek_header
from pptptop.decode.tcp import TH_FIN, TH_SYN

_MOD = 1 << 32
_MASK = _MOD - 1
_HALF = 1 << 31
_MAGIC_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
_MAGIC_AT = 4  # offset of the Magic Cookie in the header


def seq_diff(a: int, b: int) -> int:
    """``a - b`` in 32-bit sequence space, as a signed number (RFC 9293 §3.4)."""
    d = (a - b) & _MASK
    return d - _MOD if d >= _HALF else d


class StreamReassembler:
    """One direction of one TCP connection carrying PPTP control messages.

    :meth:`feed` takes every segment of that direction (pure ACKs too, they
    cost nothing) and returns the messages it completed, in stream order,
    interleaved with a ``DecodeError`` for each resync.

    Out-of-order segments wait until the hole before them fills.  A hole is
    given up (``gaps`` += 1, the partial message before it dropped, framing
    re-checked after it) when the waiting segments exceed ``max_buffer``
    octets or ``max_segments`` segments, or when more than ``gap_bytes``
    octets wait and the hole has outlived ``gap_segments`` further segments.
    :meth:`acknowledged` and :meth:`flush` skip holes on the caller's say-so.

    Counters: ``messages`` (whole messages returned), ``retransmissions``
    (segments with no new octets, or trimmed because partly old),
    ``out_of_order`` (segments that arrived ahead of a hole), ``gaps``,
    ``resyncs``, ``bytes`` (new in-order octets taken).
    """

    # two per control connection, kept while its tunnels are: slots, not a dict each (issue 23)
    __slots__ = (
        "_base",
        "_buf",
        "_fin",
        "_first_seq",
        "_held",
        "_held_bytes",
        "_hole_age",
        "_isn",
        "_next",
        "_scanning",
        "bytes",
        "closed",
        "gap_bytes",
        "gap_segments",
        "gaps",
        "max_buffer",
        "max_message",
        "max_segments",
        "messages",
        "out_of_order",
        "resyncs",
        "retransmissions",
    )

    def __init__(
        self,
        *,
        max_message: int = 1024,
        max_buffer: int = 64 * 1024,
        max_segments: int = 256,
        gap_bytes: int = 2048,
        gap_segments: int = 8,
    ) -> None:
        if max_message < HEADER_LENGTH or max_message > 0xFFFF:
            raise ValueError("max_message must be between 12 and 65535")
        if max_buffer < 1 or max_segments < 1 or gap_bytes < 0 or gap_segments < 1:
            raise ValueError("buffer limits must be positive")
        self.max_message = max_message
        self.max_buffer = max_buffer
        self.max_segments = max_segments
        self.gap_bytes = gap_bytes
        self.gap_segments = gap_segments

        self.messages = 0
        self.retransmissions = 0
        self.out_of_order = 0
        self.gaps = 0
        self.resyncs = 0
        self.bytes = 0
        self.closed = False  # the FIN has been reached in sequence

        self._isn: int | None = None
        self._first_seq: int | None = None
        self._next: int | None = None  # next in-order sequence number expected
        self._fin: int | None = None  # sequence number of a FIN not yet reached
        self._buf = bytearray()  # in-order octets not yet framed
        self._base = 0  # stream offset of _buf[0] (octets taken or skipped before it)
        self._scanning = False
        self._held: dict[int, bytes] = {}  # early segments by sequence number
        self._held_bytes = 0
        self._hole_age = 0

    # --- public ---------------------------------------------------------

    @property
    def held_bytes(self) -> int:
        """Octets of out-of-order segments waiting for a hole to fill."""
        return self._held_bytes

    @property
    def held_segments(self) -> int:
        return len(self._held)

    @property
    def pending_bytes(self) -> int:
        """In-order octets of a message not yet complete."""
        return len(self._buf)

    @property
    def next_seq(self) -> int | None:
        """The next sequence number expected, None before the first segment."""
        return self._next

    def feed(self, seq: int, flags: int, payload: bytes) -> list[bytes | DecodeError]:
        """Take one segment; return the messages (and resync errors) it completed."""
        out: list[bytes | DecodeError] = []
        seq &= _MASK
        data_seq = seq
        if flags & TH_SYN:
            data_seq = (seq + 1) & _MASK
            self._syn(seq)
        elif self._next is None and (payload or flags & TH_FIN):
            self._next = seq
            self._first_seq = seq
        if self._next is None:
            return out
        if flags & TH_FIN and not self.closed:
            fin = (data_seq + len(payload)) & _MASK
            if seq_diff(fin, self._next) >= 0:
                self._fin = fin
        if payload:
            self._segment(data_seq, payload, out)
        self._reach_fin()
        return out

    def acknowledged(self, ack: int) -> list[bytes | DecodeError]:
        """The peer acknowledged everything before ``ack`` (pass ACK-flagged segments of the other direction).

        Octets the peer has acknowledged will not be sent again, so any of
        them this direction never saw is a hole the capture lost: skip it now
        rather than wait for the buffer limits.
        """
        out: list[bytes | DecodeError] = []
        if self._next is None:
            return out
        ack &= _MASK
        if self._fin is not None and seq_diff(ack, self._fin) > 0:
            ack = self._fin  # the FIN's own sequence number is not data
        while self._next is not None and seq_diff(ack, self._next) > 0:
            if self._held and seq_diff(self._earliest(), ack) < 0:
                self._skip_gap(out)
                continue
            self.gaps += 1
            self._base += len(self._buf) + seq_diff(ack, self._next)
            self._buf.clear()
            self._scanning = False
            self._next = ack
            self._drain(out)
        self._reach_fin()
        return out

    def flush(self) -> list[bytes | DecodeError]:
        """Give up every hole (at close or timeout) and frame what follows them."""
        out: list[bytes | DecodeError] = []
        while self._held:
            self._skip_gap(out)
        self._reach_fin()
        return out

    # --- sequencing -----------------------------------------------------

    def _syn(self, seq: int) -> None:
        if self._next is None:
            self._isn = seq
            self._next = (seq + 1) & _MASK
        elif self._isn == seq:
            return  # retransmitted SYN
        elif self._isn is None and self._first_seq == (seq + 1) & _MASK:
            self._isn = seq  # the SYN was captured after the first data
        else:
            self._restart(seq)

    def _restart(self, isn: int) -> None:
        """A SYN with a new ISN: the port pair was reused for a new connection."""
        self._isn = isn
        self._first_seq = None
        self._next = (isn + 1) & _MASK
        self._fin = None
        self.closed = False
        self._base += len(self._buf)
        self._buf.clear()
        self._scanning = False
        self._held.clear()
        self._held_bytes = 0
        self._hole_age = 0

    def _segment(self, seq: int, payload: bytes, out: list[bytes | DecodeError]) -> None:
        assert self._next is not None
        d = seq_diff(seq, self._next)
        n = len(payload)
        if d + n <= 0:
            self.retransmissions += 1
            self._age_hole(out)
            return
        if d < 0:
            self.retransmissions += 1
            payload = payload[-d:]
            d = 0
        if d == 0:
            self._take(payload, out)
            self._drain(out)
            self._hole_age = 0
        else:
            self._hold(seq, payload, out)

    def _hold(self, seq: int, payload: bytes, out: list[bytes | DecodeError]) -> None:
        old = self._held.get(seq)
        if old is not None and len(old) >= len(payload):
            self.retransmissions += 1
        else:
            if old is None:
                self.out_of_order += 1
            else:
                self._held_bytes -= len(old)
            self._held[seq] = payload
            self._held_bytes += len(payload)
        while self._held and (self._held_bytes > self.max_buffer or len(self._held) > self.max_segments):
            self._skip_gap(out)
        self._age_hole(out)

    def _age_hole(self, out: list[bytes | DecodeError]) -> None:
        if not self._held:
            self._hole_age = 0
            return
        self._hole_age += 1
        if self._hole_age > self.gap_segments and self._held_bytes > self.gap_bytes:
            self._skip_gap(out)

    def _earliest(self) -> int:
        nxt = self._next
        assert nxt is not None
        return min(self._held, key=lambda s: seq_diff(s, nxt))

    def _skip_gap(self, out: list[bytes | DecodeError]) -> None:
        """Give up the hole before the earliest held segment and carry on from there."""
        assert self._next is not None
        first = self._earliest()
        lost = seq_diff(first, self._next)
        self.gaps += 1
        self._base += len(self._buf) + max(lost, 0)
        self._buf.clear()
        self._scanning = False  # framing is unknown: check the next header afresh
        self._hole_age = 0
        if lost > 0:
            self._next = first
        self._drain(out)

    def _drain(self, out: list[bytes | DecodeError]) -> None:
        """Take every held segment that the in-order data has reached."""
        progressed = True
        while progressed and self._held:
            progressed = False
            for s in list(self._held):
                assert self._next is not None
                d = seq_diff(s, self._next)
                if d > 0:
                    continue
                payload = self._held.pop(s)
                self._held_bytes -= len(payload)
                if d + len(payload) <= 0:
                    continue  # already covered by other data
                self._take(payload[-d:] if d < 0 else payload, out)
                progressed = True

    def _take(self, payload: bytes, out: list[bytes | DecodeError]) -> None:
        assert self._next is not None
        if self._fin is not None:
            room = seq_diff(self._fin, self._next)
            if room <= 0:
                return
            payload = payload[:room]
        self._next = (self._next + len(payload)) & _MASK
        self.bytes += len(payload)
        self._buf += payload
        self._frame(out)

    def _reach_fin(self) -> None:
        if self._fin is not None and self._next == self._fin:
            self._next = (self._fin + 1) & _MASK
            self._fin = None
            self.closed = True

    # --- framing --------------------------------------------------------

    def _frame(self, out: list[bytes | DecodeError]) -> None:
        buf = self._buf
        n = len(buf)
        pos = 0
        while True:
            if self._scanning:
                found = self._find_header(pos)
                if found < 0:
                    pos = max(pos, n - (PEEK_LENGTH - 1))
                    break
                pos = found
                self._scanning = False
            header = peek_header(buf, pos)
            if header is None:
                break
            length, magic, _msg_type = header
            if magic != MAGIC_COOKIE:
                out.append(
                    DecodeError(
                        "pptp_bad_magic",
                        f"magic cookie 0x{magic:08x} where a control message should start; resynchronising",
                        self._base + pos,
                    )
                )
            elif not HEADER_LENGTH <= length <= self.max_message:
                out.append(
                    DecodeError(
                        "pptp_bad_length",
                        f"control message length {length} outside 12..{self.max_message}; resynchronising",
                        self._base + pos,
                    )
                )
            else:
                if n - pos < length:
                    break
                out.append(bytes(buf[pos : pos + length]))
                self.messages += 1
                pos += length
                continue
            self.resyncs += 1
            self._scanning = True
            pos += 1
        if pos:
            del buf[:pos]
            self._base += pos

    def _find_header(self, start: int) -> int:
        """First position at or after ``start`` that looks like a header: cookie at +4, plausible Length."""
        buf = self._buf
        i = buf.find(_MAGIC_BYTES, start + _MAGIC_AT)
        while i >= 0:
            cand = i - _MAGIC_AT
            length = (buf[cand] << 8) | buf[cand + 1]
            if HEADER_LENGTH <= length <= self.max_message:
                return cand
            i = buf.find(_MAGIC_BYTES, i + 1)
        return -1
