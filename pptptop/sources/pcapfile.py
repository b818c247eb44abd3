"""Capture files, pipes and stdin as a :class:`Source`: the public face of the two file readers.

:class:`PcapFileSource` reads the first bytes, then hands the input to the
classic pcap reader (:mod:`pptptop.sources.pcap`) or the pcapng reader
(:mod:`pptptop.sources.pcapng`), each of which has a frame reader and a batch
reader; :func:`open_file` and :func:`open_files` open paths (``"-"`` is
stdin), and :class:`MergedSource` merges several files by timestamp.

Speed: the input is read in large chunks (2 MiB by default) into one
``bytes`` buffer, and the readers' hot loops walk it with one precompiled
``Struct.unpack_from`` per record, slicing only the frame bytes and building
nothing but the yielded :class:`Frame`. Everything unusual drops out of the
hot loop into a slower path that handles exactly one record and raises
:class:`CaptureFileError` with the record's byte offset.

The batch readers (:meth:`PcapFileSource.batches`) walk only record lengths,
in place, in one 8 MiB buffer of huge pages that a regular file fills half a
MiB at a time, the walk following each read while its bytes are in the cache.

The readers never seek, so ``open_file("-")`` reads ``tcpdump -U -w -`` from
stdin (:mod:`pptptop.sources.window`).
"""

from __future__ import annotations

import contextlib
import heapq
import os
import sys
from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, Final

from pptptop.sources import pcap, pcapng, readahead
from pptptop.sources.base import CaptureFileError, InterfaceStats, Source, SourceStats
from pptptop.sources.window import MAX_BLOCK, U32, Input, ReadState, file_size
from pptptop.wire import Batch, Frame

#: Bytes asked for per read; big enough that the per-read overhead vanishes.
CHUNK_SIZE: Final = 2 << 20
#: Bytes per batch: large batches amortise the per-batch array work.
BATCH_CHUNK_SIZE: Final = 8 << 20
#: Bytes per read into a batch's buffer from a regular file: the walk over the records that follows each
#: read finds them still in the core's cache (a record start depends on the previous record's length, so
#: every cache miss of the walk is paid in full: reading a whole batch at once made the walk slower,
#: docs/benchmark.md)
PIECE: Final = 512 << 10
#: Files this large are read ahead in a second process (a smaller one is read before the process would start).
READ_AHEAD_MIN: Final = 32 << 20
#: The read-ahead process's buffer: it walks each piece of it while the piece is in the cache.
READ_AHEAD_CHUNK: Final = 2 << 20

_COMPRESSED_MAGICS: Final = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\x04\x22\x4d\x18": "lz4",
    b"BZh": "bzip2",
    b"\xfd7zXZ": "xz",
}


