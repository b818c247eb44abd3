"""The options of --serve, --ui-socket and --attach: what is refused, in one line and exit 64."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import DATA, ServiceRun, free_port

S1 = str(DATA / "s1-mschapv2-mppe128-both.pcapng")


def refused(*args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "pptptop", *args], capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 64, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("pptptop: ")
    return res.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["-r", S1, "--serve", "0.0.0.0:8080"], "reachable from other machines: give --serve-token"),
    (["-r", S1, "--serve", "[::]:8080"], "reachable from other machines"),
    (["-r", S1, "--serve-token", "x"], "give --serve [ADDR:]PORT too"),
    (["-r", S1, "--serve", "8080", "--serve-token", "a", "--serve-token-file", "f"], "give the token once"),
    (["-r", S1, "--serve", "8080", "--serve-token", " "], "--serve-token is empty"),
    (["-r", S1, "--serve", "http"], "--serve: expected [ADDR:]PORT"),
    (["--attach", "s.sock", "-r", S1], "--attach reads a running pptptop's frames"),
    (["--attach", "s.sock", "--ui-socket", "t.sock"], "cannot offer --serve or --ui-socket"),
    (["-r", S1, "--ui-backlog", "4"], "give one of them too"),
])
def test_refused_in_one_line(args: list[str], says: str) -> None:
    assert says in refused(*args)


def test_a_token_file_guards_a_public_address(service: list[ServiceRun], tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-a-file\n")
    port = free_port()
    run = ServiceRun(["-r", S1, "--serve", f"0.0.0.0:{port}", "--serve-token-file", str(token)])
    service.append(run)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=2)
        except urllib.error.HTTPError as e:
            assert e.code == 403
            break
        except OSError:
            assert run.proc.poll() is None
            time.sleep(0.1)
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())  # keeps the cookie over the 303
    page = browser.open(url + "?token=from-a-file", timeout=5).read().decode()
    assert "data-session-websocket-url=\"ws://127.0.0.1:" in page  # the page's URLs are the request's host
    code, err = run.stop()
    assert code == 0 and "from-a-file" not in err


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    res = subprocess.run([sys.executable, "-m", "pptptop", "-r", S1, "--serve", "0.0.0.0:1",
                          "--serve-token-file", str(empty)], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 66
    assert res.stderr == f"pptptop: --serve-token-file: {empty} holds no token (its first line is empty)\n"


@pytest.mark.root
def test_a_live_serve_as_root_starts_and_serves(service: list[ServiceRun]) -> None:
    """As root, live: the drop (or, when the target user cannot read this Python, root with two capabilities)
    leaves textual-serve's files and the sessions' pptptop readable."""
    port = free_port()
    run = ServiceRun(["-i", "lo", "--serve", f"127.0.0.1:{port}"])
    service.append(run)
    deadline = time.monotonic() + 30
    while True:
        try:
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
            break
        except OSError:
            assert run.proc.poll() is None, run.proc.communicate()[1].decode()
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert "data-session-websocket-url" in page
    code, err = run.stop()
    assert code == 0, err
    assert "Traceback" not in err
