"""The data plane, a batch at a time: GRE data of open tunnels counted with numpy.

Almost every packet of a PPTP capture is GRE data (MPPE, or ack-only) of a
tunnel already in the data phase. For those, the tracker only counts: packets,
bytes, rates, sequence numbers, acks, a few recent packets. This module does
that for a whole :class:`~pptptop.sources.batch.Batch` with array operations —
one gather of each frame's first bytes, masks for "Ethernet/IPv4/enhanced
GRE/PPP data", one ``np.unique`` over the GRE keys — and hands every other
frame, in order, to :meth:`Tracker.feed` (the per-packet path). The result
is the same as feeding every frame one by one; only the cost differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pptptop.decode.gre import GRE_PPTP_MASK, GRE_PPTP_VALUE
from pptptop.sources.batch import Batch
from pptptop.track.model import Direction, Phase, Tunnel

if TYPE_CHECKING:
    from pptptop.track.tracker import Tracker

LINKTYPE_ETHERNET = 1
HEAD = 56  # bytes of each frame looked at: Ethernet + IPv4 + GRE with seq/ack + PPP header
COLS = np.arange(HEAD, dtype=np.int64)
MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1
RING_PER_BATCH = 8  # recent data packets copied per tunnel per batch (the ring keeps the last 64)
#: one-octet (PFC) and two-octet PPP protocol numbers of data, not negotiation
DATA_1 = np.array([0xFD, 0xFB, 0x21, 0x57, 0x2D, 0x2F, 0x3D], dtype=np.int64)


def _u16(rows: Any, col: int) -> Any:
    return (rows[:, col].astype(np.int64) << 8) | rows[:, col + 1]


def _u32(rows: Any, col: Any) -> Any:
    if isinstance(col, np.ndarray):
        r = np.arange(len(rows))
        b = [rows[r, col + k].astype(np.int64) for k in range(4)]
    else:
        b = [rows[:, col + k].astype(np.int64) for k in range(4)]
    return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]


def feed_batch(tracker: Tracker, batch: Batch, first_number: int) -> None:
    """Feed every frame of ``batch``; frame ``i`` is number ``first_number + i``."""
    n = len(batch)
    if n == 0:
        return
    ifaces = batch.ifaces
    eth = [lt == LINKTYPE_ETHERNET for _, lt in ifaces]
    if not any(eth) or not tracker._gre:
        _slow(tracker, batch, np.arange(n), first_number)
        return
    view = batch.view()
    offs, lens, ts = batch.offsets, batch.lengths, batch.ts
    rows = view[np.minimum(offs[:, None] + COLS, len(view) - 1)]
    ethertype = _u16(rows, 12)
    fv = _u16(rows, 34)
    cand = (
        (lens >= 42)
        & (ethertype == 0x0800)
        & (rows[:, 14] == 0x45)
        & (rows[:, 23] == 47)
        & ((_u16(rows, 20) & 0x3FFF) == 0)
        & ((fv & GRE_PPTP_MASK) == GRE_PPTP_VALUE)
        & (_u16(rows, 36) == 0x880B)
    )
    ifidx = batch.ifidx
    if ifidx is not None:
        cand &= np.asarray(eth, dtype=bool)[ifidx]
    elif not eth[0]:
        cand[:] = False
    ci = np.nonzero(cand)[0]
    if len(ci) == 0:
        _slow(tracker, batch, np.arange(n), first_number)
        return
    # GRE key (src, dst, call ID) and interface → tunnel, once per distinct key
    r = rows[ci]
    src = _u32(r, 26)
    dst = _u32(r, 30)
    cid = _u16(r, 40)
    ifc = ifidx[ci] if ifidx is not None else np.zeros(len(ci), dtype=np.int64)
    k1 = (src << 32) | dst
    k2 = (ifc << 16) | cid
    keys = np.rec.fromarrays([k1, k2], names="a,b")  # type: ignore[call-overload]
    uniq, inv = np.unique(keys, return_inverse=True)
    inv = inv.reshape(-1)
    ents: list[tuple[Tunnel, Direction] | None] = []
    ok_group = np.zeros(len(uniq), dtype=bool)
    for g, (a, b) in enumerate(uniq.tolist()):
        index = tracker._gre.get(ifaces[b >> 16][0])
        ent = index.get(((a >> 32) << 48) | ((a & MASK32) << 16) | (b & 0xFFFF)) if index else None
        ents.append(ent)
        if ent is not None:
            t = ent[0]
            ok_group[g] = t.phase is Phase.DATA and not t.ended
    # PPP inside: ack-only, or a data protocol (ACFC/PFC in any combination)
    gfv = fv[ci]
    has_seq = (gfv & 0x1000) != 0
    has_ack = (gfv & 0x0080) != 0
    po = 42 + 4 * has_seq + 4 * has_ack
    plen = _u16(r, 38)
    ar = np.arange(len(ci))
    b0 = r[ar, np.minimum(po, HEAD - 4)].astype(np.int64)
    acf = b0 == 0xFF
    pp = np.where(acf, po + 2, po)
    pb = r[ar, np.minimum(pp, HEAD - 2)].astype(np.int64)
    nb = r[ar, np.minimum(pp + 1, HEAD - 1)].astype(np.int64)
    # PFC: one odd octet; otherwise two octets, data protocols all being 0x00XX
    is_data = (plen > 0) & np.where((pb & 1) == 1, np.isin(pb, DATA_1), (pb == 0) & np.isin(nb, DATA_1))
    length_ok = lens[ci] >= np.where(plen > 0, pp + 2 - (pb & 1), po)
    ok = ok_group[inv] & length_ok & ((plen == 0) | is_data)
    fast = ci[ok]
    if len(fast):
        _count(
            tracker,
            batch,
            fast,
            inv[ok],
            ents,
            has_seq[ok],
            has_ack[ok],
            plen[ok],
            is_data[ok],
            rows[fast],
            first_number,
        )
    slow_mask = np.ones(n, dtype=bool)
    slow_mask[fast] = False
    _slow(tracker, batch, np.nonzero(slow_mask)[0], first_number)
    tmax = float(ts.max())
    if tmax > tracker.now:
        if tracker.stats.first_ts is None:
            tracker.stats.first_ts = float(ts.min())
        tracker.now = tracker.stats.last_ts = tmax
        if tmax - tracker._last_tick >= 1.0:
            tracker.tick(tmax)


def _slow(tracker: Tracker, batch: Batch, idx: Any, first_number: int) -> None:
    feed = tracker.feed
    buf = batch.buf
    ifaces = batch.ifaces
    ifidx = batch.ifidx
    offs = batch.offsets
    lens = batch.lengths
    ts = batch.ts
    for i in idx.tolist():
        off = int(offs[i])
        name, lt = ifaces[0 if ifidx is None else int(ifidx[i])]
        feed(first_number + i, float(ts[i]), name, lt, bytes(buf[off : off + int(lens[i])]))


def _count(
    tracker: Tracker,
    batch: Batch,
    fast: Any,
    group: Any,
    ents: list[tuple[Tunnel, Direction] | None],
    has_seq: Any,
    has_ack: Any,
    plen: Any,
    is_data: Any,
    rows: Any,
    first_number: int,
) -> None:
    """Apply the counts of the fast frames (in capture order) to their tunnels."""
    lens = batch.lengths[fast]
    ts = batch.ts[fast]
    ng = len(ents)
    pk = np.bincount(group, minlength=ng)
    by = np.bincount(group, weights=lens, minlength=ng)
    pay = np.bincount(group, weights=plen, minlength=ng)
    dat = np.bincount(group, weights=is_data, minlength=ng)
    seqs = _u32(rows, 42)
    acks = _u32(rows, np.where(has_seq, 46, 42))
    secs = np.floor(ts).astype(np.int64)
    order = np.argsort(group, kind="stable")
    g_sorted = group[order]
    bounds = np.searchsorted(g_sorted, np.arange(ng + 1))
    st = tracker.stats
    total = len(fast)
    st.frames += total
    st.bytes += int(lens.sum())
    st.ip += total
    st.gre += total
    st.gre_data += int(is_data.sum())
    buf = batch.buf
    offs = batch.offsets
    for g in range(ng):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        if lo == hi:
            continue
        ent = ents[g]
        if ent is None:
            continue
        tunnel, d = ent
        ds = tunnel.traffic[d]
        sel = order[lo:hi]
        ds.packets += int(pk[g])
        ds.bytes += int(by[g])
        ds.payload_bytes += int(pay[g])
        nd = int(dat[g])
        ds.data_packets += nd
        ds.ack_only += int(pk[g]) - nd
        # one-second rate buckets, in capture order
        gs = secs[sel]
        gl = lens[sel]
        if gs[0] == gs[-1] == ds.cur_sec:
            ds.cur_bytes += int(gl.sum())
            ds.cur_packets += hi - lo
        else:
            for s, b in zip(gs.tolist(), gl.tolist(), strict=True):
                if s != ds.cur_sec:
                    ds.roll(s)
                ds.cur_bytes += b
                ds.cur_packets += 1
        # sequence numbers: the common in-order case in one step, anything else packet by packet
        sq = seqs[sel][has_seq[sel]]
        if len(sq):
            first = int(sq[0])
            in_order = (
                ds.seq_init
                and (first - ds.max_seq) & MASK32 == 1
                and bool(np.all(((sq[1:] - sq[:-1]) & MASK32) == 1))
            )
            if in_order:
                m = len(sq)
                ds.max_seq = int(sq[-1])
                ds.window = MASK64 if m >= 64 else ((ds.window << m) | ((1 << m) - 1)) & MASK64
            else:
                for seq in sq.tolist():
                    if not ds.seq_init:
                        ds.seq_init, ds.max_seq, ds.window = True, seq, 1
                        continue
                    delta = (seq - ds.max_seq) & MASK32
                    if delta == 1:
                        ds.max_seq = seq
                        ds.window = ((ds.window << 1) | 1) & MASK64
                    else:
                        tracker._seq_slow(ds, seq, delta)
        ak = acks[sel][has_ack[sel]]
        if len(ak):
            ds.last_ack = int(ak[-1])
        tunnel.last_seen = max(tunnel.last_seen, float(ts[sel[-1]]))
        tunnel.changed = True
        # a few of the most recent data packets, with their bytes, for the drill-down
        recent = sel[is_data[sel]][-RING_PER_BATCH:]
        ring = tunnel.data_ring
        for j in recent.tolist():
            i = int(fast[j])
            off = int(offs[i])
            ring.append((first_number + i, float(ts[j]), int(d), bytes(buf[off : off + int(lens[j])])))
