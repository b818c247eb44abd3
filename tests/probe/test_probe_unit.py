"""The probe without a network: its packets, its LCP choices, its credentials and its output.

The live behaviour against a server is in tests/integration/test_probe.py (root, namespaces).
"""

from __future__ import annotations

import io
import json
import socket
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import GRE_PPTP

from pptptop.cli import build_parser
from pptptop.decode.mschap_crypto import nt_password_hash
from pptptop.inside.secrets import SecretError
from pptptop.probe import craft as C
from pptptop.probe import credentials, main, render
from pptptop.probe.client import Credentials, Probe, ProbeResult, ProbeSockets, Status, Step

SERVER = "192.0.2.7"


def ipv4(proto: int, src: str, dst: str, payload: bytes) -> bytes:
    return bytes(IP(src=src, dst=dst, proto=proto) / payload)


class Recorder:
    """Stands in for the raw GRE socket: keeps what the probe sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        assert addr == (SERVER, 0)
        self.sent.append(data)
        return len(data)

    def frames(self) -> list[tuple[int, C.Control]]:
        out = []
        for d in self.sent:
            pkt = C.parse_gre(ipv4(47, "192.0.2.1", SERVER, d))
            assert pkt is not None and pkt.protocol is not None
            cp = C.parse_control(pkt.payload)
            assert cp is not None
            out.append((pkt.protocol, cp))
        return out


class TestCraft:
    def test_gre_round_trip(self) -> None:
        frame = C.control(C.LCP, C.CONF_REQ, 9, C.options([(C.OPT_MAGIC, C.u32(0x01020304))]))
        raw = C.gre(0x1234, 7, 3, frame)
        flags, proto, plen, key = struct.unpack_from("!HHHH", raw)
        assert proto == C.GRE_PPP and key == 0x1234 and plen == len(frame) + 2
        assert flags & 0x1000 and flags & 0x0080  # sequence and acknowledgement present (RFC 2637 §4.1)
        pkt = C.parse_gre(ipv4(47, SERVER, "192.0.2.1", raw))
        assert pkt is not None
        assert (pkt.source, pkt.call_id, pkt.seq, pkt.protocol) == (SERVER, 0x1234, 7, C.LCP)
        cp = C.parse_control(pkt.payload)
        assert cp is not None and (cp.code, cp.ident) == (C.CONF_REQ, 9)
        assert C.parse_options(cp.data) == [(C.OPT_MAGIC, b"\x01\x02\x03\x04")]

    def test_scapy_agrees(self) -> None:
        raw = C.gre(5, 1, None, C.control(C.LCP, C.ECHO_REQ, 1, C.u32(0)))
        g = GRE_PPTP(raw)
        assert (g.call_id, g.sequence_number, g.seqnum_present, g.acknum_present) == (5, 1, 1, 0)

    def test_compressed_protocol_and_ack_only(self) -> None:
        hdr = struct.pack("!HHHHI", 0x3001, C.GRE_PPP, 3, 9, 1)
        pkt = C.parse_gre(ipv4(47, SERVER, "192.0.2.1", hdr + b"\x21\x45\x00"))
        assert pkt is not None and pkt.protocol == 0x21
        ack_only = struct.pack("!HHHHI", 0x2081, C.GRE_PPP, 0, 9, 4)
        pkt = C.parse_gre(ipv4(47, SERVER, "192.0.2.1", ack_only))
        assert pkt is not None and pkt.protocol is None and pkt.seq is None

    def test_not_enhanced_gre(self) -> None:
        plain = struct.pack("!HH", 0, 0x0800) + bytes(20)
        assert C.parse_gre(ipv4(47, SERVER, "192.0.2.1", plain)) is None
        assert C.parse_gre(b"\x45") is None

    def test_icmp_protocol_unreachable_quoting_our_gre(self) -> None:
        ours = IP(src="192.0.2.1", dst=SERVER, proto=47) / C.gre(5, 1, None, b"\xc0\x21")
        err = bytes(IP(src=SERVER, dst="192.0.2.1") / ICMP(type=3, code=2) / bytes(ours)[:28])
        assert C.parse_icmp_gre(err, SERVER) == (3, 2)
        assert C.parse_icmp_gre(err, "192.0.2.99") is None  # GRE to another host
        echo = bytes(IP(src=SERVER, dst="192.0.2.1") / ICMP(type=0) / bytes(40))
        assert C.parse_icmp_gre(echo, SERVER) is None

    def test_malformed_options(self) -> None:
        assert C.parse_options(b"\x01\x01") is None
        assert C.parse_options(b"\x01\x05\x00") is None
        assert C.parse_control(b"\x01\x01\x00\x09\x00") is None  # Length beyond the data


def probe(creds: Credentials | None) -> tuple[Probe, Recorder]:
    rec = Recorder()
    p = Probe("srv", SERVER, ProbeSockets(rec, None), timeout=1.0, credentials=creds)  # type: ignore[arg-type]
    p.peer_call_id = 0x0A0B
    return p, rec


def server_request(p: Probe, ident: int, auth: bytes) -> None:
    opts = [(C.OPT_MRU, C.u16(1400)), (C.OPT_AUTH, auth), (C.OPT_MAGIC, C.u32(0x5E4A0001))]
    frame = C.control(C.LCP, C.CONF_REQ, ident, C.options(opts))
    p._read_gre(ipv4(47, SERVER, "192.0.2.1", C.gre(p.call_id, ident, None, frame)))


MSCHAPV2 = C.u16(C.CHAP) + bytes((C.MSCHAP_V2,))
EAP = C.u16(C.EAP)


class TestLcpChoices:
    def test_refused_method_is_nakked_with_mschapv2_and_the_order_kept(self) -> None:
        p, rec = probe(Credentials("alice", None, nt_password_hash("pw")))
        server_request(p, 1, EAP)
        server_request(p, 2, C.u16(C.PAP))  # an NT hash cannot answer PAP
        server_request(p, 3, MSCHAPV2)
        sent = rec.frames()
        assert [cp.code for _, cp in sent] == [C.CONF_NAK, C.CONF_NAK, C.CONF_ACK]
        assert C.parse_options(sent[0][1].data) == [(C.OPT_AUTH, MSCHAPV2)]
        assert p.auth_asked == ["EAP", "PAP", "MS-CHAPv2"] and p.auth_agreed == "MS-CHAPv2"
        assert p.lcp_answered  # a new request after our Nak: our GRE reached the server
        assert p._lcp_details()["mru"] == 1400 and p._lcp_details()["magic"] == "0x5e4a0001"

    def test_mschapv1_is_answered_and_eap_named(self) -> None:
        """RFC 2433: an NT hash answers MS-CHAPv1, so it is agreed to; EAP is Nak'd and said to be unspoken."""
        p, rec = probe(Credentials("alice", None, nt_password_hash("pw")))
        server_request(p, 1, EAP)
        server_request(p, 2, C.u16(C.CHAP) + bytes((C.MSCHAP_V1,)))
        assert [cp.code for _, cp in rec.frames()] == [C.CONF_NAK, C.CONF_ACK]
        assert p.auth_agreed == "MS-CHAPv1"
        assert p.auth_refused == {"EAP": "the probe does not speak EAP"}

    def test_eap_only_is_named_in_the_mismatch(self) -> None:
        p, _ = probe(Credentials("alice", None, nt_password_hash("pw")))
        server_request(p, 1, EAP)
        assert p._mismatch() == ("no authentication method in common: the server asks for EAP, which the probe "
                                 "does not speak")
        server_request(p, 2, C.u16(C.PAP))
        assert "PAP, PAP needs the password, not an NT hash" in p._mismatch()

    def test_terminate_after_our_nak_proves_both_ways(self) -> None:
        p, _ = probe(Credentials("alice", "pw", nt_password_hash("pw")))
        server_request(p, 1, EAP)
        assert not p.lcp_answered
        frame = C.control(C.LCP, C.TERM_REQ, 2, b"No auth is possible")
        p._read_gre(ipv4(47, SERVER, "192.0.2.1", C.gre(p.call_id, 2, None, frame)))
        assert p.lcp_answered and p.terminated == "No auth is possible"

    def test_repeated_request_is_no_answer(self) -> None:
        p, rec = probe(None)
        server_request(p, 1, EAP)  # without credentials any method is agreed to
        server_request(p, 1, EAP)
        assert [cp.code for _, cp in rec.frames()] == [C.CONF_ACK, C.CONF_ACK]
        assert not p.lcp_answered

    def test_gre_to_another_call_id_is_counted_not_taken(self) -> None:
        p, rec = probe(None)
        frame = C.control(C.LCP, C.CONF_REQ, 1, b"")
        p._read_gre(ipv4(47, SERVER, "192.0.2.1", C.gre(p.call_id ^ 1, 1, None, frame)))
        p._read_gre(ipv4(47, "192.0.2.99", "192.0.2.1", C.gre(p.call_id, 1, None, frame)))
        assert p.wrong_keys == {p.call_id ^ 1} and p.gre_in == 0 and rec.sent == []


    def test_one_way_gre_says_only_what_this_side_can_tell(self) -> None:
        """The server's packets keep coming and ours are never answered: our GRE does not reach it. Its first
        packet and then nothing: the way back may have closed after it, and the probe cannot tell which."""
        p, _ = probe(None)
        p._pump = lambda *a, **k: False  # type: ignore[method-assign]  # no answer within the timeout
        server_request(p, 1, MSCHAPV2)
        summary, code = p._gre({})
        assert code == "gre-one-way"
        assert summary.startswith("one-way GRE: 1 packet came from the server, then none")
        assert "either our GRE does not reach the server or its GRE after the first packet does not reach us" \
            in summary and "cannot be told apart" in summary
        server_request(p, 2, MSCHAPV2)  # the server asks again: it never heard our answer
        summary, code = p._gre({})
        assert code == "gre-one-way"
        assert summary.startswith("one-way GRE: 2 packets came from the server") and "(our GRE does not reach it)" \
            in summary


