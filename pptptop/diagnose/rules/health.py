"""Warnings for tunnels that work but suffer: loss, reordering, latency, MTU, MPPE resyncs."""

from __future__ import annotations

from pptptop.diagnose.finding import Severity
from pptptop.diagnose.observe import SIDES
from pptptop.diagnose.rules.base import Case, Hit, frames, rule
from pptptop.track.model import Direction, DirectionStats

IPPROTO_GRE = 47
DIRECTIONS = tuple(Direction)  # iterating the enum class itself costs more, twice per evaluation (docs/benchmark.md)


def _sequenced(ds: DirectionStats) -> int:
    """GRE packets that carried a payload (and so a sequence number, RFC 2637 §4.1)."""
    return max(ds.packets - ds.ack_only, 0)


def _dir_name(d: Direction) -> str:
    return "client → server" if d is Direction.TO_SERVER else "server → client"


@rule("gre-loss", Severity.WARNING, timed=True)
def gre_loss(c: Case) -> Hit | None:
    """GRE sequence gaps above ``gre_loss_pct`` in a direction (RFC 2637 §4.3)."""
    parts = []
    for d in DIRECTIONS:
        ds = c.tunnel.traffic[d]
        if not ds.lost:
            continue
        n = _sequenced(ds)
        if n < c.cfg.gre_min_packets:
            continue
        pct = 100.0 * ds.lost / (n + ds.lost)
        if pct >= c.cfg.gre_loss_pct:
            parts.append(f"{_dir_name(d)} {ds.lost} of {n + ds.lost} ({pct:.1f}%)")
    if not parts:
        return None
    stateful = " With stateful MPPE every loss also costs a CCP resync." if c.tunnel.ccp.stateless is False else ""
    return Hit("GRE packet loss", f"GRE sequence numbers show loss: {'; '.join(parts)}.{stateful}", [],
               "Loss on the path between the capture point and the sender: check the links, queues and any "
               "rate limiting of GRE.")


@rule("gre-reorder", Severity.WARNING, timed=True)
def gre_reorder(c: Case) -> Hit | None:
    """GRE packets reordered or duplicated above ``gre_reorder_pct`` (RFC 2637 §4.3)."""
    parts = []
    for d in DIRECTIONS:
        ds = c.tunnel.traffic[d]
        bad = ds.reordered + ds.duplicates
        if not bad:
            continue
        n = _sequenced(ds)
        if n < c.cfg.gre_min_packets:
            continue
        pct = 100.0 * bad / n
        if pct >= c.cfg.gre_reorder_pct:
            parts.append(f"{_dir_name(d)} {ds.reordered} reordered, {ds.duplicates} duplicated of {n} ({pct:.1f}%)")
    if not parts:
        return None
    return Hit("GRE reordering", f"GRE arrives out of order: {'; '.join(parts)}.", [],
               "Reordering comes from load balancing over several paths or from retransmitting links; PPP over "
               "PPTP drops late packets, so applications see it as loss.")


@rule("echo-rtt-spike", Severity.WARNING, on=("lcp", "control"))
def echo_rtt_spike(c: Case) -> Hit | None:
    """An echo round trip far above the ones before it (RFC 1661 §5.8, RFC 2637 §2.5)."""
    spikes = [s for s in (c.obs.lcp_echo.spike, c.obs.pptp_echo.spike) if s is not None]
    if not spikes:
        return None
    s = max(spikes, key=lambda x: x.rtt_ms - x.baseline_ms)
    return Hit("Echo round-trip spike",
               f"One {s.kind.upper()} echo took {s.rtt_ms:.0f} ms against {s.baseline_ms:.0f} ms on average "
               "before it.", frames(s.request, s.reply),
               "Latency spikes come from congestion or bufferbloat on the path, or an overloaded server.")


@rule("mru-low", Severity.WARNING, on=("icmp", "lcp"))
def mru_low(c: Case) -> Hit | None:
    """An MRU below ``min_mru`` (RFC 1661 §6.1), or ICMP fragmentation-needed for the GRE (RFC 1191)."""
    o = c.obs
    small = [(side, o.mru[side]) for side in SIDES if side in o.mru and o.mru[side][0] < c.cfg.min_mru]
    frag = [i for i in o.icmp if i.inner_protocol == IPPROTO_GRE and i.type == 3 and i.code == 4]
    if not small and not frag:
        return None
    parts = [f"the {side} asked for MRU {mru}" for side, (mru, _) in small]
    if frag:
        parts.append(f"{frag[0].text}")
    return Hit("Small MTU/MRU", f"{'; '.join(parts)} (below {c.cfg.min_mru}): full-size packets inside the "
               "tunnel are fragmented or dropped.",
               frames([ref for _, (_, ref) in small], [i.ref for i in frag[:2]]),
               "Clamp the inner TCP MSS (iptables TCPMSS --clamp-mss-to-pmtu) and set the tunnel MTU to 1400 "
               "or less; make sure ICMP fragmentation-needed is not filtered.")


@rule("ccp-resets", Severity.WARNING, on=("ccp",))
def ccp_resets(c: Case) -> Hit | None:
    """CCP Reset-Requests on stateful MPPE (RFC 3078 §3.2, RFC 1962 §2.1): each one a resync after loss."""
    o = c.obs
    if o.ccp_reset_count < c.cfg.ccp_reset_threshold or c.tunnel.ccp.stateless is not False:
        return None
    return Hit("CCP resets on stateful MPPE",
               f"{o.ccp_reset_count} CCP Reset-Requests: stateful MPPE resynchronises its keys after every lost "
               "packet, which stalls traffic.", frames(o.ccp_resets[:3]),
               "Prefer stateless MPPE (the H bit; pppd's default, Windows 'mppe-stateless') and fix the loss.")


@rule("wan-errors", Severity.WARNING, on=("control",))
def wan_errors(c: Case) -> Hit | None:
    """WAN-Error-Notify counters from the PAC (RFC 2637 §2.14)."""
    w = c.obs.wan_error
    if w is None:
        return None
    ref, m = w
    counts = {"CRC": m.crc_errors, "framing": m.framing_errors, "hardware overrun": m.hardware_overruns,
              "buffer overrun": m.buffer_overruns, "time-out": m.timeout_errors, "alignment": m.alignment_errors}
    nonzero = [f"{k} {v}" for k, v in counts.items() if v]
    if not nonzero:
        return None
    return Hit("WAN errors reported by the server", f"WAN-Error-Notify: {', '.join(nonzero)}.", frames(ref),
               "The server's physical line reports errors: check its dial-up or serial side.")


@rule("lcp-loopback", Severity.WARNING, on=("lcp",))
def lcp_loopback(c: Case) -> Hit | None:
    """An LCP Echo-Reply carrying the requester's own Magic-Number (RFC 1661 §6.4): a looped-back link."""
    ref = c.obs.loopback
    if ref is None:
        return None
    return Hit("Looped-back link", "An LCP Echo-Reply carries the requester's own magic number (pppd: 'appear "
               "to have received our own echo-reply'): the link is looped back or a middlebox reflects packets.",
               frames(ref), "Check for a reflecting middlebox or a routing loop of the GRE.")
