"""GRE whose key no call owns: the first packets of a tunnel met mid-session, or a flood of bogus call IDs.

The key of enhanced GRE is the receiver's call ID (RFC 2637 §4.1), so a
packet is found by (interface, source, destination, call ID). One that no
tunnel owns is one of three things:

* the other direction of a call that owns one direction already (its control
  connection named one call ID, or a GRE-only tunnel saw the other way
  first): :class:`Waiting` finds it by its address pair, one dict lookup;
* the first packets of a call the capture met mid-session;
* stray: a scanner's or a flood's random call ID.

The last two look alike at their first packet. So a new key waits in a
bounded table of pending keys (:class:`Strays`), its first packets held, the
oldest key dropped first, and becomes a GRE-only tunnel when it proves to be a
session: GRE comes back the other way between the same addresses, or the key
repeats (a second packet continuing its sequence numbers, or a third). Its
held packets are then replayed into the tunnel, so its counters are exact. A
flood of random call IDs costs a few dict operations a packet and creates no
tunnel; GRE-only tunnels between one pair of addresses are capped, and what
never becomes a tunnel is counted by source and summarised once an interval
(:attr:`EventKind.UNKNOWN_GRE`), not once a packet.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left, insort
from collections import OrderedDict
from dataclasses import dataclass
from socket import inet_ntoa
from typing import Any, Protocol

import numpy as np

from pptptop.decode.ppp import DATA_PROTOCOLS, ppp_header
from pptptop.track.actions import TunnelActions
from pptptop.track.events import Event, EventKind
from pptptop.track.model import Direction, Tunnel

MASK32 = 0xFFFFFFFF
#: a key's second packet continues its first when its sequence number is this close ahead (RFC 2637 §4.3)
SEQ_NEAR = 64
#: packets of a pending key held for the replay: the key is a tunnel at its third packet at the latest
HELD = 2
#: sources counted apart in one summary interval; the others share one line
SOURCES_PER_INTERVAL = 1024
#: summary lines per interval: the busiest sources, then one for the rest
LINES_PER_INTERVAL = 16
#: sources counted apart over the whole run in ``CaptureStats.gre_unknown_sources``
SOURCES_KEPT = 1024
OTHER = "other"

#: one held packet: frame number, time, link type, frame, GRE sequence and ack numbers, where its PPP
#: payload starts and ends, GRE payload length, whether it is data
Held = tuple[int, float, int, bytes, "int | None", "int | None", int, int, int, bool]


class StrayHost(TunnelActions, Protocol):
    """What :class:`Strays` needs of the tracker besides :class:`TunnelActions`: the tunnels waiting for a
    direction, tunnel numbers, and GRE-only tunnels made of a key that proved to be a session."""

    waiting: Waiting

    def reserve_ids(self, n: int) -> int:
        """Number ``n`` tunnels to come (a tunnel is numbered by its first packet); the first number."""

    def gre_only(self, ts: float, iface: str, src: str, dst: str, call_id: int, tid: int) -> Tunnel:
        """A new GRE-only tunnel numbered ``tid``, indexed by its key."""

    def orphans_between(self, iface: str, pair: Any) -> int:
        """GRE-only tunnels on ``iface`` between the two addresses of unordered ``pair``."""

    def gre_frame(self, number: int, ts: float, iface: str, linktype: int, data: bytes, tunnel: Tunnel,
                  d: Direction, seq: int | None, ack: int | None, start: int, end: int, plen: int) -> None:
        """Account one GRE packet of a known tunnel."""


def pair_of(key: Any) -> Any:
    """The (source, destination) part of a GRE index key (see :func:`~pptptop.track.tracker.gre_key`)."""
    return key >> 16 if type(key) is int else (key[0], key[1])


def reverse(pair: Any) -> Any:
    """The address pair the other way round."""
    return ((pair & MASK32) << 32) | (pair >> 32) if type(pair) is int else (pair[1], pair[0])


def unordered(pair: Any) -> Any:
    """The address pair whichever way round: one name for both directions of a session."""
    return min(pair, reverse(pair))


def source_of(key: Any) -> Any:
    return key >> 48 if type(key) is int else key[0]


def address(raw: Any) -> str:
    """An address of an index key as text, as :func:`~pptptop.decode.ip.decode_ip` writes it."""
    if type(raw) is int:
        return inet_ntoa(raw.to_bytes(4, "big"))
    return str(ipaddress.ip_address(raw))


def addresses(pair: Any) -> tuple[str, str]:
    """Source and destination of an address pair, as text."""
    if type(pair) is int:
        return address(pair >> 32), address(pair & MASK32)
    return address(pair[0]), address(pair[1])


def call_id_of(key: Any) -> int:
    return key & 0xFFFF if type(key) is int else int(key[2])


class Waiting:
    """Tunnels that own the GRE key of one direction and wait for the other, by interface and address pair.

    A call whose control connection was seen (one call ID known, RFC 2637
    §2.7-2.8) is found first, the one waiting longest; then a GRE-only tunnel,
    the newest. Kept up to date by :meth:`Tracker.register` and friends.
    """

    __slots__ = ("_where", "by")

    def __init__(self) -> None:
        #: (interface, address pair) -> the tunnels waiting for GRE that way: id -> (tunnel, direction, controlled)
        self.by: dict[tuple[str, Any], dict[int, tuple[Tunnel, Direction, bool]]] = {}
        self._where: dict[int, tuple[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def find(self, iface: str, pair: Any) -> tuple[Tunnel, Direction] | None:
        """The tunnel that GRE from ``pair[0]`` to ``pair[1]`` with an unknown key belongs to, if any."""
        waiting = self.by.get((iface, pair))
        if not waiting:
            return None
        for t, d, controlled in waiting.values():
            if controlled:
                return (t, d)
        t, d, _ = next(reversed(waiting.values()))
        return (t, d)

    def drop(self, t: Tunnel) -> None:
        k = self._where.pop(t.id, None)
        if k is not None:
            waiting = self.by[k]
            del waiting[t.id]
            if not waiting:
                del self.by[k]

    def update(self, t: Tunnel, gre_only: bool, controlled: bool, pair: Any) -> None:
        """File ``t`` (client-to-server address ``pair``) where its missing call ID will be looked for."""
        self.drop(t)
        c, s = t.client.call_id, t.server.call_id
        if t.ended or (c is None) == (s is None) or not (gre_only or controlled):
            return
        # GRE to the server carries the server's call ID: the one missing is looked for that way
        k = (t.iface, pair) if s is None else (t.iface, reverse(pair))
        self.by.setdefault(k, {})[t.id] = (t, Direction.TO_SERVER if s is None else Direction.TO_CLIENT,
                                           controlled and not gre_only)
        self._where[t.id] = k


@dataclass(slots=True)
class Fresh:
    """First sightings of fresh keys in a batch, held in bulk (:meth:`Strays.hold`): what the per-packet path
    would keep of each, as columns over them, in capture order."""

    number: Any  # frame numbers
    ts: Any
    data: Any  # (buffers, which buffer, offset in it, length) of the frames
    linktype: int
    iface: str
    addr: Any  # source << 32 | destination (IPv4)
    call: Any  # GRE call IDs
    seq: Any  # sequence numbers, -1 for none
    ack: Any  # acknowledgment numbers, -1 for none
    start: Any  # where the PPP payload starts and ends
    end: Any
    plen: Any
    is_data: Any

    def __len__(self) -> int:
        return len(self.ts)

    def frames(self, rows: Any) -> list[bytes]:
        bufs, which, offs, lens = self.data
        return [bytes(bufs[w][a:a + n]) for w, a, n in zip(which[rows].tolist(), offs[rows].tolist(),
                                                            lens[rows].tolist(), strict=True)]

    def kept(self, rows: Any) -> Fresh:
        """Rows ``rows``, their frames copied out of the batch's buffer (which the next batch refills)."""
        lens = self.data[3][rows]
        offs = np.zeros(len(rows), dtype=np.int64)
        np.cumsum(lens[:-1], out=offs[1:])
        blob = b"".join(self.frames(rows))
        return Fresh(self.number[rows], self.ts[rows], ([blob], np.zeros(len(rows), dtype=np.int64), offs, lens),
                     self.linktype, self.iface, self.addr[rows], self.call[rows], self.seq[rows], self.ack[rows],
                     self.start[rows], self.end[rows], self.plen[rows], self.is_data[rows])

    def then(self, later: Fresh) -> Fresh:
        """These rows, then ``later``'s."""
        bufs, which, offs, lens = self.data
        b2, w2, o2, l2 = later.data
        cat = np.concatenate
        return Fresh(cat((self.number, later.number)), cat((self.ts, later.ts)),
                     ([*bufs, *b2], cat((which, w2 + len(bufs))), cat((offs, o2)), cat((lens, l2))),
                     self.linktype, self.iface, cat((self.addr, later.addr)), cat((self.call, later.call)),
                     cat((self.seq, later.seq)), cat((self.ack, later.ack)), cat((self.start, later.start)),
                     cat((self.end, later.end)), cat((self.plen, later.plen)), cat((self.is_data, later.is_data)))


