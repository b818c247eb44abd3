"""Link layers: IP header offsets and drill-down fields, against tshark on real and crafted captures."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import LLC, SNAP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Dot3, Ether, Loopback
from scapy.packet import Packet, Raw

from pptptop.decode.link import LinkField, link_fields, network_offset
from pptptop.sources import open_file
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
MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
          b"\x0a\x0d\x0d\x0a")  # pcap (us, ns; both byte orders) and pcapng


def _captures() -> list[Path]:
    out = []
    for p in sorted(DATA.rglob("*")):
        if p.is_file():
            with p.open("rb") as f:
                if f.read(4) in MAGICS:
                    out.append(p)
    return out


CAPTURES = _captures()
IPV4 = 0x0800
IPV6 = 0x86DD
MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"

requires_tshark = pytest.mark.skipif(shutil.which("tshark") is None,
                                     reason="tshark is not installed (apt-get install tshark)")


def tshark_rows(path: Path, fields: list[str]) -> list[list[str]]:
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a",
           "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def write_pcap(path: Path, data: bytes, linktype: int) -> None:
    """One frame in a little-endian microsecond pcap file (draft-ietf-opsawg-pcap §4-§5)."""
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    path.write_bytes(header + struct.pack("<IIII", 1_700_000_000, 0, len(data), len(data)) + data)


def expected_from_protocols(protocols: str, header_len: int) -> tuple[int, int]:
    """What tshark's ``frame.protocols`` says: the first IP layer after the link layer and its tags."""
    layers = protocols.split(":")
    off = header_len
    for layer in layers[1:]:
        if layer == "ethertype":
            continue
        if layer in ("vlan", "ieee8021ad"):
            off += 4
            continue
        if layer == "ip":
            return IPV4, off
        if layer == "ipv6":
            return IPV6, off
        break
    return 0, -1


# -- real captures -----------------------------------------------------------------------------


@requires_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_network_offset_matches_tshark(path: Path) -> None:
    frames = list(open_file(path))
    rows = tshark_rows(path, ["frame.protocols"])
    assert len(rows) == len(frames)
    for i, (frame, row) in enumerate(zip(frames, rows, strict=True)):
        expected = expected_from_protocols(row[0], 14)
        assert network_offset(frame.linktype, frame.data) == expected, f"frame {i + 1}"


def test_ndpi_gre_has_an_8021q_tag() -> None:
    (frame,) = list(open_file(DATA / "ndpi__gre.pcapng"))
    assert network_offset(frame.linktype, frame.data) == (IPV4, 18)
    fields = link_fields(frame.linktype, frame.data)
    assert [f.name for f in fields] == ["Destination", "Source", "Type", "802.1Q priority", "802.1Q DEI",
                                        "802.1Q VLAN ID", "802.1Q type"]
    assert fields[2] == LinkField("Type", "VLAN (0x8100)", 12, 2)
    assert fields[6] == LinkField("802.1Q type", "IPv4 (0x0800)", 16, 2)


@requires_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("path", [DATA / "ndpi__gre.pcapng", DATA / "s1-mschapv2-mppe128-both.pcapng",
                                  DATA / "chapcrack__sample.dump"], ids=lambda p: p.name)
def test_ethernet_fields_match_tshark(path: Path) -> None:
    frames = list(open_file(path))
    rows = tshark_rows(path, ["eth.dst", "eth.src", "eth.type", "eth.len", "vlan.priority", "vlan.dei",
                              "vlan.id", "vlan.etype"])
    for frame, (dst, src, etype, elen, prio, dei, vid, vtype) in zip(frames, rows, strict=True):
        got = {f.name: f.value for f in link_fields(frame.linktype, frame.data)}
        assert got["Destination"] == dst
        assert got["Source"] == src
        if elen:
            assert got["Length"] == elen
        else:
            assert got["Type"].endswith(f"({etype})")
        if vid:
            assert (got["802.1Q priority"], got["802.1Q DEI"], got["802.1Q VLAN ID"]) == (prio, dei, vid)
            assert got["802.1Q type"].endswith(f"({vtype})")


# -- crafted frames, checked by tshark -----------------------------------------------------------

_IP4 = IP(src="192.0.2.1", dst="198.51.100.2", proto=47) / Raw(b"\x30\x81\x88\x0b" + bytes(8))
_IP6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=1723)

