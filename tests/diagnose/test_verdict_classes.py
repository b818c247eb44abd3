"""The first verdict for the failure classes a senior engineer names (issue 16 b).

Each class runs on a capture (crafted by ``verdict_captures.py`` the way pppd, pptpd, pptp-linux and the
Linux PPTP helper behave, or the lab's), and checks the first error, the phase the tunnel failed in, and
that every sentence of the detail is what the packets say: the expected detail is written from tshark's
dissection of the same file, not from our decoders.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import verdict_captures
from diag_support import (
    ACK,
    FIN,
    LCP,
    RST,
    SYN,
    T0,
    Wire,
    codes,
    cp,
    errors,
    finding,
    findings,
    icmp_error,
    read_frames,
    run_capture,
    run_frames,
)
from rich.style import Style

from pptptop import sources
from pptptop.diagnose import Diagnoser, Severity
from pptptop.export.report import tunnel_lines
from pptptop.pipeline import Pipeline
from pptptop.track import nat
from pptptop.track.model import HexData, Phase, Tunnel
from pptptop.track.negotiation import terminate_reason
from pptptop.track.tracker import Tracker
from pptptop.ui.tunnel_text import ending
from pptptop.view.snapshot import make_detail

CRAFTED = sorted([*verdict_captures.FILES, *verdict_captures.NG_FILES])


def tshark(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    """``tshark -T fields`` rows (frame.number first) of the packets matching ``display_filter``."""
    cmd = ["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=,", "-e", "frame.number", *(x for f in fields for x in ("-e", f))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def frames_of(path: Path, display_filter: str) -> list[int]:
    return [int(r[0]) for r in tshark(path, display_filter)]


def epoch(path: Path, frame: int) -> float:
    return float(tshark(path, f"frame.number == {frame}", "frame.time_epoch")[0][1])


def wire_text(hexed: str) -> str:
    """tshark's ``ppp.data`` (``70:65:…``) as text."""
    return bytes.fromhex(hexed.replace(":", "")).decode()


def first_error(t: Tunnel) -> str:
    found = [f for f in findings(t) if f.severity is Severity.ERROR]
    assert found, [(f.code, f.detail) for f in findings(t)]
    return found[0].code


def run_with_nat(path: Path) -> tuple[Tracker, nat.NatCorrelator]:
    tracker = Tracker()
    Diagnoser().attach(tracker)
    correlator = nat.attach(tracker)
    pipe = Pipeline(sources.open_file(str(path)), tracker)
    pipe.run()
    assert pipe.error is None
    return tracker, correlator


@pytest.mark.parametrize("name", CRAFTED)
def test_crafted_captures_are_what_the_builder_writes(tmp_path: Path, data_dir: Path, name: str) -> None:
    """The committed files come from verdict_captures.py, octet for octet (regenerate with it)."""
    built = verdict_captures.build(name, tmp_path)
    assert built.read_bytes() == (data_dir / name).read_bytes()


# ---------------------------------------------------------------------- 1. auth method refused in LCP
@pytest.mark.tshark
@pytest.mark.parametrize("name,answer", [
    ("crafted-auth-rejected.pcap", "rejects authentication altogether (Configure-Reject)"),
    ("crafted-auth-nak-refused.pcap", "Naks it and offers PAP"),
])
def test_auth_method_refused_in_lcp(data_dir: Path, name: str, answer: str) -> None:
    path = data_dir / name
    t = run_capture(path).only
    assert errors(t) == ["auth-method-mismatch"]  # never ncp-failed
    assert t.failed_in is Phase.AUTH and "ncp" not in [p.phase.value for p in t.phases]
    f = finding(t, "auth-method-mismatch")
    server, client = "198.51.100.2", "10.0.0.2"
    # what tshark sees: the server asks for CHAP with MS-CHAPv2 (algorithm 0x81) ...
    asks = tshark(path, f"lcp && ppp.code == 1 && ip.src == {server}", "lcp.opt.auth_protocol", "lcp.opt.algorithm")
    assert asks[0][1:] == ["0xc223", "129"] and asks[1][1] == ""  # ... then asks for no authentication
    # ... the client refuses it: a Configure-Reject, or a Configure-Nak suggesting PAP (0xc023)
    refusal = tshark(path, f"lcp && (ppp.code == 3 || ppp.code == 4) && ip.src == {client}", "ppp.code",
                     "lcp.opt.auth_protocol")
    assert [r[1:] for r in refusal] == ([["4", "0xc223"]] if "Reject" in answer else [["3", "0xc023"]])
    # LCP opens without authentication: each side acks the other's last request
    acks = frames_of(path, "lcp && ppp.code == 2")
    assert len(acks) == 2 and int(asks[1][0]) < acks[-1]
    term = tshark(path, "lcp && ppp.code == 5", "ip.src", "ppp.data")
    assert len(term) == 1 and term[0][1] == server
    # nothing authenticates or configures IP before the Terminate-Request
    assert frames_of(path, f"(chap || pap || ipcp || ccp) && frame.number < {term[0][0]}") == []
    assert f.detail == (
        f"The server asks for MS-CHAPv2; the client {answer}. The server's next Configure-Request asks for no "
        "authentication and LCP opens without it, before any authentication or NCP packet; then the server "
        f"ends the link: LCP Terminate-Request '{wire_text(term[0][2])}'.")
    assert f.evidence == sorted({int(refusal[0][0]), acks[-1], int(term[0][0])})


