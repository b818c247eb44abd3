"""A tunnel's stored packets, packed into one string (issue 23: memory per tunnel).

Each stored packet is first a :class:`~pptptop.track.model.Packet` holding its frame and, but for a PPP
frame, its decoded message. When the tunnel reaches the data phase, the packets of its negotiation are
packed here (``Tunnel.folded``); once it has ended and gone quiet (``Tracker.settle``), the rest of its
packets go behind them (``Tunnel.packed``, ``folded`` then empty) and its data ring is packed too: records,
labels and frames in one zlib-compressed ``bytes``. A PPTP control message is decoded again from its
frame when the packets are unpacked, and a PPP frame when they are shown (``Tunnel.all_packets``); only a
control message that TCP split over several segments is kept decoded.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pptptop.decode.stored import NOT_IN_FRAME, control_at, control_from
from pptptop.track.model import Direction, Packet, PacketKind

_KINDS = tuple(PacketKind)
_KIND_INDEX = {k: i for i, k in enumerate(_KINDS)}


#: per packet in a packed tunnel: frame number, time, frame length, label length (UTF-8), link type, kind and
#: direction (``kind index << 1 | direction``), interface index, and where its control message starts in its
#: frame (``NOT_IN_FRAME``: it has none, or it is kept decoded)
_RECORD = struct.Struct("<qdIIHBHi")
#: zlib's level for a settled tunnel: one tunnel's frames share their addresses, ports and much of their
#: negotiation, and pack to 40 % at level 1 (36 % at level 6, which takes 1.7 times as long: 126 µs a storm
#: tunnel here against 72, paid by the capture thread once per tunnel)
_LEVEL = 1


@dataclass(slots=True)
class PackedPackets:
    """A tunnel's packets in one compressed string (issue 23: memory per tunnel).

    ``blob`` is zlib of, per packet, a ``_RECORD``; then every label (UTF-8); then every frame. A PPP frame's
    message is decoded again from its frame, and a PPTP control message from where it starts in its frame;
    the few control messages that are not whole in one frame stay decoded in ``kept`` (by packet index).
    ``kinds``: bit ``i`` set when a packet of the ``i``-th :class:`PacketKind` is among them."""

    count: int
    ifaces: tuple[str, ...]
    kept: dict[int, Any] | None
    blob: bytes
    kinds: int = 0

    @classmethod
    def pack(cls, packets: Iterable[Packet], after: PackedPackets | None = None) -> PackedPackets:
        """``packets`` packed; with ``after``, in one string behind its packets (a settled tunnel's folded
        negotiation and the rest: one zlib stream compresses them together, and only ``after`` is unpacked
        again, not decoded)."""
        ps = list(packets)
        ifaces: dict[str, int] = {iface: i for i, iface in enumerate(after.ifaces)} if after is not None else {}
        first = after.count if after is not None else 0
        kept: dict[int, Any] = {}
        records = []
        labels = []
        kinds = 0
        ppp = PacketKind.PPP
        control = PacketKind.CONTROL
        for i, p in enumerate(ps):
            at = NOT_IN_FRAME
            if p.kind is control and p.message is not None:
                at = control_at(p.data, p.message)
                if at == NOT_IN_FRAME:
                    kept[first + i] = p.message
            elif p.kind is not ppp and p.message is not None:
                kept[first + i] = p.message  # a malformed PPP frame's partial decode, kept as it is
            label = (p.label if p.kind is not ppp or p.message is None else "").encode("utf-8", "surrogatepass")
            labels.append(label)
            kind = _KIND_INDEX[p.kind]
            kinds |= 1 << kind
            records.append(_RECORD.pack(p.number, p.ts, len(p.data), len(label), p.linktype,
                                        kind << 1 | int(p.direction), ifaces.setdefault(p.iface, len(ifaces)), at))
        if after is None:
            raw = b"".join([*records, *labels, *(p.data for p in ps)])
            return cls(len(ps), tuple(ifaces), kept or None, zlib.compress(raw, _LEVEL), kinds)
        # ``after``'s records, labels and frames, each followed by ours
        old = zlib.decompress(after.blob)
        at_labels = _RECORD.size * first
        at_frames = at_labels + sum(r[3] for r in _RECORD.iter_unpack(old[:at_labels]))
        raw = b"".join([old[:at_labels], *records, old[at_labels:at_frames], *labels, old[at_frames:],
                        *(p.data for p in ps)])
        return cls(first + len(ps), tuple(ifaces), {**(after.kept or {}), **kept} or None,
                   zlib.compress(raw, _LEVEL), after.kinds | kinds)

    def __len__(self) -> int:
        return self.count

    def holds(self, kind: PacketKind) -> bool:
        """Whether a packet of ``kind`` is among them (without unpacking them)."""
        return bool(self.kinds >> _KIND_INDEX[kind] & 1)

    def unpack(self) -> list[Packet]:
        """The packets again, as a live tunnel stores them: each control message decoded from its frame, a
        PPP frame not decoded (``Tunnel.all_packets`` decodes it)."""
        raw = zlib.decompress(self.blob)
        records = list(_RECORD.iter_unpack(raw[:_RECORD.size * self.count]))
        pos = _RECORD.size * self.count
        labels = []
        for r in records:
            labels.append(raw[pos:pos + r[3]].decode("utf-8", "surrogatepass"))
            pos += r[3]
        out = []
        kept = self.kept or {}
        for i, (number, ts, size, _n, linktype, flags, iface, at) in enumerate(records):
            data = raw[pos:pos + size]
            pos += size
            kind = _KINDS[flags >> 1]
            label = labels[i]
            msg = control_from(data, at) if at != NOT_IN_FRAME else kept.get(i)
            out.append(Packet(number, ts, self.ifaces[iface], linktype, Direction(flags & 1), kind, label, data, msg))
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

