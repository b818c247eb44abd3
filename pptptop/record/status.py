"""Capture health for the UI header and ``--json``: drops, interface counters, recording state.

Two sources of numbers per interface, kept apart because they mean
different things:

* the capture source (:meth:`pptptop.sources.base.Source.stats`): frames
  delivered to pptptop after the BPF filter, ``kernel_drops`` from
  ``PACKET_STATISTICS`` (packets the kernel had to drop because our ring was
  full — a recording is missing them), the interface's receive drops since
  the capture began, and whether the interface is up or what went wrong;
* the interface itself (``psutil.net_io_counters(pernic=True)`` and
  ``psutil.net_if_stats()``, i.e. ``/proc/net/dev`` and ``SIOCGIFFLAGS``):
  totals since the interface came up, all traffic, not only PPTP.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pptptop.sources.base import Source


@dataclass(frozen=True, slots=True)
class InterfaceCounters:
    """One interface's counters, as of the call."""

    name: str
    up: bool  # the capture on it is running
    error: str  # why not, or the last problem ("" if none)
    received: int  # frames pptptop received from it (after the capture filter)
    kernel_drops: int  # PACKET_STATISTICS: dropped by the kernel, our ring was full
    if_drops: int  # the interface's receive drops since the capture began
    link_up: bool | None = None  # psutil: the interface is administratively up
    rx_packets: int | None = None  # psutil: totals since the interface came up
    rx_bytes: int | None = None
    rx_errors: int | None = None
    rx_dropped: int | None = None
    tx_packets: int | None = None
    tx_bytes: int | None = None


def interface_counters(source: Source) -> list[InterfaceCounters]:
    """Counters of every interface of ``source``; the psutil part only for live capture."""
    st = source.stats()
    io: dict[str, Any] = {}
    ifs: dict[str, Any] = {}
    if source.live:
        import psutil  # live only: its import's start-up time spared to reading a file

        try:
            io = psutil.net_io_counters(pernic=True, nowrap=True)
            ifs = psutil.net_if_stats()
        except (OSError, RuntimeError, psutil.Error):
            io, ifs = {}, {}
    out = []
    for name, s in st.interfaces.items():
        c = io.get(name)
        f = ifs.get(name)
        out.append(InterfaceCounters(
            name=name, up=s.up, error=s.error, received=s.received, kernel_drops=s.kernel_drops,
            if_drops=s.if_drops,
            link_up=None if f is None else bool(f.isup),
            rx_packets=None if c is None else c.packets_recv,
            rx_bytes=None if c is None else c.bytes_recv,
            rx_errors=None if c is None else c.errin,
            rx_dropped=None if c is None else c.dropin,
            tx_packets=None if c is None else c.packets_sent,
            tx_bytes=None if c is None else c.bytes_sent,
        ))
    return out


def counters_dict(counters: list[InterfaceCounters]) -> dict[str, dict[str, Any]]:
    """``{"eth0": {"received": …, "kernel_drops": …, …}}`` for ``--json``."""
    out = {}
    for c in counters:
        d = asdict(c)
        del d["name"]
        out[c.name] = d
    return out
