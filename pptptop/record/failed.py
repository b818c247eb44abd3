"""``--record-failed DIR``: one pcapng per tunnel that ends failed, with its diagnosis.

The "catch the 3 a.m. failure" mode. When the tracker says a tunnel ended
``failed`` (:class:`~pptptop.track.events.EventKind` ``ENDED``), the tunnel
is written a few seconds of capture time later (:data:`LINGER`), so the
packets that follow the end — the TCP FIN, a late Call-Clear-Request, the
RST — are in the file too. It is written at once if the tracker evicts the
tunnel, and everything pending is written when the capture ends.

Each file holds every packet kept for the tunnel and its NAT leg (see
:mod:`pptptop.record.export`). The pcapng section comment (§4.1
``opt_comment``) says which tunnel failed, in which phase, how it was closed
and the diagnosis findings; the packet where the tunnel ended and each
finding's evidence packets carry an EPB comment (§4.3) as well, so Wireshark
shows them in the packet list (``frame.comment``).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from pptptop.diagnose.text import printable
from pptptop.record.export import (
    ExportPacket,
    collect_packets,
    findings_text,
    section_comment,
    write_packets,
)
from pptptop.record.writers import RecordError, describe_os_error
from pptptop.track.events import Event, EventKind
from pptptop.track.model import Phase, Tunnel
from pptptop.track.tracker import Tracker

log = logging.getLogger("pptptop.record")

#: seconds of capture time to wait after a tunnel ends before writing it
LINGER: Final = 3.0
DIR_MODE: Final = 0o700
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


@dataclass(frozen=True, slots=True)
class FailedState:
    """What ``--record-failed`` did so far, for the header and ``--json``."""

    directory: str
    files: tuple[str, ...]
    pending: int
    errors: int
    last_error: str

    def as_dict(self) -> dict[str, object]:
        return {"directory": self.directory, "files": list(self.files), "pending": self.pending,
                "errors": self.errors, "last_error": self.last_error or None}


def _safe(text: str, limit: int = 32) -> str:
    """A file-name fragment from untrusted text (user names come from the wire)."""
    return _UNSAFE.sub("_", text)[:limit].strip("._") or "x"


def failed_file_name(t: Tunnel) -> str:
    """``20261123T073238Z-tunnel2-lan0-10.0.0.2-bob-failed-auth.pcapng``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t.first_seen))
    parts = [stamp, f"tunnel{t.id}", _safe(t.iface or "any"), _safe(t.client.ip)]
    if t.auth.user:
        parts.append(_safe(t.auth.user))
    parts.append(f"failed-{t.failed_in.value if t.failed_in else 'unknown'}")
    return "-".join(parts) + ".pcapng"


def _evidence(t: Tunnel) -> dict[int, list[str]]:
    """Frame number -> comments: where the tunnel ended, and each finding's evidence."""
    notes: dict[int, list[str]] = {}
    c = t.close
    if c.frame is not None:
        why = f"{c.how} by {c.by}" + (f": {printable(c.reason, 128)}" if c.reason else "") if c.how else "end"
        state = f"failed in {t.failed_in.value}" if t.failed_in else t.phase.value
        notes.setdefault(c.frame, []).append(f"pptptop: tunnel {t.id} {state} here ({why})")
    raw = t.notes.get("findings")
    if isinstance(raw, list | tuple):
        for f in raw:
            ev = getattr(f, "evidence", ()) or ()
            text = (f"pptptop finding {printable(getattr(f, 'code', ''), 64)}: "
                    f"{printable(getattr(f, 'title', ''), 160)}")
            for n in ev:
                if isinstance(n, int):
                    notes.setdefault(n, []).append(text)
    return notes


