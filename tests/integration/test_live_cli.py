"""Live capture end to end: a lab capture replayed into a veth pair, pptptop capturing on the other end.

The tunnels pptptop reports live must be the ones it reports reading the same
file offline. Runs as root in two network namespaces the test creates and
removes; the replay stays inside them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.root

KEYS = ("client", "server", "phase", "failed_in", "auth", "ncp")


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str, str]]:
    if shutil.which("tcpreplay") is None:
        pytest.skip("tcpreplay is not installed (apt-get install tcpreplay)")
    tag = uuid.uuid4().hex[:6]
    tx, rx, a, b = f"ptx{tag}", f"prx{tag}", f"pa{tag}", f"pb{tag}"
    sh("ip", "netns", "add", tx)
    sh("ip", "netns", "add", rx)
    try:
        sh("ip", "link", "add", a, "netns", tx, "type", "veth", "peer", "name", b, "netns", rx)
        for ns, dev in ((tx, a), (rx, b)):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{dev}.disable_ipv6=1"],
                           capture_output=True)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield tx, rx, a, b
    finally:
        subprocess.run(["ip", "netns", "del", tx], capture_output=True)
        subprocess.run(["ip", "netns", "del", rx], capture_output=True)


def offline(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "pptptop", "-r", str(path), "--json"], capture_output=True,
                         text=True, check=True).stdout
    tunnels: list[dict[str, Any]] = json.loads(out)["tunnels"]
    return tunnels


def pptp_frames(path: Path) -> int:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.port == 1723 || gre", "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
    return len(out.split())


def wait_bound(ns: str, proc: subprocess.Popen[str], limit: float = 30.0) -> None:
    """Until pptptop's packet socket is bound (ETH_P_ALL, 0003 in /proc/net/packet): it then sees every frame."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        rows = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/packet"], capture_output=True,
                              text=True).stdout.splitlines()[1:]
        if any(r.split()[3] == "0003" for r in rows):
            return
        time.sleep(0.05)
    raise AssertionError("pptptop's capture socket was never bound")


