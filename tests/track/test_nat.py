"""NAT leg correlation: both legs of each lab session joined, the mapping as tshark reads it off the wire.

The oracle for the lab captures is tshark: an Outgoing-Call-Request seen on
both sides of the gateway has the same TCP sequence number (MASQUERADE keeps
it), so tshark's rows pair up by ``tcp.seq_raw`` without pptptop's help, and
give each side's address, port and Call ID. Edge cases use crafted frames.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import GRE_PPTP, Ether
from scapy.layers.ppp import PPP, PPP_LCP_Configure, PPP_LCP_Magic_Number_Option
from scapy.layers.pptp import (
    PPTPCallClearRequest,
    PPTPOutgoingCallReply,
    PPTPOutgoingCallRequest,
    PPTPStartControlConnectionReply,
    PPTPStartControlConnectionRequest,
)
from scapy.packet import Raw

from pptptop import sources
from pptptop.export.jsonout import document
from pptptop.pipeline import Pipeline
from pptptop.track.nat import NatCorrelator, NatLimits, NatProblemCode, json_extensions, report_lines
from pptptop.track.tracker import Tracker

LAB_PAIRS = [
    ("s1-mschapv2-mppe128-both.pcapng",),
    ("s5-two-clients-same-nat-both.pcapng",),
    ("nft/s1-mschapv2-mppe128-inside.pcap", "nft/s1-mschapv2-mppe128-outside.pcap"),
    ("nft/s5-two-clients-same-nat-inside.pcap", "nft/s5-two-clients-same-nat-outside.pcap"),
]


# ---------------------------------------------------------------------- running
def run_nat(*paths: Path, limits: NatLimits | None = None) -> tuple[Tracker, NatCorrelator]:
    """The pipeline as the CLI runs it: source(s) → tracker with the correlator attached."""
    names = [str(p) for p in paths]
    src = sources.open_file(names[0]) if len(names) == 1 else sources.open_files(names)
    tracker = Tracker()
    nat = NatCorrelator(tracker, limits)
    pipe = Pipeline(src, tracker)
    pipe.run()
    assert pipe.error is None
    return tracker, nat


def feed(frames: Iterable[tuple[float, str, bytes]], limits: NatLimits | None = None
         ) -> tuple[Tracker, NatCorrelator]:
    """Feed (ts, interface, Ethernet frame) in time order, then end the input as the pipeline does."""
    tracker = Tracker()
    nat = NatCorrelator(tracker, limits)
    for n, (ts, iface, data) in enumerate(sorted(frames, key=lambda f: f[0]), 1):
        tracker.feed(n, ts, iface, 1, data)
    tracker.finish()
    return tracker, nat


def read_frames(path: Path, iface: str | None = None) -> list[tuple[float, str, bytes]]:
    return [(f.ts, iface if iface is not None else f.iface, f.data) for f in sources.open_file(str(path))]


def mapping(nat: NatCorrelator) -> set[tuple[Any, ...]]:
    return {(s["inside"]["ip"], s["inside"]["port"], s["inside"]["call_id"],
             s["outside"]["ip"], s["outside"]["port"], s["outside"]["call_id"],
             s["server"]["ip"], s["server"]["port"], s["server"]["call_id"]) for s in nat.sessions()}


# ---------------------------------------------------------------------- tshark oracle
def tshark_rows(path: Path, flt: str, fields: list[str]) -> list[list[str]]:
    cmd = ["tshark", "-n", "-r", str(path), "-Y", flt, "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def tshark_mapping(paths: tuple[Path, ...]) -> set[tuple[Any, ...]]:
    """Sessions as tshark shows them: OCRQ rows of the two legs paired by their TCP sequence number.

    The inside leg is the one whose OCRQ source is not the address that the other leg shows
    (the NAT's public address is shared by every outside leg).
    """
    ocrq: list[tuple[str, str, int, int, str, int, int]] = []  # leg, src, sport, call id, dst, dport, seq
    ocrp: dict[tuple[str, int], int] = {}  # (leg, client port) -> server call id
    for path in paths:
        for row in tshark_rows(path, "pptp.control_message_type == 7", [
                "frame.interface_name", "ip.src", "tcp.srcport", "pptp.call_id", "ip.dst", "tcp.dstport",
                "tcp.seq_raw"]):
            leg = row[0] or path.stem
            ocrq.append((leg, row[1], int(row[2]), int(row[3]), row[4], int(row[5]), int(row[6])))
        for row in tshark_rows(path, "pptp.control_message_type == 8", [
                "frame.interface_name", "tcp.dstport", "pptp.call_id"]):
            ocrp[(row[0] or path.stem, int(row[1]))] = int(row[2])
    by_seq: dict[int, list[tuple[str, str, int, int, str, int, int]]] = {}
    for r in ocrq:
        by_seq.setdefault(r[6], []).append(r)
    out = set()
    for rows in by_seq.values():
        assert len(rows) == 2, rows
        a, b = rows
        inside, outside = (a, b) if a[0] in ("lan0",) or a[0].endswith("-inside") else (b, a)
        out.add((inside[1], inside[2], inside[3], outside[1], outside[2], outside[3], outside[4], outside[5],
                 ocrp[(outside[0], outside[2])]))
    return out


needs_tshark = pytest.mark.tshark


# ---------------------------------------------------------------------- lab captures
class TestLabLegs:
    @needs_tshark
    @pytest.mark.parametrize("names", LAB_PAIRS, ids=lambda n: "+".join(Path(x).stem for x in n))
    def test_mapping_equals_tshark(self, data_dir: Path, names: tuple[str, ...]) -> None:
        paths = tuple(data_dir / n for n in names)
        _, nat = run_nat(*paths)
        expected = tshark_mapping(paths)
        assert mapping(nat) == expected
        assert len(expected) == (2 if "s5" in names[0] else 1)

    @pytest.mark.parametrize("names", LAB_PAIRS, ids=lambda n: "+".join(Path(x).stem for x in n))
    def test_both_legs_carry_the_same_note(self, data_dir: Path, names: tuple[str, ...]) -> None:
        tracker, nat = run_nat(*(data_dir / n for n in names))
        notes = {t.id: t.nat.as_dict() for t in tracker.tunnels.values() if t.nat is not None}
        assert len(notes) == len(tracker.tunnels)  # every leg has a peer
        for tid, note in notes.items():
            peer = note["peer"]
            assert notes[peer]["peer"] == tid
            assert {note["role"], notes[peer]["role"]} == {"inside", "outside"}
            for key in ("inside", "outside", "server", "table", "translated"):
                assert note[key] == notes[peer][key]
            t, p = tracker.tunnels[tid], tracker.tunnels[peer]
            inside = t if note["role"] == "inside" else p
            assert note["inside"]["interface"] == inside.iface
            assert "lan0" in inside.iface or inside.iface.endswith("-inside")
            kinds = {e["kind"] for e in note["evidence"] if e["points"]}
            assert {"tcp-seq", "lcp-magic", "chap-challenge"} <= kinds  # not timing alone
            assert note["translated"] == {"address": True, "port": False, "call_id": True}
            assert not nat.problems_of(t)

    def test_s5_two_clients_are_two_sessions_and_outside_call_id_is_the_port(self, data_dir: Path) -> None:
        for names in LAB_PAIRS[1::2]:
            tracker, nat = run_nat(*(data_dir / n for n in names))
            sessions = nat.sessions()
            assert len(sessions) == 2
            assert len({s["inside"]["ip"] for s in sessions}) == 2
            assert len({s["outside"]["ip"] for s in sessions}) == 1
            for s in sessions:
                # Linux nf_nat_pptp: the translated PNS Call ID is the masqueraded TCP source port
                assert s["outside"]["call_id"] == s["outside"]["port"]
                assert s["inside"]["call_id"] != s["outside"]["call_id"]
                inside, outside = tracker.tunnels[s["tunnel"]], tracker.tunnels[s["peer"]]
                assert inside.auth.user == outside.auth.user
                assert inside.lcp.magic == outside.lcp.magic
            assert {tracker.tunnels[s["tunnel"]].auth.user for s in sessions} == {"alice", "bob"}

    @needs_tshark
    def test_table_rows_follow_the_gre_keys_tshark_sees(self, data_dir: Path) -> None:
        path = data_dir / "s5-two-clients-same-nat-both.pcapng"
        _, nat = run_nat(path)
        keys = {(r[0], r[1], int(r[2])) for r in tshark_rows(path, "gre", [
            "frame.interface_name", "ip.dst", "gre.key.call_id"]) if r[2]}
        for s in nat.sessions():
            to_client, to_server = s["table"][1], s["table"][2]
            assert ("lan0", to_client["inside"]["ip"], to_client["inside"]["call_id"]) in keys
            assert ("wan0", to_client["outside"]["ip"], to_client["outside"]["call_id"]) in keys
            assert ("lan0", s["server"]["ip"], to_server["inside"]["call_id"]) in keys
            assert ("wan0", s["server"]["ip"], to_server["outside"]["call_id"]) in keys

    def test_joined_within_the_first_round_trip(self, data_dir: Path) -> None:
        for names in LAB_PAIRS:
            tracker, nat = run_nat(*(data_dir / n for n in names))
            for s in nat.sessions():
                j = s["joined_at"]
                # Start-Control-Connection-Reply on the second leg: SYN..SCCRP of both legs
                assert j["after_frames"] is not None and j["after_frames"] <= 16
                assert 0 <= j["after_seconds"] < 1.0
                t = tracker.tunnels[s["tunnel"]]
                sccrp = next(p for p in t.all_packets() if "Start-Control-Connection-Reply" in p.summary)
                assert j["time"] <= sccrp.ts + 0.01

    def test_single_leg_files_have_no_peer_and_no_problem(self, data_dir: Path) -> None:
        for name in ("s1-mschapv2-mppe128", "s5-two-clients-same-nat"):
            for leg in ("inside", "outside"):
                tracker, nat = run_nat(data_dir / f"{name}-{leg}.pcap")
                assert nat.sessions() == []
                assert all(t.nat is None for t in tracker.tunnels.values())
                assert nat.problems == []

    def test_json_lists_each_session_once_with_its_outside_leg_under_it(self, data_dir: Path) -> None:
        tracker, nat = run_nat(data_dir / "s5-two-clients-same-nat-both.pcapng")
        doc = document(tracker, {"name": "s5"}, json_extensions(nat), fold=nat.fold)
        assert len(doc["tunnels"]) == 2
        for t in doc["tunnels"]:
            assert t["nat"]["role"] == "inside" and t["interface"] == "lan0"
            assert [leg["id"] for leg in t["legs"]] == [t["nat"]["peer"]]
            leg = t["legs"][0]
            assert leg["interface"] == "wan0" and leg["nat"]["role"] == "outside"
            assert leg["client"]["call_id"] == t["nat"]["outside"]["call_id"]
            assert t["client"]["call_id"] == t["nat"]["inside"]["call_id"]
        plain = document(tracker, {"name": "s5"})
        assert len(plain["tunnels"]) == 4 and "legs" not in plain["tunnels"][0]

    def test_report_shows_the_translation(self, data_dir: Path) -> None:
        tracker, nat = run_nat(data_dir / "s1-mschapv2-mppe128-both.pcapng")
        lines = report_lines(nat)
        for t in tracker.tunnels.values():
            text = "\n".join(lines(t))
            assert t.nat is not None
            n = t.nat.as_dict()
            assert f"call {n['inside']['call_id']} ⇄ outside {n['outside']['ip']}" in text


# ---------------------------------------------------------------------- NAT problems in the lab captures
class TestLabProblems:
    @needs_tshark
    def test_s3_gre_blocked_at_the_gateway_both_ways(self, data_dir: Path) -> None:
        path = data_dir / "s3-gre-blocked-both.pcapng"
        _, nat = run_nat(path)
        gre = tshark_rows(path, "gre", ["frame.interface_name", "ip.src"])
        client_lan = sum(1 for r in gre if r[0] == "lan0" and r[1].startswith("10."))
        client_wan = sum(1 for r in gre if r[0] == "wan0" and r[1] == "198.51.100.1")
        server_wan = sum(1 for r in gre if r[0] == "wan0" and r[1] == "198.51.100.2")
        server_lan = sum(1 for r in gre if r[0] == "lan0" and r[1] == "198.51.100.2")
        assert client_lan and server_wan and not client_wan and not server_lan
        gw = [p for p in nat.problems if p.code is NatProblemCode.GRE_ONE_WAY and p.detail["where"] == "gateway"]
        assert {(p.detail["direction"], p.detail["seen_on"], p.detail["missing_on"]) for p in gw} == {
            ("to_server", "lan0", "wan0"), ("to_client", "wan0", "lan0")}
        (s,) = nat.sessions()
        assert s["gre_forwarded"] == {"to_server": {"inside": client_lan, "outside": client_wan},
                                      "to_client": {"outside": server_wan, "inside": server_lan}}

    @needs_tshark
    def test_s3b_icmp_protocol_unreachable_from_the_gateway(self, data_dir: Path) -> None:
        path = data_dir / "s3b-gre-forward-drop-both.pcapng"
        tracker, nat = run_nat(path)
        rows = tshark_rows(path, "icmp.type == 3 && icmp.code == 2", ["ip.src"])
        assert rows
        sender = rows[0][0].split(",")[0]
        icmp = [p for p in nat.problems if p.code is NatProblemCode.GRE_ICMP_UNREACHABLE]
        assert len(icmp) == 1
        assert icmp[0].detail["from"] == sender and icmp[0].detail["by_gateway"] is True
        (s,) = nat.sessions()
        assert s["outside"]["ip"] == sender  # the NAT's public address answered
        for tid in icmp[0].tunnels:  # both legs carry it for the diagnosis rules
            assert any(p.code == "gre-icmp-unreachable" for p in tracker.tunnels[tid].nat_problems)

    @needs_tshark
    def test_s7_gre_lost_inside_the_gateway(self, data_dir: Path) -> None:
        path = data_dir / "s7-echo-timeout-both.pcapng"
        _, nat = run_nat(path)
        gre = tshark_rows(path, "gre", ["frame.interface_name", "ip.src"])
        up_in = sum(1 for r in gre if r[0] == "lan0" and r[1].startswith("10."))
        up_out = sum(1 for r in gre if r[0] == "wan0" and r[1] == "198.51.100.1")
        (s,) = nat.sessions()
        assert s["gre_forwarded"]["to_server"] == {"inside": up_in, "outside": up_out}
        assert up_in > up_out
        loss = [p for p in nat.problems if p.code is NatProblemCode.GRE_GATEWAY_LOSS]
        assert "to_server" in {p.detail["direction"] for p in loss}

    def test_healthy_sessions_report_nothing(self, data_dir: Path) -> None:
        for name in ("s1-mschapv2-mppe128", "s2-mschapv2-wrong-password", "s6-pap-no-encryption",
                     "s10-server-ctrl-sigterm"):
            _, nat = run_nat(data_dir / f"{name}-both.pcapng")
            assert len(nat.sessions()) == 1
            assert nat.problems == [], name

    def test_interfaces_read_in_turns_do_not_look_like_gateway_loss(self, data_dir: Path) -> None:
        """Live, each interface's ring is read in turn: one leg's GRE can be counted before the join and
        the other's after it. The gateway forwarded everything, so no GRE problem is reported."""
        frames = read_frames(data_dir / "s1-mschapv2-mppe128-both.pcapng")
        tracker = Tracker()
        nat = NatCorrelator(tracker)
        # the outside (wan0) leg's packets up to its last GRE first, then the inside leg's: the join happens
        # at the inside leg's Start-Control-Connection-Reply, after all outside GRE was counted
        wan = [f for f in frames if f[1] == "wan0"]
        lan = [f for f in frames if f[1] == "lan0"]
        order = wan[:-6] + lan + wan[-6:]
        for n, (ts, iface, data) in enumerate(order, 1):
            tracker.feed(n, ts, iface, 1, data)
        tracker.finish()
        (s,) = nat.sessions()
        assert s["gre_forwarded"]["to_server"]["inside"] == s["gre_forwarded"]["to_server"]["outside"] > 0
        assert [p for p in nat.problems if p.code in (NatProblemCode.GRE_ONE_WAY,
                                                      NatProblemCode.GRE_GATEWAY_LOSS)] == []

    def test_s3_single_legs_show_gre_one_way_on_the_wire(self, data_dir: Path) -> None:
        for leg, direction in (("inside", "to_server"), ("outside", "to_client")):
            _, nat = run_nat(data_dir / f"s3-gre-blocked-{leg}.pcap")
            (p,) = nat.problems
            assert p.code is NatProblemCode.GRE_ONE_WAY
            assert (p.detail["direction"], p.detail["where"]) == (direction, "wire")


# ---------------------------------------------------------------------- adversarial, from real captures
class TestDamagedCaptures:
    def test_a_session_seen_on_one_side_only(self, data_dir: Path) -> None:
        """bob's session removed from the outside file: alice still joined, bob reported, no crash."""
        inside = read_frames(data_dir / "s5-two-clients-same-nat-inside.pcap", "lan0")
        outside = read_frames(data_dir / "s5-two-clients-same-nat-outside.pcap", "wan0")
        tracker, nat = run_nat(data_dir / "s5-two-clients-same-nat-both.pcapng")
        bob = next(s for s in nat.sessions() if s["inside"]["ip"] == "10.0.0.3")
        out = bob["outside"]
        kept = [f for f in outside
                if not _belongs(f[2], out["ip"], out["port"], out["call_id"], bob["server"]["call_id"])]
        assert len(kept) < len(outside)
        tracker, nat = feed(inside + kept)
        (s,) = nat.sessions()
        assert s["inside"]["ip"] == "10.0.0.2"
        bob_leg = next(t for t in tracker.tunnels.values() if t.client.ip == "10.0.0.3")
        assert bob_leg.nat is None
        codes = [p["code"] for p in [q.as_dict() for q in bob_leg.nat_problems]]
        assert codes == ["leg-unmatched"]

    def test_an_interface_that_goes_away(self, data_dir: Path) -> None:
        """The inside capture stops 5 s into the session; the outside leg goes on: leg-silent, no crash."""
        inside = read_frames(data_dir / "s1-mschapv2-mppe128-inside.pcap", "lan0")
        outside = read_frames(data_dir / "s1-mschapv2-mppe128-outside.pcap", "wan0")
        cut = inside[0][0] + 5.0
        _, nat = feed([f for f in inside if f[0] < cut] + outside, NatLimits(silent_after=4.0))
        (s,) = nat.sessions()
        silent = [p for p in nat.problems if p.code is NatProblemCode.LEG_SILENT]
        assert len(silent) == 1 and silent[0].detail["interface"] == "lan0"
        assert silent[0].detail["peer_interface"] == "wan0"
        assert s["inside"]["interface"] == "lan0"

    def test_nat_that_renumbers_tcp_sequence_numbers(self, data_dir: Path) -> None:
        """Like a Cisco ASA: the client's sequence numbers shifted on the outside. Still joined, correctly."""
        inside = read_frames(data_dir / "s1-mschapv2-mppe128-inside.pcap", "lan0")
        outside = [(ts, i, _shift_seq(d, 0x10203040)) for ts, i, d in
                   read_frames(data_dir / "s1-mschapv2-mppe128-outside.pcap", "wan0")]
        _, nat = feed(inside + outside)
        (s,) = nat.sessions()
        seq = {e["text"] for e in s["evidence"] if e["kind"].startswith("tcp-seq")}
        assert any("differ to server" in x for x in seq) and not any("to server" in x and "equal" in x for x in seq)
        assert any("equal" in x and "to client" in x for x in seq)  # the server's numbers are untouched
        assert {"lcp-magic", "chap-challenge", "control"} <= {e["kind"] for e in s["evidence"]}
        assert s["inside"]["ip"] == "10.0.0.2"

    def test_legs_of_different_sessions_are_never_joined(self, data_dir: Path) -> None:
        """s1's inside leg against s5's outside legs, shifted to the same time: nothing matches."""
        inside = read_frames(data_dir / "s1-mschapv2-mppe128-inside.pcap", "lan0")
        outside = read_frames(data_dir / "s5-two-clients-same-nat-outside.pcap", "wan0")
        shift = inside[0][0] - outside[0][0]
        _, nat = feed(inside + [(ts + shift, i, d) for ts, i, d in outside])
        assert nat.sessions() == []


def _tcp_gre(data: bytes) -> tuple[Any, Any]:
    pkt = Ether(data)
    return pkt.getlayer(TCP), pkt.getlayer(GRE_PPTP)


def _belongs(data: bytes, public: str, port: int, out_key: int, server_key: int) -> bool:
    """Is this outside frame part of the session with this public port and these GRE keys?"""
    tcp, gre = _tcp_gre(data)
    if tcp is not None:
        return bool(port in (tcp.sport, tcp.dport))
    if gre is not None:
        ip = Ether(data)[IP]
        return bool((ip.src == public and gre.call_id == server_key) or (ip.dst == public and gre.call_id == out_key))
    return False


def _shift_seq(data: bytes, delta: int) -> bytes:
    pkt = Ether(data)
    tcp = pkt.getlayer(TCP)
    if tcp is None:
        return data
    if tcp.dport == 1723:
        tcp.seq = (tcp.seq + delta) & 0xFFFFFFFF
    elif tcp.flags & 0x10:
        tcp.ack = (tcp.ack + delta) & 0xFFFFFFFF
    del tcp.chksum
    return bytes(pkt)


# ---------------------------------------------------------------------- crafted sessions
SERVER = "198.51.100.2"


@dataclass(frozen=True)
class LegSpec:
    """Where one leg of a crafted session is seen: interface, client address/port/Call ID.

    ``delay``: how long after the client sent a packet this leg sees it (a server packet is seen
    ``max delay - delay`` after it was sent). ``seq_shift`` renumbers the client's TCP sequence.
    """

    iface: str
    ip: str
    port: int
    call_id: int
    delay: float = 0.0
    seq_shift: int = 0


def _eth(ip: Any) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip)


