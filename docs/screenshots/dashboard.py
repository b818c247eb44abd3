"""Regenerate docs/screenshots/dashboard.png: ``sudo python docs/screenshots/dashboard.py [MINUTES]``.

A lab replay feeds the dashboard, as docs/fleet.md describes it: ``pptptop --headless -i VETH --metrics``
captures on one end of a veth pair while the lab captures in tests/data are replayed into the other at
their own pace, again and again, each round from other client addresses (so that each replay is a new
session, as a real server's clients are). A real Prometheus (Debian's ``prometheus``) scrapes it every
second. The panels of contrib/grafana-dashboard.json are then drawn by Prometheus's own graph page, each
panel's first query as the dashboard has it (``$instance`` is every instance, ``$__rate_interval`` 15 s),
in headless Chromium, and saved as one PNG.

Grafana itself is not packaged by Debian; the JSON imports into Grafana 9 or later unchanged.
Needs root (a network namespace), tcpreplay, prometheus, chromium and chromium-driver, and selenium.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap, wrpcap

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from prometheus_server import Prometheus, free_port  # noqa: E402

DATA = ROOT / "tests" / "data"
#: a healthy session with echoes, two clients behind one NAT, a wrong password, GRE blocked, MPPE refused,
#: PAP in clear, an echo timeout: what a server's day holds
MIX = ["s1-mschapv2-mppe128-inside.pcap", "s5-two-clients-same-nat-inside.pcap",
       "s2-mschapv2-wrong-password-inside.pcap", "s3-gre-blocked-inside.pcap",
       "s4-mppe-refused-by-client-inside.pcap", "s6-pap-no-encryption-inside.pcap",
       "s7-echo-timeout-inside.pcap"]
PANELS = 6  # the first six panels: tunnels up, by phase, failures by cause, handshake time, echo RTT, timeouts


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def moved(src: Path, dst: Path, round_: int, n: int) -> None:
    """``src`` with its 10.0.0.x clients moved to 10.<round>.<n>.x, checksums made again: every capture of
    every round has clients of its own (the lab's all start from 10.0.0.2, with the same call IDs)."""
    pkts = rdpcap(str(src))
    for p in pkts:
        if IP in p:
            ip = p[IP]
            for f in ("src", "dst"):
                a = getattr(ip, f)
                if a.startswith("10.0.0."):
                    setattr(ip, f, f"10.{round_ + 1}.{n}.{a.rsplit('.', 1)[1]}")
            del ip.chksum
            if TCP in p:
                del p[TCP].chksum
    wrpcap(str(dst), pkts)


def panel_queries() -> list[tuple[str, str]]:
    dash = json.loads((ROOT / "contrib" / "grafana-dashboard.json").read_text())
    out = []
    for p in dash["panels"][:PANELS]:
        expr = p["targets"][0]["expr"].replace('=~"$instance"', '=~".*"').replace("$__rate_interval", "15s")
        out.append((p["title"], expr))
    return out


def screenshot(url: str, panels: list[tuple[str, str]], out: Path, minutes: float) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    params: dict[str, str] = {}
    for i, (_, expr) in enumerate(panels):
        params.update({f"g{i}.expr": expr, f"g{i}.tab": "0", f"g{i}.range_input": f"{max(1, round(minutes))}m",
                       f"g{i}.stacked": "0"})
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", f"--window-size=1400,{800 * len(panels) + 200}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"{url}/classic/graph?{urllib.parse.urlencode(params)}")
        time.sleep(6)  # every panel draws its range
        driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
        time.sleep(0.5)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    tag = uuid.uuid4().hex[:6]
    ns, a, b = f"dbx{tag}", f"dba{tag}", f"dbb{tag}"
    work = Path(tempfile.mkdtemp(prefix="pptptop-dashboard-"))
    sh("ip", "netns", "add", ns)
    procs: list[subprocess.Popen[bytes]] = []
    prom = None
    try:
        sh("ip", "link", "add", b, "type", "veth", "peer", "name", a, "netns", ns)
        sh("ip", "link", "set", b, "up")
        sh("ip", "-n", ns, "link", "set", a, "up")
        port = free_port()
        cap = subprocess.Popen([sys.executable, "-m", "pptptop", "--headless", "-i", b, "--metrics",
                                f"127.0.0.1:{port}"], cwd=ROOT)
        procs.append(cap)
        prom = Prometheus(work, f"127.0.0.1:{port}")
        prom.wait_for('up{job="pptptop"} == 1')
        end = time.monotonic() + minutes * 60
        round_ = 0
        while time.monotonic() < end:
            replays = []
            for n, name in enumerate(MIX):
                f = work / f"{round_}-{name}"
                moved(DATA / name, f, round_, n)
                replays.append(subprocess.Popen(["ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", a, str(f)],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for r in replays:
                r.wait()
            round_ += 1
            time.sleep(2)
        time.sleep(20)  # the last sessions' timeouts, and a few more scrapes
        screenshot(prom.url, panel_queries(), HERE / "dashboard.png", minutes)
        print(f"{round_} rounds of {len(MIX)} captures; wrote {HERE / 'dashboard.png'}")
    finally:
        if prom is not None:
            prom.stop()
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
        subprocess.run(["ip", "link", "del", b], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    main()
