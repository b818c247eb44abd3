"""Wireshark's packet list for one tunnel: number, time, direction, kind, summary."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from pptptop.track.model import Direction, Packet
from pptptop.ui.format import clock, wire
from pptptop.ui.widgets.line_list import LineList


class PacketList(LineList):
    """Every kept frame of a tunnel; Enter opens the packet."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"packet-list--dim"}
    header_height = 1

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.packets: list[Packet] = []
        self.evidence: frozenset[int] = frozenset()

    @property
    def component_prefix(self) -> str:
        return "packet-list"

    def set_packets(self, packets: list[Packet], evidence: frozenset[int]) -> None:
        keep = self.packets[self.cursor].number if self.packets and self.cursor < len(self.packets) else None
        self.packets, self.evidence = packets, evidence
        if keep is not None:
            for i, p in enumerate(packets):
                if p.number == keep:
                    self.cursor = i
                    break
        self.rows_changed()

    def row_count(self) -> int:
        return len(self.packets)

    def render_header(self, line: int, width: int) -> Text:
        return Text(f"{'frame':>7}  {'time':<12}  dir     {'kind':<9} summary", no_wrap=True, end="")

    def render_row(self, index: int, width: int, selected: bool) -> Text:
        p = self.packets[index]
        arrow = "c → s" if p.direction is Direction.TO_SERVER else "c ← s"
        mark = "◆" if p.number in self.evidence else " "
        line = Text(no_wrap=True, end="")
        line.append(f"{mark}{p.number:>6}  ")
        line.append(f"{clock(p.ts):<12}  ", style=self.style_of("dim"))
        line.append(f"{arrow}   {p.kind.value:<9} ")
        line.append(wire(p.summary, 400))
        return line
