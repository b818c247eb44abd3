"""The command line as a user meets it: bad input is reported, not fatal, and loses nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pty_session import Terminal, installed


def pptptop(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pptptop", *args], input=stdin, capture_output=True, timeout=120)


def test_truncated_file_reports_what_was_read_then_the_offset(tmp_path: Path, data_dir: Path) -> None:
    whole = (data_dir / "s1-mschapv2-mppe128-inside.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) - 500])
    res = pptptop("-r", str(cut), "--json")
    assert res.returncode == 65
    doc = json.loads(res.stdout)
    assert doc["source"]["frames"] > 100 and len(doc["tunnels"]) == 1
    assert doc["tunnels"][0]["auth"]["user"] == "alice"
    err = res.stderr.decode()
    assert str(cut) in err and "byte offset" in err and "everything before it was read" in err
    assert "Traceback" not in err


def test_not_a_capture(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("this is not a capture\n")
    res = pptptop("-r", str(bogus), "--report")
    assert res.returncode == 65
    assert b"not a pcap or pcapng file" in res.stderr and b"Traceback" not in res.stderr


def test_missing_file_and_usage() -> None:
    res = pptptop("-r", "/nonexistent/x.pcap", "--json")
    assert res.returncode == 66 and b"no such file" in res.stderr
    res = pptptop()
    assert res.returncode == 64 and b"--demo" in res.stderr


def test_stdin_pipe_gives_the_same_tunnels_as_the_file(data_dir: Path) -> None:
    path = data_dir / "s5-two-clients-same-nat-inside.pcap"
    from_file = json.loads(pptptop("-r", str(path), "--json").stdout)
    from_pipe = json.loads(pptptop("-r", "-", "--json", stdin=path.read_bytes()).stdout)
    strip = ("source",)
    assert {k: v for k, v in from_file.items() if k not in strip} == {
        k: v for k, v in from_pipe.items() if k not in strip}
    assert from_pipe["source"]["name"] == "-"


@pytest.mark.parametrize("count", [1, 37, 111])
def test_count_stops_after_n_frames(data_dir: Path, count: int) -> None:
    doc = json.loads(pptptop("-r", str(data_dir / "s1-mschapv2-mppe128-inside.pcap"), "--json", "-c",
                             str(count)).stdout)
    assert doc["source"]["frames"] == count


def test_report_neutralises_terminal_escapes_from_the_wire(data_dir: Path) -> None:
    res = pptptop("-r", str(data_dir / "s1-mschapv2-mppe128-inside.pcap"), "--report")
    out = res.stdout.decode()
    assert res.returncode == 0 and "\x1b" not in out
    assert "MS-CHAPv2 user \"alice\" → success" in out and "mppe     128-bit stateless" in out


@pytest.mark.parametrize(("args", "words"), [(("-B", "0"), "at least 1"), (("-B", "big"), "whole number"),
                                             (("--queue", "-1"), "at least 0")])
def test_buffer_options_are_checked(args: tuple[str, str], words: str) -> None:
    res = pptptop("-i", "lo", *args)
    assert res.returncode == 64 and words.encode() in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) == 1  # one line, not the usage block


def test_a_bug_in_the_data_path_still_reports_what_was_read(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Everything read is reported, then the reason: a crash (a bug) after frame 60 still gives the JSON of
    the 60 frames before it, then the traceback and exit 70."""
    from pptptop import cli
    from pptptop.track.tracker import Tracker
    from pptptop.wire import Batch

    real = Tracker.feed_batch

    def buggy(tracker: Tracker, batch: Batch, first: int) -> None:
        real(tracker, batch.part(0, 60), first)
        raise ValueError("a bug in the batch path")

    monkeypatch.setattr(Tracker, "feed_batch", buggy)
    code = cli.main(["-r", str(data_dir / "s1-mschapv2-mppe128-inside.pcap"), "--json"])
    out, err = capsys.readouterr()
    assert code == 70
    doc = json.loads(out)
    assert doc["source"]["frames"] == 60 and doc["source"]["error"] == "internal error after frame 60: ValueError"
    assert doc["tunnels"][0]["auth"]["user"] == "alice"
    assert "Traceback" in err and "a bug in the batch path" in err and "after frame 60" in err


# ---------------------------------------------------------------- a newcomer's first hour (issue 17)

S1_INSIDE = "s1-mschapv2-mppe128-inside.pcap"


