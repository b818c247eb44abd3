"""A real Prometheus (Debian's ``prometheus``) for the tests: started on a free loopback port with a
one-second scrape of one target, queried over its HTTP API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Prometheus:
    def __init__(self, tmp: Path, target: str) -> None:
        cfg = tmp / "prometheus.yml"
        cfg.write_text(f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n"
                       f"scrape_configs:\n  - job_name: pptptop\n    static_configs:\n"
                       f"      - targets: ['{target}']\n")
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address={self.url[7:]}"],
            stdout=subprocess.DEVNULL, stderr=(tmp / "prometheus.log").open("w"))

    def query(self, expr: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.query(expr)
                if got:
                    return got
            except OSError:
                pass  # not listening yet
            assert time.monotonic() < deadline and self.proc.poll() is None, f"no {expr}"
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def json_doc(capture: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "pptptop", "-r", str(capture), "--json"], capture_output=True,
                         text=True, check=True).stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def every_tunnel(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Tunnels and their folded NAT legs: each is a tunnel of the tracker."""
    return [x for t in doc["tunnels"] for x in (t, *t.get("legs", []))]


def assert_agrees(prom: Prometheus, tunnels: list[dict[str, Any]]) -> Counter[str]:
    """Prometheus's tunnels by phase, failures by code and standing findings are the --json document's
    ``tunnels``; returns the failures by code."""
    phases = prom.wait_for("pptptop_tunnels > 0")
    assert {r["metric"]["phase"]: int(r["value"][1]) for r in phases} == Counter(t["phase"] for t in tunnels)
    errors = Counter(f["code"] for t in tunnels for f in t["diagnosis"]
                     if f["severity"] == "error" and not f["provisional"])
    failed = prom.query("sum by (code) (pptptop_tunnel_failures_total)"
                        " - sum by (code) (pptptop_findings_withdrawn_total{severity=\"error\"} or"
                        " 0 * pptptop_tunnel_failures_total)")
    assert {r["metric"]["code"]: int(float(r["value"][1])) for r in failed if float(r["value"][1])} == errors
    standing = prom.query("pptptop_findings_standing")
    assert Counter({(r["metric"]["code"], r["metric"]["severity"]): int(r["value"][1]) for r in standing}) == \
        Counter((f["code"], f["severity"]) for t in tunnels for f in t["diagnosis"])
    return errors
