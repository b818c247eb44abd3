"""Per-tunnel export: every kept packet, both NAT legs, in capture order, 0600, from the API and the CLI."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from hostile_capture import RAW_CONTROLS, write_hostile
from rechelp import DATA, HAVE_TSHARK, NO_TSHARK, capinfos, raw_frames, run_pptptop, tshark_read

from pptptop import sources
from pptptop.pipeline import Pipeline
from pptptop.record.export import (
    collect_packets,
    export_tunnel,
    nat_peers,
    select_tunnels,
    tunnel_packets,
)
from pptptop.record.writers import RecordError
from pptptop.track import nat as natmod
from pptptop.track.model import Tunnel
from pptptop.track.tracker import Tracker

needs_tshark = pytest.mark.skipif(not HAVE_TSHARK, reason=NO_TSHARK)
LAB = ["s1-mschapv2-mppe128-both.pcapng", "s2-mschapv2-wrong-password-both.pcapng",
       "s3-gre-blocked-both.pcapng", "s5-two-clients-same-nat-both.pcapng", "s7-echo-timeout-both.pcapng"]


def analysed(path: Path, *, nat: bool = True) -> Tracker:
    tracker = Tracker()
    if nat:
        natmod.attach(tracker)
    Pipeline(sources.open_file(path), tracker).run()
    return tracker


def kept_numbers(t: Tunnel) -> list[int]:
    """What the tracker says it kept, straight from the model."""
    return sorted({p.number for p in t.all_packets()} | {n for n, *_ in t.data_ring})


@needs_tshark
@pytest.mark.parametrize("name", LAB)
def test_one_leg_is_exactly_its_kept_packets(tmp_path: Path, name: str) -> None:
    src = DATA / name
    tracker = analysed(src, nat=False)
    originals = raw_frames(src)  # frame n of the capture is originals[n - 1]
    names = tshark_read(src).interfaces
    assert tracker.tunnels
    for t in tracker.tunnels.values():
        out = tmp_path / f"t{t.id}.pcapng"
        n = export_tunnel(t, out)
        numbers = kept_numbers(t)
        assert n == len(numbers) > 0
        r = tshark_read(out)
        assert r.returncode == 0 and not r.stderr
        assert raw_frames(out) == [originals[k - 1] for k in numbers]
        assert r.interfaces == [names[k - 1] for k in numbers] == [t.iface] * n
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert f"tunnel {t.id} on {t.iface}" in capinfos(out)["Capture comment"]


@needs_tshark
@pytest.mark.parametrize("name", ["s2-mschapv2-wrong-password-both.pcapng", "s5-two-clients-same-nat-both.pcapng"])
def test_both_nat_legs_in_capture_order(tmp_path: Path, name: str) -> None:
    src = DATA / name
    tracker = analysed(src)
    originals = raw_frames(src)
    names = tshark_read(src).interfaces
    paired = [t for t in tracker.tunnels.values() if nat_peers(t)]
    assert len(paired) == len(tracker.tunnels) >= 2  # NAT correlation joined every leg
    for t in paired:
        peer = tracker.tunnels[nat_peers(t)[0]]
        assert {t.iface, peer.iface} == {"lan0", "wan0"}
        out = tmp_path / f"t{t.id}.pcapng"
        n = export_tunnel(t, out, tracker=tracker)
        numbers = sorted(set(kept_numbers(t)) | set(kept_numbers(peer)))
        assert n == len(numbers)
        assert raw_frames(out) == [originals[k - 1] for k in numbers]  # capture order across legs
        r = tshark_read(out)
        assert r.interfaces == [names[k - 1] for k in numbers]
        assert set(r.interfaces) == {"lan0", "wan0"}


@needs_tshark
def test_classic_pcap_export(tmp_path: Path) -> None:
    src = DATA / "s2-mschapv2-wrong-password-both.pcapng"
    tracker = analysed(src)
    t = tracker.tunnels[1]
    out = tmp_path / "t.pcap"
    n = export_tunnel(t, out, pcapng=False, tracker=tracker)
    assert capinfos(out)["File type"] == "pcap"
    assert int(capinfos(out)["Number of packets"]) == n == len(collect_packets([t], tracker))


def test_export_refuses_a_symlink(tmp_path: Path) -> None:
    tracker = analysed(DATA / "s2-mschapv2-wrong-password-both.pcapng", nat=False)
    victim = tmp_path / "victim"
    victim.write_text("x")
    (tmp_path / "t.pcapng").symlink_to(victim)
    with pytest.raises(RecordError, match="symbolic link"):
        export_tunnel(tracker.tunnels[1], tmp_path / "t.pcapng")
    assert victim.read_text() == "x"


def test_data_ring_packets_get_the_interface_and_link_type_of_the_tunnel() -> None:
    tracker = analysed(DATA / "s1-mschapv2-mppe128-both.pcapng", nat=False)
    for t in tracker.tunnels.values():
        ring = {n for n, *_ in t.data_ring}
        assert ring
        pk = [p for p in tunnel_packets(t) if p.number in ring]
        assert {(p.iface, p.linktype) for p in pk} == {(t.iface, 1)}


def test_select_tunnels() -> None:
    tracker = analysed(DATA / "s2-mschapv2-wrong-password-both.pcapng", nat=False)
    assert select_tunnels(tracker, "2") == [tracker.tunnels[2]]
    with pytest.raises(ValueError, match="no tunnel 9"):
        select_tunnels(tracker, "9")
    assert select_tunnels(tracker, "lan", lambda t: t.iface == "lan0") == [tracker.tunnels[2]]
    with pytest.raises(ValueError, match="no tunnel matches"):
        select_tunnels(tracker, "x", lambda t: False)


# ---------------------------------------------------------------------- headless --export-tunnel
@needs_tshark
def test_cli_export_by_id_and_by_filter(tmp_path: Path) -> None:
    src = DATA / "s5-two-clients-same-nat-both.pcapng"
    tracker = analysed(src)
    p = run_pptptop("-r", str(src), "--export-tunnel", "1", "-w", str(tmp_path / "one.pcapng"))
    assert p.returncode == 0, p.stderr
    one = tracker.tunnels[1]
    want = len(collect_packets([one], tracker))
    assert f"wrote {want} packets" in p.stderr
    assert int(capinfos(tmp_path / "one.pcapng")["Number of packets"]) == want
    # the UI's filter language: alice's session (both legs)
    p = run_pptptop("-r", str(src), "--export-tunnel", "user=alice", "-w", str(tmp_path / "alice.pcapng"))
    assert p.returncode == 0, p.stderr
    alice = [t for t in tracker.tunnels.values() if t.auth.user == "alice"]
    assert alice
    assert int(capinfos(tmp_path / "alice.pcapng")["Number of packets"]) == len(collect_packets(alice, tracker))
    assert stat.S_IMODE((tmp_path / "alice.pcapng").stat().st_mode) == 0o600


def test_cli_export_unknown_tunnel_is_a_clear_error(tmp_path: Path) -> None:
    p = run_pptptop("-r", str(DATA / "s2-mschapv2-wrong-password-both.pcapng"), "--export-tunnel", "42",
                    "-w", str(tmp_path / "x.pcapng"))
    assert p.returncode == 66
    assert "no tunnel 42" in p.stderr


def test_cli_export_refuses_a_symlink_before_reading(tmp_path: Path) -> None:
    (tmp_path / "x.pcapng").symlink_to(tmp_path / "elsewhere")
    p = run_pptptop("-r", str(DATA / "s2-mschapv2-wrong-password-both.pcapng"), "--export-tunnel", "1",
                    "-w", str(tmp_path / "x.pcapng"))
    assert p.returncode == 73
    assert "symbolic link" in p.stderr
    assert not (tmp_path / "elsewhere").exists()


@needs_tshark
def test_cli_export_escapes_wire_text_in_its_comment(tmp_path: Path) -> None:
    """The section comment names the user and how the tunnel ended: a hostile user name or Terminate text
    (ESC[2J, OSC 52, CR/LF) is shown escaped by capinfos and tshark, never acted on by the terminal."""
    out = tmp_path / "t.pcapng"
    p = run_pptptop("-r", str(write_hostile(tmp_path / "hostile.pcap")), "--export-tunnel", "1", "-w", str(out))
    assert p.returncode == 0, p.stderr
    shown = b"".join(subprocess.run(cmd, capture_output=True, check=True).stdout
                     for cmd in (["capinfos", "-k", str(out)], ["tshark", "-n", "-V", "-r", str(out)]))
    assert not [c for c in RAW_CONTROLS if c.encode() in shown]
    comment = capinfos(out)["Capture comment"]
    assert 'user "\\x1b]52;c;cHduZWQ=\\x07\\x1b[2Jbob\\x0d\\x0ainjected"' in comment
    assert "ended by server (lcp-terminate): " in comment