class TestCredentials:
    def args(self, *argv: str) -> object:
        return build_parser().parse_args(["--probe", "192.0.2.7", *argv])

    def test_password_never_in_repr(self) -> None:
        c = credentials(self.args("--password", "alice:s3cr3t-pw"))
        assert c is not None and c.user == "alice" and c.password == "s3cr3t-pw"
        assert c.nt_hash == nt_password_hash("s3cr3t-pw")
        assert "s3cr3t" not in repr(c)

    def test_one_user_from_a_secrets_file(self, tmp_path: Path) -> None:
        f = tmp_path / "chap-secrets"
        f.write_text('alice * "alice-pw" *\nbob * "bob-pw" *\n')
        with pytest.raises(SecretError, match="--probe-user"):
            credentials(self.args("--secrets", str(f)))
        c = credentials(self.args("--secrets", str(f), "--probe-user", "bob"))
        assert c is not None and c.user == "bob" and c.password == "bob-pw"
        with pytest.raises(SecretError):
            credentials(self.args("--secrets", str(f), "--probe-user", "carol"))

    def test_none_given(self) -> None:
        assert credentials(self.args()) is None

    def test_usage(self) -> None:
        err = io.StringIO()
        assert main(self.args("-r", "x.pcap"), io.StringIO(), err) == 64  # type: ignore[arg-type]
        assert "--probe talks to a server" in err.getvalue()
        err = io.StringIO()
        assert main(self.args("-i", "eth0"), io.StringIO(), err) == 64  # type: ignore[arg-type]
        assert "give -w FILE too" in err.getvalue()


