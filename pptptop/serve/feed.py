"""The service side of ``--ui-socket``: one capture, offered to every attached UI as a pcapng stream.

Why frames and not snapshots: an attached UI (``pptptop --attach``, and each
browser session of ``--serve``) runs its own tracker on the frames, so every
screen, the ladder, the packet view and the filter work unchanged, and no
second format of the tracker's state has to be kept in step with the UI. The
cost is the decoding a client does again, which is its own CPU, not the
capture's.

The pipeline's batch hook (:meth:`FrameFeed.batch`, in the capture thread)
encodes each batch as Enhanced Packet Blocks (numpy, :class:`PcapNgEncoder`),
keeps it in a bounded backlog of recent frames and queues it for each client;
a thread of its own writes to the clients without blocking. A client whose
queue is full loses the newest batches (counted, said when it leaves): it
never slows the capture. The socket is created mode 0600 (the umask while it
is bound), by the user the service runs as, never over an existing file (a
stale socket of ours that nobody answers on is replaced), and removed at exit.
The stream is one-way: nothing a client sends is read, so an attached UI
cannot stop the capture or the recording.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import stat
import struct
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import numpy as np

from pptptop.record.writers import BT_EPB, BT_IDB, DEFAULT_SNAPLEN, IF_NAME, IF_TSRESOL, PcapNgEncoder
from pptptop.sources.attach import hello_line
from pptptop.wire import Batch

if TYPE_CHECKING:
    from pptptop.pipeline import Pipeline

#: default bytes of recent frames a newly attached UI starts from (``--ui-backlog``)
BACKLOG_BYTES: Final = 32 << 20
#: bytes a client may have waiting beyond the backlog before it loses batches
CLIENT_SLACK: Final = 8 << 20
#: at most this many clients at once; more are refused (closed at once)
MAX_CLIENTS: Final = 32
EPB_FIXED: Final = 32  # an EPB's bytes besides the packet and its padding (pcapng §4.3)
#: timestamps in units of 2^-32 s (if_tsresol with the top bit set, pcapng §4.2): a capture time (a double
#: of about 2^31 s, whose last bit is 2^-22 s) is then a whole number of units, so the attached reader gets the
#: very double the service's tracker saw, whatever resolution the capture had
TSRESOL_BITS: Final = 32


class FeedError(Exception):
    """The UI socket cannot be created: one sentence for the user."""


class _Client:
    __slots__ = ("dropped", "frames", "offset", "pending", "queue", "sock", "watched")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.queue: deque[bytes] = deque()
        self.pending = 0  # bytes queued, the first chunk's sent part included
        self.offset = 0  # bytes of queue[0] already sent
        self.dropped = 0  # frames this client lost because it read too slowly
        self.frames = 0
        self.watched = 0  # the selector events registered for it (0: not registered)


class _Raw:
    """A batch kept while no client is attached: its own copy, and the IDs of its interfaces."""

    __slots__ = ("batch", "index")

    def __init__(self, batch: Batch, index: list[int]) -> None:
        self.batch = batch
        self.index = index


class _Entry:
    """One batch of the backlog: its EPBs, or the copy they are made from when first needed."""

    __slots__ = ("data", "frames", "size")

    def __init__(self, data: bytes | _Raw, frames: int, size: int) -> None:
        self.data = data
        self.frames = frames
        self.size = size  # bytes of its EPBs

    def encoded(self) -> bytes:
        data = self.data
        if isinstance(data, _Raw):
            data = self.data = _epbs(data.batch, data.index)
        return data


class FrameFeed:
    """A listening Unix socket that streams the pipeline's frames to every attached UI."""

    def __init__(self, path: str, *, backlog: int = BACKLOG_BYTES, temporary_dir: str | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.backlog_limit = backlog
        self.say = say or _stderr
        self._dir = temporary_dir  # removed at close: the directory --serve made for its socket
        self._listener = _listen(path)
        self._ifaces: dict[tuple[str, int], int] = {}
        self._head: list[bytes] = [PcapNgEncoder("pptptop --ui-socket").begin()]  # SHB, then an IDB per interface
        self._backlog: deque[_Entry] = deque()
        self._backlog_bytes = 0
        self._clients: list[_Client] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._pipeline: Pipeline | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._sel = selectors.DefaultSelector()
        self.dropped = 0  # frames lost by slow clients, all together
        self.served = 0  # clients attached so far

    # ---------------------------------------------------------------- capture thread
    def start(self, pipeline: Pipeline) -> None:
        """Take the pipeline's frames (a batch hook) and start serving them."""
        self._pipeline = pipeline
        pipeline.batch_hooks.append(self.batch)
        self._thread = threading.Thread(target=self._serve, name="pptptop-ui-feed", daemon=True)
        self._thread.start()

    def batch(self, first: int, batch: Batch) -> None:
        """The batch hook: the batch kept in the backlog and queued as EPBs for each client (never blocks).

        While no client is attached the batch is only copied (its source reuses its buffer); it is encoded
        if a client attaches while it is still in the backlog. So a service nobody watches pays a copy.
        """
        n = len(batch)
        if not n:
            return
        defs, index = self._register(batch)
        size = int(EPB_FIXED * n + batch.lengths.sum() + (-batch.lengths % 4).sum())
        # a peek without the lock: a client attaching meanwhile encodes the copy itself (_accept)
        entry = _Entry(_epbs(batch, index) if self._clients else _Raw(_copy(batch), index), n, size)
        with self._lock:
            self._head.extend(defs)
            self._backlog.append(entry)
            self._backlog_bytes += size
            while self._backlog_bytes > self.backlog_limit and len(self._backlog) > 1:
                self._backlog_bytes -= self._backlog.popleft().size
            if not self._clients:
                return
            epbs = entry.encoded()
            limit = self.backlog_limit + CLIENT_SLACK
            for c in self._clients:
                if c.pending and c.pending + size > limit:
                    c.dropped += n
                    self.dropped += n
                    continue
                if defs:  # a new interface: the client needs its IDB before the first EPB that names it
                    c.queue.append(b"".join(defs))
                    c.pending += len(c.queue[-1])
                c.queue.append(epbs)
                c.pending += size
                c.frames += n
        self._wake()

    def _register(self, batch: Batch) -> tuple[list[bytes], list[int]]:
        """The IDBs of the interfaces new in ``batch``, and the IDs of its interfaces (capture thread only)."""
        defs = []
        for key in batch.ifaces:
            if key not in self._ifaces:
                self._ifaces[key] = len(self._ifaces)
                defs.append(_idb(*key))
        return defs, [self._ifaces[key] for key in batch.ifaces]

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    # ---------------------------------------------------------------- the feed's thread
    def _serve(self) -> None:
        sel = self._sel
        sel.register(self._listener, selectors.EVENT_READ, "accept")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        finished = False
        while not self._closed.is_set():
            for key, events in sel.select(0.5):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    with contextlib.suppress(BlockingIOError, OSError):
                        self._wake_r.recv(4096)
                else:
                    self._service(key.data, events)
            finished = finished or (self._pipeline is not None and self._pipeline.done.is_set())
            with self._lock:
                clients = list(self._clients)
            for c in clients:
                if finished and not c.pending:  # the input has ended and this client has all of it
                    self._drop(c)
                    continue
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.pending else 0)
                if c.watched == 0:
                    sel.register(c.sock, want, c)
                elif c.watched != want:
                    sel.modify(c.sock, want, c)
                c.watched = want

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        c = _Client(sock)
        live = self._pipeline is not None and self._pipeline.source.live
        name = self._pipeline.source.name if self._pipeline is not None else ""
        with self._lock:
            full = len(self._clients) >= MAX_CLIENTS
            entries = list(self._backlog)
        if full:
            sock.close()
            self.say(f"--ui-socket: refused a client: {MAX_CLIENTS} are attached already")
            return
        for e in entries:  # the copies kept while nobody watched, encoded without holding the capture up
            e.encoded()
        with self._lock:
            first = hello_line(live, name) + b"".join(self._head)
            c.queue.append(first)
            c.pending = len(first)
            for e in self._backlog:  # the few batches kept since are encoded here
                c.queue.append(e.encoded())
                c.pending += e.size
                c.frames += e.frames
            self._clients.append(c)
            self.served += 1

    def _service(self, c: _Client, events: int) -> None:
        if events & selectors.EVENT_READ:
            try:
                data = c.sock.recv(4096)  # a client sends nothing; an empty read means it has gone
            except BlockingIOError:
                data = b"-"
            except OSError:
                data = b""
            if not data:
                self._drop(c)
                return
        if events & selectors.EVENT_WRITE:
            with self._lock:
                while c.queue:
                    head = c.queue[0]
                    try:
                        sent = c.sock.send(memoryview(head)[c.offset:])
                    except BlockingIOError:
                        return
                    except OSError:
                        break
                    c.offset += sent
                    c.pending -= sent
                    if c.offset < len(head):
                        return
                    c.queue.popleft()
                    c.offset = 0
                else:
                    return
            self._drop(c)

    def _drop(self, c: _Client) -> None:
        with self._lock:
            if c not in self._clients:
                return
            self._clients.remove(c)
        if c.watched:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(c.sock)
        with contextlib.suppress(OSError):
            c.sock.close()
        if c.dropped:
            self.say(f"--ui-socket: a client left; {c.dropped:,} of {c.frames + c.dropped:,} frames were not sent "
                     "to it (it read too slowly)")

    # ---------------------------------------------------------------- end
    def close(self) -> None:
        """Stop serving, close every client and remove the socket (and the directory made for it)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            with contextlib.suppress(OSError):
                c.sock.close()
        _remove_socket(self.path, self._listener)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        self._sel.close()
        if self._dir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self._dir)


def _idb(name: str, linktype: int) -> bytes:
    """An Interface Description Block (pcapng §4.2) with ``if_name`` and the binary ``if_tsresol``."""
    opts = b""
    for code, value in ((IF_NAME, name.encode("utf-8")), (IF_TSRESOL, bytes([0x80 | TSRESOL_BITS]))):
        if code == IF_NAME and not value:
            continue
        opts += struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
    body = struct.pack("<HHI", linktype, 0, DEFAULT_SNAPLEN) + opts + b"\0\0\0\0"
    total = 12 + len(body)
    return struct.pack("<II", BT_IDB, total) + body + struct.pack("<I", total)


def _epbs(batch: Batch, index: list[int]) -> bytes:
    """The Enhanced Packet Blocks (pcapng §4.3) of every frame of ``batch``; ``index``: its interfaces' IDs."""
    n = len(batch)
    caplen = batch.lengths
    pad = -caplen % 4
    total = 32 + caplen + pad
    units = np.floor(np.maximum(batch.ts, 0.0) * float(1 << TSRESOL_BITS)).astype(np.uint64)
    head = np.empty((n, 7), dtype="<u4")
    head[:, 0] = BT_EPB
    head[:, 1] = total
    head[:, 2] = index[0] if batch.ifidx is None else np.asarray(index, dtype=np.int64)[batch.ifidx]
    head[:, 3] = units >> np.uint64(32)
    head[:, 4] = units & np.uint64(0xFFFFFFFF)
    head[:, 5] = caplen
    head[:, 6] = caplen
    hb = head.tobytes()
    buf = batch.buf
    zeros = b"\0\0\0"
    parts: list[bytes | memoryview] = []
    add = parts.append
    for i, (o, c, t, p) in enumerate(zip(batch.offsets.tolist(), caplen.tolist(), total.tolist(), pad.tolist(),
                                         strict=True)):
        add(hb[28 * i:28 * i + 28])
        add(buf[o:o + c])
        add(zeros[:p] + t.to_bytes(4, "little"))
    return b"".join(parts)


