"""Streaming readers for classic pcap and pcapng, from files, pipes and stdin.

Formats:

* classic pcap (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html
  §4-§5): both byte orders, microsecond (``0xA1B2C3D4``) and nanosecond
  (``0xA1B23C4D``) magic.
* pcapng (draft-ietf-opsawg-pcapng-02): Section Header Blocks in either byte
  order and several sections per file (§4.1), Interface Description Blocks
  with ``if_name``, ``if_tsresol`` and ``if_tsoffset`` (§4.2), Enhanced Packet
  Blocks (§4.3), Simple Packet Blocks (§4.4) and the obsolete Packet Block
  (Appendix A); every other block type is skipped, as §3.1 asks.

Speed: the input is read in large chunks (2 MiB by default) into one
``bytes`` buffer, and the hot loops walk it with one precompiled
``Struct.unpack_from`` per record, slicing only the frame bytes and building
nothing but the yielded :class:`Frame`. Everything unusual — the end of the
buffer, a block that is not an EPB, anything that fails a check — drops out
of the hot loop into a slower path that handles exactly one record and
raises :class:`CaptureFileError` with the record's byte offset.

The batch reader (:meth:`PcapFileSource.batches`) walks only record lengths,
in place, in one 8 MiB buffer of huge pages that a regular file fills half a
MiB at a time, the walk following each read while its bytes are in the cache.

The reader never seeks, so ``open_file("-")`` reads ``tcpdump -U -w -`` from
stdin: a record cut by the pipe waits for the rest of its bytes, and only a
record cut by the end of the input is an error.
"""

from __future__ import annotations

import contextlib
import heapq
import mmap
import os
import stat
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np

from pptptop.sources import readahead
from pptptop.sources.base import CaptureFileError, Frame, InterfaceStats, Source, SourceStats
from pptptop.sources.batch import Batch, batch_from_frames

#: Bytes asked for per read; big enough that the per-read overhead vanishes.
CHUNK_SIZE: Final = 2 << 20
#: Bytes per batch: large batches amortise the per-batch array work.
BATCH_CHUNK_SIZE: Final = 8 << 20
#: Bytes per read into a batch's buffer from a regular file: the walk over the records that follows each
#: read finds them still in the core's cache (a record start depends on the previous record's length, so
#: every cache miss of the walk is paid in full: reading a whole batch at once made the walk 1.5x slower)
PIECE: Final = 512 << 10
#: Files this large are read ahead in a second process (a smaller one is read before the process would start).
READ_AHEAD_MIN: Final = 32 << 20
#: The read-ahead process's buffer: it walks each piece of it while the piece is in the cache.
READ_AHEAD_CHUNK: Final = 2 << 20
#: The largest packet a record may carry (Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD).
MAX_PACKET: Final = 262144
#: The largest pcapng block we are willing to buffer.
MAX_BLOCK: Final = 16 << 20

PCAP_MAGIC_US: Final = 0xA1B2C3D4
PCAP_MAGIC_NS: Final = 0xA1B23C4D
PCAPNG_SHB: Final = 0x0A0D0D0A
PCAPNG_BOM: Final = 0x1A2B3C4D

# pcapng block types (draft-ietf-opsawg-pcapng §10.1).
BT_IDB: Final = 0x00000001
BT_PB: Final = 0x00000002  # obsolete Packet Block, Appendix A
BT_SPB: Final = 0x00000003
BT_EPB: Final = 0x00000006

# IDB option codes (§4.2).
OPT_ENDOFOPT: Final = 0
IF_NAME: Final = 2
IF_TSRESOL: Final = 9
IF_TSOFFSET: Final = 14

PCAP_HEADER_LEN: Final = 24
PCAP_RECORD_LEN: Final = 16
EPB_FIXED_LEN: Final = 32  # type, length, interface, ts high/low, caplen, origlen, trailing length
PB_FIXED_LEN: Final = 32
SPB_FIXED_LEN: Final = 16
IDB_FIXED_LEN: Final = 20
SHB_FIXED_LEN: Final = 28

