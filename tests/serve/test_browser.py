"""``--serve`` in a real headless Chromium (Debian's chromium and chromedriver, driven by Selenium).

The page's terminal is drawn on a canvas by xterm.js, so the test reads what the browser's terminal was
given: a script installed before the page's own wraps WebSocket and keeps the text of every binary
message (the terminal's output), which the test strips of escape sequences. Nothing here downloads a
browser: Selenium is pointed at /usr/bin/chromedriver and /usr/bin/chromium, and the test is skipped
when they are absent.
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, ServiceRun, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "t0ken-for-the-browser-test"
S5 = DATA / "s5-two-clients-same-nat-both.pcapng"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()) or shutil.which("chromium") is None,
    reason="Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
)

#: keeps what the terminal is sent, as text, in window.__terminal
RECORD = """
window.__terminal = "";
const Native = window.WebSocket;
window.WebSocket = function (url, protocols) {
  const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
  ws.addEventListener("message", (e) => {
    if (typeof e.data !== "string") { window.__terminal += new TextDecoder().decode(e.data); }
  });
  return ws;
};
window.WebSocket.prototype = Native.prototype;
"""
ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[\]P_^][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b.")


@pytest.fixture
def served(service: list[ServiceRun]) -> Iterator[str]:
    port = free_port()
    run = ServiceRun(["-r", str(S5), "--serve", f"127.0.0.1:{port}", "--serve-token", TOKEN])
    service.append(run)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/", timeout=2)
        except urllib.error.HTTPError:
            break  # 403: it listens
        except OSError:
            assert run.proc.poll() is None, run.proc.communicate()[1].decode()
            assert time.monotonic() < deadline
            time.sleep(0.1)
    yield base
    code, err = run.stop()
    assert code == 0, err
    assert TOKEN not in err  # never logged


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD})
    yield driver
    driver.quit()


def terminal_text(driver: Any) -> str:
    return ESCAPES.sub("", driver.execute_script("return window.__terminal || ''"))


def wait_for(driver: Any, *words: str, since: int = 0, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = terminal_text(driver)[since:]
        if all(w in text for w in words):
            return text
        assert time.monotonic() < deadline, f"{words} not on the page's terminal; it shows: {text[-2000:]!r}"
        time.sleep(0.2)


class TestBrowser:
    def test_the_tunnel_table_appears_and_enter_opens_a_ladder(self, served: str, browser: Any,
                                                              tmp_path: Path) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        browser.get(f"{served}/?token={TOKEN}")
        assert "token" not in browser.current_url  # the token left the address bar for a cookie
        text = wait_for(browser, "alice", "bob", "CLOSED", "198.51.100.2", "tunnels 2")
        assert "Read-only" in text or "read-only" in text
        seen = len(terminal_text(browser))
        browser.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys(Keys.ENTER)
        ladder = wait_for(browser, "Start-Control-Connection-Request", since=seen)
        assert "Flow" in ladder
        browser.save_screenshot(str(tmp_path / "ladder.png"))
        assert (tmp_path / "ladder.png").stat().st_size > 0

    def test_no_token_or_a_wrong_one_is_refused(self, served: str, browser: Any) -> None:
        for url in (f"{served}/", f"{served}/?token=wrong", f"{served}/ws", f"{served}/static/js/textual.js"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(url, timeout=5)
            assert e.value.code == 403
        upgrade = urllib.request.Request(f"{served}/ws", headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(upgrade, timeout=5)
        assert e.value.code == 403  # no websocket without the token
        browser.get(f"{served}/?token=wrong")
        assert "needs its token" in browser.find_element("tag name", "body").text
        time.sleep(1)
        assert terminal_text(browser) == ""  # no terminal, no websocket

    def test_sigterm_ends_the_sessions_processes_too(self, service: list[ServiceRun], browser: Any) -> None:
        import psutil

        port = free_port()
        run = ServiceRun(["-r", str(S5), "--serve", f"127.0.0.1:{port}"])  # loopback: no token needed
        service.append(run)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                assert run.proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        browser.get(f"http://127.0.0.1:{port}/")
        wait_for(browser, "alice")
        sessions = [p for p in psutil.Process(run.proc.pid).children(recursive=True)
                    if "--attach" in p.cmdline()]
        assert sessions  # the browser's session runs pptptop --attach
        t = time.monotonic()
        code, err = run.stop()
        assert code == 0, err
        assert time.monotonic() - t < 10
        _, alive = psutil.wait_procs(sessions, timeout=10)
        assert not alive, [p.cmdline() for p in alive]
        assert "is closed" not in err  # asyncio's child watcher had a loop to report to
