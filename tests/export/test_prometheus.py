"""A real Prometheus (Debian's ``prometheus``) scrapes ``pptptop --headless -r FILE --metrics`` on 127.0.0.1;
its HTTP API then says what the --json document says: failures by code and tunnels by phase."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_metrics import Served, every_tunnel, json_doc

DATA = Path(__file__).resolve().parent.parent / "data"
#: a failed login and a tunnel whose GRE never came through: failures of two causes
CAPTURES = ["s2-mschapv2-wrong-password-both.pcapng", "s3-gre-blocked-both.pcapng"]

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="prometheus is not installed (apt-get install prometheus)")


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


@pytest.fixture
def prom_and_pptptop(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Prometheus, Served]]:
    s = Served(DATA / request.param)
    p = Prometheus(tmp_path, s.url.split("/", 1)[0])
    try:
        yield p, s
    finally:
        p.stop()
        if s.proc.poll() is None:
            s.stop()


@pytest.mark.parametrize("prom_and_pptptop", CAPTURES, indirect=True)
def test_prometheus_sees_what_the_json_document_says(prom_and_pptptop: tuple[Prometheus, Served]) -> None:
    prom, served = prom_and_pptptop
    prom.wait_for('up{job="pptptop"} == 1')
    tunnels = every_tunnel(json_doc(Path(served.proc.args[4])))  # type: ignore[index]
    phases = prom.wait_for("pptptop_tunnels > 0")
    assert {r["metric"]["phase"]: int(r["value"][1]) for r in phases} == Counter(t["phase"] for t in tunnels)
    errors = Counter(f["code"] for t in tunnels for f in t["diagnosis"]
                     if f["severity"] == "error" and not f["provisional"])
    assert errors
    failed = prom.query("sum by (code) (pptptop_tunnel_failures_total)"
                        " - sum by (code) (pptptop_findings_withdrawn_total{severity=\"error\"} or"
                        " 0 * pptptop_tunnel_failures_total)")
    assert {r["metric"]["code"]: int(float(r["value"][1])) for r in failed if float(r["value"][1])} == errors
    standing = prom.query("pptptop_findings_standing")
    assert Counter({(r["metric"]["code"], r["metric"]["severity"]): int(r["value"][1]) for r in standing}) == \
        Counter((f["code"], f["severity"]) for t in tunnels for f in t["diagnosis"])
    assert served.stop() == 0