def live(veth: tuple[str, str, str, str], path: Path, count: int | None, *extra: str,
         end_line: list[dict[str, Any]] | None = None, pps: int | None = None) -> list[dict[str, Any]]:
    """The tunnels that ended, as pptptop -i reported them live (``end_line`` gets its capture-end line);
    the file is replayed at top speed, or at ``pps`` packets a second."""
    tx, rx, a, b = veth
    cmd = ["ip", "netns", "exec", rx, sys.executable, "-m", "pptptop", "-i", b, "--json", *extra]
    if count is not None:
        cmd += ["-c", str(count)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cap = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_bound(rx, cap)
        rate = ["--topspeed"] if pps is None else ["--pps", str(pps)]
        sh("ip", "netns", "exec", tx, "tcpreplay", *rate, "-i", a, str(path))
        if count is None:
            time.sleep(1.5)
            cap.send_signal(signal.SIGTERM)
        out, err = cap.communicate(timeout=180)
    finally:
        if cap.poll() is None:
            cap.kill()
    assert cap.returncode == 0, err
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    end = lines[-1]
    assert end["event"] == "capture-end" and end["kernel_drops"] == 0
    if end_line is not None:
        end_line.append(end)
    ended = [x["tunnel"] for x in lines if x["event"] == "ended"]
    return sorted(ended, key=lambda t: (t["client"]["call_id"] or 0))


@pytest.mark.parametrize("name", ["s1-mschapv2-mppe128-inside.pcap", "s5-two-clients-same-nat-inside.pcap",
                                  "s2-mschapv2-wrong-password-inside.pcap"])
@pytest.mark.parametrize("mode", ["count", "batches"])
def test_live_tunnels_equal_offline(veth: tuple[str, str, str, str], data_dir: Path, name: str, mode: str) -> None:
    path = data_dir / name
    want = sorted(offline(path), key=lambda t: (t["client"]["call_id"] or 0))
    got = live(veth, path, pptp_frames(path) if mode == "count" else None)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        for key in KEYS:
            assert g[key] == w[key], key
        assert g["ccp"]["mppe"] == w["ccp"]["mppe"] and g["ccp"]["bits"] == w["ccp"]["bits"]
        for d in ("to_server", "to_client"):
            assert g["traffic"][d]["packets"] == w["traffic"][d]["packets"]
            assert g["traffic"][d]["bytes"] == w["traffic"][d]["bytes"]
        assert [p["phase"] for p in g["phases"]] == [p["phase"] for p in w["phases"]]


def test_buffer_sizes_from_the_command_line(veth: tuple[str, str, str, str], data_dir: Path) -> None:
    """-B KiB (tcpdump's) sizes each kernel ring, --queue MB what may wait drained; capture-end tells both
    and the most that waited, so a user can see how near a burst came to the limit."""
    path = data_dir / "s1-mschapv2-mppe128-inside.pcap"
    end: list[dict[str, Any]] = []
    got = live(veth, path, pptp_frames(path), "-B", "4096", "--queue", "16", end_line=end)
    assert [t["phase"] for t in got] == [t["phase"] for t in offline(path)]
    buffers = end[0]["buffers"]
    assert buffers["ring_bytes"] == 4096 << 10 and buffers["queue_limit"] == 16 << 20
    assert 0 < buffers["queue_peak"] <= 16 << 20



def test_started_while_a_tunnel_is_up(veth: tuple[str, str, str, str], data_dir: Path) -> None:
    """pptptop started on a gateway while a session is in its data phase: the session appears at once as
    joined, and ends closed with no error, as one tunnel (issue 16: never invent a failure)."""
    tx, rx, a, b = veth
    path = data_dir / "s1-mschapv2-mppe128-inside.pcap"  # 15 s at its own pace: handshake in the first 1.3 s
    replay = subprocess.Popen(["ip", "netns", "exec", tx, "tcpreplay", "-i", a, str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cap = None
    try:
        time.sleep(4.0)  # the tunnel is carrying data now
        cap = subprocess.Popen(["ip", "netns", "exec", rx, sys.executable, "-m", "pptptop", "-i", b, "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        wait_bound(rx, cap)
        started = time.monotonic()
        assert cap.stdout is not None
        first = json.loads(cap.stdout.readline())
        seen_after = time.monotonic() - started
        replay.wait(timeout=60)
        time.sleep(1.0)
        cap.send_signal(signal.SIGTERM)
        out, err = cap.communicate(timeout=180)
    finally:
        for p in (replay, cap):
            if p is not None and p.poll() is None:
                p.kill()
    assert cap.returncode == 0, err
    lines = [first, *(json.loads(x) for x in out.splitlines() if x.strip())]
    assert first["event"] == "tunnel-new" and seen_after < 5.0  # LCP echoes every few seconds, GRE data at once
    ended = [x["tunnel"] for x in lines if x.get("event") == "ended"]
    assert len(ended) == 1, [(x.get("event"), x.get("tunnel", {}).get("id"), x.get("phase"), x.get("into"))
                             for x in lines]
    t = ended[0]
    assert t["joined"] is True and t["phase"] == "closed" and t["failed_in"] is None
    assert t["control_seen"] is True and t["server"]["port"] == 1723 and t["client"]["ip"] == "10.0.0.2"
    assert t["ccp"]["mppe"] is True and t["auth"]["method"] is None
    assert not [x for x in lines if x.get("event") == "finding" and x.get("severity") == "error"]


def test_a_reconnect_storm_live(veth: tuple[str, str, str, str], tmp_path: Path) -> None:
    """After a link flap thousands of clients reconnect at once (issue 23): 5,000 complete short sessions'
    handshakes and teardowns, 500 under way at a time, replayed over veth within 10 s. No frame is dropped
    by the kernel while the engine works through them, and every session ends closed, as offline."""
    from pptptop import sources
    from pptptop.bench import generate_storm

    path = tmp_path / "storm.pcap"
    generate_storm(path, sessions=5000, concurrent=500, data=0)
    # each session repeats the template's two ARP frames, which the default capture filter leaves out
    sendable = sum(1 for f in sources.open_file(str(path)) if f.data[12:14] == b"\x08\x00")
    end: list[dict[str, Any]] = []
    ended = live(veth, path, sendable, end_line=end, pps=sendable // 10)
    assert end[0]["frames"] == sendable and end[0]["kernel_drops"] == 0
    assert len(ended) == 5000
    assert {t["phase"] for t in ended} == {"closed"}
    assert len({(t["client"]["ip"], t["client"]["call_id"]) for t in ended}) == 5000
