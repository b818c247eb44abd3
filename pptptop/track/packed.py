"""A settled tunnel's stored packets, packed into a few flat arrays (issue 23: memory per closed tunnel).

While a tunnel is up, each stored packet is a :class:`~pptptop.track.model.Packet` holding its frame and
its decoded message. Once the tunnel has ended and gone quiet (``Tracker.settle``), its packets and its
data ring are packed here: the frames in one ``bytes``, numbers, times and link types in arrays, and only
the PPTP control messages (reassembled from TCP, so not always in one frame) kept decoded. A PPP frame's
message is decoded again from its frame when the packets are unpacked for the UI or an export.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pptptop.decode.errors import DecodeError
from pptptop.decode.gre import decode_gre
from pptptop.decode.ip import decode_ip
from pptptop.decode.link import network_offset
from pptptop.decode.ppp import PppFrame, decode_ppp
from pptptop.track.model import Direction, Packet, PacketKind

#: IP protocol numbers of an IP header inside IP, and the ethertype of what they carry (as the tracker)
_INNER_IP = {4: 0x0800, 41: 0x86DD}
_MAX_IP_NESTING = 4
_IPPROTO_GRE = 47
_KINDS = tuple(PacketKind)
_KIND_INDEX = {k: i for i, k in enumerate(_KINDS)}


def ppp_of(linktype: int, data: bytes, chap_algorithm: int | None) -> PppFrame | None:
    """The PPP frame in a captured GRE frame, decoded as the tracker decoded it; None if there is none."""
    try:
        ethertype, off = network_offset(linktype, data)
        if off < 0:
            return None
        ip = decode_ip(data, off, ethertype)
        for _ in range(_MAX_IP_NESTING):
            if ip.fragment or ip.protocol not in _INNER_IP:
                break
            ip = decode_ip(data, ip.payload_offset, _INNER_IP[ip.protocol])
        if ip.fragment or ip.protocol != _IPPROTO_GRE:
            return None
        g = decode_gre(data, ip.payload_offset, ip.payload_end)
        return decode_ppp(data[g.payload_offset:g.payload_end], chap_algorithm=chap_algorithm)
    except DecodeError:
        return None


@dataclass(slots=True)
class PackedPackets:
    """Packets in flat arrays: per packet its frame number, time, link type, kind and direction, interface,
    label and (for control messages) decoded message; every frame in ``blob``, packet i ending at
    ``ends[i]``."""

    numbers: array[int]
    times: array[float]
    ends: array[int]
    linktypes: array[int]
    flags: bytes  # kind index << 1 | direction
    ifaces: tuple[str, ...]
    labels: tuple[str, ...]
    messages: tuple[Any, ...]  # None for a PPP frame: decoded again from its frame
    blob: bytes

    @classmethod
    def pack(cls, packets: Iterable[Packet]) -> PackedPackets:
        ps = list(packets)
        ends = array("L")
        pos = 0
        for p in ps:
            pos += len(p.data)
            ends.append(pos)
        ppp = PacketKind.PPP
        return cls(
            array("q", [p.number for p in ps]),
            array("d", [p.ts for p in ps]),
            ends,
            array("H", [p.linktype for p in ps]),
            bytes(_KIND_INDEX[p.kind] << 1 | int(p.direction) for p in ps),
            tuple(p.iface for p in ps),
            tuple(p.label if p.kind is not ppp or p.message is None else "" for p in ps),
            tuple(None if p.kind is ppp else p.message for p in ps),
            b"".join(p.data for p in ps),
        )

    def __len__(self) -> int:
        return len(self.numbers)

    def frame(self, i: int) -> bytes:
        return self.blob[self.ends[i - 1] if i else 0:self.ends[i]]

    def unpack(self, chap_algorithm: int | None) -> list[Packet]:
        """The packets again, each PPP frame's message decoded from its frame."""
        out = []
        ppp = PacketKind.PPP
        for i in range(len(self.numbers)):
            f = self.flags[i]
            kind = _KINDS[f >> 1]
            data = self.frame(i)
            label = self.labels[i]
            msg = self.messages[i]
            if kind is ppp and not label:
                msg = ppp_of(self.linktypes[i], data, chap_algorithm)
            out.append(Packet(self.numbers[i], self.times[i], self.ifaces[i], self.linktypes[i],
                              Direction(f & 1), kind, label, data, msg))
        return out


@dataclass(slots=True)
class PackedRing:
    """A data ring (``Tunnel.data_ring``: frame number, time, direction, frame) in flat arrays."""

    numbers: array[int]
    times: array[float]
    ends: array[int]
    directions: bytes
    blob: bytes

    @classmethod
    def pack(cls, ring: Iterable[tuple[int, float, int, bytes]]) -> PackedRing:
        entries = list(ring)
        ends = array("L")
        pos = 0
        for e in entries:
            pos += len(e[3])
            ends.append(pos)
        return cls(array("q", [e[0] for e in entries]), array("d", [e[1] for e in entries]), ends,
                   bytes(int(e[2]) for e in entries), b"".join(e[3] for e in entries))

    def unpack(self) -> list[tuple[int, float, int, bytes]]:
        out = []
        start = 0
        for i, end in enumerate(self.ends):
            out.append((self.numbers[i], self.times[i], self.directions[i], self.blob[start:end]))
            start = end
        return out
