"""contrib/alerts.yml and contrib/grafana-dashboard.json: valid, firing on the right series, naming real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_metrics import Served

ROOT = Path(__file__).resolve().parent.parent.parent
ALERTS = ROOT / "contrib" / "alerts.yml"
DASHBOARD = ROOT / "contrib" / "grafana-dashboard.json"
DATA = ROOT / "tests" / "data"
NAME = re.compile(r"\bpptptop_[a-z_]+\b")
SUFFIXES = ("_bucket", "_sum", "_count")
promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                              reason="promtool is not installed (apt-get install prometheus)")

RULE_TESTS = Path(__file__).resolve().parent / "alerts_test.yml"


@promtool
def test_promtool_checks_the_rules() -> None:
    r = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@promtool
def test_the_rules_fire_on_the_right_series() -> None:
    """A new cause failing (auth-failed) raises PptpFailuresNew, not the spike rule (no baseline to triple); a
    cause failing five times its usual rate (lcp-failed) raises the spike; a steady one (gre-blocked) raises
    nothing; kernel drops and a silent gateway do; no recording error, no alert."""
    r = subprocess.run(["promtool", "test", "rules", str(RULE_TESTS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def exprs() -> list[str]:
    d = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in d["panels"] for t in p["targets"]]


def test_dashboard_panels() -> None:
    d = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"] for p in d["panels"]).lower()
    for what in ("tunnels up", "failures by cause", "handshake", "echo rtt", "loss", "drops"):
        assert what in titles
    assert {v["name"] for v in d["templating"]["list"]} == {"datasource", "instance"}
    assert len({p["id"] for p in d["panels"]}) == len(d["panels"])


def test_every_metric_named_is_served(tmp_path: Path) -> None:
    """The names in the dashboard and the alerts are in a real exposition (with a recording and --events)."""
    s = Served(DATA / "s1-mschapv2-mppe128-both.pcapng", "-w", str(tmp_path / "r.pcapng"),
               "--events", str(tmp_path / "e.jsonl"))
    try:
        text = s.scrape()
    finally:
        s.stop()
    served = set(NAME.findall(text))
    named = set(NAME.findall(" ".join(exprs()))) | set(NAME.findall(ALERTS.read_text()))
    assert named and named <= served, named - served
    documented = set(NAME.findall((ROOT / "docs" / "metrics.md").read_text()))
    families = {next((n.removesuffix(x) for x in SUFFIXES if n.endswith(x)), n) for n in served
                if not n.endswith("_created")}
    assert families - documented == set()  # docs/metrics.md lists every metric
