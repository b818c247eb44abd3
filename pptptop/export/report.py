"""``--report``: a readable summary per tunnel, the way an engineer would write it up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pptptop.export.text import printable, quoted, size
from pptptop.track.model import Direction, EchoStats, HexData, Outcome, Phase, Tunnel
from pptptop.track.tracker import Tracker

#: extra report lines added by later stages (diagnosis, NAT): f(tunnel) -> lines
ReportExtension = Callable[[Tunnel], list[str]]

_MARK = {Outcome.OK: "✓", Outcome.FAILED: "✗", Outcome.OPEN: "…", Outcome.NOT_SEEN: "?"}


def _echo(e: EchoStats) -> str:
    if not e.requests:
        return "none"
    rtt = f", rtt {e.rtt_avg_ms:.1f} ms" if e.rtt_avg_ms is not None else ""
    miss = f", {e.misses} missed" if e.misses else ""
    return f"{e.replies}/{e.requests} answered{rtt}{miss}"


def tunnel_lines(t: Tunnel, extensions: list[ReportExtension] | None = None) -> list[str]:
    state = t.phase.value.upper()
    if t.phase is Phase.FAILED and t.failed_in is not None:
        state += f" in {t.failed_in.value}"
    head = f"Tunnel {t.id}  {t.client.ip} → {t.server.ip}  [{state}]"
    if t.iface:
        head += f"  on {printable(t.iface, 32)}"
    if not t.control_seen:
        head += "  (control connection not seen)"
    c = t.control
    lines = [head]
    for name, ep, host, vendor in (("client", t.client, c.client_host, c.client_vendor),
                                   ("server", t.server, c.server_host, c.server_vendor)):
        call = ep.call_id if ep.call_id is not None else "-"
        lines.append(f"  {name:8} {ep.ip} port {ep.port or '-'} call {call}"
                     f"  host {quoted(host, 64)} vendor {quoted(vendor, 64)}")
    spans = []
    unseen = [s.phase.value for s in t.phases if s.outcome is Outcome.NOT_SEEN]
    if unseen:
        spans.append(f"joined mid-session ({' '.join(unseen)} not seen)")
    for s in t.phases:
        if s.phase in (Phase.CLOSED, Phase.FAILED) or s.outcome is Outcome.NOT_SEEN:
            continue
        dur = f" {s.end - s.start:.2f}s" if s.end is not None else ""
        spans.append(f"{s.phase.value}{dur} {_MARK[s.outcome]}")
    lines.append("  phases   " + " · ".join(spans))
    a = t.auth
    if a.method != "none" or a.user:
        res = a.result
        if a.error_code is not None:
            res += f" E={a.error_code}"
        lines.append(
            f"  auth     {a.method} user {quoted(a.user, 64)} → {res}"
            + (f" {quoted(a.message, 128)}" if a.message else "")
            + ("  (password sent in clear)" if a.password_seen else "")
        )
    elif not t.auth_seen:
        lines.append("  auth     not seen (before the capture)")
    n = t.ncp
    if n.client_ip or n.server_ip:
        lines.append(
            f"  ncp      client {n.client_ip or '-'} server {n.server_ip or '-'}"
            + (f" dns {', '.join(n.dns)}" if n.dns else "")
        )
    cc = t.ccp
    if cc.from_data:
        what = "MPPE" if cc.mppe else "MPPC compression without encryption"
        lines.append(f"  mppe     {what} (negotiated before the capture; the data says so, strength not seen)")
    elif cc.mppe:
        lines.append(f"  mppe     {cc.bits}-bit {'stateless' if cc.stateless else 'stateful'}")
    elif cc.rejected_by:
        lines.append(f"  mppe     refused by {cc.rejected_by}")
    elif not t.ccp_seen:
        lines.append("  mppe     unknown (negotiated before the capture)")
    elif t.phase in (Phase.DATA, Phase.CLOSED):
        lines.append("  mppe     none (data in clear)")
    up, down = t.traffic[Direction.TO_SERVER], t.traffic[Direction.TO_CLIENT]
    if up.packets or down.packets:
        lines.append(
            f"  traffic  → {up.packets} pkts {size(up.bytes)}   ← {down.packets} pkts {size(down.bytes)}"
            f"   GRE lost {up.lost}/{down.lost} reordered {up.reordered}/{down.reordered}"
        )
    lines.append(f"  echo     PPTP {_echo(t.pptp_echo)}; LCP {_echo(t.lcp_echo)}")
    for e in t.icmp_errors[:3]:
        lines.append(f"  icmp     {printable(e, 128)}")
    if t.close.how:
        cl = t.close
        extra = [s for s in cl.steps[1:4]]
        lines.append(
            f"  ended    by {cl.by}: {cl.how}"
            + (f" {_reason(cl.reason)}" if cl.reason else "")
            + (f" (then {'; '.join(printable(x, 80) for x in extra)})" if extra else "")
        )
    if t.malformed:
        lines.append(f"  malformed packets: {t.malformed}")
    for ext in extensions or []:
        lines.extend(ext(t))
    return lines


def _reason(reason: str) -> str:
    """A closing message's text quoted; a Terminate's data that is not text as the hex it already is."""
    return reason if isinstance(reason, HexData) else quoted(reason, 128)


def report(tracker: Tracker, source: dict[str, Any], extensions: list[ReportExtension] | None = None) -> str:
    s = tracker.stats
    out = [
        f"{printable(source.get('name', ''), 200)}: {s.frames} frames, {s.control_messages} PPTP control "
        f"messages, {s.gre} GRE packets, {s.malformed} malformed, {len(tracker.tunnels)} tunnels"
        + (f"; {s.other} frame{'s' if s.other != 1 else ''} skipped as not PPTP" if s.other else ""),
        "",
    ]
    for listener in source.get("pptp_listeners", []):
        out.insert(1, f"local PPTP server: {printable(listener, 120)}")
    if s.evicted:
        out.insert(1, f"{s.evicted} tunnel{'s' if s.evicted != 1 else ''} evicted by the memory bounds "
                      f"(--max-tunnels {tracker.limits.max_tunnels}): not in this report")
    for t in sorted(tracker.tunnels.values(), key=lambda t: t.id):
        with t.reading():  # a settled tunnel's records, read for it, packed again (track/model.py)
            out.extend(tunnel_lines(t, extensions))
        out.append("")
    return "\n".join(out)
