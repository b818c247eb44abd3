"""The pcapng reader (draft-ietf-opsawg-pcapng-02).

Section Header Blocks in either byte order and several sections per file
(§4.1), Interface Description Blocks with ``if_name``, ``if_tsresol`` and
``if_tsoffset`` (§4.2), Enhanced Packet Blocks (§4.3), Simple Packet Blocks
(§4.4) and the obsolete Packet Block (Appendix A); every other block type is
skipped, as §3.1 asks.

:func:`frames` yields one :class:`Frame` per packet; :func:`batches` yields a
:class:`Batch` per buffer of Enhanced Packet Blocks without an object per
packet. Both walk EPBs in a hot loop whose one unpack at the end of a block
reads its trailing length and the next block's header; anything else — the
end of the buffer, another block type, a block that fails a check — goes to
one slow path (:func:`_block`) that handles exactly one block and raises
:class:`CaptureFileError` with its byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Final

import numpy as np

from pptptop.sources.base import InterfaceStats
from pptptop.sources.batch import batch_from_frames
from pptptop.sources.window import MAX_BLOCK, MAX_PACKET, U32, Input, ReadState, words
from pptptop.wire import Batch, Frame

SHB: Final = 0x0A0D0D0A
BOM: Final = 0x1A2B3C4D

# block types (§10.1)
BT_IDB: Final = 0x00000001
BT_PB: Final = 0x00000002  # obsolete Packet Block, Appendix A
BT_SPB: Final = 0x00000003
BT_EPB: Final = 0x00000006

# IDB option codes (§4.2)
OPT_ENDOFOPT: Final = 0
IF_NAME: Final = 2
IF_TSRESOL: Final = 9
IF_TSOFFSET: Final = 14

EPB_FIXED_LEN: Final = 32  # type, length, interface, ts high/low, caplen, origlen, trailing length
EPB_DATA_AT: Final = 28
PB_FIXED_LEN: Final = 32
SPB_FIXED_LEN: Final = 16
IDB_FIXED_LEN: Final = 20
SHB_FIXED_LEN: Final = 28

_new_frame = tuple.__new__
_Unpack = Callable[[bytes | memoryview, int], tuple[int, ...]]


class _Iface:
    """One interface, section-local: what decoding its packets needs."""

    __slots__ = ("div", "linktype", "mul", "name", "offset", "snaplen", "stats")

    def __init__(self, name: str, linktype: int, snaplen: int, div: int, offset: int,
                 stats: InterfaceStats) -> None:
        self.name = name
        self.linktype = linktype
        self.snaplen = snaplen
        self.div = div
        self.mul = (1 << 32) / div  # so a timestamp is hi * mul + lo / div, see _ts
        self.offset = offset
        self.stats = stats


class _Section:
    """The current section (§4.1): its byte order and interfaces, as the hot loops read them."""

    __slots__ = ("counts", "e", "epb7", "epb8", "fast", "ifs", "nfast")

    def __init__(self) -> None:
        self.ifs: list[_Iface] = []
        self.fast: list[tuple[str, int, int, float]] = []  # (name, linktype, units/s, 2^32/units)
        self.counts: list[int] = []  # packets the hot loops took, per interface, not yet counted
        self.nfast = 0  # interfaces the hot loops may handle; 0 while any has an if_tsoffset
        self.order("<")

    def order(self, e: str) -> None:
        self.e = e
        self.epb7: _Unpack = struct.Struct(e + "7I").unpack_from
        self.epb8: _Unpack = struct.Struct(e + "8I").unpack_from

    def reset(self) -> None:
        self.ifs, self.fast, self.counts, self.nfast = [], [], [], 0

    def add(self, ifc: _Iface) -> None:
        self.ifs.append(ifc)
        self.fast.append((ifc.name, ifc.linktype, ifc.div, ifc.mul))
        self.counts.append(0)
        self.nfast = 0 if any(i.offset for i in self.ifs) else len(self.ifs)


def frames(inp: Input, state: ReadState) -> Iterator[Frame]:
    """The packets of a pcapng file, one :class:`Frame` each."""
    try:
        new = _new_frame
        frame = Frame
        sec = _Section()
        pos = 0
        buf = inp.buf
        end = len(buf)
        last_ts = 0.0
        fr: Frame | None = None
        while True:
            # Hot loop: Enhanced Packet Blocks on interfaces without a timestamp offset.
            if pos + EPB_DATA_AT <= end:
                epb8 = sec.epb8
                fast = sec.fast
                counts = sec.counts
                nfast = sec.nfast
                btype, blen, iid, hi, lo, cap, _orig = sec.epb7(buf, pos)
                lim = end - 32
                while True:
                    nxt = pos + blen
                    if (btype != 6 or nxt > lim or cap + 32 > blen or cap > 262144 or blen & 3
                            or iid >= nfast):
                        break
                    name, lt, div, mul = fast[iid]
                    counts[iid] += 1
                    p = pos + 28
                    fr = new(frame, (hi * mul + lo / div, name, lt, buf[p:p + cap]))
                    trail, btype, nblen, iid, hi, lo, cap, _orig = epb8(buf, nxt - 4)
                    if trail != blen:
                        # Counted but never yielded: the slow path reports this block.
                        counts[next(i for i, f in enumerate(fast) if f[0] == name)] -= 1
                        break
                    blen = nblen
                    pos = nxt
                    yield fr
            if fr is not None:
                last_ts = fr[0]
            got = _block(inp, state, sec, pos, last_ts)
            if got is None:
                return
            pos, one = got
            buf = inp.buf
            end = len(buf)
            if one is not None:
                fr = one
                yield one
    finally:
        state.release()


def batches(inp: Input, state: ReadState) -> Iterator[Batch]:
    """The packets of a pcapng file, a :class:`Batch` per buffer; a packet the slow path reads is a
    batch of one."""
    try:
        sec = _Section()
        pos = 0
        buf = inp.buf
        end = len(buf)
        last_ts = 0.0
        starts: list[int] = []
        ids: list[int] = []
        while True:
            # The hot loop of frames(), noting where each EPB starts and on which interface.
            if pos + EPB_DATA_AT <= end:
                epb8 = sec.epb8
                counts = sec.counts
                nfast = sec.nfast
                btype, blen, iid, _hi, _lo, cap, _orig = sec.epb7(buf, pos)
                lim = end - 32
                while True:
                    nxt = pos + blen
                    if nxt > lim and btype == 6 and not state.closed and inp.grow():
                        buf = inp.buf  # another piece read after the buffer's end: go on
                        end = len(buf)
                        lim = end - 32
                        continue
                    if (btype != 6 or nxt > lim or cap + 32 > blen or cap > 262144 or blen & 3
                            or iid >= nfast):
                        break
                    trail, btype, nblen, niid, _hi, _lo, cap, _orig = epb8(buf, nxt - 4)
                    if trail != blen:
                        break  # the slow path reports this block
                    counts[iid] += 1
                    starts.append(pos)
                    ids.append(iid)
                    iid = niid
                    blen = nblen
                    pos = nxt
                if starts:
                    b = _batch(buf, starts, ids, sec.e, sec.fast)
                    last_ts = float(b.ts[-1])
                    starts, ids = [], []
                    yield b
            got = _block(inp, state, sec, pos, last_ts)
            if got is None:
                return
            pos, one = got
            buf = inp.buf
            end = len(buf)
            if one is not None:
                yield batch_from_frames([one])
                last_ts = one.ts
    finally:
        state.release()


def _block(inp: Input, state: ReadState, sec: _Section, pos: int,
           last_ts: float) -> tuple[int, Frame | None] | None:
    """The slow path: the hot loop's counts added to the interfaces, then exactly one block at ``pos``,
    every check spelled out. Where the next block starts and the packet this one carries, if any; None at
    the end of the input or once the source is closed."""
    counts = sec.counts
    for i, c in enumerate(counts):
        if c:
            sec.ifs[i].stats.received += c
            counts[i] = 0
    state.bytes_read = inp.base + len(inp.buf)
    if state.closed:
        return None
    pos, ok = inp.need(pos, 12)
    buf = inp.buf
    end = len(buf)
    state.bytes_read = inp.base + end
    e = sec.e
    if not ok:
        if state.closed or end == pos:
            return None
        total = 12 if end - pos < 8 else U32[e].unpack_from(buf, pos + 4)[0]
        raise state.truncated(inp, pos, total)
    btype = U32[e].unpack_from(buf, pos)[0]
    if btype == SHB:
        bom = buf[pos + 8:pos + 12]
        if bom == b"\x4d\x3c\x2b\x1a":
            e = "<"
        elif bom == b"\x1a\x2b\x3c\x4d":
            e = ">"
        else:
            raise state.error(inp, pos, f"section header with a bad byte-order magic 0x{bom.hex()}")
        sec.order(e)
    blen = U32[e].unpack_from(buf, pos + 4)[0]
    if blen < 12 or blen & 3:
        raise state.error(inp, pos, f"block length {blen} is not a multiple of 4 of at least 12")
    if blen > MAX_BLOCK:
        raise state.error(inp, pos, f"block length {blen} is larger than {MAX_BLOCK} bytes")
    pos, ok = inp.need(pos, blen)
    buf = inp.buf
    end = len(buf)
    state.bytes_read = inp.base + end
    if not ok:
        if state.closed:
            return None
        raise state.truncated(inp, pos, blen)
    trail = U32[e].unpack_from(buf, pos + blen - 4)[0]
    if trail != blen:
        raise state.error(inp, pos, f"block length mismatch: the header says {blen}, "
                          f"the trailer says {trail}")
    if btype == SHB:
        if blen < SHB_FIXED_LEN:
            raise state.error(inp, pos, f"section header block too short ({blen} bytes)")
        major = struct.unpack_from(e + "H", buf, pos + 12)[0]
        if major != 1:
            raise state.error(inp, pos, f"unsupported pcapng version {major}")
        sec.reset()
    elif btype == BT_IDB:
        if blen < IDB_FIXED_LEN:
            raise state.error(inp, pos, f"interface description block too short ({blen} bytes)")
        sec.add(_parse_idb(state, buf, pos, blen, e))
    elif btype in (BT_EPB, BT_PB, BT_SPB):
        fr, ifc = _packet_block(inp, state, buf, pos, blen, btype, e, sec.ifs, last_ts)
        ifc.stats.received += 1
        return pos + blen, fr
    return pos + blen, None


def _parse_idb(state: ReadState, buf: bytes | memoryview, pos: int, blen: int, e: str) -> _Iface:
    """Interface Description Block (§4.2): link type, snaplen, if_name, if_tsresol, if_tsoffset."""
    linktype, _reserved, snaplen = struct.unpack_from(e + "HHI", buf, pos + 8)
    name = ""
    div = 1_000_000
    offset = 0
    for code, value in _options(buf, pos + 16, pos + blen - 4, e):
        if code == IF_NAME:
            name = value.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
        elif code == IF_TSRESOL and len(value) >= 1:
            r = value[0]
            div = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
        elif code == IF_TSOFFSET and len(value) >= 8:
            offset = struct.unpack_from(e + "q", value)[0]
    seq = state.if_seq
    state.if_seq += 1
    if not name:
        name = f"{state.label}:if{seq}" if state.label else f"if{seq}"
    return _Iface(name, linktype, snaplen, div, offset, state.interface(name, linktype))


def _packet_block(inp: Input, state: ReadState, buf: bytes | memoryview, pos: int, blen: int, btype: int,
                  e: str, ifs: list[_Iface], last_ts: float) -> tuple[Frame, _Iface]:
    """One EPB (§4.3), SPB (§4.4) or obsolete PB (Appendix A), fully checked."""
    if btype == BT_SPB:
        if blen < SPB_FIXED_LEN:
            raise state.error(inp, pos, f"simple packet block too short ({blen} bytes)")
        if not ifs:
            raise state.error(inp, pos, "simple packet block before any interface description block")
        ifc = ifs[0]
        orig = U32[e].unpack_from(buf, pos + 8)[0]
        cap = min(orig, blen - SPB_FIXED_LEN)
        if ifc.snaplen:
            cap = min(cap, ifc.snaplen)
        if cap > MAX_PACKET:
            raise state.error(inp, pos, f"packet length {cap} is larger than {MAX_PACKET} bytes")
        # An SPB has no timestamp (§4.4): it inherits the previous packet's.
        return _new_frame(Frame, (last_ts, ifc.name, ifc.linktype, bytes(buf[pos + 12:pos + 12 + cap]))), ifc
    if btype == BT_EPB:
        if blen < EPB_FIXED_LEN:
            raise state.error(inp, pos, f"enhanced packet block too short ({blen} bytes)")
        iid, hi, lo, cap, _orig = struct.unpack_from(e + "5I", buf, pos + 8)
    else:
        if blen < PB_FIXED_LEN:
            raise state.error(inp, pos, f"packet block too short ({blen} bytes)")
        iid, _drops, hi, lo, cap, _orig = struct.unpack_from(e + "HHIIII", buf, pos + 8)
    if iid >= len(ifs):
        raise state.error(inp, pos, f"packet block for interface {iid}, but the section describes "
                          f"{len(ifs)} interface(s)")
    if cap + EPB_FIXED_LEN > blen:
        raise state.error(inp, pos, f"captured length {cap} does not fit in a block of {blen} bytes")
    if cap > max(MAX_PACKET, ifs[iid].snaplen):
        raise state.error(inp, pos, f"packet length {cap} is larger than {MAX_PACKET} bytes")
    ifc = ifs[iid]
    ts = _ts(hi, lo, ifc.mul, ifc.div) + ifc.offset
    return _new_frame(Frame, (ts, ifc.name, ifc.linktype, bytes(buf[pos + 28:pos + 28 + cap]))), ifc


def _ts(hi: int, lo: int, mul: float, div: int) -> float:
    """A pcapng timestamp (§4.3: 64 bits of 1/div seconds, high word first) in seconds.

    ``(hi << 32 | lo) / div`` is exact but the 64-bit numerator leaves Python's
    float fast path; ``hi * mul + lo / div`` stays on it and is within 0.4 µs
    (1.5 ulp at today's epoch). The hot loop inlines this; the batch reader
    computes it the same way in numpy, so every path gives the same float.
    """
    return hi * mul + lo / div


def _options(buf: bytes | memoryview, pos: int, end: int, e: str) -> Iterator[tuple[int, bytes]]:
    """pcapng options (§3.5): code, length, value padded to 32 bits; stops at opt_endofopt.

    A malformed option list ends the walk quietly: options are descriptive,
    and a bad one must not cost the packets.
    """
    hdr = struct.Struct(e + "HH").unpack_from
    while pos + 4 <= end:
        code, length = hdr(buf, pos)
        if code == OPT_ENDOFOPT:
            return
        vstart = pos + 4
        vend = vstart + length
        if vend > end:
            return
        yield code, bytes(buf[vstart:vend])
        pos = vstart + ((length + 3) & ~3)


def _batch(buf: bytes | memoryview, starts: list[int], ids: list[int], e: str,
           ifaces: list[tuple[str, int, int, float]]) -> Batch:
    """A batch of Enhanced Packet Blocks starting at ``starts`` on interfaces ``ids`` (§4.3)."""
    pos = np.array(starts, dtype=np.int64)
    iid = np.array(ids, dtype=np.int64)
    hi, lo, cap = words(buf, pos + 12, e, 3)
    div = np.array([d for _, _, d, _ in ifaces], dtype=np.float64)[iid]
    mul = np.array([m for _, _, _, m in ifaces], dtype=np.float64)[iid]
    # _ts in float64: the same roundings as the per-frame path, so the same floats
    ts = hi.astype(np.float64) * mul + lo.astype(np.float64) / div
    used = sorted(set(ids))
    if len(used) == 1:
        name, lt, _, _ = ifaces[used[0]]
        return Batch(buf, pos + EPB_DATA_AT, cap, ts, [(name, lt)])
    return Batch(buf, pos + EPB_DATA_AT, cap, ts, [(n, lt) for n, lt, _, _ in ifaces], iid)