def run(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``pptptop`` without a terminal (a script, cron, CI)."""
    return subprocess.run([*installed(), *args], input=None if stdin is None else stdin.decode("latin-1"),
                          capture_output=True, text=True, timeout=120, cwd=cwd, start_new_session=True)


def one_line(text: str) -> str:
    """The only line of an error message (it must be one, without a traceback)."""
    lines = [line for line in text.replace("\r", "").splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def at_terminal(*args: str, prefix: tuple[str, ...] = (), timeout: float = 30.0) -> tuple[int, str]:
    """The installed ``pptptop`` at a terminal of its own: (exit status, what the terminal showed)."""
    term = Terminal([*prefix, *installed(), *args])
    try:
        code = term.wait(timeout)
        time.sleep(0.2)  # the last bytes through the pty
        return code, term.text()
    finally:
        term.close()


def without_raw_sockets() -> list[str]:
    """A prefix that takes CAP_NET_RAW away (as for a user who is not root), or nothing when not root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to take CAP_NET_RAW away from root")
    return ["setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-net_raw,-net_admin"]


class TestErrorsAreOneLine:
    """The usual mistakes end in one sentence and the sysexits code, in the UI's way as in a script's."""

    def test_no_such_interface(self) -> None:
        code, out = at_terminal("nosuch0")
        assert code == 66 and "no such interface: nosuch0" in one_line(out)

    def test_bad_capture_filter(self) -> None:
        code, out = at_terminal("lo", "-f", "bogus ((")
        assert code == 64 and "capture filter" in one_line(out)

    def test_no_permission_for_live_capture(self) -> None:
        code, out = at_terminal("lo", prefix=tuple(without_raw_sockets()))
        assert code == 77 and "needs root or CAP_NET_RAW" in one_line(out)

    def test_headless_errors_have_the_same_codes(self) -> None:
        assert run("nosuch0", "--json").returncode == 66
        assert run("lo", "-f", "bogus ((", "--json").returncode == 64

    @pytest.mark.parametrize("css", ["Screen { background: red;\n  color:\n", "Screen {{ color: red; }\n",
                                     "@@@ ; } {\n"])
    def test_theme_with_a_syntax_error(self, tmp_path: Path, css: str) -> None:
        theme = tmp_path / "broken.tcss"
        theme.write_text(css)
        res = run("--demo", "--theme", str(theme))
        assert res.returncode == 64
        line = one_line(res.stderr)
        assert line.startswith(f"pptptop: theme file {theme} is not valid Textual CSS: line ")

    def test_a_directory_given_as_the_file(self, tmp_path: Path) -> None:
        res = run("-r", str(tmp_path), "--report")
        assert res.returncode == 66
        assert one_line(res.stderr) == f"pptptop: cannot read {tmp_path}: it is a directory, not a capture file"

    def test_no_arguments_puts_the_hint_first(self) -> None:
        res = run()
        assert res.returncode == 64
        assert one_line(res.stderr).startswith("pptptop: give an interface (sudo pptptop eth0), -r FILE, or --demo")

    @pytest.mark.parametrize(("args", "words"), [
        (("--demo", "--speed", "5"), "takes 1, 10 or max, not '5'"),
        (("-r", "FILE", "--json", "-c", "-1"), "must be at least 1, not -1"),
        (("-r", "FILE", "--json", "-c", "0"), "must be at least 1, not 0"),
        (("-r", "FILE", "--json", "--max-tunnels", "0"), "must be at least 1, not 0"),
        (("-r", "FILE", "--json", "--idle-timeout", "0"), "must be greater than 0"),
        (("-r", "FILE", "--json", "--report"), "choose one"),
        (("--demo", "-r", "FILE"), "--demo replays the bundled capture"),
        (("--demo", "lo"), "--demo replays the bundled capture"),
        (("-r", "FILE", "--json", "--bogus"), "unrecognized arguments: --bogus"),
    ])
    def test_option_values_are_checked(self, data_dir: Path, args: tuple[str, ...], words: str) -> None:
        res = run(*[str(data_dir / S1_INSIDE) if a == "FILE" else a for a in args])
        assert res.returncode == 64 and res.stdout == ""
        assert words in one_line(res.stderr)

    @pytest.mark.parametrize(("args", "words"), [
        (("-f", "tcp"), "-f applies to live capture only"),
        (("-B", "1024"), "-B and --queue apply to live capture only"),
        (("--speed", "1"), "--speed paces the UI's replay"),
    ])
    def test_ignored_options_are_named(self, data_dir: Path, args: tuple[str, ...], words: str) -> None:
        res = run("-r", str(data_dir / S1_INSIDE), "--json", *args)
        assert res.returncode == 0 and json.loads(res.stdout)["source"]["frames"] > 100
        assert one_line(res.stderr) == f"pptptop: warning: {words}" or words in one_line(res.stderr)

    def test_speed_default_is_documented(self) -> None:
        res = run("--help")
        assert "default: max for -r FILE, 1 for --demo" in " ".join(res.stdout.split())

    @pytest.mark.parametrize(("which", "code"), [("bogus=1", 64), ("999", 66), ("user=nobody-here", 66)])
    def test_a_failed_export_leaves_no_file(self, data_dir: Path, tmp_path: Path, which: str, code: int) -> None:
        out = tmp_path / "y.pcapng"
        res = run("-r", str(data_dir / S1_INSIDE), "--export-tunnel", which, "-w", str(out))
        assert res.returncode == code and "--export-tunnel" in one_line(res.stderr)
        assert not out.exists()

    def test_an_export_that_matches_writes_its_file(self, data_dir: Path, tmp_path: Path) -> None:
        out = tmp_path / "y.pcapng"
        res = run("-r", str(data_dir / S1_INSIDE), "--export-tunnel", "user=alice", "-w", str(out))
        assert res.returncode == 0 and out.stat().st_size > 1000


class TestTheTerminal:
    """The UI reads keys from the terminal, never from the capture, and ends on SIGTERM/SIGHUP in every state."""

    def test_a_capture_on_stdin_and_keys_from_the_terminal(self, data_dir: Path) -> None:
        capture = (data_dir / S1_INSIDE).read_bytes()
        term = Terminal([*installed(), "-r", "-"], stdin=capture)
        try:
            assert term.wait_for(" DONE "), term.text()
            assert term.wait_for("alice"), term.text()
            term.send("q")
            assert term.wait(20) == 0
            assert "Traceback" not in term.text() and "not a pcap" not in term.text()
        finally:
            term.close()

    def test_a_capture_on_stdin_without_a_terminal_is_refused(self, data_dir: Path) -> None:
        res = run("-r", "-", stdin=(data_dir / S1_INSIDE).read_bytes())
        assert res.returncode == 64
        assert "reads its keys from a terminal, and there is none here" in one_line(res.stderr)

    def test_started_in_the_background_is_refused(self) -> None:
        if shutil.which("timeout") is None:
            pytest.skip("coreutils timeout is needed")
        start = time.monotonic()
        # as in a shell: timeout puts itself and pptptop in a process group of their own, not the terminal's
        code, out = at_terminal("--demo", prefix=("sh", "-c", 'timeout 20 "$@"', "sh"))
        assert code == 64 and "started in the background" in one_line(out)
        assert time.monotonic() - start < 15  # refused at once, not stopped until the timeout

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
    def test_a_signal_ends_the_ui_even_when_its_terminal_is_not_read(self, sig: signal.Signals) -> None:
        """Nobody reads the terminal: Textual's writes block, and with them its event loop."""
        term = Terminal([*installed(), "--demo"], size=(200, 60), read=False)
        try:
            assert term.wait_until_stuck()  # the demo at 1x redraws ten times a second until the pty is full
            start = time.monotonic()
            term.signal(sig)
            code = term.wait(15)
            assert code in (0, -sig)
            assert time.monotonic() - start < 10
        finally:
            term.close()

    def test_a_signal_ends_the_ui_at_once_when_the_terminal_works(self) -> None:
        term = Terminal([*installed(), "--demo"])
        try:
            assert term.wait_for("alice")
            term.signal(signal.SIGTERM)
            assert term.wait(10) == 0
            assert "\x1b[?1049l" in term.text()  # the terminal was given back
        finally:
            term.close()

    def test_stopped_then_terminal_gone_then_sigterm(self) -> None:
        """The issue's state: stopped, its terminal closed, then SIGTERM (and the SIGCONT that timeout,
        systemd and the kernel send with it)."""
        term = Terminal([*installed(), "--demo"])
        try:
            assert term.wait_for("alice")
            term.signal(signal.SIGSTOP)
            time.sleep(0.5)
            term.hang_up()
            term.signal(signal.SIGTERM)
            term.signal(signal.SIGCONT)
            assert term.wait(15) in (0, -signal.SIGTERM, -signal.SIGHUP)
        finally:
            term.close()


# ---------------------------------------------------------------- the end of a run (issue 18, item 7b)

EXIT_THROUGH_THE_INTERPRETER = """
import atexit, sys, threading
import pptptop.cli as cli

atexit.register(lambda: print("atexit ran; threads left:", threading.active_count(), file=sys.stderr))
sys.argv = ["pptptop", "-r", sys.argv[1], "--json"]
cli.run()
"""


def test_run_ends_through_the_interpreter_with_nothing_left_running(data_dir: Path) -> None:
    """run() leaves by the interpreter's own exit, not os._exit: atexit handlers run, buffered output is
    written, and by then the capture thread has ended (the read-ahead child is waited for in the source)."""
    path = str(data_dir / "s1-mschapv2-mppe128-inside.pcap")
    r = subprocess.run([sys.executable, "-c", EXIT_THROUGH_THE_INTERPRETER, path], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["source"]["frames"] == 111
    assert "atexit ran; threads left: 1" in r.stderr