def session_frames(legs: list[LegSpec], *, t0: float, isn_c: int, isn_s: int, server_call_id: int,
                   magic_c: int, magic_s: int, gre: int = 3, host: bytes = b"pns",
                   drop: Callable[[str, int], bool] | None = None) -> list[tuple[float, str, bytes]]:
    """One PPTP session as seen on each leg: TCP handshake, SCCRQ/RP, OCRQ/RP, GRE both ways, CCRQ, FIN.

    Sequence numbers and PPP payloads are the same on every leg, as through a NAT that rewrites
    only addresses, ports and the PNS Call ID. ``drop(iface, step)`` loses a step on one leg.
    """
    steps: list[tuple[str, str, Any]] = []  # (direction c/s, kind, payload)
    steps.append(("c", "syn", None))
    steps.append(("s", "synack", None))
    steps.append(("c", "msg", PPTPStartControlConnectionRequest(host_name=host, vendor_string=b"v")))
    steps.append(("s", "msg", PPTPStartControlConnectionReply(host_name=b"pac", vendor_string=b"v")))
    steps.append(("c", "msg", "ocrq"))
    steps.append(("s", "msg", "ocrp"))
    for i in range(gre):
        steps.append(("c", "gre", i))
        steps.append(("s", "gre", i))
    steps.append(("c", "msg", "ccrq"))
    steps.append(("c", "fin", None))
    out: list[tuple[float, str, bytes]] = []
    latest = max(leg.delay for leg in legs)
    for leg in legs:
        seq_c, seq_s = (isn_c + leg.seq_shift) & 0xFFFFFFFF, isn_s
        for n, (who, kind, payload) in enumerate(steps):
            if drop is not None and drop(leg.iface, n):
                if kind == "msg":  # keep TCP consistent: a dropped segment is lost on this leg only
                    pl = _payload(payload, leg, server_call_id)
                    if who == "c":
                        seq_c = (seq_c + len(pl)) & 0xFFFFFFFF
                    else:
                        seq_s = (seq_s + len(pl)) & 0xFFFFFFFF
                continue
            base = t0 + n * 0.01
            ts = base + leg.delay if who == "c" else base + (latest - leg.delay)
            src, dst = (leg.ip, SERVER) if who == "c" else (SERVER, leg.ip)
            if kind == "syn":
                frame = _eth(IP(src=src, dst=dst) / TCP(sport=leg.port, dport=1723, flags="S", seq=seq_c))
                seq_c = (seq_c + 1) & 0xFFFFFFFF
            elif kind == "synack":
                frame = _eth(IP(src=src, dst=dst) / TCP(sport=1723, dport=leg.port, flags="SA", seq=seq_s,
                                                        ack=seq_c))
                seq_s = (seq_s + 1) & 0xFFFFFFFF
            elif kind == "fin":
                frame = _eth(IP(src=src, dst=dst) / TCP(sport=leg.port, dport=1723, flags="FA", seq=seq_c,
                                                        ack=seq_s))
            elif kind == "msg":
                pl = _payload(payload, leg, server_call_id)
                if who == "c":
                    frame = _eth(IP(src=src, dst=dst) / TCP(sport=leg.port, dport=1723, flags="PA", seq=seq_c,
                                                            ack=seq_s) / Raw(pl))
                    seq_c = (seq_c + len(pl)) & 0xFFFFFFFF
                else:
                    frame = _eth(IP(src=src, dst=dst) / TCP(sport=1723, dport=leg.port, flags="PA", seq=seq_s,
                                                            ack=seq_c) / Raw(pl))
                    seq_s = (seq_s + len(pl)) & 0xFFFFFFFF
            else:
                key = server_call_id if who == "c" else leg.call_id
                magic = magic_c if who == "c" else magic_s
                lcp = PPP_LCP_Configure(code=1, id=payload + 1,
                                        options=[PPP_LCP_Magic_Number_Option(magic_number=magic)])
                frame = _eth(IP(src=src, dst=dst, proto=47) / GRE_PPTP(call_id=key, seqnum_present=1,
                                                                       sequence_number=payload + 1)
                             / PPP(proto=0xC021) / lcp)
            out.append((ts, leg.iface, frame))
    return out


