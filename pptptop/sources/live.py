"""Live capture: AF_PACKET sockets with a TPACKET_V3 memory-mapped ring.

One ``SOCK_RAW`` packet socket per interface (packet(7)), bound to it, with
a classic BPF socket filter attached before the socket is bound — so no
unfiltered packet ever reaches the ring — and a ``PACKET_RX_RING`` of
``TPACKET_V3`` blocks (Documentation/networking/packet_mmap.rst). The kernel
fills a block and flips its ``block_status`` to ``TP_STATUS_USER``; we copy
its frames out, give it back with ``TP_STATUS_KERNEL`` and move to the next.
Drops are read with ``PACKET_STATISTICS``.

Several interfaces are polled together; ``any`` means every interface that
is up, rescanned every few seconds. An interface that goes down or
disappears is reported in its :class:`InterfaceStats` and retried; it never
ends the capture.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, Final

import numpy as np

from pptptop.sources.base import InterfaceStats, Source, SourceStats
from pptptop.sources.batch import batch_from_frames, merge_by_time
from pptptop.sources.bpf import (
    DEFAULT_FILTER,
    FilterError,
    Insn,
    attach_filter,
    compile_filter,
    default_program,
    lock_filter,
)
from pptptop.sources.spill import SPILL_LIMIT, Spill
from pptptop.wire import LINKTYPE_ETHERNET, LINKTYPE_RAW, Batch, Frame

ETH_P_ALL: Final = 0x0003
SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_RX_RING: Final = 5
PACKET_STATISTICS: Final = 6
PACKET_VERSION: Final = 10
PACKET_MR_PROMISC: Final = 1
TPACKET_V3: Final = 2

TP_STATUS_KERNEL: Final = 0
TP_STATUS_USER: Final = 1 << 0
TP_STATUS_VLAN_VALID: Final = 1 << 4
TP_STATUS_VLAN_TPID_VALID: Final = 1 << 6

SIOCGIFFLAGS: Final = 0x8913
SIOCGIFHWADDR: Final = 0x8927
SIOCGIFINDEX: Final = 0x8933
IFF_UP: Final = 0x1

# if_arp.h hardware types and how we capture on them.
ARPHRD_ETHER: Final = 1
ARPHRD_IEEE802: Final = 6
ARPHRD_PPP: Final = 512
ARPHRD_RAWIP: Final = 519
ARPHRD_LOOPBACK: Final = 772
ARPHRD_NONE: Final = 0xFFFE
ETHERNET_ARPHRDS: Final = frozenset((ARPHRD_ETHER, ARPHRD_IEEE802, ARPHRD_LOOPBACK))
RAW_IP_ARPHRDS: Final = frozenset((ARPHRD_NONE, ARPHRD_PPP, ARPHRD_RAWIP))  # tun, ppp: no link header

ANY: Final = "any"
BLOCK_SIZE: Final = 1 << 20
FRAME_SIZE: Final = 2048  # only sets tp_frame_nr for V3; frames are packed in blocks
RING_SIZE: Final = 64 << 20  # per named interface: ~0.3 s of a top-speed burst, while the spill thread is held up
RING_SIZE_ANY: Final = 8 << 20  # per interface with "any"
BLOCK_TIMEOUT_MS: Final = 20  # a partly filled block is handed over after this long
POLL_TIMEOUT_MS: Final = 100
#: batches: after a turn that handed over fewer than COALESCE_FRAMES frames, the next poll waits until
#: COALESCE_S after that turn began, so that a slow link's frames come as a few batches a second rather
#: than one per block timeout: a batch has a fixed cost, which at a few thousand packets/s made most of
#: the CPU. The ring holds what arrives meanwhile (a turn this small is far from a burst, and the wait is
#: cut to what half the ring's blocks cover at their timeout), and the frames keep their kernel time stamps.
COALESCE_FRAMES: Final = 4096
COALESCE_S: Final = 0.2
RESCAN_INTERVAL: Final = 3.0
STATS_INTERVAL: Final = 1.0
MAX_FRAMES_PER_TURN: Final = 20000  # then let the other interfaces have a go
_ts = attrgetter("ts")  # a frame's capture time: the key that merges one turn's interfaces
VLAN_TPID_8021Q: Final = 0x8100

_BLOCK_HDR = struct.Struct("=IIII")  # block_status, num_pkts, offset_to_first_pkt, blk_len (at +8)
_PKT_HDR = struct.Struct("=IIIIIIHHIIHH")  # struct tpacket3_hdr with hv1
_U32 = struct.Struct("=I")
_STATS_V3 = struct.Struct("=III")  # struct tpacket_stats_v3
_TCI = struct.Struct(">HH")
_new_frame = tuple.__new__


class LiveCaptureError(Exception):
    """Live capture cannot start; the message says what to do."""


class NoSuchInterface(LiveCaptureError):
    """An interface named for live capture does not exist here."""


def _ifreq(name: str) -> bytes:
    return struct.pack("16s24x", name.encode()[:15])


def interface_info(name: str) -> tuple[int, int, int] | None:
    """``(ifindex, flags, ARPHRD type)`` of an interface in this thread's namespace, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            index = struct.unpack_from("=i", fcntl.ioctl(s.fileno(), SIOCGIFINDEX, _ifreq(name)), 16)[0]
            flags = struct.unpack_from("=H", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, _ifreq(name)), 16)[0]
            hw = struct.unpack_from("=H", fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, _ifreq(name)), 16)[0]
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENXIO):
                return None
            raise
    return index, flags, hw