_COMPRESSED_MAGICS: Final = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\x04\x22\x4d\x18": "lz4",
    b"BZh": "bzip2",
    b"\xfd7zXZ": "xz",
}

_U32 = {e: struct.Struct(e + "I") for e in "<>"}
_new_frame = tuple.__new__


class _Input:
    """A growing window on a stream that cannot seek.

    ``buf`` holds the unconsumed tail of what was read; ``base`` is the file
    offset of ``buf[0]``. :meth:`need` reads until enough bytes follow ``pos``.

    With ``reuse`` (the batch reader), ``buf`` is a memoryview of one buffer
    that every read refills in place: no new object per chunk and no copy of
    the chunk to join it to the previous tail. A batch's bytes are then valid
    until the reader is asked for the next one (the pipeline consumes each
    batch before that). From a regular file, the buffer is filled a
    :data:`PIECE` at a time (:meth:`more`), so that the reader can walk each
    piece's records while they are in the cache.
    """

    __slots__ = ("arr", "base", "buf", "chunk", "eof", "mv", "piece", "read", "readinto", "regular")

    def __init__(self, stream: BinaryIO, chunk: int, *, reuse: bool = False) -> None:
        read1 = getattr(stream, "read1", None)
        self.read: Callable[[int], bytes] = read1 if read1 is not None else stream.read
        # readinto1 returns what a pipe has now (tcpdump -U | pptptop -r -); a raw file's readinto does too
        into = getattr(stream, "readinto1", None) or getattr(stream, "readinto", None)
        self.readinto: Callable[[memoryview], int | None] | None = into if reuse else None
        self.chunk = chunk
        # a pipe is read for what it has, whole chunks at a time: waiting for another piece could block
        self.regular = reuse and _file_size(stream) is not None
        self.piece = PIECE if self.regular else chunk
        self.arr: bytearray | mmap.mmap = bytearray()
        self.mv = memoryview(self.arr)
        self.buf: bytes | memoryview = b""
        self.base = 0
        self.eof = False

    def need(self, pos: int, n: int) -> tuple[int, bool]:
        """Make ``buf[pos:pos + n]`` available; returns the new ``pos`` and whether it is."""
        while len(self.buf) - pos < n:
            if self.eof:
                return pos, False
            if self.readinto is not None:
                pos = self._compact(pos, n)
                got = self.more(n - len(self.buf))
            else:
                data = self.read(max(self.chunk, n - (len(self.buf) - pos)))
                got = len(data)
                if got:
                    self.base += pos
                    self.buf = bytes(self.buf[pos:]) + data if pos < len(self.buf) else data
                    pos = 0
            if not got:
                self.eof = True
                return pos, False
        return pos, True

    def more(self, at_least: int = 0) -> int:
        """Read after the end of ``buf`` in place, a piece or ``at_least`` bytes if the buffer has room for
        them; the bytes read (0 at the end of the input, or when the buffer is full)."""
        used = len(self.buf)
        room = min(len(self.arr) - used, max(self.piece, at_least))
        if room <= 0 or self.eof:
            return 0
        assert self.readinto is not None
        got = self.readinto(self.mv[used:used + room]) or 0
        if got:
            self.buf = self.mv[:used + got]
        else:
            self.eof = True
        return got

    def grow(self) -> int:
        """Another piece after the end of ``buf`` from a regular file, if the buffer has room (never waits
        for a pipe); the bytes read."""
        return self.more() if self.regular else 0

    def _compact(self, pos: int, n: int) -> int:
        """Move the unconsumed tail to the front of a buffer with room for ``n`` bytes; the new ``pos``, 0."""
        size = max(self.chunk, n)
        if pos == 0 and len(self.arr) >= size:
            return 0
        tail = bytes(self.buf[pos:])  # a copy: the tail and its new place may overlap
        if len(self.arr) < size:
            self.arr = _buffer(size)  # a new buffer: earlier views keep the old one alive
            self.mv = memoryview(self.arr)
        self.mv[: len(tail)] = tail
        self.base += pos
        self.buf = self.mv[: len(tail)]
        return 0


