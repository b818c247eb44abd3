"""The drill-down tree (decode/dissect.py): every field at the bytes tshark puts it, and never a crash."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pptptop import sources
from pptptop.decode.dissect import Node, dissect

DATA = Path(__file__).parent.parent / "data"

#: tshark field → (our layer's label prefix, our field label, "value" to compare the option's value child)
FIELDS: dict[str, tuple[str, str]] = {
    "ip.src": ("Internet Protocol Version 4", "Source address"),
    "ip.dst": ("Internet Protocol Version 4", "Destination address"),
    "ip.ttl": ("Internet Protocol Version 4", "Time to live"),
    "tcp.srcport": ("Transmission Control Protocol", "Source port"),
    "tcp.dstport": ("Transmission Control Protocol", "Destination port"),
    "tcp.seq_raw": ("Transmission Control Protocol", "Sequence number"),
    "gre.key.call_id": ("Generic Routing Encapsulation", "Call id"),
    "gre.key.payload_length": ("Generic Routing Encapsulation", "Payload length"),
    "gre.sequence_number": ("Generic Routing Encapsulation", "Seq"),
    "gre.ack_number": ("Generic Routing Encapsulation", "Ack"),
    "pptp.host_name": ("Point-to-Point Tunnelling Protocol", "Host name"),
    "pptp.vendor_name": ("Point-to-Point Tunnelling Protocol", "Vendor string"),
    "pptp.call_id": ("Point-to-Point Tunnelling Protocol", "Call id"),
    "pptp.peer_call_id": ("Point-to-Point Tunnelling Protocol", "Peer call id"),
    "pptp.identifier": ("Point-to-Point Tunnelling Protocol", "Identifier"),
    "ppp.protocol": ("Point-to-Point Protocol", "Protocol"),
    "lcp.identifier": ("Link Control Protocol", "Identifier"),
    "lcp.opt.magic_number": ("Link Control Protocol", "Magic Number"),
    "chap.name": ("PPP Challenge Handshake Authentication Protocol", "Name"),
    "chap.identifier": ("PPP Challenge Handshake Authentication Protocol", "Identifier"),
    "chap.message": ("PPP Challenge Handshake Authentication Protocol", "Message"),
    "ipcp.opt.ip_address": ("Internet Protocol Control Protocol", "IP Address"),
    "pap.peer_id": ("PPP Password Authentication Protocol", "Peer-ID"),
}
#: fields whose tshark span is the option value while ours is the whole option: compare with its Value child
VALUE_CHILD = {"lcp.opt.magic_number", "ipcp.opt.ip_address"}
#: fields whose value text is exactly tshark's "show"
SAME_TEXT = {"ip.src", "ip.dst", "pptp.host_name", "chap.name", "pap.peer_id"}
SAME_TEXT_SUFFIXES = ("call_id", "port", "sequence_number", "ack_number", "payload_length")


def tshark_positions(path: Path) -> list[dict[str, tuple[int, int, str]]]:
    """Per frame: tshark field name → (pos, size, show) for the fields we compare (first occurrence)."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "pdml"], capture_output=True, check=True).stdout
    frames = []
    for packet in ET.fromstring(out).iter("packet"):
        got: dict[str, tuple[int, int, str]] = {}
        for f in packet.iter("field"):
            name = f.get("name", "")
            if name in FIELDS and name not in got and f.get("pos") is not None:
                got[name] = (int(f.get("pos", "0")), int(f.get("size", "0")), f.get("show", ""))
        frames.append(got)
    return frames


def our_field(root: Node, layer: str, label: str) -> Node | None:
    for top in root.walk():
        if top.label.startswith(layer):
            found = top.find(label)
            if found is not None:
                return found
    return None


CAPTURES = [*sorted(p.name for p in DATA.glob("s*-inside.pcap")), "tcpdump__pptp.pcap", "chapcrack__pptp.cap"]


@pytest.mark.tshark
@pytest.mark.parametrize("name", CAPTURES)
def test_fields_sit_where_tshark_puts_them(name: str) -> None:
    path = DATA / name
    theirs = tshark_positions(path)
    frames = list(sources.open_file(str(path)))
    assert len(frames) == len(theirs)
    compared = 0
    for i, (fr, want) in enumerate(zip(frames, theirs, strict=True), start=1):
        root = dissect(fr.linktype, fr.data)
        for field, (pos, size, show) in want.items():
            layer, label = FIELDS[field]
            node = our_field(root, layer, label)
            assert node is not None, (name, i, field)
            if field in VALUE_CHILD:
                node = node.find("Value") or node
            assert (node.start, node.end - node.start) == (pos, size), (name, i, field, node)
            if field in SAME_TEXT or field.endswith(SAME_TEXT_SUFFIXES):
                assert node.value == show, (name, i, field)
            compared += 1
    assert compared > 20


