"""End to end: the installed ``pptptop -r FILE`` in a real terminal (tmux), driven by keys.

Skipped with a reason when tmux or an installed ``pptptop`` is missing
(``pip install .`` puts it on PATH; CI does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ui_helpers import DATA

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    exe = shutil.which("pptptop")
    if exe is None:
        pytest.skip("pptptop is not installed on PATH (pip install .)")
    name = f"pptptop-e2e-{os.getpid()}"
    capture = DATA / "s2-mschapv2-wrong-password-both.pcapng"
    cmd = f"cd {tmp_path} && TZ=UTC {exe} -r {capture}; echo EXIT=$?; sleep 60"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "36", cmd], check=True,
                   env={**os.environ, "TERM": "xterm-256color"})

    def wait_for(text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = tmux("capture-pane", "-p", "-t", name)
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{screen}")

    def keys(k: str) -> str:
        tmux("send-keys", "-t", name, k)
        return ""

    wait_for.keys = keys  # type: ignore[attr-defined]
    try:
        yield wait_for
    finally:
        tmux("kill-session", "-t", name)


def test_replay_open_tunnel_save_and_quit(session: Callable[[str], str], tmp_path: Path) -> None:
    press = session.keys  # type: ignore[attr-defined]
    screen = session(" DONE ")
    assert "FAIL AUTH" in screen and "bob" in screen and "198.51.100.2" in screen
    press("Enter")
    screen = session("Start-Control-Connection-Request")
    assert "1 Flow" in screen and "Authentication failed  Windows error 691" in screen  # the reason, above the tabs
    press("2")
    screen = session("Negotiated")
    assert "FAILED in AUTH" in screen and "✗ AUTH" in screen
    press("w")
    session("saved")
    saved = list(tmp_path.glob("pptptop-*.pcapng"))
    assert len(saved) == 1 and saved[0].stat().st_size > 0
    press("Escape")
    session("Filter")
    press("q")
    session("EXIT=0")


def test_closing_the_terminal_ends_pptptop(tmp_path: Path) -> None:
    exe = shutil.which("pptptop")
    if exe is None:
        pytest.skip("pptptop is not installed on PATH (pip install .)")
    capture = tmp_path / "hangup-marker.pcapng"  # a unique path to find the process by
    capture.write_bytes((DATA / "s1-mschapv2-mppe128-both.pcapng").read_bytes())
    name = f"pptptop-hup-{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "100", "-y", "30", f"{exe} -r {capture}"],
                   check=True)
    try:
        deadline = time.monotonic() + 20
        while " DONE " not in tmux("capture-pane", "-p", "-t", name) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        tmux("kill-session", "-t", name)  # SIGHUP to the terminal's processes
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = subprocess.run(["pgrep", "-f", str(capture)], capture_output=True, text=True).stdout.split()
        if not alive:
            return
        time.sleep(0.2)
    raise AssertionError(f"pptptop still running after its terminal closed: {alive}")
