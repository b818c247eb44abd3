"""--events DEST: JSON lines with "schema": 1 to a file, syslog, UDP and TCP receivers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pptptop.export.events import EventLog, FileSink, TcpSink

DATA = Path(__file__).resolve().parent.parent / "data"
CAPTURE = DATA / "s2-mschapv2-wrong-password-both.pcapng"
RFC5424 = re.compile(rb"^<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ pptptop \d+ event - (\{.*\})$")


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pptptop", *argv], capture_output=True, text=True, timeout=timeout)


def records(lines: list[bytes] | list[str]) -> list[dict[str, Any]]:
    return [json.loads(x) for x in lines]


def file_events(tmp_path: Path, capture: Path = CAPTURE) -> list[dict[str, Any]]:
    out = tmp_path / "events.jsonl"
    r = run("-r", str(capture), "--headless", "--events", str(out))
    assert r.returncode == 0, r.stderr
    return records(out.read_text().splitlines())


def test_file_holds_the_stream_of_the_capture(tmp_path: Path) -> None:
    evs = file_events(tmp_path)
    assert all(e["schema"] == 1 and e["host"] for e in evs)
    kinds = [e["event"] for e in evs]
    assert kinds[0] == "tunnel-new" and kinds[-1] == "capture-end"
    assert {"phase", "finding", "ended"} <= set(kinds)
    doc = json.loads(run("-r", str(CAPTURE), "--json").stdout)
    tunnels = [x for t in doc["tunnels"] for x in (t, *t.get("legs", []))]
    raised = sorted((e["tunnel"]["id"], e["finding"]["code"]) for e in evs if e["event"] == "finding"
                    and not e["finding"]["provisional"])
    assert raised == sorted((t["id"], f["code"]) for t in tunnels for f in t["diagnosis"])
    ended = [e for e in evs if e["event"] == "ended"]
    assert sorted(e["tunnel"]["id"] for e in ended) == sorted(t["id"] for t in tunnels)
    assert all(e["tunnel"]["phase"] == "failed" and e["tunnel"]["diagnosis"] for e in ended)  # the summary
    assert evs[-1]["frames"] == doc["source"]["frames"] and evs[-1]["events_dropped"] == 0


def test_the_file_is_appended_to(tmp_path: Path) -> None:
    out = tmp_path / "e.jsonl"
    for _ in range(2):
        assert run("-r", str(CAPTURE), "--headless", "--events", str(out)).returncode == 0
    kinds = [e["event"] for e in records(out.read_text().splitlines())]
    assert kinds.count("capture-end") == 2


def test_rotation_keeps_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = FileSink(str(path), rotate_bytes=1000, keep=3)
    lines = [(json.dumps({"n": i, "pad": "x" * 90}) + "\n").encode() for i in range(60)]
    for line in lines:
        sink.write(line, "info")
    sink.close()
    files = [path, *(Path(f"{path}.{i}") for i in (1, 2, 3))]
    assert all(f.exists() for f in files) and not Path(f"{path}.4").exists()
    assert all(f.stat().st_size <= 1000 for f in files)
    kept = [json.loads(x)["n"] for f in reversed(files) for x in f.read_text().splitlines()]
    assert kept == list(range(60 - len(kept), 60))  # the newest, in order, none cut


def test_killed_mid_stream_leaves_only_whole_lines(tmp_path: Path) -> None:
    """SIGKILL while a flood's events are being written: every line in the file is whole JSON."""
    from test_metrics import bogus_call_ids

    flood = bogus_call_ids(tmp_path / "flood.pcap", 3000)
    out = tmp_path / "k.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "pptptop", "-r", str(flood), "--headless", "--events", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 20_000):
        time.sleep(0.005)
    p.kill()
    p.wait()
    data = out.read_bytes()
    assert data and data.endswith(b"\n")
    assert all(json.loads(x)["schema"] == 1 for x in data.splitlines())


def test_sighup_reopens_the_file(tmp_path: Path) -> None:
    """logrotate renames the file and sends SIGHUP: the lines after it go to a new file at the name."""
    out = tmp_path / "h.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "pptptop", "-r", str(CAPTURE), "--headless", "--events", str(out),
                          "--metrics", "127.0.0.1:0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    for line in p.stderr:
        if "until SIGTERM" in line:
            break
    os.rename(out, tmp_path / "h.jsonl.old")
    p.send_signal(signal.SIGHUP)
    for line in p.stderr:
        if "SIGHUP" in line:
            break
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=20) == 0
    assert [e["event"] for e in records(out.read_text().splitlines())] == ["capture-end"]
    assert "capture-end" not in (tmp_path / "h.jsonl.old").read_text()


class TcpReceiver:
    """A log collector on 127.0.0.1: accepts one connection and reads lines until it closes."""

    def __init__(self, read: bool = True) -> None:
        self.srv = socket.socket()
        if not read:
            self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen()
        self.port = self.srv.getsockname()[1]
        self.data = b""
        self.read = read
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        c, _ = self.srv.accept()
        self.conns.append(c)
        if not self.read:
            return  # holds the connection open, never reads
        while chunk := c.recv(65536):
            self.data += chunk

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.srv.close()


def test_tcp_receiver_gets_every_event_in_order(tmp_path: Path) -> None:
    want = file_events(tmp_path)
    rx = TcpReceiver()
    r = run("-r", str(CAPTURE), "--headless", "--events", f"tcp://127.0.0.1:{rx.port}")
    assert r.returncode == 0, r.stderr
    rx.thread.join(10)
    got = records(rx.data.splitlines())
    rx.close()
    assert [(e["event"], e["time"]) for e in got] == [(e["event"], e["time"]) for e in want]
    assert got[:-1] == want[:-1]


