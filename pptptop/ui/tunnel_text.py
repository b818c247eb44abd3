"""The tunnel screen's text: phase timeline, findings, negotiated parameters, echo, ending, transcript.

Pure Rich ``Text`` builders over a :class:`~pptptop.view.snapshot.TunnelDetail`
(no Textual), so they are unit-tested directly. Styles are names of the
theme's classes, resolved by the caller through ``st(name)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.style import Style
from rich.text import Text

from pptptop.decode import pptp as P
from pptptop.export.text import size
from pptptop.track.model import Direction, EchoStats, HexData, Outcome, PacketKind, Phase
from pptptop.ui.columns import PHASE_CHIP
from pptptop.ui.format import bits_rate, clock, duration, wire
from pptptop.view.snapshot import Traffic, TunnelDetail

StyleOf = Callable[[str], Style]
MARK = {Outcome.OK: "✓", Outcome.FAILED: "✗", Outcome.OPEN: "…", Outcome.NOT_SEEN: "?"}
#: the theme classes this module draws with (declared by the widget that resolves them)
TEXT_CLASSES = frozenset({
    "timeline--ok", "timeline--failed", "timeline--open", "timeline--not-seen",
    "tunnel-text--bad", "tunnel-text--dim", "tunnel-text--heading", "tunnel-text--chart",
    "tunnel-text--finding-error", "tunnel-text--finding-warning", "tunnel-text--finding-info",
    *(f"tunnel-table--phase-{p.value}" for p in Phase),
})
BLOCKS = " ▁▂▃▄▅▆▇█"


def _q(s: object, limit: int = 128) -> str:
    return '"' + wire(s, limit) + '"' if s not in (None, "") else "-"


def _section(out: Text, title: str, st: StyleOf) -> None:
    if out.plain:
        out.append("\n")
    out.append(title + "\n", style=st("tunnel-text--heading"))


def _row(out: Text, key: str, value: str | Text, style: str | Style = "") -> None:
    out.append(f"  {key:<11}", style="bold")
    if isinstance(value, Text):
        out.append_text(value)
    else:
        out.append(value, style=style)
    out.append("\n")


def timeline(d: TunnelDetail, st: StyleOf) -> Text:
    """One line per phase: outcome mark, name, start time, duration."""
    out = Text()
    for s in d.phases:
        if s.phase in (Phase.CLOSED, Phase.FAILED):
            continue
        style = st(f"timeline--{s.outcome.value}")
        out.append(f"  {MARK[s.outcome]} ", style=style)
        out.append(f"{PHASE_CHIP[s.phase]:<6}", style=style)
        out.append(f" {clock(s.start)}")
        if s.end is not None:
            out.append(f"  {duration(s.end - s.start):>8}")
        else:
            out.append("  (open)", style=style)
        out.append("\n")
    last = d.phases[-1] if d.phases else None
    if last is not None and last.phase in (Phase.CLOSED, Phase.FAILED):
        style = st("timeline--ok" if last.phase is Phase.CLOSED else "timeline--failed")
        what = (
            "closed"
            if last.phase is Phase.CLOSED
            else f"failed in {PHASE_CHIP.get(d.row.failed_in or Phase.TCP)}"
        )
        out.append(
            f"  {'■' if last.phase is Phase.CLOSED else '✗'} {what} at {clock(last.start)}\n", style=style
        )
    return out


def findings(d: TunnelDetail, st: StyleOf) -> Text:
    out = Text()
    for f in d.row.findings:
        mark = {"error": "✗", "warning": "!", "info": "i"}.get(f.severity, "?")
        out.append(f"  {mark} {wire(f.title, 200)}", style=st(f"tunnel-text--finding-{f.severity}"))
        leg = f", seen on the other NAT leg ({wire(f.leg, 32)})" if f.leg else ""
        out.append(f"  [{wire(f.code, 64)}{leg}]\n", style=st("tunnel-text--dim"))
        if f.detail:
            out.append(f"    {wire(f.detail, 400)}\n")
        if f.windows_error:
            out.append(f"    Windows client shows: {wire(f.windows_error, 200)}\n")
        if f.hint:
            out.append(f"    fix: {wire(f.hint, 400)}\n", style="italic")
        if f.evidence:
            out.append(
                f"    evidence: frame{'s' if len(f.evidence) > 1 else ''} "
                f"{', '.join(str(n) for n in f.evidence[:12])}\n",
                style=st("tunnel-text--dim"),
            )
    return out


def _lcp_opts(opts: dict[str, Any]) -> str:
    parts = []
    for k, v in opts.items():
        if v is True:
            parts.append(k)
        elif isinstance(v, int) and k in ("accm", "magic_number"):
            parts.append(f"{k.replace('_number', '')}=0x{v:x}")
        else:
            parts.append(f"{k}={wire(v, 40)}")
    return " ".join(parts) or "-"


def negotiated(d: TunnelDetail, st: StyleOf) -> Text:
    """Both sides' parameters: control, call, LCP, auth, addresses, MPPE."""
    bad = st("tunnel-text--bad")
    out = Text()
    c = d.control
    r = d.row
    _row(
        out,
        "client",
        f"{r.client_ip} port {r.client_port or '-'} call {_id(r.client_call)}  "
        f"host {_q(c.client_host, 64)} vendor {_q(c.client_vendor, 64)}",
    )
    _row(
        out,
        "server",
        f"{r.server_ip} port {r.server_port or '-'} call {_id(r.server_call)}  "
        f"host {_q(c.server_host, 64)} vendor {_q(c.server_vendor, 64)}",
    )
    if c.protocol_version is not None or c.connect_speed is not None:
        ver = f"0x{c.protocol_version:04x}" if c.protocol_version is not None else "-"
        win = " ".join(f"{k} {v}" for k, v in c.recv_window.items()) or "-"
        _row(out, "pptp", f"version {ver}  connect speed {c.connect_speed or '-'}  receive windows {win}")
    if c.start_result not in (None, 1):
        _row(
            out,
            "start",
            f"{P.result_name(2, c.start_result or 0)} (error {P.error_name(c.start_error or 0)})",
        )
    if c.call_result not in (None, 1):
        _row(
            out,
            "call",
            f"{P.result_name(8, c.call_result or 0)} (error {P.error_name(c.call_error or 0)}, "
            f"cause {c.call_cause})",
        )
    for side in ("client", "server"):
        opts = d.lcp.options.get(side) or {}
        if opts:
            _row(out, f"lcp {side}", _lcp_opts(opts))
    if d.lcp.identification:
        for side, text in d.lcp.identification.items():
            _row(out, f"ident {side}", _q(text, 120))
    a = d.auth
    if a.method != "none" or a.user:
        res = a.result + (f" E={a.error_code}" if a.error_code is not None else "")
        text = f"{a.method} user {_q(a.user, 64)}"
        if a.server_name:
            text += f" server name {_q(a.server_name, 64)}"
        text += f" → {res}"
        if a.message:
            text += f" {_q(a.message, 160)}"
        if a.attempts > 1:
            text += f" ({a.attempts} attempts)"
        _row(out, "auth", text, bad if a.result == "failure" else "")
        if a.password_seen:
            _row(out, "", "PAP: the password crossed the network in clear", bad)
    n = d.ncp
    if n.client_ip or n.server_ip or n.dns:
        text = f"client {n.client_ip or '-'}  server {n.server_ip or '-'}"
        if n.dns:
            text += f"  dns {', '.join(wire(x, 40) for x in n.dns)}"
        if n.nbns:
            text += f"  wins {', '.join(wire(x, 40) for x in n.nbns)}"
        _row(out, "ipcp", text)
    if n.client_ifid or n.server_ifid:
        _row(out, "ipv6cp", f"client {n.client_ifid or '-'}  server {n.server_ifid or '-'}")
    cc = d.ccp
    if cc.mppe:
        _row(
            out,
            "mppe",
            f"{cc.bits}-bit {'stateless' if cc.stateless else 'stateful'}"
            + (" + MPPC compression" if cc.mppc else ""),
        )
    elif cc.rejected_by:
        _row(out, "mppe", f"refused by the {cc.rejected_by}", bad)
    elif r.phase in (Phase.DATA, Phase.CLOSED):
        _row(out, "mppe", "none: data crosses the network in clear", bad)
    for side, offer in cc.offered.items():
        _row(out, f"ccp {side}", wire(offer, 160))
    return out


