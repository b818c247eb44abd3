"""What the exporters and the UI read of the correlator: ``--json`` sections, ``--report`` lines, the table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pptptop.track.model import Tunnel
from pptptop.track.nat.correlator import NatCorrelator
from pptptop.track.nat.legs import NatLimits
from pptptop.track.notes import ConntrackNote
from pptptop.track.tracker import Tracker


def attach(tracker: Tracker, limits: NatLimits | None = None) -> NatCorrelator:
    """Subscribe a correlator to ``tracker`` (every run does this; it costs nothing without NAT)."""
    return NatCorrelator(tracker, limits)


class KernelView(Protocol):
    """What :class:`pptptop.track.conntrack.ConntrackMonitor` offers the exporters."""

    def view(self, t: Tunnel) -> ConntrackNote | None: ...


def json_extensions(nat: NatCorrelator, kernel: KernelView | None = None) -> dict[str, Callable[[Tunnel], Any]]:
    """Per-tunnel ``--json`` sections: ``nat``, ``nat_problems`` and, with ``--conntrack``, ``conntrack``."""
    def nat_json(t: Tunnel) -> dict[str, Any] | None:
        v = nat.view(t)
        return None if v is None else v.as_dict()

    def problems_json(t: Tunnel) -> list[dict[str, Any]]:
        return [p.as_dict() for p in nat.problems_of(t)]

    ext: dict[str, Callable[[Tunnel], Any]] = {"nat": nat_json, "nat_problems": problems_json}
    if kernel is not None:
        def conntrack_json(t: Tunnel) -> dict[str, Any] | None:
            k = kernel.view(t)
            return None if k is None else k.as_dict()

        ext["conntrack"] = conntrack_json
    return ext


def nat_table(nat: NatCorrelator, kernel: KernelView | None = None) -> list[dict[str, Any]]:
    """Every joined session's mapping (the inside leg's view), with the kernel's view when known."""
    rows = nat.sessions()
    if kernel is not None:
        for row in rows:
            t = nat.tracker.tunnels.get(row["tunnel"])
            k = kernel.view(t) if t is not None else None
            row["conntrack"] = None if k is None else k.as_dict()
    return rows


def _safe(s: object, limit: int = 64) -> str:
    """Interface names come from capture files: escape control characters for the terminal."""
    return repr(str(s))[1:-1][:limit]


def report_lines(nat: NatCorrelator, kernel: KernelView | None = None) -> Callable[[Tunnel], list[str]]:
    """A ``--report`` extension: the translation row, NAT problems and the kernel's view of a tunnel."""

    def lines(t: Tunnel) -> list[str]:
        out: list[str] = []
        v = nat.view(t)
        if v is not None:
            i, o, s = v.inside, v.outside, v.server
            out.append(f"  nat      {v.role} leg (peer tunnel {v.peer}): inside {i.ip}:{i.port} "
                       f"call {i.call_id} ⇄ outside {o.ip}:{o.port} call {o.call_id} ⇄ server "
                       f"{s.ip}:{s.port} call {s.call_id}  [{_safe(i.interface)} | "
                       f"{_safe(o.interface)}]")
        for p in nat.problems_of(t)[:8]:
            out.append(f"  nat!     {p.code.value}: {_safe(p.text, 240)}")
        if kernel is not None:
            note = kernel.view(t)
            k = None if note is None else note.view
            if k is not None and k.get("kernel"):
                ki, ko = k["kernel"]["inside"], k["kernel"]["outside"]
                state = "agrees" if k["agrees"] else "; ".join(_safe(d["text"], 200) for d in k["disagreements"][:3])
                out.append(f"  kernel   conntrack {ki['ip']}:{ki['port']} call {ki['call_id']} ⇄ "
                           f"{ko['ip']}:{ko['port']} call {ko['call_id']}: {state}")
            elif k is not None and k["disagreements"]:
                out.append(f"  kernel   {k['disagreements'][0]['text']}")
        return out

    return lines
