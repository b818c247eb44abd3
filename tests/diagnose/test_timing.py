"""Live timing: a finding appears within 1 s (capture time) of its decisive packet or defining timeout.

Checked from capture timestamps (tshark's frame.time_epoch), not wall-clock sleeps.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from diag_support import read_frames, run_capture, run_frames, tshark_frames, tshark_times

from pptptop.diagnose import DiagnosisConfig, FindingChange
from pptptop.diagnose.options import json_lines


def appeared(changes: list[FindingChange], code: str) -> float:
    return min(c.ts for c in changes if c.kind == "finding" and c.finding.code == code)


@pytest.mark.tshark
def test_s2_auth_failed_at_the_failure_packet_in_a_real_time_replay(data_dir: Path) -> None:
    """Replayed through the Pipeline at speed 1 (1.8 s of capture), as the UI's -r does."""
    path = data_dir / "s2-mschapv2-wrong-password-outside.pcap"
    res = run_capture(path, speed=1.0)
    (failure,) = tshark_frames(path, "chap.code == 4")
    decisive = tshark_times(path)[failure]
    assert abs(appeared(res.changes, "auth-failed") - decisive) < 1.0
    assert appeared(res.changes, "auth-failed") == pytest.approx(decisive, abs=1e-6)


@pytest.mark.tshark
def test_s3_gre_blocked_when_the_client_gives_up(data_dir: Path) -> None:
    path = data_dir / "s3-gre-blocked-inside.pcap"
    res = run_capture(path)
    (clear,) = tshark_frames(path, "pptp.control_message_type == 12")
    assert appeared(res.changes, "gre-blocked") == pytest.approx(tshark_times(path)[clear], abs=1e-6)


@pytest.mark.tshark
@pytest.mark.parametrize("max_configure", [3, 4])
def test_s3_gre_blocked_at_the_negotiation_timeout(data_dir: Path, max_configure: int) -> None:
    """With Max-Configure below the client's 5 attempts the timeout decides, on the next one-second tick."""
    path = data_dir / "s3-gre-blocked-inside.pcap"
    cfg = DiagnosisConfig(lcp_max_configure=max_configure)
    res = run_frames(read_frames(path), cfg, clock=True)
    first_request = tshark_times(path)[min(tshark_frames(path, "lcp && ppp.code == 1"))]
    deadline = first_request + cfg.negotiation_timeout
    assert 0 <= appeared(res.changes, "gre-blocked") - deadline < 1.0


@pytest.mark.tshark
def test_s7_echo_timeout_at_the_terminate_request(data_dir: Path) -> None:
    path = data_dir / "s7-echo-timeout-inside.pcap"
    res = run_capture(path)
    term = min(tshark_frames(path, "lcp && ppp.code == 5"))
    assert appeared(res.changes, "echo-timeout") == pytest.approx(tshark_times(path)[term], abs=1e-6)


def test_live_json_lines_carry_the_capture_time(data_dir: Path) -> None:
    out = io.StringIO()
    res = run_frames(read_frames(data_dir / "s3b-gre-forward-drop-outside.pcap"))
    listener = json_lines(out)
    for change in res.changes:
        listener(change)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["finding"]["code"] for x in lines] == ["gre-icmp-unreachable"]
    rec = lines[0]
    assert rec["event"] == "finding" and rec["time"] == rec["finding"]["time"]
    assert set(rec["finding"]) >= {"code", "severity", "title", "detail", "evidence", "windows_error", "hint"}
    assert rec["tunnel"]["server"]["ip"] == "198.51.100.2"
