"""Test helpers for the PPP decoders: the PPP frames inside GRE in the test captures, and tshark.

Frames are read with scapy's raw readers and cut by a small local
Ethernet/802.1Q/IPv4/GRE skip, so these tests do not depend on the package's
own link/IP/GRE decoders. tshark answers in ``-T json -e`` form: for every
frame number, each requested field maps to the list of its occurrences.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from scapy.utils import RawPcapNgReader, RawPcapReader

from pptptop.decode.auth import ChapPacket, PapPacket
from pptptop.decode.ccp import MppeBits
from pptptop.decode.lcp import (
    AuthProtocol,
    Callback,
    ControlPacket,
    EndpointDiscriminator,
    LcpOption,
    QualityProtocol,
    decode_control_packet,
)
from pptptop.decode.ncp import IpCompression, IpcpOption, Ipv6cpOption
from pptptop.decode.ppp import PppFrame, PppProtocol

DATA = Path(__file__).resolve().parent.parent / "data"
LOGS = DATA / "logs"
TSHARK = shutil.which("tshark")

_VLAN = (0x8100, 0x88A8, 0x9100)
_GRE_PPP = 0x880B

#: Every field the PPP tests compare, asked of tshark in one run per capture.
FIELDS = (
    "frame.number", "frame.protocols", "_ws.col.Info", "ppp.address", "ppp.control", "ppp.protocol", "ppp.code",
    "ppp.identifier", "ppp.length", "ppp.data",
    "lcp.opt.type", "lcp.opt.length", "lcp.opt.mru", "lcp.opt.asyncmap", "lcp.opt.auth_protocol",
    "lcp.opt.algorithm", "lcp.opt.quality_protocol", "lcp.opt.magic_number", "lcp.opt.mrru",
    "lcp.opt.ep_disc_class", "lcp.opt.operation", "lcp.opt.fcs_alternatives", "lcp.opt.link_discrim",
    "lcp.opt.data", "lcp.magic_number", "lcp.message", "lcp.rej_proto", "lcp.secs_remaining", "lcp.data",
    "pap.code", "pap.identifier", "pap.length", "pap.peer_id.length", "pap.peer_id",
    "pap.password.length", "pap.password", "pap.message.length", "pap.message",
    "chap.code", "chap.identifier", "chap.length", "chap.value_size", "chap.value", "chap.name",
    "chap.message",
    "ipcp.opt.type", "ipcp.opt.length", "ipcp.opt.ip_address", "ipcp.opt.pri_dns_address",
    "ipcp.opt.sec_dns_address", "ipcp.opt.pri_nbns_address", "ipcp.opt.sec_nbns_address",
    "ipcp.opt.compress_proto", "ipcp.opt.max_slot_id", "ipcp.opt.comp_slot_id", "ipcp.opt.src_address",
    "ipcp.opt.dst_address", "ipcp.opt.mobilenodehomeaddress",
    "ipv6cp.opt.type", "ipv6cp.opt.length", "ipv6cp.interface_identifier",
    "ccp.opt.type", "ccp.opt.length", "ccp.opt.supported_bits", "ccp.opt.supported_bits.h",
    "ccp.opt.supported_bits.m", "ccp.opt.supported_bits.s", "ccp.opt.supported_bits.l",
    "ccp.opt.supported_bits.d", "ccp.opt.supported_bits.c",
    "ip.src", "ip.dst", "ip.proto", "ip.len", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport",
    "udp.srcport", "udp.dstport", "icmp.type", "icmp.code", "icmpv6.type",
)


@dataclass(frozen=True, slots=True)
class CapturedPpp:
    """One PPP frame carried in GRE protocol 0x880B."""

    number: int  # 1-based frame number, as tshark counts
    iface: str
    src: str
    dst: str
    call_id: int | None  # GRE v1 key low 16 bits
    payload: bytes  # the PPP frame (GRE payload)


def captures() -> list[Path]:
    """Every capture file under tests/data."""
    return sorted(p for p in DATA.rglob("*")
                  if p.is_file() and p.suffix in {".pcap", ".pcapng", ".cap", ".dump"})


def _ip4(b: bytes) -> str:
    return ".".join(str(x) for x in b)


def _ip6(b: bytes) -> str:
    return str(ipaddress.IPv6Address(b))


def _gre_ppp(data: bytes) -> tuple[str, str, int | None, bytes] | None:
    """Ethernet (+ VLAN) / IPv4 or IPv6 (also IPv4-in-IPv6) / GRE 0x880B → (src, dst, call id, payload)."""
    if len(data) < 14:
        return None
    off = 12
    etype = int.from_bytes(data[off:off + 2], "big")
    while etype in _VLAN and off + 6 <= len(data):
        off += 4
        etype = int.from_bytes(data[off:off + 2], "big")
    off += 2
    end = len(data)
    proto = {0x0800: 4, 0x86DD: 41}.get(etype)
    src = dst = ""
    while proto in (4, 41):
        if proto == 41:
            if end < off + 40 or data[off] >> 4 != 6:
                return None
            src, dst = _ip6(data[off + 8:off + 24]), _ip6(data[off + 24:off + 40])
            end = min(off + 40 + int.from_bytes(data[off + 4:off + 6], "big"), end)
            proto = data[off + 6]
            off += 40
        else:
            if end < off + 20 or data[off] >> 4 != 4:
                return None
            if int.from_bytes(data[off + 6:off + 8], "big") & 0x3FFF:
                return None
            src, dst = _ip4(data[off + 12:off + 16]), _ip4(data[off + 16:off + 20])
            end = min(off + int.from_bytes(data[off + 2:off + 4], "big"), end)
            proto = data[off + 9]
            off += (data[off] & 0x0F) * 4
    if proto != 47:
        return None
    g = off
    if g + 4 > end:
        return None
    flags, ver = data[g], data[g + 1]
    if int.from_bytes(data[g + 2:g + 4], "big") != _GRE_PPP:
        return None
    hlen = 4
    call_id = None
    if flags & 0xC0:
        hlen += 4
    if flags & 0x20:
        call_id = int.from_bytes(data[g + hlen + 2:g + hlen + 4], "big")
        hlen += 4
    if flags & 0x10:
        hlen += 4
    if ver & 0x80 and ver & 0x07 == 1:
        hlen += 4
    payload = data[g + hlen:end]
    if not payload:
        return None
    return src, dst, call_id, payload


@cache
def ppp_frames(path: Path) -> tuple[CapturedPpp, ...]:
    """The PPP frames in GRE of a capture, in file order."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    reader = RawPcapNgReader(str(path)) if magic == b"\x0a\x0d\x0d\x0a" else RawPcapReader(str(path))
    out: list[CapturedPpp] = []
    try:
        for number, (data, meta) in enumerate(reader, start=1):
            found = _gre_ppp(bytes(data))
            if found is None:
                continue
            ifname = getattr(meta, "ifname", None)
            iface = ifname.decode("latin-1") if isinstance(ifname, bytes) else ""
            out.append(CapturedPpp(number, iface, found[0], found[1], found[2], found[3]))
    finally:
        reader.close()
    return tuple(out)


