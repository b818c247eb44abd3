"""Reading a large capture file ahead, in a second process, while the tracker works on what was read.

Walking a pcap file's records is a chain of dependent loads in Python (each
record's start is the previous one's plus its length) and takes about a third
of a ``-r FILE --json`` run; the tracker needs the rest, and both are
single-threaded under the GIL. So for a large regular file the batch reader
runs in a forked child: it walks the file in a small buffer that stays in
its core's cache, packs the batches it reads, with their offset, length, time
and interface arrays, into one of two shared-memory slots, and names a full
slot over a socket; the parent builds the :class:`Batch` on the slot
without a copy and hands the slot back when the pipeline asks for the next
batch (the contract of every batch source: a batch's bytes are valid until
then). The child is the reader the parent would have run, unchanged: the
same frames, batches, counters and errors (a corrupt file's
:class:`CaptureFileError`, with its offset, after every batch before it).

The child does nothing but read: it ignores SIGINT (Ctrl-C stops the parent,
which then ends the child), exits when the parent closes the socket or dies,
and leaves through ``os._exit`` so that nothing of the parent's (buffered
stdout, atexit handlers) runs twice.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import signal
import socket
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Final

import numpy as np

from pptptop.sources.base import CaptureFileError
from pptptop.wire import Batch

#: Slots of shared memory: one the parent works on, the rest filled ahead by the child.
SLOTS: Final = 2
#: Bytes of frame data per slot (a batch's span of the reader's buffer; a larger one goes inline).
SLOT_DATA: Final = 8 << 20
#: Frames per slot at most: its offsets, lengths, times and interface indices take 32 bytes each.
FRAMES: Final = 128 << 10

_BATCH, _INLINE, _END, _ERROR, _CRASH = range(5)


class _Channel:
    """Pickled messages over one end of a socket pair (what ``multiprocessing.connection`` does, without
    its imports: docs/benchmark.md)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.wfile = sock.makefile("wb")

    def send(self, obj: Any) -> None:
        pickle.dump(obj, self.wfile, pickle.HIGHEST_PROTOCOL)
        self.wfile.flush()

    def recv(self) -> Any:
        """The next message; EOFError when the other end has closed."""
        return pickle.load(self.rfile)

    def close(self) -> None:
        for f in (self.wfile, self.rfile):
            with contextlib.suppress(OSError):
                f.close()
        self.sock.close()


def available() -> bool:
    """Whether this platform can fork and map shared anonymous memory."""
    return hasattr(os, "fork") and hasattr(mmap, "MAP_SHARED") and hasattr(mmap, "MAP_ANONYMOUS")


