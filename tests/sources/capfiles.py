"""Test helpers for the capture sources: hand-built pcap/pcapng files and tshark's view of a file.

The builders write exactly the bytes the format drafts describe
(draft-ietf-opsawg-pcap §4-§5, draft-ietf-opsawg-pcapng §4), so a test can
make any byte order, resolution, section layout or corruption it needs.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, GRE, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

DATA = Path(__file__).resolve().parent.parent / "data"

requires_tshark = pytest.mark.skipif(shutil.which("tshark") is None,
                                     reason="tshark is not installed (apt-get install tshark)")


CAPTURE_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                  b"\x0a\x0d\x0d\x0a")


def data_captures() -> list[Path]:
    """Every capture file under tests/data (pcap or pcapng magic, whatever the name), nft/ included."""
    out = []
    for p in sorted(DATA.rglob("*")):
        if p.is_file():
            with p.open("rb") as f:
                if f.read(4) in CAPTURE_MAGICS:
                    out.append(p)
    return out


@dataclass(frozen=True, slots=True)
class TsharkFrame:
    epoch: Decimal | None  # None for records without a time (SPB, custom blocks)
    cap_len: int
    iface: str  # "" when tshark knows no name


def tshark_frames(path: Path | str) -> list[TsharkFrame]:
    """``tshark -r F -T fields -e frame.time_epoch -e frame.cap_len -e frame.interface_name``."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t",
         "-e", "frame.time_epoch", "-e", "frame.cap_len", "-e", "frame.interface_name"],
        capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        epoch, cap_len, iface = [*line.split("\t"), "", ""][:3]
        rows.append(TsharkFrame(Decimal(epoch) if epoch else None, int(cap_len),
                                "" if iface == "unknown" else iface))
    return rows


# -- classic pcap ----------------------------------------------------------------------------


def pcap_header(linktype: int = 1, *, endian: str = "<", nano: bool = False, snaplen: int = 262144) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    return struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(sec: int, frac: int, data: bytes, *, endian: str = "<", orig: int | None = None) -> bytes:
    return struct.pack(endian + "IIII", sec, frac, len(data), len(data) if orig is None else orig) + data


def pcap_file(frames: list[tuple[int, int, bytes]], linktype: int = 1, *, endian: str = "<",
              nano: bool = False) -> bytes:
    return pcap_header(linktype, endian=endian, nano=nano) + b"".join(
        pcap_record(s, f, d, endian=endian) for s, f, d in frames)


# -- pcapng ----------------------------------------------------------------------------------


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def option(code: int, value: bytes, endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + _pad(value)


def end_of_options(endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", 0, 0)


def block(btype: int, body: bytes, endian: str = "<", *, trailer: int | None = None) -> bytes:
    body = _pad(body)
    n = 12 + len(body)
    tail = struct.pack(endian + "I", n if trailer is None else trailer)
    return struct.pack(endian + "II", btype, n) + body + tail


def shb(endian: str = "<", *, options: bytes = b"") -> bytes:
    body = struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options
    return block(0x0A0D0D0A, body, endian)


def idb(linktype: int = 1, *, name: str | None = None, tsresol: int | None = None,
        tsoffset: int | None = None, snaplen: int = 262144, endian: str = "<") -> bytes:
    opts = b""
    if name is not None:
        opts += option(2, name.encode(), endian)
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), endian)
    if tsoffset is not None:
        opts += option(14, struct.pack(endian + "q", tsoffset), endian)
    if opts:
        opts += end_of_options(endian)
    return block(1, struct.pack(endian + "HHI", linktype, 0, snaplen) + opts, endian)


def epb(iface: int, ts_units: int, data: bytes, *, endian: str = "<", orig: int | None = None,
        options: bytes = b"") -> bytes:
    body = struct.pack(endian + "IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data),
                       len(data) if orig is None else orig) + _pad(data) + options
    return block(6, body, endian)


def spb(data: bytes, *, endian: str = "<", orig: int | None = None) -> bytes:
    return block(3, struct.pack(endian + "I", len(data) if orig is None else orig) + data, endian)


def pb(iface: int, ts_units: int, data: bytes, *, endian: str = "<") -> bytes:
    body = struct.pack(endian + "HHIIII", iface, 0, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data),
                       len(data)) + _pad(data)
    return block(2, body, endian)


def custom_block(payload: bytes, endian: str = "<") -> bytes:
    """A Custom Block (type 0x00000BAD, §4.8) with a made-up PEN: readers must skip it."""
    return block(0x00000BAD, struct.pack(endian + "I", 32473) + payload, endian)


