"""--metrics: the Prometheus endpoint after a lab capture, scraped over loopback, against the --json document."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_server import every_tunnel, json_doc
from scapy.layers.inet import IP
from scapy.layers.l2 import GRE_PPTP, Ether
from scapy.layers.ppp import PPP, PPP_LCP_Configure
from scapy.utils import wrpcap

from pptptop import diagnose as diagmod
from pptptop.export.metrics import Metrics
from pptptop.pipeline import Pipeline
from pptptop.sources import open_file
from pptptop.track.tracker import Tracker

DATA = Path(__file__).resolve().parent.parent / "data"
CAPTURES = [
    "s1-mschapv2-mppe128-both.pcapng",  # up, data, LCP echoes
    "s2-mschapv2-wrong-password-both.pcapng",  # auth-failed
    "s3-gre-blocked-both.pcapng",
    "s7-echo-timeout-outside.pcap",
]


class Served:
    """``pptptop -r FILE --headless --metrics 127.0.0.1:0``, running until SIGTERM."""

    def __init__(self, capture: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pptptop", "-r", str(capture), "--headless", "--metrics", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.url = ""
        self.lines: list[str] = []
        for line in self.proc.stderr:
            self.lines.append(line)
            if "until SIGTERM" in line:  # the whole file is in the numbers
                self.url = line.split("http://", 1)[1].split()[0]
                break
        assert self.url, "".join(self.lines)

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://{self.url}", timeout=10) as r:
            text: str = r.read().decode()
            return text

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    s = Served(DATA / request.param)
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by its name (``pptptop_tunnel_failures_total``), as prometheus_client parses them."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


@pytest.mark.parametrize("served", CAPTURES, indirect=True)
def test_scrape_equals_the_json_document(served: Served) -> None:
    doc = json_doc(DATA / served.proc.args[4])  # type: ignore[index]
    m = samples(served.scrape())
    tunnels = every_tunnel(doc)
    assert tunnels
    phases = Counter(t["phase"] for t in tunnels)
    assert {lab["phase"]: v for lab, v in m["pptptop_tunnels"] if v} == phases
    errors = Counter(f["code"] for t in tunnels for f in t["diagnosis"]
                     if f["severity"] == "error" and not f["provisional"])
    failed = Counter({lab["code"]: v for lab, v in m.get("pptptop_tunnel_failures_total", [])})
    failed.subtract({lab["code"]: v for lab, v in m.get("pptptop_findings_withdrawn_total", [])
                     if lab["severity"] == "error"})
    assert +failed == errors
    standing = Counter((f["code"], f["severity"]) for t in tunnels for f in t["diagnosis"])
    assert {(lab["code"], lab["severity"]): v for lab, v in m.get("pptptop_findings_standing", [])} == standing
    src = doc["source"]
    assert m["pptptop_capture_frames_total"] == [({}, src["frames"])]
    assert m["pptptop_tunnels_created_total"] == [({}, src["tunnels_created"])]
    assert {lab["code"]: v for lab, v in m.get("pptptop_malformed_total", [])} == src["malformed_by_code"]
    for fld in ("packets", "bytes", "lost", "reordered"):
        want = {d: sum(t["traffic" if fld in ("packets", "bytes") else "gre"][d][fld] for t in tunnels)
                for d in ("to_server", "to_client")}
        assert {lab["direction"]: v for lab, v in m[f"pptptop_gre_{fld}_total"]} == want
    replies = {p: sum(t["echo"][p]["replies"] for t in tunnels) for p in ("pptp", "lcp")}
    rtt = {lab["protocol"]: v for lab, v in m["pptptop_echo_rtt_seconds_count"]}
    assert rtt["lcp"] == replies["lcp"]
    assert rtt["pptp"] <= replies["pptp"]  # a control connection's echo counts once, in each of its calls
    misses = {lab["protocol"]: v for lab, v in m["pptptop_echo_misses_total"]}
    assert misses["lcp"] == sum(t["echo"]["lcp"]["misses"] for t in tunnels)
    up = sum(1 for t in tunnels if any(p["phase"] == "data" for p in t["phases"])
             and not t["joined"] and t["phases"][0]["phase"] == "tcp")
    assert m["pptptop_handshake_duration_seconds_count"] == [({}, up)]
    assert served.stop() == 0  # SIGTERM after the file: a clean exit


@pytest.mark.parametrize("served", ["s1-mschapv2-mppe128-both.pcapng"], indirect=True)
def test_handshake_and_echo_histograms_have_values(served: Served) -> None:
    m = samples(served.scrape())
    (_, total), = m["pptptop_handshake_duration_seconds_count"]
    (_, seconds), = m["pptptop_handshake_duration_seconds_sum"]
    assert total >= 1 and 0 < seconds / total < 30
    lcp = [v for lab, v in m["pptptop_echo_rtt_seconds_sum"] if lab["protocol"] == "lcp"]
    assert lcp and lcp[0] > 0
    assert served.stop() == 0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
@pytest.mark.parametrize("served", ["s2-mschapv2-wrong-password-both.pcapng"], indirect=True)
def test_promtool_accepts_the_exposition(served: Served) -> None:
    text = served.scrape()
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    served.stop()


def bogus_call_ids(path: Path, n: int) -> Path:
    """GRE frames with ``n`` call IDs no control connection announced, each from its own address and sent twice
    (sequence numbers 1 and 2: a session, not a stray packet): each is a GRE-only tunnel."""
    frames = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
              / IP(src=f"10.{i >> 8 & 0xFF}.{i & 0xFF}.1", dst="192.0.2.2", proto=47)
              / GRE_PPTP(call_id=i, seqnum_present=1, sequence_number=seq) / PPP(proto=0xC021)
              / PPP_LCP_Configure(code=1, id=1) for i in range(n) for seq in (1, 2)]
    wrpcap(str(path), frames)
    return path


def collect(path: Path, cap: int) -> tuple[Tracker, dict[str, list[tuple[dict[str, str], float]]]]:
    tracker = Tracker()
    diagnoser = diagmod.Diagnoser().attach(tracker)
    pipeline = Pipeline(open_file(str(path)), tracker)
    m = Metrics(tracker, lock=pipeline.lock, per_tunnel=True, tunnel_cap=cap).attach(tracker, diagnoser)
    pipeline.run()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in m.registry.collect():
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return tracker, out


def test_a_flood_of_call_ids_stays_under_the_cap(tmp_path: Path) -> None:
    """700 bogus call IDs, 700 tunnels: 500 with their own series, the other 200 summed as tunnel="other"."""
    tracker, m = collect(bogus_call_ids(tmp_path / "flood.pcap", 700), 500)
    assert len(tracker.tunnels) == 700
    info = m["pptptop_tunnel_info"]
    assert len(info) == 501
    assert [v for lab, v in info if lab["tunnel"] == "other"] == [200]
    packets = m["pptptop_tunnel_gre_packets_total"]
    assert len(packets) == 2 * 501
    assert sum(v for _, v in packets) == 2 * 700  # nothing lost by the folding
    aggregate = sum(len(v) for k, v in m.items() if not k.startswith("pptptop_tunnel_"))
    _, small = collect(bogus_call_ids(tmp_path / "few.pcap", 3), 500)
    assert aggregate == sum(len(v) for k, v in small.items() if not k.startswith("pptptop_tunnel_"))


def test_a_small_cap_folds_the_rest(tmp_path: Path) -> None:
    _, m = collect(bogus_call_ids(tmp_path / "flood.pcap", 30), 10)
    names = {lab["tunnel"] for lab, _ in m["pptptop_tunnel_info"]}
    assert len(names) == 11 and "other" in names


def test_per_tunnel_series_are_opt_in(tmp_path: Path) -> None:
    tracker = Tracker()
    pipeline = Pipeline(open_file(str(bogus_call_ids(tmp_path / "f.pcap", 5))), tracker)
    m = Metrics(tracker, lock=pipeline.lock).attach(tracker)
    pipeline.run()
    assert not [f for f in m.registry.collect() if f.name.startswith("pptptop_tunnel_")
                and f.name != "pptptop_tunnel_failures"]


def test_usage_errors() -> None:
    for argv, said in ((["--metrics", "x:y"], "--metrics"), (["--metrics-per-tunnel"], "--metrics-per-tunnel"),
                       (["--metrics", "70000"], "out of range")):
        r = subprocess.run([sys.executable, "-m", "pptptop", "-r", str(DATA / CAPTURES[1]), "--headless", *argv],
                           capture_output=True, text=True)
        assert r.returncode == 64 and said in r.stderr


def test_a_taken_port_is_one_sentence(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "pptptop", "-r", str(DATA / CAPTURES[1]), "--headless",
                            "--metrics", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 69 and "cannot listen" in r.stderr and "Traceback" not in r.stderr


def test_wire_strings_reach_the_exposition_escaped(tmp_path: Path) -> None:
    """A user name carrying ESC[2J, an OSC 52 clipboard write and CR/LF: ``curl …/metrics`` must not put them on
    a terminal, so the label holds their escapes."""
    from hostile_capture import RAW_CONTROLS, write_hostile

    s = Served(write_hostile(tmp_path / "hostile.pcap"), "--metrics-per-tunnel")
    try:
        text = s.scrape()
    finally:
        s.stop()
    users = [lab["user"] for lab, _ in samples(text)["pptptop_tunnel_info"]]
    assert any("\\x1b]52;c;cHduZWQ=\\x07" in u for u in users)
    assert not any(c in text for c in RAW_CONTROLS)
