"""The ground floor every layer stands on: a captured frame, many frames at once, and the link types.

Sources produce :class:`Frame` and :class:`Batch`; the decoders read them;
the tracker, the recorder and the UI pass them on. They live here, below
both :mod:`pptptop.sources` and :mod:`pptptop.decode`, so that a decoder
never imports a capture source.

The link-type numbers are the registry at https://www.tcpdump.org/linktypes.html
(``LINKTYPE_*``), which pcap file headers and pcapng Interface Description
Blocks use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

LINKTYPE_NULL: Final = 0  # BSD loopback: 4-byte address family in host byte order
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101  # raw IPv4 or IPv6, told apart by the version nibble
LINKTYPE_LOOP: Final = 108  # OpenBSD loopback: address family in network byte order
LINKTYPE_LINUX_SLL: Final = 113  # Linux "cooked" capture, 16-byte header
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276  # Linux "cooked" capture v2, 20-byte header

#: Short names, as tshark's ``frame.encap_type``-style labels and capinfos show them.
LINKTYPE_NAMES: Final[dict[int, str]] = {
    LINKTYPE_NULL: "NULL (BSD loopback)",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW: "Raw IP",
    LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
    LINKTYPE_IPV4: "Raw IPv4",
    LINKTYPE_IPV6: "Raw IPv6",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2 (SLL2)",
}


def linktype_name(linktype: int) -> str:
    """A human name for a link type, or ``"linktype N"`` for one we do not decode."""
    return LINKTYPE_NAMES.get(linktype, f"linktype {linktype}")


class Frame(NamedTuple):
    """One captured link-layer frame."""

    ts: float  # seconds since the epoch, capture time
    iface: str  # interface name ("eth0", "lan0"); "" when the file names none
    linktype: int  # a LINKTYPE_* value
    data: bytes  # the captured bytes (may be shorter than on the wire)


I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


@dataclass(slots=True)
class Batch:
    """Many frames without an object per frame: frames ``i`` are ``buf[offsets[i]:offsets[i] + lengths[i]]``,
    captured at ``ts[i]``.

    ``buf`` is a file chunk or a TPACKET_V3 ring block. ``ifaces`` names the
    interfaces as ``(name, linktype)``; ``ifidx[i]`` indexes it, or ``ifidx``
    is None when every frame is on ``ifaces[0]``.
    """

    buf: bytes | memoryview
    offsets: I64
    lengths: I64
    ts: F64
    ifaces: list[tuple[str, int]]
    ifidx: I64 | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def frame(self, i: int) -> Frame:
        off = int(self.offsets[i])
        name, linktype = self.ifaces[0 if self.ifidx is None else int(self.ifidx[i])]
        return Frame(float(self.ts[i]), name, linktype, bytes(self.buf[off : off + int(self.lengths[i])]))

    def view(self) -> U8:
        return np.frombuffer(self.buf, dtype=np.uint8)

    def part(self, lo: int, hi: int) -> Batch:
        """Frames ``lo`` to ``hi`` (the same buffer, no copy)."""
        return Batch(self.buf, self.offsets[lo:hi], self.lengths[lo:hi], self.ts[lo:hi], self.ifaces,
                     None if self.ifidx is None else self.ifidx[lo:hi])