class TestRender:
    def result(self, host: str, ok: bool, seconds: float) -> ProbeResult:
        r = ProbeResult(host, "192.0.2.7", 0.0)
        r.steps.append(Step("tcp", Status.OK, seconds, "connected", {"connect_ms": seconds * 1000}))
        if not ok:
            r.steps.append(Step("control", Status.FAILED, 0.5, "refused", {"vendor": "x\\x1b"}, "control-refused"))
        r.steps.append(Step("auth", Status.SKIPPED, None, "not tried"))
        return r

    def test_report_and_timing(self) -> None:
        runs = [self.result("srv\x1b[2J", True, 0.001), self.result("srv", False, 0.003)]
        text = render.report(runs)
        assert "\x1b" not in text and "srv\\x1b[2J" in text
        assert "result: failed at step control (control-refused)" in text
        assert "tcp       ok 2/2  min 1.0 ms  mean 2.0 ms  max 3.0 ms" in text
        assert "control   ok 0/1" in text

    def test_report_with_the_capture(self) -> None:
        capture = {"file": "p.pcap", "frames": 12, "kernel_drops": 0, "tunnels": 1,
                   "findings": ["auth-failed"], "messages": []}
        text = render.report([self.result("srv", False, 0.002)], capture, ["Tunnel 1  a → b", "  diagnosis"])
        assert "capture of the probe's packets: p.pcap, 12 frames" in text
        assert "passive findings: auth-failed\n\nTunnel 1  a → b\n  diagnosis\n" in text
        assert "passive findings" not in render.report([self.result("srv", True, 0.002)])

    def test_json_document(self) -> None:
        doc = json.loads(json.dumps(render.document([self.result("srv", False, 0.002)])))
        assert doc["probe"]["ok"] is False
        (run,) = doc["runs"]
        assert (run["failed_step"], run["code"]) == ("control", "control-refused")
        assert [s["status"] for s in run["steps"]] == ["ok", "failed", "skipped"]
        assert doc["timing"]["control"] == {"runs": 1, "ok": 0, "failed": 1, "min": None, "mean": None,
                                            "max": None}
        assert "auth" not in doc["timing"]


class TestUiPanel:
    """The probe's steps in the UI: lines from the feed, in Rich Text (markup and controls shown as text)."""

    def test_steps_panel_escapes(self) -> None:
        import asyncio

        from textual.app import App, ComposeResult

        from pptptop.probe.live import ProbeFeed
        from pptptop.ui.widgets.probe_steps import ProbeSteps

        feed = ProbeFeed("probe of srv")
        feed.step(Step("tcp", Status.OK, 0.001, "connected"))
        feed.step(Step("control", Status.FAILED, 0.5, "refused: [bold red]PAC[/] \x1b[2J", {}, "control-refused"))

        class One(App[None]):
            def compose(self) -> ComposeResult:
                yield ProbeSteps(feed)

        async def run() -> str:
            app = One()
            async with app.run_test(size=(120, 8)) as pilot:
                await pilot.pause()
                return str(app.query_one(ProbeSteps).render())

        text = asyncio.run(run())
        assert text.splitlines()[0] == "probe of srv: running, control failed"
        assert "[ ok ] tcp" in text
        assert "refused: [bold red]PAC[/] \\x1b[2J  [control-refused]" in text
        assert "\x1b" not in text


def test_sockets_close_when_none() -> None:
    ProbeSockets(None, None, "no").close()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ProbeSockets(s, None).close()
    assert s.fileno() == -1
