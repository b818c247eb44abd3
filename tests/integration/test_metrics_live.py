"""A real Prometheus scrapes ``pptptop --headless -i VETH --metrics`` while a lab capture is replayed live
into the veth pair: its HTTP API then says what the --json document of the same file says.

The replaying end of the pair lives in a network namespace the test creates; pptptop, its metrics
endpoint and Prometheus stay on this host's loopback, as on a gateway.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_server import Prometheus, assert_agrees, every_tunnel, free_port, json_doc
from test_live_cli import pptp_frames, sh

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("prometheus") is None,
                       reason="prometheus is not installed (apt-get install prometheus)"),
    pytest.mark.skipif(shutil.which("tcpreplay") is None,
                       reason="tcpreplay is not installed (apt-get install tcpreplay)"),
]

#: a failed login, MPPE refused by the client, and a healthy session with its teardown: failures of two
#: causes and a closed tunnel
CAPTURES = ["s2-mschapv2-wrong-password-inside.pcap", "s4-mppe-refused-by-client-inside.pcap",
            "s1-mschapv2-mppe128-inside.pcap"]


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str]]:
    """(namespace, replaying end inside it, capturing end on this host)."""
    tag = uuid.uuid4().hex[:6]
    ns, a, b = f"pmx{tag}", f"pma{tag}", f"pmb{tag}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", b, "type", "veth", "peer", "name", a, "netns", ns)
        subprocess.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{b}.disable_ipv6=1"], capture_output=True)
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{a}.disable_ipv6=1"],
                       capture_output=True)
        sh("ip", "link", "set", b, "up")
        sh("ip", "-n", ns, "link", "set", a, "up")
        yield ns, a, b
    finally:
        subprocess.run(["ip", "link", "del", b], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.mark.parametrize("name", CAPTURES)
def test_prometheus_sees_the_live_capture_as_the_json_document(veth: tuple[str, str, str], data_dir: Path,
                                                                tmp_path: Path, name: str) -> None:
    ns, a, b = veth
    path = data_dir / name
    tunnels = every_tunnel(json_doc(path))
    port = free_port()
    cap = subprocess.Popen([sys.executable, "-m", "pptptop", "--headless", "-i", b, "--metrics", f"127.0.0.1:{port}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    prom = Prometheus(tmp_path, f"127.0.0.1:{port}")
    try:
        assert cap.stderr is not None
        for line in cap.stderr:  # the endpoint is up once it says so; the capture socket is open before it
            if "serving metrics" in line:
                break
        else:
            raise AssertionError(f"pptptop ended: {cap.wait()}")
        prom.wait_for('up{job="pptptop"} == 1')
        sh("ip", "netns", "exec", ns, "tcpreplay", "--topspeed", "-i", a, str(path))
        prom.wait_for(f"pptptop_capture_frames_total >= {pptp_frames(path)}")
        drops = prom.query("sum(pptptop_capture_kernel_drops_total)")
        assert [float(r["value"][1]) for r in drops] == [0.0]
        deadline = time.monotonic() + 15
        while True:  # a scrape may have been taken while the last batch was being tracked
            try:
                assert_agrees(prom, tunnels)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        cap.send_signal(signal.SIGTERM)
        assert cap.wait(timeout=30) == 0
    finally:
        prom.stop()
        if cap.poll() is None:
            cap.kill()
            cap.wait()