def test_auth_nak_to_a_method_then_used_is_no_mismatch() -> None:
    """The authenticator takes the method the peer offers: the session goes on (a downgrade, not a failure)."""
    w = Wire().setup()
    w.ppp("client", LCP, cp(1, 1, b"\x05\x06\x11\x22\x33\x44"))
    w.ppp("server", LCP, cp(1, 1, b"\x03\x05\xc2\x23\x81"))
    w.ppp("client", LCP, cp(3, 1, b"\x03\x04\xc0\x23"))
    w.ppp("server", LCP, cp(1, 2, b"\x03\x04\xc0\x23"))
    w.ppp("client", LCP, cp(2, 2, b"\x03\x04\xc0\x23")).ppp("server", LCP, cp(2, 1, b"\x05\x06\x11\x22\x33\x44"))
    t = run_frames(w.frames).only
    assert "auth-method-mismatch" not in codes(t) and t.phase is Phase.AUTH


# ---------------------------------------------------------------------- 2. orderly teardown races
@pytest.mark.tshark
def test_icmp_for_a_repeated_terminate_after_the_client_left_is_teardown(data_dir: Path) -> None:
    """The server hangs up; its Terminate-Request repeated after the client's pptp left gets ICMP protocol-
    unreachable from the client: the server's hang-up is the verdict, the ICMP a note."""
    path = data_dir / "crafted-teardown-lcp-icmp.pcap"
    res = run_capture(path)
    t = res.only
    assert errors(t) == ["peer-terminated"] and "gre-icmp-unreachable" not in codes(t)
    info = finding(t, "teardown-icmp")
    assert info.severity is Severity.INFO
    term = tshark(path, "lcp && ppp.code == 5", "ip.src", "ppp.data")
    icmp = tshark(path, "icmp.type == 3", "icmp.code", "ip.src", "ip.dst")
    assert len(icmp) == 1 and icmp[0][1] == "2"
    src, inner_src, inner_dst = icmp[0][2].split(",")[0], icmp[0][2].split(",")[1], icmp[0][3].split(",")[1]
    assert int(term[0][0]) < int(term[1][0]) < int(icmp[0][0])  # the ICMP quotes the repeated one
    assert info.detail == (
        f"After the server began to end the session (LCP Terminate-Request '{wire_text(term[0][2])}', frame "
        f"{term[0][0]}), a late packet was answered with ICMP protocol unreachable from {src} for GRE "
        f"{inner_src} → {inner_dst}.")
    assert info.evidence == [int(term[0][0]), int(term[1][0]), int(icmp[0][0])]
    _, correlator = run_with_nat(path)
    assert not [p for p in correlator.problems if p.code is nat.NatProblemCode.GRE_ICMP_UNREACHABLE]


@pytest.mark.tshark
def test_nat_helper_dropping_the_call_at_the_disconnect_is_teardown(data_dir: Path) -> None:
    """Lab s10 plus the race on the gateway: its ICMP for the server's last GRE is neither the tunnel's error
    nor a NAT problem, on either leg."""
    path = data_dir / "crafted-s10-teardown-icmp-both.pcapng"
    res = run_capture(path)
    assert {t.iface: errors(t) for t in res.tunnels} == {"lan0": ["peer-terminated"], "wan0": ["peer-terminated"]}
    wan = next(t for t in res.tunnels if t.iface == "wan0")
    cdn = frames_of(path, "pptp.control_message_type == 13 && frame.interface_name == wan0")
    icmp = frames_of(path, "icmp.type == 3 && icmp.code == 2")
    assert len(icmp) == 1 and icmp[0] > cdn[0] and icmp[0] in finding(wan, "teardown-icmp").evidence
    tracker, correlator = run_with_nat(path)
    legs = list(tracker.tunnels.values())
    assert all(correlator.peer(t) is not None for t in legs)  # the two legs are one session
    assert correlator.problems == []
    assert not any(line.startswith("  nat!") for t in legs for line in nat.report_lines(correlator)(t))


