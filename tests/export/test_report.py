"""--report and --json with hostile strings off the wire: shown literally, never as terminal controls."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

from pptptop.export.text import printable, quoted
from pptptop.record.writers import PcapWriter

ETH = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
HOSTILE = "\x1b[2J\x1b]0;owned\x07[red]boom[/] \u202eevil"


def tcp_frame(payload: bytes, seq: int, to_server: bool, flags: int = 0x18) -> bytes:
    sport, dport = (40000, 1723) if to_server else (1723, 40000)
    src, dst = (0x0A000002, 0xC6336402) if to_server else (0xC6336402, 0x0A000002)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 0x50, flags, 65535, 0, 0) + payload
    return ETH + struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst) + tcp


def sccrq(host: bytes, vendor: bytes) -> bytes:
    body = struct.pack("!HHIIHH", 0x0100, 0, 1, 1, 0, 0x0100) + host.ljust(64, b"\0") + vendor.ljust(64, b"\0")
    return struct.pack("!HHIHH", 12 + len(body), 1, 0x1A2B3C4D, 1, 0) + body


def test_printable_escapes_controls() -> None:
    assert printable(HOSTILE) == "\\x1b[2J\\x1b]0;owned\\x07[red]boom[/] \\u202eevil"
    assert quoted(None) == "-" and quoted('a"b') == '"a\\"b"'
    assert len(printable("x" * 1000, limit=10)) == 11


def test_hostile_host_name_through_engine_and_report(tmp_path: Path) -> None:
    path = tmp_path / "hostile.pcap"
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype=1)
        w.write(1.0, "", 1, tcp_frame(b"", 999, True, flags=0x02))
        w.write(1.1, "", 1, tcp_frame(sccrq(HOSTILE.encode(), b"\x07\x08vendor\x1b[31m"), 1000, True))
    rep = subprocess.run([sys.executable, "-m", "pptptop", "-r", str(path), "--report"], capture_output=True,
                         text=True, check=True).stdout
    assert "\x1b" not in rep and "\x07" not in rep and "\x80" not in rep
    assert "\\x1b[2J" in rep and "[red]boom[/]" in rep
    doc = json.loads(subprocess.run([sys.executable, "-m", "pptptop", "-r", str(path), "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    # JSON keeps the exact bytes (host names are decoded latin-1, one character per octet; json escapes them)
    assert doc["tunnels"][0]["control"]["host_name"]["client"] == HOSTILE.encode().decode("latin-1")


def test_evicted_tunnels_are_said() -> None:
    """--json has source.tunnels_evicted; --report says it too, or a reader takes it for the whole capture."""
    src = str(Path(__file__).resolve().parents[1] / "data" / "s5-two-clients-same-nat-both.pcapng")
    doc = json.loads(subprocess.run([sys.executable, "-m", "pptptop", "-r", src, "--max-tunnels", "1", "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    n = doc["source"]["tunnels_evicted"]
    assert n > 0
    rep = subprocess.run([sys.executable, "-m", "pptptop", "-r", src, "--max-tunnels", "1", "--report"],
                         capture_output=True, text=True, check=True).stdout
    assert f"{n} tunnels evicted by the memory bounds (--max-tunnels 1): not in this report" in rep
    full = subprocess.run([sys.executable, "-m", "pptptop", "-r", src, "--report"], capture_output=True, text=True,
                          check=True).stdout
    assert "evicted" not in full


def test_a_stop_reason_named_none_does_not_read_as_missing() -> None:
    """RFC 2637 §2.3 names Stop-Control-Connection-Request reason 1 "None" (a general request to clear), and
    tshark says so; alone after a colon it read as a Python None where a reason was missing. It is given
    with its number, as the diagnosis does."""
    src = str(Path(__file__).resolve().parents[1] / "data" / "s10-server-ctrl-sigterm-inside.pcap")
    rep = subprocess.run([sys.executable, "-m", "pptptop", "-r", src, "--report"], capture_output=True, text=True,
                         check=True).stdout
    assert "stop-control by server: None (1);" in rep
    assert ": None;" not in rep and ": None)" not in rep
    doc = json.loads(subprocess.run([sys.executable, "-m", "pptptop", "-r", src, "--json"], capture_output=True,
                                    text=True, check=True).stdout)
    (t,) = doc["tunnels"]
    assert "stop-control by server: None (1)" in t["close"]["steps"] and t["control"]["stop_reason"] == 1
