"""``--ui-socket`` and ``--attach``: one capture, read by every attached view as the file reads.

A service reads a capture from tests/data (or a pipe the test writes) and offers its frames on a Unix
socket; attached UIs and ``--attach --json`` runs must show the tunnels ``-r FILE --json`` finds, a client
that stops reading must not hold the service up, and the socket must be the service user's alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import DATA, ServiceRun

from pptptop import diagnose
from pptptop.pipeline import Pipeline
from pptptop.sources.attach import AttachError, open_attach
from pptptop.track import nat
from pptptop.track.tracker import Tracker
from pptptop.ui.app import PptpTopApp
from pptptop.ui.screens.tunnel import TunnelScreen
from pptptop.ui.widgets.tunnel_table import TunnelTable

S5 = DATA / "s5-two-clients-same-nat-both.pcapng"
S1 = DATA / "s1-mschapv2-mppe128-both.pcapng"


def pptptop(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pptptop", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def tunnels_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["tunnels"]  # type: ignore[no-any-return]


def screen_text(app: PptpTopApp) -> str:
    """What the terminal shows, as plain text, from the compositor (as tests/ui does)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def start(service: list[ServiceRun], tmp_path: Path, *args: str) -> Path:
    sock = tmp_path / "ui.sock"
    run = ServiceRun(["--headless", "--ui-socket", str(sock), *args])
    service.append(run)
    run.wait_for(sock)
    return sock


class TestAttachedUi:
    def test_the_attached_ui_shows_the_tunnels_of_the_file(self, service: list[ServiceRun], tmp_path: Path) -> None:
        sock = start(service, tmp_path, "-r", str(S5))
        assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
        assert os.lstat(sock).st_uid == os.geteuid()
        expected = json.loads(pptptop("-r", str(S5), "--json").stdout)
        tracker = Tracker()
        nat.attach(tracker)
        diagnose.Diagnoser().attach(tracker)
        pipe = Pipeline(open_attach(str(sock)), tracker)
        app = PptpTopApp(pipe, save_dir=tmp_path / "saved", read_only="read-only")

        async def run() -> None:
            async with app.run_test(size=(140, 36), notifications=True) as pilot:
                for _ in range(200):
                    if pipe.done.is_set():
                        break
                    await pilot.pause(0.05)
                assert pipe.done.is_set()  # the service closes the stream once its input is read
                await pilot.pause(0.3)
                table = app.screen.query_one(TunnelTable)
                rows = {r.id: r for r in table.view}
                assert sorted(rows) == sorted(t["id"] for t in tunnels_of(expected))
                for t in tunnels_of(expected):
                    assert rows[t["id"]].user == t["auth"]["user"]
                    assert rows[t["id"]].phase.lower() == t["phase"].lower()
                await pilot.press("w")  # read-only: nothing is written on the service's machine
                await pilot.pause()
                assert not (tmp_path / "saved").exists() and not app.saved
                await pilot.press("space")  # nor is anything paused
                await pilot.pause(0.5)
                assert not pipe.paused.is_set()
                # on opening, then for w and for Space: each says why, in a note on the screen
                assert screen_text(app).count("Read-only") == 3
                await pilot.press("enter")
                await pilot.pause(0.3)
                assert isinstance(app.screen, TunnelScreen)
        asyncio.run(run())
        code, err = service[0].stop()
        assert code == 0, err
        assert not sock.exists()  # removed at exit

    def test_two_clients_at_once_get_the_same_as_the_file(self, service: list[ServiceRun], tmp_path: Path) -> None:
        sock = start(service, tmp_path, "-r", str(S1))
        cmd = [sys.executable, "-m", "pptptop", "--attach", str(sock), "--json"]
        clients = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [c.communicate(timeout=60) for c in clients]
        expected = json.loads(pptptop("-r", str(S1), "--json").stdout)
        for c, (out, err) in zip(clients, outs, strict=True):
            assert c.returncode == 0, err
            doc = json.loads(out)
            assert tunnels_of(doc) == tunnels_of(expected)  # times included: the same doubles travel
            assert doc["source"]["frames_read"] == expected["source"]["frames_read"]
            assert doc["source"]["name"] == str(S1)
        assert service[0].stop()[0] == 0