def test_icmp_for_late_client_gre_after_a_client_hangup_is_no_error() -> None:
    """The client hangs up over LCP; an ICMP error for its GRE still in flight changes nothing."""
    w = Wire().up()
    w.at(1).ppp("client", LCP, cp(5, 9, b"User request"))
    late = w.frames[-1][3]
    w.ppp("server", LCP, cp(6, 9)).raw(icmp_error(w, "client", 3, 2, late))
    w.tcp("client", FIN | ACK).tcp("server", RST)
    t = run_frames(w.frames).only
    assert errors(t) == [] and {"client-hangup", "teardown-icmp"} <= set(codes(t))


def test_icmp_for_gre_that_never_went_both_ways_is_still_the_cause() -> None:
    """An ICMP error after a give-up, about a tunnel whose GRE never came back, is no teardown race."""
    w = Wire().setup()
    for i in range(3):
        w.ppp("client", LCP, cp(1, i, b"")).at(3)
    gre = w.frames[-1][3]
    w.ctl("client", b"\x00\x10\x00\x01\x1a\x2b\x3c\x4d\x00\x0c\x00\x00\x12\x34\x00\x00")  # Call-Clear-Request
    w.raw(icmp_error(w, "client", 3, 13, gre, origin="203.0.113.1"))
    t = run_frames(w.frames).only
    assert errors(t) == ["gre-icmp-unreachable"]


# ---------------------------------------------------------------------- 3. SYNs to 1723 never answered
@pytest.mark.tshark
def test_syns_unanswered_at_the_end_of_a_file(data_dir: Path) -> None:
    path = data_dir / "crafted-syn-unanswered.pcap"
    t = run_capture(path).only
    assert errors(t) == ["server-unreachable"]
    f = finding(t, "server-unreachable")
    syns = tshark(path, "tcp.flags.syn == 1 && tcp.flags.ack == 0", "ip.dst", "tcp.dstport", "frame.time_epoch")
    assert frames_of(path, "tcp.srcport == 1723 || icmp") == []  # no answer of any kind
    span = float(syns[-1][3]) - float(syns[0][3])
    assert f.detail == (f"Control connection never established: {len(syns)} SYNs to {syns[0][1]}:{syns[0][2]} over "
                        f"{span:.1f} s, no answer.")
    assert f.detail.endswith("4 SYNs to 198.51.100.2:1723 over 7.2 s, no answer.")
    assert not f.provisional and f.evidence == [int(r[0]) for r in syns]
    # the input is over: the attempt failed in its TCP handshake, with no answer as how it ended
    assert t.phase is Phase.FAILED and t.failed_in is Phase.TCP
    assert (t.close.how, t.close.reason) == ("no-answer", "4 SYN unanswered")


def _syns(*at: float) -> Wire:
    w = Wire()
    for dt in at:
        w.at(dt)
        w.seq["client"] = 1000
        w.tcp("client", SYN)
    return w


def test_syns_unanswered_live_are_provisional_until_the_syn_timeout() -> None:
    """A Windows client: SYN, retransmissions after 3 and 6 more seconds, gives up at 21 s."""
    w = _syns(0, 3, 6)
    res = run_frames(w.frames, clock=True, until=T0 + 25)
    changes = [(c.kind, c.finding.provisional, c.ts - T0) for c in res.changes
               if c.finding.code == "server-unreachable"]
    third = w.frames[2][0] - T0
    assert changes[0] == ("finding", True, third)  # at the second retransmission
    assert changes[1][:2] == ("finding", False) and 21 <= changes[1][2] < 22  # confirmed at --syn-timeout
    assert len(changes) == 2
    f = finding(res.only, "server-unreachable")
    assert not f.provisional and 21 <= f.ts - T0 < 22


def test_a_provisional_finding_says_so_and_what_decides_it() -> None:
    w = _syns(0, 3, 6)
    res = run_frames(w.frames, clock=True, until=T0 + 12, exhaustive=True)
    first = next(c.finding for c in res.changes if c.finding.code == "server-unreachable")
    assert first.provisional and first.to_dict()["provisional"] is True
    assert first.detail == ("No answer so far: 3 SYNs to 198.51.100.2:1723 over 9.0 s got none. A client gives up "
                            "after 21 s (--syn-timeout): provisional until 21.0 s after the first SYN.")


