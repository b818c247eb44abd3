"""pcap and pcapng encoding and writing, one whole record per write.

pcapng (draft-ietf-opsawg-pcapng-02): a Section Header Block (§4.1), one
Interface Description Block per (interface, link type) with ``if_name`` (§4.2),
so both legs of a NAT stay apart, then Enhanced Packet Blocks (§4.3) with an
optional ``opt_comment`` (§3.5), used for diagnoses. Classic pcap
(draft-ietf-opsawg-pcap-04 §4-§5): microsecond resolution, one link type per
file.

Two layers:

* encoders (:class:`PcapNgEncoder`, :class:`PcapEncoder`) turn a packet into
  the bytes of its record, prefixed by whatever definition block it needs
  first (the file header, a new interface's IDB). They remember which
  definitions they have emitted and can :meth:`~PcapNgEncoder.rollback` to an
  earlier :meth:`~PcapNgEncoder.state` when bytes never reached the disk, so a
  later packet never refers to an IDB the file does not contain;
* writers (:class:`PcapNgWriter`, :class:`PcapWriter`) hand each record to a
  binary file object in one ``write`` call.

:func:`open_output` is the one way pptptop creates an output file: mode 0600,
``O_CREAT|O_EXCL|O_NOFOLLOW``, never through a symbolic link.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import stat
import struct
from typing import BinaryIO, Final, Protocol

import numpy as np
import numpy.typing as npt

from pptptop.sources.batch import Batch

PCAP_MAGIC: Final = 0xA1B2C3D4  # classic pcap, microsecond timestamps (§4)
BT_SHB: Final = 0x0A0D0D0A
BT_IDB: Final = 0x00000001
BT_EPB: Final = 0x00000006
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
OPT_ENDOFOPT: Final = 0
OPT_COMMENT: Final = 1
SHB_HARDWARE: Final = 2
SHB_OS: Final = 3
SHB_USERAPPL: Final = 4
IF_NAME: Final = 2
IF_TSRESOL: Final = 9
IF_FILTER: Final = 11
DEFAULT_SNAPLEN: Final = 262144
#: File mode of every file pptptop writes: captures hold user names, MS-CHAP
#: exchanges and possibly clear-text PAP passwords.
OUTPUT_MODE: Final = 0o600

_EPB_HEAD = struct.Struct("<IIIIIII")  # type, total length, interface, ts high, ts low, caplen, origlen
_U32 = struct.Struct("<I")
_PCAP_REC = struct.Struct("<IIII")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by len % 4


class RecordError(Exception):
    """An output file that cannot be created or written; the message is one sentence for the user."""

    def __init__(self, path: str, message: str, err: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.errno = err


def describe_os_error(e: OSError) -> str:
    """A short reason for an I/O error, naming the common ones plainly."""
    names = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOENT: "no such directory",
        errno.EIO: "input/output error",
        errno.EFBIG: "file too large",
    }
    return names.get(e.errno or 0, e.strerror or str(e))


def open_output(path: str | os.PathLike[str], *, replace: bool = True) -> int:
    """Create ``path`` for writing and return its descriptor (mode 0600, close-on-exec).

    The file is always created anew with ``O_CREAT|O_EXCL|O_NOFOLLOW``, so the
    descriptor refers to a fresh inode we made: a symbolic link planted at the
    path is refused (never followed), and so is anything that is not a
    regular file. An existing regular file is unlinked first when ``replace``
    is true (tcpdump's ``-w`` overwrites too); unlinking only removes the
    name, so a hard link planted there cannot make us truncate another file.
    Raises :class:`RecordError` with a message for the user.
    """
    p = os.fspath(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise RecordError(p, f"cannot create {p}: {describe_os_error(e)}", e.errno or 0) from e
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise RecordError(p, f"refusing to write {p}: it is a symbolic link "
                                 "(remove it or choose another file name)", errno.ELOOP)
        if not stat.S_ISREG(st.st_mode):
            raise RecordError(p, f"refusing to write {p}: it exists and is not a regular file", errno.EEXIST)
        if not replace:
            raise RecordError(p, f"{p} already exists (remove it or choose another file name)", errno.EEXIST)
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise RecordError(p, f"cannot replace {p}: {describe_os_error(e)}", e.errno or 0) from e
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(p, flags, OUTPUT_MODE)
    except FileExistsError as e:
        kind = "a symbolic link" if os.path.islink(p) else "a file"
        raise RecordError(p, f"refusing to write {p}: {kind} appeared there while it was being "
                             "created", e.errno or 0) from e
    except OSError as e:
        raise RecordError(p, f"cannot create {p}: {describe_os_error(e)}", e.errno or 0) from e
    with contextlib.suppress(OSError):
        os.fchmod(fd, OUTPUT_MODE)  # exactly 0600 whatever the umask
    return fd


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + _PAD[len(value) % 4]


def _options(opts: list[tuple[int, bytes]]) -> bytes:
    if not opts:
        return b""
    return b"".join(_option(c, v) for c, v in opts) + struct.pack("<HH", OPT_ENDOFOPT, 0)


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + _U32.pack(total)


def _text(value: str) -> bytes:
    """UTF-8 for an option, cut so it fits the 16-bit option length."""
    return value.encode("utf-8", "backslashreplace")[:65000]


MAX_BATCH_SECONDS: Final = 9.0e12  # seconds: later times overflow int64 in microseconds (encode() takes those)


def _micros(batch: Batch) -> npt.NDArray[np.int64] | None:
    """Each frame's time in whole microseconds, as ``round(ts * 1_000_000)``; None if one is out of int64's
    range (a hostile pcapng can give any 64-bit time in any resolution)."""
    if len(batch) and not float(np.abs(batch.ts).max()) < MAX_BATCH_SECONDS:  # NaN fails this too
        return None
    return np.round(batch.ts * 1_000_000).astype(np.int64)


class Encoder(Protocol):
    """Turns packets into file bytes; see :class:`PcapNgEncoder`."""

    def begin(self) -> bytes: ...

    def encode(self, ts: float, iface: str, linktype: int, data: bytes, orig_len: int | None = None,
               comment: str | None = None) -> bytes | None: ...

    def encode_batch(self, batch: Batch) -> list[bytes] | None: ...

    def state(self) -> int: ...

    def rollback(self, state: int) -> None: ...


class PcapNgEncoder:
    """pcapng bytes: SHB, an IDB the first time each (interface, link type) appears, EPBs.

    ``state()`` counts the definition blocks emitted (SHB, then IDBs in
    order); ``rollback(n)`` forgets those after the first ``n``.
    """

    def __init__(self, application: str = "pptptop", *, comment: str | None = None,
                 capture_filter: str | None = None, snaplen: int = DEFAULT_SNAPLEN) -> None:
        self.application = application
        self.comment = comment
        self.capture_filter = capture_filter
        self.snaplen = snaplen
        self.started = False
        self._ifaces: dict[tuple[str, int], int] = {}

    def begin(self) -> bytes:
        """The Section Header Block (§4.1): byte-order magic, version 1.0, section length unknown."""
        opts = []
        if self.comment:
            opts.append((OPT_COMMENT, _text(self.comment)))
        opts.append((SHB_OS, _text(f"{platform.system()} {platform.release()}")))
        opts.append((SHB_USERAPPL, _text(self.application)))
        self.started = True
        self._ifaces.clear()
        return _block(BT_SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options(opts))

    def interfaces(self) -> list[tuple[str, int]]:
        return list(self._ifaces)

    def interface_block(self, name: str, linktype: int) -> bytes:
        """An IDB (§4.2) with ``if_name``, ``if_tsresol`` = 10^-6 and the capture filter, if any."""
        opts: list[tuple[int, bytes]] = []
        if name:
            opts.append((IF_NAME, _text(name)))
        opts.append((IF_TSRESOL, b"\x06"))
        if self.capture_filter:
            opts.append((IF_FILTER, b"\x00" + _text(self.capture_filter)))  # 0: libpcap filter string
        return _block(BT_IDB, struct.pack("<HHI", linktype, 0, self.snaplen) + _options(opts))

    def encode(self, ts: float, iface: str, linktype: int, data: bytes, orig_len: int | None = None,
               comment: str | None = None) -> bytes:
        prefix = b""
        if not self.started:
            prefix = self.begin()
        key = (iface, linktype)
        idx = self._ifaces.get(key)
        if idx is None:
            idx = self._ifaces[key] = len(self._ifaces)
            prefix += self.interface_block(iface, linktype)
        us = round(ts * 1_000_000)
        n = len(data)
        opts = _options([(OPT_COMMENT, _text(comment))]) if comment else b""
        total = 32 + n + (-n % 4) + len(opts)
        return b"".join((prefix, _EPB_HEAD.pack(BT_EPB, total, idx, (us >> 32) & 0xFFFFFFFF, us & 0xFFFFFFFF,
                                                n, n if orig_len is None else orig_len),
                         data, _PAD[n % 4], opts, _U32.pack(total)))

    def encode_batch(self, batch: Batch) -> list[bytes] | None:
        """The EPBs of every frame of ``batch``, as :meth:`encode` makes them one by one.

        The fixed fields of all of them are packed at once with numpy; None
        when a frame needs a definition block first (the section has not
        begun, or an interface is new): :meth:`encode` then goes one by one.
        """
        if not self.started:
            return None
        idx_of = [self._ifaces.get(key) for key in batch.ifaces]
        if batch.ifidx is None:
            if idx_of[0] is None:
                return None
            idx: int | npt.NDArray[np.int64] = idx_of[0]
        else:
            used = np.unique(batch.ifidx).tolist()
            if any(idx_of[k] is None for k in used):
                return None
            idx = np.array([-1 if i is None else i for i in idx_of], dtype=np.int64)[batch.ifidx]
        n = len(batch)
        caplen = batch.lengths
        pad = -caplen % 4
        total = 32 + caplen + pad
        us = _micros(batch)
        if us is None:
            return None
        head = np.empty((n, 7), dtype="<u4")
        head[:, 0] = BT_EPB
        head[:, 1] = total
        head[:, 2] = idx
        head[:, 3] = (us >> 32) & 0xFFFFFFFF
        head[:, 4] = us & 0xFFFFFFFF
        head[:, 5] = caplen
        head[:, 6] = caplen
        # the trailer: padding to 32 bits, then the total length again, in an 8-byte slot per frame
        tail = np.zeros((n, 8), dtype=np.uint8)
        rows = np.arange(n)
        tot = total.astype("<u4").view(np.uint8).reshape(n, 4)
        for k in range(4):
            tail[rows, pad + k] = tot[:, k]
        hb = head.tobytes()
        tb = tail.tobytes()
        buf = batch.buf
        join = b"".join
        return [join((hb[28 * i:28 * i + 28], buf[o:o + c], tb[8 * i:8 * i + t]))
                for i, (o, c, t) in enumerate(zip(batch.offsets.tolist(), caplen.tolist(), (pad + 4).tolist(),
                                                  strict=True))]

    def state(self) -> int:
        return (1 + len(self._ifaces)) if self.started else 0

    def rollback(self, state: int) -> None:
        if state <= 0:
            self.started = False
            self._ifaces.clear()
            return
        keep = state - 1
        for key, idx in list(self._ifaces.items()):
            if idx >= keep:
                del self._ifaces[key]


class PcapEncoder:
    """Classic pcap bytes: the file header (fixed by the first packet's link type), then records.

    A packet of another link type cannot be stored (``encode`` returns None)
    and is counted in :attr:`skipped_linktype`.
    """

    def __init__(self, linktype: int | None = None, snaplen: int = DEFAULT_SNAPLEN) -> None:
        self.linktype = linktype
        self._fixed = linktype is not None
        self.snaplen = snaplen
        self.started = False
        self.skipped_linktype = 0

    def begin(self) -> bytes:
        """The file header (§4), or nothing while the link type is still unknown."""
        if self.linktype is None:
            return b""
        self.started = True
        return struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, self.snaplen, self.linktype)

    def encode(self, ts: float, iface: str, linktype: int, data: bytes, orig_len: int | None = None,
               comment: str | None = None) -> bytes | None:
        prefix = b""
        if not self.started:
            if self.linktype is None:
                self.linktype = linktype
            prefix = self.begin()
        if linktype != self.linktype:
            self.skipped_linktype += 1
            return None
        us = round(ts * 1_000_000)
        n = len(data)
        # 32-bit seconds (§5): a time past 2106 (a hostile pcapng's) wraps, as a C cast would, rather than fail
        head = _PCAP_REC.pack((us // 1_000_000) & 0xFFFFFFFF, us % 1_000_000, n, n if orig_len is None else orig_len)
        return prefix + head + data

    def encode_batch(self, batch: Batch) -> list[bytes] | None:
        """The records of every frame of ``batch``, as :meth:`encode` makes them one by one; None when the
        file header is still to come or a frame has another link type (:meth:`encode` handles those)."""
        if not self.started or any(lt != self.linktype for _, lt in batch.ifaces):
            return None
        us = _micros(batch)
        if us is None:
            return None
        n = len(batch)
        head = np.empty((n, 4), dtype="<u4")
        head[:, 0] = (us // 1_000_000) & 0xFFFFFFFF
        head[:, 1] = us % 1_000_000
        head[:, 2] = batch.lengths
        head[:, 3] = batch.lengths
        hb = head.tobytes()
        buf = batch.buf
        return [hb[16 * i:16 * i + 16] + buf[o:o + c]
                for i, (o, c) in enumerate(zip(batch.offsets.tolist(), batch.lengths.tolist(), strict=True))]

    def state(self) -> int:
        return 1 if self.started else 0

    def rollback(self, state: int) -> None:
        if state <= 0:
            self.started = False
            if not self._fixed:
                self.linktype = None


class PcapNgWriter:
    """Writes pcapng to a binary file object; interfaces are added as they appear."""

    def __init__(self, f: BinaryIO, application: str = "pptptop", *, comment: str | None = None,
                 capture_filter: str | None = None) -> None:
        self.f = f
        self.encoder = PcapNgEncoder(application, comment=comment, capture_filter=capture_filter)
        self.records = 0
        self.bytes_written = 0
        self._write(self.encoder.begin())

    def _write(self, data: bytes) -> None:
        self.f.write(data)
        self.bytes_written += len(data)

    def write(self, ts: float, iface: str, linktype: int, data: bytes, orig_len: int | None = None,
              comment: str | None = None) -> int:
        """Write one packet (and its interface's IDB the first time); returns the bytes written."""
        rec = self.encoder.encode(ts, iface, linktype, data, orig_len, comment)
        self._write(rec)
        self.records += 1
        return len(rec)


class PcapWriter:
    """Writes classic pcap (microseconds). The link type is fixed by the first packet."""

    def __init__(self, f: BinaryIO, linktype: int | None = None, snaplen: int = DEFAULT_SNAPLEN) -> None:
        self.f = f
        self.encoder = PcapEncoder(linktype, snaplen)
        self.records = 0
        self.bytes_written = 0
        head = self.encoder.begin()
        if head:
            self.f.write(head)
            self.bytes_written += len(head)

    @property
    def linktype(self) -> int | None:
        return self.encoder.linktype

    @property
    def skipped_linktype(self) -> int:
        """Packets of another link type, which classic pcap cannot hold."""
        return self.encoder.skipped_linktype

    def write(self, ts: float, iface: str, linktype: int, data: bytes, orig_len: int | None = None,
              comment: str | None = None) -> int:
        """Write one packet; returns the bytes written (0 when its link type does not fit the file)."""
        rec = self.encoder.encode(ts, iface, linktype, data, orig_len)
        if rec is None:
            return 0
        self.f.write(rec)
        self.bytes_written += len(rec)
        self.records += 1
        return len(rec)
