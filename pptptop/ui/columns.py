"""The columns of the tunnels table: title, width, priority, sort key and cell renderer.

A data table (like sngrep's column list): the widget draws whichever columns
fit, most important first (lowest ``priority``), in this order. Cells are Rich
``Text`` built from :class:`~pptptop.view.snapshot.TunnelRow` values; every wire
string goes through :func:`~pptptop.ui.format.wire`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from rich.style import Style
from rich.text import Text

from pptptop.track.model import PHASE_ORDER, Phase
from pptptop.ui.format import age, bits_rate, sparkline, wire
from pptptop.view.snapshot import SEVERITY_RANK, TunnelRow

StyleOf = Callable[[str], Style]

#: the chip text of each phase (the issue's names: TCP, CTRL, LCP, AUTH, NCP, DATA, CLOSED, FAILED)
PHASE_CHIP: dict[Phase, str] = {
    Phase.TCP: "TCP",
    Phase.CONTROL: "CTRL",
    Phase.CALL: "CALL",
    Phase.LCP: "LCP",
    Phase.AUTH: "AUTH",
    Phase.NCP: "NCP",
    Phase.DATA: "DATA",
    Phase.CLOSED: "CLOSED",
    Phase.FAILED: "FAILED",
}
SEVERITY_MARK = {"error": "✗", "warning": "!", "info": "i"}
PHASE_WIDTH = 10


#: marks a tunnel the capture joined mid-session (its first phases were not seen)
JOINED_MARK = "↪"


def phase_chip(r: TunnelRow) -> str:
    """``DATA``, ``CLOSED``, or ``FAIL AUTH`` for a tunnel that failed in AUTH; ``↪DATA`` when joined."""
    if r.phase is Phase.FAILED and r.failed_in is not None:
        chip = f"FAIL {PHASE_CHIP[r.failed_in]}"
    else:
        chip = PHASE_CHIP[r.phase]
    return JOINED_MARK + chip if r.joined else chip


def phase_style_name(r: TunnelRow) -> str:
    return f"phase-{r.phase.value}"


@lru_cache(maxsize=65536)
def ip_key(ip: str) -> tuple[int, int | str]:
    """Sort addresses numerically (IPv4 before IPv6); unparsable ones last, by text."""
    import ipaddress

    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return (2, ip)
    return (a.version // 6, int(a))


def echo_text(r: TunnelRow) -> tuple[str, str]:
    """(text, style name) of the echo health cell: ``12ms``, ``miss 3``, ``-``."""
    if r.echo_consecutive_misses:
        return f"miss {r.echo_consecutive_misses}", "bad"
    if r.echo_rtt_ms is not None:
        ms = r.echo_rtt_ms
        text = f"{ms:.0f}ms" if ms >= 10 else f"{ms:.1f}ms"
        return text, "warn" if r.echo_misses else "good"
    return ("-", "dim") if not r.echo_requests else ("wait", "dim")


def loss_text(r: TunnelRow) -> tuple[str, str]:
    if not r.lost:
        return ("0", "dim") if r.up.packets or r.down.packets else ("-", "dim")
    pct = r.loss_ratio * 100
    return (f"{pct:.1f}%" if pct < 10 else f"{pct:.0f}%"), "bad" if pct >= 1 else "warn"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    width: int
    priority: int  # 0 is never hidden; higher numbers go first when the terminal is narrow
    sort: Callable[[TunnelRow, float], Any]
    cell: Callable[[TunnelRow, float, StyleOf], Text]
    right: bool = False
    help: str = ""
    grow: int = 0  # up to this many more cells when the terminal has room (the Verdict)


def _plain(
    f: Callable[[TunnelRow, float], str], style: str = ""
) -> Callable[[TunnelRow, float, StyleOf], Text]:
    def cell(r: TunnelRow, now: float, st: StyleOf) -> Text:
        return Text(f(r, now), style=st(style) if style else "")

    return cell


def _mark(r: TunnelRow, now: float, st: StyleOf) -> Text:
    sev = r.worst_severity
    if sev is None:
        return Text(" ")
    return Text(SEVERITY_MARK.get(sev, "?"), style=st(f"sev-{sev}"))


def _phase(r: TunnelRow, now: float, st: StyleOf) -> Text:
    chip = phase_chip(r)
    return Text(f" {chip} " if len(chip) <= PHASE_WIDTH - 2 else f" {chip}", style=st(phase_style_name(r)))


def _echo(r: TunnelRow, now: float, st: StyleOf) -> Text:
    text, style = echo_text(r)
    return Text(text, style=st(style))


def _loss(r: TunnelRow, now: float, st: StyleOf) -> Text:
    text, style = loss_text(r)
    return Text(text, style=st(style))


def _enc(r: TunnelRow, now: float, st: StyleOf) -> Text:
    if r.encryption == "none":
        return Text("none", style=st("warn"))
    return Text(r.encryption or "-", style=st("dim") if not r.encryption else "")


def _spark(r: TunnelRow, now: float, st: StyleOf) -> Text:
    series = [a + b for a, b in zip(r.down.series(now), r.up.series(now), strict=True)]
    return Text(sparkline(series, 10), style=st("spark"))


def _age(r: TunnelRow, now: float, st: StyleOf) -> Text:
    if r.ended:
        return Text(age(r.last_seen - r.first_seen), style=st("dim"))
    return Text(age(now - r.first_seen))


def _user(r: TunnelRow, now: float, st: StyleOf) -> Text:
    if r.user is None:
        return Text("-", style=st("dim"))
    style = st("bad") if r.auth_result == "failure" else ""
    return Text(wire(r.user, 64), style=style)


def _rate_cell(which: str) -> Callable[[TunnelRow, float, StyleOf], Text]:
    def cell(r: TunnelRow, now: float, st: StyleOf) -> Text:
        rate = r.rate(r.down if which == "down" else r.up, now)
        return Text(bits_rate(rate), style="" if rate else st("dim"))

    return cell


def verdict_text(r: TunnelRow) -> str:
    """What is wrong, in the fewest words: the first error's code and its Windows error (``auth-failed 691``)."""
    f = r.verdict
    if f is None:
        return ""
    return f"{f.code} {f.windows_error}" if f.windows_error else f.code


