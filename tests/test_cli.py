"""The command line as a user meets it: bad input is reported, not fatal, and loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


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
    assert res.returncode == 2 and words.encode() in res.stderr, res.stderr


def test_a_bug_in_the_data_path_still_reports_what_was_read(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Everything read is reported, then the reason: a crash (a bug) after frame 60 still gives the JSON of
    the 60 frames before it, then the traceback and exit 70."""
    from pptptop import cli, pipeline
    from pptptop.track.fastpath import feed_batch

    def buggy(tracker: object, batch: object, first: int) -> None:
        feed_batch(tracker, batch.part(0, 60), first)  # type: ignore[arg-type, attr-defined]
        raise ValueError("a bug in the batch path")

    monkeypatch.setattr(pipeline, "feed_batch", buggy)
    code = cli.main(["-r", str(data_dir / "s1-mschapv2-mppe128-inside.pcap"), "--json"])
    out, err = capsys.readouterr()
    assert code == 70
    doc = json.loads(out)
    assert doc["source"]["frames"] == 60 and doc["source"]["error"] == "internal error after frame 60: ValueError"
    assert doc["tunnels"][0]["auth"]["user"] == "alice"
    assert "Traceback" in err and "a bug in the batch path" in err and "after frame 60" in err