def isb(iface: int, endian: str = "<") -> bytes:
    """An Interface Statistics Block (§4.6) with no options: skipped by the reader."""
    return block(5, struct.pack(endian + "III", iface, 0, 0), endian)


def pcap_offsets(raw: bytes) -> list[int]:
    """Byte offsets of the records of a little/big-endian classic pcap file."""
    endian = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out = []
    pos = 24
    while pos + 16 <= len(raw):
        out.append(pos)
        pos += 16 + struct.unpack_from(endian + "I", raw, pos + 8)[0]
    return out


def pcapng_blocks(raw: bytes) -> list[tuple[int, int, int]]:
    """``(offset, type, length)`` of every block of a little-endian pcapng file."""
    out = []
    pos = 0
    while pos + 8 <= len(raw):
        btype, blen = struct.unpack_from("<II", raw, pos)
        out.append((pos, btype, blen))
        pos += blen
    return out


def head_and_frames(raw: bytes) -> tuple[bytes, list[bytes]]:
    """A capture file's head (pcap: its file header; pcapng: its section and interface blocks) and its frame
    records: ``head + b"".join(frames[n:])`` is the capture as seen from frame n + 1 on (``editcap -r F O N-``)."""
    if raw[:4] == b"\x0a\x0d\x0d\x0a":
        blocks = pcapng_blocks(raw)
        head = b"".join(raw[o:o + n] for o, t, n in blocks if t in (0x0A0D0D0A, 1))
        return head, [raw[o:o + n] for o, t, n in blocks if t in (2, 3, 6)]
    offs = pcap_offsets(raw)
    return raw[:24], [raw[a:b] for a, b in zip(offs, [*offs[1:], len(raw)], strict=True)]


# -- crafted frames for the PPTP filter ----------------------------------------------------------

def _eth(payload: Packet, *tags: Packet) -> bytes:
    pkt: Packet = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    for t in tags:
        pkt = pkt / t
    return bytes(pkt / payload)


GRE_PPTP = GRE(flags=0x2001, proto=0x880B, version=1) / Raw(bytes(8))
IP_PACKETS: dict[str, tuple[Packet, bool]] = {
    "tcp-dport-1723": (IP(src="10.0.0.2", dst="198.51.100.2") / TCP(sport=40000, dport=1723), True),
    "tcp-sport-1723": (IP() / TCP(sport=1723, dport=40000) / Raw(b"x" * 20), True),
    "tcp-ip-options": (IP(options=b"\x01\x01\x01\x00") / TCP(sport=5, dport=1723), True),
    "tcp-other-port": (IP() / TCP(sport=1722, dport=1724), False),
    "udp-1723": (IP() / UDP(sport=1723, dport=1723), False),
    "gre-v1": (IP(proto=47) / GRE_PPTP, True),
    "gre-fragment": (IP(proto=47, frag=100) / Raw(bytes(30)), True),
    "tcp-later-fragment": (IP(proto=6, frag=10) / Raw(b"\x06\xbb\x06\xbb" + bytes(20)), False),
    "icmp-quoting-gre": (IP() / ICMP(type=3, code=2) / IP(proto=47) / GRE_PPTP, False),
    "ipv6-tcp-1723": (IPv6() / TCP(sport=50000, dport=1723), True),
    "ipv6-gre": (IPv6(nh=47) / GRE_PPTP, True),
    "ipv6-fragment-gre": (IPv6() / IPv6ExtHdrFragment(nh=47) / GRE_PPTP, True),
    "ipv6-hop-by-hop-tcp": (IPv6() / IPv6ExtHdrHopByHop() / TCP(dport=1723), False),
    "ipv6-udp": (IPv6() / UDP(dport=1723), False),
    "truncated-ipv4-tcp": (Raw(bytes(IP() / TCP(dport=1723))[:22]), False),
}


def ethernet_cases() -> list[tuple[str, bytes, bool]]:
    cases = []
    for name, (pkt, match) in IP_PACKETS.items():
        cases.append((name, _eth(pkt), match))
        cases.append((f"8021q-{name}", _eth(pkt, Dot1Q(vlan=10)), match))
        cases.append((f"qinq-{name}", _eth(pkt, Dot1AD(vlan=10), Dot1Q(vlan=20)), match))
    cases.append(("arp", _eth(ARP()), False))
    cases.append(("three-tags-gre", _eth(IP(proto=47) / GRE_PPTP, Dot1Q(), Dot1Q(), Dot1Q()), False))
    cases.append(("runt", b"\x02" * 13, False))
    return cases