def _payload(payload: Any, leg: LegSpec, server_call_id: int) -> bytes:
    if payload == "ocrq":
        return bytes(PPTPOutgoingCallRequest(call_id=leg.call_id, call_serial_number=0))
    if payload == "ocrp":
        return bytes(PPTPOutgoingCallReply(call_id=server_call_id, peer_call_id=leg.call_id))
    if payload == "ccrq":
        return bytes(PPTPCallClearRequest(call_id=leg.call_id))
    return bytes(payload)


class TestCrafted:
    def test_call_id_collision_behind_a_nat_that_does_not_rewrite(self) -> None:
        """Two inside clients pick Call ID 7; the NAT passes it unchanged: both outside legs collide."""
        a = session_frames([LegSpec("lan", "10.1.0.2", 40001, 7), LegSpec("wan", "203.0.113.5", 40001, 7, 1e-4)],
                           t0=100.0, isn_c=1111, isn_s=2222, server_call_id=0x100, magic_c=0xA1, magic_s=0xB1)
        b = session_frames([LegSpec("lan", "10.1.0.3", 40002, 7), LegSpec("wan", "203.0.113.5", 40002, 7, 1e-4)],
                           t0=100.005, isn_c=3333, isn_s=4444, server_call_id=0x180, magic_c=0xA2, magic_s=0xB2)
        tracker, nat = feed(a + b)
        assert len(nat.sessions()) == 2
        for s in nat.sessions():
            assert s["translated"]["call_id"] is False
        (p,) = [p for p in nat.problems if p.code is NatProblemCode.CALL_ID_COLLISION]
        assert p.detail["call_id"] == 7 and p.detail["address"] == "203.0.113.5"
        assert sorted(p.detail["ports"]) == [40001, 40002]
        assert "10.1.0.2" in p.text and "10.1.0.3" in p.text
        outside = {t.id for t in tracker.tunnels.values() if t.iface == "wan"}
        assert set(p.tunnels) == outside
        for tid in outside:
            assert tracker.tunnels[tid].nat_problems[0].code == "call-id-collision"

    def test_a_translating_nat_avoids_the_collision(self) -> None:
        a = session_frames([LegSpec("lan", "10.1.0.2", 40001, 7), LegSpec("wan", "203.0.113.5", 40001, 40001, 1e-4)],
                           t0=100.0, isn_c=1111, isn_s=2222, server_call_id=0x100, magic_c=0xA1, magic_s=0xB1)
        b = session_frames([LegSpec("lan", "10.1.0.3", 40002, 7), LegSpec("wan", "203.0.113.5", 40002, 40002, 1e-4)],
                           t0=100.005, isn_c=3333, isn_s=4444, server_call_id=0x180, magic_c=0xA2, magic_s=0xB2)
        _, nat = feed(a + b)
        assert {(s["inside"]["ip"], s["outside"]["call_id"]) for s in nat.sessions()} == {
            ("10.1.0.2", 40001), ("10.1.0.3", 40002)}
        assert nat.problems == []

    def test_collision_seen_on_the_outside_only(self) -> None:
        """The server's GRE for the shared Call ID cannot be told apart: one tunnel gets it all."""
        a = session_frames([LegSpec("wan", "203.0.113.5", 40001, 9)], t0=5.0, isn_c=1, isn_s=2,
                           server_call_id=0x100, magic_c=1, magic_s=2)
        b = session_frames([LegSpec("wan", "203.0.113.5", 40002, 9)], t0=5.001, isn_c=3, isn_s=4,
                           server_call_id=0x180, magic_c=3, magic_s=4)
        _, nat = feed(a + b)
        assert nat.problems[0].code is NatProblemCode.CALL_ID_COLLISION
        assert nat.sessions() == []
        rest = nat.problems[1:]
        assert all(p.code is NatProblemCode.GRE_ONE_WAY and p.detail["direction"] == "to_server" for p in rest)
        assert len(rest) <= 1

    def test_a_conflicting_fact_vetoes_the_pair(self) -> None:
        """Same messages at the same time, renumbered TCP, and the LCP Magic-Numbers differ: not one session."""
        legs_a = session_frames([LegSpec("lan", "10.1.0.2", 40001, 7)], t0=1.0, isn_c=10, isn_s=20,
                                server_call_id=0x100, magic_c=0x1111, magic_s=0x2222, gre=2)
        legs_b = session_frames([LegSpec("wan", "203.0.113.5", 40001, 40001, 1e-4)], t0=1.0, isn_c=77, isn_s=99,
                                server_call_id=0x100, magic_c=0x3333, magic_s=0x4444, gre=2)
        _, nat = feed(legs_a + legs_b)
        assert nat.sessions() == []

    def test_a_contradiction_after_the_join_splits_a_weak_pair(self) -> None:
        """Joined on the server's sequence numbers only; then the Magic-Numbers differ: split again."""
        legs_a = session_frames([LegSpec("lan", "10.1.0.2", 40001, 7)], t0=1.0, isn_c=10, isn_s=20,
                                server_call_id=0x100, magic_c=0x1111, magic_s=0x2222, gre=2)
        legs_b = session_frames([LegSpec("wan", "203.0.113.5", 40001, 40001, 1e-4, seq_shift=5000)], t0=1.0,
                                isn_c=10, isn_s=20, server_call_id=0x100, magic_c=0x3333, magic_s=0x4444, gre=2)
        tracker, nat = feed(legs_a + legs_b)
        assert nat.pairs_joined == 1 and nat.pairs_split == 1
        assert nat.sessions() == [] and all(t.nat is None for t in tracker.tunnels.values())

    def test_a_contradiction_does_not_split_a_pair_proven_by_tcp(self) -> None:
        legs_a = session_frames([LegSpec("lan", "10.1.0.2", 40001, 7)], t0=1.0, isn_c=10, isn_s=20,
                                server_call_id=0x100, magic_c=0x1111, magic_s=0x2222, gre=2)
        legs_b = session_frames([LegSpec("wan", "203.0.113.5", 40001, 40001, 1e-4)], t0=1.0, isn_c=10, isn_s=20,
                                server_call_id=0x100, magic_c=0x3333, magic_s=0x4444, gre=2)
        _, nat = feed(legs_a + legs_b)
        (s,) = nat.sessions()
        assert "LCP Magic-Number of the client differs" in s["conflicts"]

    def test_timing_alone_is_not_enough(self) -> None:
        """Identical timing and messages but unrelated TCP sequence numbers and no PPP: no pair."""
        a = session_frames([LegSpec("lan", "10.1.0.2", 40001, 7)], t0=1.0, isn_c=10, isn_s=20,
                           server_call_id=0x100, magic_c=1, magic_s=2, gre=0)
        b = session_frames([LegSpec("wan", "203.0.113.5", 40001, 40001, 1e-4)], t0=1.0, isn_c=99999, isn_s=88888,
                           server_call_id=0x100, magic_c=1, magic_s=2, gre=0)
        _, nat = feed(a + b)
        assert nat.sessions() == []

    def test_roles_from_addresses_when_timestamps_are_equal(self) -> None:
        frames = session_frames([LegSpec("eth7", "203.0.113.5", 40001, 40001),
                                 LegSpec("eth8", "192.168.9.9", 40001, 7)],
                                t0=1.0, isn_c=10, isn_s=20, server_call_id=0x100, magic_c=5, magic_s=6)
        _, nat = feed(frames)
        (s,) = nat.sessions()
        assert s["inside"]["ip"] == "192.168.9.9" and s["inside"]["interface"] == "eth8"
        assert "address" in s["roles_from"]

    def test_same_interface_different_addresses(self) -> None:
        """``-i any`` on a gateway: both legs on one interface name, told apart by address."""
        frames = session_frames([LegSpec("any", "10.1.0.2", 40001, 7),
                                 LegSpec("any", "203.0.113.5", 40001, 40001, 1e-4)],
                                t0=1.0, isn_c=10, isn_s=20, server_call_id=0x100, magic_c=5, magic_s=6)
        _, nat = feed(frames)
        (s,) = nat.sessions()
        assert (s["inside"]["ip"], s["outside"]["ip"]) == ("10.1.0.2", "203.0.113.5")

    def test_evicted_leg_unpairs_its_peer(self) -> None:
        frames = session_frames([LegSpec("lan", "10.1.0.2", 40001, 7),
                                 LegSpec("wan", "203.0.113.5", 40001, 40001, 1e-4)],
                                t0=1.0, isn_c=10, isn_s=20, server_call_id=0x100, magic_c=5, magic_s=6)
        tracker, nat = feed(frames)
        (s,) = nat.sessions()
        outside = tracker.tunnels[s["peer"]]
        tracker._drop(tracker.tunnels[s["tunnel"]], tracker.now)  # what eviction does
        assert nat.sessions() == [] and outside.nat is None
        assert nat.peer(outside) is None