class Strays:
    """GRE keys seen but not (yet) a tunnel, and the packets that never became one, by source.

    ``pending`` holds keys in the order they were first seen (their reserved
    tunnel ids grow with it); past :attr:`limit` the oldest goes. During a
    batch (:meth:`begin` to :meth:`end`) the first sightings of fresh keys that
    nothing else in the batch can touch wait in a queue of their own, numbered
    like the others, the oldest of both going first, and what is dropped is
    counted by source in one go at the end: the table, its order and the
    counts are what one packet at a time gives.
    """

    __slots__ = ("_carry", "_extra", "_fresh", "_gone", "_gone_ahead", "_head", "_log", "_marked", "_pairs",
                 "_rest", "_tids", "_vkeys", "_window", "limit", "overflowed", "pending")

    def __init__(self, limit: int) -> None:
        self.limit = limit  # pending keys at most
        self.overflowed = False  # a key was ever dropped for room: a flood
        #: (interface, key) -> (reserved tunnel id, held packets), oldest first
        self.pending: OrderedDict[tuple[str, Any], tuple[int, list[Held]]] = OrderedDict()
        #: (interface, address pair) -> its pending keys, oldest first
        self._pairs: dict[tuple[str, Any], dict[Any, None]] = {}
        #: this interval's stray packets by source: [packets, bytes, last key]
        self._window: dict[Any, list[Any]] = {}
        self._rest = [0, 0, 0]  # packets, bytes, sources of those past SOURCES_PER_INTERVAL
        self._fresh: Fresh | None = None  # this batch's first sightings held in bulk
        self._tids: list[int] = []  # their reserved tunnel ids, in order
        self._head = 0  # those before it were dropped
        #: those still pending when a batch ended, kept as they are while no one needs to look them up
        self._carry: Fresh | None = None
        #: (interface, key) -> row, for the rows a frame of this batch looks up (its key seen again)
        self._vkeys: dict[tuple[str, Any], int] = {}
        self._extra: dict[int, list[Held]] = {}  # row -> its packets after the first, once seen again
        self._gone: set[int] = set()  # rows that became a tunnel
        self._gone_ahead = 0  # of them, those not yet passed by the oldest
        self._marked: list[int] = []  # rows in _extra or _gone, in order
        #: what was dropped during the batch, in order: (first, last) ranges of the fresh ones; (source,
        #: packets, octets, time of the first, key) of others
        self._log: list[tuple[Any, ...]] = []

    # ------------------------------------------------------------------ arrival
    def unknown(self, tracker: StrayHost, number: int, ts: float, iface: str, linktype: int, data: bytes, key: Any,
                seq: int | None, ack: int | None, start: int, end: int,
                plen: int) -> tuple[Tunnel, Direction] | None:
        """A GRE packet whose key ``key`` no tunnel owns; its PPP payload is ``data[start:end]``.

        The other direction of a waiting call, or of a pending key (which becomes a GRE-only tunnel now), is
        returned with its tunnel: the caller accounts the packet. Otherwise the packet is held under its key
        (None) and its key becomes a tunnel at its next packets; a flood of random keys comes this far and
        no further: a few dict operations a packet.
        """
        st = tracker.stats
        st.gre_unknown += 1
        if self._carry is not None and self._fresh is None:
            self.settle(tracker)
        pair: Any
        back: Any
        if type(key) is int:
            pair = key >> 16
            back = ((pair & MASK32) << 32) | (pair >> 32)
        else:
            pair, back = (key[0], key[1]), (key[1], key[0])
        if (iface, pair) in tracker.waiting.by or (iface, back) in self._pairs:
            ent = self._answer(tracker, iface, key, pair, back)
            if ent is not None:
                return ent
        is_data = bool(plen) and start < end and ppp_header(data if end == len(data) else data[:end],
                                                             start)[0] in DATA_PROTOCOLS
        held: Held = (number, ts, linktype, data, seq, ack, start, end, plen, is_data)
        pk = (iface, key)
        pending = self.pending
        entry = pending.get(pk)
        row = self._held_row(pk) if entry is None else -1
        if entry is not None or row >= 0:
            if entry is not None:
                frames = entry[1]
                n, last = len(frames), frames[-1]
            else:
                later = self._extra.get(row)
                n, last = (1 + len(later), later[-1]) if later else (1, self._seq_ack(row))
            if n >= HELD or _continues(last, held):
                if self._promote(tracker, iface, key, row) is not None:
                    return tracker.gre_entry_of(iface, key)
                self._stray(tracker, key, [held])
            elif entry is not None:
                frames.append(held)
            else:
                if row not in self._extra:
                    insort(self._marked, row)
                self._extra.setdefault(row, []).append(held)
        else:
            tid = tracker.reserve_ids(1)  # a tunnel is numbered by its first packet, as before
            pending[pk] = (tid, [held])
            keys = self._pairs.get((iface, pair))
            if keys is None:
                self._pairs[(iface, pair)] = {key: None}
            else:
                keys[key] = None
            over = len(pending) + len(self._tids) - self._head - self._gone_ahead - self.limit
            if over > 0:
                self._drop(tracker, over)
        st.gre += 1  # what Tracker.gre_frame counts of a packet it accounts
        if is_data:
            st.gre_data += 1
        return None

    def _answer(self, tracker: StrayHost, iface: str, key: Any, pair: Any,
                back: Any) -> tuple[Tunnel, Direction] | None:
        """GRE from ``pair[0]`` to ``pair[1]`` with an unknown key: the other direction of a tunnel waiting
        for it, or of a key pending the other way (the newest: the two become one GRE-only tunnel now)."""
        waiting = tracker.waiting
        ent = waiting.find(iface, pair)
        if ent is None:
            keys = self._pairs.get((iface, back))
            if keys is None or self._promote(tracker, iface, next(reversed(keys))) is None:
                return None
            ent = waiting.find(iface, pair)
            if ent is None:
                return None
        t, d = ent
        (t.server if d is Direction.TO_SERVER else t.client).call_id = call_id_of(key)
        tracker.register(t)
        return ent

    def take(self, tracker: StrayHost, iface: str, key: Any) -> Tunnel | None:
        """Make pending ``key`` a tunnel now (an ICMP error quotes it, a control message names it); None when
        it is not pending or its address pair has its fill of GRE-only tunnels."""
        if self._carry is not None and self._fresh is None:
            self.settle(tracker)
        if (iface, key) not in self.pending:
            return None
        return self._promote(tracker, iface, key)

    def claim(self, tracker: StrayHost, iface: str, key: Any) -> None:
        """A tunnel has just taken ``key`` (a call reply named it): the packets held under it, which the capture
        saw before that, are the tunnel's, accounted now, where the message that binds them is."""
        if self._carry is not None and self._fresh is None:
            self.settle(tracker)
        if (iface, key) in self.pending:
            self._promote(tracker, iface, key)
        else:
            row = self._held_row((iface, key))
            if row >= 0:
                self._promote(tracker, iface, key, row)

    def _held_row(self, pk: tuple[str, Any]) -> int:
        """The bulk row that holds key ``pk`` (interface, key) as a first sighting still pending; -1 if none."""
        if not self._vkeys:
            return -1
        row = self._vkeys.get(pk, -1)
        return -1 if row < self._head or row in self._gone else row

    def __len__(self) -> int:
        """Keys pending, those held in bulk included."""
        return len(self.pending) + len(self._tids) - self._head - self._gone_ahead

    def _seq_ack(self, row: int) -> Held:
        """Bulk row ``row`` as far as :func:`_continues` reads it: its sequence and ack numbers."""
        f = self._fresh
        assert f is not None
        q, k = int(f.seq[row]), int(f.ack[row])
        return (0, 0.0, 0, b"", None if q < 0 else q, None if k < 0 else k, 0, 0, 0, False)

    def _row(self, row: int) -> list[Held]:
        """The packets held for bulk row ``row``: its first, from the columns, then those seen since."""
        f = self._fresh
        assert f is not None
        q, k = int(f.seq[row]), int(f.ack[row])
        first: Held = (int(f.number[row]), float(f.ts[row]), f.linktype, f.frames(np.array([row]))[0],
                       None if q < 0 else q, None if k < 0 else k, int(f.start[row]), int(f.end[row]),
                       int(f.plen[row]), bool(f.is_data[row]))
        return [first, *self._extra.get(row, ())]

    def _promote(self, tracker: StrayHost, iface: str, key: Any, row: int = -1) -> Tunnel | None:
        """The pending ``key`` (bulk row ``row``) as a GRE-only tunnel, its held packets replayed; None (its
        packets stray) when its address pair has its fill of them."""
        if row < 0:
            tid, frames = self.pending.pop((iface, key))
            self._unpair(iface, key)
        else:
            tid, frames = self._tids[row], self._row(row)
            self._vkeys.pop((iface, key), None)
            self._extra.pop(row, None)
            if row not in self._gone:
                self._gone.add(row)
                self._gone_ahead += 1
                i = bisect_left(self._marked, row)
                if i == len(self._marked) or self._marked[i] != row:
                    self._marked.insert(i, row)
        owner = tracker.gre_entry_of(iface, key)
        if owner is not None:
            # a tunnel has taken the key since its first packets were held (a call reply naming it, after GRE
            # the capture saw first; :meth:`claim`): they are that tunnel's. A GRE-only tunnel made of them
            # would take the key from it, and with it every later packet of the call.
            self._replay(tracker, iface, key, frames)
            return owner[0]
        pair = pair_of(key)
        if tracker.orphans_between(iface, unordered(pair)) >= tracker.limits.max_orphans_per_pair:
            self._stray(tracker, key, frames)
            return None
        src, dst = addresses(pair)
        t = tracker.gre_only(frames[0][1], iface, src, dst, call_id_of(key), tid)
        self._replay(tracker, iface, key, frames)
        return t

    @staticmethod
    def _replay(tracker: StrayHost, iface: str, key: Any, frames: list[Held]) -> None:
        """Account the held ``frames`` of ``key`` to the tunnel that owns it now (the counters counted them
        when they arrived)."""
        st = tracker.stats
        counted = st.gre, st.gre_data
        for number, ts, linktype, data, seq, ack, start, end, plen, _ in frames:
            ent = tracker.gre_entry_of(iface, key)
            if ent is None:
                break
            tracker.gre_frame(number, ts, iface, linktype, data, ent[0], ent[1], seq, ack, start, end, plen)
        st.gre, st.gre_data = counted

    def expire(self, tracker: StrayHost, before: float) -> None:
        """Keys whose last packet came before ``before`` (the idle timeout ago): their session is over and
        each becomes a GRE-only tunnel now, as at the end of the input, for the timeout to end; unless the
        table ever overflowed (a flood: they wait to be dropped)."""
        if self.overflowed:
            return
        if self._carry is not None and self._fresh is None:
            self.settle(tracker)
        stale = [(tid, iface, key, -1) for (iface, key), (tid, frames) in self.pending.items()
                 if frames[-1][1] < before]
        f = self._fresh
        if f is not None:
            for row in range(self._head, len(self._tids)):
                if row in self._gone:
                    continue
                later = self._extra.get(row)
                if (later[-1][1] if later else float(f.ts[row])) < before:
                    stale.append((self._tids[row], f.iface, (int(f.addr[row]) << 16) | int(f.call[row]), row))
        for _, iface, key, row in sorted(stale, key=lambda x: x[0]):
            self._promote(tracker, iface, key, row)

    def _drop(self, tracker: StrayHost, count: int) -> None:
        """The table is ``count`` keys over its bound: the oldest go, their packets stray."""
        self.overflowed = True
        pending, tids, marked = self.pending, self._tids, self._marked
        while count > 0:
            head = self._head
            if head < len(tids):
                oldest = next(iter(pending.values()))[0] if pending else tids[-1] + 1
                if tids[head] < oldest:  # bulk rows first, as many in a row as are older
                    nxt = marked[0] if marked else len(tids)
                    if nxt > head:
                        e = min(nxt, bisect_left(tids, oldest, head), head + count)
                        self._log.append((head, e))
                        self._head = e
                        count -= e - head
                        continue
                    marked.pop(0)
                    self._head = head + 1
                    if head in self._gone:
                        self._gone.discard(head)
                        self._gone_ahead -= 1
                        continue
                    later = self._extra.pop(head)
                    f = self._fresh
                    assert f is not None
                    key = (int(f.addr[head]) << 16) | int(f.call[head])
                    self._log.append((key >> 48, 1 + len(later), int(f.data[3][head]) + sum(len(h[3]) for h in later),
                                      float(f.ts[head]), key))
                    count -= 1
                    continue
            (iface, key), (_, frames) = pending.popitem(last=False)
            self._unpair(iface, key)
            self._stray(tracker, key, frames)
            count -= 1

    # ------------------------------------------------------------------ a batch's fresh keys in bulk
    def begin(self, fresh: Fresh, looked: dict[Any, int], carried: list[tuple[Any, int]]) -> None:
        """A batch starts whose first sightings ``fresh`` are held by :meth:`hold`, in capture order, after
        those carried over from the batch before; ``looked`` (key -> index in ``fresh``) and ``carried``
        (key, carried row) are those a later frame of the batch looks up."""
        carry = self._carry
        base = 0
        if carry is not None:
            self._carry = None
            base = len(carry)
            fresh = carry.then(fresh)
        else:
            self._tids = []
            self._extra = {}
            self._marked = []
        self._head = 0
        self._fresh = fresh
        iface = fresh.iface
        self._vkeys = {(iface, k): base + i for k, i in looked.items()}
        self._vkeys.update(((iface, k), r) for k, r in carried)

    def to_report(self) -> bool:
        """Whether packets strayed since the last summary."""
        return bool(self._window or self._rest[0] or self._log)

    def carried(self) -> Fresh | None:
        """The first sightings carried over from the batch before, not looked up since."""
        return self._carry

    def hold(self, tracker: StrayHost, lo: int, hi: int) -> None:
        """First sightings ``lo`` to ``hi`` of the batch, in a row: what :meth:`unknown` does with a fresh
        key nothing else in the batch touches (no tunnel waits for its addresses, no key the other way is
        pending or comes): number it, queue it, drop the oldest beyond the bound."""
        tid = tracker.reserve_ids(hi - lo)
        self._tids.extend(range(tid, tid + hi - lo))
        over = len(self.pending) + len(self._tids) - self._head - self._gone_ahead - self.limit
        if over > 0:
            self._drop(tracker, over)

    def end(self, tracker: StrayHost) -> None:
        """The batch is over: what was dropped is counted; the first sightings still pending are carried
        over (their frames copied), as they are."""
        fresh = self._fresh
        if fresh is None:
            return
        self._count_log(tracker)
        head, tids, gone = self._head, self._tids, self._gone
        rows = [r for r in range(head, len(tids)) if r not in gone] if gone else list(range(head, len(tids)))
        if rows:
            self._carry = fresh.kept(np.asarray(rows))
            self._tids = [tids[r] for r in rows]
            new = {r: i for i, r in enumerate(rows)} if self._extra else {}
            self._extra = {new[r]: v for r, v in self._extra.items()}
            self._marked = sorted(self._extra)
        else:
            self._tids = []
            self._extra = {}
            self._marked = []
        self._gone = set()
        self._gone_ahead = 0
        self._vkeys = {}
        self._head = 0
        self._fresh = None

    def settle(self, tracker: StrayHost) -> None:
        """The first sightings carried over join the table (someone is to look keys up), in their order."""
        carry = self._carry
        if carry is None:
            return
        self._carry = None
        tids = self._tids
        self._tids = []
        idx = np.arange(len(carry))
        keys = [(a << 16) | c for a, c in zip(carry.addr.tolist(), carry.call.tolist(), strict=True)]
        held = [
            (n, ts, carry.linktype, f, None if q < 0 else q, None if k < 0 else k, s, e, pl, dt)
            for n, ts, f, q, k, s, e, pl, dt in zip(
                carry.number.tolist(), carry.ts.tolist(), carry.frames(idx), carry.seq.tolist(),
                carry.ack.tolist(), carry.start.tolist(), carry.end.tolist(), carry.plen.tolist(),
                carry.is_data.tolist(), strict=True)
        ]
        extra, self._extra, self._marked = self._extra, {}, []
        iface = carry.iface
        new = [((iface, key), (tid, [h, *extra.get(r, ())]))
               for r, (tid, key, h) in enumerate(zip(tids, keys, held, strict=True))]
        pending = self.pending
        # keys held one at a time since may be newer than some of these: merged in their order
        tail: list[tuple[tuple[str, Any], tuple[int, list[Held]]]] = []
        while pending and next(reversed(pending.values()))[0] > tids[0]:
            tail.append(pending.popitem(last=True))
        if tail:
            tail.reverse()
            new = sorted([*tail, *new], key=_tid)
        pending.update(new)
        # and by address pair, oldest first too
        by_pair: dict[Any, list[tuple[int, Any]]] = {}
        for tid, key in zip(tids, keys, strict=True):
            by_pair.setdefault(key >> 16, []).append((tid, key))
        pairs = self._pairs
        for pair, items in by_pair.items():
            pk = (iface, pair)
            ks = pairs.get(pk)
            if ks is None:
                pairs[pk] = dict.fromkeys(k for _, k in items)
                continue
            later: list[tuple[int, Any]] = []
            while ks:
                k = next(reversed(ks))
                t = pending[(iface, k)][0]
                if t < items[0][0]:
                    break
                later.append((t, k))
                del ks[k]
            ks.update(dict.fromkeys(k for _, k in sorted([*later, *items])))

    def _count_log(self, tracker: StrayHost) -> None:
        """Count what was dropped during the batch, in the order it was, as :meth:`_count` would one by one."""
        log, fresh = self._log, self._fresh
        if not log or fresh is None:
            return
        self._log = []
        order: list[int] = []
        others: list[tuple[Any, ...]] = []
        base = len(fresh.ts)
        for item in log:
            if len(item) == 2:
                order.extend(range(item[0], item[1]))
            else:
                order.append(base + len(others))
                others.append(item)
        at = np.asarray(order)
        src = np.concatenate((fresh.addr >> np.uint64(32), np.array([o[0] for o in others], dtype=np.uint64)))[at]
        n = np.concatenate((np.ones(base, dtype=np.int64), np.array([o[1] for o in others], dtype=np.int64)))[at]
        size = np.concatenate((fresh.data[3], np.array([o[2] for o in others], dtype=np.int64)))[at]
        tracker.stats.gre_unknown_dropped += int(n.sum())

        def key(i: int) -> Any:
            j = int(at[i])
            return (int(fresh.addr[j]) << 16) | int(fresh.call[j]) if j < base else others[j - base][4]

        uniq, first_at, inv = np.unique(src, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        counts = np.bincount(inv, weights=n).astype(np.int64)
        sizes = np.bincount(inv, weights=size).astype(np.int64)
        last = len(src) - 1 - np.unique(src[::-1], return_index=True)[1]  # each source's last one
        ranked = np.argsort(first_at, kind="stable")  # sources in the order they first strayed
        window, rest = self._window, self._rest
        k = 0
        while k < len(ranked) and len(window) < SOURCES_PER_INTERVAL:
            u = int(ranked[k])
            self._tally(int(uniq[u]), int(counts[u]), int(sizes[u]), key(int(last[u])))
            k += 1
        if k == len(ranked):
            return
        left = ranked[k:]  # the window is full: the sources in it count there, the others together
        inside = np.isin(uniq[left], np.fromiter((x for x in window if type(x) is int), dtype=np.uint64))
        for u in left[inside].tolist():
            self._tally(int(uniq[u]), int(counts[u]), int(sizes[u]), key(int(last[u])))
        out = left[~inside]
        rest[0] += int(counts[out].sum())
        rest[1] += int(sizes[out].sum())
        rest[2] += int(np.bincount(inv, minlength=len(uniq))[out].sum())  # as _count counts them: once a stray

    def _tally(self, src: Any, n: int, size: int, key: Any) -> None:
        w = self._window.get(src)
        if w is None:
            self._window[src] = [n, size, key]
        else:
            w[0] += n
            w[1] += size
            w[2] = key

    def _unpair(self, iface: str, key: Any) -> None:
        k = (iface, pair_of(key))
        keys = self._pairs[k]
        del keys[key]
        if not keys:
            del self._pairs[k]

    # ------------------------------------------------------------------ what never became a tunnel
    def _stray(self, tracker: StrayHost, key: Any, frames: list[Held]) -> None:
        n = len(frames)
        src = key >> 48 if type(key) is int else key[0]
        size = len(frames[0][3]) if n == 1 else sum(len(f[3]) for f in frames)
        if self._fresh is not None and type(key) is int:
            self._log.append((src, n, size, frames[0][1], key))  # counted with the batch's, in order
            return
        self._count_log(tracker)
        self._count(tracker, src, n, size, key)

    def _count(self, tracker: StrayHost, src: Any, n: int, size: int, key: Any) -> None:
        """``n`` packets of ``size`` octets in all of ``key`` from ``src`` stray."""
        tracker.stats.gre_unknown_dropped += n
        w = self._window.get(src)
        if w is not None:
            w[0] += n
            w[1] += size
            w[2] = key
            return
        if len(self._window) < SOURCES_PER_INTERVAL:
            self._window[src] = [n, size, key]
        else:
            rest = self._rest
            rest[0] += n
            rest[1] += size
            rest[2] += 1  # a source with several strays counts once a stray here: an upper bound

    def flush(self, tracker: StrayHost, now: float, since: float, final: bool = False) -> None:
        """Close the interval that began at ``since``: an ``unknown-gre`` event for each of the busiest
        sources and one for the rest, and the run's count by source.

        At the end of the input (``final``) the keys still pending are what the capture showed of their
        sessions: each becomes a GRE-only tunnel, unless the table ever overflowed (a flood: they stray).
        """
        self._count_log(tracker)
        if final:
            self.settle(tracker)
            while self.pending:
                iface, key = next(iter(self.pending))
                if not self.overflowed:
                    self._promote(tracker, iface, key)
                    continue
                _, frames = self.pending.pop((iface, key))
                self._unpair(iface, key)
                self._stray(tracker, key, frames)
        if not self._window and not self._rest[0]:
            return
        kept = tracker.stats.gre_unknown_sources
        rest = self._rest
        if rest[0]:
            kept[OTHER] += rest[0]
        ranked = sorted(self._window.items(), key=lambda kv: kv[1][0], reverse=True)
        for i, (src, (packets, size, key)) in enumerate(ranked):
            name = address(src)
            kept[name if name in kept or len(kept) < SOURCES_KEPT else OTHER] += packets
            if i < LINES_PER_INTERVAL:
                tracker.emit(Event(now, EventKind.UNKNOWN_GRE, None, detail={
                    "source": name, "sources": 1, "destination": addresses(pair_of(key))[1],
                    "call_id": call_id_of(key), "packets": packets, "bytes": size, "since": since}))
            else:
                rest[0] += packets
                rest[1] += size
                rest[2] += 1
        if rest[0]:
            tracker.emit(Event(now, EventKind.UNKNOWN_GRE, None, detail={
                "source": None, "sources": rest[2], "destination": None, "call_id": None, "packets": rest[0],
                "bytes": rest[1], "since": since}))
        self._window = {}
        self._rest = [0, 0, 0]


def _tid(item: tuple[Any, tuple[int, Any]]) -> int:
    return item[1][0]


def _continues(first: Held, second: Held) -> bool:
    """Whether ``second`` continues ``first`` as one sender's packets do: sequence numbers a little ahead,
    or, for acknowledgments alone, acks a little ahead (RFC 2637 §4.3); a random call ID's do not."""
    s1, s2 = first[4], second[4]
    if s1 is not None and s2 is not None:
        return 0 < (s2 - s1) & MASK32 <= SEQ_NEAR
    a1, a2 = first[5], second[5]
    return s1 is None and s2 is None and a1 is not None and a2 is not None and (a2 - a1) & MASK32 <= SEQ_NEAR
