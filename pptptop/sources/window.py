"""What the pcap and the pcapng reader share: a window on a stream that cannot seek, and their errors.

The readers (:mod:`pptptop.sources.pcap`, :mod:`pptptop.sources.pcapng`) never
seek, so ``open_file("-")`` reads ``tcpdump -U -w -`` from stdin: a record cut
by the pipe waits for the rest of its bytes (:meth:`Input.need`), and only a
record cut by the end of the input is an error (:meth:`ReadState.truncated`).
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Callable
from typing import Any, BinaryIO, Final

import numpy as np

from pptptop.sources.base import CaptureFileError, InterfaceStats

#: The largest packet a record may carry (Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD).
MAX_PACKET: Final = 262144
#: The largest pcapng block (and the largest read) we are willing to buffer.
MAX_BLOCK: Final = 16 << 20

#: A 32-bit word in either byte order, by struct prefix.
U32: Final = {e: struct.Struct(e + "I") for e in "<>"}


class Input:
    """A growing window on a stream that cannot seek.

    ``buf`` holds the unconsumed tail of what was read; ``base`` is the file
    offset of ``buf[0]``. :meth:`need` reads until enough bytes follow ``pos``.

    With ``reuse`` (the batch readers), ``buf`` is a memoryview of one buffer
    that every read refills in place: no new object per chunk and no copy of
    the chunk to join it to the previous tail. A batch's bytes are then valid
    until the reader is asked for the next one (the pipeline consumes each
    batch before that). From a regular file, the buffer is filled ``piece``
    bytes at a time (:meth:`more`), so that the reader can walk each piece's
    records while they are in the cache.
    """

    __slots__ = ("arr", "base", "buf", "chunk", "eof", "mv", "piece", "read", "readinto", "regular")

    def __init__(self, stream: BinaryIO, chunk: int, *, reuse: bool = False, piece: int = 0) -> None:
        read1 = getattr(stream, "read1", None)
        self.read: Callable[[int], bytes] = read1 if read1 is not None else stream.read
        # readinto1 returns what a pipe has now (tcpdump -U | pptptop -r -); a raw file's readinto does too
        into = getattr(stream, "readinto1", None) or getattr(stream, "readinto", None)
        self.readinto: Callable[[memoryview], int | None] | None = into if reuse else None
        self.chunk = chunk
        # a pipe is read for what it has, whole chunks at a time: waiting for another piece could block
        self.regular = reuse and file_size(stream) is not None
        self.piece = piece if self.regular and piece > 0 else chunk
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


class ReadState:
    """What a reader shares with the source that started it: the counters, the interface names, the
    close flag (looked at once per chunk, never per frame), and how to name an error."""

    __slots__ = ("bytes_read", "closed", "if_seq", "ifstats", "label", "path", "release")

    def __init__(self, path: str, label: str, release: Callable[[], None]) -> None:
        self.path = path
        self.label = label
        #: closes the stream; a reader calls it when it ends, however it ends
        self.release = release
        self.ifstats: dict[str, InterfaceStats] = {}
        self.bytes_read = 0
        self.closed = False
        self.if_seq = 0  # pcapng interfaces without a name are numbered across sections

    def interface(self, name: str, linktype: int) -> InterfaceStats:
        """The counters of the interface ``name``, created on first sight."""
        st = self.ifstats.get(name)
        if st is None:
            st = self.ifstats[name] = InterfaceStats(name=name, linktype=linktype)
        return st

    def error(self, inp: Input, pos: int, reason: str) -> CaptureFileError:
        """A corrupt record at ``inp.buf[pos]``, named by its offset in the file."""
        self.bytes_read = inp.base + len(inp.buf)
        return CaptureFileError(self.path, inp.base + pos, reason)

    def truncated(self, inp: Input, pos: int, total: int) -> CaptureFileError:
        """A record of ``total`` bytes at ``inp.buf[pos]`` that the end of the input cuts."""
        have = len(inp.buf) - pos
        return self.error(inp, pos, f"file ends in the middle of a record ({have} of {total} bytes)")


def file_size(stream: BinaryIO) -> int | None:
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


def words(buf: bytes | memoryview, pos: Any, e: str, count: int) -> list[Any]:
    """``count`` consecutive 32-bit words at every offset in ``pos``, as int64 columns (the batch readers).

    One gather per word through a one-byte-stride view of the buffer (the
    records are not aligned); every offset is that of a whole record header.
    """
    u32 = np.ndarray((len(buf) - 3,), dtype=np.dtype(e + "u4"), buffer=buf, strides=(1,))
    return [u32[pos + 4 * k].astype(np.int64) for k in range(count)]
