"""Live, as root: ``pptptop --probe`` against a scripted PAC in a network namespace, made to fail at each step.

    probe ns (10.91.0.1) ── veth ── server ns (10.91.0.2): probe_server.py, nftables for the GRE/SYN faults

The probe runs as the real command (``python -m pptptop --probe ... --json``)
in its own namespace; the server (tests/integration/probe_server.py) writes
down what it received, so the teardown is checked from the server's side.
Every packet stays between the two namespaces the test creates; they are
deleted afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).with_name("probe_server.py")
PILOT = Path(__file__).with_name("probe_ui_pilot.py")
PROBE_IP, SERVER_IP = "10.91.0.1", "10.91.0.2"
USER, PASSWORD = "alice", "correct horse"
TIMEOUT = "1.5"


def sh(*cmd: str, ns: str | None = None) -> str:
    full = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    r = subprocess.run(full, capture_output=True, text=True, timeout=30, check=False)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(full)} failed: {r.stderr.strip()}")
    return r.stdout


@dataclass
class Net:
    tmp: Path
    probe_ns: str
    server_ns: str
    server: subprocess.Popen[bytes] | None = None
    server_ip: str = SERVER_IP
    gw_ns: str | None = None

    def nft(self, rules: str, ns: str | None = None) -> None:
        path = self.tmp / "rules.nft"
        path.write_text(rules)
        sh("nft", "-f", str(path), ns=ns or self.server_ns)

    def start_server(self, mode: str = "ok") -> None:
        self.stop_file = self.tmp / "stop"
        self.report = self.tmp / "server.json"
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.server_ns, sys.executable, str(SERVER), "--bind", self.server_ip,
             "--mode", mode, "--user", USER, "--password", PASSWORD, "--report", str(self.report),
             "--stop", str(self.stop_file)], cwd=ROOT)
        end = time.monotonic() + 20
        while ":1723" not in sh("ss", "-ltnH", ns=self.server_ns):
            assert self.server.poll() is None, "the scripted server died"
            assert time.monotonic() < end, "the scripted server did not listen"
            time.sleep(0.05)

    def server_saw(self) -> dict[str, Any]:
        end = time.monotonic() + 5
        while not self.report.exists() and time.monotonic() < end:
            time.sleep(0.05)
        return json.loads(self.report.read_text())

    def probe(self, *extra: str, credentials: bool = True,
              wrap: tuple[str, ...] = ()) -> tuple[int, dict[str, Any], str]:
        code, out, err = self.probe_text("--json", *extra, credentials=credentials, wrap=wrap)
        return code, json.loads(out), err

    def probe_text(self, *extra: str, credentials: bool = True, wrap: tuple[str, ...] = ()) -> tuple[int, str, str]:
        cmd = [sys.executable, "-m", "pptptop", "--probe", self.server_ip, "--probe-timeout", TIMEOUT, *extra]
        if credentials:
            cmd += ["--password", f"{USER}:{PASSWORD}"]
        r = subprocess.run(["ip", "netns", "exec", self.probe_ns, *wrap, *cmd], capture_output=True, text=True,
                           timeout=120, cwd=ROOT, check=False)
        assert r.stdout, r.stderr
        return r.returncode, r.stdout, r.stderr


def _cleanup(n: Net) -> None:
    if n.server is not None:
        n.stop_file.touch()
        try:
            n.server.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(n.server.pid, signal.SIGKILL)
            n.server.wait(5)
    for ns in (n.probe_ns, n.server_ns, n.gw_ns):
        if ns is not None:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    tag = uuid.uuid4().hex[:6]
    n = Net(tmp_path, f"ppp{tag}c", f"ppp{tag}s")
    sh("ip", "netns", "add", n.probe_ns)
    try:
        sh("ip", "netns", "add", n.server_ns)
        sh("ip", "link", "add", "pc", "netns", n.probe_ns, "type", "veth", "peer", "name", "ps",
           "netns", n.server_ns)
        for ns, dev, ip in ((n.probe_ns, "pc", PROBE_IP), (n.server_ns, "ps", SERVER_IP)):
            sh("ip", "addr", "add", f"{ip}/24", "dev", dev, ns=ns)
            sh("ip", "link", "set", dev, "up", ns=ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        yield n
    finally:
        _cleanup(n)


NAT_LAN, NAT_GW_LAN, NAT_GW_WAN, NAT_SERVER = "10.93.0.2", "10.93.0.1", "198.51.100.1", "198.51.100.2"
NAT_MASQUERADE = ('  chain postrouting { type nat hook postrouting priority srcnat; policy accept;\n'
                  '    oifname "wan" masquerade; }\n')
NAT_HELPER = ('table ip probe_nat {\n'
              '  ct helper pptp-helper { type "pptp" protocol tcp; }\n'
              '  chain prerouting { type filter hook prerouting priority filter; policy accept;\n'
              '    iifname "lan" tcp dport 1723 ct helper set "pptp-helper"; }\n'
              + NAT_MASQUERADE + '}\n')
NAT_NO_HELPER = 'table ip probe_nat {\n' + NAT_MASQUERADE + '}\n'


@pytest.fixture
def nat_net(tmp_path: Path) -> Iterator[Net]:
    """probe ns ── lan ─[ gw ns: masquerade, with or without the pptp helper ]─ wan ── server ns;
    the server has no route back to the probe's network: NAT only."""
    tag = uuid.uuid4().hex[:6]
    n = Net(tmp_path, f"ppn{tag}c", f"ppn{tag}s", server_ip=NAT_SERVER, gw_ns=f"ppn{tag}g")
    assert n.gw_ns is not None
    try:
        for ns in (n.probe_ns, n.gw_ns, n.server_ns):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "link", "add", "pc", "netns", n.probe_ns, "type", "veth", "peer", "name", "lan", "netns", n.gw_ns)
        sh("ip", "link", "add", "ps", "netns", n.server_ns, "type", "veth", "peer", "name", "wan", "netns", n.gw_ns)
        for ns, dev, ip in ((n.probe_ns, "pc", NAT_LAN), (n.gw_ns, "lan", NAT_GW_LAN), (n.gw_ns, "wan", NAT_GW_WAN),
                            (n.server_ns, "ps", NAT_SERVER)):
            sh("ip", "addr", "add", f"{ip}/24", "dev", dev, ns=ns)
            sh("ip", "link", "set", dev, "up", ns=ns)
        sh("ip", "route", "add", "default", "via", NAT_GW_LAN, ns=n.probe_ns)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=n.gw_ns)
        yield n
    finally:
        _cleanup(n)


