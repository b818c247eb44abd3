"""PPTP carried inside another tunnel: GRE in IPv4 in IPv6 (RFC 2473) behind a VLAN tag, and IPv4 in IPv4.

The lab's s1 session is re-wrapped frame by frame; pptptop must see the same
session as in the plain capture, decoded from the inner headers as tshark
decodes them.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from pptptop import sources
from pptptop.export.jsonout import tunnel_dict
from pptptop.export.report import report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sources"))
from capfiles import pcap_file, requires_tshark

ADDR6 = bytes.fromhex("20010db8000000000000000000000001"), bytes.fromhex("20010db8000000000000000000000002")


def in_ipv6_behind_vlan(frame: bytes) -> bytes:
    """Ethernet → 802.1Q VLAN 7 → IPv6 (next header 4) → the frame's IPv4 packet."""
    inner = frame[14:]
    ip6 = struct.pack("!IHBB", 0x60000000, len(inner), 4, 64) + ADDR6[0] + ADDR6[1]
    return frame[:12] + b"\x81\x00\x00\x07\x86\xdd" + ip6 + inner


def in_ipv4(frame: bytes) -> bytes:
    """Ethernet → IPv4 (protocol 4, RFC 2003) → the frame's IPv4 packet."""
    inner = frame[14:]
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(inner), 1, 0, 64, 4, 0,
                                bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])))
    words = struct.unpack("!10H", hdr)
    total = sum(words)
    total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", hdr, 10, ~total & 0xFFFF)
    return frame[:14] + bytes(hdr) + inner


def wrapped(data_dir: Path, tmp_path: Path, wrap: Any) -> tuple[Path, Path]:
    plain = data_dir / "s1-mschapv2-mppe128-inside.pcap"
    frames = list(sources.open_file(str(plain)))
    out = tmp_path / f"{wrap.__name__}.pcap"
    recs = []
    for f in frames:
        data = wrap(f.data) if f.data[12:14] == b"\x08\x00" else f.data
        sec = int(f.ts)
        recs.append((sec, round((f.ts - sec) * 1e6), data))
    out.write_bytes(pcap_file(recs))
    return plain, out


@pytest.mark.parametrize("wrap", [in_ipv6_behind_vlan, in_ipv4])
def test_pptp_inside_another_tunnel_is_the_same_session(engine: Any, data_dir: Path, tmp_path: Path,
                                                         wrap: Any) -> None:
    plain, nested = wrapped(data_dir, tmp_path, wrap)
    want, got = engine(plain), engine(nested)
    assert len(got.tunnels) == len(want.tunnels) == 1
    a = tunnel_dict(next(iter(want.tunnels.values())), want.now)
    b = tunnel_dict(next(iter(got.tunnels.values())), got.now)
    for key in ("client", "server", "phase", "phases", "auth", "ncp", "ccp", "close", "gre"):
        assert a[key] == b[key], key
    for d in ("to_server", "to_client"):
        assert a["traffic"][d]["packets"] == b["traffic"][d]["packets"]
    assert got.stats.gre == want.stats.gre and got.stats.control_messages == want.stats.control_messages


@requires_tshark
def test_gre_count_of_a_nested_capture_equals_tsharks(engine: Any, data_dir: Path, tmp_path: Path,
                                                      tshark: Any) -> None:
    _, nested = wrapped(data_dir, tmp_path, in_ipv6_behind_vlan)
    rows = tshark(nested, "gre", ["gre.key.call_id"])
    assert engine(nested).stats.gre == len(rows) > 0


def test_the_report_says_how_many_frames_were_not_pptp(engine: Any, data_dir: Path) -> None:
    tracker = engine(data_dir / "s1-mschapv2-mppe128-inside.pcap")
    assert tracker.stats.other == 2
    assert report(tracker, {"name": "s1"}).splitlines()[0].endswith("; 2 frames skipped as not PPTP")
