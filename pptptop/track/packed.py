"""A settled tunnel's stored packets, packed into a few flat arrays (issue 23: memory per closed tunnel).

While a tunnel is up, each stored packet is a :class:`~pptptop.track.model.Packet` holding its frame and
its decoded message. Once the tunnel has ended and gone quiet (``Tracker.settle``), its packets and its
data ring are packed here: records, labels and frames in one zlib-compressed ``bytes``. A PPP frame's
message and a PPTP control message are decoded again from the frame when the packets are unpacked for the
UI or an export; only a control message that TCP split over several segments is kept decoded.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pptptop.decode.errors import DecodeError
from pptptop.decode.gre import decode_gre
from pptptop.decode.ip import decode_ip
from pptptop.decode.link import network_offset
from pptptop.decode.ppp import PppFrame, decode_ppp
from pptptop.decode.pptp import MAGIC_COOKIE, decode_control, peek_header
from pptptop.track.model import HISTORY_SECONDS, Bucket, Direction, Packet, PacketKind

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


#: per packet in a packed tunnel: frame number, time, frame length, label length (UTF-8), link type, kind and
#: direction (``kind index << 1 | direction``), interface index, and where its control message starts in its
#: frame (``_DECODED``: none, or kept decoded)
_RECORD = struct.Struct("<qdIIHBBi")
_DECODED = -1
_COOKIE = struct.pack("!I", MAGIC_COOKIE)
#: zlib's level for a settled tunnel: one tunnel's frames share their addresses, ports and much of their
#: negotiation, and pack to about a third at level 6 (docs/benchmark.md); packing happens once a tunnel
_LEVEL = 6


def control_at(frame: bytes, msg: Any) -> int:
    """Where in ``frame`` the control message ``msg`` starts, decoded as it was (its magic cookie found and
    the message there decoded equal to it); ``_DECODED`` if it is not whole in the frame (it was reassembled
    from several segments)."""
    i = frame.find(_COOKIE, 4)
    while i >= 0:
        off = i - 4
        head = peek_header(frame, off)
        if head is not None and off + head[0] <= len(frame):
            try:
                if decode_control(frame[off:off + head[0]]) == msg:
                    return off
            except DecodeError:
                pass
        i = frame.find(_COOKIE, i + 1)
    return _DECODED


def _control_from(frame: bytes, off: int) -> Any:
    head = peek_header(frame, off)
    assert head is not None
    return decode_control(frame[off:off + head[0]])


@dataclass(slots=True)
class PackedPackets:
    """A settled tunnel's packets in one compressed string (issue 23: memory per closed tunnel).

    ``blob`` is zlib of, per packet, a ``_RECORD``; then every label (UTF-8); then every frame. A PPP frame's
    message is decoded again from its frame, and a PPTP control message from where it starts in its frame;
    the few control messages that are not whole in one frame stay decoded in ``kept`` (by packet index)."""

    count: int
    ifaces: tuple[str, ...]
    kept: dict[int, Any] | None
    blob: bytes

    @classmethod
    def pack(cls, packets: Iterable[Packet]) -> PackedPackets:
        ps = list(packets)
        ifaces: dict[str, int] = {}
        kept: dict[int, Any] = {}
        records = []
        labels = []
        ppp = PacketKind.PPP
        control = PacketKind.CONTROL
        for i, p in enumerate(ps):
            at = _DECODED
            if p.kind is control and p.message is not None:
                at = control_at(p.data, p.message)
                if at == _DECODED:
                    kept[i] = p.message
            elif p.kind is not ppp and p.message is not None:
                kept[i] = p.message  # another kind with a message (none today) keeps it as it is
            label = (p.label if p.kind is not ppp or p.message is None else "").encode("utf-8", "surrogatepass")
            labels.append(label)
            records.append(_RECORD.pack(p.number, p.ts, len(p.data), len(label), p.linktype,
                                        _KIND_INDEX[p.kind] << 1 | int(p.direction),
                                        ifaces.setdefault(p.iface, len(ifaces)), at))
        raw = b"".join([*records, *labels, *(p.data for p in ps)])
        return cls(len(ps), tuple(ifaces), kept or None, zlib.compress(raw, _LEVEL))

    def __len__(self) -> int:
        return self.count

    def unpack(self, chap_algorithm: int | None) -> list[Packet]:
        """The packets again, each PPP frame's and control message decoded from its frame."""
        raw = zlib.decompress(self.blob)
        records = list(_RECORD.iter_unpack(raw[:_RECORD.size * self.count]))
        pos = _RECORD.size * self.count
        labels = []
        for r in records:
            labels.append(raw[pos:pos + r[3]].decode("utf-8", "surrogatepass"))
            pos += r[3]
        out = []
        ppp = PacketKind.PPP
        kept = self.kept or {}
        for i, (number, ts, size, _n, linktype, flags, iface, at) in enumerate(records):
            data = raw[pos:pos + size]
            pos += size
            kind = _KINDS[flags >> 1]
            label = labels[i]
            if at != _DECODED:
                msg = _control_from(data, at)
            elif kind is ppp and not label:
                msg = ppp_of(linktype, data, chap_algorithm)
            else:
                msg = kept.get(i)
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


class PackedHistory:
    """A settled direction's one-second buckets (``DirectionStats.history``) in one array: three numbers a
    second instead of a tuple each in a deque; a late packet's bucket is still appended."""

    __slots__ = ("flat",)

    def __init__(self, buckets: Iterable[Bucket]) -> None:
        self.flat = array("q", [v for b in buckets for v in b])

    def append(self, bucket: Bucket, /) -> None:
        self.flat.extend(bucket)
        if len(self.flat) > 3 * HISTORY_SECONDS:
            del self.flat[:3]

    def __len__(self) -> int:
        return len(self.flat) // 3

    def __getitem__(self, i: int, /) -> Bucket:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("history index out of range")
        f = self.flat
        return f[3 * i], f[3 * i + 1], f[3 * i + 2]

    def __iter__(self) -> Iterator[Bucket]:
        f = self.flat
        for i in range(0, len(f), 3):
            yield f[i], f[i + 1], f[i + 2]

    def __reversed__(self) -> Iterator[Bucket]:
        f = self.flat
        for i in range(len(f) - 3, -1, -3):
            yield f[i], f[i + 1], f[i + 2]