SESSION = st.fixed_dictionaries({
    "inside_ip": st.sampled_from(["10.1.0.2", "10.1.0.3", "192.168.1.2"]),
    "port": st.integers(1024, 65535),
    "call_id": st.integers(0, 65535),
    "outside_call_id": st.one_of(st.none(), st.integers(0, 65535)),
    "delay": st.sampled_from([1e-4, -1e-4, 0.0, 0.5]),
    "seq_shift": st.sampled_from([0, 0, 12345]),
    "start": st.floats(0, 3),
    "drop_mod": st.sampled_from([0, 0, 3, 5]),
})


class TestNeverCrashes:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(SESSION, min_size=1, max_size=4), st.sampled_from([("lan", "wan"), ("any", "any")]))
    def test_random_sessions_never_join_wrong_legs(self, specs: list[dict[str, Any]],
                                                   ifaces: tuple[str, str]) -> None:
        frames: list[tuple[float, str, bytes]] = []
        truth: dict[tuple[str, str, int | None], int] = {}  # (iface, client ip, port) -> session index
        for i, sp in enumerate(specs):
            out_cid = sp["call_id"] if sp["outside_call_id"] is None else sp["outside_call_id"]
            low = sp["port"] % 1000
            legs = [LegSpec(ifaces[0], sp["inside_ip"], 20000 + 1000 * i + low, sp["call_id"]),
                    LegSpec(ifaces[1], "203.0.113.5", 40000 + 1000 * i + low, out_cid,
                            max(0.0, sp["delay"]), sp["seq_shift"])]
            m = sp["drop_mod"]

            def drop(iface: str, n: int, m: int = m) -> bool:
                return bool(m) and iface == ifaces[1] and n % m == 1

            frames += session_frames(legs, t0=sp["start"] + i * 0.001, isn_c=1000 + 7919 * i,
                                     isn_s=5000 + 104729 * i, server_call_id=0x80 * (i + 1),
                                     magic_c=0x1000 + i, magic_s=0x2000 + i, drop=drop)
            for leg in legs:
                truth.setdefault((leg.iface, leg.ip, leg.port), i)
        tracker, nat = feed(frames)
        # a GRE-only tunnel (stray GRE of colliding calls) is known by the server's Call ID, which is
        # unique per session here and which no NAT rewrites; its roles may be guessed either way round
        by_server_call = {0x80 * (i + 1): i for i in range(len(specs))}

        def sessions_of(t: Any) -> set[int]:
            if t.control_seen:
                i = truth.get((t.iface, t.client.ip, t.client.port))
                return set() if i is None else {i}
            return {by_server_call[c] for c in (t.server.call_id, t.client.call_id) if c in by_server_call}

        for t in tracker.tunnels.values():
            note = t.nat
            if note is None:
                continue
            peer = tracker.tunnels[note.peer]
            assert peer.nat is not None and peer.nat.peer == t.id
            assert peer.server.ip == t.server.ip
            a, b = sessions_of(t), sessions_of(peer)
            assert a and b and a & b  # never the legs of two different sessions
        for p in nat.problems:
            assert p.code in NatProblemCode
            assert p.as_dict()["text"]



