"""Test helpers: walk the test captures down to TCP/1723 and GRE, and ask tshark.

Frames are read with scapy's raw readers (not the package's own reader) and
cut with ``decode_ip``/``decode_tcp``; the link layer is Ethernet, with
802.1Q/802.1ad tags skipped (ndpi__gre.pcapng is tagged).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scapy.utils import RawPcapNgReader, RawPcapReader

from pptptop.decode.errors import DecodeError
from pptptop.decode.gre import GreHeader, decode_gre
from pptptop.decode.ip import IPPacket, decode_ip
from pptptop.decode.tcp import TcpSegment, decode_tcp
from pptptop.decode.tcpstream import StreamReassembler

DATA = Path(__file__).resolve().parent.parent / "data"
TSHARK = shutil.which("tshark")

_VLAN_TYPES = (0x8100, 0x88A8, 0x9100)
PPTP_PORT = 1723
IPPROTO_TCP = 6
IPPROTO_GRE = 47
_IP_IN_IP = {4: 0x0800, 41: 0x86DD}  # IPv4 / IPv6 encapsulated in IP: followed once


def captures() -> list[Path]:
    """Every capture file in tests/data (nft/ included)."""
    return sorted(
        p for p in DATA.rglob("*") if p.is_file() and p.suffix in {".pcap", ".pcapng", ".cap", ".dump"}
    )


@dataclass(frozen=True, slots=True)
class RawFrame:
    number: int  # 1-based, as tshark counts
    iface: str
    data: bytes


def read_frames(path: Path) -> Iterator[RawFrame]:
    with path.open("rb") as fh:
        magic = fh.read(4)
    reader: RawPcapNgReader | RawPcapReader
    reader = RawPcapNgReader(str(path)) if magic == b"\x0a\x0d\x0d\x0a" else RawPcapReader(str(path))
    try:
        for number, (data, meta) in enumerate(reader, start=1):
            ifname = getattr(meta, "ifname", None)
            iface = ifname.decode("latin-1") if isinstance(ifname, bytes) else ""
            yield RawFrame(number, iface, bytes(data))
    finally:
        reader.close()


def ethernet_network(data: bytes) -> tuple[int, int]:
    """(ethertype, offset of the network header) of an Ethernet frame, skipping VLAN tags."""
    off = 12
    (ethertype,) = struct.unpack_from("!H", data, off)
    off += 2
    while ethertype in _VLAN_TYPES:
        (ethertype,) = struct.unpack_from("!H", data, off + 2)
        off += 4
    return ethertype, off


def ip_of(frame: RawFrame) -> IPPacket | None:
    if len(frame.data) < 14:
        return None
    ethertype, off = ethernet_network(frame.data)
    if ethertype not in (0x0800, 0x86DD):
        return None
    return decode_ip(frame.data, off, ethertype)


@dataclass(frozen=True, slots=True)
class TcpFrame:
    frame: RawFrame
    ip: IPPacket
    tcp: TcpSegment

    @property
    def key(self) -> tuple[str, str, int, str, int]:
        return (self.frame.iface, self.ip.src, self.tcp.src_port, self.ip.dst, self.tcp.dst_port)

    @property
    def payload(self) -> bytes:
        return self.frame.data[self.tcp.payload_offset : self.tcp.payload_end]


def pptp_tcp_frames(path: Path) -> list[TcpFrame]:
    """Every TCP segment to or from port 1723, in capture order."""
    out: list[TcpFrame] = []
    for frame in read_frames(path):
        ip = ip_of(frame)
        if ip is None or ip.protocol != IPPROTO_TCP or ip.fragment:
            continue
        tcp = decode_tcp(frame.data, ip.payload_offset, ip.payload_end)
        if PPTP_PORT in (tcp.src_port, tcp.dst_port):
            out.append(TcpFrame(frame, ip, tcp))
    return out


@dataclass(frozen=True, slots=True)
class StreamItem:
    frame: int  # frame that completed it
    direction: tuple[str, str, int, str, int]
    item: bytes | DecodeError


def control_messages(
    path: Path,
) -> tuple[list[StreamItem], dict[tuple[str, str, int, str, int], StreamReassembler]]:
    """Run a StreamReassembler over each direction of each PPTP connection in the file."""
    streams: dict[tuple[str, str, int, str, int], StreamReassembler] = {}
    items: list[StreamItem] = []
    for tf in pptp_tcp_frames(path):
        r = streams.setdefault(tf.key, StreamReassembler())
        for item in r.feed(tf.tcp.seq, int(tf.tcp.flags), tf.payload):
            items.append(StreamItem(tf.frame.number, tf.key, item))
    return items, streams


def segments_by_direction(path: Path) -> dict[tuple[str, str, int, str, int], list[tuple[int, int, bytes]]]:
    """Per TCP direction on port 1723: every segment as (seq, flags, payload), in capture order."""
    out: dict[tuple[str, str, int, str, int], list[tuple[int, int, bytes]]] = {}
    for tf in pptp_tcp_frames(path):
        out.setdefault(tf.key, []).append((tf.tcp.seq, int(tf.tcp.flags), tf.payload))
    return out


def ordered_stream(segments: list[tuple[int, int, bytes]]) -> bytes:
    """The direction's byte stream, rebuilt by writing every payload at its offset from the ISN.

    Independent of StreamReassembler: the base is the SYN's seq + 1, or the first segment's seq;
    the result stops at the first octet no segment covered.
    """
    syn = [seq for seq, flags, _ in segments if flags & 0x02]
    base = (syn[0] + 1) % 2**32 if syn else segments[0][0]
    octets: dict[int, int] = {}
    for seq, flags, payload in segments:
        start = (seq + (1 if flags & 0x02 else 0) - base) % 2**32
        for i, b in enumerate(payload):
            octets.setdefault(start + i, b)
    out = bytearray()
    while len(out) in octets:
        out.append(octets[len(out)])
    return bytes(out)


def frame_by_length(stream: bytes) -> list[bytes]:
    """Cut a clean control stream into messages by the Length field alone."""
    out = []
    pos = 0
    while len(stream) - pos >= 2:
        length = int.from_bytes(stream[pos : pos + 2], "big")
        if length < 12 or len(stream) - pos < length:
            break
        out.append(stream[pos : pos + length])
        pos += length
    return out


def gre_headers(path: Path) -> list[tuple[int, GreHeader | DecodeError]]:
    """Every GRE packet (outermost IP, or the IP inside one IP-in-IP layer) with its header or error."""
    out: list[tuple[int, GreHeader | DecodeError]] = []
    for frame in read_frames(path):
        ip = ip_of(frame)
        if ip is not None and ip.protocol in _IP_IN_IP and not ip.fragment:
            ip = decode_ip(frame.data, ip.payload_offset, _IP_IN_IP[ip.protocol])
        if ip is None or ip.protocol != IPPROTO_GRE or ip.fragment:
            continue
        try:
            out.append((frame.number, decode_gre(frame.data, ip.payload_offset, ip.payload_end)))
        except DecodeError as exc:
            out.append((frame.number, exc))
    return out


def write_pcap(path: Path, frames: list[bytes]) -> Path:
    """A little-endian libpcap file of Ethernet frames, one second apart."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i, frame in enumerate(frames):
        out += struct.pack("<IIII", i, 0, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path


def tshark_rows(path: Path, display_filter: str, fields: list[str], *extra: str) -> list[list[str]]:
    """``tshark -T fields`` with frame.number first; one list of strings per frame."""
    assert TSHARK is not None
    cmd = [TSHARK, "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "separator=/t"]
    cmd += ["-E", "occurrence=a", "-E", "aggregator=|", *extra, "-e", "frame.number"]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    return [line.split("\t") for line in res.stdout.splitlines() if line]