CRAFTED: list[tuple[str, int, Packet, int, tuple[int, int]]] = [
    # name, linktype, frame, link header length for tshark's layer walk, expected
    ("qinq-88a8-8100", LINKTYPE_ETHERNET,
     Ether(src=MAC_A, dst=MAC_B) / Dot1AD(vlan=100) / Dot1Q(vlan=200) / _IP4, 14, (IPV4, 22)),
    ("8100-ipv6", LINKTYPE_ETHERNET,
     Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=7, prio=5) / _IP6, 14, (IPV6, 18)),
    ("three-tags", LINKTYPE_ETHERNET,
     Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / _IP4, 14, (IPV4, 26)),
    ("snap", LINKTYPE_ETHERNET,
     Dot3(src=MAC_A, dst=MAC_B) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800) / _IP4, 22,
     (IPV4, 22)),
    ("sll-ipv4", LINKTYPE_LINUX_SLL,
     CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x0a\0\0", proto=IPV4) / _IP4, 16,
     (IPV4, 16)),
    ("sll-vlan", LINKTYPE_LINUX_SLL,
     CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x0a\0\0", proto=0x8100)
     / Dot1Q(vlan=9) / _IP6, 16, (IPV6, 20)),
    ("sll2-ipv6", LINKTYPE_LINUX_SLL2,
     CookedLinuxV2(proto=IPV6, ifindex=3, lladdrtype=1, pkttype=0, lladdrlen=6,
                   src=b"\x02\0\0\0\0\x0a\0\0") / _IP6, 20, (IPV6, 20)),
    ("null-le-ipv4", LINKTYPE_NULL, Loopback(type=2) / _IP4, 4, (IPV4, 4)),
    ("null-le-ipv6-darwin", LINKTYPE_NULL, Loopback(type=30) / _IP6, 4, (IPV6, 4)),
]


