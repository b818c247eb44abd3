"""Seeds for the fuzz harness: real frames and the messages inside them, plus a few crafted ones.

Random bytes rarely get past a decoder's first check, so every target is fed
mutations of real inputs: the frames of every capture in tests/data, cut at
each layer with the package's own link/IP/TCP/GRE decoders (a seed that does
not decode is still a seed). Protocols the captures lack (EAP, CBCP, the
MS-CHAP Change-Password packets, rare LCP codes and options, other link
layers) are added as crafted packets built from the RFC layouts.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

from pptptop import sources
from pptptop.decode.errors import DecodeError
from pptptop.decode.gre import decode_gre
from pptptop.decode.ip import decode_ip
from pptptop.decode.link import network_offset
from pptptop.decode.ppp import ppp_header
from pptptop.decode.tcp import decode_tcp
from pptptop.sources.base import Frame
from pptptop.sources.linktypes import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

DATA = Path(__file__).resolve().parent.parent / "data"
CAPTURE_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                  b"\x0a\x0d\x0d\x0a")
PPTP_PORT = 1723
T = TypeVar("T")

LCP, PAP, CHAP, EAP, CBCP = 0xC021, 0xC023, 0xC223, 0xC227, 0xC029
IPCP, IPV6CP, CCP, CCP_LINK, ECP = 0x8021, 0x8057, 0x80FD, 0x80FB, 0x8053
PPP_IPV4, PPP_IPV6, PPP_COMP = 0x0021, 0x0057, 0x00FD


def capture_files() -> list[Path]:
    """Every pcap/pcapng file under tests/data, whatever its name."""
    out = []
    for p in sorted(DATA.rglob("*")):
        if p.is_file():
            with p.open("rb") as f:
                if f.read(4) in CAPTURE_MAGICS:
                    out.append(p)
    return out


@cache
def capture_frames(name: str) -> tuple[Frame, ...]:
    return tuple(sources.open_file(str(DATA / name)))


def _cp(code: int, ident: int, body: bytes) -> bytes:
    """An RFC 1661 §5 packet (also PAP, CHAP, EAP, CBCP): Code, Identifier, Length, body."""
    return bytes([code, ident]) + (4 + len(body)).to_bytes(2, "big") + body


def _opt(otype: int, value: bytes) -> bytes:
    return bytes([otype, 2 + len(value)]) + value


# PPP Information fields (protocol, info) that no test capture holds.
CRAFTED_PPP: tuple[tuple[int, bytes], ...] = (
    (LCP, _cp(1, 1, _opt(1, b"\x05\xdc") + _opt(2, bytes(4)) + _opt(3, b"\xc2\x23\x81") + _opt(5, b"\x12\x34\x56\x78")
              + _opt(7, b"") + _opt(8, b""))),
    (LCP, _cp(1, 2, _opt(3, b"\xc0\x23") + _opt(4, b"\xc0\x25\x00\x00\x01\x00") + _opt(13, b"\x06")
              + _opt(17, b"\x05\xdc") + _opt(18, b"") + _opt(19, b"\x03\x00\x11\x22\x33\x44\x55")
              + _opt(9, b"\x02") + _opt(10, b"\x04") + _opt(23, b"\x00\x01") + _opt(0, b"\x00\x00\x00\x01"))),
    (LCP, _cp(1, 3, _opt(19, b"\x02\x0a\x00\x00\x01") + _opt(19, b"\x04" + bytes(8)) + _opt(19, b"\x00")
              + _opt(3, b"\xc2\x27") + _opt(3, b"\xc2\x23\x05"))),
    (LCP, _cp(3, 4, _opt(1, b"\x05\x78"))),
    (LCP, _cp(7, 5, _cp(1, 9, b"\x99"))),
    (LCP, _cp(8, 6, b"\x80\x57" + _cp(1, 1, b""))),
    (LCP, _cp(11, 7, b"\x01\x02\x03\x04data")),
    (LCP, _cp(12, 8, b"\x01\x02\x03\x04MSRASV5.20")),
    (LCP, _cp(13, 9, b"\x01\x02\x03\x04\x00\x00\x0e\x10bye")),
    (LCP, _cp(5, 10, b"User request")),
    (CCP, _cp(1, 1, _opt(18, b"\x01\x00\x00\x40") + _opt(26, b"\x78\x00") + _opt(21, b"\x2f")
              + _opt(1, b"") + _opt(24, b"\x48\x01"))),
    (CCP, _cp(14, 2, b"")),
    (CCP, _cp(15, 3, b"\x01")),
    (CCP_LINK, _cp(1, 1, _opt(18, b"\x00\x00\x00\xe1"))),
    (IPCP, _cp(1, 1, _opt(1, bytes(8)) + _opt(2, b"\x00\x2d\x0f\x01") + _opt(3, bytes(4))
               + _opt(129, bytes(4)) + _opt(130, bytes(4)) + _opt(131, bytes(4)) + _opt(132, bytes(4))
               + _opt(4, bytes(4)))),
    (IPCP, _cp(2, 2, _opt(2, b"\x00\x61\x00\x0f"))),
    (IPV6CP, _cp(1, 1, _opt(1, b"\x02\x11\x22\xff\xfe\x33\x44\x55") + _opt(2, b"\x00\x4f\x00"))),
    (ECP, _cp(1, 1, _opt(1, b""))),
    (PAP, _cp(1, 1, b"\x05carol\x0cplaintext-pw")),
    (PAP, _cp(2, 1, b"\x0bLogin ok\x1b[2J")),
    (PAP, _cp(3, 1, b"")),
    (CHAP, _cp(1, 1, b"\x10" + bytes(range(16)) + b"server")),
    (CHAP, _cp(2, 1, b"\x31" + bytes(range(1, 17)) + bytes(8) + bytes(range(24)) + b"\x00alice")),
    (CHAP, _cp(2, 2, b"\x31" + bytes(24) + bytes(range(24)) + b"\x01bob")),
    (CHAP, _cp(2, 3, b"\x10" + bytes(16) + b"md5user")),
    (CHAP, _cp(3, 1, b"S=" + b"0123456789ABCDEF0123456789ABCDEF01234567" + b" M=Access granted")),
    (CHAP, _cp(4, 1, b"E=691 R=1 C=00112233445566778899aabbccddeeff V=3 M=Authentication failure")),
    (CHAP, _cp(4, 2, b"E=648 R=0 V=3")),
    (CHAP, _cp(5, 3, bytes(68))),
    (CHAP, _cp(6, 4, bytes(598))),
    (CHAP, _cp(7, 5, bytes(582))),
    (EAP, _cp(1, 1, b"\x01")),
    (EAP, _cp(2, 1, b"\x01alice@example.org")),
    (EAP, _cp(1, 2, b"\x02Notice")),
    (EAP, _cp(1, 3, b"\x04\x02\xab\xcdsrv")),
    (EAP, _cp(2, 3, b"\x04\x10" + bytes(16) + b"alice")),
    (EAP, _cp(2, 3, b"\x03\x1a")),
    (EAP, _cp(1, 4, b"\x0d\x20")),
    (EAP, _cp(2, 4, b"\x0d\x00")),
    (EAP, _cp(1, 4, b"\x0d\xc0" + bytes(9))),
    (EAP, _cp(1, 5, b"\x1a\x01\x05\x00\x15\x02\xab\xcdsrv")),
    (EAP, _cp(2, 5, b"\x1a\x02\x05\x00\x3f\x31" + bytes(49) + b"alice")),
    (EAP, _cp(1, 5, b"\x1a\x03\x05\x00\x2eS=0123 M=ok")),
    (EAP, _cp(2, 5, b"\x1a\x03")),
    (EAP, _cp(1, 6, b"\x13\x01\x02ab\x02\xcc\xdd\x01\x02\x0f\x0f")),
    (EAP, _cp(1, 6, b"\x13\x02" + bytes(8))),
    (EAP, _cp(1, 6, b"\x13\x03\x00\x00\x00\x03" + bytes(24))),
    (EAP, _cp(1, 6, b"\x13\x04" + bytes(20))),
    (EAP, _cp(2, 6, b"\x13\x01" + bytes(8))),
    (EAP, _cp(2, 6, b"\x13\x02\x00\x00\x00\x01" + bytes(20))),
    (EAP, _cp(2, 6, b"\x13\x04" + bytes(20))),
    (EAP, _cp(3, 7, b"")),
    (EAP, _cp(4, 8, b"")),
    (CBCP, _cp(1, 1, _opt(1, b"") + _opt(2, b"\x0c\x01\x00") + _opt(3, b"\x0c") + _opt(4, b"\x0c\x015551234\x00"))),
    (CBCP, _cp(2, 2, _opt(2, b"\x0c\x01555\x00\x01666\x00"))),
    (CBCP, _cp(3, 3, _opt(9, b"\x01"))),
    (PPP_COMP, b"\x90\x0a" + bytes(20)),
    (PPP_IPV4, bytes.fromhex("4500001c000100004001f6d7c0a80001c0a80002") + bytes.fromhex("0800f7ff00000000")),
    (PPP_IPV6, bytes.fromhex("6000000000143a40") + bytes(15) + b"\x01" + bytes(15) + b"\x02" + b"\x80\x00" + bytes(18)),
    (PPP_IPV6, bytes.fromhex("6000000000200040") + bytes(32) + b"\x2c\x00\x00\x01" + bytes(4) + b"\x06\x00"
     + bytes(22)),
)


def ppp_frame(protocol: int, info: bytes, *, acfc: bool = False, pfc: bool = False) -> bytes:
    """A PPP frame as enhanced GRE carries it: FF 03 (unless ACFC), the Protocol (one octet with PFC)."""
    head = b"" if acfc else b"\xff\x03"
    proto = bytes([protocol]) if pfc and protocol < 0x100 and protocol & 1 else protocol.to_bytes(2, "big")
    return head + proto + info


def gre_packet(payload: bytes, *, call_id: int = 0x1234, seq: int | None = 1, ack: int | None = None) -> bytes:
    """An RFC 2637 §4.1 enhanced GRE header and payload."""
    flags = 0x2001 | (0x1000 if seq is not None else 0) | (0x0080 if ack is not None else 0)
    out = struct.pack("!HHHH", flags, 0x880B, len(payload), call_id)
    if seq is not None:
        out += struct.pack("!I", seq)
    if ack is not None:
        out += struct.pack("!I", ack)
    return out + payload


def ipv4_packet(proto: int, payload: bytes) -> bytes:
    head = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0)
    return head + b"\x0a\x00\x00\x01\x0a\x00\x00\x02" + payload


def ipv6_packet(proto: int, payload: bytes) -> bytes:
    head = struct.pack("!IHBB", 0x60000000, len(payload), proto, 64)
    return head + bytes(15) + b"\x01" + bytes(15) + b"\x02" + payload


def ethernet(ip: bytes, ethertype: int = 0x0800) -> bytes:
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb" + ethertype.to_bytes(2, "big") + ip


@dataclass(frozen=True, slots=True)
class Corpus:
    """Every seed, by layer. Frames are ``(linktype, bytes)``; messages are the bytes a decoder takes."""

    frames: tuple[tuple[int, bytes], ...]
    ip: tuple[tuple[int, bytes], ...]  # (ethertype, the IP packet onwards)
    tcp: tuple[bytes, ...]  # TCP header onwards
    gre: tuple[bytes, ...]  # GRE header onwards
    ppp: tuple[bytes, ...]  # PPP frames (GRE payloads)
    info: tuple[tuple[int, bytes], ...]  # (PPP protocol, Information field)
    control: tuple[bytes, ...]  # whole PPTP control messages
    streams: tuple[tuple[tuple[int, int, bytes], ...], ...]  # per TCP direction: (seq, flags, payload)

    def info_of(self, protocols: Iterable[int]) -> tuple[bytes, ...]:
        want = set(protocols)
        return tuple(info for p, info in self.info if p in want)


def _link_variants(eth: bytes) -> list[tuple[int, bytes]]:
    """The IP packet of an Ethernet frame under every other link layer the decoders know."""
    ethertype = eth[12:14]
    ip = eth[14:]
    v6 = ethertype == b"\x86\xdd"
    af = 30 if v6 else 2
    return [
        (LINKTYPE_ETHERNET, eth[:12] + b"\x81\x00\x00\x05" + eth[12:]),  # 802.1Q
        (LINKTYPE_ETHERNET, eth[:12] + b"\x88\xa8\x00\x07\x81\x00\x00\x05" + eth[12:]),  # QinQ
        (LINKTYPE_ETHERNET, eth[:12] + (8 + len(ip)).to_bytes(2, "big") + b"\xaa\xaa\x03\x00\x00\x00" + ethertype + ip),
        (LINKTYPE_LINUX_SLL, b"\x00\x00\x00\x01\x00\x06" + eth[6:12] + b"\x00\x00" + ethertype + ip),
        (LINKTYPE_LINUX_SLL2, ethertype + b"\x00\x00\x00\x00\x00\x02\x00\x01\x00\x06" + eth[6:12] + b"\x00\x00" + ip),
        (LINKTYPE_NULL, af.to_bytes(4, "little") + ip),
        (LINKTYPE_LOOP, af.to_bytes(4, "big") + ip),
        (LINKTYPE_RAW, ip),
        (LINKTYPE_IPV6 if v6 else LINKTYPE_IPV4, ip),
    ]


def _control_messages(stream: bytes) -> list[bytes]:
    out = []
    pos = 0
    while len(stream) - pos >= 12:
        length = int.from_bytes(stream[pos:pos + 2], "big")
        if length < 12 or len(stream) - pos < length:
            break
        out.append(stream[pos:pos + length])
        pos += length
    return out


@cache
def corpus() -> Corpus:
    frames: dict[tuple[int, bytes], None] = {}
    for path in capture_files():
        for f in capture_frames(str(path.relative_to(DATA))):
            frames[(f.linktype, f.data)] = None
    ip: dict[tuple[int, bytes], None] = {}
    tcp: dict[bytes, None] = {}
    gre: dict[bytes, None] = {}
    ppp: dict[bytes, None] = {}
    control: dict[bytes, None] = {}
    streams: dict[tuple[bytes, bytes, int, int], list[tuple[int, int, bytes]]] = {}
    for linktype, data in list(frames):
        ethertype, off = network_offset(linktype, data)
        if off < 0:
            continue
        ip[(ethertype, data[off:])] = None
        try:
            pkt = decode_ip(data, off, ethertype)
        except DecodeError:
            continue
        body = data[pkt.payload_offset:pkt.payload_end]
        if pkt.protocol == 6:
            tcp[body] = None
            try:
                seg = decode_tcp(data, pkt.payload_offset, pkt.payload_end)
            except DecodeError:
                continue
            payload = data[seg.payload_offset:seg.payload_end]
            if PPTP_PORT in (seg.src_port, seg.dst_port):
                key = (pkt.src_raw, pkt.dst_raw, seg.src_port, seg.dst_port)
                streams.setdefault(key, []).append((seg.seq, int(seg.flags), payload))
                for m in _control_messages(payload):
                    control[m] = None
        elif pkt.protocol == 47:
            gre[body] = None
            try:
                g = decode_gre(data, pkt.payload_offset, pkt.payload_end)
            except DecodeError:
                continue
            if g.payload_end > g.payload_offset:
                ppp[data[g.payload_offset:g.payload_end]] = None
    info: dict[tuple[int, bytes], None] = {}
    for raw in ppp:
        protocol, hlen = ppp_header(raw)
        if hlen:
            info[(protocol, raw[hlen:])] = None
    # crafted: every protocol the captures lack, framed at every layer so each target sees it
    for protocol, body in CRAFTED_PPP:
        info[(protocol, body)] = None
        for acfc, pfc in ((False, False), (True, False), (False, True)):
            frame = ppp_frame(protocol, body, acfc=acfc, pfc=pfc)
            ppp[frame] = None
        g = gre_packet(ppp_frame(protocol, body), seq=7, ack=3)
        gre[g] = None
        frames[(LINKTYPE_ETHERNET, ethernet(ipv4_packet(47, g)))] = None
    gre[gre_packet(b"", seq=None, ack=9)] = None
    frames[(LINKTYPE_ETHERNET, ethernet(ipv6_packet(47, gre_packet(ppp_frame(LCP, CRAFTED_PPP[0][1])))))] = None
    ethernet_frames = [d for lt, d in frames if lt == LINKTYPE_ETHERNET and d[12:14] in (b"\x08\x00", b"\x86\xdd")]
    for eth in ethernet_frames[::25]:
        for v in _link_variants(eth):
            frames[v] = None
    return Corpus(
        frames=tuple(frames),
        ip=tuple(ip),
        tcp=tuple(tcp),
        gre=tuple(gre),
        ppp=tuple(ppp),
        info=tuple(info),
        control=tuple(control),
        streams=tuple(tuple(s) for s in streams.values()),
    )


def shapes(items: Iterable[T], key: Callable[[T], object], per_shape: int = 2) -> list[T]:
    """A few seeds of each shape (``key`` says what a shape is: a protocol and code, a message type).

    The every-truncation tests walk every prefix of each of these, so that
    each message kind is cut at every length without walking thousands of
    near-identical data packets.
    """
    seen: dict[object, int] = {}
    out = []
    for item in items:
        k = key(item)
        if seen.get(k, 0) < per_shape:
            seen[k] = seen.get(k, 0) + 1
            out.append(item)
    return out


# -- capture files (draft-ietf-opsawg-pcap §4-§5, draft-ietf-opsawg-pcapng §4) ------------------


def pcap_file(frames: Iterable[bytes], *, endian: str = "<", nano: bool = False, linktype: int = 1) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = bytearray(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
    for i, d in enumerate(frames):
        out += struct.pack(endian + "IIII", 1_700_000_000 + i, i * 1000, len(d), len(d)) + d
    return bytes(out)


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _block(btype: int, body: bytes, e: str) -> bytes:
    body = _pad(body)
    return struct.pack(e + "II", btype, 12 + len(body)) + body + struct.pack(e + "I", 12 + len(body))


def _option(code: int, value: bytes, e: str) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + _pad(value)


def pcapng_file(frames: list[bytes], *, endian: str = "<") -> bytes:
    """Two sections: two named IDBs (one with if_tsresol 10^-9, one with an if_tsoffset), EPBs on both, an
    SPB, an obsolete PB, an ISB and a custom block to skip; then a second section with an unnamed IDB."""
    e = endian
    shb = _block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + _option(4, b"fuzz", e)
                 + struct.pack(e + "HH", 0, 0), e)
    idb0 = _block(1, struct.pack(e + "HHI", 1, 0, 262144) + _option(2, b"lan0", e) + _option(9, b"\x09", e)
                  + struct.pack(e + "HH", 0, 0), e)
    idb1 = _block(1, struct.pack(e + "HHI", 1, 0, 0) + _option(2, b"wan0", e)
                  + _option(14, struct.pack(e + "q", 3), e) + struct.pack(e + "HH", 0, 0), e)
    out = bytearray(shb + idb0 + idb1)
    for i, d in enumerate(frames):
        units = (1_700_000_000 + i) * 10**9 if i % 2 == 0 else (1_700_000_000 + i) * 10**6
        out += _block(6, struct.pack(e + "IIIII", i % 2, units >> 32, units & 0xFFFFFFFF, len(d), len(d))
                      + _pad(d) + _option(1, b"c", e) + struct.pack(e + "HH", 0, 0), e)
        if i == 1 and frames:
            out += _block(3, struct.pack(e + "I", len(d)) + d, e)
            out += _block(2, struct.pack(e + "HHIIII", 0, 0, 0, 5, len(d), len(d)) + _pad(d), e)
            out += _block(5, struct.pack(e + "III", 0, 0, 0), e)
            out += _block(0x00000BAD, struct.pack(e + "I", 32473) + b"custom", e)
    out += _block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)
    out += _block(1, struct.pack(e + "HHI", 1, 0, 96), e)
    if frames:
        out += _block(6, struct.pack(e + "IIIII", 0, 0, 7, len(frames[0]), len(frames[0])) + _pad(frames[0]), e)
    return bytes(out)


@cache
def capture_seeds() -> tuple[bytes, ...]:
    """Small capture files: the tests/data files under 8 KiB, and hand-built pcap/pcapng from real frames
    in every byte order and resolution the readers take."""
    out = [p.read_bytes() for p in capture_files() if p.stat().st_size <= 8192]
    frames = [d for _, d in corpus().frames if len(d) < 400]
    few = frames[:: max(1, len(frames) // 12)][:12]
    out += [pcap_file(few), pcap_file(few, endian=">"), pcap_file(few, nano=True),
            pcap_file(few[:3], linktype=113), pcapng_file(few), pcapng_file(few[:4], endian=">")]
    return tuple(out)


def little_endian(raw: bytes) -> bool:
    """Whether a pcap file's header or a pcapng file's first section is little-endian."""
    return raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") or raw[8:12] == b"\x4d\x3c\x2b\x1a"


def record_fields(raw: bytes) -> list[int]:
    """Offsets of the length fields of a capture file's records (pcap ``incl_len``, pcapng block lengths,
    trailers and captured lengths): where a structure-aware mutation aims."""
    out: list[int] = []
    if raw[:4] == b"\x0a\x0d\x0d\x0a":
        e = "<" if raw[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        pos = 0
        while pos + 12 <= len(raw):
            btype, blen = struct.unpack_from(e + "II", raw, pos)
            if btype == 0x0A0D0D0A and raw[pos + 8:pos + 12] in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                e = "<" if raw[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                blen = struct.unpack_from(e + "I", raw, pos + 4)[0]
            out += [pos + 4, pos + blen - 4] + ([pos + 20, pos + 24] if btype == 6 else [])
            if blen < 12:
                break
            pos += blen
        return [p for p in out if 0 <= p <= len(raw) - 4]
    if len(raw) >= 24:
        e = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        pos = 24
        while pos + 16 <= len(raw):
            out += [pos + 8, pos + 12]
            pos += 16 + struct.unpack_from(e + "I", raw, pos + 8)[0]
    return out