class FailedRecorder:
    """Subscribes to a tracker; writes one file per failed tunnel into ``directory``.

    :meth:`prepare` before the privilege drop (it may create the directory
    and hand it to the target user), :meth:`attach`, and :meth:`close` at the
    end. Events arrive on the capture thread; files are small and written there.
    """

    def __init__(self, directory: str | os.PathLike[str], tracker: Tracker, *, linger: float = LINGER,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.directory = os.fspath(directory)
        self.tracker = tracker
        self.linger = linger
        self.on_error = on_error
        self._pending: dict[int, tuple[Tunnel, float]] = {}
        self._done: set[int] = set()
        self.files: list[str] = []
        self.errors = 0
        self.last_error = ""
        self.created_directory = False

    def prepare(self) -> None:
        """Create the directory (0700) if missing; refuse a symbolic link. Raises :class:`RecordError`."""
        d = self.directory
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            try:
                os.makedirs(d, mode=DIR_MODE)
            except OSError as e:
                raise RecordError(d, f"cannot create directory {d}: {describe_os_error(e)}",
                                  e.errno or 0) from e
            self.created_directory = True
            return
        except OSError as e:
            raise RecordError(d, f"cannot use {d}: {describe_os_error(e)}", e.errno or 0) from e
        if stat.S_ISLNK(st.st_mode):
            raise RecordError(d, f"refusing to use {d} for --record-failed: it is a symbolic link",
                              errno.ELOOP)
        if not stat.S_ISDIR(st.st_mode):
            raise RecordError(d, f"--record-failed needs a directory, and {d} is not one", errno.ENOTDIR)

    def chown(self, uid: int, gid: int) -> None:
        """Give a directory we created to the user we are about to become."""
        if self.created_directory:
            os.chown(self.directory, uid, gid, follow_symlinks=False)

    def attach(self) -> None:
        self.tracker.subscribe(self._on_event)

    def state(self) -> FailedState:
        return FailedState(self.directory, tuple(self.files), len(self._pending), self.errors,
                           self.last_error)

    # ------------------------------------------------------------------ events
    def _on_event(self, ev: Event) -> None:
        kind = ev.kind
        if kind is EventKind.ENDED:
            t = ev.tunnel
            if t is not None and t.phase is Phase.FAILED and t.id not in self._done:
                self._pending[t.id] = (t, ev.ts + self.linger)
        elif kind is EventKind.TICK:
            if ev.detail.get("final"):
                self.write_pending()
            else:
                self.write_pending(ev.ts)
        elif kind is EventKind.EVICTED and ev.tunnel is not None and ev.tunnel.id in self._pending:
            self._write(self._pending.pop(ev.tunnel.id)[0])

    def write_pending(self, now: float | None = None) -> None:
        """Write the failed tunnels whose linger time has passed (all of them when ``now`` is None)."""
        for tid, (t, due) in list(self._pending.items()):
            if now is None or now >= due:
                del self._pending[tid]
                self._write(t)

    def close(self) -> None:
        self.write_pending()

    # ------------------------------------------------------------------ writing
    def packets_for(self, t: Tunnel) -> list[ExportPacket]:
        """The tunnel's packets (with its NAT leg), the end and the evidence commented."""
        notes = _evidence(t)
        out = []
        for p in collect_packets([t], self.tracker):
            c = notes.get(p.number)
            out.append(ExportPacket(p.number, p.ts, p.iface, p.linktype, p.data, "\n".join(c)) if c else p)
        if out and not any(p.comment for p in out):
            last = out[-1]
            summary = "; ".join(findings_text(t)) or f"pptptop: tunnel {t.id} failed"
            out[-1] = ExportPacket(last.number, last.ts, last.iface, last.linktype, last.data, summary)
        return out

    def _write(self, t: Tunnel) -> None:
        self._done.add(t.id)
        name = failed_file_name(t)
        path = os.path.join(self.directory, name)
        stem = name[:-len(".pcapng")]
        n = 1
        while os.path.lexists(path):
            n += 1
            path = os.path.join(self.directory, f"{stem}-{n}.pcapng")
        title = "pptptop --record-failed: this tunnel ended failed"
        try:
            write_packets(self.packets_for(t), path, comment=section_comment([t], self.tracker, title=title),
                          replace=False)
        except RecordError as e:
            self.errors += 1
            self.last_error = str(e)
            log.error("%s", e)
            if self.on_error is not None:
                self.on_error(str(e))
            return
        self.files.append(path)
        log.info("recorded failed tunnel %d to %s", t.id, path)