def read_ahead(produce: Callable[[], Iterator[Batch]], state: Callable[[], Any],
               restore: Callable[[Any], None]) -> Iterator[Batch]:
    """The batches of ``produce()``, run in a child process.

    ``state()`` is called in the child after each batch and at the end, and
    ``restore`` in the parent with what it returned, before the batch is
    yielded (a source's counters). Closing the generator ends the child.
    """
    mems = [mmap.mmap(-1, SLOT_DATA + 32 * FRAMES, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
            for _ in range(SLOTS)]
    ours, theirs = socket.socketpair()
    with warnings.catch_warnings():
        # Python 3.12+ warns of fork in a threaded process (a lock held by another thread stays held in
        # the child): the child only runs the reader, on its own file, and takes no lock of the parent's
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its work shows in the parent's tests
        ours.close()
        _child(produce, state, mems, _Channel(theirs))
    theirs.close()
    conn = _Channel(ours)
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                raise RuntimeError("the read-ahead process ended without a word") from None
            kind = msg[0]
            if kind == _CRASH:
                raise RuntimeError(f"the read-ahead process failed:\n{msg[1]}")
            restore(msg[-1])
            if kind == _BATCH:
                _, k, span, n, ifaces, multi, _ = msg
                yield _on_slot(mems[k], span, n, ifaces, multi)
                with contextlib.suppress(OSError):  # the child may have read to the end and left
                    conn.send(k)  # the pipeline is done with the batch: the child may refill the slot
            elif kind == _INLINE:
                _, buf, offsets, lengths, ts, ifaces, ifidx, _ = msg
                yield Batch(buf, offsets, lengths, ts, ifaces, ifidx)
            elif kind == _END:
                return
            else:
                _, path, offset, reason, _ = msg
                raise CaptureFileError(path, offset, reason)
    finally:
        conn.close()  # the child, waiting for a slot or sending, sees the socket closed and exits
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # or is ended now, if it is reading
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        for m in mems:
            with contextlib.suppress(BufferError):  # a batch still held by the caller keeps its slot
                m.close()


def _on_slot(mem: mmap.mmap, span: int, n: int, ifaces: list[tuple[str, int]], multi: bool) -> Batch:
    """The batch in a slot: frame data from its start, then four columns of :data:`FRAMES` values."""
    col = [SLOT_DATA + 8 * FRAMES * j for j in range(4)]
    offsets = np.frombuffer(mem, dtype=np.int64, count=n, offset=col[0])
    lengths = np.frombuffer(mem, dtype=np.int64, count=n, offset=col[1])
    ts = np.frombuffer(mem, dtype=np.float64, count=n, offset=col[2])
    ifidx = np.frombuffer(mem, dtype=np.int64, count=n, offset=col[3]) if multi else None
    return Batch(memoryview(mem)[:span], offsets, lengths, ts, ifaces, ifidx)


def _child(produce: Callable[[], Iterator[Batch]], state: Callable[[], Any], mems: list[mmap.mmap],
           conn: _Channel) -> None:  # pragma: no cover - runs in the child, see read_ahead
    code = 0
    packer = _Packer(mems, conn, state)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            for batch in produce():
                packer.add(batch)
        except CaptureFileError as e:
            packer.flush()
            conn.send((_ERROR, e.path, e.offset, e.reason, state()))
        else:
            packer.flush()
            conn.send((_END, state()))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the parent closed the socket: it needs no more
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            packer.flush()  # what was read before the bug still goes through
            conn.send((_CRASH, traceback.format_exc(), None))
    finally:
        os._exit(code)


class _Packer:  # pragma: no cover - runs in the child
    """Packs the reader's batches, in order, into one slot until it is full, then names it to the parent.

    The reader's own buffer stays small (it fits the core's cache for the
    walk), while the parent gets batches as large as a slot. A batch too
    large for a slot goes whole through the socket.
    """

    def __init__(self, mems: list[mmap.mmap], conn: _Channel, state: Callable[[], Any]) -> None:
        self.mems = mems
        self.conn = conn
        self.state = state
        self.free = list(range(len(mems)))
        self.k = -1  # the slot being filled, or -1
        self.used = 0  # its bytes of data
        self.n = 0  # its frames
        self.ifaces: list[tuple[str, int]] = []
        self.index: dict[tuple[str, int], int] = {}
        self.cols: list[Any] = []  # the slot's four columns, while one is being filled

    def add(self, batch: Batch) -> None:
        n = len(batch)
        if n == 0:
            return
        offsets = batch.offsets
        lo = int(offsets[0])
        span = int((offsets + batch.lengths).max()) - lo
        if span > SLOT_DATA or n > FRAMES:
            self.flush()
            self.conn.send((_INLINE, bytes(batch.buf[lo:lo + span]), offsets - lo, batch.lengths, batch.ts,
                            batch.ifaces, batch.ifidx, self.state()))
            return
        if self.k >= 0 and (self.used + span > SLOT_DATA or self.n + n > FRAMES):
            self.flush()
        if self.k < 0:
            if not self.free:
                self.free.append(self.conn.recv())  # wait for the parent to be done with a slot
            self.k = self.free.pop(0)
            mem = self.mems[self.k]
            self.cols = [np.frombuffer(mem, dtype=dt, count=FRAMES, offset=SLOT_DATA + 8 * FRAMES * j)
                         for j, dt in enumerate((np.int64, np.int64, np.float64, np.int64))]
        at, used = self.n, self.used
        memoryview(self.mems[self.k])[used:used + span] = batch.buf[lo:lo + span]
        offs, lens, ts, idx = self.cols
        offs[at:at + n] = offsets + (used - lo)
        lens[at:at + n] = batch.lengths
        ts[at:at + n] = batch.ts
        here = [self.index.setdefault(key, len(self.index)) for key in batch.ifaces]
        if len(self.index) > len(self.ifaces):
            self.ifaces = list(self.index)
        if batch.ifidx is None:
            idx[at:at + n] = here[0]
        else:
            idx[at:at + n] = np.asarray(here, dtype=np.int64)[batch.ifidx]
        self.n += n
        self.used += span

    def flush(self) -> None:
        """Name the slot being filled to the parent."""
        if self.k < 0:
            return
        self.conn.send((_BATCH, self.k, self.used, self.n, self.ifaces, len(self.ifaces) > 1, self.state()))
        self.k, self.used, self.n, self.cols = -1, 0, 0, []
        self.ifaces, self.index = [], {}