class TestRingsReadInTurn:
    """Live, each interface's ring is read in turn: one side's frames of the same moments may reach the
    tracker a little after the other side's, as long as a whole short session."""

    def test_a_short_session_whose_outside_frames_come_after_its_end_inside(self, data_dir: Path) -> None:
        inside = read_frames(data_dir / "s2-mschapv2-wrong-password-inside.pcap", "lan0")
        outside = read_frames(data_dir / "s2-mschapv2-wrong-password-outside.pcap", "wan0")
        span = max(f[0] for f in inside + outside) - min(f[0] for f in inside + outside)
        assert span < NatLimits().max_skew  # the whole session fits in the skew a correlation allows
        first = sorted(inside + outside, key=lambda f: f[0])  # the same login, once in time order
        # and again ten seconds later from the next source port, the client retrying
        later = [(ts + 10.0, iface, _next_port(data, 47958)) for ts, iface, data in first]
        late = [f for f in later if f[1] == "lan0"] + [f for f in later if f[1] == "wan0"]
        tracker = Tracker()
        nat = NatCorrelator(tracker)
        for n, (ts, iface, data) in enumerate(first + late, 1):
            tracker.feed(n, ts, iface, 1, data)
        tracker.finish()
        assert len(nat.sessions()) == 2
        assert [p.as_dict() for p in nat.problems] == []


def _next_port(frame: bytes, port: int) -> bytes:
    """``frame`` with the TCP port ``port`` (either end) one higher, its checksums made again."""
    pkt = Ether(frame)
    if TCP in pkt:
        tcp = pkt[TCP]
        tcp.sport = tcp.sport + 1 if tcp.sport == port else tcp.sport
        tcp.dport = tcp.dport + 1 if tcp.dport == port else tcp.dport
        del tcp.chksum
        del pkt[IP].chksum
    return bytes(pkt)