def _verdict(r: TunnelRow, now: float, st: StyleOf) -> Text:
    f = r.verdict
    if f is None:
        return Text("-", style=st("dim"))
    return Text(wire(verdict_text(r), 64), style=st(f"sev-{f.severity}"))


def _verdict_key(r: TunnelRow, now: float) -> tuple[int, str]:
    f = r.verdict
    return (0, "") if f is None else (SEVERITY_RANK.get(f.severity, 0), f.code)


# fmt: off
COLUMNS: tuple[Column, ...] = (
    Column("diag", "!", 1, 0, lambda r, n: SEVERITY_RANK.get(r.worst_severity or "", 0), _mark,
           help="diagnosis: ✗ error, ! warning, i info"),
    Column("id", "#", 4, 0, lambda r, n: r.id, _plain(lambda r, n: str(r.id)), right=True, help="tunnel number"),
    Column("client", "Client", 15, 0, lambda r, n: ip_key(r.client_ip), _plain(lambda r, n: wire(r.client_ip, 39)),
           help="the PPTP client (PNS) address on this interface"),
    Column("public", "NAT public", 15, 4, lambda r, n: ip_key(r.nat_public or ""),
           _plain(lambda r, n: r.nat_public or "-"), help="the client's address after NAT, when both legs are seen"),
    Column("server", "Server", 15, 0, lambda r, n: ip_key(r.server_ip), _plain(lambda r, n: wire(r.server_ip, 39)),
           help="the PPTP server (PAC) address"),
    Column("user", "User", 8, 1, lambda r, n: (r.user or "\uffff").lower(), _user, help="the authenticated user"),
    Column("phase", "Phase", PHASE_WIDTH, 0,
           lambda r, n: (PHASE_ORDER[r.phase], PHASE_ORDER.get(r.failed_in or r.phase)), _phase,
           help="where the tunnel is: TCP CTRL CALL LCP AUTH NCP DATA, or CLOSED / FAIL <phase>; ↪ marks a "
                "tunnel met mid-session (its first phases not seen)"),
    Column("verdict", "Verdict", 15, 0, _verdict_key, _verdict, grow=13,
           help="what is wrong: the first error's (else warning's) code and Windows error, e.g. auth-failed 691"),
    Column("age", "Age", 6, 1, lambda r, n: -r.first_seen, _age, right=True,
           help="time since the tunnel's first packet (its whole duration, dimmed, once it ended)"),
    Column("down", "Down", 6, 2, lambda r, n: r.rate(r.down, n), _rate_cell("down"), right=True,
           help="bits/s server → client over the last 5 s of capture time (0 once ended)"),
    Column("up", "Up", 6, 2, lambda r, n: r.rate(r.up, n), _rate_cell("up"), right=True,
           help="bits/s client → server over the last 5 s of capture time (0 once ended)"),
    Column("spark", "Last 60 s", 10, 5, lambda r, n: r.down.rate(n, 60) + r.up.rate(n, 60), _spark,
           help="traffic per second, both ways, last minute"),
    Column("loss", "Loss", 5, 4, lambda r, n: r.loss_ratio, _loss, right=True,
           help="GRE packets lost (sequence gaps), both ways"),
    Column("echo", "Echo", 7, 3, lambda r, n: (r.echo_consecutive_misses, r.echo_rtt_ms or 0.0), _echo,
           right=True, help="keepalive round trip, or consecutive misses"),
    Column("enc", "Crypto", 8, 3, lambda r, n: r.encryption, _enc, help="MPPE key length, or none"),
    Column("iface", "Iface", 6, 7, lambda r, n: r.iface, _plain(lambda r, n: wire(r.iface, 16)),
           help="the capture interface"),
)
# fmt: on
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}
SEPARATOR = 1