@cache
def tshark_ppp(path: Path) -> dict[int, dict[str, list[str]]]:
    """tshark's :data:`FIELDS` of every frame with PPP in GRE (not quoted in ICMP), by frame number."""
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "ppp", "-T", "json"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows: dict[int, dict[str, list[str]]] = {}
    for pkt in json.loads(out or "[]"):
        layers: dict[str, list[str]] = pkt["_source"]["layers"]
        stack = layers.get("frame.protocols", [""])[0].split(":")
        if "gre" in stack and any(p.startswith("icmp") for p in stack[:stack.index("gre")]):
            continue  # a GRE packet quoted by an ICMP error, not one on the wire
        rows[int(layers["frame.number"][0])] = layers
    return rows


def pick(layers: dict[str, list[str]], names: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """The given fields of a tshark row, missing ones as empty lists."""
    return {n: list(layers.get(n, [])) for n in names}


# --- our decode, spelled in tshark's field vocabulary ----------------------------------------

def _h(v: int, width: int) -> str:
    return f"0x{v:0{width}x}"


def _control_fields(pkt: ControlPacket, out: dict[str, list[str]]) -> None:
    """RFC 1661 §5 packets as tshark shows them (ppp.code …, lcp/ipcp/ipv6cp/ccp option fields)."""
    add = out.setdefault
    add("ppp.code", []).append(str(pkt.code))
    add("ppp.identifier", []).append(str(pkt.identifier))
    add("ppp.length", []).append(str(pkt.length))
    prefix = {PppProtocol.LCP: "lcp", PppProtocol.IPCP: "ipcp", PppProtocol.IPV6CP: "ipv6cp",
              PppProtocol.CCP: "ccp"}[PppProtocol(pkt.protocol)]
    for o in pkt.options:
        add(f"{prefix}.opt.type", []).append(str(o.type))
        add(f"{prefix}.opt.length", []).append(str(o.length))
        v = o.value
        if prefix == "lcp":
            if o.type == LcpOption.MRU and isinstance(v, int):
                add("lcp.opt.mru", []).append(str(v))
            elif o.type == LcpOption.ACCM and isinstance(v, int):
                add("lcp.opt.asyncmap", []).append(_h(v, 8))
            elif isinstance(v, AuthProtocol):
                add("lcp.opt.auth_protocol", []).append(_h(v.protocol, 4))
                if v.algorithm is not None:
                    add("lcp.opt.algorithm", []).append(str(v.algorithm))
            elif isinstance(v, QualityProtocol):
                add("lcp.opt.quality_protocol", []).append(_h(v.protocol, 4))
            elif o.type == LcpOption.MAGIC_NUMBER and isinstance(v, int):
                add("lcp.opt.magic_number", []).append(_h(v, 8))
            elif o.type == LcpOption.MRRU and isinstance(v, int):
                add("lcp.opt.mrru", []).append(str(v))
            elif o.type == LcpOption.FCS_ALTERNATIVES and isinstance(v, int):
                add("lcp.opt.fcs_alternatives", []).append(_h(v, 2))
            elif o.type == LcpOption.LINK_DISCRIMINATOR and isinstance(v, int):
                add("lcp.opt.link_discrim", []).append(str(v))
            elif isinstance(v, EndpointDiscriminator):
                add("lcp.opt.ep_disc_class", []).append(str(v.klass))
                if v.address:
                    add("lcp.opt.data", []).append(v.address.hex())
            elif isinstance(v, Callback):
                add("lcp.opt.operation", []).append(str(v.operation))
        elif prefix == "ipcp":
            field = {IpcpOption.IP_ADDRESS: "ipcp.opt.ip_address",
                     IpcpOption.MOBILE_IPV4: "ipcp.opt.mobilenodehomeaddress",
                     IpcpOption.PRIMARY_DNS: "ipcp.opt.pri_dns_address",
                     IpcpOption.SECONDARY_DNS: "ipcp.opt.sec_dns_address",
                     IpcpOption.PRIMARY_NBNS: "ipcp.opt.pri_nbns_address",
                     IpcpOption.SECONDARY_NBNS: "ipcp.opt.sec_nbns_address"}.get(o.type)
            if field is not None and isinstance(v, str):
                add(field, []).append(v)
            elif o.type == IpcpOption.IP_ADDRESSES and isinstance(v, tuple):
                add("ipcp.opt.src_address", []).append(v[0])
                add("ipcp.opt.dst_address", []).append(v[1])
            elif isinstance(v, IpCompression):
                add("ipcp.opt.compress_proto", []).append(_h(v.protocol, 4))
                if v.max_slot_id is not None:
                    add("ipcp.opt.max_slot_id", []).append(str(v.max_slot_id))
                    add("ipcp.opt.comp_slot_id", []).append(str(v.comp_slot_id))
        elif prefix == "ipv6cp":
            if o.type == Ipv6cpOption.INTERFACE_IDENTIFIER and len(o.data) == 8:
                add("ipv6cp.interface_identifier", []).append(o.data.hex(":"))
        elif isinstance(v, MppeBits):
            add("ccp.opt.supported_bits", []).append(_h(v.supported_bits, 8))
            for letter, on in (("h", v.stateless), ("m", v.bits56), ("s", v.bits128), ("l", v.bits40),
                               ("d", v.obsolete_d), ("c", v.mppc)):
                add(f"ccp.opt.supported_bits.{letter}", []).append("1" if on else "0")
    lcp_only = pkt.protocol == PppProtocol.LCP and 8 <= pkt.code <= 13
    if pkt.code > 4 and not lcp_only and pkt.data:
        add("ppp.data", []).append(pkt.data.hex())
    if pkt.protocol == PppProtocol.LCP and pkt.code in (9, 10, 11) and pkt.data:
        add("lcp.data", []).append(pkt.data.hex())
    if pkt.magic_number is not None:
        add("lcp.magic_number", []).append(_h(pkt.magic_number, 8))
    if pkt.code in (12, 13) and pkt.data:
        add("lcp.message", []).append(pkt.data.decode("utf-8", "replace"))
    if pkt.seconds_remaining is not None:
        add("lcp.secs_remaining", []).append(str(pkt.seconds_remaining))
    if pkt.rejected_protocol is not None:
        add("lcp.rej_proto", []).append(_h(pkt.rejected_protocol, 4))
        if pkt.rejected_protocol in (PppProtocol.LCP, PppProtocol.IPCP, PppProtocol.IPV6CP, PppProtocol.CCP):
            _control_fields(decode_control_packet(pkt.rejected_protocol, pkt.rejected_info), out)


def _auth_fields(msg: object, out: dict[str, list[str]]) -> None:
    if isinstance(msg, PapPacket):
        out.update({"pap.code": [str(msg.code)], "pap.identifier": [str(msg.identifier)],
                    "pap.length": [str(msg.length)]})
        if msg.peer_id is not None and msg.password is not None:
            out["pap.peer_id.length"] = [str(len(msg.peer_id.encode()))]
            out["pap.peer_id"] = [msg.peer_id]
            out["pap.password.length"] = [str(len(msg.password.encode()))]
            out["pap.password"] = [msg.password]
        if msg.message is not None:
            out["pap.message.length"] = [str(len(msg.message.encode()))]
            out["pap.message"] = [msg.message]
    elif isinstance(msg, ChapPacket):
        out.update({"chap.code": [str(msg.code)], "chap.identifier": [str(msg.identifier)],
                    "chap.length": [str(msg.length)]})
        if msg.code in (1, 2):
            out["chap.value_size"] = [str(len(msg.value))]
            out["chap.value"] = [msg.value.hex()]
            if msg.name:
                out["chap.name"] = [msg.name]
        elif msg.code in (3, 4) and msg.message:
            out["chap.message"] = [msg.message]


def ours_as_tshark(frame: PppFrame) -> dict[str, list[str]]:
    """Our decode of a frame as the tshark fields it should equal (PPP, LCP, auth, NCP, CCP)."""
    out: dict[str, list[str]] = {"ppp.protocol": [_h(frame.protocol, 4)]}
    if frame.address_control:
        out["ppp.address"] = ["0xff"]
        out["ppp.control"] = ["0x03"]
    msg = frame.message
    if isinstance(msg, ControlPacket) and frame.protocol in (PppProtocol.LCP, PppProtocol.IPCP,
                                                             PppProtocol.IPV6CP, PppProtocol.CCP):
        _control_fields(msg, out)
    else:
        _auth_fields(msg, out)
    return out


def write_gre_pcap(path: Path, ppp_payloads: list[bytes]) -> Path:
    """A pcap (Ethernet) of one enhanced GRE packet (RFC 2637 §4.1) per PPP frame, for asking tshark."""
    out = bytearray((0xA1B2C3D4).to_bytes(4, "little") + (2).to_bytes(2, "little") + (4).to_bytes(2, "little")
                    + bytes(8) + (65535).to_bytes(4, "little") + (1).to_bytes(4, "little"))
    for seq, payload in enumerate(ppp_payloads):
        gre = (b"\x30\x01\x88\x0b" + len(payload).to_bytes(2, "big") + (7).to_bytes(2, "big")
               + seq.to_bytes(4, "big") + payload)
        total = 20 + len(gre)
        ip = (b"\x45\x00" + total.to_bytes(2, "big") + b"\x00\x01\x00\x00\x40\x2f\x00\x00"
              + bytes([192, 0, 2, 1]) + bytes([192, 0, 2, 2]))
        frame = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + gre
        out += (seq.to_bytes(4, "little") + bytes(4) + len(frame).to_bytes(4, "little")
                + len(frame).to_bytes(4, "little") + frame)
    path.write_bytes(bytes(out))
    return path


def tshark_rows(path: Path, fields: list[str] | tuple[str, ...]) -> list[dict[str, list[str]]]:
    """``tshark -T json -e`` rows of every frame of ``path`` (crafted files), in order."""
    cmd = ["tshark", "-n", "-r", str(path), "-T", "json"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [pkt["_source"]["layers"] for pkt in json.loads(out or "[]")]