def chain(hook: str, rule: str) -> str:
    """An nftables table with one base chain on ``hook`` holding ``rule`` (in the server's namespace)."""
    return f"table ip t_{hook} {{\n chain c {{\n  type filter hook {hook} priority 0\n  {rule}\n }}\n}}\n"


def steps(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (run,) = doc["runs"]
    return {s["name"]: s for s in run["steps"]}


def failed_at(doc: dict[str, Any]) -> tuple[str | None, str | None]:
    (run,) = doc["runs"]
    return run["failed_step"], run["code"]


class TestProbeControl:
    def test_port_closed(self, net: Net) -> None:
        code, doc, _ = net.probe()
        assert code == 69
        assert failed_at(doc) == ("tcp", "server-refused")
        assert [s["name"] for s in doc["runs"][0]["steps"]] == ["tcp"]

    def test_syn_dropped(self, net: Net) -> None:
        net.start_server()
        net.nft(chain("input", "tcp dport 1723 drop"))
        t0 = time.monotonic()
        _code, doc, _ = net.probe()
        assert failed_at(doc) == ("tcp", "server-unreachable")
        assert 1.4 < time.monotonic() - t0 < 20
        assert steps(doc)["tcp"]["details"]["syn_retries"] >= 1  # the kernel resends a SYN after 1 s

    def test_sccrp_refused(self, net: Net) -> None:
        net.start_server("sccrp-refused")
        _, doc, _ = net.probe()
        assert failed_at(doc) == ("control", "control-refused")
        control = steps(doc)["control"]["details"]
        assert control["result_code"] == 4 and control["result"] == "Requester not authorized"
        assert control["vendor"] == "scripted \\x1b[31mPAC"  # the escape from the wire is shown, not sent
        assert net.server_saw()["control"][-1] == "stopccrq"  # no call to clear: only Stop-Control

    def test_ocrp_busy(self, net: Net) -> None:
        net.start_server("ocrp-busy")
        _, doc, _ = net.probe()
        assert failed_at(doc) == ("call", "call-refused")
        assert steps(doc)["call"]["details"]["result"] == "Busy"
        assert steps(doc)["control"]["details"]["host_name"] == "pptptop-pac"
        assert steps(doc)["control"]["details"]["maximum_channels"] == 8


class TestProbeGre:
    def test_gre_dropped_both_ways(self, net: Net) -> None:
        net.start_server()
        net.nft(chain("input", "ip protocol gre drop") + chain("output", "ip protocol gre drop"))
        _, doc, _ = net.probe("-i", "pc", "-w", str(net.tmp / "probe.pcap"))
        assert failed_at(doc) == ("gre", "gre-blocked")
        assert steps(doc)["gre"]["details"]["received"] == 0
        assert doc["capture"]["findings"] == ["gre-blocked"]  # the passive engine names it the same

    def test_gre_dropped_towards_the_server(self, net: Net) -> None:
        net.start_server()
        net.nft(chain("input", "ip protocol gre drop"))
        _, doc, _ = net.probe()
        assert failed_at(doc) == ("gre", "gre-one-way")
        assert steps(doc)["gre"]["details"]["received"] >= 1

    def test_gre_dropped_from_the_server(self, net: Net) -> None:
        net.start_server()
        net.nft(chain("output", "ip protocol gre drop"))
        _, doc, _ = net.probe()
        assert failed_at(doc) == ("gre", "gre-blocked")

    def test_gre_back_to_another_call_id(self, net: Net) -> None:
        net.start_server("wrong-key")
        _, doc, _ = net.probe()
        assert failed_at(doc) == ("gre", "gre-wrong-call-id")
        our = steps(doc)["call"]["details"]["call_id"]
        assert steps(doc)["gre"]["details"]["wrong_call_ids"] == [our ^ 0x5555]

    def test_without_cap_net_raw_the_probe_stops_after_the_call(self, net: Net) -> None:
        """Root without CAP_NET_RAW (setpriv empties the bounding set of it): no raw socket, steps 1-3 only."""
        net.start_server()
        code, doc, err = net.probe(wrap=("setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw"))
        assert code == 0, err
        assert "CAP_NET_RAW" in err
        s = steps(doc)
        assert [n for n in s if s[n]["status"] == "ok"] == ["tcp", "control", "call", "teardown"]
        assert s["gre"]["status"] == "skipped"

    def test_icmp_protocol_unreachable(self, net: Net) -> None:
        net.start_server()
        net.nft(chain("input", "ip protocol gre reject with icmp type prot-unreachable"))
        _, doc, _ = net.probe()
        assert failed_at(doc) == ("gre", "gre-icmp-unreachable")
        assert steps(doc)["gre"]["details"]["icmp"][0] == {"type": 3, "code": 2}


class TestProbePpp:
    def test_success_to_ipcp_and_clean_teardown(self, net: Net) -> None:
        net.start_server()
        code, doc, err = net.probe()
        assert code == 0, doc
        assert failed_at(doc) == (None, None)
        s = steps(doc)
        assert list(s) == ["tcp", "control", "call", "gre", "lcp", "auth", "ccp", "ipcp", "teardown"]
        lcp = s["lcp"]["details"]
        assert lcp["auth_asked"] == ["MS-CHAPv2"] and lcp["mru"] == 1400
        assert lcp["magic"] == "0x5e4a0001" and lcp["pfc"] and lcp["acfc"]
        assert s["auth"]["details"]["authenticator_valid"] is True
        assert s["ccp"]["details"]["agreed"] == ["128-bit", "stateless"]
        assert s["ipcp"]["details"]["address"] == "192.0.2.10"
        assert s["ipcp"]["details"]["dns"] == ["192.0.2.53", "192.0.2.54"]
        assert s["ipcp"]["details"]["server_address"] == "192.0.2.1"
        saw = net.server_saw()
        assert saw["response_valid"] is True and saw["ipcp_acked"] == "192.0.2.10"
        assert 5 in saw["lcp"]  # LCP Terminate-Request
        assert saw["control"][-2:] == ["ccrq", "stopccrq"] and saw["fin"]
        assert s["teardown"]["details"]["call_disconnect_notify"] is True
        assert PASSWORD not in json.dumps(doc) and PASSWORD not in err

    def test_w_records_the_probes_packets(self, net: Net) -> None:
        """-w FILE captures on -i IFACE through the usual recorder: the file holds the whole handshake."""
        from scapy.layers.inet import IP, TCP
        from scapy.utils import rdpcap

        net.start_server()
        out = net.tmp / "probe.pcapng"
        code, doc, _ = net.probe("-i", "pc", "-w", str(out))
        assert code == 0 and doc["capture"]["file"] == str(out)
        pkts = rdpcap(str(out))
        assert doc["capture"]["frames"] == len(pkts)
        control = [bytes(p[TCP].payload) for p in pkts if TCP in p and len(p[TCP].payload) >= 12]
        types = [struct.unpack_from("!H", c, 8)[0] for c in control]
        assert types[:4] == [1, 2, 7, 8] and 12 in types  # SCCRQ, SCCRP, OCRQ, OCRP ... Call-Clear-Request
        gre_from = {p[IP].src for p in pkts if IP in p and p[IP].proto == 47}
        assert gre_from == {PROBE_IP, SERVER_IP}
        assert any(TCP in p and p[TCP].flags.F and p[IP].src == PROBE_IP for p in pkts)

    def test_server_closing_at_call_clear_is_an_orderly_teardown(self, net: Net) -> None:
        net.start_server("close-on-clear")
        code, doc, _ = net.probe(credentials=False)
        assert code == 0
        t = steps(doc)["teardown"]["details"]
        assert t["lcp_terminate_ack"] is True and t["call_disconnect_notify"] is False
        assert t["server_closed"] == "closed the connection (FIN) after our Call-Clear-Request"
        assert "server_hung_up" not in t and "stop_control_reply" not in t
        assert net.server_saw()["control"][-1] == "ccrq"

    def test_without_credentials_stops_after_lcp(self, net: Net) -> None:
        net.start_server()
        code, doc, _ = net.probe(credentials=False)
        assert code == 0
        s = steps(doc)
        assert s["lcp"]["status"] == "ok" and s["auth"]["status"] == "skipped"
        assert "ccp" not in s and net.server_saw()["control"][-2:] == ["ccrq", "stopccrq"]

    def test_auth_protocol_refused(self, net: Net) -> None:
        net.start_server("auth-eap")
        _, doc, _ = net.probe()
        assert failed_at(doc) == ("lcp", "auth-method-mismatch")
        lcp = steps(doc)["lcp"]
        assert lcp["details"]["auth_asked"] == ["EAP"]
        assert lcp["details"]["auth_refused"] == {"EAP": "the probe does not speak EAP"}
        assert "the server asks for EAP, which the probe does not speak" in lcp["summary"]
        assert net.server_saw()["lcp"].count(3) >= 1  # the probe Nak'd EAP (with MS-CHAPv2)


class TestProbeMsChapV1:
    """RFC 2433: the server checks the NT-Response with code of its own (probe_server.v1_nt_response)."""

    def test_mschapv1_success(self, net: Net) -> None:
        net.start_server("mschapv1")
        code, doc, err = net.probe()
        assert code == 0, doc
        s = steps(doc)
        assert s["lcp"]["details"]["auth_asked"] == ["MS-CHAPv1"]
        assert s["auth"]["details"]["method"] == "MS-CHAPv1" and s["auth"]["summary"] == "MS-CHAPv1: authenticated"
        assert s["ipcp"]["details"]["address"] == "192.0.2.10"
        saw = net.server_saw()
        assert saw["response_valid"] is True and saw["v1_value_length"] == 49
        assert saw["v1_use_nt"] == 1 and saw["v1_lm_zero"] is True  # no LAN Manager response
        assert PASSWORD not in json.dumps(doc) and PASSWORD not in err

    def test_mschapv1_with_the_nt_hash(self, net: Net) -> None:
        from Crypto.Hash import MD4

        net.start_server("mschapv1")
        nt = MD4.new(PASSWORD.encode("utf-16-le")).hexdigest()
        code, doc, _ = net.probe("--nt-hash", f"{USER}:{nt}", credentials=False)
        assert code == 0 and steps(doc)["auth"]["details"]["method"] == "MS-CHAPv1"
        assert net.server_saw()["response_valid"] is True

    def test_mschapv1_failure_691(self, net: Net) -> None:
        net.start_server("mschapv1")
        _, doc, _ = net.probe("--password", f"{USER}:wrong", credentials=False)
        assert failed_at(doc) == ("auth", "auth-failed")
        auth = steps(doc)["auth"]
        assert auth["details"]["error"] == 691 and auth["details"]["message"] == "E=691 R=1"
        assert auth["summary"] == "MS-CHAPv1 Failure E=691"
        assert net.server_saw()["response_valid"] is False

    def test_eap_refused_then_mschapv1(self, net: Net) -> None:
        """The server asks for EAP, the probe Naks it suggesting MS-CHAPv2, the server (no MS-CHAPv2) asks for
        MS-CHAPv1 next: the probe answers that."""
        net.start_server("eap-then-v1")
        code, doc, _ = net.probe()
        assert code == 0, doc
        s = steps(doc)
        assert s["lcp"]["details"]["auth_asked"] == ["EAP", "MS-CHAPv1"]
        assert s["auth"]["details"]["method"] == "MS-CHAPv1"
        assert net.server_saw()["asked"] == ["eap", "v1"] and net.server_saw()["response_valid"] is True

    def test_mschapv2_preferred_when_the_server_allows_both(self, net: Net) -> None:
        net.start_server("eap-then-both")
        code, doc, _ = net.probe()
        assert code == 0, doc
        s = steps(doc)
        assert s["lcp"]["details"]["auth_asked"] == ["EAP", "MS-CHAPv2"]
        assert s["auth"]["details"]["method"] == "MS-CHAPv2" and s["auth"]["details"]["authenticator_valid"]
        assert net.server_saw()["asked"] == ["eap", "v2"]

    def test_mschapv2_failure_691(self, net: Net) -> None:
        net.start_server("auth-691")
        _, doc, _ = net.probe()
        assert failed_at(doc) == ("auth", "auth-failed")
        assert steps(doc)["auth"]["details"]["error"] == 691

    def test_mschapv2_failure_649_is_the_account(self, net: Net) -> None:
        net.start_server("auth-649")
        _, doc, _ = net.probe()
        assert failed_at(doc) == ("auth", "auth-account")
        assert steps(doc)["auth"]["details"]["error"] == 649

    @pytest.mark.parametrize(("mode", "method"), [("chap-md5", "CHAP-MD5"), ("pap", "PAP")])
    def test_other_methods(self, net: Net, mode: str, method: str) -> None:
        net.start_server(mode)
        code, doc, err = net.probe()
        assert code == 0, doc
        s = steps(doc)
        assert s["lcp"]["details"]["auth_asked"] == [method] and s["auth"]["details"]["method"] == method
        assert s["ipcp"]["details"]["address"] == "192.0.2.10"
        assert net.server_saw()["response_valid"] is True
        assert PASSWORD not in json.dumps(doc) and PASSWORD not in err

    @pytest.mark.parametrize("mode", ["chap-md5", "pap"])
    def test_other_methods_refused(self, net: Net, mode: str) -> None:
        net.start_server(mode)
        _, doc, _ = net.probe("--password", f"{USER}:wrong", credentials=False)
        assert failed_at(doc) == ("auth", "auth-failed")

    def test_nt_hash_cannot_answer_pap(self, net: Net) -> None:
        """An NT hash answers MS-CHAP only: the probe Naks PAP with MS-CHAPv2, which this server refuses."""
        net.start_server("pap")
        nt = "0" * 32
        _, doc, _ = net.probe("--nt-hash", f"{USER}:{nt}", credentials=False)
        assert steps(doc)["lcp"]["details"]["auth_asked"] == ["PAP"]
        assert failed_at(doc) == ("lcp", "auth-method-mismatch")  # it kept asking for PAP until the timeout

    def test_wrong_password(self, net: Net) -> None:
        net.start_server()
        _code, doc, _ = net.probe("--password", f"{USER}:wrong", credentials=False)
        assert failed_at(doc) == ("auth", "auth-failed")
        assert net.server_saw()["response_valid"] is False

    def test_the_passive_engine_agrees_on_the_recorded_probe(self, net: Net) -> None:
        """With -w, the capture beside the probe is diagnosed as any capture: the same code for the failure."""
        net.start_server("auth-691")
        _, doc, _ = net.probe("-i", "pc", "-w", str(net.tmp / "probe.pcap"))
        assert failed_at(doc) == ("auth", "auth-failed")
        assert doc["capture"]["tunnels"] == 1 and doc["capture"]["findings"] == ["auth-failed"]

    def test_report_shows_the_passive_findings(self, net: Net) -> None:
        """--report with -w: after the steps, the capture and what the passive engine made of it (its
        diagnosis with the fix), as --json has under capture.findings."""
        net.start_server("auth-691")
        out = net.tmp / "probe.pcap"
        code, text, _ = net.probe_text("--report", "-i", "pc", "-w", str(out))
        assert code == 69
        assert "result: failed at step auth (auth-failed)" in text
        assert f"capture of the probe's packets: {out}," in text
        assert "passive findings: auth-failed" in text
        tail = text.split("passive findings:", 1)[1]
        assert f"{PROBE_IP} → {SERVER_IP}" in tail and "  diagnosis" in tail
        assert any(line.strip().startswith("✗ error   auth-failed") for line in tail.splitlines())
        assert PASSWORD not in text

    def test_wrong_server_authenticator(self, net: Net) -> None:
        net.start_server("bad-authenticator")
        _, doc, _ = net.probe()
        assert failed_at(doc) == ("auth", "server-authenticator-invalid")

    def test_ccp_rejected(self, net: Net) -> None:
        net.start_server("ccp-reject")
        _, doc, _ = net.probe()
        assert failed_at(doc) == ("ccp", "encryption-mismatch")

    def test_repeat_gives_timing(self, net: Net) -> None:
        net.start_server()
        code, doc, _ = net.probe("--probe-repeat", "2", "--interval", "0.2", credentials=False)
        assert code == 0 and len(doc["runs"]) == 2
        t = doc["timing"]["tcp"]
        assert t["runs"] == 2 and t["ok"] == 2 and 0 < t["min"] <= t["mean"] <= t["max"]


class TestProbeInTheUi:
    """pptptop --probe HOST on a terminal: the capture beside the probe feeds the ordinary pipeline, so the
    tunnel screen shows the probe's packets, and the probe's steps show under every screen (Textual's pilot,
    tests/integration/probe_ui_pilot.py, in the probe's namespace)."""

    @staticmethod
    def pilot(net: Net) -> dict[str, Any]:
        result = net.tmp / "pilot.json"
        r = subprocess.run(["ip", "netns", "exec", net.probe_ns, sys.executable, str(PILOT), "--out", str(result),
                            "--", "--probe", net.server_ip, "--probe-timeout", TIMEOUT, "-i", "pc",
                            "--password", f"{USER}:{PASSWORD}"],
                           capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})  # this checkout's pptptop, as -m does
        assert r.returncode == 0, r.stderr[-3000:]
        got: dict[str, Any] = json.loads(result.read_text())
        assert got["probe_done"]
        return got

    def test_the_tunnel_screen_shows_the_probe(self, net: Net) -> None:
        net.start_server()
        got = self.pilot(net)
        assert got["results"][0]["ok"], got["results"]
        main = got["main"]
        assert f"probe of {SERVER_IP} ({SERVER_IP}): every step passed" in main
        for step in ("tcp", "control", "call", "gre", "lcp", "auth", "ccp", "ipcp", "teardown"):
            assert any(f"[ ok ] {step} " in line for line in main.splitlines()), step
        assert "scripted \\x1b[31mPAC" in main  # the vendor from the wire, escaped, not markup or a colour
        assert PROBE_IP in main and SERVER_IP in main  # the tunnel's row
        assert got["screen"] == "TunnelScreen"
        ladder = " | ".join(got["ladder"])
        for message in ("Start-Control-Connection-Request", "Outgoing-Call-Request", "LCP ConfReq"):
            assert message in ladder, ladder
        assert "every step passed" in got["flow"]  # the probe's panel on the tunnel screen too
        assert "rcvd [LCP ConfReq" in got["transcript"] and "sent [LCP ConfReq" in got["transcript"]
        assert PASSWORD not in json.dumps(got)

    def test_steps_show_as_they_happen_and_the_failure_is_diagnosed(self, net: Net) -> None:
        """GRE dropped towards the server: the panel shows tcp, control and call while the gre step still waits;
        at the end the panel names the failure and the tunnel screen has the passive engine's verdict."""
        net.start_server()
        net.nft(chain("input", "ip protocol gre drop"))
        got = self.pilot(net)
        during = got["during"]
        assert f"probe of {SERVER_IP} ({SERVER_IP}): running" in during
        assert "[ ok ] call" in during and "[FAIL]" not in during and "gre" not in during.split("[ ok ] call")[1]
        assert "failed at step gre (gre-one-way)" in got["main"]
        assert "[FAIL] gre" in got["main"] and "[gre-one-way]" in got["main"]  # a long step line wraps
        assert "no problem found" not in got["flow"]  # the verdict line of the tunnel screen