def test_udp_receiver_gets_every_event_in_order(tmp_path: Path) -> None:
    want = file_events(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rx.bind(("127.0.0.1", 0))
        r = run("-r", str(CAPTURE), "--headless", "--events", f"udp://127.0.0.1:{rx.getsockname()[1]}")
        assert r.returncode == 0, r.stderr
        rx.settimeout(2)
        got = []
        while len(got) < len(want):
            got.append(json.loads(rx.recv(65536)))
    assert [(e["event"], e["time"]) for e in got] == [(e["event"], e["time"]) for e in want]


def test_syslog_receiver_gets_rfc5424(tmp_path: Path) -> None:
    want = file_events(tmp_path)
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rx.bind(path)
        rx.settimeout(10)
        msgs: list[bytes] = []
        reader = threading.Thread(target=lambda: msgs.extend(rx.recv(65536) for _ in want), daemon=True)
        reader.start()  # a syslog daemon reads as messages come (a datagram socket queues only a few)
        r = run("-r", str(CAPTURE), "--headless", "--events", f"syslog:{path}")
        assert r.returncode == 0, r.stderr
        reader.join(10)
        assert len(msgs) == len(want)
    parsed = [RFC5424.match(m) for m in msgs]
    assert all(parsed)
    got = [json.loads(m.group(2)) for m in parsed if m]
    assert [(e["event"], e["time"]) for e in got] == [(e["event"], e["time"]) for e in want]
    pri = {e["event"] + ":" + e.get("finding", {}).get("severity", ""): int(m.group(1))
           for e, m in zip(got, parsed, strict=True) if m}
    assert pri["finding:error"] == 3 * 8 + 3 and pri["tunnel-new:"] == 3 * 8 + 6  # daemon.err, daemon.info


def test_a_receiver_that_stops_reading_never_blocks_the_capture() -> None:
    """The writer is stuck in send() to a collector that reads nothing: put() stays quick, the rest is dropped."""
    rx = TcpReceiver(read=False)
    log = EventLog(TcpSink("127.0.0.1", rx.port), maxlen=100)
    pad = "x" * 4000
    t0 = time.perf_counter()
    for i in range(20_000):  # 80 MB: more than any socket buffer
        log.put({"event": "test", "n": i, "pad": pad})
    spent = time.perf_counter() - t0
    assert spent < 5.0  # the serialisation alone; nothing waited for the collector
    assert log.dropped > 10_000
    t0 = time.perf_counter()
    log.close(timeout=1.0)
    assert time.perf_counter() - t0 < 3.0
    rx.close()


def test_a_collector_that_stops_reading_does_not_hold_the_exit(tmp_path: Path) -> None:
    from test_metrics import bogus_call_ids

    flood = bogus_call_ids(tmp_path / "flood.pcap", 3000)
    rx = TcpReceiver(read=False)
    t0 = time.monotonic()
    r = run("-r", str(flood), "--headless", "--events", f"tcp://127.0.0.1:{rx.port}", timeout=60)
    spent = time.monotonic() - t0
    rx.close()
    assert r.returncode == 0
    assert spent < 30


def test_a_gone_collector_is_counted_not_fatal(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run("-r", str(CAPTURE), "--headless", "--events", f"tcp://127.0.0.1:{port}")
    assert r.returncode == 0
    assert "events were dropped" in r.stderr


@pytest.mark.parametrize(("dest", "said"), [("http://x", "give a FILE"), ("tcp://nohost", "HOST:PORT"),
                                            ("udp://h:99999", "HOST:PORT")])
def test_bad_destinations_are_refused(dest: str, said: str) -> None:
    r = run("-r", str(CAPTURE), "--headless", "--events", dest)
    assert r.returncode == 64 and said in r.stderr


def test_stdout_and_json_do_not_share(tmp_path: Path) -> None:
    r = run("-r", str(CAPTURE), "--json", "--events", "-")
    assert r.returncode == 64 and "standard output" in r.stderr


def test_stdout_is_refused_under_the_ui() -> None:
    r = run("-r", str(CAPTURE), "--events", "-")
    assert r.returncode == 64 and "--headless" in r.stderr


def test_stdout_destination(tmp_path: Path) -> None:
    r = run("-r", str(CAPTURE), "--headless", "--events", "-")
    assert r.returncode == 0
    assert [e["event"] for e in records(r.stdout.splitlines())][-1] == "capture-end"


def test_a_failed_reopen_or_rotation_keeps_writing_to_the_old_file(tmp_path: Path) -> None:
    """After a privilege drop the name may not be creatable any more: the lines go on in the file open."""
    d = tmp_path / "d"
    d.mkdir()
    sink = FileSink(str(d / "e.jsonl"), rotate_bytes=100)
    sink.write(b'{"n": 0}\n', "info")
    (d / "e.jsonl").rename(tmp_path / "moved.jsonl")
    d.rmdir()  # nowhere to create the name again
    with pytest.raises(OSError):
        sink.reopen()
    for i in range(1, 30):
        sink.write(f'{{"n": {i}}}\n'.encode(), "info")
    assert sink.problem.startswith("cannot rotate")
    sink.close()
    assert [json.loads(x)["n"] for x in (tmp_path / "moved.jsonl").read_text().splitlines()] == list(range(30))