@requires_tshark
@pytest.mark.tshark
@pytest.mark.parametrize(("name", "linktype", "pkt", "hdr", "expected"), CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_frames_against_tshark(name: str, linktype: int, pkt: Packet, hdr: int,
                                       expected: tuple[int, int], tmp_path: Path) -> None:
    data = bytes(pkt)
    assert network_offset(linktype, data) == expected
    path = tmp_path / f"{name}.pcap"
    write_pcap(path, data, linktype)
    (row,) = tshark_rows(path, ["frame.protocols"])
    protocols = row[0]
    if linktype == LINKTYPE_ETHERNET and "llc" in protocols:
        assert protocols.startswith("eth:llc:ip")
    elif linktype in (LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NULL):
        assert protocols.split(":")[0] in ("sll", "null")
        assert expected_from_protocols(protocols, hdr) == expected
    else:
        assert expected_from_protocols(protocols, hdr) == expected


@requires_tshark
@pytest.mark.tshark
def test_sll_fields_match_tshark(tmp_path: Path) -> None:
    pkt = CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x0a\0\0", proto=IPV4) / _IP4
    data = bytes(pkt)
    path = tmp_path / "sll.pcap"
    write_pcap(path, data, LINKTYPE_LINUX_SLL)
    ((pkttype, hatype, halen, src, etype),) = tshark_rows(
        path, ["sll.pkttype", "sll.hatype", "sll.halen", "sll.src.eth", "sll.etype"])
    got = {f.name: f for f in link_fields(LINKTYPE_LINUX_SLL, data)}
    assert got["Packet type"].value == f"Sent by us ({pkttype})"
    assert got["Link-layer address type"].value == hatype
    assert got["Link-layer address length"].value == halen
    assert got["Source"].value.startswith(src)
    assert got["Protocol"] == LinkField("Protocol", f"IPv4 ({etype})", 14, 2)


def test_sll2_fields() -> None:
    data = bytes(CookedLinuxV2(proto=IPV6, ifindex=3, lladdrtype=1, pkttype=3, lladdrlen=6,
                               src=b"\x02\0\0\0\0\x0a\0\0") / _IP6)
    got = {f.name: f for f in link_fields(LINKTYPE_LINUX_SLL2, data)}
    assert got["Protocol"] == LinkField("Protocol", "IPv6 (0x86dd)", 0, 2)
    assert got["Interface index"].value == "3"
    assert got["Packet type"].value == "Unicast to another host (3)"
    assert got["Source"].value == "02:00:00:00:00:0a"


# -- raw IP and loopback headers -----------------------------------------------------------------


@pytest.mark.parametrize(("linktype", "pkt", "expected"), [
    (LINKTYPE_RAW, _IP4, (IPV4, 0)),
    (LINKTYPE_RAW, _IP6, (IPV6, 0)),
    (LINKTYPE_IPV4, _IP4, (IPV4, 0)),
    (LINKTYPE_IPV4, _IP6, (0, -1)),
    (LINKTYPE_IPV6, _IP6, (IPV6, 0)),
    (LINKTYPE_IPV6, _IP4, (0, -1)),
    (LINKTYPE_RAW, Raw(b"\x50" + bytes(30)), (0, -1)),
])
def test_raw_ip(linktype: int, pkt: Packet, expected: tuple[int, int]) -> None:
    assert network_offset(linktype, bytes(pkt)) == expected
    assert link_fields(linktype, bytes(pkt)) == []


@pytest.mark.parametrize(("header", "linktype", "expected"), [
    (b"\x02\x00\x00\x00", LINKTYPE_NULL, (IPV4, 4)),  # little-endian host
    (b"\x00\x00\x00\x02", LINKTYPE_NULL, (IPV4, 4)),  # big-endian host
    (b"\x18\x00\x00\x00", LINKTYPE_NULL, (IPV6, 4)),  # 24: NetBSD/OpenBSD
    (b"\x00\x00\x00\x1c", LINKTYPE_NULL, (IPV6, 4)),  # 28: FreeBSD, big-endian
    (b"\x1e\x00\x00\x00", LINKTYPE_NULL, (IPV6, 4)),  # 30: Darwin
    (b"\x00\x00\x00\x02", LINKTYPE_LOOP, (IPV4, 4)),  # LOOP is always network order
    (b"\x02\x00\x00\x00", LINKTYPE_LOOP, (0, -1)),
    (b"\x07\x00\x00\x00", LINKTYPE_NULL, (0, -1)),
])
def test_bsd_loopback(header: bytes, linktype: int, expected: tuple[int, int]) -> None:
    data = header + bytes(_IP4 if expected[0] != IPV6 else _IP6)
    assert network_offset(linktype, data) == expected
    (family,) = link_fields(linktype, data)
    assert family.name == "Family" and family.offset == 0 and family.length == 4


@pytest.mark.parametrize(("linktype", "data"), [
    (LINKTYPE_ETHERNET, bytes(Ether(src=MAC_A, dst=MAC_B, type=IPV4))),  # header only, no IP byte
    (LINKTYPE_ETHERNET, bytes(Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=5))[:16]),  # cut inside the tag
    (LINKTYPE_ETHERNET, bytes(Ether(src=MAC_A, dst=MAC_B, type=0x0806) / Raw(bytes(28)))),  # ARP
    (LINKTYPE_LINUX_SLL, bytes(15)),
    (LINKTYPE_LINUX_SLL2, bytes(19)),
    (LINKTYPE_NULL, b"\x02\x00\x00"),
    (LINKTYPE_RAW, b""),
    (147, bytes(Ether() / _IP4)),  # a link type we do not decode
])
def test_frames_without_ip(linktype: int, data: bytes) -> None:
    assert network_offset(linktype, data) == (0, -1)


def test_ethernet_fields_on_a_short_frame() -> None:
    assert [f.name for f in link_fields(LINKTYPE_ETHERNET, bytes(10))] == ["Destination"]
    assert link_fields(LINKTYPE_ETHERNET, b"") == []


def test_qinq_fields_name_both_tags() -> None:
    data = bytes(Ether(src=MAC_A, dst=MAC_B) / Dot1AD(vlan=100, prio=3) / Dot1Q(vlan=200, dei=1) / _IP4)
    fields = link_fields(LINKTYPE_ETHERNET, data)
    assert LinkField("802.1ad VLAN ID", "100", 14, 2) in fields
    assert LinkField("802.1ad priority", "3", 14, 2) in fields
    assert LinkField("802.1Q VLAN ID", "200", 18, 2) in fields
    assert LinkField("802.1Q DEI", "1", 18, 2) in fields
    assert LinkField("802.1Q type", "IPv4 (0x0800)", 20, 2) in fields


@given(linktype=st.sampled_from([0, 1, 101, 108, 113, 228, 229, 276, 9999]), data=st.binary(max_size=80))
def test_never_raises(linktype: int, data: bytes) -> None:
    ethertype, off = network_offset(linktype, data)
    if off == -1:
        assert ethertype == 0
    else:
        assert ethertype in (IPV4, IPV6) and 0 <= off < len(data)
    for f in link_fields(linktype, data):
        assert f.offset >= 0 and f.offset + f.length <= len(data)
