"""The lab scenarios (real pptpd/pppd/pptp-linux through a Linux NAT) get the diagnosis an engineer gives.

Expected causes come from ../shared/captures/lab/README.md; evidence frames are
checked against tshark's dissection of the same file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from diag_support import errors, finding, findings, run_capture, tshark_frames

from pptptop.diagnose import Severity

#: scenario file stem, leg -> the first (and only) error, and a tshark filter the decisive evidence must match
FAILURES: list[tuple[str, str, str, str]] = [
    ("s2-mschapv2-wrong-password", "inside", "auth-failed", "chap.code == 4"),
    ("s2-mschapv2-wrong-password", "outside", "auth-failed", "chap.code == 4"),
    ("s3-gre-blocked", "inside", "gre-blocked", "pptp.control_message_type == 12"),
    ("s3-gre-blocked", "outside", "gre-blocked", "pptp.control_message_type == 12"),
    ("s3b-gre-forward-drop", "outside", "gre-icmp-unreachable", "icmp.type == 3 && icmp.code == 2"),
    ("s3b-gre-forward-drop", "inside", "gre-blocked", "tcp.srcport == 1723 && tcp.flags.fin == 1"),
    ("s4-mppe-refused-by-client", "inside", "encryption-mismatch", "lcp && ppp.code == 5"),
    ("s4-mppe-refused-by-client", "outside", "encryption-mismatch", "lcp && ppp.code == 5"),
    ("s7-echo-timeout", "inside", "echo-timeout", "lcp && ppp.code == 9"),
    ("s7-echo-timeout", "outside", "echo-timeout", "lcp && ppp.code == 9"),
    ("s8-server-killed", "inside", "peer-terminated", "tcp.srcport == 1723 && tcp.flags.fin == 1"),
    ("s8-server-killed", "outside", "peer-terminated", "tcp.srcport == 1723 && tcp.flags.fin == 1"),
    ("s9-server-hangup", "inside", "peer-terminated", "lcp && ppp.code == 5 && ip.src == 198.51.100.2"),
    ("s9-server-hangup", "outside", "peer-terminated", "lcp && ppp.code == 5 && ip.src == 198.51.100.2"),
    ("s10-server-ctrl-sigterm", "inside", "peer-terminated", "pptp.control_message_type == 13"),
    ("s10-server-ctrl-sigterm", "outside", "peer-terminated", "pptp.control_message_type == 13"),
]

HEALTHY = [
    "s1-mschapv2-mppe128-inside.pcap", "s1-mschapv2-mppe128-outside.pcap", "s1-mschapv2-mppe128-both.pcapng",
    "s5-two-clients-same-nat-inside.pcap", "s5-two-clients-same-nat-outside.pcap",
    "s5-two-clients-same-nat-both.pcapng", "s6-pap-no-encryption-inside.pcap",
    "s6-pap-no-encryption-outside.pcap", "nft/s1-mschapv2-mppe128-inside.pcap",
    "nft/s1-mschapv2-mppe128-outside.pcap", "nft/s5-two-clients-same-nat-inside.pcap",
    "nft/s5-two-clients-same-nat-outside.pcap", "pptpsniffer__connect.pcapng", "chapcrack__sample.dump",
]


@pytest.mark.tshark
@pytest.mark.parametrize("stem,leg,code,decisive", FAILURES, ids=[f"{s[:3].rstrip('-')}-{leg}" for s, leg, _, _ in
                                                                   FAILURES])
def test_failure_first_error_and_evidence(data_dir: Path, stem: str, leg: str, code: str, decisive: str) -> None:
    path = data_dir / f"{stem}-{leg}.pcap"
    res = run_capture(path)
    t = res.only
    assert errors(t) == [code], [(f.code, f.detail) for f in findings(t)]
    f = finding(t, code)
    assert f.evidence, f
    everything = tshark_frames(path, "frame")
    assert set(f.evidence) <= everything
    assert set(f.evidence) & tshark_frames(path, decisive), (f.evidence, decisive)
    assert f.windows_error is not None and f.hint and f.title and f.detail
    # the finding appeared at its decisive packet (or later tick), never before the first evidence
    first_seen = min(c.ts for c in res.changes if c.finding.code == code and c.kind == "finding")
    assert first_seen == f.ts


@pytest.mark.parametrize("stem,wan,lan", [
    ("s2-mschapv2-wrong-password", "auth-failed", "auth-failed"),
    ("s3-gre-blocked", "gre-blocked", "gre-blocked"),
    ("s3b-gre-forward-drop", "gre-icmp-unreachable", "gre-blocked"),
    ("s4-mppe-refused-by-client", "encryption-mismatch", "encryption-mismatch"),
    ("s7-echo-timeout", "echo-timeout", "echo-timeout"),
    ("s8-server-killed", "peer-terminated", "peer-terminated"),
    ("s9-server-hangup", "peer-terminated", "peer-terminated"),
    ("s10-server-ctrl-sigterm", "peer-terminated", "peer-terminated"),
])
def test_both_legs_in_one_file(data_dir: Path, stem: str, wan: str, lan: str) -> None:
    res = run_capture(data_dir / f"{stem}-both.pcapng")
    by_iface = {t.iface: errors(t) for t in res.tunnels}
    assert by_iface == {"wan0": [wan], "lan0": [lan]}


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_captures_have_no_errors(data_dir: Path, name: str) -> None:
    res = run_capture(data_dir / name)
    assert res.tunnels
    for t in res.tunnels:
        assert errors(t) == [], [(f.code, f.detail) for f in findings(t)]
        assert not [c for c in res.changes if c.finding.severity is Severity.ERROR]


def test_s1_normal_hangup_is_said_to_be_normal(data_dir: Path) -> None:
    """pptp-linux hangs up with LCP TermReq 'MPPE disabled', CCRQ and FIN: info, not an error."""
    t = run_capture(data_dir / "s1-mschapv2-mppe128-outside.pcap").only
    f = finding(t, "client-hangup")
    assert f.severity is Severity.INFO and "'MPPE disabled'" in f.detail and "normal" not in f.title.lower()
    assert [x.code for x in findings(t) if x.severity is Severity.WARNING] == []
    assert finding(t, "mschapv2-crackable").severity is Severity.INFO
    assert finding(t, "ipcp-address-assigned").evidence


@pytest.mark.tshark
def test_s2_evidence_is_challenge_response_failure(data_dir: Path) -> None:
    path = data_dir / "s2-mschapv2-wrong-password-outside.pcap"
    f = finding(run_capture(path).only, "auth-failed")
    assert f.evidence == sorted(tshark_frames(path, "chap.code in {1,2,4}"))
    assert f.windows_error == 691
    assert "E=691" in f.detail and "'bob'" in f.detail and "retry allowed" in f.detail


@pytest.mark.tshark
def test_s3_gre_blocked_names_the_silent_side(data_dir: Path) -> None:
    for leg, sender, silent in (("inside", "client", "server"), ("outside", "server", "client")):
        path = data_dir / f"s3-gre-blocked-{leg}.pcap"
        f = finding(run_capture(path).only, "gre-blocked")
        assert f"the {sender}'s 5 LCP Configure-Requests" in f.detail
        assert f"no GRE at all came from the {silent}" in f.detail
        assert set(f.evidence) & tshark_frames(path, "lcp && ppp.code == 1")
        assert f.windows_error == 806


@pytest.mark.tshark
def test_s3b_outside_evidence_is_the_icmp_and_the_gre_it_quotes(data_dir: Path) -> None:
    path = data_dir / "s3b-gre-forward-drop-outside.pcap"
    f = finding(run_capture(path).only, "gre-icmp-unreachable")
    assert f.evidence == sorted(tshark_frames(path, "icmp.type == 3 || (lcp && ip.src == 198.51.100.2)"))
    assert "198.51.100.1" in f.detail


def test_s3b_inside_points_at_the_gre_path(data_dir: Path) -> None:
    """Inside the NAT the ICMP is invisible: the server drops the call before any GRE comes back. The GRE path
    is the cause and the server's hang-up its evidence (tests/diagnose/test_verdict_classes.py checks the
    detail against tshark)."""
    f = finding(run_capture(data_dir / "s3b-gre-forward-drop-inside.pcap").only, "gre-blocked")
    assert f.windows_error == 806
    assert "no GRE at all came from the server" in f.detail and "The server hung up" in f.detail


@pytest.mark.tshark
def test_s4_encryption_mismatch_is_741_client_refused(data_dir: Path) -> None:
    path = data_dir / "s4-mppe-refused-by-client-outside.pcap"
    f = finding(run_capture(path).only, "encryption-mismatch")
    assert f.windows_error == 741
    assert "MPPE required but peer refused" in f.detail
    assert set(f.evidence) >= tshark_frames(path, "ccp && ppp.code == 4")


@pytest.mark.tshark
def test_s7_echo_evidence_is_the_unanswered_requests(data_dir: Path) -> None:
    path = data_dir / "s7-echo-timeout-inside.pcap"
    f = finding(run_capture(path).only, "echo-timeout")
    unanswered = tshark_frames(path, "lcp && ppp.code == 9 && frame.time_relative > 3")
    assert unanswered <= set(f.evidence)
    assert "3 LCP Echo-Requests" in f.detail and f.windows_error == 807


@pytest.mark.parametrize("stem,said", [
    ("s8-server-killed", "without any PPTP message"),
    ("s9-server-hangup", "LCP Terminate-Request 'MPPE disabled'"),
    ("s10-server-ctrl-sigterm", "Call-Disconnect-Notify result Admin Shutdown (3)"),
])
def test_server_side_endings_say_how(data_dir: Path, stem: str, said: str) -> None:
    f = finding(run_capture(data_dir / f"{stem}-outside.pcap").only, "peer-terminated")
    assert said in f.detail
    assert f.windows_error == 629  # mid-session


def test_s6_pap_and_no_mppe_are_security_warnings(data_dir: Path) -> None:
    t = run_capture(data_dir / "s6-pap-no-encryption-outside.pcap").only
    pap = finding(t, "pap-cleartext")
    assert pap.severity is Severity.WARNING and "'carol'" in pap.detail
    assert "plaintext-pw" not in pap.detail
    assert finding(t, "no-mppe").severity is Severity.WARNING
    shown = run_capture(data_dir / "s6-pap-no-encryption-outside.pcap", show_secrets=True).only
    assert "'plaintext-pw'" in finding(shown, "pap-cleartext").detail


def test_public_pptpsniffer_benign_notes(data_dir: Path) -> None:
    t = run_capture(data_dir / "pptpsniffer__connect.pcapng").only
    assert finding(t, "ipv6cp-rejected").severity is Severity.INFO
    assert finding(t, "ccp-nak-round").severity is Severity.INFO
