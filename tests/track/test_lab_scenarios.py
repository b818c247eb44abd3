"""The lab scenarios give the tunnels an engineer reads off the captures (shared/captures/lab/README.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pptptop.track.model import Direction, Outcome, Phase


def only_tunnel(tracker: Any) -> Any:
    tunnels = [t for t in tracker.tunnels.values()]
    assert len(tunnels) == 1, [t.label for t in tunnels]
    return tunnels[0]


class TestSuccessfulSession:
    def test_s1_closed_after_data_with_mschapv2_and_mppe128(
        self, engine: Callable[..., Any], data_dir: Path
    ) -> None:
        for leg in ("inside", "outside"):
            t = only_tunnel(engine(data_dir / f"s1-mschapv2-mppe128-{leg}.pcap"))
            assert t.phase is Phase.CLOSED
            assert [s.phase for s in t.phases] == [
                Phase.TCP,
                Phase.CONTROL,
                Phase.CALL,
                Phase.LCP,
                Phase.AUTH,
                Phase.NCP,
                Phase.DATA,
                Phase.CLOSED,
            ]
            assert all(s.outcome is Outcome.OK for s in t.phases)
            assert t.auth.method == "MS-CHAPv2"
            assert t.auth.user == "alice"
            assert t.auth.result == "success"
            assert t.auth.message == "Access granted"
            assert t.auth.server_name == "pptpsrv"
            assert t.ccp.mppe and t.ccp.bits == 128 and t.ccp.stateless is True
            assert t.ncp.client_ip == "192.0.2.10"
            assert t.ncp.server_ip == "192.0.2.1"
            # pptp-linux hangs up with LCP TermReq "MPPE disabled", then Call-Clear-Request and FIN
            assert (t.close.by, t.close.how, t.close.reason) == ("client", "lcp-terminate", "MPPE disabled")
            assert any(s.startswith("call-clear by client") for s in t.close.steps)
            assert t.server.call_id == 0 and t.server.port == 1723
            assert t.control.server_host == "pptpsrv" or t.control.server_vendor == "linux"

    def test_s1_traffic_and_echo(
        self, engine: Callable[..., Any], data_dir: Path, tshark: Callable[..., list[list[str]]]
    ) -> None:
        path = data_dir / "s1-mschapv2-mppe128-inside.pcap"
        t = only_tunnel(engine(path))
        up, down = t.traffic[Direction.TO_SERVER], t.traffic[Direction.TO_CLIENT]
        rows = tshark(path, "gre", ["ip.src", "frame.len"])
        sent = [r for r in rows if r[0] == t.client.ip]
        recv = [r for r in rows if r[0] == t.server.ip]
        assert (up.packets, down.packets) == (len(sent), len(recv))
        assert (up.bytes, down.bytes) == (sum(int(r[1]) for r in sent), sum(int(r[1]) for r in recv))
        comp = tshark(path, "ppp.protocol == 0x00fd", ["ip.src"])
        assert up.data_packets + down.data_packets == len(comp) == 22
        assert up.lost == down.lost == 0
        # 12 LCP Echo-Request/Reply pairs and 3 PPTP echo pairs (README of the lab)
        assert (t.lcp_echo.requests, t.lcp_echo.replies, t.lcp_echo.misses) == (12, 12, 0)
        assert (t.pptp_echo.requests, t.pptp_echo.replies) == (3, 3)
        assert t.pptp_echo.rtt_ms is not None and 0 <= t.pptp_echo.rtt_ms < 1000


class TestFailures:
    def test_s2_fails_in_auth_with_691(self, engine: Callable[..., Any], data_dir: Path) -> None:
        t = only_tunnel(engine(data_dir / "s2-mschapv2-wrong-password-outside.pcap"))
        assert t.phase is Phase.FAILED and t.failed_in is Phase.AUTH
        assert t.auth.result == "failure" and t.auth.error_code == 691 and t.auth.user == "bob"
        assert t.auth.retry is True
        assert t.auth.message == "Access denied"
        assert (t.close.by, t.close.how, t.close.reason) == (
            "server",
            "lcp-terminate",
            "Authentication failed",
        )

    def test_s3_never_leaves_lcp(self, engine: Callable[..., Any], data_dir: Path) -> None:
        for leg, sender in (("inside", "client"), ("outside", "server")):
            t = only_tunnel(engine(data_dir / f"s3-gre-blocked-{leg}.pcap"))
            assert t.phase is Phase.FAILED and t.failed_in is Phase.LCP
            assert not t.lcp.opened["client"] and not t.lcp.opened["server"]
            # only one side's Configure-Requests cross the gateway on each leg, every 3 s
            assert t.lcp.config_requests[sender] >= 5
            assert t.close.how == "call-clear" and t.close.by == "client"
            assert t.pptp_echo.replies >= 2  # the control channel stays healthy

    def test_s3b_icmp_protocol_unreachable_is_attached(
        self, engine: Callable[..., Any], data_dir: Path
    ) -> None:
        t = only_tunnel(engine(data_dir / "s3b-gre-forward-drop-outside.pcap"))
        assert t.phase is Phase.FAILED
        assert any("protocol unreachable" in e for e in t.icmp_errors)

    def test_s4_mppe_refused(self, engine: Callable[..., Any], data_dir: Path) -> None:
        t = only_tunnel(engine(data_dir / "s4-mppe-refused-by-client-outside.pcap"))
        assert t.phase is Phase.FAILED and t.failed_in is Phase.NCP
        assert t.auth.result == "success"
        assert t.ccp.rejected_by == "client" and not t.ccp.mppe
        assert t.close.reason == "MPPE required but peer refused" and t.close.by == "server"

    def test_s7_echo_timeout_counts_misses(self, engine: Callable[..., Any], data_dir: Path) -> None:
        t = only_tunnel(engine(data_dir / "s7-echo-timeout-inside.pcap"))
        assert t.lcp_echo.misses >= 3
        assert t.phase is Phase.CLOSED  # it carried data before the path died

    @pytest.mark.parametrize(
        "name,how,by",
        [
            ("s8-server-killed", "tcp-fin", "server"),
            ("s9-server-hangup", "lcp-terminate", "server"),
            ("s10-server-ctrl-sigterm", "call-disconnect", "server"),
        ],
    )
    def test_server_side_endings(
        self, engine: Callable[..., Any], data_dir: Path, name: str, how: str, by: str
    ) -> None:
        t = only_tunnel(engine(data_dir / f"{name}-outside.pcap"))
        assert t.phase is Phase.CLOSED
        assert (t.close.how, t.close.by) == (how, by)

    def test_s10_stop_control_connection(self, engine: Callable[..., Any], data_dir: Path) -> None:
        t = only_tunnel(engine(data_dir / "s10-server-ctrl-sigterm-outside.pcap"))
        assert any(s.startswith("stop-control by server") for s in t.close.steps)
        assert t.control.stop_reason is not None


class TestPapAndNat:
    def test_s6_pap_without_mppe(self, engine: Callable[..., Any], data_dir: Path) -> None:
        t = only_tunnel(engine(data_dir / "s6-pap-no-encryption-inside.pcap"))
        assert t.auth.method == "PAP" and t.auth.user == "carol" and t.auth.result == "success"
        assert t.auth.password_seen
        assert not t.ccp.mppe and not t.ccp.offered
        assert t.phase is Phase.CLOSED
        # ICMP inside the tunnel is in clear: the inner flows are summarised
        assert any(k[2] == 1 for k in t.inner_flows)

    def test_s5_two_tunnels_with_tshark_call_ids(
        self, engine: Callable[..., Any], data_dir: Path, tshark: Callable[..., list[list[str]]]
    ) -> None:
        for leg in ("inside", "outside"):
            path = data_dir / f"s5-two-clients-same-nat-{leg}.pcap"
            tracker = engine(path)
            tunnels = sorted(tracker.tunnels.values(), key=lambda t: t.id)
            assert len(tunnels) == 2
            ocrq = tshark(path, "pptp.control_message_type == 7", ["ip.src", "tcp.srcport", "pptp.call_id"])
            ocrp = tshark(
                path,
                "pptp.control_message_type == 8",
                ["ip.dst", "tcp.dstport", "pptp.call_id", "pptp.peer_call_id"],
            )
            want = {(r[0], int(r[1]), int(r[2])) for r in ocrq}
            assert {(t.client.ip, t.client.port, t.client.call_id) for t in tunnels} == want
            want_srv = {(int(r[3]), int(r[2])) for r in ocrp}
            assert {(t.client.call_id, t.server.call_id) for t in tunnels} == want_srv
            assert {t.auth.user for t in tunnels} == {"alice", "bob"}
            assert {t.ncp.client_ip for t in tunnels} == {"192.0.2.10", "192.0.2.11"}
            for t in tunnels:
                assert t.phase is Phase.CLOSED
                assert t.traffic[0].data_packets > 0 and t.traffic[1].data_packets > 0

    def test_both_legs_in_one_pcapng_are_separate_tunnels(
        self, engine: Callable[..., Any], data_dir: Path
    ) -> None:
        tracker = engine(data_dir / "s1-mschapv2-mppe128-both.pcapng")
        by_iface = {t.iface: t for t in tracker.tunnels.values()}
        assert set(by_iface) == {"lan0", "wan0"}
        assert by_iface["lan0"].client.ip == "10.0.0.2"
        assert by_iface["wan0"].client.ip == "198.51.100.1"
        # the NAT rewrote the client's call ID to the masqueraded source port
        assert by_iface["wan0"].client.call_id == by_iface["wan0"].client.port