def fit_columns(width: int, columns: tuple[Column, ...] = COLUMNS) -> list[Column]:
    """The columns that fit in ``width`` cells, most important first, kept in table order.

    A column that can ``grow`` takes what room is left, up to that many more cells.
    """
    chosen: set[str] = set()
    used = 0
    for c in sorted(columns, key=lambda c: c.priority):
        need = c.width + (SEPARATOR if chosen else 0)
        if c.priority == 0 or used + need <= width:
            chosen.add(c.key)
            used += need
    out = []
    for c in columns:
        if c.key not in chosen:
            continue
        if c.grow and used < width:
            more = min(c.grow, width - used)
            c = replace(c, width=c.width + more)
            used += more
        out.append(c)
    return out


def render_row(r: TunnelRow, now: float, cols: list[Column], st: StyleOf, base: Style | None = None) -> Text:
    """One table line: each cell cut or padded to its column's width."""
    line = Text(style=base or "", no_wrap=True, end="")
    for i, c in enumerate(cols):
        if i:
            line.append(" " * SEPARATOR)
        cell = c.cell(r, now, st)
        cell.truncate(c.width, overflow="ellipsis")
        pad = c.width - cell.cell_len
        if pad > 0:
            if c.right:
                line.append(" " * pad)
                line.append_text(cell)
            else:
                line.append_text(cell)
                line.append(" " * pad)
        else:
            line.append_text(cell)
    return line


def render_header(cols: list[Column], sort_key: str, reverse: bool, style: Style) -> Text:
    line = Text(style=style, no_wrap=True, end="")
    for i, c in enumerate(cols):
        if i:
            line.append(" " * SEPARATOR)
        title = c.title
        if c.key == sort_key:
            title += "▼" if reverse else "▲"
        title = title[: c.width]
        line.append(title.rjust(c.width) if c.right else title.ljust(c.width))
    return line


def column_at(cols: list[Column], x: int) -> Column | None:
    """The column under screen column ``x`` of a line drawn by :func:`render_row`."""
    pos = 0
    for c in cols:
        if pos <= x < pos + c.width + SEPARATOR:
            return c
        pos += c.width + SEPARATOR
    return None