def _copy(batch: Batch) -> Batch:
    """The batch on bytes and columns of its own: its source refills the buffer (and, read ahead, the
    columns) when the next batch is read (as the recorder copies, pptptop.record.recorder)."""
    offsets = batch.offsets
    lengths = batch.lengths.copy()
    lo = int(offsets.min())
    hi = int((offsets + lengths).max())
    ifidx = None if batch.ifidx is None else batch.ifidx.copy()
    return Batch(bytes(batch.buf[lo:hi]), offsets - lo, lengths, batch.ts.copy(), list(batch.ifaces), ifidx)


def private_socket_path() -> tuple[str, str]:
    """``--serve`` without ``--ui-socket``: a socket in a new directory only this user can enter."""
    d = tempfile.mkdtemp(prefix="pptptop-ui-")  # mode 0700
    return os.path.join(d, "ui.sock"), d


def _listen(path: str) -> socket.socket:
    """Bind ``path`` mode 0600 without following or replacing anything but a stale socket of ours."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            _bind(sock, path)
        except OSError as e:
            if e.errno != errno.EADDRINUSE or not _stale(path):
                raise
            os.unlink(path)
            _bind(sock, path)
        sock.listen(MAX_CLIENTS)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise FeedError(f"--ui-socket: {path} exists and is not a socket left by an earlier pptptop: "
                            "remove it or choose another path") from None
        raise FeedError(f"--ui-socket: cannot create {path}: {e.strerror or e}") from None
    sock.setblocking(False)
    return sock


def _bind(sock: socket.socket, path: str) -> None:
    """bind(2) creates the socket file with the umask's mode and fails on any existing name (a planted
    link included): 0600 from the start, no window in which another user could connect."""
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)


def _stale(path: str) -> bool:
    """Whether ``path`` is a socket owned by us that nobody listens on (an earlier run that was killed)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        probe.close()
    return False


def _remove_socket(path: str, sock: socket.socket) -> None:
    """Unlink the socket, only if the name is still the one we bound (not a file put there since)."""
    try:
        st = os.lstat(path)
        mine = os.fstat(sock.fileno())
    except OSError:
        return
    if stat.S_ISSOCK(st.st_mode) and st.st_uid == mine.st_uid:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _stderr(text: str) -> None:
    print(f"pptptop: {text}", file=sys.stderr, flush=True)