class PcapFileSource(Source):
    """Frames from one classic pcap or pcapng file, pipe or stdin.

    Counters (:meth:`stats`) are brought up to date once per chunk read and
    when iteration ends, not per frame: the hot loop stays free of them.
    """

    cuts_batches = True  # a chunk of the file at a time

    def __init__(self, path: str, stream: BinaryIO, *, label: str = "", chunk_size: int = CHUNK_SIZE,
                 close_stream: bool = True) -> None:
        self._path = path
        self._stream = stream
        self._chunk = max(1, min(chunk_size, MAX_BLOCK))
        self._close_stream = close_stream
        self._state = ReadState(path, label, self._release)
        self._started = False

    # -- Source API ---------------------------------------------------------

    @property
    def name(self) -> str:
        return self._path

    @property
    def interfaces(self) -> list[str]:
        return list(self._state.ifstats)

    def stats(self) -> SourceStats:
        return SourceStats(
            interfaces={k: InterfaceStats(v.name, v.linktype, v.received, v.kernel_drops, v.if_drops,
                                          v.up, v.error) for k, v in self._state.ifstats.items()},
            bytes_read=self._state.bytes_read,
        )

    def close(self) -> None:
        self._state.closed = True
        if not self._started:
            self._release()

    def __iter__(self) -> Iterator[Frame]:
        """Read the file header, then return the format's frame reader."""
        if not self._begin():
            return iter(())
        inp = Input(self._stream, self._chunk)
        order = self._format(inp)
        return pcap.frames(inp, self._state, order) if order else pcapng.frames(inp, self._state)

    def batches(self) -> Iterator[Batch]:
        """The same frames as :meth:`__iter__`, a chunk at a time as :class:`Batch` (no object per frame).

        A regular file of :data:`READ_AHEAD_MIN` bytes or more is read in a second process
        (:mod:`pptptop.sources.readahead`) while the caller works on the batches already read.
        """
        self._chunk = max(self._chunk, BATCH_CHUNK_SIZE)
        if self._read_ahead():
            return readahead.read_ahead(self._read_ahead_batches, self._counters, self._set_counters)
        return self._batches()

    def _read_ahead(self) -> bool:
        if self._started or self._state.closed or not readahead.available():
            return False
        size = file_size(self._stream)
        return size is not None and size >= READ_AHEAD_MIN

    def _read_ahead_batches(self) -> Iterator[Batch]:
        """In the read-ahead process: batches from a buffer that stays in the core's cache while it is
        walked, which the process packs into slots of a full batch's size."""
        self._chunk = READ_AHEAD_CHUNK
        return self._batches()

    def _batches(self) -> Iterator[Batch]:
        """Read the file header, then return the format's batch reader."""
        if not self._begin():
            return iter(())
        inp = Input(self._stream, self._chunk, reuse=True, piece=PIECE)
        order = self._format(inp)
        return pcap.batches(inp, self._state, order) if order else pcapng.batches(inp, self._state)

    def _counters(self) -> tuple[dict[str, InterfaceStats], int]:
        return self._state.ifstats, self._state.bytes_read

    def _set_counters(self, counters: tuple[dict[str, InterfaceStats], int]) -> None:
        self._state.ifstats, self._state.bytes_read = counters

    def _begin(self) -> bool:
        """Mark the source started (it is read once); False if it was closed before."""
        if self._started:
            raise RuntimeError(f"{self._path}: a capture source can be iterated only once")
        self._started = True
        return not self._state.closed

    def _format(self, inp: Input) -> str:
        """The file's format from its first four bytes: a pcap byte order (``"<"`` or ``">"``), or ``""``
        for pcapng. Anything else releases the stream and raises :class:`CaptureFileError`."""
        try:
            _, ok = inp.need(0, 4)
            if not ok:
                if not inp.buf:
                    raise CaptureFileError(self._path, 0, "the file is empty: no capture file header")
                raise CaptureFileError(self._path, 0, "file ends in the middle of the file header "
                                       f"({len(inp.buf)} of {pcap.HEADER_LEN} bytes)")
            head = bytes(inp.buf[:4])
            if U32["<"].unpack(head)[0] == pcapng.SHB:
                return ""
            order = pcap.byte_order(head)
            if order is not None:
                return order
            for magic, kind in _COMPRESSED_MAGICS.items():
                if head.startswith(magic):
                    raise CaptureFileError(self._path, 0, f"the file is {kind}-compressed; decompress it "
                                           f"first (e.g. {kind} -dc FILE | pptptop -r -)")
            be = U32[">"].unpack(head)[0]
            raise CaptureFileError(self._path, 0, f"not a pcap or pcapng file (magic 0x{be:08x})")
        except BaseException:
            self._release()
            raise

    # -- internals ----------------------------------------------------------

    def _release(self) -> None:
        if self._close_stream:
            with contextlib.suppress(OSError):
                self._stream.close()


def open_file(path: str | os.PathLike[str], *, label: str = "") -> PcapFileSource:
    """Open a pcap or pcapng file; ``"-"`` reads standard input (``tcpdump -U -w - | pptptop -r -``).

    The file is opened at once (so a missing file fails here); its header is
    read when iteration starts. ``label`` names the interface of a classic
    pcap file and prefixes generated pcapng interface names.
    """
    p = os.fspath(path)
    if p == "-":
        # a raw reader of its own on standard input's descriptor, not sys.stdin.buffer: the capture thread
        # may be blocked reading a pipe whose writer stays open when the process exits (SIGTERM), and the
        # interpreter's shutdown must not wait for the lock of the buffer that thread holds
        raw = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115 - fd 0 stays open
        return PcapFileSource("-", raw, label=label, close_stream=False)
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