def test_every_layer_of_a_pptp_control_message() -> None:
    frames = list(sources.open_file(str(DATA / "s1-mschapv2-mppe128-inside.pcap")))
    sccrq = next(f for f in frames if b"\x1a\x2b\x3c\x4d" in f.data)
    root = dissect(sccrq.linktype, sccrq.data)
    assert [c.label for c in root.children] == ["Ethernet II", "Internet Protocol Version 4",
                                                "Transmission Control Protocol",
                                                "Point-to-Point Tunnelling Protocol: Start-Control-Connection-Request"]
    pptp = root.children[3]
    cookie = pptp.find("Magic cookie")
    assert cookie is not None and cookie.value == "0x1a2b3c4d"
    assert pptp.end - pptp.start == 156
    assert all(pptp.start <= c.start and c.end <= pptp.end for c in pptp.children)


def test_bearer_values_are_named_as_tshark_names_them() -> None:
    """tshark: "Bearer Capabilities: Either access supported (3)" (SCCRQ), "Unknown (0)" (SCCRP), "Bearer Type"."""
    frames = list(sources.open_file(str(DATA / "s1-mschapv2-mppe128-inside.pcap")))
    values = []
    for fr in frames:
        for n in dissect(fr.linktype, fr.data).walk():
            if n.label in ("Bearer capabilities", "Bearer type"):
                values.append((n.label, n.value))
    assert values[:3] == [("Bearer capabilities", "Either access supported (3)"),
                          ("Bearer capabilities", "Unknown (0)"),
                          ("Bearer type", "Either access supported (3)")]
    framing = [n.value for fr in frames for n in dissect(fr.linktype, fr.data).walk()
               if n.label == "Framing capabilities"]
    assert framing[:2] == ["Either Framing supported (3)", "Unknown (0)"]


def test_children_stay_inside_their_parent_on_real_frames() -> None:
    for name in ("s1-mschapv2-mppe128-both.pcapng", "s6-pap-no-encryption-inside.pcap",
                 "s3b-gre-forward-drop-outside.pcap", "s8-server-killed-inside.pcap"):
        for fr in sources.open_file(str(DATA / name)):
            root = dissect(fr.linktype, fr.data)
            assert root.end == len(fr.data)
            for n in root.walk():
                assert 0 <= n.start <= n.end <= len(fr.data), (name, n)


def test_icmp_error_quotes_the_gre_it_refuses() -> None:
    frames = list(sources.open_file(str(DATA / "s3b-gre-forward-drop-outside.pcap")))
    icmp = [dissect(f.linktype, f.data) for f in frames if f.data[23] == 1]
    assert icmp
    quoted = icmp[0].find("Original datagram")
    assert quoted is not None and quoted.find("Generic Routing Encapsulation (PPTP)") is not None


def test_pap_password_is_not_shown() -> None:
    frames = list(sources.open_file(str(DATA / "s6-pap-no-encryption-inside.pcap")))
    trees = [dissect(f.linktype, f.data) for f in frames]
    pap = [t.find("Password") for t in trees if t.find("Peer-ID") is not None]
    assert pap and all(p is not None and "plaintext" not in p.value and "hidden" in p.value for p in pap)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=300), st.binary(max_size=200))
def test_never_raises_on_any_bytes(linktype: int, data: bytes) -> None:
    root = dissect(linktype, data)
    for n in root.walk():
        assert n.start <= n.end


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_never_raises_on_mutated_real_frames(data: st.DataObject) -> None:
    frames = _frames()
    fr = frames[data.draw(st.integers(0, len(frames) - 1))]
    b = bytearray(fr.data)
    for _ in range(data.draw(st.integers(1, 6))):
        b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(b)))
    dissect(fr.linktype, bytes(b[:cut]))


_CACHE: list[object] = []


def _frames() -> list:  # type: ignore[type-arg]
    if not _CACHE:
        _CACHE.extend(sources.open_file(str(DATA / "s1-mschapv2-mppe128-inside.pcap")))
        _CACHE.extend(sources.open_file(str(DATA / "s6-pap-no-encryption-inside.pcap")))
    return _CACHE
