"""What the modules that read a frame's meaning may do to the tracker: a small public interface.

:mod:`~pptptop.track.control` (PPTP over TCP 1723),
:mod:`~pptptop.track.negotiation` (PPP inside GRE), :mod:`~pptptop.track.icmp`
(ICMP errors) and :mod:`~pptptop.track.keepalive` (echo health) are
functions that take the tracker as their first argument. They depend on this
Protocol, never on :mod:`pptptop.track.tracker`, which implements it and
imports them: the arrows point one way. A method call here is the same one
call the tracker makes itself; no layer is added on the per-packet path.
"""

from __future__ import annotations

from typing import Any, Protocol

from pptptop.decode.errors import DecodeError
from pptptop.track.capture import CaptureStats, Limits
from pptptop.track.connection import Connection, Connections, ConnKey
from pptptop.track.events import Event
from pptptop.track.model import Direction, Endpoint, Packet, Phase, Tunnel
from pptptop.track.texts import Texts


class TunnelActions(Protocol):
    """The tracker's state and the changes a frame may make to its tunnels."""

    stats: CaptureStats
    limits: Limits
    connections: Connections
    #: one copy of each text many tunnels repeat: pass a text a tunnel keeps through it (track/texts.py)
    texts: Texts

    # ---- what every module may do to a tunnel
    def emit(self, ev: Event) -> None:
        """Hand ``ev`` to every subscriber."""

    def store(self, t: Tunnel, p: Packet, keepalive: bool = False) -> None:
        """Keep ``p`` with ``t`` (its first packets, then a ring of late ones; keepalives apart)."""

    def malformed(self, e: DecodeError, number: int, ts: float, tunnel: Tunnel | None) -> None:
        """Count a frame that did not decode, with the tunnel it belongs to if known."""

    def advance(self, t: Tunnel, phase: Phase, ts: float, number: int | None) -> None:
        """``t`` reached ``phase`` (never goes back)."""

    def infer(self, t: Tunnel, phase: Phase, ts: float) -> None:
        """A joined ``t`` proved to be in ``phase`` at least, without showing it begin."""

    def join(self, t: Tunnel, phase: Phase, ts: float) -> None:
        """The capture met ``t``, new, already in ``phase``."""

    def close_step(self, t: Tunnel, by: str, how: str, reason: str | None, ts: float, number: int | None) -> None:
        """Record a terminating action on ``t``; the first says who ended it and how."""

    def end(self, t: Tunnel, ts: float, number: int | None) -> None:
        """``t`` is over: closed if it carried data, else failed in its phase."""

    def swap_roles(self, t: Tunnel, ts: float, number: int, why: str) -> None:
        """A GRE-only tunnel turned out the other way round: swap client and server."""

    # ---- tunnels, calls and their GRE keys
    def new_tunnel(self, ts: float, iface: str, client: Endpoint, server: Endpoint, phase: Phase,
                   tid: int | None = None) -> Tunnel:
        """A new tunnel in ``phase`` (numbered ``tid`` when one was reserved)."""

    def new_connection(self, ts: float, ckey: ConnKey) -> Connection:
        """A control connection first seen now, with a tunnel for its first call."""

    def register(self, t: Tunnel) -> None:
        """Index ``t``'s GRE keys (a newer call takes a key over from an older one)."""

    def adopt(self, conn: Connection, t: Tunnel, gre: Tunnel, ts: float, number: int) -> Tunnel:
        """``gre``, a GRE-only tunnel, is the call ``t`` of ``conn``: one tunnel; returns it."""

    def gre_owner(self, iface: str, src: str, dst: str, call_id: int) -> tuple[Tunnel, Direction] | None:
        """The tunnel of GRE from ``src`` to ``dst`` carrying ``call_id`` (a pending key is taken now)."""

    def gre_entry(self, iface: str, src_raw: bytes, dst_raw: bytes, call_id: int) -> tuple[Tunnel, Direction] | None:
        """As :meth:`gre_owner`, for packed addresses."""

    def gre_entry_of(self, iface: str, key: Any) -> tuple[Tunnel, Direction] | None:
        """The tunnel owning GRE index key ``key`` on ``iface``, if one does."""

    def connection(self, ckey: ConnKey) -> Connection | None:
        """The control connection ``ckey``; one held as a bare handshake is opened now."""