def interface_names() -> list[str]:
    """Names of the interfaces in this thread's network namespace."""
    return [name for _i, name in socket.if_nameindex()]


def link_for(arphrd: int) -> tuple[int, int]:
    """``(socket type, LINKTYPE_*)`` for an ARPHRD type: Ethernet kept raw, others as raw IP."""
    if arphrd in ETHERNET_ARPHRDS:
        return socket.SOCK_RAW, LINKTYPE_ETHERNET
    if arphrd in RAW_IP_ARPHRDS:
        return socket.SOCK_RAW, LINKTYPE_RAW
    return socket.SOCK_DGRAM, LINKTYPE_RAW  # the kernel strips whatever link header there is


def _read_dev_drops() -> dict[str, int]:
    """Receive drops per interface from /proc/…/net/dev (what psutil's ``dropin`` reads).

    ``thread-self`` so a capture thread in another network namespace sees its own.
    """
    for path in ("/proc/thread-self/net/dev", "/proc/net/dev"):
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                lines = f.readlines()[2:]
        except OSError:
            continue
        out: dict[str, int] = {}
        for line in lines:
            name, _, rest = line.partition(":")
            fields = rest.split()
            if len(fields) >= 4 and fields[3].isdigit():
                out[name.strip()] = int(fields[3])
        return out
    return {}


