"""``-w FILE``: record every captured packet, with tcpdump-style rotation.

The recorder is a pipeline batch hook (a frame hook on the per-frame path).
The capture thread only appends a private copy of the batch to a pending
list (one lock, one append); a flusher thread encodes and writes it every
half :data:`FLUSH_INTERVAL`, as soon as :data:`FLUSH_BYTES` are pending, and
as soon as a tunnel closes. A whole batch is encoded at once when nothing in
it needs a decision per packet (:meth:`Encoder.encode_batch`).

The file trails the capture by about :data:`FLUSH_INTERVAL` at most: the
capture thread waits before it queues more while a frame it queued that long ago is
not written yet, as it waits when the queue is full (a flusher thread that
shares the interpreter with a busy tracker falls behind by seconds
otherwise, and a ``kill -9`` loses them). Reading a file or pipe waits for
the disk as long as it takes; live capture waits only while the flusher
makes progress (:data:`STALLED_AFTER`: the drain thread holds the packets
meanwhile), so a stuck or full disk never stalls the capture: what cannot
be written is counted in :attr:`RecordingState.unrecorded`, shown, logged,
and the capture goes on.

Crash-safety. Every file begins with its header, written at once, and
records are written by ``write(2)`` straight to the descriptor (nothing
waits in a user-space buffer longer than the flush interval). A write to a
regular file can only stop short between two pages: the kernel checks for a
fatal signal before copying each page (``generic_perform_write``). So in
pcapng no record crosses a page boundary: when the next record does not fit
in what is left of the page, the rest of the page is filled with a block of
a local-use type (:data:`FILLER_TYPE`; draft-ietf-opsawg-pcapng §3.1: readers
skip blocks they do not know — tshark, capinfos, editcap and scapy do) and
the record starts the next page. A ``kill -9`` then leaves whole records
only. The price is space: on average half a record per page (about 3 % for
small packets, up to 25 % for 1500-byte ones). Records bigger than a page (jumbo or GRO frames, rare on PPTP)
and classic pcap, which has no way to pad, keep a window of a few
microseconds per page in which the kill can cut the last record. A write that
fails or is cut short for another reason (disk full, I/O error) is cut back
with ``ftruncate`` to the last whole record, and the encoder forgets any
interface block that did not land, so the file stays readable and later
packets can be added when space comes back.

Rotation (tcpdump's ``-C``, ``-G``, ``-W``): a new file starts before a
packet that would take the current one past ``size`` bytes, or when the
packet's capture time is ``seconds`` past the current file's first packet;
``keep`` deletes the oldest file this run created once more than that many
exist. Rotated names carry a sequence number and the start time:
``out-00003-20261123T073205Z.pcapng``.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

from pptptop.record.writers import (
    Encoder,
    PcapEncoder,
    PcapNgEncoder,
    RecordError,
    describe_os_error,
    open_output,
)
from pptptop.sources.base import Frame
from pptptop.sources.batch import Batch
from pptptop.track.events import Event, EventKind
from pptptop.track.tracker import Tracker

log = logging.getLogger("pptptop.record")

FLUSH_INTERVAL: Final = 1.0  # seconds: the longest a captured packet waits before write(2) (see _behind)
FLUSH_BYTES: Final = 1 << 20  # pending bytes that wake the flusher early
MAX_PENDING_BYTES: Final = 64 << 20  # beyond this (a stuck disk) packets are counted as unrecorded
#: live, a full queue waits for the flusher while it took the queue or finished a write this recently; after
#: that (a stuck disk) packets are counted as unrecorded
STALLED_AFTER: Final = 1.0
RETRY_INTERVAL: Final = 1.0  # after a failed open or write, wait this long before trying again
PAGE: Final = mmap.PAGESIZE  # the kernel stops a write short only between pages
WRITE_BYTES: Final = 256 << 10  # one write(2) per this much (whole pages of whole records)
MEGABYTE: Final = 1_000_000  # tcpdump's -C unit
FRAME_OVERHEAD: Final = 40  # bytes of pending accounting per frame beyond its data
CAPTURE_SUFFIXES: Final = (".pcapng", ".pcap", ".cap", ".ntar")
#: pcapng block type of page fillers: bit 31 set, "reserved for local use" (§10.1)
FILLER_TYPE: Final = 0x80707470
MIN_FILLER: Final = 12  # type, total length, trailing length
NOT_A_PACKET: Final = -1
_FILL_HEAD = struct.Struct("<II")
_U32 = struct.Struct("<I")

ErrorCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Rotation:
    """When to start a new file and how many to keep (tcpdump ``-C``/``-G``/``-W``)."""

    size: int | None = None  # bytes
    seconds: float | None = None
    keep: int | None = None

    @property
    def active(self) -> bool:
        return self.size is not None or self.seconds is not None


@dataclass(frozen=True, slots=True)
class RecordingState:
    """What the UI header and ``--json`` show about ``-w``."""

    recording: bool  # a file is open and the last write succeeded
    path: str  # the file being written ("" when none is open)
    files: int  # files created so far
    packets: int  # packets written
    bytes: int  # bytes written, all files together
    unrecorded: int  # captured packets that are not in any file
    errors: int  # failed opens and writes
    last_error: str  # the last problem, one sentence ("" if none)
    pending: int  # packets waiting for the next flush

    def as_dict(self) -> dict[str, object]:
        return {"recording": self.recording, "file": self.path, "files": self.files,
                "packets": self.packets, "bytes": self.bytes, "unrecorded": self.unrecorded,
                "errors": self.errors, "last_error": self.last_error or None}


def wants_pcapng(path: str, force_pcap: bool = False) -> bool:
    """pcapng unless ``--pcap`` or the name ends in ``.pcap`` (or ``.cap``)."""
    return not force_pcap and not path.lower().endswith((".pcap", ".cap"))


def rotated_name(base: str, seq: int, start: float) -> str:
    """``dir/out.pcapng`` → ``dir/out-00003-20261123T073205Z.pcapng`` (UTC start time)."""
    n = next((len(s) for s in CAPTURE_SUFFIXES if base.lower().endswith(s)), 0)
    stem, suffix = (base[:-n], base[-n:]) if n else (base, "")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start))
    return f"{stem}-{seq:05d}-{stamp}{suffix}"


@lru_cache(maxsize=PAGE // 4)
def filler(size: int) -> bytes:
    """A pcapng block of exactly ``size`` bytes (a multiple of 4, at least 12) that readers skip."""
    return _FILL_HEAD.pack(FILLER_TYPE, size) + bytes(size - 12) + _U32.pack(size)


class _Out:
    """One open output file and the records placed in its current page but not yet written."""

    __slots__ = ("encoder", "fd", "first_ts", "items", "offset", "packets", "pad", "path", "pending")

    def __init__(self, fd: int, path: str, encoder: Encoder, pad: bool) -> None:
        self.fd = fd
        self.path = path
        self.encoder = encoder
        self.pad = pad  # pcapng: fill page ends so no write crosses a page
        self.offset = 0  # bytes written
        self.packets = 0
        self.first_ts: float | None = None
        self.items: list[tuple[bytes, int]] = []  # (bytes, encoder state before; -1: not a packet)
        self.pending = 0  # bytes in items

    @property
    def end(self) -> int:
        return self.offset + self.pending


class Recorder:
    """The ``-w`` frame hook. Thread-safe: the capture thread calls it, a flusher thread writes.

    Life cycle: :meth:`open` (creates the first file, before privileges are
    dropped), :meth:`start` (the flusher thread, after), frames through
    ``__call__``, :meth:`close` (flushes, syncs, closes; idempotent).
    """

    def __init__(self, path: str | os.PathLike[str], *, pcapng: bool | None = None,
                 rotation: Rotation | None = None, linktype: int | None = None,
                 capture_filter: str | None = None, application: str = "pptptop",
                 flush_interval: float = FLUSH_INTERVAL, max_pending_bytes: int = MAX_PENDING_BYTES,
                 wait_when_full: bool = False, on_error: ErrorCallback | None = None) -> None:
        self.base = os.fspath(path)
        self.pcapng = wants_pcapng(self.base) if pcapng is None else pcapng
        self.rotation = rotation or Rotation()
        self.linktype = linktype
        self.capture_filter = capture_filter
        self.application = application
        self.flush_interval = flush_interval
        self.max_pending_bytes = max_pending_bytes
        # a file or a pipe waits for the disk as long as it takes, so it loses nothing; live capture waits only
        # while the disk keeps up (the drain thread holds the packets meanwhile), never for a stuck disk
        self.wait_when_full = wait_when_full
        self._progress_at = 0.0  # when the flusher last took the queue or finished a write
        self.on_error = on_error
        self._lock = threading.Lock()  # pending list and its counters
        self._drained = threading.Condition(self._lock)  # notified when the flusher takes the list and wrote it
        self._io = threading.RLock()  # the file; re-entrant so a signal handler may close
        self._pending: list[Frame | Batch] = []
        self._pending_frames = 0
        self._pending_bytes = 0
        self._dropped_pending = 0  # frames refused because the pending list was full
        self._pending_since = 0.0  # when the oldest frame of the pending list was queued (0: none is)
        self._writing_since = 0.0  # the same for the list being written now
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_soon = False
        self._thread: threading.Thread | None = None
        self._out: _Out | None = None
        self._seq = 0
        self._created: deque[str] = deque()
        self._retry_at = 0.0
        self._last_path = ""
        self.files = 0
        self.packets = 0
        self.bytes = 0
        self.unrecorded = 0
        self.errors = 0
        self.last_error = ""
        self._fail_base: int | None = None  # unrecorded count when the current failure began
        self.closed = False

    # ------------------------------------------------------------------ life cycle
    def open(self) -> bool:
        """Create the first file now (as root, before the drop). False, with the error shown, if it failed."""
        with self._io:
            return self._open_next(time.time())

    def start(self) -> None:
        """Start the flusher thread (after privileges are dropped: capabilities are per thread)."""
        if self._thread is None and not self.closed:
            self._progress_at = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="pptptop-recorder", daemon=True)
            self._thread.start()

    def attach(self, tracker: Tracker) -> None:
        """Flush as soon as a tunnel ends, so the 3 a.m. failure is on disk right away."""
        tracker.subscribe(self._on_event)

    def close(self) -> None:
        """Write everything pending, sync and close. Safe to call twice and from a signal handler."""
        self._stop.set()
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=10.0)
        with self._io:
            if self.closed:
                return
            self.flush()
            self._close_file()
            self.closed = True

    def fds(self) -> list[int]:
        """Descriptors of open output files (to hand to :func:`pptptop.privdrop.drop_privileges`)."""
        out = self._out
        return [out.fd] if out is not None else []

    @property
    def directory(self) -> str:
        return os.path.dirname(os.path.abspath(self.base))

    def state(self) -> RecordingState:
        out = self._out
        return RecordingState(
            recording=out is not None and not self._failing and not self.closed,
            path=out.path if out is not None else self._last_path,
            files=self.files, packets=self.packets, bytes=self.bytes,
            unrecorded=self.unrecorded + self._dropped_pending, errors=self.errors,
            last_error=self.last_error, pending=self._pending_frames)

    # ------------------------------------------------------------------ capture thread
    def __call__(self, number: int, frame: Frame) -> None:
        """The frame hook: queue the frame for the flusher (never blocks on the disk)."""
        self._queue(frame, 1, len(frame.data) + FRAME_OVERHEAD)

    def batch(self, number: int, batch: Batch) -> None:
        """The batch hook: queue every frame of ``batch`` at once (the capture keeps its vectorised path).

        The flusher reads the batch later, after its source may have reused
        what it lies on: a file reader refills its buffer, and the read-ahead
        reader's child refills the shared slot that holds the bytes *and* the
        offset, length, time and interface columns. So everything kept is
        copied here: the bytes the frames span (in one piece, unless they are
        already private ``bytes``) and every column (a few percent of the bytes).
        """
        n = len(batch)
        if not n:
            return
        offsets = batch.offsets
        lengths = batch.lengths.copy()
        lo = int(offsets.min())
        hi = int((offsets + lengths).max())
        ifidx = None if batch.ifidx is None else batch.ifidx.copy()
        if isinstance(batch.buf, bytes):
            batch = Batch(batch.buf, offsets.copy(), lengths, batch.ts.copy(), list(batch.ifaces), ifidx)
        else:
            batch = Batch(bytes(batch.buf[lo:hi]), offsets - lo, lengths, batch.ts.copy(), list(batch.ifaces),
                          ifidx)
        self._queue(batch, n, hi - lo + FRAME_OVERHEAD * n)

    def _queue(self, item: Frame | Batch, frames: int, size: int) -> None:
        now = time.monotonic()
        with self._lock:
            while (((self._pending and self._pending_bytes + size > self.max_pending_bytes) or self._behind(now))
                   and not self.closed and self._thread is not None and self._thread.is_alive()
                   and (self.wait_when_full or now - self._progress_at < STALLED_AFTER)):
                self._wake.set()
                self._drained.wait(0.25)
                now = time.monotonic()
            full = self._pending_bytes + size > self.max_pending_bytes
            if self.closed or (full and not (self.wait_when_full and not self._pending)):
                self._dropped_pending += frames
                return
            self._pending.append(item)
            self._pending_frames += frames
            self._pending_bytes += size
            if not self._pending_since:
                self._pending_since = now
            wake = self._pending_bytes >= FLUSH_BYTES or self._flush_soon
            self._flush_soon = False
        if wake:
            self._wake.set()

    def _behind(self, now: float) -> bool:
        """Whether a frame queued :attr:`flush_interval` ago or earlier is not written yet (lock held)."""
        since = self._writing_since or self._pending_since
        return bool(since) and now - since >= self.flush_interval

    def _on_event(self, ev: Event) -> None:
        if ev.kind is EventKind.ENDED:
            # the closing frame reaches the hook after this event: wake now and once more then
            self._flush_soon = True
            self._wake.set()

    # ------------------------------------------------------------------ flusher
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval / 2)  # a frame waits half of flush_interval, the rest is writing
            self._wake.clear()
            try:
                self.flush()
            except Exception as e:  # a bug must not silently stop recording forever
                log.exception("recorder flush failed")
                self._error(f"recording failed: {e}")

    def flush(self) -> None:
        """Write every pending frame now (any thread)."""
        with self._io:
            with self._lock:
                items, self._pending = self._pending, []
                self._pending_bytes = 0
                self._pending_frames = 0
                self._writing_since, self._pending_since = self._pending_since, 0.0
                self._progress_at = time.monotonic()
                self._drained.notify_all()
            try:
                if items:
                    self._write_items_of(items)
            finally:
                with self._lock:
                    self._writing_since = 0.0
                    self._drained.notify_all()

    def _write_items_of(self, items: list[Frame | Batch]) -> None:
        write = self._write_one
        for item in items:
            if isinstance(item, Frame):
                write(item.ts, item.iface, item.linktype, item.data)
                continue
            if not self._write_whole(item):
                self._write_rest(item)
        if self._out is not None and self._out.items:
            self._write_items(self._out)

    def _write_rest(self, batch: Batch) -> None:
        """The frames of a batch one by one."""
        write = self._write_one
        buf = batch.buf if isinstance(batch.buf, bytes) else bytes(batch.buf)  # bytes already: see batch()
        ifaces = batch.ifaces
        if batch.ifidx is None:
            iface, lt = ifaces[0]
            for ts, off, n in zip(batch.ts.tolist(), batch.offsets.tolist(), batch.lengths.tolist(), strict=True):
                write(ts, iface, lt, buf[off:off + n])
        else:
            for ts, off, n, k in zip(batch.ts.tolist(), batch.offsets.tolist(), batch.lengths.tolist(),
                                     batch.ifidx.tolist(), strict=True):
                iface, lt = ifaces[k]
                write(ts, iface, lt, buf[off:off + n])

    def _write_whole(self, batch: Batch) -> bool:
        """A batch encoded at once (:meth:`Encoder.encode_batch`) when nothing in it needs a decision per
        packet: a file open and writing, no rotation due within the batch, no definition block to add.
        False: nothing done, go packet by packet."""
        out = self._out
        if out is None or self._failing:
            return False
        if out.first_ts is None:  # the file's first packet names it (rotation): that one alone, then the rest
            if len(batch) < 2:
                return False
            f = batch.frame(0)
            self._write_one(f.ts, f.iface, f.linktype, f.data)
            rest = batch.part(1, len(batch))
            if not self._encode_whole(rest):
                self._write_rest(rest)
            return True
        return self._encode_whole(batch)

    def _encode_whole(self, batch: Batch) -> bool:
        """:meth:`_write_whole` once the file has its first packet; False if a packet needs its own decision."""
        out = self._out
        if out is None or self._failing or out.first_ts is None:
            return False
        rot = self.rotation
        if rot.seconds is not None and float(batch.ts.max()) - out.first_ts >= rot.seconds:
            return False
        if rot.size is not None:
            # records are at most 36 bytes over their packet (an EPB with 3 bytes of padding), a filler at most
            # 8 over the record after it: no packet of the batch can be the one that starts the next file
            data = int(batch.lengths.sum()) + 36 * len(batch)
            if out.end + 2 * data + 8 * len(batch) + PAGE > rot.size:
                return False
        recs = out.encoder.encode_batch(batch)
        if recs is None:
            return False
        self._place_all(out, recs, out.encoder.state())
        return True

    def _place_all(self, out: _Out, recs: list[bytes], state: int) -> None:
        """:meth:`_place` for many records: the same layout, in one loop."""
        app = out.items.append
        pad = out.pad
        pending = out.pending
        end = out.offset + pending
        for rec in recs:
            n = len(rec)
            if pad:
                room = PAGE - end % PAGE
                if (n > room or room - n in (4, 8)) and MIN_FILLER <= room < PAGE:
                    app((filler(room), NOT_A_PACKET))
                    pending += room
                    end += room
            app((rec, state))
            pending += n
            end += n
            if pending >= WRITE_BYTES:
                out.pending = pending
                self._write_items(out)  # a new items list, nothing pending, the offset moved on
                app = out.items.append
                pending = out.pending
                end = out.offset + pending
        out.pending = pending

    def _write_one(self, ts: float, iface: str, linktype: int, data: bytes) -> None:
        """Encode one packet into the current file (rotating first if it is due)."""
        out = self._out
        rot = self.rotation
        if out is None or self._failing:
            if time.monotonic() < self._retry_at:
                self.unrecorded += 1
                return
            if out is None:
                if not self._open_next(ts):
                    self.unrecorded += 1
                    return
                out = self._out
                assert out is not None
        if rot.seconds is not None and out.first_ts is not None and ts - out.first_ts >= rot.seconds:
            out = self._next_file(out, ts)
            if out is None:
                return
        got = self._encode(out, ts, iface, linktype, data)
        if got is None:
            return
        rec, st = got
        if (rot.size is not None and out.end + len(rec) + (PAGE if out.pad else 0) > rot.size
                and (out.packets or out.items)):
            out.encoder.rollback(st)
            out = self._next_file(out, ts)
            got = None if out is None else self._encode(out, ts, iface, linktype, data)
            if out is None or got is None:
                return
            rec, st = got
        if out.first_ts is None:
            out.first_ts = ts
            if rot.active and self._seq == 1:
                self._rename_first(out)
        self._place(out, rec, st)

    def _next_file(self, out: _Out, ts: float) -> _Out | None:
        """:meth:`_rotate`, counting the packet as unrecorded when the next file cannot be created."""
        nxt = self._rotate(out, ts)
        if nxt is None:
            self.unrecorded += 1
        return nxt

    def _encode(self, out: _Out, ts: float, iface: str, linktype: int, data: bytes) -> tuple[bytes, int] | None:
        """The packet's record and the encoder state before it; None (counted, said) if the file cannot hold it."""
        st = out.encoder.state()
        rec = out.encoder.encode(ts, iface, linktype, data)
        if rec is None:
            self.unrecorded += 1
            self._error(f"{out.path}: classic pcap holds one link type; packets of link type "
                        f"{linktype} on {iface or 'an interface'} are not recorded (use pcapng)")
            return None
        return rec, st

    def _place(self, out: _Out, rec: bytes, state: int) -> None:
        """Queue one record; in pcapng no record crosses a page boundary unless it is bigger than a page."""
        n = len(rec)
        room = PAGE - out.end % PAGE
        # it does not fit, or would leave a gap too small for a filler: fill the page, start the next
        if out.pad and (n > room or room - n in (4, 8)) and MIN_FILLER <= room < PAGE:
            out.items.append((filler(room), NOT_A_PACKET))
            out.pending += room
        out.items.append((rec, state))
        out.pending += n
        if out.pending >= WRITE_BYTES:
            self._write_items(out)

    def _rename_first(self, out: _Out) -> None:
        """The first rotated file was named at startup (wall clock); name it by its first packet.

        ``link`` + ``unlink`` rather than ``rename``: link never replaces
        whatever may already be at the new name. Best effort — after the
        privilege drop the directory may not be ours to change.
        """
        assert out.first_ts is not None
        new = rotated_name(self.base, self._seq, out.first_ts)
        if new == out.path:
            return
        try:
            os.link(out.path, new, follow_symlinks=False)
        except OSError:
            return
        with contextlib.suppress(OSError):
            os.unlink(out.path)
        if self._created and self._created[-1] == out.path:
            self._created[-1] = new
        out.path = new

    def _rotate(self, out: _Out, ts: float) -> _Out | None:
        """Finish the current file and start the next; None if the next cannot be created."""
        if out.items:
            self._write_items(out)
        self._close_file()
        if not self._open_next(ts):
            return None
        return self._out

    def _write_items(self, out: _Out) -> bool:
        """One write(2) of the placed records; on failure cut the file back to the last whole one."""
        items = out.items
        buf = b"".join(r for r, _ in items) if len(items) > 1 else items[0][0]
        out.items = []
        out.pending = 0
        done = 0
        err: OSError | None = None
        while done < len(buf):
            try:
                n = os.write(out.fd, buf[done:] if done else buf)
            except InterruptedError:
                continue
            except OSError as e:
                err = e
                break
            if n <= 0:
                break
            done += n
        if done == len(buf):
            self._progress_at = time.monotonic()  # a big queue takes a while to write: it is not stuck
            packets = sum(1 for _, st in items if st != NOT_A_PACKET)
            out.offset += done
            out.packets += packets
            self.packets += packets
            self.bytes += done
            if self._failing:
                self._recovered(out.path)
            return True
        # keep the records that landed whole, drop the rest
        landed = 0
        k = 0
        for rec, _ in items:
            if landed + len(rec) > done:
                break
            landed += len(rec)
            k += 1
        with contextlib.suppress(OSError):
            os.ftruncate(out.fd, out.offset + landed)
            os.lseek(out.fd, out.offset + landed, os.SEEK_SET)
        states = [st for _, st in items[k:] if st != NOT_A_PACKET]
        if states:
            out.encoder.rollback(states[0])
        if k == 0 and out.offset == 0:
            out.encoder.rollback(0)  # not even the header landed
        kept = sum(1 for _, st in items[:k] if st != NOT_A_PACKET)
        out.offset += landed
        out.packets += kept
        self.packets += kept
        self.bytes += landed
        self.unrecorded += len(states)
        reason = describe_os_error(err) if err is not None else "short write"
        self._fail(f"cannot write {out.path}: {reason}; the capture goes on, unrecorded packets are counted")
        return False

    def _open_next(self, ts: float) -> bool:
        rot = self.rotation
        seq = self._seq + 1
        path = rotated_name(self.base, seq, ts) if rot.active else self.base
        self._last_path = path
        try:
            fd = open_output(path)
        except RecordError as e:
            self._fail(str(e))
            return False
        self._seq = seq
        enc: Encoder = (PcapNgEncoder(self.application, capture_filter=self.capture_filter) if self.pcapng
                        else PcapEncoder(self.linktype))
        out = _Out(fd, path, enc, self.pcapng)
        self._out = out
        self.files += 1
        self._created.append(path)
        head = enc.begin()
        if head:
            out.items.append((head, NOT_A_PACKET))
            out.pending = len(head)
            if not self._write_items(out):
                return False
        if self._failing:
            self._recovered(path)
        if rot.keep is not None:
            while len(self._created) > rot.keep:
                old = self._created.popleft()
                try:
                    os.unlink(old)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    self._error(f"cannot remove old capture file {old}: {describe_os_error(e)}")
        return True

    def _close_file(self) -> None:
        out = self._out
        if out is None:
            return
        self._out = None
        self._last_path = out.path
        with contextlib.suppress(OSError):
            os.fdatasync(out.fd)
        with contextlib.suppress(OSError):
            os.close(out.fd)

    # ------------------------------------------------------------------ errors
    @property
    def _failing(self) -> bool:
        return self._fail_base is not None

    def _fail(self, message: str) -> None:
        self.errors += 1
        self._retry_at = time.monotonic() + RETRY_INTERVAL
        if self._fail_base is None:
            self._fail_base = self.unrecorded + self._dropped_pending
        self._error(message)

    def _recovered(self, path: str) -> None:
        base = self._fail_base or 0
        self._fail_base = None
        lost = self.unrecorded + self._dropped_pending - base
        self.last_error = ""
        msg = f"recording to {path} resumed ({lost} packets were not recorded meanwhile)"
        log.warning(msg)
        if self.on_error is not None:
            self.on_error(msg)

    def _error(self, message: str) -> None:
        if message == self.last_error:
            return  # shown once per distinct problem; the counters keep counting
        self.last_error = message
        log.error(message)
        if self.on_error is not None:
            self.on_error(message)


def directory_writable(path: str | Path) -> bool:
    """Whether the current process may create files in ``path`` (checked after the privilege drop)."""
    return os.access(path, os.W_OK | os.X_OK)
