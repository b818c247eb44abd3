"""Which local process listens on the PPTP control port (RFC 2637 §1.3: TCP 1723).

Shown in the live header ("pptpd[812] on 0.0.0.0:1723") so a capture on a
server says what it is watching. Best effort: without permission to see
other users' sockets the list is empty or lacks process names, and nothing
here ever raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PPTP_PORT: Final = 1723


@dataclass(frozen=True, slots=True)
class PptpListener:
    """A local TCP socket listening on port 1723 and, if visible, its process."""

    pid: int | None
    process: str  # "" when the process is not visible to us
    address: str  # the local address, "0.0.0.0" or "::" for all
    port: int = PPTP_PORT

    def __str__(self) -> str:
        where = f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"
        who = f"{self.process or '?'}[{self.pid}]" if self.pid is not None else "unknown process"
        return f"{who} on {where}"


def local_pptp_listeners(port: int = PPTP_PORT) -> list[PptpListener]:
    """The processes owning a listening local TCP socket on ``port``, sorted by pid and address."""
    import psutil  # live only: reading a file does without its import's start-up time

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError, RuntimeError):
        return []
    found: dict[tuple[int | None, str], PptpListener] = {}
    for c in conns:
        try:
            if c.status != psutil.CONN_LISTEN or not c.laddr or c.laddr.port != port:
                continue
            key = (c.pid, c.laddr.ip)
            if key in found:
                continue
            name = ""
            if c.pid is not None:
                try:
                    name = psutil.Process(c.pid).name()
                except (psutil.Error, OSError):
                    name = ""
            found[key] = PptpListener(pid=c.pid, process=name, address=c.laddr.ip, port=port)
        except (AttributeError, TypeError, ValueError):
            continue
    return sorted(found.values(), key=lambda x: (x.pid if x.pid is not None else -1, x.address))
