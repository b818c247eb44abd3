"""The classic pcap reader (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html §4-§5).

Both byte orders, microsecond (``0xA1B2C3D4``) and nanosecond (``0xA1B23C4D``)
magic. :func:`frames` yields one :class:`Frame` per record; :func:`batches`
yields a :class:`Batch` per buffer without an object per record. Both leave
their hot loop at the end of the buffer or at a record that fails a check,
for one slow path (:func:`_refill`) that reads more input or raises
:class:`CaptureFileError` with the record's byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Final

import numpy as np

from pptptop.sources.base import InterfaceStats
from pptptop.sources.window import MAX_BLOCK, MAX_PACKET, U32, Input, ReadState, words
from pptptop.wire import Batch, Frame

MAGIC_US: Final = 0xA1B2C3D4
MAGIC_NS: Final = 0xA1B23C4D

HEADER_LEN: Final = 24
RECORD_LEN: Final = 16
#: where a record header holds the record's captured length (ts_sec, ts_frac, incl_len, orig_len)
INCL_AT: Final = 8

_new_frame = tuple.__new__
_Unpack = Callable[[bytes | memoryview, int], tuple[int, ...]]


def byte_order(magic: bytes) -> str | None:
    """The struct byte order of a pcap file that starts with ``magic`` (4 bytes); None if it is not one."""
    le, be = U32["<"].unpack(magic)[0], U32[">"].unpack(magic)[0]
    if le in (MAGIC_US, MAGIC_NS):
        return "<"
    if be in (MAGIC_US, MAGIC_NS):
        return ">"
    return None


def frames(inp: Input, state: ReadState, e: str) -> Iterator[Frame]:
    """The records of a pcap file with byte order ``e``, one :class:`Frame` each."""
    try:
        pos, div, linktype, limit, st = _header(inp, state, e)
        iface = state.label
        hdr: _Unpack = struct.Struct(e + "IIII").unpack_from
        buf = inp.buf
        end = len(buf)
        n = 0
        frame = Frame
        new = _new_frame
        while True:
            lim = end - RECORD_LEN
            while pos <= lim:
                sec, frac, incl, _orig = hdr(buf, pos)
                p = pos + RECORD_LEN
                nxt = p + incl
                if nxt > end or incl > limit:
                    break
                yield new(frame, (sec + frac / div, iface, linktype, buf[p:nxt]))
                n += 1
                pos = nxt
            st.received += n
            n = 0
            at = _refill(inp, state, pos, hdr, limit)
            if at is None:
                return
            pos = at
            buf = inp.buf
            end = len(buf)
    finally:
        state.release()


def batches(inp: Input, state: ReadState, e: str) -> Iterator[Batch]:
    """The records of a pcap file with byte order ``e``, a :class:`Batch` per buffer.

    The hot loop only notes where each record starts and jumps by its length,
    unchecked, until a record header no longer fits in the buffer; there it
    reads another piece into the buffer while it has room. Then one
    vectorised check (:func:`_batch`) keeps the records before the first one
    that is cut off or longer than the limit, and the walk resumes at that
    one, through the slow path.
    """
    try:
        pos, div, linktype, limit, st = _header(inp, state, e)
        iface = state.label
        hdr: _Unpack = struct.Struct(e + "IIII").unpack_from
        incl_at = U32[e].unpack_from
        buf = inp.buf
        n = 0
        starts: list[int] = []
        while True:
            note = starts.append
            while True:
                lim = len(buf) - INCL_AT - 4  # the last start whose length word is in the buffer
                while pos <= lim:
                    note(pos)
                    pos += RECORD_LEN + incl_at(buf, pos + INCL_AT)[0]
                note(pos)  # where a length no longer fits: the walk or the slow path goes on from there
                if state.closed or not inp.grow():
                    break
                buf = inp.buf
                starts.pop()
            got, pos = _batch(buf, starts, e, div, iface, linktype, limit)
            starts = []
            if got is not None:
                n += len(got)
                yield got
            st.received += n
            n = 0
            at = _refill(inp, state, pos, hdr, limit)
            if at is None:
                return
            pos = at
            buf = inp.buf
    finally:
        state.release()


def _header(inp: Input, state: ReadState, e: str) -> tuple[int, int, int, int, InterfaceStats]:
    """The file header (§4): where the first record starts, the timestamp divisor, the link type, the
    record length limit and the counters of the file's one interface."""
    pos, ok = inp.need(0, HEADER_LEN)
    if not ok:
        raise state.error(inp, 0, "file ends in the middle of the file header "
                          f"({len(inp.buf)} of {HEADER_LEN} bytes)")
    magic, major, minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(e + "IHHiIII", inp.buf, pos)
    if major != 2:
        raise state.error(inp, 0, f"unsupported pcap version {major}.{minor}")
    div = 1_000_000_000 if magic == MAGIC_NS else 1_000_000
    linktype = network & 0x03FFFFFF  # the top bits carry the FCS length (§4)
    limit = min(max(snaplen, MAX_PACKET), MAX_BLOCK)
    return pos + HEADER_LEN, div, linktype, limit, state.interface(state.label, linktype)


def _refill(inp: Input, state: ReadState, pos: int, hdr: _Unpack, limit: int) -> int | None:
    """The slow path, at the record at ``pos`` that the hot loop did not take: the counters brought up to
    date, then more input until the record is whole; its new offset in ``inp.buf``, or None at the end of
    the input or once the source is closed. A record over the limit or cut by the end is an error."""
    buf = inp.buf
    end = len(buf)
    state.bytes_read = inp.base + end
    if state.closed:
        return None
    if end - pos >= RECORD_LEN:
        incl = hdr(buf, pos)[2]
        if incl > limit:
            raise state.error(inp, pos, f"record length {incl} is larger than the snapshot "
                              f"length limit ({limit} bytes)")
        want = RECORD_LEN + incl
    else:
        want = RECORD_LEN
    pos, ok = inp.need(pos, want)
    buf = inp.buf
    end = len(buf)
    state.bytes_read = inp.base + end
    if not ok:
        if state.closed or end == pos:
            return None
        if end - pos >= RECORD_LEN:
            want = RECORD_LEN + hdr(buf, pos)[2]
        raise state.truncated(inp, pos, want)
    return pos


def _batch(buf: bytes | memoryview, starts: list[int], e: str, div: int, iface: str, linktype: int,
           limit: int) -> tuple[Batch | None, int]:
    """The whole records among the record headers at ``starts`` (§5), and where to go on.

    ``starts`` comes from an unchecked walk: its last offset is where a record
    length no longer fitted in ``buf``. The batch holds the records before
    the first one that ends past the buffer or exceeds ``limit``; the offset
    returned is that record's (the slow path reads more input or names the
    error there).
    """
    pos = np.array(starts[:-1], dtype=np.int64)
    sec, frac, incl = words(buf, pos, e, 3)
    bad = (pos + (RECORD_LEN + incl) > len(buf)) | (incl > limit)
    keep = int(bad.argmax()) if bool(bad.any()) else len(pos)
    if keep == 0:
        return None, starts[0]
    if keep < len(pos):
        pos, sec, frac, incl = pos[:keep], sec[:keep], frac[:keep], incl[:keep]
    return Batch(buf, pos + RECORD_LEN, incl, sec + frac / div, [(iface, linktype)]), starts[keep]