def test_one_retransmission_is_not_yet_provisional() -> None:
    w = _syns(0, 3)
    res = run_frames(w.frames, clock=True, until=T0 + 8, exhaustive=True)
    provisional = [c for c in res.changes if c.finding.provisional]
    assert provisional == []


def test_a_syn_just_before_the_end_of_a_file_is_no_verdict() -> None:
    """A capture cut right after a SYN has not seen whether it was answered."""
    w = Wire().handshake()
    w.at(1).tcp("client", SYN)
    assert "server-unreachable" not in codes(run_frames(w.frames).tunnels[-1])


def test_a_synack_withdraws_the_provisional_finding() -> None:
    w = _syns(0, 1, 2)
    w.at(1).tcp("server", SYN | ACK).tcp("client", ACK)
    res = run_frames(w.frames, clock=True)
    assert [(c.kind, c.finding.provisional) for c in res.changes] == [("finding", True), ("withdrawn", True)]


# ---------------------------------------------------------------------- 4. root cause over symptom
@pytest.mark.tshark
def test_server_hangs_up_before_any_gre_came_back(data_dir: Path) -> None:
    """Lab s3b seen from inside the NAT: the gateway answered the server's GRE with ICMP outside, so no GRE
    comes back in; pptpd drops the call within a second. The GRE path is the cause, the FIN its evidence."""
    path = data_dir / "s3b-gre-forward-drop-inside.pcap"
    t = run_capture(path).only
    assert first_error(t) == "gre-blocked" and errors(t) == ["gre-blocked"] and "peer-terminated" not in codes(t)
    assert t.failed_in is Phase.LCP
    f = finding(t, "gre-blocked")
    server = "198.51.100.2"
    requests = frames_of(path, f"lcp && ppp.code == 1 && ip.dst == {server}")
    assert len(requests) == 1 and frames_of(path, f"gre && ip.src == {server}") == []
    ocrp = frames_of(path, "pptp.control_message_type == 8")
    fin = frames_of(path, f"tcp.flags.fin == 1 && ip.src == {server}")
    assert frames_of(path, f"pptp && ip.src == {server} && frame.number > {ocrp[0]}") == []  # no PPTP message
    waited = epoch(path, fin[0]) - epoch(path, requests[0])
    hung_up = epoch(path, fin[0]) - epoch(path, ocrp[0])
    assert f.detail == (
        f"Call established, but the client's 1 LCP Configure-Request in {waited:.1f} s got no answer and no GRE "
        f"at all came from the server: its GRE never arrives here. The server hung up {hung_up:.2f} s after "
        "Outgoing-Call-Reply (TCP FIN).")
    assert f.evidence == [ocrp[0], requests[0], fin[0]]


def test_both_legs_keep_the_most_specific_gre_cause(data_dir: Path) -> None:
    """Outside, the gateway's ICMP says why; inside, the missing GRE does."""
    res = run_capture(data_dir / "s3b-gre-forward-drop-both.pcapng")
    assert {t.iface: errors(t) for t in res.tunnels} == {"wan0": ["gre-icmp-unreachable"], "lan0": ["gre-blocked"]}


# ---------------------------------------------------------------------- 5. binary Terminate data
@pytest.mark.tshark
def test_binary_terminate_data_is_shown_in_hex(data_dir: Path) -> None:
    path = data_dir / "crafted-binary-terminate.pcap"
    t = run_capture(path).only
    term = tshark(path, "lcp && ppp.code == 5", "ip.src", "ppp.data")
    assert term[0][1] == "198.51.100.2"
    octets = bytes.fromhex(term[0][2].replace(":", ""))
    shown = " ".join(f"{b:02x}" for b in octets)
    f = finding(t, "peer-terminated")
    assert f.detail == (f"The server ended the PPP session: LCP Terminate-Request data {shown} ({len(octets)} octets, "
                        "not text).")
    ended = next(line for line in tunnel_lines(t) if line.lstrip().startswith("ended"))
    assert ended.endswith(f"lcp-terminate data {shown} ({len(octets)} octets, not text) (then tcp-fin by server; "
                          "call-clear by client)")
    row = ending(make_detail(t, t.last_seen), lambda _name: Style()).plain
    assert f"lcp-terminate data {shown} (8 octets, not text)" in row and '"' not in row.split("\n")[0]


