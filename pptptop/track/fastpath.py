"""The data plane, a batch at a time: GRE data of open tunnels counted with numpy (the body of
``Tracker.feed_batch``, acting on the tracker through :class:`BatchHost`).

Almost every packet of a PPTP capture is GRE data (MPPE, or ack-only) of a
tunnel already in the data phase. For those, the tracker only counts: packets,
bytes, rates, sequence numbers, acks, its newest packet. This module does
that for a whole :class:`~pptptop.wire.Batch` with array operations
over what :func:`pptptop.decode.lanes.gre_lanes` decodes of every frame's
headers, looks each GRE key up once, and hands every other frame, in order,
to :meth:`Tracker.feed` (the per-packet path). The result
is the same as feeding every frame one by one, but for the ring of recent data
packets, which gets the newest of each batch (a sample); only the cost differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pptptop.decode.lanes import gre_lanes
from pptptop.decode.ppp import DATA_PROTOCOLS
from pptptop.track.model import Direction, DirectionStats, Phase, Tunnel
from pptptop.track.unknown import Fresh, StrayHost, Strays
from pptptop.wire import LINKTYPE_ETHERNET, Batch

MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1
DATA_CODES = np.array(sorted(DATA_PROTOCOLS), dtype=np.int64)
SPLIT_MIN = 4096  # a batch this big whose frames mostly need the per-frame path is fed in halves
SLOW_MIN = 64  # after a frame that may rebind a GRE key, at least this many frames go one by one
SLOW_MAX = 4096
SLOW_CHUNK = 4096  # frames of the per-frame path whose columns are plain lists at once (_slow)
ETHERTYPE_IPV4, ETHERTYPE_IPV6 = 0x0800, 0x86DD
VLAN_TAGS = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad (QinQ), and the older QinQ tag
IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_GRE = 4, 6, 17, 47
U64_8, U64_16, U64_24, U64_32 = np.uint64(8), np.uint64(16), np.uint64(24), np.uint64(32)


class BatchHost(StrayHost, Protocol):
    """What the batch path needs of the tracker whose ``feed_batch`` it is, besides :class:`StrayHost`: its GRE
    index, clock and per-frame path."""

    now: float
    last_tick: float
    gre_index: dict[str, dict[Any, tuple[Tunnel, Direction]]]  # iface -> GRE key -> (tunnel, direction)
    seq_done: set[int]  # frames whose GRE sequence numbers this path analysed: the per-frame path skips them
    strays: Strays

    def feed(self, number: int, ts: float, iface: str, linktype: int, data: bytes) -> None:
        """One frame, the per-frame path."""

    def feed_gre(self, number: int, ts: float, iface: str, linktype: int, data: bytes, key: Any,
                 seq: int | None, ack: int | None, start: int, end: int, plen: int) -> None:
        """One enhanced GRE frame whose headers the caller decoded."""

    def clock(self, ts: float) -> None:
        """Capture time reached ``ts``."""

    def tick(self, now: float) -> None:
        """Run the timeouts at ``now``."""

    def sequence(self, ds: DirectionStats, seq: int) -> None:
        """One GRE sequence number in arrival order."""


def feed_batch(tracker: BatchHost, batch: Batch, first_number: int) -> None:
    """Feed every frame of ``batch``; frame ``i`` is number ``first_number + i``.

    A frame that may give a known GRE key to another tunnel ends a vectorised run (:func:`_first_rebind`):
    the frames after it are decoded and looked up again. Where such frames are dense, as in a reconnect
    storm's handshakes, that would decode the rest of the batch again for every few frames; so after each
    cut the next ``slow`` frames go one by one (what :meth:`Tracker.feed` does anyway), ``slow`` doubling
    while cuts keep coming early and halving when a run goes far, and a vectorised run after a cut looks
    at no more than ``8 * slow`` frames: the work stays linear in the batch, whatever its shape.
    """
    n = len(batch)
    start, slow, cut_seen = 0, SLOW_MIN, False
    while start < n:
        end = min(n, start + 8 * slow) if cut_seen else n
        part = batch if start == 0 and end == n else batch.part(start, end)
        done = _feed_run(tracker, part, first_number + start)
        start += done
        if start == end:  # no cut
            if cut_seen and done >= 4 * slow:
                slow = max(SLOW_MIN, slow // 2)
            continue
        if cut_seen and done < slow:  # cuts keep coming early: longer stretches one by one
            slow = min(SLOW_MAX, slow * 2)
        cut_seen = True
        stop = min(n, start + slow)
        _slow(tracker, batch, np.arange(start, stop), first_number)
        start = stop


def _feed_run(tracker: BatchHost, batch: Batch, first_number: int) -> int:
    """Feed ``batch`` vectorised up to its first frame that may rebind a GRE key (that frame included);
    return how many frames were fed (``len(batch)`` when none may)."""
    n = len(batch)
    if n == 0:
        return 0
    ifaces = batch.ifaces
    lanes = gre_lanes(batch)
    if lanes is None:
        _slow(tracker, batch, np.arange(n), first_number)
        return n
    ci, inv, by_key, keys_addr, keys_call, has_seq, has_ack, plen, is_data, length_ok, has_ppp, s42 = lanes
    # GRE key (src, dst, call ID) and interface → tunnel, once per distinct key
    ents: list[tuple[Tunnel, Direction] | None] = []
    ok_group = np.zeros(len(keys_addr), dtype=bool)
    known_group = np.zeros(len(keys_addr), dtype=bool)
    tapped = np.zeros(len(keys_addr), dtype=bool)  # a tunnel someone looks inside: every packet, one by one
    guessed = np.zeros(len(keys_addr), dtype=bool)  # a GRE-only tunnel whose roles its negotiation may swap
    if not tracker.gre_index:
        if n >= SPLIT_MIN and (ci is not None or len(keys_addr) < n):
            half = n // 2  # no tunnel yet: the first half may create them (frames other than GRE, or a key
            # seen twice), so that the second half can take the fast path
            feed_batch(tracker, batch.part(0, half), first_number)
            feed_batch(tracker, batch.part(half, n), first_number + half)
            return n
        ents = [None] * len(keys_addr)
    else:
        ents = [None] * len(keys_addr)
        # per group in plain lists (a numpy element read or write costs as much as the rest of the loop)
        calls, addrs, indexes = keys_call.tolist(), keys_addr.tolist(), tracker.gre_index
        tap_g, guess_g, ok_g, known_g = [], [], [], []
        data_phase = Phase.DATA
        for g in _maybe_known(tracker, batch, keys_addr, keys_call):
            b = calls[g]
            index = indexes.get(ifaces[b >> 16][0])
            ent = index.get((addrs[g] << 16) | (b & 0xFFFF)) if index else None
            ents[g] = ent
            if ent is not None:
                t = ent[0]
                known_g.append(g)
                if t.tap is not None:
                    tap_g.append(g)
                elif t.phase is data_phase and not t.ended:
                    ok_g.append(g)
                if t.roles_guessed:
                    guess_g.append(g)
        known_group[known_g] = True
        tapped[tap_g] = True
        guessed[guess_g] = True
        ok_group[ok_g] = True
    unknown = _unknown(tracker, batch, lanes, known_group, first_number)
    if ci is None:
        ci = np.arange(n)
    dataish = (plen == 0) | is_data
    ok = ok_group[inv] & length_ok & dataish
    known = known_group[inv]
    if n >= SPLIT_MIN and (dataish & known & ~ok & ~tapped[inv]).sum() > n // 4:
        # many data frames of tunnels not yet in the data phase: the first half's negotiation will
        # get them there, so the second half can take the fast path (frames of keys no tunnel owns cannot
        # get there in bulk: splitting for them would only decode the batch again and again)
        half = n // 2
        feed_batch(tracker, batch.part(0, half), first_number)
        feed_batch(tracker, batch.part(half, n), first_number + half)
        return n
    cut = _first_rebind(batch, ci, known, ok, guessed[inv], keys_addr[known_group])
    if cut is not None:
        # a frame that may give a GRE key known now to another tunnel (or the other direction): the frames
        # after it are looked up again, as Tracker.feed would find them
        feed_batch(tracker, batch.part(0, cut + 1), first_number)  # no frame of it may rebind (cut is the first)
        return cut + 1
    # sequence numbers of every frame of a known tunnel that holds them, data phase or not
    known &= has_ppp
    if known.any():
        group, order, (seqack, s_flag, a_flag) = _restrict(known, inv, by_key, s42, has_seq, has_ack)
        _sequences(tracker, group, order, ents, seqack, s_flag, a_flag)
        # the per-frame path must not analyse these frames' sequence numbers again
        tracker.seq_done.update((ci[known & ~ok] + first_number).tolist())
    group, order, (fast, payload, data) = _restrict(ok, inv, by_key, ci, plen, is_data)
    if len(fast):
        _count(tracker, batch, fast, group, order, ents, payload, data, first_number)
    slow_mask = np.ones(n, dtype=bool)
    slow_mask[fast] = False
    _slow(tracker, batch, np.nonzero(slow_mask)[0], first_number, unknown)
    ts = batch.ts
    tmax = float(ts.max())
    if tmax > tracker.now:
        if tracker.stats.first_ts is None:
            tracker.stats.first_ts = float(ts.min())
        tracker.now = tracker.stats.last_ts = tmax
        if tmax - tracker.last_tick >= 1.0:
            tracker.tick(tmax)
    return n


def _first_rebind(batch: Batch, ci: Any, known: Any, ok: Any, guessed: Any, known_addr: Any) -> int | None:
    """The first frame of the batch, before the last frame of a GRE key a tunnel owns (``known``, over the
    GRE candidates ``ci``), that may change who owns such a key; None if there is none.

    Only the per-frame path changes the GRE index, and a key known at the start of the batch changes hands
    only between the two addresses it joins: a call's control message (Outgoing/Incoming-Call-Request and
    -Reply take a call ID over; Set-Link-Info, Call-Clear-Request and the other call-level messages bind a
    GRE-only tunnel, which may swap its roles), or a GRE-only tunnel's own negotiation swapping its roles
    (``guessed``). So these frames stop the vectorised run: TCP and GRE that it does not take between the
    addresses of a known key, a guessed tunnel's frames it does not count, and what it cannot read the
    addresses of (ICMP errors quote any packet, IP in IP, VLAN tags, other link types).
    """
    pos = np.arange(len(known)) if ci is None else ci
    kpos = pos[known]
    if not len(kpos):
        return None
    last = int(kpos[-1])
    first: list[int] = []
    swap = pos[known & ~ok & guessed]
    if len(swap) and swap[0] < last:
        first.append(int(swap[0]))
    if ci is not None:
        other = np.ones(last, dtype=bool)
        other[ci[ci < last]] = False
        idx = np.flatnonzero(other)
        if len(idx):
            hit = idx[_may_rebind(batch, idx, known_addr)]
            if len(hit):
                first.append(int(hit[0]))
    return min(first) if first else None


def _may_rebind(batch: Batch, idx: Any, known_addr: Any) -> Any:
    """Of frames ``idx`` (none a GRE candidate), those that may change who owns a GRE key between the
    addresses ``known_addr`` (source << 32 | destination) for :func:`_first_rebind`."""
    octets = np.frombuffer(batch.buf, dtype=np.uint8)
    top = len(octets) - 1
    offs = batch.offsets[idx]
    lens = batch.lengths[idx]

    def at(k: int) -> Any:
        return octets[np.minimum(offs + k, top)].astype(np.uint64)

    linktypes = np.array([lt for _, lt in batch.ifaces])
    eth = (linktypes[0] if batch.ifidx is None else linktypes[batch.ifidx[idx]]) == LINKTYPE_ETHERNET
    etype = (at(12) << U64_8) | at(13)
    ipv4 = eth & (etype == ETHERTYPE_IPV4) & (lens >= 34)
    proto = at(23)
    src = (at(26) << U64_24) | (at(27) << U64_16) | (at(28) << U64_8) | at(29)
    dst = (at(30) << U64_24) | (at(31) << U64_16) | (at(32) << U64_8) | at(33)
    pair = np.minimum((src << U64_32) | dst, (dst << U64_32) | src)
    known = np.minimum(known_addr, (known_addr << U64_32) | (known_addr >> U64_32))
    own = ipv4 & np.isin(proto, (IPPROTO_TCP, IPPROTO_GRE)) & np.isin(pair, known)
    unread = ipv4 & ~np.isin(proto, (IPPROTO_TCP, IPPROTO_GRE, IPPROTO_UDP))  # ICMP, IP in IP, ...
    v4_in_v6 = eth & (etype == ETHERTYPE_IPV6) & (at(20) == IPPROTO_IPIP)
    return own | unread | v4_in_v6 | ~eth | (eth & np.isin(etype, VLAN_TAGS))


def _maybe_known(tracker: BatchHost, batch: Batch, keys_addr: Any, keys_call: Any) -> list[int]:
    """The groups whose key a tunnel may own: all of them, but when a batch has many more distinct keys than
    the tunnels own (a flood of call IDs), those that pass a hash of the owned ones (no false negatives)."""
    ng = len(keys_addr)
    ifidx = batch.ifidx
    index = tracker.gre_index.get(batch.ifaces[0 if ifidx is None else int(ifidx[0])][0]) or {}
    if ng <= 64 + 4 * len(index) or (ifidx is not None and bool((ifidx != ifidx[0]).any())):
        return list(range(ng))
    owned = [k for k in index if type(k) is int]
    if not owned:
        return []
    h = np.array([(k >> 16) * 65537 + (k & 0xFFFF) & MASK64 for k in owned], dtype=np.uint64)
    return np.flatnonzero(np.isin(keys_addr * np.uint64(65537) + (keys_call & 0xFFFF).astype(np.uint64), h)).tolist()


def _restrict(mask: Any, group: Any, order: Any, *cols: Any) -> tuple[Any, Any, list[Any]]:
    """The frames in ``mask``: their ``group``, ``order`` (a stable sort of all frames by group) restricted
    to them as indices among them, and each of ``cols``; no copies when the mask holds every frame."""
    if mask.all():
        return group, order, list(cols)
    return group[mask], (np.cumsum(mask) - 1)[order[mask[order]]], [c[mask] for c in cols]


def _columns(batch: Batch, idx: Any) -> tuple[list[int], list[float], list[int], list[int], list[int]]:
    """Frames ``idx`` of the batch as plain lists: their indices, times, starts, ends and interfaces."""
    starts = batch.offsets[idx]
    which = [0] * len(idx) if batch.ifidx is None else batch.ifidx[idx].tolist()
    return (idx.tolist(), batch.ts[idx].tolist(), starts.tolist(), (starts + batch.lengths[idx]).tolist(),
            which)


def _slow(tracker: BatchHost, batch: Batch, idx: Any, first_number: int, unknown: Unknown | None = None) -> None:
    """Frames ``idx`` of the batch, in order, one at a time; but GRE of keys no tunnel owns (``unknown``)
    goes to the tracker with its headers decoded, and first sightings of fresh keys are held in bulk
    (track/unknown.py).

    The frames' columns are made plain lists :data:`SLOW_CHUNK` frames at a time: a file's batch holds up to
    128k frames, and lists of all of them at once (a few small objects a frame) made the allocator's pools
    grow by tens of MB, which the tunnels' own small objects, made meanwhile, then kept from being freed.
    """
    feed = tracker.feed
    buf = batch.buf
    ifaces = batch.ifaces
    if unknown is None:
        for lo in range(0, len(idx), SLOW_CHUNK):
            for i, ts, off, end, k in zip(*_columns(batch, idx[lo:lo + SLOW_CHUNK]), strict=True):
                name, lt = ifaces[k]
                feed(first_number + i, ts, name, lt, bytes(buf[off:end]))
        return
    ts_all = batch.ts[idx]
    decoded = unknown.decoded
    gre = tracker.feed_gre
    cols = unknown.fresh
    strays = tracker.strays
    runs: Iterator[tuple[int, int]] = iter(())
    if cols is not None:
        strays.begin(cols, unknown.looked, unknown.carried)
        held = unknown.held[idx]
        # runs of first sightings in a row are held together; the clock moves as Tracker.feed moves it
        edges = np.flatnonzero(np.diff(np.concatenate(([0], held.view(np.int8), [0])))).tolist()
        runs = iter(zip(edges[::2], edges[1::2], strict=True))
    run = next(runs, None)
    j = 0
    pos = 0
    n = len(idx)
    base = -SLOW_CHUNK  # the columns below are those of frames base... (none yet)
    ids, tss, starts_l, ends, which = _columns(batch, idx[:0])
    while pos < n:
        if run is not None and pos == run[0]:
            lo, hi = run
            # the frame whose time ticks the clock, if one does, ends the run
            top = float(ts_all[lo:hi].max())
            if top > tracker.now and top - tracker.last_tick >= 1.0:
                ticks = np.flatnonzero((ts_all[lo:hi] > tracker.now) & (ts_all[lo:hi] - tracker.last_tick >= 1.0))
                hi = lo + max(1, int(ticks[0]))  # the frames before it, or it alone
                run = (hi, run[1]) if hi < run[1] else next(runs, None)
                top = float(ts_all[lo:hi].max())
            else:
                run = next(runs, None)
            tracker.clock(top)
            strays.hold(tracker, j, j + hi - lo)
            j += hi - lo
            pos = hi
            continue
        stop = run[0] if run is not None else n
        for p in range(pos, stop):
            if p - base >= SLOW_CHUNK:
                base = p
                ids, tss, starts_l, ends, which = _columns(batch, idx[p:p + SLOW_CHUNK])
            q = p - base
            i = ids[q]
            off = starts_l[q]
            name, lt = ifaces[which[q]]
            d = decoded.get(i)
            if d is None:
                feed(first_number + i, tss[q], name, lt, bytes(buf[off:ends[q]]))
            else:
                gre(first_number + i, tss[q], name, lt, bytes(buf[off:ends[q]]), *d)
        pos = stop
    if cols is not None:
        strays.end(tracker)
        # what Tracker.feed and Strays.unknown count of each
        st = tracker.stats
        st.frames += j
        st.bytes += int(cols.data[3].sum())
        st.ip += j
        st.gre += j
        st.gre_unknown += j
        st.gre_data += int(cols.is_data.sum())


@dataclass(slots=True)
class Unknown:
    """The frames of a batch whose GRE key no tunnel owned when it began."""

    #: batch frame -> (index key, sequence, ack, start and end of the PPP payload, GRE payload length), as
    #: Tracker.feed would decode them
    decoded: dict[int, tuple[Any, ...]]
    held: Any = None  # over the batch's frames: first sightings of fresh keys, held in bulk
    fresh: Fresh | None = None  # their columns
    looked: dict[Any, int] = field(default_factory=dict)  # of them, those seen again in the batch: key -> index
    carried: list[tuple[Any, int]] = field(default_factory=list)  # keys carried over seen again: (key, row)


def _unknown(tracker: BatchHost, batch: Batch, lanes: Any, known: Any, first_number: int) -> Unknown | None:
    """The batch's frames of keys no tunnel owns, their headers decoded; and of them those that are the
    first sighting of a fresh key nothing else in the batch can touch: :meth:`Strays.unknown` would only
    hold each under its key (track/unknown.py), so they are held in bulk.

    That is a frame of a key no tunnel owns and no other frame of the batch carries, not pending, whose
    address pair no tunnel waits for, with no key pending or coming the other way between its addresses;
    and every frame of the batch is Ethernet/IPv4/enhanced GRE on one interface (anything else, a control
    message or an ICMP error, could name any key).
    """
    ci, inv, _, keys_addr, keys_call, has_seq, has_ack, plen, _, _, _, s42 = lanes
    unknown = ~known[inv]
    if not unknown.any():
        return None
    frames = np.arange(len(batch)) if ci is None else ci
    offs, lens = batch.offsets[frames], batch.lengths[frames]
    octets = np.frombuffer(batch.buf, dtype=np.uint8)
    top = len(octets) - 1
    total = (octets[np.minimum(offs + 16, top)].astype(np.int64) << 8) | octets[np.minimum(offs + 17, top)]
    p = 42 + 4 * (has_seq + has_ack)
    # what Tracker.feed takes from the headers itself: a whole GRE header within the frame and the IP datagram
    unknown &= (lens >= p) & ((total == 0) | (total + 14 >= p))
    if not unknown.any():
        return None
    addr = keys_addr[inv]
    call = keys_call[inv] & 0xFFFF
    end = np.minimum(p + plen, np.where(total == 0, lens, np.minimum(total + 14, lens)))
    seq = np.where(has_seq == 1, (s42 >> 32) & MASK32, -1)
    ack = np.where(has_ack == 0, -1, np.where(has_seq == 1, s42 & MASK32, (s42 >> 32) & MASK32))
    out = Unknown({})
    ifidx = batch.ifidx
    cand = None
    strays = tracker.strays
    carry = strays.carried()
    if ci is None and (ifidx is None or not bool((ifidx != ifidx[0]).any())):
        back = (addr << np.uint64(32)) | (addr >> np.uint64(32))
        name, linktype = batch.ifaces[0 if ifidx is None else int(ifidx[0])]
        if carry is not None and ((carry.iface, carry.linktype) != (name, linktype)
                                  or np.isin(back[unknown], carry.addr).any()):
            strays.settle(tracker)  # a frame of this batch answers one of them, or another interface
            carry = None
        # the first frame of each key; the later ones look it up, one at a time
        first = np.zeros(len(inv), dtype=bool)
        first[np.unique(inv, return_index=True)[1]] = True
        cand = unknown & first & ~np.isin(back, addr[unknown])
        carried: list[tuple[Any, int]] = []
        if carry is not None:
            hashes = _hash(addr, call)
            again = unknown & np.isin(hashes, _hash(carry.addr, carry.call))
            if again.any():  # keys carried over from the batch before, seen again
                rows = {h: r for r, h in enumerate(_hash(carry.addr, carry.call).tolist())}
                carried = [((int(a) << 16) | int(c), rows[h]) for a, c, h in
                           zip(addr[again].tolist(), call[again].tolist(), hashes[again].tolist(), strict=True)]
                cand &= ~again
        pending = [k for i, k in strays.pending if i == name and type(k) is int]
        if pending:
            pa = np.array([k >> 16 for k in pending], dtype=np.uint64)
            pc = np.array([k & 0xFFFF for k in pending], dtype=np.uint64)
            cand &= ~np.isin(_hash(addr, call), _hash(pa, pc))
            cand &= ~np.isin(back, pa)
        waiting = [pr for i, pr in tracker.waiting.by if i == name and type(pr) is int]
        if waiting:
            cand &= ~np.isin(addr, np.array(waiting, dtype=np.uint64))
        if cand.any():
            f = np.flatnonzero(cand)
            out.held = cand
            out.fresh = Fresh(f + first_number, batch.ts[f], ([batch.buf], np.zeros(len(f), dtype=np.int64),
                                                              offs[f], lens[f]), linktype, name,
                              addr[f], call[f], seq[f], ack[f], p[f], end[f], plen[f],
                              _carries_data(octets, offs[f] + p[f], end[f] - p[f], plen[f]))
            # keys seen again later in the batch: their first sighting is looked up then
            twice = np.bincount(inv)[inv[f]] > 1
            out.looked = {(int(a) << 16) | int(c): i for a, c, i in zip(
                addr[f][twice].tolist(), call[f][twice].tolist(), np.flatnonzero(twice).tolist(), strict=True)}
            out.carried = carried
            unknown &= ~cand
        elif carried:
            strays.settle(tracker)  # nothing held in bulk: looked up one at a time
    rest = np.flatnonzero(unknown)
    if len(rest):
        keys = ((addr[rest].astype(object) << 16) | call[rest]).tolist()
        out.decoded = {
            i: (k, None if q < 0 else q, None if a < 0 else a, s, e, n)
            for i, k, q, a, s, e, n in zip(frames[rest].tolist(), keys, seq[rest].tolist(), ack[rest].tolist(),
                                           p[rest].tolist(), end[rest].tolist(), plen[rest].tolist(), strict=True)
        }
    return out


def _hash(addr: Any, call: Any) -> Any:
    """One number for an IPv4 GRE key (address pair, call ID): equal keys, equal numbers."""
    return addr * np.uint64(65537) + call.astype(np.uint64)


def _carries_data(octets: Any, at: Any, avail: Any, plen: Any) -> Any:
    """Whether the PPP frame of ``avail`` octets at ``at`` is data, as :func:`pptptop.decode.ppp.ppp_header`
    reads it (Address/Control and Protocol, both compressible, RFC 1661 §6.5-6.6)."""
    top = len(octets) - 1
    b0, b1, b2, b3 = (octets[np.minimum(at + k, top)].astype(np.int64) for k in range(4))
    acf = (b0 == 0xFF) & (b1 == 0x03) & (avail >= 2)
    pb = np.where(acf, b2, b0)
    left = np.where(acf, avail - 2, avail)
    odd = (pb & 1) == 1
    proto = np.where(odd, pb, (pb << 8) | np.where(acf, b3, b1))
    valid = np.where(odd, left >= 1, left >= 2) & ~((b0 == 0xFF) & (avail < 2))
    return (plen > 0) & (avail > 0) & valid & np.isin(proto, DATA_CODES)


def _count(
    tracker: BatchHost,
    batch: Batch,
    fast: Any,
    group: Any,
    order: Any,
    ents: list[tuple[Tunnel, Direction] | None],
    plen: Any,
    is_data: Any,
    first_number: int,
) -> None:
    """Apply the counts of the fast frames (in capture order) to their tunnels.

    Every per-tunnel quantity is computed with whole-array operations over the
    frames sorted by tunnel (``order``: a stable sort, capture order within
    each); the loop over tunnels only does scalar updates.
    """
    lens = batch.lengths[fast]
    ts = batch.ts[fast]
    ng = len(ents)
    g_sorted = group[order]
    ends = np.searchsorted(g_sorted, np.arange(1, ng + 1))
    pk = np.bincount(group, minlength=ng).tolist()
    by = np.bincount(group, weights=lens, minlength=ng).astype(np.int64).tolist()
    pay = np.bincount(group, weights=plen, minlength=ng).astype(np.int64).tolist()
    dat = np.bincount(group, weights=is_data, minlength=ng).astype(np.int64).tolist()
    # each group's newest time, as one frame at a time keeps it (``last_seen`` only moves forward): its last
    # frame's time is not that where capture times run backwards (merged interfaces, a rewound clock)
    starts_g = np.concatenate(([0], ends[:-1]))
    some = ends > starts_g
    newest = np.zeros(ng)
    newest[some] = np.maximum.reduceat(ts[order], starts_g[some])
    last_ts = newest.tolist()
    # one-second buckets: bytes and packets per (tunnel, second), in order
    secs = np.floor(ts).astype(np.int64)
    smin = int(secs.min())
    span = int(secs.max()) - smin + 1
    bkey = g_sorted * span + (secs[order] - smin)
    if len(bkey) > 1 and bool((bkey[1:] >= bkey[:-1]).all()):
        # the usual case, capture order = time order: bucket boundaries are where the key changes
        starts = np.flatnonzero(np.concatenate(([True], bkey[1:] != bkey[:-1])))
        uc = bkey[starts]
        bucket_b = np.add.reduceat(lens[order], starts).tolist()
        bucket_c = np.diff(np.append(starts, len(bkey))).tolist()
    else:
        # np.unique, not a dense table: a batch may span days of capture time
        uc, inv2 = np.unique(bkey, return_inverse=True)
        inv2 = inv2.reshape(-1)
        bucket_b = np.bincount(inv2, weights=lens[order]).astype(np.int64).tolist()
        bucket_c = np.bincount(inv2).tolist()
    bucket_s = (uc % span + smin).tolist()
    bucket_bounds = np.searchsorted(uc // span, np.arange(ng + 1)).tolist()
    # the newest data packet of each group, for the tunnel's ring of recent ones
    do = order[is_data[order]]
    d_ends = np.searchsorted(group[do], np.arange(1, ng + 1))
    has_ring = (d_ends > np.concatenate(([0], d_ends[:-1]))).tolist()
    pick = do[np.maximum(d_ends - 1, 0)] if len(do) else d_ends
    ring_frame = (fast[pick] + first_number).tolist()
    ring_ts = ts[pick].tolist()
    pick_off = batch.offsets[fast[pick]]
    ring_off = pick_off.tolist()
    ring_end = (pick_off + batch.lengths[fast[pick]]).tolist()

    st = tracker.stats
    total = len(fast)
    st.frames += total
    st.bytes += int(lens.sum())
    st.ip += total
    st.gre += total
    st.gre_data += int(is_data.sum())
    buf = batch.buf
    for ent, n_pk, n_by, n_pay, nd, lts, k0, k1, ring, rf, rts, ro, re in zip(
            ents, pk, by, pay, dat, last_ts, bucket_bounds[:-1], bucket_bounds[1:], has_ring, ring_frame, ring_ts,
            ring_off, ring_end, strict=True):
        if ent is None or not n_pk:
            continue
        tunnel, d = ent
        ds = tunnel.traffic[d]
        ds.packets += n_pk
        ds.bytes += n_by
        ds.payload_bytes += n_pay
        ds.data_packets += nd
        ds.ack_only += n_pk - nd
        for k in range(k0, k1):
            sec = bucket_s[k]
            if sec != ds.cur_sec:
                ds.roll(sec)
            ds.cur_bytes += bucket_b[k]
            ds.cur_packets += bucket_c[k]
        if lts > tunnel.last_seen:
            tunnel.last_seen = lts
        tunnel.changed = True
        if ring:
            tunnel.data_ring.append((rf, rts, int(d), bytes(buf[ro:re])))


def _sequences(tracker: BatchHost, group: Any, order: Any, ents: list[tuple[Tunnel, Direction] | None],
               s42: Any, has_seq: Any, has_ack: Any) -> None:
    """GRE sequence and acknowledgment numbers of every frame of a known tunnel, in capture order.

    ``order`` sorts the frames by ``group`` (stably); ``s42`` holds each
    frame's octets 42-49 as a big-endian word: the sequence number and the
    acknowledgment, or an ack-only packet's acknowledgment alone. A run of +1
    steps is applied in one go; anything else packet by packet, exactly as
    :meth:`Tracker.sequence` does one frame at a time.
    """
    ng = len(ents)
    so = order[has_seq[order] == 1]
    sg = group[so]
    word42 = (s42 >> 32) & MASK32  # the sequence number, or the acknowledgment of an ack-only packet
    sq = word42[so]
    bounds = np.searchsorted(sg, np.arange(ng + 1))
    s_bounds = bounds.tolist()
    steps_bad = (((sq[1:] - sq[:-1]) & MASK32) != 1) & (sg[1:] == sg[:-1])
    bad_groups = set(sg[1:][steps_bad].tolist())
    # a run of +1 steps needs only its first and last numbers (the rest only in a group that is not one)
    if len(sq):
        s_first = sq[np.minimum(bounds[:-1], len(sq) - 1)].tolist()
        s_last = sq[np.maximum(bounds[1:] - 1, 0)].tolist()
    else:
        s_first = s_last = [0] * ng
    ao = order[has_ack[order] == 1]
    ag = group[ao]
    a_first = np.searchsorted(ag, np.arange(ng))
    a_last = np.searchsorted(ag, np.arange(ng), side="right") - 1
    if len(ao):
        last = ao[np.maximum(a_last, 0)]  # each group's last acknowledging frame
        acks = np.where(has_seq[last] == 1, s42[last] & MASK32, word42[last]).tolist()
    else:
        acks = [0] * ng
    has_acks = (a_last >= a_first).tolist()
    for g in range(ng):
        ent = ents[g]
        if ent is None:
            continue
        tunnel, d = ent
        ds = tunnel.traffic[d]
        lo, hi = s_bounds[g], s_bounds[g + 1]
        if lo < hi:
            if ds.seq_init and g not in bad_groups and (s_first[g] - ds.max_seq) & MASK32 == 1:
                m = hi - lo
                ds.max_seq = s_last[g]
                ds.window = MASK64 if m >= 64 else ((ds.window << m) | ((1 << m) - 1)) & MASK64
            else:
                for seq in sq[lo:hi].tolist():
                    tracker.sequence(ds, seq)
        if has_acks[g]:
            ds.last_ack = acks[g]