def _file_size(stream: BinaryIO) -> int | None:
    """The size of a regular file; None for a pipe, a terminal, or a stream with no descriptor."""
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no descriptor: an in-memory stream, read as a pipe
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _buffer(size: int) -> bytearray | mmap.mmap:
    """A batch buffer: anonymous memory in 2 MiB pages where the kernel gives them (transparent huge pages
    on request, ``madvise``); the walk and the gathers of the data path touch every page of it, and with
    4 KiB pages most of those touches missed the TLB."""
    madvise = getattr(mmap, "MADV_HUGEPAGE", None)
    if madvise is None:
        return bytearray(size)
    try:
        m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # shared memory gets none
        m.madvise(madvise)
    except (OSError, ValueError):
        return bytearray(size)
    return m


class _Iface:
    """One pcapng interface, section-local: what decoding its packets needs."""

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


class PcapFileSource(Source):
    """Frames from one classic pcap or pcapng file, pipe or stdin.

    Counters (:meth:`stats`) are brought up to date once per chunk read and
    when iteration ends, not per frame: the hot loop stays free of them.
    """

    def __init__(self, path: str, stream: BinaryIO, *, label: str = "", chunk_size: int = CHUNK_SIZE,
                 close_stream: bool = True) -> None:
        self._path = path
        self._stream = stream
        self._label = label
        self._chunk = max(1, min(chunk_size, MAX_BLOCK))
        self._close_stream = close_stream
        self._ifstats: dict[str, InterfaceStats] = {}
        self._bytes_read = 0
        self._closed = False
        self._started = False
        self._if_seq = 0

    # -- Source API ---------------------------------------------------------

    @property
    def name(self) -> str:
        return self._path

    @property
    def interfaces(self) -> list[str]:
        return list(self._ifstats)

    def stats(self) -> SourceStats:
        return SourceStats(
            interfaces={k: InterfaceStats(v.name, v.linktype, v.received, v.kernel_drops, v.if_drops,
                                          v.up, v.error) for k, v in self._ifstats.items()},
            bytes_read=self._bytes_read,
        )

    def close(self) -> None:
        self._closed = True
        if not self._started:
            self._release()

    def __iter__(self) -> Iterator[Frame]:
        """Read the file header, then return the format's frame generator."""
        frames: Iterator[Frame] = self._start(batch=False)
        return frames

    def batches(self) -> Iterator[Batch]:
        """The same frames as :meth:`__iter__`, a chunk at a time as :class:`Batch` (no object per frame).

        A regular file of :data:`READ_AHEAD_MIN` bytes or more is read in a second process
        (:mod:`pptptop.sources.readahead`) while the caller works on the batches already read.
        """
        self._chunk = max(self._chunk, BATCH_CHUNK_SIZE)
        if self._read_ahead():
            return readahead.read_ahead(self._read_ahead_batches, self._counters, self._set_counters)
        batches: Iterator[Batch] = self._start(batch=True)
        return batches

    def _read_ahead(self) -> bool:
        if self._started or self._closed or not readahead.available():
            return False
        size = _file_size(self._stream)
        return size is not None and size >= READ_AHEAD_MIN

    def _read_ahead_batches(self) -> Iterator[Batch]:
        """In the read-ahead process: batches from a buffer that stays in the core's cache while it is
        walked, which the process packs into slots of a full batch's size."""
        self._chunk = READ_AHEAD_CHUNK
        batches: Iterator[Batch] = self._start(batch=True)
        return batches

    def _counters(self) -> tuple[dict[str, InterfaceStats], int]:
        return self._ifstats, self._bytes_read

    def _set_counters(self, counters: tuple[dict[str, InterfaceStats], int]) -> None:
        self._ifstats, self._bytes_read = counters

    def _start(self, batch: bool) -> Iterator[Any]:
        if self._started:
            raise RuntimeError(f"{self._path}: a capture source can be iterated only once")
        self._started = True
        if self._closed:
            return iter(())
        inp = _Input(self._stream, self._chunk, reuse=batch)
        try:
            _, ok = inp.need(0, 4)
            if not ok:
                if not inp.buf:
                    raise CaptureFileError(self._path, 0, "the file is empty: no capture file header")
                raise CaptureFileError(self._path, 0, "file ends in the middle of the file header "
                                       f"({len(inp.buf)} of {PCAP_HEADER_LEN} bytes)")
            head = bytes(inp.buf[:4])
            le, be = _U32["<"].unpack(head)[0], _U32[">"].unpack(head)[0]
            if le == PCAPNG_SHB:
                return self._iter_pcapng(inp, batch)
            if PCAP_MAGIC_US in (le, be) or PCAP_MAGIC_NS in (le, be):
                return self._iter_pcap(inp, "<" if le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">", batch)
            for magic, kind in _COMPRESSED_MAGICS.items():
                if head.startswith(magic):
                    raise CaptureFileError(self._path, 0, f"the file is {kind}-compressed; decompress it "
                                           f"first (e.g. {kind} -dc FILE | pptptop -r -)")
            raise CaptureFileError(self._path, 0, f"not a pcap or pcapng file (magic 0x{be:08x})")
        except BaseException:
            self._release()
            raise

    # -- internals ----------------------------------------------------------

    def _release(self) -> None:
        if self._close_stream:
            with contextlib.suppress(OSError):
                self._stream.close()

    def _error(self, inp: _Input, pos: int, reason: str) -> CaptureFileError:
        self._bytes_read = inp.base + len(inp.buf)
        return CaptureFileError(self._path, inp.base + pos, reason)

    def _truncated(self, inp: _Input, pos: int, total: int) -> CaptureFileError:
        have = len(inp.buf) - pos
        return self._error(inp, pos, f"file ends in the middle of a record ({have} of {total} bytes)")

    def _interface(self, name: str, linktype: int) -> InterfaceStats:
        st = self._ifstats.get(name)
        if st is None:
            st = self._ifstats[name] = InterfaceStats(name=name, linktype=linktype)
        return st

    def _iter_pcap(self, inp: _Input, e: str, batch: bool = False) -> Iterator[Any]:
        """Classic pcap (draft-ietf-opsawg-pcap §4 file header, §5 packet record).

        With ``batch``, the hot loop only notes where each record starts and
        yields a :class:`Batch` per buffer; the slow path is the same.
        """
        try:
            pos, ok = inp.need(0, PCAP_HEADER_LEN)
            if not ok:
                raise self._error(inp, 0, "file ends in the middle of the file header "
                                  f"({len(inp.buf)} of {PCAP_HEADER_LEN} bytes)")
            magic, major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
                e + "IHHiIII", inp.buf, pos)
            if major != 2:
                raise self._error(inp, 0, f"unsupported pcap version {major}.{_minor}")
            div = 1_000_000_000 if magic == PCAP_MAGIC_NS else 1_000_000
            linktype = network & 0x03FFFFFF  # the top bits carry the FCS length (§4)
            limit = min(max(snaplen, MAX_PACKET), MAX_BLOCK)
            iface = self._label
            st = self._interface(iface, linktype)
            hdr = struct.Struct(e + "IIII").unpack_from
            pos += PCAP_HEADER_LEN
            buf = inp.buf
            end = len(buf)
            n = 0
            frame = Frame
            new = _new_frame
            incl_at = _U32[e].unpack_from
            starts: list[int] = []
            while True:
                lim = end - PCAP_RECORD_LEN
                if batch:
                    # Unchecked: note each start and jump, until a record length no longer fits in the
                    # buffer (struct.error), and there read another piece into the buffer while it has
                    # room; then one vectorised check keeps the records before the first one that is cut
                    # off or longer than the limit, and the walk resumes at that one.
                    note = starts.append
                    while True:
                        try:
                            while True:
                                note(pos)
                                pos += 16 + incl_at(buf, pos + 8)[0]
                        except struct.error:
                            pass
                        if self._closed or not inp.grow():
                            break
                        buf = inp.buf
                        starts.pop()  # the walk goes on from there
                    end = len(buf)
                    got, pos = _pcap_batch(buf, starts, e, div, iface, linktype, limit)
                    starts = []
                    if got is not None:
                        n += len(got)
                        yield got
                else:
                    while pos <= lim:
                        sec, frac, incl, _orig = hdr(buf, pos)
                        p = pos + 16
                        nxt = p + incl
                        if nxt > end or incl > limit:
                            break
                        yield new(frame, (sec + frac / div, iface, linktype, buf[p:nxt]))
                        n += 1
                        pos = nxt
                # Slow path: bring counters up to date, then one record or more input.
                st.received += n
                n = 0
                self._bytes_read = inp.base + end
                if self._closed:
                    return
                if end - pos >= PCAP_RECORD_LEN:
                    incl = hdr(buf, pos)[2]
                    if incl > limit:
                        raise self._error(inp, pos, f"record length {incl} is larger than the snapshot "
                                          f"length limit ({limit} bytes)")
                    want = PCAP_RECORD_LEN + incl
                else:
                    want = PCAP_RECORD_LEN
                pos, ok = inp.need(pos, want)
                buf = inp.buf
                end = len(buf)
                self._bytes_read = inp.base + end
                if not ok:
                    if self._closed or end == pos:
                        return
                    if end - pos >= PCAP_RECORD_LEN:
                        want = PCAP_RECORD_LEN + hdr(buf, pos)[2]
                    raise self._truncated(inp, pos, want)
        finally:
            self._release()

    def _iter_pcapng(self, inp: _Input, batch: bool = False) -> Iterator[Any]:
        """pcapng (draft-ietf-opsawg-pcapng §3-§4): a hot loop for EPBs, one block at a time otherwise.

        With ``batch``, the hot loop notes each EPB's start and interface and
        yields a :class:`Batch` per buffer; single blocks become one-frame batches.
        """
        try:
            new = _new_frame
            frame = Frame
            pos = 0
            buf = inp.buf
            end = len(buf)
            e = "<"
            ifs: list[_Iface] = []
            fast: list[tuple[str, int, int, float]] = []  # (name, linktype, units/s, 2^32/units)
            counts: list[int] = []
            nfast = 0  # interfaces the hot loop may handle; 0 while any has an if_tsoffset
            epb7 = struct.Struct("<7I").unpack_from
            epb8 = struct.Struct("<8I").unpack_from
            last_ts = 0.0
            fr: Frame | None = None
            starts: list[int] = []
            ids: list[int] = []
            while True:
                if batch and pos + 28 <= end:
                    # The same walk, noting where each EPB starts instead of building frames.
                    btype, blen, iid, hi, lo, cap, _orig = epb7(buf, pos)
                    lim = end - 32
                    while True:
                        nxt = pos + blen
                        if nxt > lim and btype == 6 and not self._closed and inp.grow():
                            buf = inp.buf  # another piece read after the buffer's end: go on
                            end = len(buf)
                            lim = end - 32
                            continue
                        if (btype != 6 or nxt > lim or cap + 32 > blen or cap > 262144 or blen & 3
                                or iid >= nfast):
                            break
                        trail, btype, nblen, niid, hi, lo, cap, _orig = epb8(buf, nxt - 4)
                        if trail != blen:
                            break  # the slow path reports this block
                        counts[iid] += 1
                        starts.append(pos)
                        ids.append(iid)
                        iid = niid
                        blen = nblen
                        pos = nxt
                    if starts:
                        b = _pcapng_batch(buf, starts, ids, e, fast)
                        last_ts = float(b.ts[-1])
                        starts, ids = [], []
                        yield b
                # Hot loop: Enhanced Packet Blocks on interfaces without a timestamp offset. The
                # unpack at the end of a block reads its trailing length and the next block's header.
                if not batch and pos + 28 <= end:
                    btype, blen, iid, hi, lo, cap, _orig = epb7(buf, pos)
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
                # Slow path: exactly one block, every check spelled out.
                if fr is not None:
                    last_ts = fr[0]
                for i, c in enumerate(counts):
                    if c:
                        ifs[i].stats.received += c
                        counts[i] = 0
                self._bytes_read = inp.base + end
                if self._closed:
                    return
                pos, ok = inp.need(pos, 12)
                buf = inp.buf
                end = len(buf)
                self._bytes_read = inp.base + end
                if not ok:
                    if self._closed or end == pos:
                        return
                    total = 12 if end - pos < 8 else _U32[e].unpack_from(buf, pos + 4)[0]
                    raise self._truncated(inp, pos, total)
                btype = _U32[e].unpack_from(buf, pos)[0]
                if btype == PCAPNG_SHB:
                    bom = buf[pos + 8:pos + 12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        e = "<"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        e = ">"
                    else:
                        raise self._error(inp, pos, f"section header with a bad byte-order magic "
                                          f"0x{bom.hex()}")
                    epb7 = struct.Struct(e + "7I").unpack_from
                    epb8 = struct.Struct(e + "8I").unpack_from
                blen = _U32[e].unpack_from(buf, pos + 4)[0]
                if blen < 12 or blen & 3:
                    raise self._error(inp, pos, f"block length {blen} is not a multiple of 4 of at least 12")
                if blen > MAX_BLOCK:
                    raise self._error(inp, pos, f"block length {blen} is larger than {MAX_BLOCK} bytes")
                pos, ok = inp.need(pos, blen)
                buf = inp.buf
                end = len(buf)
                self._bytes_read = inp.base + end
                if not ok:
                    if self._closed:
                        return
                    raise self._truncated(inp, pos, blen)
                trail = _U32[e].unpack_from(buf, pos + blen - 4)[0]
                if trail != blen:
                    raise self._error(inp, pos, f"block length mismatch: the header says {blen}, "
                                      f"the trailer says {trail}")
                if btype == PCAPNG_SHB:
                    if blen < SHB_FIXED_LEN:
                        raise self._error(inp, pos, f"section header block too short ({blen} bytes)")
                    major = struct.unpack_from(e + "H", buf, pos + 12)[0]
                    if major != 1:
                        raise self._error(inp, pos, f"unsupported pcapng version {major}")
                    ifs, fast, counts, nfast = [], [], [], 0
                elif btype == BT_IDB:
                    if blen < IDB_FIXED_LEN:
                        raise self._error(inp, pos, f"interface description block too short ({blen} bytes)")
                    ifc = self._parse_idb(buf, pos, blen, e)
                    ifs.append(ifc)
                    fast.append((ifc.name, ifc.linktype, ifc.div, ifc.mul))
                    counts.append(0)
                    nfast = 0 if any(i.offset for i in ifs) else len(ifs)
                elif btype in (BT_EPB, BT_PB, BT_SPB):
                    fr, ifc = self._packet_block(inp, buf, pos, blen, btype, e, ifs, last_ts)
                    pos += blen
                    ifc.stats.received += 1
                    yield batch_from_frames([fr]) if batch else fr
                    if batch:
                        last_ts = fr.ts
                        fr = None
                    continue
                pos += blen
        finally:
            self._release()

    def _parse_idb(self, buf: bytes | memoryview, pos: int, blen: int, e: str) -> _Iface:
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
        seq = self._if_seq
        self._if_seq += 1
        if not name:
            name = f"{self._label}:if{seq}" if self._label else f"if{seq}"
        return _Iface(name, linktype, snaplen, div, offset, self._interface(name, linktype))

    def _packet_block(self, inp: _Input, buf: bytes | memoryview, pos: int, blen: int, btype: int, e: str,
                      ifs: list[_Iface], last_ts: float) -> tuple[Frame, _Iface]:
        """One EPB (§4.3), SPB (§4.4) or obsolete PB (Appendix A), fully checked."""
        if btype == BT_SPB:
            if blen < SPB_FIXED_LEN:
                raise self._error(inp, pos, f"simple packet block too short ({blen} bytes)")
            if not ifs:
                raise self._error(inp, pos, "simple packet block before any interface description block")
            ifc = ifs[0]
            orig = _U32[e].unpack_from(buf, pos + 8)[0]
            cap = min(orig, blen - SPB_FIXED_LEN)
            if ifc.snaplen:
                cap = min(cap, ifc.snaplen)
            if cap > MAX_PACKET:
                raise self._error(inp, pos, f"packet length {cap} is larger than {MAX_PACKET} bytes")
            # An SPB has no timestamp (§4.4): it inherits the previous packet's.
            return _new_frame(Frame, (last_ts, ifc.name, ifc.linktype, bytes(buf[pos + 12:pos + 12 + cap]))), ifc
        if btype == BT_EPB:
            if blen < EPB_FIXED_LEN:
                raise self._error(inp, pos, f"enhanced packet block too short ({blen} bytes)")
            iid, hi, lo, cap, _orig = struct.unpack_from(e + "5I", buf, pos + 8)
        else:
            if blen < PB_FIXED_LEN:
                raise self._error(inp, pos, f"packet block too short ({blen} bytes)")
            iid, _drops, hi, lo, cap, _orig = struct.unpack_from(e + "HHIIII", buf, pos + 8)
        if iid >= len(ifs):
            raise self._error(inp, pos, f"packet block for interface {iid}, but the section describes "
                              f"{len(ifs)} interface(s)")
        if cap + EPB_FIXED_LEN > blen:
            raise self._error(inp, pos, f"captured length {cap} does not fit in a block of {blen} bytes")
        if cap > max(MAX_PACKET, ifs[iid].snaplen):
            raise self._error(inp, pos, f"packet length {cap} is larger than {MAX_PACKET} bytes")
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


def open_file(path: str | os.PathLike[str], *, label: str = "") -> PcapFileSource:
    """Open a pcap or pcapng file; ``"-"`` reads standard input (``tcpdump -U -w - | pptptop -r -``).

    The file is opened at once (so a missing file fails here); its header is
    read when iteration starts. ``label`` names the interface of a classic
    pcap file and prefixes generated pcapng interface names.
    """
    p = os.fspath(path)
    if p == "-":
        return PcapFileSource("-", sys.stdin.buffer, label=label, close_stream=False)
    stream = open(p, "rb", buffering=0)  # noqa: SIM115 - closed by the source
    return PcapFileSource(p, stream, label=label)


class MergedSource(Source):
    """Several files read together, merged by timestamp (``-r inside.pcap -r outside.pcap``).

    Each file is read as a stream; frames come out in timestamp order as
    long as each file is in order itself (``heapq.merge``). Frames with equal
    timestamps keep the order of the files given.
    """

    def __init__(self, sources: list[PcapFileSource]) -> None:
        self._sources = sources

    @property
    def name(self) -> str:
        return ", ".join(s.name for s in self._sources)

    @property
    def interfaces(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self._sources:
            seen.update(dict.fromkeys(s.interfaces))
        return list(seen)

    def __iter__(self) -> Iterator[Frame]:
        return heapq.merge(*self._sources, key=itemgetter(0))

    def stats(self) -> SourceStats:
        total = SourceStats()
        for s in self._sources:
            st = s.stats()
            total.bytes_read += st.bytes_read
            for name, i in st.interfaces.items():
                have = total.interfaces.get(name)
                if have is None:
                    total.interfaces[name] = i
                else:
                    have.received += i.received
        return total

    def close(self) -> None:
        for s in self._sources:
            s.close()


def open_files(paths: Iterable[str | os.PathLike[str]]) -> Source:
    """Open one file, or several merged by timestamp.

    With several files, each file's unnamed interfaces are named after the
    file (``inside`` for ``inside.pcap``) so frames from the files stay apart.
    """
    plist = [os.fspath(p) for p in paths]
    if not plist:
        raise ValueError("open_files needs at least one path")
    if len(plist) == 1:
        return open_file(plist[0])
    if plist.count("-") > 1:
        raise ValueError("standard input can be read only once")
    sources: list[PcapFileSource] = []
    try:
        for p in plist:
            sources.append(open_file(p, label="stdin" if p == "-" else Path(p).stem))
    except BaseException:
        for s in sources:
            s.close()
        raise
    return MergedSource(sources)


def _pcap_batch(buf: bytes | memoryview, starts: list[int], e: str, div: int, iface: str, linktype: int,
                limit: int) -> tuple[Batch | None, int]:
    """The whole records among the classic pcap record headers at ``starts`` (§5), and where to go on.

    ``starts`` comes from an unchecked walk: its last offset is where a record
    length no longer fitted in ``buf``. The batch holds the records before
    the first one that ends past the buffer or exceeds ``limit``; the offset
    returned is that record's (the per-record path reads more input or names
    the error there).
    """
    pos = np.array(starts[:-1], dtype=np.int64)
    sec, frac, incl = _words(buf, pos, e, 3)
    bad = (pos + (16 + incl) > len(buf)) | (incl > limit)
    keep = int(bad.argmax()) if bool(bad.any()) else len(pos)
    if keep == 0:
        return None, starts[0]
    if keep < len(pos):
        pos, sec, frac, incl = pos[:keep], sec[:keep], frac[:keep], incl[:keep]
    return Batch(buf, pos + 16, incl, sec + frac / div, [(iface, linktype)]), starts[keep]


def _pcapng_batch(buf: bytes | memoryview, starts: list[int], ids: list[int], e: str,
                  ifaces: list[tuple[str, int, int, float]]) -> Batch:
    """A batch of Enhanced Packet Blocks starting at ``starts`` on interfaces ``ids`` (§4.3)."""
    pos = np.array(starts, dtype=np.int64)
    iid = np.array(ids, dtype=np.int64)
    hi, lo, cap = _words(buf, pos + 12, e, 3)
    div = np.array([d for _, _, d, _ in ifaces], dtype=np.float64)[iid]
    mul = np.array([m for _, _, _, m in ifaces], dtype=np.float64)[iid]
    # _ts in float64: the same roundings as the per-frame path, so the same floats
    ts = hi.astype(np.float64) * mul + lo.astype(np.float64) / div
    used = sorted(set(ids))
    if len(used) == 1:
        name, lt, _, _ = ifaces[used[0]]
        return Batch(buf, pos + 28, cap, ts, [(name, lt)])
    return Batch(buf, pos + 28, cap, ts, [(n, lt) for n, lt, _, _ in ifaces], iid)


def _words(buf: bytes | memoryview, pos: Any, e: str, count: int) -> list[Any]:
    """``count`` consecutive 32-bit words at every offset in ``pos``, as int64 columns.

    One gather per word through a one-byte-stride view of the buffer (the
    records are not aligned); every offset is that of a whole record header.
    """
    u32 = np.ndarray((len(buf) - 3,), dtype=np.dtype(e + "u4"), buffer=buf, strides=(1,))
    return [u32[pos + 4 * k].astype(np.int64) for k in range(count)]


