"""The Save key: one tunnel's kept packets (negotiation + the data ring) into a pcapng file.

Frames come back in capture order, each once, on the interface they were
captured on (pcapng keeps one IDB per interface, so a NAT's two legs stay
apart). Packets a diagnosis cites as evidence get a frame comment.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pptptop.record.writers import PcapNgWriter, open_output
from pptptop.ui.snapshot import TunnelDetail

LINKTYPE_ETHERNET = 1


def save_name(tunnel_id: int, when: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if when is None else when))
    return f"pptptop-{tunnel_id}-{stamp}.pcapng"


def save_dir(cwd: Path | None = None) -> Path:
    """The current directory when it is writable, else the home directory."""
    here = cwd or Path.cwd()
    if os.access(here, os.W_OK):
        return here
    return Path.home()


def frames_of(d: TunnelDetail) -> list[tuple[int, float, str, int, bytes]]:
    """(number, ts, iface, linktype, data) of every kept frame, once each, in capture order.

    The data ring keeps no link type: its frames are on the tunnel's interface
    with the link type of its stored packets (Ethernet when none is stored).
    """
    by_number: dict[int, tuple[int, float, str, int, bytes]] = {}
    for p in d.packets:
        by_number.setdefault(p.number, (p.number, p.ts, p.iface, p.linktype, p.data))
    for number, ts, _direction, data in d.data_ring:
        by_number.setdefault(number, (number, ts, d.row.iface, d.linktype or LINKTYPE_ETHERNET, data))
    return [by_number[n] for n in sorted(by_number)]


def save_tunnel(
    d: TunnelDetail, directory: Path | None = None, when: float | None = None
) -> tuple[Path, int]:
    """Write the tunnel's frames; returns (path, number of packets written)."""
    target = (directory or save_dir()) / save_name(d.row.id, when)
    evidence: dict[int, list[str]] = {}
    for f in d.row.findings:
        for n in f.evidence:
            evidence.setdefault(n, []).append(f"{f.code}: {f.title}")
    frames = frames_of(d)
    # 0600, never through a planted symlink: the file holds user names and MS-CHAP exchanges
    with os.fdopen(open_output(str(target), replace=False), "wb") as fh:
        w = PcapNgWriter(fh)
        for number, ts, iface, linktype, data in frames:
            note = "; ".join(evidence.get(number, [])) or None
            w.write(
                ts, iface, linktype, data, comment=f"pptptop frame {number}" + (f": {note}" if note else "")
            )
    return target, len(frames)
