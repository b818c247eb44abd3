"""--headless as systemd runs it: the unit checked, and its ExecStart line run on a pipe until SIGTERM."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pptptop.sources import open_file

ROOT = Path(__file__).resolve().parent.parent.parent
UNIT = ROOT / "contrib" / "pptptop.service"
DATA = ROOT / "tests" / "data"
CAPTURE = DATA / "s1-mschapv2-mppe128-both.pcapng"


def unit_lines() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_unit_is_unprivileged_with_two_capabilities() -> None:
    u = unit_lines()
    assert u["AmbientCapabilities"] == ["CAP_NET_RAW CAP_NET_ADMIN"]
    assert u["CapabilityBoundingSet"] == ["CAP_NET_RAW CAP_NET_ADMIN"]
    assert u["DynamicUser"] == ["yes"] and "User" not in u
    assert u["ProtectSystem"] == ["strict"] and u["StateDirectory"] == ["pptptop"]
    assert u["NoNewPrivileges"] == ["yes"]
    assert "--headless" in u["ExecStart"][0] and "%S/pptptop/" in u["ExecStart"][0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified with the command pointing at this interpreter (verify wants an executable that exists)."""
    text = UNIT.read_text().replace("/usr/local/bin/pptptop", f"{sys.executable} -m pptptop")
    unit = tmp_path / "pptptop.service"
    unit.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "pptptop.service" not in r.stderr, r.stderr  # unknown keys and bad values are only warned about


def frames_in(path: Path) -> int:
    src = open_file(str(path))
    try:
        return sum(1 for _ in src)
    finally:
        src.close()


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def test_execstart_until_sigterm_leaves_every_file_complete(tmp_path: Path) -> None:
    """The unit's command, with the interface replaced by a pipe that stays open (as a live link does) and
    %S by a temporary directory: SIGTERM ends it, exit 0, the recording and the events complete."""
    argv = shlex.split(unit_lines()["ExecStart"][0].replace("%S", str(tmp_path)))
    argv[:1] = [sys.executable, "-m", "pptptop"]
    i = argv.index("-i")
    argv[i:i + 2] = ["-r", "-"]
    argv[argv.index("--metrics") + 1] = "127.0.0.1:0"
    (tmp_path / "pptptop").mkdir()
    want = frames_in(CAPTURE)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False)
    assert p.stdin is not None and p.stderr is not None
    url = p.stderr.readline().decode().split("http://", 1)[1].split()[0]
    p.stdin.write(CAPTURE.read_bytes())
    p.stdin.flush()  # and left open: the capture goes on
    deadline = time.monotonic() + 30
    while scrape(f"http://{url}").get("pptptop_capture_frames_total") != want:
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 0, p.stderr.read().decode()
    assert p.stdout is not None and p.stdout.read() == b""  # headless: nothing on standard output
    recorded = sorted((tmp_path / "pptptop").glob("pptp*.pcapng"))
    assert recorded and sum(frames_in(f) for f in recorded) == want
    events = [json.loads(x) for x in (tmp_path / "pptptop" / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "capture-end" and events[-1]["frames"] == want
    assert [e["event"] for e in events].count("ended") >= 1  # the tunnels ended with the input


def test_headless_needs_no_terminal(tmp_path: Path) -> None:
    """No --json, no --report, no terminal: --headless runs and says nothing on standard output."""
    r = subprocess.run([sys.executable, "-m", "pptptop", "-r", str(CAPTURE), "--headless"], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=60, start_new_session=True)
    assert r.returncode == 0 and r.stdout == "" and "terminal" not in r.stderr


def test_sighup_reads_the_secrets_again(tmp_path: Path) -> None:
    """A new user added to --secrets is known after SIGHUP; a file gone keeps what was read, with a sentence."""
    from pptptop.cli import build_parser
    from pptptop.export import service
    from pptptop.inside import options as insideopts
    from pptptop.pipeline import Pipeline
    from pptptop.track.tracker import Tracker

    secrets = tmp_path / "chap-secrets"
    secrets.write_text('alice pptpsrv "wonderland-42" *\n')
    secrets.chmod(0o600)
    args = build_parser().parse_args(["-r", str(CAPTURE), "--headless", "--secrets", str(secrets)])
    store, _ = insideopts.load(args)
    tracker = Tracker()
    inspector = insideopts.inspector(store, tracker)
    assert inspector is not None
    said: list[str] = []
    svc = service.prepare(args, said.append)
    svc.start(Pipeline(open_file(str(CAPTURE)), tracker), None, inspector=inspector)
    assert inspector.secrets.lookup("carol", "pptpsrv") is None
    secrets.write_text('alice pptpsrv "wonderland-42" *\ncarol pptpsrv "new-one" *\n')
    svc.reload()
    assert inspector.secrets.lookup("carol", "pptpsrv") is not None
    assert said[-1] == "SIGHUP: read 2 secrets again"
    secrets.unlink()
    svc.reload()
    assert inspector.secrets.lookup("carol", "pptpsrv") is not None
    assert said[-1].startswith("SIGHUP: keeping the secrets read before: ")


@pytest.mark.root
def test_live_as_root_drops_privileges_with_the_outputs_open(tmp_path: Path) -> None:
    """Live capture as root drops privileges, which must happen while the process has one thread: the events
    file and the metrics port are opened before, their threads started after; the endpoint answers (its codecs
    were loaded as root), SIGHUP keeps the run going, SIGTERM ends it cleanly. Nothing is sent: ``lo`` is only
    listened on."""
    events = tmp_path / "e.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "pptptop", "--headless", "-i", "lo", "--metrics", "127.0.0.1:0",
                          "--events", str(events)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    line = p.stderr.readline()
    assert "serving metrics" in line, line + p.stderr.read()
    url = line.split("http://", 1)[1].split()[0]
    deadline = time.monotonic() + 20
    while True:
        try:
            got = scrape(f"http://{url}")
            break
        except OSError:
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.2)
    assert got["pptptop_capture_frames_total"] == 0
    p.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert p.poll() is None
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 0, p.stderr.read()
    last = json.loads(events.read_text().splitlines()[-1])
    assert last["event"] == "capture-end" and last["schema"] == 1


def test_prometheus_client_is_loaded_only_for_metrics(tmp_path: Path) -> None:
    """A run without --metrics never imports the exporter (it costs ~5 MB of every run's memory); one with it
    does, and serves."""
    probe = ("import runpy, sys\n"
             "sys.argv = ['pptptop'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('pptptop', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print('LOADED' if 'prometheus_client' in sys.modules else 'NOT LOADED', file=sys.stderr)\n")
    plain = subprocess.run([sys.executable, "-c", probe, "-r", str(CAPTURE), "--json"], capture_output=True,
                           text=True, timeout=120)
    assert json.loads(plain.stdout)["tunnels"]
    assert plain.stderr.strip().endswith("NOT LOADED")
    served = subprocess.Popen([sys.executable, "-c", probe, "-r", str(CAPTURE), "--headless", "--metrics", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert served.stderr is not None
        assert "serving metrics on http://127.0.0.1:" in served.stderr.readline()
        assert "the input is read" in served.stderr.readline()  # and it lingers, serving, until SIGTERM
        served.send_signal(signal.SIGTERM)
        rest = served.stderr.read()
        assert served.wait(timeout=30) == 0
    finally:
        served.kill()
    assert rest.strip().endswith("LOADED") and "NOT LOADED" not in rest