def _id(v: int | None) -> str:
    return "-" if v is None else str(v)


def _echo_line(e: EchoStats) -> str:
    if not e.requests:
        return "none seen"
    text = f"{e.replies}/{e.requests} answered"
    if e.rtt_ms is not None:
        text += f", rtt last {e.rtt_ms:.1f} ms"
    if e.rtt_avg_ms is not None:
        text += f" avg {e.rtt_avg_ms:.1f} ms"
    if e.rtt_max_ms is not None:
        text += f" max {e.rtt_max_ms:.1f} ms"
    if e.misses:
        text += f", {e.misses} missed ({e.consecutive_misses} in a row now)"
    return text


def health(d: TunnelDetail, st: StyleOf) -> Text:
    """Echo health, GRE sequence health, how it ended."""
    bad = st("tunnel-text--bad")
    out = Text()
    _row(out, "pptp echo", _echo_line(d.pptp_echo), bad if d.pptp_echo.consecutive_misses else "")
    _row(out, "lcp echo", _echo_line(d.lcp_echo), bad if d.lcp_echo.consecutive_misses else "")
    for name, t in (
        ("→ server", d.traffic[Direction.TO_SERVER]),
        ("← client", d.traffic[Direction.TO_CLIENT]),
    ):
        _row(
            out,
            name,
            f"{t.packets} packets {size(t.bytes)}, {t.data_packets} data; GRE lost {t.lost}, "
            f"duplicated {t.duplicates}, reordered {t.reordered}",
            bad if t.lost else "",
        )
    if d.tcp.retransmissions or d.tcp.resyncs:
        _row(out, "tcp", f"{d.tcp.retransmissions} retransmissions, {d.tcp.resyncs} resyncs")
    for e in d.icmp_errors[:4]:
        _row(out, "icmp", wire(e, 160), bad)
    if d.malformed:
        _row(out, "malformed", f"{d.malformed} packets did not parse", bad)
    return out