class _Ring:
    """One interface: its packet socket, mmap'ed ring and counters."""

    def __init__(self, name: str, ifindex: int, arphrd: int, program: Sequence[Insn] | None,
                 ring_size: int, block_timeout_ms: int, promisc: bool, stats: InterfaceStats) -> None:
        self.name = name
        self.stats = stats
        sock_type, self.linktype = link_for(arphrd)
        stats.linktype = self.linktype
        self.block_size = BLOCK_SIZE
        self.block_nr = max(2, ring_size // BLOCK_SIZE)
        self.cur = 0
        self.sock = socket.socket(socket.AF_PACKET, sock_type, 0)  # protocol 0: nothing arrives yet
        try:
            self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            if program is not None:
                attach_filter(self.sock, program)
                lock_filter(self.sock)
            frames = self.block_size * self.block_nr // FRAME_SIZE
            req = struct.pack("=7I", self.block_size, self.block_nr, FRAME_SIZE, frames,
                              block_timeout_ms, 0, 0)  # struct tpacket_req3
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self.mm = mmap.mmap(self.sock.fileno(), self.block_size * self.block_nr, mmap.MAP_SHARED,
                                mmap.PROT_READ | mmap.PROT_WRITE)
            if promisc:
                mreq = struct.pack("=iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")  # struct packet_mreq
                self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            self.sock.bind((name, ETH_P_ALL))  # from here on packets flow, already filtered
        except BaseException:
            self.sock.close()
            raise
        self.fd = self.sock.fileno()
        self.dev_drops_base = _read_dev_drops().get(name, 0)

    def drain(self, limit: int = MAX_FRAMES_PER_TURN) -> list[Frame]:
        """Copy the frames of every block the kernel has handed over, and hand the blocks back."""
        mm = self.mm
        out: list[Frame] = []
        app = out.append
        name = self.name
        lt = self.linktype
        pkt = _PKT_HDR.unpack_from
        new = _new_frame
        frame = Frame
        bs = self.block_size
        while len(out) < limit:
            base = self.cur * bs
            status, num, first, used = _BLOCK_HDR.unpack_from(mm, base + 8)
            if not status & TP_STATUS_USER:
                break
            # one copy of what the block holds, and the block goes back to the kernel before the frames are
            # cut out of it: the ring is full less often
            block = mm[base:base + _used(used, first, bs)]
            _U32.pack_into(mm, base + 8, TP_STATUS_KERNEL)
            self.cur = (self.cur + 1) % self.block_nr
            off = first
            for _ in range(num):
                nxt, sec, nsec, snap, _wlen, st, mac, _net, _hash, tci, tpid, _pad = pkt(block, off)
                s = off + mac
                data = block[s:s + snap]
                if st & TP_STATUS_VLAN_VALID and lt == LINKTYPE_ETHERNET:
                    # The kernel took the outer tag off (VLAN offload); put it back as on the wire.
                    tag = _TCI.pack(tpid if st & TP_STATUS_VLAN_TPID_VALID and tpid else VLAN_TPID_8021Q,
                                    tci & 0xFFFF)
                    data = data[:12] + tag + data[12:]
                app(new(frame, (sec + nsec / 1_000_000_000, name, lt, data)))
                off += nxt
        self.stats.received += len(out)
        return out

    def drain_batch(self, limit: int = MAX_FRAMES_PER_TURN) -> list[Batch]:
        """Every block the kernel has handed over, as few :class:`Batch` es as possible.

        The ready blocks are copied and joined into one batch, so the
        per-batch work of the data path is paid once per turn, not per 1 MiB
        block. A block holding a frame whose VLAN tag the kernel took off is
        drained frame by frame instead, so that the tag can be put back.
        """
        mm = self.mm
        out: list[Batch] = []
        bs = self.block_size
        u32 = _U32.unpack_from
        got = 0
        blocks: list[bytes] = []
        starts: list[int] = []
        base_off = 0  # where the current block starts in the joined buffer
        while got < limit:
            base = self.cur * bs
            status, num, first, used = _BLOCK_HDR.unpack_from(mm, base + 8)
            if not status & TP_STATUS_USER:
                break
            block = mm[base:base + _used(used, first, bs)]  # one copy; the block goes back to the kernel at once
            _U32.pack_into(mm, base + 8, TP_STATUS_KERNEL)
            self.cur = (self.cur + 1) % self.block_nr
            mine: list[int] = []
            note = mine.append
            off = first
            for _ in range(num):
                note(off)
                off += u32(block, off)[0]
            blocks.append(block)
            starts.extend([base_off + o for o in mine] if base_off else mine)
            base_off += len(block)
            got += num
        if blocks:
            out.append(self._joined(blocks, starts))
        self.stats.received += got
        return out

    def _joined(self, blocks: list[bytes], starts: list[int]) -> Batch:
        """One batch over the concatenated blocks; ``starts`` are tpacket3_hdr offsets into it."""
        buf = blocks[0] if len(blocks) == 1 else b"".join(blocks)
        pos = np.array(starts, dtype=np.int64)
        view = np.frombuffer(buf, dtype=np.uint8)
        head = view[pos[:, None] + _HDR_COLS].view(np.dtype("=u4")).reshape(-1, 6).astype(np.int64)
        if self.linktype == LINKTYPE_ETHERNET and bool((head[:, 5] & TP_STATUS_VLAN_VALID).any()):
            return batch_from_frames(self._frames_of(buf, starts))  # tags to put back: frame by frame
        mac = view[pos[:, None] + _MAC_COLS].view(np.dtype("=u2")).reshape(-1).astype(np.int64)
        ts = head[:, 1] + head[:, 2] / 1_000_000_000
        return Batch(buf, pos + mac, head[:, 3], ts, [(self.name, self.linktype)])

    def _frames_of(self, block: bytes, starts: list[int]) -> list[Frame]:
        """The frames of one block copied one by one, VLAN tags put back where the kernel took them off."""
        out: list[Frame] = []
        for off in starts:
            _nxt, sec, nsec, snap, _wlen, st, mac, _net, _hash, tci, tpid, _pad = _PKT_HDR.unpack_from(block, off)
            data = block[off + mac:off + mac + snap]
            if st & TP_STATUS_VLAN_VALID:
                tag = _TCI.pack(tpid if st & TP_STATUS_VLAN_TPID_VALID and tpid else VLAN_TPID_8021Q, tci & 0xFFFF)
                data = data[:12] + tag + data[12:]
            out.append(Frame(sec + nsec / 1_000_000_000, self.name, self.linktype, data))
        return out

    def read_counters(self, dev_drops: dict[str, int] | None = None) -> None:
        """Add the kernel's drops since the last call (PACKET_STATISTICS resets on read)."""
        try:
            _packets, drops, _freeze = _STATS_V3.unpack(
                self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS_V3.size))
        except OSError:
            return
        self.stats.kernel_drops += drops
        if dev_drops is not None and self.name in dev_drops:
            self.stats.if_drops = max(0, dev_drops[self.name] - self.dev_drops_base)

    def socket_error(self) -> str:
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        return os.strerror(err) if err else "socket error"

    def close(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self.mm.close()
        self.sock.close()


class LiveSource(Source):
    """Frames from one or more live interfaces (``-i eth0 -i eth1``, or ``-i any``)."""

    live = True
    cuts_batches = True  # a batch per interface per turn: its ring's ready blocks

    def __init__(self, interfaces: Sequence[str], bpf_filter: str | None = None, *,
                 ring_size: int | None = None, block_timeout_ms: int = BLOCK_TIMEOUT_MS,
                 promisc: bool = True, rescan_interval: float = RESCAN_INTERVAL,
                 spill_limit: int = SPILL_LIMIT) -> None:
        """``promisc`` applies to named interfaces; ``any`` never sets promiscuous mode. ``spill_limit``:
        bytes drained from the rings that may wait for the consumer (0: one turn's worth)."""
        names = list(dict.fromkeys(interfaces)) or [ANY]
        self._any = ANY in names
        self._wanted = [] if self._any else names
        self._filter = DEFAULT_FILTER if bpf_filter is None else bpf_filter
        self._ring_size = ring_size or (RING_SIZE_ANY if self._any else RING_SIZE)
        self._spill_limit = spill_limit
        self._spill: Spill[Any] | None = None
        self._block_timeout = block_timeout_ms
        self._promisc = promisc
        self._rescan_interval = rescan_interval
        self._programs: dict[int, list[Insn] | None] = {}
        self._rings: dict[str, _Ring] = {}
        self._ifstats: dict[str, InterfaceStats] = {}
        self._closed = False
        self._running = False
        self._lock = threading.RLock()  # re-entrant: close() may run in a signal handler
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        try:
            self._start()
        except BaseException:
            self._release()
            raise

    # -- Source API ---------------------------------------------------------

    @property
    def name(self) -> str:
        return ANY if self._any else ",".join(self._wanted)

    @property
    def interfaces(self) -> list[str]:
        return list(self._ifstats)

    @property
    def filter(self) -> str:
        """The capture filter in force ("" for none)."""
        return self._filter

    def stats(self) -> SourceStats:
        return SourceStats(interfaces={
            k: InterfaceStats(v.name, v.linktype, v.received, v.kernel_drops, v.if_drops, v.up, v.error)
            for k, v in list(self._ifstats.items())})

    def close(self) -> None:
        """Stop: iteration ends within a poll cycle; safe from another thread or a signal handler."""
        if self._closed:
            return
        with self._lock:
            self._closed = True
            if self._running:
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"x")
            else:
                self._release()

    def __iter__(self) -> Iterator[Frame]:
        """Frames as the kernel hands them over, interfaces in turn.

        Both this and :meth:`batches` drain the rings in a thread of their own
        and hand what it copied over through a :class:`~pptptop.sources.spill.Spill`,
        so a busy consumer (a storm of handshakes) does not leave the rings full.
        """
        with self._lock:
            if self._running:
                raise RuntimeError("a live source can be iterated by one thread at a time")
            self._running = True
        # a reader thread keeps the rings drained while the consumer is busy (sources/spill.py)
        spill = self._spill = Spill(self._run(batch=False), self.close, _frames_bytes, self._spill_limit)
        return _flatten(spill)

    def batches(self) -> Iterator[Batch]:
        """The same frames as :meth:`__iter__`, a batch per interface per turn (its ready blocks)."""
        with self._lock:
            if self._running:
                raise RuntimeError("a live source can be iterated by one thread at a time")
            self._running = True
        spill = self._spill = Spill(self._run(batch=True), self.close, _batch_bytes, self._spill_limit)
        return _through(spill)

    def buffers(self) -> dict[str, int]:
        """The memory that rides out bursts: each interface's kernel ring (``-B``), the most that may wait
        drained for the consumer (``--queue``), and the most that did wait at once."""
        return {"ring_bytes": self._ring_size, "queue_limit": self._spill_limit,
                "queue_peak": self._spill.peak if self._spill is not None else 0}

    # -- internals ----------------------------------------------------------

    def _program(self, linktype: int) -> list[Insn] | None:
        if linktype not in self._programs:
            if not self._filter:
                self._programs[linktype] = None
            elif self._filter == DEFAULT_FILTER:
                self._programs[linktype] = default_program(linktype)
            else:
                self._programs[linktype] = compile_filter(self._filter, linktype)
        return self._programs[linktype]

    def _stat(self, name: str) -> InterfaceStats:
        st = self._ifstats.get(name)
        if st is None:
            st = self._ifstats[name] = InterfaceStats(name=name, up=False)
        return st

    def _start(self) -> None:
        if self._filter and self._filter != DEFAULT_FILTER:
            self._program(LINKTYPE_ETHERNET)  # a syntax error or missing libpcap shows up now
        if self._any:
            self._scan_any(first=True)
            return
        for name in self._wanted:
            if interface_info(name) is None:
                raise NoSuchInterface(f"no such interface: {name} (interfaces here: "
                                      f"{', '.join(interface_names()) or 'none'})")
        for name in self._wanted:
            self._try_open(name, fatal=True)

    def _try_open(self, name: str, *, fatal: bool = False) -> bool:
        """Open the ring on ``name`` if it exists and is up; record why not otherwise."""
        st = self._stat(name)
        try:
            info = interface_info(name)
        except OSError as e:
            st.up, st.error = False, f"cannot query interface: {e.strerror}"
            return False
        if info is None:
            st.up, st.error = False, "interface does not exist (waiting for it to come back)"
            return False
        ifindex, flags, arphrd = info
        st.linktype = link_for(arphrd)[1]
        if not flags & IFF_UP:
            st.up, st.error = False, "interface is down (waiting for it to come up)"
            return False
        try:
            ring = _Ring(name, ifindex, arphrd, self._program(link_for(arphrd)[1]), self._ring_size,
                         self._block_timeout, self._promisc and not self._any, st)
        except FilterError as e:
            if fatal:
                raise
            st.up, st.error = False, str(e)
            return False
        except PermissionError as e:
            msg = f"capturing on {name} needs root or CAP_NET_RAW (try sudo): {e.strerror}"
            if fatal:
                raise LiveCaptureError(msg) from e
            st.up, st.error = False, msg
            return False
        except OSError as e:
            if fatal and e.errno not in (errno.ENODEV, errno.ENETDOWN, errno.ENXIO):
                raise LiveCaptureError(f"cannot capture on {name}: {e.strerror}") from e
            st.up, st.error = False, f"cannot capture: {e.strerror}"
            return False
        self._rings[name] = ring
        st.up, st.error = True, ""
        return True

    def _scan_any(self, *, first: bool = False) -> None:
        names = interface_names()
        for name in names:
            if name in self._rings:
                continue
            info = interface_info(name)
            if info is None or not info[1] & IFF_UP:
                if name in self._ifstats:
                    self._ifstats[name].up = False
                continue
            self._try_open(name, fatal=False)
        for name, st in self._ifstats.items():
            if name not in names and name not in self._rings:
                st.up, st.error = False, "interface disappeared"
        if first and not self._rings:
            errs = [st.error for st in self._ifstats.values() if st.error]
            if errs:
                raise LiveCaptureError(f"cannot capture on any interface: {errs[0]}")

    def _lost(self, ring: _Ring, reason: str, poller: select.poll) -> None:
        ring.read_counters()
        poller.unregister(ring.fd)
        ring.close()
        del self._rings[ring.name]
        ring.stats.up = False
        ring.stats.error = reason

    def _run(self, batch: bool) -> Iterator[Any]:
        """The capture loop: batches (``batch``), else a list of frames per interface per turn."""
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        registered: set[int] = set()
        bad = select.POLLERR | select.POLLHUP | select.POLLNVAL
        now = time.monotonic()
        next_scan = now + self._rescan_interval
        next_stats = now + STATS_INTERVAL
        try:
            while not self._closed:
                turn, handed = time.monotonic(), 0
                for ring in self._rings.values():
                    if ring.fd not in registered:
                        poller.register(ring.fd, select.POLLIN)
                        registered.add(ring.fd)
                by_fd = {r.fd: r for r in self._rings.values()}
                drained: list[Any] = []  # this turn's batches, or lists of frames, of every ready interface
                for fd, ev in poller.poll(POLL_TIMEOUT_MS):
                    if fd == self._wake_r:
                        continue
                    ready = by_fd.get(fd)
                    if ready is None:
                        continue
                    drained.extend(ready.drain_batch() if batch else [ready.drain()])
                    if ev & bad:
                        registered.discard(fd)
                        self._lost(ready, f"capture stopped: {ready.socket_error()} (retrying)", poller)
                drained = [x for x in drained if len(x)]
                if len(drained) > 1:
                    # interfaces read in turn: their frames of the same moments in the order they were
                    # captured (a NAT gateway's two legs of one session), one turn's worth at a time
                    drained = [merge_by_time(drained)] if batch else [sorted(chain(*drained), key=_ts)]
                if drained:
                    handed += sum(len(x) for x in drained)
                    yield from drained  # a batch, or one list of frames: the spill hands over lists
                if self._closed:
                    return
                now = time.monotonic()
                if batch and 0 < handed < COALESCE_FRAMES and not self._closed:
                    until = turn + self._coalesce()
                    if now < until:
                        select.select([self._wake_r], [], [], until - now)  # close() wakes it
                        now = time.monotonic()
                if now >= next_stats:
                    next_stats = now + STATS_INTERVAL
                    dev = _read_dev_drops()
                    for ring in self._rings.values():
                        ring.read_counters(dev)
                if now >= next_scan:
                    next_scan = now + self._rescan_interval
                    if self._any:
                        self._scan_any()
                    else:
                        for name in self._wanted:
                            if name not in self._rings:
                                self._try_open(name)
        finally:
            with self._lock:
                self._running = False
                self._closed = True
                self._release()

    def _coalesce(self) -> float:
        """How long a slow turn's next poll waits: COALESCE_S, or less where a ring holds fewer blocks than
        that long fills at its block timeout (half of them, so a small ``-B`` never drops for it)."""
        blocks = min((r.block_nr for r in self._rings.values()), default=0)
        return min(COALESCE_S, blocks * self._block_timeout / 2000)

    def _release(self) -> None:
        dev = _read_dev_drops() if self._rings else None
        for ring in list(self._rings.values()):
            ring.read_counters(dev)
            ring.close()
        self._rings.clear()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1


