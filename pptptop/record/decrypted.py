"""``-w FILE --decrypted`` and ``--export-tunnel ... -w FILE --decrypted``: the inner IP packets as pcapng.

What :mod:`pptptop.inside` reads from a tunnel (decrypted MPPE, or plain PPP
IP) is written as raw IP (link type 101), one interface per tunnel named
after it (``tunnel 3 alice 198.51.100.1-198.51.100.2``), so Wireshark opens
it as plain IP; each packet's comment names the capture frame it came from.

* :class:`DecryptedRecorder` writes as the capture goes (``-w``, live or
  from files), into a descriptor :func:`~pptptop.record.writers.open_output`
  created (0600) before any privilege drop.
* :class:`DecryptedSpool` keeps every inner packet in an unlinked temporary
  file while the capture is read, and :meth:`DecryptedSpool.export` writes
  those of the tunnels ``--export-tunnel`` selects at the end.

The file holds the users' traffic in clear: docs/decryption.md. A write error
never stops the capture: it is reported once, and what was not written counted.
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from pptptop.diagnose.text import printable
from pptptop.record.writers import PcapNgWriter, RecordError, describe_os_error
from pptptop.sources.linktypes import LINKTYPE_RAW
from pptptop.track.model import Tunnel

__all__ = ["DecryptedRecorder", "DecryptedSpool", "interface_name"]

COMMENT = "inner IP packets decrypted by pptptop (--decrypted): the users' traffic in clear"
BUFFER = 1 << 16
FLUSH_SECONDS = 1.0
_SPOOL = struct.Struct("<IIdI")  # tunnel id, frame number, time, length


def interface_name(t: Tunnel) -> str:
    """The pcapng interface of a tunnel's inner packets: its ID, user and the two tunnel ends."""
    user = printable(t.auth.user, 64) if t.auth.user else "-"
    return f"tunnel {t.id} {user} {t.client.ip}-{t.server.ip}"


class _Writer:
    """A pcapng writer over a descriptor that reports its first error and then only counts."""

    def __init__(self, fd: int, path: str, on_error: Callable[[str], None]) -> None:
        self.path = path
        self._on_error = on_error
        self._f: BinaryIO | None = os.fdopen(fd, "wb", buffering=BUFFER)
        self.packets = 0
        self.lost = 0
        self.error: str | None = None
        self._tunnels: set[int] = set()
        self._w: PcapNgWriter | None = None
        try:
            self._w = PcapNgWriter(self._f, comment=COMMENT)
        except OSError as e:
            self._fail(e)

    def _fail(self, e: OSError) -> None:
        if self.error is None:
            self.error = f"cannot write {self.path}: {describe_os_error(e)}"
            self._on_error(f"{self.error}; the decrypted packets after it are not recorded")

    def put(self, tunnel_id: int, name: str, number: int, ts: float, ip: bytes) -> None:
        if self._w is None or self.error is not None:
            self.lost += 1
            return
        try:
            self._w.write(ts, name, LINKTYPE_RAW, ip, comment=f"frame {number}")
        except OSError as e:
            self._fail(e)
            self.lost += 1
            return
        self._tunnels.add(tunnel_id)
        self.packets += 1

    def flush(self) -> None:
        if self._f is not None and self.error is None:
            try:
                self._f.flush()
            except OSError as e:
                self._fail(e)

    def close(self) -> None:
        f, self._f = self._f, None
        if f is None:
            return
        try:
            f.close()
        except OSError as e:
            self._fail(e)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path, "packets": self.packets, "tunnels": len(self._tunnels), "not_written": self.lost,
                "error": self.error}


class DecryptedRecorder:
    """``-w FILE --decrypted``: every inner packet as it is read. Its :meth:`write` is an inspector sink."""

    def __init__(self, fd: int, path: str, on_error: Callable[[str], None]) -> None:
        self._fd = fd
        self._w = _Writer(fd, path, on_error)
        self._lock = threading.Lock()  # written by the capture thread, closed by a signal or the main thread
        self._last_flush = 0.0

    def fds(self) -> list[int]:
        """The descriptor to hand to the dropped user (``-Z``)."""
        return [self._fd]

    def write(self, t: Tunnel, number: int, ts: float, ip: bytes) -> None:
        with self._lock:
            self._w.put(t.id, interface_name(t), number, ts, ip)
            if abs(ts - self._last_flush) >= FLUSH_SECONDS:  # live: readable while it grows
                self._last_flush = ts
                self._w.flush()

    def close(self) -> None:
        with self._lock:
            self._w.close()

    def as_dict(self) -> dict[str, Any]:
        return self._w.as_dict()


class DecryptedSpool:
    """``--export-tunnel ... --decrypted``: every inner packet kept until the selection is known."""

    def __init__(self) -> None:
        self._spool: BinaryIO = tempfile.TemporaryFile(prefix="pptptop-decrypted-")  # noqa: SIM115
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()
        self.error: str | None = None
        self.kept = 0

    def fds(self) -> list[int]:
        return []

    def write(self, t: Tunnel, number: int, ts: float, ip: bytes) -> None:
        with self._lock:
            if self.error is not None:
                return
            self._names.setdefault(t.id, interface_name(t))
            try:
                self._spool.write(_SPOOL.pack(t.id, number, ts, len(ip)) + ip)
            except OSError as e:
                self.error = f"cannot keep the decrypted packets for the export: {describe_os_error(e)}"
                return
            self.kept += 1

    def export(self, tunnels: Iterable[Tunnel], fd: int, path: str, on_error: Callable[[str], None]) -> int:
        """Write the inner packets of ``tunnels`` to ``fd`` (closed after), in capture order; the count."""
        wanted = {t.id: interface_name(t) for t in tunnels}
        out = _Writer(fd, path, on_error)
        with self._lock:
            if self.error is not None:
                on_error(self.error)
            f = self._spool
            f.flush()
            f.seek(0)
            while True:
                head = f.read(_SPOOL.size)
                if len(head) < _SPOOL.size:
                    break
                tid, number, ts, n = _SPOOL.unpack(head)
                ip = f.read(n)
                if tid in wanted:
                    out.put(tid, wanted[tid], number, ts, ip)
        out.close()
        if out.error is not None:
            raise RecordError(path, out.error)
        return out.packets

    def close(self) -> None:
        with self._lock:
            self._spool.close()