def test_terminate_text_stays_quoted(data_dir: Path) -> None:
    t = run_capture(data_dir / "s9-server-hangup-outside.pcap").only
    ended = next(line for line in tunnel_lines(t) if line.lstrip().startswith("ended"))
    assert 'lcp-terminate "MPPE disabled"' in ended
    assert "LCP Terminate-Request 'MPPE disabled'" in finding(t, "peer-terminated").detail


@pytest.mark.parametrize("data,said", [
    (b"User request", "User request"),
    (b"User request\x00\x00", "User request"),  # C-string padding
    (b"Authentication failed\r\n", "Authentication failed\r\n"),
    (b"", None),
    (b"\x00\x00", "data 00 00 (2 octets, not text)"),
    (b"\x1b[2J\x1b]52;c;AAAA\x07", "data 1b 5b 32 4a 1b 5d 35 32 3b 63 3b 41 41 41 41 07 (16 octets, not text)"),
    (b"caf\xe9", "data 63 61 66 e9 (4 octets, not text)"),  # Latin-1, not UTF-8
    (bytes(range(20)), "data 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f … (20 octets, not text)"),
])
def test_terminate_reason_text_or_hex(data: bytes, said: str | None) -> None:
    reason = terminate_reason(data)
    assert reason == said
    assert isinstance(reason, HexData) == (said is not None and said.startswith("data "))


def test_hostile_terminate_text_reaches_the_report_escaped() -> None:
    """Text with a terminal escape is not text: it is shown as octets, never sent to the terminal."""
    w = Wire().up()
    w.at(1).ppp("server", LCP, cp(5, 9, b"\x1b[2Jbye"))
    t = run_frames(w.frames).only
    assert "\x1b" not in finding(t, "peer-terminated").detail and "\x1b" not in "\n".join(tunnel_lines(t))


def test_crafted_frames_re_encode_octet_for_octet() -> None:
    """The writer re-parses each frame with scapy: it must give back the same octets."""
    from scapy.layers.l2 import Ether
    for build in verdict_captures.FILES.values():
        for _, _, _, data in build():
            assert bytes(Ether(data)) == data


def test_s10_rewrite_keeps_every_lab_frame(data_dir: Path) -> None:
    lab = read_frames(data_dir / "s10-server-ctrl-sigterm-both.pcapng")
    crafted = read_frames(data_dir / "crafted-s10-teardown-icmp-both.pcapng")
    assert len(crafted) == len(lab) + 2
    assert [f[3] for f in crafted if f[3] in {x[3] for x in lab}] == [f[3] for f in lab]


def test_late_gre_the_gateway_drops_after_the_disconnect_is_no_gateway_loss(data_dir: Path) -> None:
    """Three more server GRE packets after the Call-Disconnect-Notify, dropped by the gateway whose helper removed
    the call: a teardown race, not GRE lost by the gateway."""
    placed = verdict_captures.s10_teardown_icmp()
    late = [f for f, _ in placed if f[1] == "wan0" and verdict_captures._gre_from_server(f[3])][-1]
    ts, iface, linktype, data = late
    after = max(p for _, p in placed)
    more = [((ts + 0.002 * (i + 1), iface, linktype, data), after + 1 + i) for i in range(3)]
    frames = [f for f, _ in sorted([*placed, *more], key=lambda x: x[1])]
    tracker = Tracker()
    Diagnoser().attach(tracker)
    correlator = nat.attach(tracker)
    for n, (fts, fiface, flink, fdata) in enumerate(frames, 1):
        tracker.feed(n, fts, fiface, flink, fdata)
    tracker.finish()
    assert {t.iface: errors(t) for t in tracker.tunnels.values()} == {"lan0": ["peer-terminated"],
                                                                       "wan0": ["peer-terminated"]}
    assert all(correlator.peer(t) is not None for t in tracker.tunnels.values())
    assert correlator.problems == []


def test_terminate_text_with_an_escape_sequence_is_text_and_binary_data_is_hex() -> None:
    """A peer's text with a few control characters stays text (every display escapes it); bytes that are
    not text (a magic number, random octets) are hex."""
    from pptptop.track.negotiation import HexData, terminate_reason

    assert terminate_reason(b"bye \x1b[2J now") == "bye \x1b[2J now"
    assert terminate_reason(b"User request\x00\x00") == "User request"
    for raw in (b"\x00\x01\x02\x03", b"\xde\xad\xbe\xef", b"\x1b[2J", b"\x07\x08ab"):
        assert isinstance(terminate_reason(raw), HexData), raw