class TestProbeThroughNat:
    def test_with_the_pptp_helper(self, nat_net: Net) -> None:
        nat_net.nft(NAT_HELPER, ns=nat_net.gw_ns)
        nat_net.start_server()
        code, doc, _ = nat_net.probe()
        assert code == 0 and failed_at(doc) == (None, None)
        assert steps(doc)["ipcp"]["details"]["address"] == "192.0.2.10"

    def test_without_the_pptp_helper(self, nat_net: Net) -> None:
        """Without the helper the gateway has no expectation for the server's GRE (key = our Call ID): it keeps
        it for itself, so nothing comes back to the probe."""
        nat_net.nft(NAT_NO_HELPER, ns=nat_net.gw_ns)
        nat_net.start_server()
        _, doc, _ = nat_net.probe()
        assert failed_at(doc) == ("gre", "gre-blocked")
        assert steps(doc)["control"]["status"] == "ok" and steps(doc)["call"]["status"] == "ok"

    def test_gateway_rejects_gre_with_icmp(self, nat_net: Net) -> None:
        """A gateway that refuses to forward GRE with ICMP protocol-unreachable (a firewall's reject)."""
        reject = ("table ip probe_fw {\n  chain forward { type filter hook forward priority filter; policy accept;\n"
                  "    ip protocol gre reject with icmp type prot-unreachable; }\n}\n")
        nat_net.nft(NAT_HELPER + reject, ns=nat_net.gw_ns)
        nat_net.start_server()
        _, doc, _ = nat_net.probe()
        assert failed_at(doc) == ("gre", "gre-icmp-unreachable")
        assert steps(doc)["gre"]["details"]["icmp"][0] == {"type": 3, "code": 2}
