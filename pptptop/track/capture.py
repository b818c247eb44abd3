"""What the tracker counts of the whole capture, and the bounds it keeps its state within.

Both are plain data read by the exporters and the UI and written by every
module of the tracker (:mod:`pptptop.track.actions`), so they live below all
of them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Limits:
    """State bounds: days of traffic and floods of bogus IDs keep memory flat."""

    max_tunnels: int = 20_000
    max_orphans: int = 2_000  # GRE-only tunnels (control connection not seen)
    max_orphans_per_pair: int = 256  # of them between one pair of addresses: a flood of repeating keys
    max_pending_gre: int = 4_096  # GRE keys seen once or twice, not yet a tunnel (track/unknown.py)
    max_pending_tcp: int = 4_096  # TCP 1723 connections seen only as SYN, SYN-ACK, ACK (track/control.py)
    summary_every: float = 10.0  # seconds of capture between two summaries of stray GRE, by source
    stored_packets: int = 512  # negotiation packets kept from the start of a tunnel
    idle_timeout: float = 300.0  # no packet at all for this long: the tunnel is gone
    syn_timeout: float = 30.0  # SYNs with no answer for this long: give up
    pptp_echo_timeout: float = 60.0  # RFC 2637 §2.5
    lcp_echo_timeout: float = 10.0
    max_inner_flows: int = 256
    #: seconds of capture a tunnel stays quiet after its end before its packets are packed (Tracker.settle)
    settle_after: float = 5.0


@dataclass(slots=True)
class CaptureStats:
    frames: int = 0
    bytes: int = 0
    ip: int = 0
    tcp_pptp: int = 0
    control_messages: int = 0
    gre: int = 0
    gre_data: int = 0
    gre_unknown: int = 0
    gre_unknown_dropped: int = 0  # of those, packets that never became a tunnel's (floods, strays)
    gre_unknown_sources: Counter[str] = field(default_factory=Counter)  # the dropped ones by source, bounded
    tcp_unopened: int = 0  # TCP 1723 connections never seen past SYN, SYN-ACK and ACK (SYN floods, scans)
    icmp: int = 0
    other: int = 0
    malformed: int = 0
    malformed_by_code: Counter[str] = field(default_factory=Counter)
    tunnels_created: int = 0
    evicted: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