def _used(blk_len: int, first: int, block_size: int) -> int:
    """Bytes of a block worth copying: ``blk_len``, what the kernel filled (af_packet.c counts the block
    header and every aligned frame in it), so a block handed over by its timeout with one frame in it
    costs that frame, not the block size; the whole block if the length is not plausible."""
    return blk_len if first <= blk_len <= block_size else block_size


def _batch_bytes(b: Batch) -> int:
    return len(b.buf)


def _frames_bytes(frames: list[Frame]) -> int:
    return sum(len(f.data) for f in frames)


def _flatten(spill: Spill[list[Frame]]) -> Iterator[Frame]:
    try:
        for chunk in spill:
            yield from chunk
    finally:
        spill.close()  # the consumer left early (or the source ended): stop and release the rings


def _through(spill: Spill[Batch]) -> Iterator[Batch]:
    try:
        yield from spill
    finally:
        spill.close()  # the consumer left early (or the source ended): stop and release the rings


def open_live(interfaces: Sequence[str] | str, bpf_filter: str | None = None, *,
              ring_size: int | None = None, block_timeout_ms: int = BLOCK_TIMEOUT_MS,
              promisc: bool = True, spill_limit: int = SPILL_LIMIT) -> LiveSource:
    """Start capturing on interfaces (``"any"`` for all that are up).

    ``bpf_filter`` None (or :data:`DEFAULT_FILTER`) uses the built-in PPTP
    filter; ``""`` captures everything; anything else is compiled by
    libpcap. Raises :class:`LiveCaptureError` or
    :class:`~pptptop.sources.bpf.FilterError` with a message for the user.
    The sockets belong to the calling thread's network namespace.
    """
    names = [interfaces] if isinstance(interfaces, str) else list(interfaces)
    return LiveSource(names, bpf_filter, ring_size=ring_size, block_timeout_ms=block_timeout_ms,
                      promisc=promisc, spill_limit=spill_limit)


_HDR_COLS = np.arange(24, dtype=np.int64)  # tpacket3_hdr: next, sec, nsec, snaplen, len, status
_MAC_COLS = np.arange(24, 26, dtype=np.int64)  # tp_mac
