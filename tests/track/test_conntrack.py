"""The kernel's view: conntrack entries read, joined to the control connection, compared with the wire.

The ``conntrack -L`` lines below are the lab gateway's real table while the
s5 and nft/s5 captures were taken (logs/*-state.txt in the lab output): the
comparison of two independent sources, pptptop's mapping from the packets and
the kernel's from its NAT, must agree. Reading the table itself is tested as
root in a network namespace, where netlink and the conntrack tool must return
the same entries.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple, nfct_msg

from pptptop import cli, sources
from pptptop.pipeline import Pipeline
from pptptop.track import conntrack as C
from pptptop.track.nat import NatCorrelator
from pptptop.track.tracker import Tracker

# the UML gateway (kernel 6.1, iptables) during s5: conntrack -L
S5_TABLE = """\
conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.
tcp      6 431998 ESTABLISHED src=10.0.0.3 dst=198.51.100.2 sport=41994 dport=1723 src=198.51.100.2 dst=198.51.100.1 sport=1723 dport=41994 [ASSURED] mark=0 helper=pptp use=2
gre      47 179 src=10.0.0.3 dst=198.51.100.2 srckey=0xab30 dstkey=0x80 src=198.51.100.2 dst=198.51.100.1 srckey=0x80 dstkey=0xa40a [ASSURED] mark=0 helper=pptp use=1
gre      47 179 src=10.0.0.2 dst=198.51.100.2 srckey=0xc05d dstkey=0x0 src=198.51.100.2 dst=198.51.100.1 srckey=0x0 dstkey=0x8e7c [ASSURED] mark=0 helper=pptp use=1
tcp      6 431996 ESTABLISHED src=10.0.0.2 dst=198.51.100.2 sport=36476 dport=1723 src=198.51.100.2 dst=198.51.100.1 sport=1723 dport=36476 [ASSURED] mark=0 helper=pptp use=2
"""  # noqa: E501

# the host gateway (kernel 6.18, nftables) after nft/s5, -o extended; GRE entries carry no helper there
NFT_S5_TABLE = """\
ipv4     2 unknown  2 561 src=10.0.0.1 dst=224.0.0.22 [UNREPLIED] src=224.0.0.22 dst=10.0.0.1 mark=0 use=1
ipv4     2 gre      47 171 src=10.0.0.2 dst=198.51.100.2 srckey=0x5c9c dstkey=0x0 src=198.51.100.2 dst=198.51.100.1 srckey=0x0 dstkey=0xaa8e [ASSURED] mark=0 use=1
ipv4     2 tcp      6 111 TIME_WAIT src=10.0.0.2 dst=198.51.100.2 sport=43662 dport=1723 src=198.51.100.2 dst=198.51.100.1 sport=1723 dport=43662 [ASSURED] mark=0 helper=pptp use=2
ipv4     2 gre      47 172 src=10.0.0.3 dst=198.51.100.2 srckey=0xaaf6 dstkey=0x80 src=198.51.100.2 dst=198.51.100.1 srckey=0x80 dstkey=0xc8d0 [ASSURED] mark=0 use=1
ipv4     2 tcp      6 112 TIME_WAIT src=10.0.0.3 dst=198.51.100.2 sport=51408 dport=1723 src=198.51.100.2 dst=198.51.100.1 sport=1723 dport=51408 [ASSURED] mark=0 helper=pptp use=2
"""  # noqa: E501


def run_nat(*paths: Path) -> tuple[Tracker, NatCorrelator]:
    names = [str(p) for p in paths]
    src = sources.open_file(names[0]) if len(names) == 1 else sources.open_files(names)
    tracker = Tracker()
    nat = NatCorrelator(tracker)
    Pipeline(src, tracker).run()
    return tracker, nat


class TestParse:
    def test_plain_listing(self) -> None:
        entries = C.parse_conntrack_text(S5_TABLE)
        assert [e.protocol for e in entries] == [6, 47, 47, 6]
        tcp, gre = entries[0], entries[1]
        assert tcp.is_pptp_control and tcp.state == "ESTABLISHED" and tcp.helper == "pptp"
        assert (tcp.orig.src, tcp.orig.sport, tcp.reply.dst, tcp.reply.dport) == ("10.0.0.3", 41994,
                                                                                     "198.51.100.1", 41994)
        assert gre.is_gre and (gre.orig.sport, gre.orig.dport, gre.reply.sport, gre.reply.dport) == (
            0xAB30, 0x80, 0x80, 0xA40A)
        assert tcp.timeout == 431998

    def test_extended_listing_and_other_protocols(self) -> None:
        entries = C.parse_conntrack_text(NFT_S5_TABLE)
        assert [e.protocol for e in entries] == [2, 47, 6, 47, 6]
        assert entries[0].orig.sport is None and not entries[0].is_pptp_control
        assert entries[2].state == "TIME_WAIT" and entries[1].helper is None

    @given(st.text(max_size=300))
    def test_garbage_never_raises(self, text: str) -> None:
        for e in C.parse_conntrack_text(text):
            assert isinstance(e, C.CtEntry)

    def test_netlink_messages(self) -> None:
        """What pyroute2 hands back: nested tuples, the GRE master tuple, CTA_HELP as one string."""
        gre = nfct_msg.create_from(
            tuple_orig=NFCTAttrTuple(saddr="10.0.0.2", daddr="198.51.100.2", proto=47, sport=0xC05D, dport=0),
            tuple_reply=NFCTAttrTuple(saddr="198.51.100.2", daddr="198.51.100.1", proto=47, sport=0,
                                      dport=0x8E7C),
            tuple_master=NFCTAttrTuple(saddr="10.0.0.2", daddr="198.51.100.2", proto=6, sport=36476,
                                       dport=1723),
            status=415, timeout=170)
        tcp = nfct_msg.create_from(
            tuple_orig=NFCTAttrTuple(saddr="10.0.0.2", daddr="198.51.100.2", proto=6, sport=36476, dport=1723),
            tuple_reply=NFCTAttrTuple(saddr="198.51.100.2", daddr="198.51.100.1", proto=6, sport=1723,
                                      dport=36476),
            status=8606, help="\t\x00\x01\x00pptp")
        decoded = []
        for m in (gre, tcp):
            m.encode()
            d = nfct_msg(m.data)
            d.decode()
            e = C.entry_from_netlink(d)
            assert e is not None
            decoded.append(e)
        g, t = decoded
        assert g.master == t.orig and g.timeout == 170
        assert t.helper == "pptp" and t.is_pptp_control
        assert C.entry_from_netlink(nfct_msg()) is None


class TestCompare:
    def test_s5_mapping_agrees_with_the_kernel(self, data_dir: Path) -> None:
        tracker, nat = run_nat(data_dir / "s5-two-clients-same-nat-both.pcapng")
        entries = C.parse_conntrack_text(S5_TABLE)
        sessions = nat.sessions()
        assert len(sessions) == 2
        for s in sessions:
            for tid in (s["tunnel"], s["peer"]):
                t = tracker.tunnels[tid]
                v = C.compare(t, nat.view(t), entries, nat.peer(t))
                assert v["agrees"], v["disagreements"]
                for side in ("inside", "outside", "server"):
                    assert v["kernel"][side] == {k: s[side][k] for k in ("ip", "port", "call_id")}

    def test_nft_s5_agrees_from_two_files(self, data_dir: Path) -> None:
        tracker, nat = run_nat(data_dir / "nft/s5-two-clients-same-nat-inside.pcap",
                               data_dir / "nft/s5-two-clients-same-nat-outside.pcap")
        entries = C.parse_conntrack_text(NFT_S5_TABLE)
        for s in nat.sessions():
            t = tracker.tunnels[s["tunnel"]]
            v = C.compare(t, nat.view(t), entries, nat.peer(t))
            assert v["agrees"] and v["kernel"]["outside"]["call_id"] == s["outside"]["call_id"]
        assert len(C.kernel_pptp_sessions(entries)) == 2

    def test_one_leg_only_the_kernel_fills_in_the_other_side(self, data_dir: Path) -> None:
        tracker, _ = run_nat(data_dir / "s5-two-clients-same-nat-outside.pcap")
        entries = C.parse_conntrack_text(S5_TABLE)
        inside = {(e.orig.sport, e.orig.src) for e in entries if e.is_pptp_control}
        for t in tracker.tunnels.values():
            v = C.compare(t, None, entries)
            assert v["matched"] == "outside" and v["agrees"]
            assert (t.client.port, v["kernel"]["inside"]["ip"]) in inside
            assert v["kernel"]["outside"]["call_id"] == t.client.call_id

    def test_disagreements_are_named(self, data_dir: Path) -> None:
        tracker, nat = run_nat(data_dir / "s5-two-clients-same-nat-both.pcapng")
        base = C.parse_conntrack_text(S5_TABLE)
        s = next(x for x in nat.sessions() if x["inside"]["ip"] == "10.0.0.2")
        t = tracker.tunnels[s["tunnel"]]
        view, peer = nat.view(t), nat.peer(t)

        def codes(entries: list[C.CtEntry], tunnel_ended: bool = True) -> list[str]:
            tt = copy.copy(t)
            tt.ended = tunnel_ended
            return [d["code"] for d in C.compare(tt, view, entries, peer)["disagreements"]]

        no_helper = [C.CtEntry(e.protocol, e.orig, e.reply, None) if e.is_pptp_control else e for e in base]
        assert codes(no_helper) == ["helper-missing"]
        no_gre = [e for e in base if not e.is_gre]
        assert codes(no_gre) == ["gre-key-unknown"]  # the server's GRE did arrive with that key
        wrong_key = [C.CtEntry(e.protocol, e.orig, C.CtTuple(e.reply.src, e.reply.dst, e.reply.sport, 4242),
                               e.helper) if e.is_gre else e for e in base]
        got = C.compare(t, view, wrong_key, peer)["disagreements"]
        assert [d["code"] for d in got] == ["mismatch"]
        assert got[0]["field"] == "outside.call_id" and got[0]["kernel"] == 4242
        assert codes([], tunnel_ended=False) == ["no-tcp-entry"]
        assert codes([]) == []  # an ended session whose entries expired is no disagreement

    def test_gre_entry_created_by_the_servers_gre_is_turned_around(self) -> None:
        """If the server's GRE came first, the GRE entry's original direction is server → gateway."""
        tcp = C.CtEntry(6, C.CtTuple("10.89.0.2", "198.51.100.2", 43136, 1723),
                        C.CtTuple("198.51.100.2", "198.51.100.1", 1723, 43136), "pptp")
        gre = C.CtEntry(47, C.CtTuple("198.51.100.2", "198.51.100.1", 1280, 43136),
                        C.CtTuple("10.89.0.2", "198.51.100.2", 4661, 1280), master=tcp.orig)
        (k,) = C.kernel_pptp_sessions([tcp, gre])
        assert k["calls"] == [{"inside_call_id": 4661, "outside_call_id": 43136, "server_call_id": 1280}]


class FakeTable:
    def __init__(self, entries: list[C.CtEntry]) -> None:
        self.entries = entries
        self.fail: str | None = None

    def __call__(self) -> tuple[list[C.CtEntry], str]:
        if self.fail:
            raise C.ConntrackUnavailable(self.fail)
        return list(self.entries), "fake"


class TestMonitor:
    def test_views_stay_after_the_kernel_drops_the_entries(self, data_dir: Path) -> None:
        tracker = Tracker()
        nat = NatCorrelator(tracker)
        table = FakeTable(C.parse_conntrack_text(S5_TABLE))
        mon = C.ConntrackMonitor(tracker, nat, reader=table)
        mon.poll()
        Pipeline(sources.open_file(str(data_dir / "s5-two-clients-same-nat-both.pcapng")), tracker).run()
        for t in tracker.tunnels.values():
            assert t.conntrack is not None and t.conntrack.agrees  # annotated when each tunnel ended
        table.entries = []
        mon.poll()
        t = next(iter(tracker.tunnels.values()))
        v = mon.view(t)
        assert v.stale and v.view["stale"] is True and v.agrees
        assert mon.summary()["kernel_only"] == []

    def test_reader_errors_are_kept_not_raised(self) -> None:
        tracker = Tracker()
        table = FakeTable([])
        table.fail = "reading the kernel's conntrack table needs root"
        mon = C.ConntrackMonitor(tracker, None, reader=table)
        mon.poll()
        assert mon.error == table.fail and mon.snapshots == 0
        assert mon.summary()["error"] == table.fail

    def test_kernel_only_sessions_are_listed(self) -> None:
        tracker = Tracker()
        mon = C.ConntrackMonitor(tracker, None, reader=FakeTable(C.parse_conntrack_text(S5_TABLE)))
        mon.poll()
        only = mon.summary()["kernel_only"]
        assert sorted(s["inside"]["ip"] for s in only) == ["10.0.0.2", "10.0.0.3"]


class TestAvailability:
    def test_not_root(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        with pytest.raises(C.ConntrackUnavailable, match="needs root"):
            C.read_table()

    def test_not_linux(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sys, "platform", "darwin")
        with pytest.raises(C.ConntrackUnavailable, match="only on Linux"):
            C.check_available()

    def test_cli_says_why(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                          data_dir: Path) -> None:
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        path = str(data_dir / "s1-mschapv2-mppe128-both.pcapng")
        assert cli.main(["-r", path, "--json", "--conntrack"]) == cli.EXIT_NO_PERMISSION
        err = capsys.readouterr().err
        assert "needs root" in err and "sudo" in err and "Traceback" not in err


# ---------------------------------------------------------------------- as root, in a namespace
@pytest.fixture
def netns() -> Iterator[str]:
    name = f"pptptop-ct-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.root
def test_netlink_and_the_conntrack_tool_read_the_same_table(netns: str) -> None:
    if shutil.which("conntrack") is None:
        pytest.skip("the conntrack tool is not installed (apt-get install conntrack)")
    from pyroute2 import NFCTSocket

    sock = NFCTSocket(netns=netns)
    try:
        sock.entry("add", timeout=120, tuple_orig=NFCTAttrTuple(
            saddr="10.7.0.2", daddr="192.0.2.7", proto=6, sport=40123, dport=1723),
            tuple_reply=NFCTAttrTuple(saddr="192.0.2.7", daddr="192.0.2.1", proto=6, sport=1723, dport=40999))
    finally:
        sock.close()
    by_netlink, how1 = C.read_table(netns, method="netlink")
    by_tool, how2 = C.read_table(netns, method="tool")
    assert (how1, how2) == ("netlink", "conntrack-tool")
    key = [(e.protocol, e.orig, e.reply) for e in by_netlink]
    assert key == [(e.protocol, e.orig, e.reply) for e in by_tool]
    (e,) = by_netlink
    assert e.is_pptp_control and e.reply.dport == 40999


@pytest.mark.root
def test_cli_conntrack_on_a_file(data_dir: Path) -> None:
    """In a subprocess: --conntrack keeps only CAP_NET_ADMIN/CAP_NET_RAW, for good."""
    import json

    path = str(data_dir / "s5-two-clients-same-nat-both.pcapng")
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "pptptop", "-r", path, "--json", "--conntrack"], cwd=root,
                       env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == cli.EXIT_OK, r.stderr
    doc = json.loads(r.stdout)
    assert doc["conntrack"]["method"] in ("netlink", "conntrack-tool")
    assert len(doc["tunnels"]) == 2
    for t in doc["tunnels"]:
        # this host never carried these sessions, and they are over: no entry, nothing to flag
        assert t["conntrack"]["tcp"] is None and t["conntrack"]["disagreements"] == []
        assert t["legs"][0]["nat"]["role"] == "outside"