def ending(d: TunnelDetail, st: StyleOf) -> Text:
    bad = st("tunnel-text--bad")
    out = Text()
    cl = d.close
    if not cl.how:
        _row(out, "state", "still open" if not d.row.ended else "ended without a closing message")
        return out
    said = cl.reason if isinstance(cl.reason, HexData) else _q(cl.reason, 160)  # data not text: hex, unquoted
    text = f"by the {cl.by}: {cl.how}" + (f" {said}" if cl.reason else "")
    if cl.frame is not None:
        text += f"  (frame {cl.frame}, {clock(cl.ts or 0)})"
    _row(out, "ended", text, bad if d.row.failed else "")
    for s in cl.steps[1:8]:
        _row(out, "then", wire(s, 160))
    c = d.control
    if c.disconnect_result is not None:
        _row(
            out,
            "cdn",
            f"{P.result_name(13, c.disconnect_result)} cause {c.disconnect_cause}"
            + (f" stats {_q(c.call_statistics, 128)}" if c.call_statistics else ""),
        )
    if c.stop_reason is not None:
        _row(out, "stop", P.reason_name(c.stop_reason))
    return out


def summary(d: TunnelDetail, st: StyleOf) -> Text:
    """The whole summary tab."""
    r = d.row
    out = Text()
    head = f"Tunnel {r.id}  {r.client_ip} → {r.server_ip}"
    if r.iface:
        head += f"  on {wire(r.iface, 32)}"
    out.append(head, style="bold")
    chip = f" {PHASE_CHIP[r.phase]}" + (f" in {PHASE_CHIP[r.failed_in]}" if r.failed_in else "") + " "
    out.append("  ")
    out.append(chip, style=st(f"tunnel-table--phase-{r.phase.value}"))
    if d.roles_guessed:
        out.append("  (no control connection seen: client/server guessed)", style=st("tunnel-text--dim"))
    out.append("\n")
    if r.findings:
        _section(out, "Diagnosis", st)
        out.append_text(findings(d, st))
    _section(out, "Phases", st)
    out.append_text(timeline(d, st))
    _section(out, "Negotiated", st)
    out.append_text(negotiated(d, st))
    _section(out, "Health", st)
    out.append_text(health(d, st))
    _section(out, "End", st)
    out.append_text(ending(d, st))
    out.rstrip()
    return out


def transcript(d: TunnelDetail, pov: str, st: StyleOf) -> Text:
    """pppd's debug log of the negotiation as ``pov`` ("server" or "client") would have logged it."""
    out = Text()
    out.append(
        f"pppd debug log as the {pov} would write it (sent = from the {pov}; v switches)\n",
        style=st("tunnel-text--dim"),
    )
    sent_dir = Direction.TO_CLIENT if pov == "server" else Direction.TO_SERVER
    for p in d.packets:
        if p.kind is not PacketKind.PPP:
            continue
        verb = "sent" if p.direction is sent_dir else "rcvd"
        out.append(f"{clock(p.ts)} ", style=st("tunnel-text--dim"))
        out.append(f"{verb} ", style="bold" if verb == "sent" else "")
        out.append(wire(p.summary, 600))
        out.append("\n")
    out.rstrip()
    return out


def bar_chart(values: list[int], width: int, height: int) -> list[str]:
    """``values`` as vertical bars: ``height`` rows of ``width`` cells (eighth blocks), top row first."""
    if width <= 0 or height <= 0:
        return []
    n = len(values)
    cols = []
    for i in range(width):
        lo = i * n // width if n else 0
        hi = max(lo + 1, (i + 1) * n // width) if n else 0
        cols.append(max(values[lo:hi]) if n and lo < n else 0)
    top = max(cols) if cols else 0
    rows = []
    for level in range(height - 1, -1, -1):
        line = []
        for v in cols:
            eighths = round(v / top * height * 8) if top else 0
            fill = eighths - level * 8
            line.append(BLOCKS[8] if fill >= 8 else BLOCKS[fill] if fill > 0 else " ")
        rows.append("".join(line))
    return rows


def throughput(t: Traffic, now: float, seconds: int, width: int, height: int, title: str, st: StyleOf,
               ended: bool = False) -> Text:
    """A titled bar chart of one direction's bits per second over the last ``seconds`` seconds.

    ``now`` is capture time; the rate now of a tunnel that has ended is 0 (its chart is history).
    """
    series = t.series(now, seconds)
    peak = max(series) if series else 0
    avg = sum(series) / len(series) if series else 0
    current = 0.0 if ended else t.rate(now)
    out = Text()
    out.append(
        f"{title}  now {bits_rate(current)}/s  peak {bits_rate(peak)}/s  avg {bits_rate(avg)}/s"
        f"  (last {seconds} s)\n",
        style="bold",
    )
    for line in bar_chart(series, width, height):
        out.append(line + "\n", style=st("tunnel-text--chart"))
    out.append("-" * width + "\n", style=st("tunnel-text--dim"))
    return out
