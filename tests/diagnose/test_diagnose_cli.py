"""The command line wires the Diagnoser into every run: --json, --report, live events, options."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from diag_support import Wire, run_frames
from hostile_capture import RAW_CONTROLS, write_hostile

from pptptop import cli
from pptptop.diagnose import options as diagopts
from pptptop.export.jsonout import EventStream

JSON_DOC = Path(__file__).resolve().parents[2] / "docs" / "json.md"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_document_has_a_diagnosis_per_tunnel(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    code, out, _ = run(capsys, "-r", str(data_dir / "s3-gre-blocked-inside.pcap"), "--json")
    assert code == 0
    (t,) = json.loads(out)["tunnels"]
    first = t["diagnosis"][0]
    assert (first["code"], first["severity"], first["windows_error"]) == ("gre-blocked", "error", 806)
    assert first["evidence"] and first["hint"]


def test_report_has_the_diagnosis_block(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    code, out, _ = run(capsys, "-r", str(data_dir / "s2-mschapv2-wrong-password-outside.pcap"), "--report")
    assert code == 0
    assert "  diagnosis\n" in out and "auth-failed (Windows error 691): Authentication failed" in out
    assert "[frames 21, 24, 25]" in out


def test_show_secrets(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    path = str(data_dir / "s6-pap-no-encryption-inside.pcap")
    _, hidden, _ = run(capsys, "-r", path, "--report")
    _, shown, _ = run(capsys, "-r", path, "--report", "--show-secrets")
    assert "plaintext-pw" not in hidden and "Password sent in clear" in hidden
    assert "Password: 'plaintext-pw'" in shown


def test_timeout_options_reach_the_rules(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    path = str(data_dir / "s3-gre-blocked-inside.pcap")
    _, default, _ = run(capsys, "-r", path, "--json")
    _, short, _ = run(capsys, "-r", path, "--json", "--lcp-restart", "2", "--lcp-max-configure", "3")
    t_default = json.loads(default)["tunnels"][0]["diagnosis"][0]
    t_short = json.loads(short)["tunnels"][0]["diagnosis"][0]
    assert t_short["code"] == t_default["code"] == "gre-blocked"
    assert t_short["time"] < t_default["time"]  # 6 s of silence is enough, before the client gave up
    with pytest.raises(SystemExit):
        cli.main(["-r", path, "--json", "--lcp-max-configure", "0"])


def test_export_hashes_to_an_unwritable_place(capsys: pytest.CaptureFixture[str], data_dir: Path,
                                              tmp_path: Path) -> None:
    code, _, err = run(capsys, "-r", str(data_dir / "s1-mschapv2-mppe128-outside.pcap"), "--export-hashes",
                       str(tmp_path / "missing-dir" / "h.txt"))
    assert code == cli.EXIT_CANT_CREATE and "--export-hashes" in err



def test_finding_details_escape_wire_text_once(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A hostile user name and Failure message are escaped once, where the rule quotes them: ``\\x1b`` in the
    finding, so ``\\\\x1b`` (``repr`` of escaped text) appears neither in --json nor in --report."""
    path = str(write_hostile(tmp_path / "hostile.pcap"))
    want = ("for user '\\x1b]52;c;cHduZWQ=\\x07\\x1b[2Jbob\\x0d\\x0ainjected' at server 'pptpsrv': "
            "'denied\\x1b]52;c;cHduZWQ=\\x07\\x0d\\x0a'")
    code, out, _ = run(capsys, "-r", path, "--json")
    assert code == 0
    found = json.loads(out)["tunnels"][0]["diagnosis"]
    assert want in next(f["detail"] for f in found if f["code"] == "auth-failed")
    assert not [f for f in found if "\\\\" in f["detail"]]
    code, out, _ = run(capsys, "-r", path, "--report")
    assert code == 0
    assert want in out and "\\\\" not in out
    assert not [c for c in RAW_CONTROLS if c in out]



def test_every_live_event_line_is_documented() -> None:
    """docs/json.md has a row for every ``event`` the live stream writes, ``withdrawn`` included: a CHAP
    Failure with R=1 (a finding) and then a Success on the retry (the finding withdrawn), RFC 2759 §6."""
    w = Wire().setup().lcp_up().mschapv2(success=False)
    w.at(1).mschapv2(success=True)
    out = io.StringIO()
    write = diagopts.json_lines(out)
    for change in run_frames(w.frames).changes:
        write(change)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [x["finding"]["code"] for x in lines if x["event"] == "withdrawn"] == ["auth-failed"]
    diagnosis = {x["event"] for x in lines}
    assert diagnosis == {"finding", "withdrawn"}
    doc = JSON_DOC.read_text()
    names = {*diagnosis, *(k.value for k in EventStream.KINDS), "nat-problem", "capture-end"}
    assert not [n for n in sorted(names) if f"| `{n}` |" not in doc]


LIVE = """
import sys
from pptptop import cli, sources

def live_file(args):
    src = sources.open_file(sys.argv[1])
    src.live = True  # the capture file, said to be live: the live --json path without an interface
    return src

cli.open_source = live_file
sys.exit(cli.main(["-r", sys.argv[1], "--json"]))
"""


def test_live_json_stream_has_finding_events(data_dir: Path) -> None:
    """In a child process: a live run as root drops privileges, which must not happen to the test runner."""
    path = str(data_dir / "s3b-gre-forward-drop-outside.pcap")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", LIVE, path], capture_output=True, text=True, timeout=120,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(x) for x in proc.stdout.splitlines()]
    found = [e for e in events if e.get("event") == "finding"]
    assert [e["finding"]["code"] for e in found] == ["gre-icmp-unreachable"]
    ended = next(e for e in events if e.get("event") == "ended")
    assert found[0]["time"] <= ended["time"]
    assert ended["tunnel"]["diagnosis"][0]["code"] == "gre-icmp-unreachable"
