"""The tunnel screen (Enter on a row): ladder, summary, throughput, pppd transcript, packet list, inside."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static, TabbedContent, TabPane

from pptptop.track.model import Direction, Packet
from pptptop.ui.columns import phase_chip
from pptptop.ui.format import clock, wire
from pptptop.ui.inside_text import inside
from pptptop.ui.keys import bindings
from pptptop.ui.screens.base import PptpScreen
from pptptop.ui.tunnel_text import StyleOf, summary, throughput, transcript
from pptptop.ui.widgets.capture_header import CaptureHeader
from pptptop.ui.widgets.ladder import LadderView
from pptptop.ui.widgets.line_list import LineList
from pptptop.ui.widgets.packet_list import PacketList
from pptptop.view.inside import inside_view
from pptptop.view.ladder_model import Lane, all_frames, ladder_entries
from pptptop.view.snapshot import TunnelDetail, detail_of

RELOAD_EVERY = 0.5  # seconds: a live tunnel's screen is re-copied at most twice a second
CHART_SECONDS = 300  # the history a tunnel keeps (DirectionStats.history)
CHART_MIN_SECONDS = 30


def title_line(d: TunnelDetail) -> Text:
    r = d.row
    out = Text(no_wrap=True, overflow="ellipsis", end="")
    out.append(f" Tunnel {r.id} ", style="bold reverse")
    out.append(f" {r.client_ip} → {r.server_ip}  {phase_chip(r)}")
    if r.user:
        out.append(f"  user {wire(r.user, 48)}")
    if r.encryption:
        out.append(f"  {r.encryption}")
    return out


def verdict_line(d: TunnelDetail, st: StyleOf) -> Text:
    """Above the tabs: what is wrong with the session, in a sentence (the first error, else warning)."""
    r = d.row
    f = r.verdict
    out = Text(no_wrap=True, overflow="ellipsis", end="")
    if f is None:
        out.append(" no problem found" + (" so far" if not r.ended else ""), style=st("tunnel-text--dim"))
        return out
    mark = {"error": "✗", "warning": "!"}.get(f.severity, "i")
    out.append(f" {mark} {wire(f.title, 120)}", style=st(f"tunnel-text--finding-{f.severity}"))
    if f.windows_error:
        out.append(f"  Windows error {wire(f.windows_error, 16)}")
    out.append(f"  [{wire(f.code, 40)}", style=st("tunnel-text--dim"))
    if f.leg:
        out.append(f", seen on {wire(f.leg, 16)}", style=st("tunnel-text--dim"))
    out.append("]", style=st("tunnel-text--dim"))
    more = sum(1 for g in r.findings if g is not f and g.severity in ("error", "warning"))
    if more:
        out.append(f"  +{more} more on 2 Summary", style=st("tunnel-text--dim"))
    return out


class TunnelScreen(PptpScreen):
    """Everything about one tunnel, in tabs (1-6)."""

    KEY_SCOPE = "tunnel"
    DEFAULT_CSS = """
    TunnelScreen #title { height: 1; }
    TunnelScreen #verdict { height: 1; }
    TunnelScreen TabbedContent { height: 1fr; }
    TunnelScreen TabPane { padding: 0; }
    TunnelScreen LadderView, TunnelScreen PacketList { height: 1fr; }
    TunnelScreen VerticalScroll { height: 1fr; }
    TunnelScreen .text { width: 1fr; padding: 0 1; }
    TunnelScreen #arrow { height: 3; padding: 0 1; border-top: solid $primary 30%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*bindings("tunnel")]

    def __init__(self, tunnel_id: int) -> None:
        super().__init__()
        self.tunnel_id = tunnel_id
        self.detail: TunnelDetail | None = None
        self.version = -1
        self.loaded_at = 0.0
        self.pov = "server"
        self.frames: list[Packet] = []
        self.inner: dict[int, bytes] = {}  # frame number → its decrypted inner datagram (Inside tab's copy)

    def compose(self) -> ComposeResult:
        yield CaptureHeader(id="header")
        yield Static(id="title")
        yield Static(id="verdict")
        with TabbedContent(initial="flow"):
            with TabPane("1 Flow", id="flow"):
                yield LadderView(id="ladder")
                yield Static(id="arrow")
            with TabPane("2 Summary", id="summary"), VerticalScroll():
                yield Static(id="summary-text", classes="text")
            with TabPane("3 Traffic", id="traffic"), VerticalScroll():
                yield Static(id="traffic-text", classes="text")
            with TabPane("4 Transcript", id="transcript"), VerticalScroll():
                yield Static(id="transcript-text", classes="text")
            with TabPane("5 Packets", id="packets"):
                yield PacketList(id="packet-list")
            with TabPane("6 Inside", id="inside"), VerticalScroll():
                yield Static(id="inside-text", classes="text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(LadderView).focus()
        self._pin(True)

    def on_unmount(self) -> None:
        self._pin(False)

    def _pin(self, pinned: bool) -> None:
        """The tunnel the user is looking at is evicted last (``Tracker.pin``)."""
        pipeline = self.pptp.pipeline
        with pipeline.lock:
            pipeline.tracker.pin(self.tunnel_id, pinned)

    # ---------------------------------------------------------------- data
    def on_snapshot(self, changed: bool) -> None:
        version = self.pptp.store.versions.get(self.tunnel_id, -1)
        if self.detail is not None and version == self.version:
            return
        if self.detail is not None and time.monotonic() - self.loaded_at < RELOAD_EVERY:
            return
        d = detail_of(self.pptp.pipeline, self.tunnel_id)
        if d is None:
            if self.detail is None:
                self.query_one("#title", Static).update(Text(f" tunnel {self.tunnel_id} is gone from memory"))
            return
        self.version = version
        self.loaded_at = time.monotonic()
        self.detail = d
        self.show(d)

    def show(self, d: TunnelDetail) -> None:
        self.query_one("#title", Static).update(title_line(d))
        entries, with_nat = ladder_entries(d)
        r = d.row
        self.query_one("#verdict", Static).update(verdict_line(d, self.query_one(LadderView).style_of))
        titles = {Lane.CLIENT: f"client {r.client_ip}", Lane.SERVER: f"server {r.server_ip}"}
        if with_nat and r.nat is not None:
            titles[Lane.NAT] = f"NAT {r.nat.outside.ip or '?'}"
            if r.nat.inside.ip:
                titles[Lane.CLIENT] = f"client {r.nat.inside.ip}"
        t0 = min((e.packet.ts for e in entries), default=r.first_seen)
        ladder = self.query_one(LadderView)
        ladder.set_entries(entries, with_nat, titles, min(t0, r.first_seen))
        self._arrow()
        self.query_one("#summary-text", Static).update(summary(d, ladder.style_of))
        self.query_one("#transcript-text", Static).update(transcript(d, self.pov, ladder.style_of))
        self.frames = all_frames(d)
        evidence = frozenset(n for f in r.findings for n in f.evidence)
        self.query_one(PacketList).set_packets(self.frames, evidence)
        self._traffic()
        self._inside()

    def _inside(self) -> None:
        """The Inside tab, copied under the pipeline lock like the detail."""
        v = inside_view(self.pptp.pipeline, self.tunnel_id)
        if v is not None:
            self.inner = dict(v.inner_frames)
            self.query_one("#inside-text", Static).update(inside(v, self.query_one(LadderView).style_of))

    def _traffic(self) -> None:
        d = self.detail
        if d is None:
            return
        width = max(20, self.size.width - 4)
        now = self.pptp.store.now() or d.row.last_seen
        if d.row.ended:
            now = d.row.last_seen
        st = self.query_one(LadderView).style_of
        seconds = max(CHART_MIN_SECONDS, min(CHART_SECONDS, int(now - d.row.first_seen) + 2))
        out = Text()
        down, up = d.traffic[Direction.TO_CLIENT], d.traffic[Direction.TO_SERVER]
        ended = d.row.ended
        out.append_text(throughput(down, now, seconds, width, 6, "down (server → client)", st, ended))
        out.append("\n")
        out.append_text(throughput(up, now, seconds, width, 6, "up (client → server)", st, ended))
        self.query_one("#traffic-text", Static).update(out)

    def on_resize(self) -> None:
        self._traffic()

    def _arrow(self) -> None:
        """The selected arrow in full under the ladder (labels are cut to fit between the columns)."""
        ladder = self.query_one(LadderView)
        if not ladder.entries or ladder.cursor >= len(ladder.entries):
            return
        e = ladder.entries[ladder.cursor]
        p = e.packet
        who = "client → server" if p.direction is Direction.TO_SERVER else "server → client"
        leg = " (NAT outside leg)" if e.outside and ladder.with_nat else ""
        out = Text(f"frame {p.number}  {clock(p.ts)}  {who}{leg}  ", style="bold", overflow="fold")
        out.append(wire(p.summary, 600))
        if e.evidence:
            out.append("  ◆ diagnosis evidence", style="bold")
        self.query_one("#arrow", Static).update(out)

    @on(LineList.Highlighted, "#ladder")
    def _moved(self) -> None:
        self._arrow()

    # ---------------------------------------------------------------- actions
    def _evidence(self) -> frozenset[int]:
        d = self.detail
        return frozenset(n for f in d.row.findings for n in f.evidence) if d is not None else frozenset()

    @on(LadderView.Open)
    def _ladder_open(self, event: LadderView.Open) -> None:
        ladder = self.query_one(LadderView)
        packets = [e.packet for e in ladder.entries]
        if packets:
            self.pptp.open_packet(packets, event.index, self._evidence(), self.inner)

    @on(LineList.Activated, "#packet-list")
    def _list_open(self, event: LineList.Activated) -> None:
        if self.frames:
            self.pptp.open_packet(self.frames, event.index, self._evidence(), self.inner)

    def action_open_packet(self) -> None:
        active = self.query_one(TabbedContent).active
        if active == "packets":
            pl = self.query_one(PacketList)
            if self.frames:
                self.pptp.open_packet(self.frames, pl.cursor, self._evidence(), self.inner)
            return
        ladder = self.query_one(LadderView)
        if ladder.entries:
            self.pptp.open_packet([e.packet for e in ladder.entries], ladder.cursor, self._evidence(), self.inner)

    def action_save(self) -> None:
        self.pptp.save_tunnel(self.tunnel_id)

    def action_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = name
        target = {"flow": LadderView, "packets": PacketList}.get(name)
        if target is not None:
            self.query_one(target).focus()

    def action_pov(self) -> None:
        self.pov = "client" if self.pov == "server" else "server"
        if self.detail is not None:
            st = self.query_one(LadderView).style_of
            self.query_one("#transcript-text", Static).update(transcript(self.detail, self.pov, st))