class TestSlowClient:
    def test_a_client_that_stops_reading_does_not_stall_the_service(self, service: list[ServiceRun],
                                                                    tmp_path: Path) -> None:
        from pptptop.bench import generate

        big = tmp_path / "big.pcap"
        frames = generate(big, packets=120_000, tunnels=20)
        sock = tmp_path / "ui.sock"
        r, w = os.pipe()
        run = ServiceRun(["--headless", "--ui-socket", str(sock), "--ui-backlog", "1", "-r", "-", "--json"], stdin=r)
        service.append(run)
        os.close(r)
        run.wait_for(sock)
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(str(sock))  # and never reads
        time.sleep(0.3)
        reader = subprocess.Popen([sys.executable, "-m", "pptptop", "--attach", str(sock), "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        with open(w, "wb") as pipe_in:
            pipe_in.write(big.read_bytes())
        out, err = reader.communicate(timeout=120)  # ends when the service has read its whole input
        assert reader.returncode == 0, err
        assert 0 < json.loads(out)["source"]["frames_read"] <= frames  # it may lose batches too: counted
        stuck.close()
        code, err = run.stop()
        assert code == 0, err
        assert json.loads(run.stdout)["source"]["frames_read"] == frames  # the capture read all of it
        lost = [line for line in err.splitlines() if "frames were not sent to it (it read too slowly)" in line]
        assert lost and f"of {frames:,} frames" in lost[-1]  # the stuck client's count, said as it left


class TestSocket:
    def test_a_planted_file_is_neither_followed_nor_replaced(self, tmp_path: Path) -> None:
        target = tmp_path / "target"
        target.write_text("keep")
        link = tmp_path / "ui.sock"
        link.symlink_to(target)
        res = pptptop("--headless", "--ui-socket", str(link), "-r", str(S1))
        assert res.returncode == 73
        assert res.stderr.count("\n") == 1 and "is not a socket left by an earlier pptptop" in res.stderr
        assert link.is_symlink() and target.read_text() == "keep"

    def test_a_stale_socket_of_ours_is_replaced(self, service: list[ServiceRun], tmp_path: Path) -> None:
        path = tmp_path / "ui.sock"
        old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old.bind(str(path))
        old.close()  # a killed run's socket: nobody listens on it
        run = ServiceRun(["--headless", "--ui-socket", str(path), "-r", str(S1)])
        service.append(run)
        deadline = time.monotonic() + 20
        while True:  # the old socket refuses until the new run has replaced it
            try:
                src = open_attach(str(path))
                break
            except AttachError:
                assert time.monotonic() < deadline and run.proc.poll() is None
                time.sleep(0.1)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        assert list(src)  # frames from the new service
        assert run.stop()[0] == 0

    def test_attach_to_nothing_is_one_line(self, tmp_path: Path) -> None:
        res = pptptop("--attach", str(tmp_path / "none.sock"), "--json")
        assert res.returncode == 69
        assert res.stderr == f"pptptop: cannot attach to {tmp_path / 'none.sock'}: no such socket (is pptptop " \
                             "--serve or --ui-socket running?)\n"

    def test_attach_to_a_socket_that_is_not_pptptop(self, tmp_path: Path) -> None:
        path = tmp_path / "other.sock"
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(path))
        srv.listen(1)
        try:
            proc = subprocess.Popen([sys.executable, "-m", "pptptop", "--attach", str(path), "--json"],
                                    stderr=subprocess.PIPE, text=True)
            conn, _ = srv.accept()
            conn.sendall(b"SSH-2.0-OpenSSH\r\n")
            conn.close()
            _, err = proc.communicate(timeout=30)
        finally:
            srv.close()
        assert proc.returncode == 69
        assert err == f"pptptop: cannot attach to {path}: it is not a pptptop UI socket\n"


class TestTerminalUiOffers:
    def test_the_terminal_ui_offers_its_capture_too(self, tmp_path: Path) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from pty_session import Terminal

        sock = tmp_path / "ui.sock"
        term = Terminal([sys.executable, "-m", "pptptop", "-r", str(S5), "--ui-socket", str(sock)], size=(120, 30))
        try:
            assert term.wait_for("alice")
            doc = json.loads(pptptop("--attach", str(sock), "--json").stdout)
            assert tunnels_of(doc) == tunnels_of(json.loads(pptptop("-r", str(S5), "--json").stdout))
            term.send("q")
            assert term.wait() == 0
        finally:
            if term.proc.poll() is None:
                term.proc.kill()
                term.proc.wait()
        assert not sock.exists()
