"""The data plane, a batch at a time: GRE data of open tunnels counted with numpy.

Almost every packet of a PPTP capture is GRE data (MPPE, or ack-only) of a
tunnel already in the data phase. For those, the tracker only counts: packets,
bytes, rates, sequence numbers, acks, its newest packet. This module does
that for a whole :class:`~pptptop.sources.batch.Batch` with array operations
over what :func:`pptptop.decode.lanes.gre_lanes` decodes of every frame's
headers, looks each GRE key up once, and hands every other frame, in order,
to :meth:`Tracker.feed` (the per-packet path). The result
is the same as feeding every frame one by one, but for the ring of recent data
packets, which gets the newest of each batch (a sample); only the cost differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pptptop.decode.lanes import gre_lanes
from pptptop.sources.batch import Batch
from pptptop.sources.linktypes import LINKTYPE_ETHERNET
from pptptop.track.model import Direction, Phase, Tunnel

if TYPE_CHECKING:
    from pptptop.track.tracker import Tracker

MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1
SPLIT_MIN = 4096  # a batch this big whose frames mostly need the per-frame path is fed in halves


def feed_batch(tracker: Tracker, batch: Batch, first_number: int) -> None:
    """Feed every frame of ``batch``; frame ``i`` is number ``first_number + i``."""
    n = len(batch)
    if n == 0:
        return
    ifaces = batch.ifaces
    if not tracker._gre:
        if n >= SPLIT_MIN and any(lt == LINKTYPE_ETHERNET for _, lt in ifaces):
            half = n // 2  # no tunnel yet: the first half may create them
            feed_batch(tracker, batch.part(0, half), first_number)
            feed_batch(tracker, batch.part(half, n), first_number + half)
            return
        _slow(tracker, batch, np.arange(n), first_number)
        return
    lanes = gre_lanes(batch)
    if lanes is None:
        _slow(tracker, batch, np.arange(n), first_number)
        return
    ci, inv, by_key, keys_addr, keys_call, has_seq, has_ack, plen, is_data, length_ok, has_ppp, s42 = lanes
    if ci is None:
        ci = np.arange(n)
    # GRE key (src, dst, call ID) and interface → tunnel, once per distinct key
    ents: list[tuple[Tunnel, Direction] | None] = []
    ok_group = np.zeros(len(keys_addr), dtype=bool)
    tapped = np.zeros(len(keys_addr), dtype=bool)  # a tunnel someone looks inside: every packet, one by one
    for g, (a, b) in enumerate(zip(keys_addr.tolist(), keys_call.tolist(), strict=True)):
        index = tracker._gre.get(ifaces[b >> 16][0])
        ent = index.get(((a >> 32) << 48) | ((a & MASK32) << 16) | (b & 0xFFFF)) if index else None
        ents.append(ent)
        if ent is not None:
            t = ent[0]
            tapped[g] = t.tap is not None
            ok_group[g] = t.phase is Phase.DATA and not t.ended and not tapped[g]
    dataish = (plen == 0) | is_data
    ok = ok_group[inv] & length_ok & dataish
    if n >= SPLIT_MIN and dataish[~ok & ~tapped[inv]].sum() > n // 4:
        # many data frames of tunnels not yet in the data phase: the first half's negotiation will
        # get them there, so the second half can take the fast path
        half = n // 2
        feed_batch(tracker, batch.part(0, half), first_number)
        feed_batch(tracker, batch.part(half, n), first_number + half)
        return
    # sequence numbers of every frame of a known tunnel that holds them, data phase or not
    known = np.array([e is not None for e in ents], dtype=bool)[inv] & has_ppp
    if known.any():
        group, order, (seqack, s_flag, a_flag) = _restrict(known, inv, by_key, s42, has_seq, has_ack)
        _sequences(tracker, group, order, ents, seqack, s_flag, a_flag)
        # the per-frame path must not analyse these frames' sequence numbers again
        tracker._seq_done.update((ci[known & ~ok] + first_number).tolist())
    group, order, (fast, payload, data) = _restrict(ok, inv, by_key, ci, plen, is_data)
    if len(fast):
        _count(tracker, batch, fast, group, order, ents, payload, data, first_number)
    slow_mask = np.ones(n, dtype=bool)
    slow_mask[fast] = False
    _slow(tracker, batch, np.nonzero(slow_mask)[0], first_number)
    ts = batch.ts
    tmax = float(ts.max())
    if tmax > tracker.now:
        if tracker.stats.first_ts is None:
            tracker.stats.first_ts = float(ts.min())
        tracker.now = tracker.stats.last_ts = tmax
        if tmax - tracker._last_tick >= 1.0:
            tracker.tick(tmax)


def _restrict(mask: Any, group: Any, order: Any, *cols: Any) -> tuple[Any, Any, list[Any]]:
    """The frames in ``mask``: their ``group``, ``order`` (a stable sort of all frames by group) restricted
    to them as indices among them, and each of ``cols``; no copies when the mask holds every frame."""
    if mask.all():
        return group, order, list(cols)
    return group[mask], (np.cumsum(mask) - 1)[order[mask[order]]], [c[mask] for c in cols]


def _slow(tracker: Tracker, batch: Batch, idx: Any, first_number: int) -> None:
    feed = tracker.feed
    buf = batch.buf
    ifaces = batch.ifaces
    starts = batch.offsets[idx]
    ends = (starts + batch.lengths[idx]).tolist()
    which = [0] * len(idx) if batch.ifidx is None else batch.ifidx[idx].tolist()
    for i, ts, off, end, k in zip(idx.tolist(), batch.ts[idx].tolist(), starts.tolist(), ends, which, strict=True):
        name, lt = ifaces[k]
        feed(first_number + i, ts, name, lt, bytes(buf[off:end]))


def _count(
    tracker: Tracker,
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
    last_ts = ts[order[np.maximum(ends - 1, 0)]].tolist()
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


def _sequences(tracker: Tracker, group: Any, order: Any, ents: list[tuple[Tunnel, Direction] | None],
               s42: Any, has_seq: Any, has_ack: Any) -> None:
    """GRE sequence and acknowledgment numbers of every frame of a known tunnel, in capture order.

    ``order`` sorts the frames by ``group`` (stably); ``s42`` holds each
    frame's octets 42-49 as a big-endian word: the sequence number and the
    acknowledgment, or an ack-only packet's acknowledgment alone. A run of +1
    steps is applied in one go; anything else packet by packet, exactly as
    :meth:`Tracker._seq_slow` does one frame at a time.
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
