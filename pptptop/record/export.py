"""Per-tunnel export: every packet kept for a tunnel, both NAT legs, in capture order.

One exporter for the UI's save key (:func:`gather` under the pipeline lock,
then :func:`write_export` into :func:`save_path`) and headless
``--export-tunnel ID|FILTER -w FILE`` (:func:`select_tunnels`,
:func:`export_tunnels`): both write the same file, every NAT leg with its
section comment. ``--record-failed`` uses :func:`write_packets` with
comments.

What a tunnel keeps (``pptptop.track.model.Tunnel``): its first negotiation
and control packets (``packets``), the later ones in a ring
(``late_packets``), the latest keepalives (``keepalives``) and the last data
packets (``data_ring``). An export holds
exactly those; packets the tracker did not keep are not in it, and the
section comment says how many were dropped.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pptptop.diagnose.text import printable, quoted
from pptptop.record.writers import (
    PcapEncoder,
    PcapNgEncoder,
    RecordError,
    describe_os_error,
    open_output,
)
from pptptop.sources.linktypes import LINKTYPE_ETHERNET
from pptptop.track.model import Tunnel
from pptptop.track.tracker import Tracker

WRITE_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ExportPacket:
    """One packet to write: its frame number in the capture, time, interface, link type and bytes."""

    number: int
    ts: float
    iface: str
    linktype: int
    data: bytes
    comment: str | None = None


def nat_peers(tunnel: Tunnel) -> list[int]:
    """The tunnel ID of the other NAT leg (``tunnel.nat.peer``), when NAT correlation joined one."""
    return [] if tunnel.nat is None else [tunnel.nat.peer]


def tunnel_legs(tunnel: Tunnel, tracker: Tracker | None = None) -> list[Tunnel]:
    """The tunnel and, when NAT correlation named one and the tracker still has it, its other leg."""
    legs = [tunnel]
    if tracker is not None:
        for pid in nat_peers(tunnel):
            peer = tracker.tunnels.get(pid)
            if peer is not None and peer is not tunnel and peer not in legs:
                legs.append(peer)
    return legs


def tunnel_packets(tunnel: Tunnel) -> list[ExportPacket]:
    """Every packet the tracker kept for one tunnel, in capture order.

    Cheap enough to call with the pipeline lock held (it copies references);
    the deques are copied in one C-level step each.
    """
    stored = tunnel.all_packets()
    ring = tunnel.ring()
    linktypes = {p.iface: p.linktype for p in stored}
    lt = linktypes.get(tunnel.iface, stored[0].linktype if stored else LINKTYPE_ETHERNET)
    out = [ExportPacket(p.number, p.ts, p.iface, p.linktype, p.data) for p in stored]
    out += [ExportPacket(number, ts, tunnel.iface, lt, data) for number, ts, _d, data in ring]
    out.sort(key=lambda p: p.number)
    return out


def collect_packets(tunnels: Iterable[Tunnel], tracker: Tracker | None = None) -> list[ExportPacket]:
    """The packets of several tunnels (and their NAT legs), each frame once, in capture order."""
    seen: dict[int, ExportPacket] = {}
    done: set[int] = set()
    for t in tunnels:
        for leg in tunnel_legs(t, tracker):
            if leg.id in done:
                continue
            done.add(leg.id)
            for p in tunnel_packets(leg):
                seen.setdefault(p.number, p)
    return [seen[n] for n in sorted(seen)]


def write_packets(packets: Iterable[ExportPacket], dest: str | os.PathLike[str] | int, *, pcapng: bool = True,
                  comment: str | None = None, application: str = "pptptop", replace: bool = True) -> int:
    """Write a capture file of ``packets``; returns how many were written.

    ``dest`` is a path (created 0600 with :func:`open_output`, a symbolic link
    refused) or a descriptor opened earlier with it (before the privilege
    drop); the descriptor is closed. ``comment`` goes into the pcapng section
    header, each packet's own comment into its EPB. Classic pcap keeps one
    link type and no comments. On an I/O error the partial file is removed
    (when we have its path) and :class:`RecordError` is raised.
    """
    path = f"descriptor {dest}" if isinstance(dest, int) else os.fspath(dest)
    fd = dest if isinstance(dest, int) else open_output(path, replace=replace)
    count = 0
    try:
        if pcapng:
            ng = PcapNgEncoder(application, comment=comment)
            parts = [ng.begin()]
            for p in packets:
                parts.append(ng.encode(p.ts, p.iface, p.linktype, p.data, comment=p.comment))
                count += 1
        else:
            classic = PcapEncoder()
            parts = []
            for p in packets:
                rec = classic.encode(p.ts, p.iface, p.linktype, p.data)
                if rec is not None:
                    parts.append(rec)
                    count += 1
        _write_all(fd, parts)
        with contextlib.suppress(OSError):
            os.fsync(fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.close(fd)
        if not isinstance(dest, int):
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise RecordError(path, f"cannot write {path}: {describe_os_error(e)}", e.errno or 0) from e
    os.close(fd)
    return count


def _write_all(fd: int, parts: list[bytes]) -> None:
    buf = bytearray()
    for part in parts:
        buf += part
        if len(buf) >= WRITE_CHUNK:
            _write_fully(fd, bytes(buf))
            buf.clear()
    if buf:
        _write_fully(fd, bytes(buf))


def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(0, "short write")
        view = view[n:]


def describe_tunnel(t: Tunnel) -> str:
    """One line: which tunnel, who, how far it got and how it ended (wire strings escaped: it is printed)."""
    user = f", user {quoted(t.auth.user, 64)}" if t.auth.user else ""
    state = f"failed in {t.failed_in.value}" if t.failed_in is not None else t.phase.value
    c = t.close
    how = ""
    if c.how:
        how = f"; ended by {c.by or 'unknown'} ({c.how})" + (f": {printable(c.reason, 128)}" if c.reason else "")
    return f"tunnel {t.id} on {printable(t.iface or '?', 64)}: {t.label}{user}, {state}{how}"


def findings_text(t: Tunnel) -> list[str]:
    """The diagnosis (``tunnel.findings``), one line per finding.

    A finding's text is escaped already (the rules escape the wire strings
    they quote); :func:`printable` here is for anything else and changes
    nothing that was escaped.
    """
    lines = []
    for f in t.findings:
        sev = printable(f.severity.value, 16)
        code = printable(f.code, 64)
        title = printable(f.title, 160)
        detail = printable(f.detail, 600)
        hint = printable(f.hint, 600)
        line = f"[{sev}] {code}: {title}" if sev else f"{code}: {title}"
        if f.windows_error:
            line += f" (Windows error {f.windows_error})"
        if detail:
            line += f" - {detail}"
        if hint:
            line += f" Fix: {hint}"
        lines.append(line)
    return lines


def section_comment(tunnels: Iterable[Tunnel], tracker: Tracker | None = None, *, title: str = "") -> str:
    """The pcapng section comment of an export: what is in it and what was left out."""
    lines = [title] if title else []
    for t in tunnels:
        for leg in tunnel_legs(t, tracker):
            lines.append(describe_tunnel(leg))
            lines += ["  " + f for f in findings_text(leg)]
            if leg.packets_dropped:
                lines.append(f"  {leg.packets_dropped} stored packets of this tunnel were dropped "
                             "(only the first and the last are kept)")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class TunnelExport:
    """What an export writes, copied from the tracker: its packets and the pcapng section comment."""

    packets: list[ExportPacket]
    comment: str


def gather(tunnels: Iterable[Tunnel], tracker: Tracker | None = None) -> TunnelExport:
    """Copy what the export of ``tunnels`` (with their NAT legs) writes; call with the pipeline lock held."""
    ts = list(tunnels)
    return TunnelExport(collect_packets(ts, tracker), section_comment(ts, tracker, title="pptptop tunnel export"))


def write_export(export: TunnelExport, dest: str | os.PathLike[str] | int, *, pcapng: bool = True,
                 replace: bool = True) -> int:
    """Write a gathered export (no lock needed); returns the packets written. Raises :class:`RecordError`."""
    return write_packets(export.packets, dest, pcapng=pcapng, comment=export.comment if pcapng else None,
                         replace=replace)


def export_tunnels(tunnels: Iterable[Tunnel], dest: str | os.PathLike[str] | int, *, pcapng: bool = True,
                   tracker: Tracker | None = None) -> int:
    """Write every packet kept for ``tunnels`` (with their NAT legs) to one file; returns the count."""
    return write_export(gather(tunnels, tracker), dest, pcapng=pcapng)


def export_tunnel(tunnel: Tunnel, path: str | os.PathLike[str] | int, *, pcapng: bool = True,
                  tracker: Tracker | None = None) -> int:
    """One tunnel (both legs when NAT correlation knows the other), in capture order.

    Call with the pipeline lock held, or after the capture ended; returns
    the number of packets written. Raises :class:`RecordError`.
    """
    return export_tunnels([tunnel], path, pcapng=pcapng, tracker=tracker)


def save_path(tunnel_id: int, directory: Path | None = None, when: float | None = None) -> Path:
    """The save key's file: ``pptptop-ID-YYYYmmdd-HHMMSS.pcapng`` in ``directory``.

    Without a directory: the current one when it is writable, else the home directory.
    """
    if directory is None:
        here = Path.cwd()
        directory = here if os.access(here, os.W_OK) else Path.home()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if when is None else when))
    return directory / f"pptptop-{tunnel_id}-{stamp}.pcapng"


def select_tunnels(tracker: Tracker, selector: str,
                   match: Callable[[Tunnel], bool] | None = None) -> list[Tunnel]:
    """``--export-tunnel ID|FILTER``: a tunnel ID, or every tunnel ``match`` accepts, by ID.

    Raises ``ValueError`` with a message for the user when nothing matches.
    """
    s = selector.strip()
    if s.isdigit():
        t = tracker.tunnels.get(int(s))
        if t is None:
            known = ", ".join(str(i) for i in sorted(tracker.tunnels)[:20]) or "none"
            raise ValueError(f"no tunnel {s} in this capture (tunnels: {known})")
        return [t]
    if match is None:
        raise ValueError(f"{selector!r} is not a tunnel ID")
    found = [t for _, t in sorted(tracker.tunnels.items()) if match(t)]
    if not found:
        raise ValueError(f"no tunnel matches {selector!r}")
    return found
