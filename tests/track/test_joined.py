"""Starting on a busy gateway: tunnels already up are joined, never failed, and nothing unseen is claimed.

Each healthy lab session is cut at points of its data phase (``editcap -r FILE
OUT N-``: what pptptop sees when started at that moment). The facts still on
the wire after the cut must come out as on the whole capture: one tunnel per
session, not failed, no error finding, MPPE recognised from the data, closed
at its teardown, GRE counts equal to tshark's.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from pptptop import diagnose as diagmod
from pptptop.diagnose.finding import Severity
from pptptop.export.jsonout import tunnel_dict
from pptptop.pipeline import Pipeline
from pptptop.sources.pcapfile import PcapFileSource
from pptptop.track import nat as natmod
from pptptop.track.model import Outcome, Phase
from pptptop.track.tracker import Tracker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sources"))
from capfiles import head_and_frames, requires_tshark

HEALTHY = ["s1-mschapv2-mppe128-inside.pcap", "s1-mschapv2-mppe128-outside.pcap", "s1-mschapv2-mppe128-both.pcapng",
           "s5-two-clients-same-nat-inside.pcap", "s5-two-clients-same-nat-outside.pcap",
           "s5-two-clients-same-nat-both.pcapng"]
CUTS = 4


NAT: dict[int, Any] = {}  # id(tracker) -> its NAT correlator


def run(raw: bytes) -> tuple[Tracker, diagmod.Diagnoser]:
    tracker = Tracker()
    NAT[id(tracker)] = natmod.attach(tracker)
    diag = diagmod.Diagnoser(diagmod.DiagnosisConfig()).attach(tracker)
    pipe = Pipeline(PcapFileSource("cut", io.BytesIO(raw)), tracker)
    pipe.run()
    assert pipe.crash is None and pipe.error is None
    return tracker, diag


@pytest.mark.parametrize("name", ["s1-mschapv2-mppe128-both.pcapng", "s5-two-clients-same-nat-both.pcapng"])
def test_both_nat_legs_of_a_joined_session_are_paired(data_dir: Path, name: str) -> None:
    """Met mid-session on both sides of a NAT, each inside leg is still paired with its outside leg."""
    for first, raw in cuts_in_data(data_dir / name):
        tracker, _ = run(raw)
        nat = NAT.pop(id(tracker))
        inside = [t for t in tracker.tunnels.values() if t.iface == "lan0"]
        assert inside, first
        for t in inside:
            view = nat.view(t)
            assert view is not None, (first, t.label)
            peer = tracker.tunnels[view.peer]
            assert peer.iface == "wan0" and peer.server.ip == t.server.ip, first
            assert view.inside.call_id == t.client.call_id, first


def data_window(tracker: Tracker) -> tuple[float, float]:
    """From when every session carries data to the first teardown, in capture time."""
    start = max(next(s.start for s in t.phases if s.phase is Phase.DATA) for t in tracker.tunnels.values())
    end = min((t.close.ts for t in tracker.tunnels.values() if t.close.ts is not None), default=tracker.now)
    return start, end


def cuts_in_data(path: Path) -> list[tuple[int, bytes]]:
    raw = path.read_bytes()
    whole, _ = run(raw)
    start, end = data_window(whole)
    head, recs = head_and_frames(raw)
    times = [f.ts for f in PcapFileSource("x", io.BytesIO(raw))]
    inside = [i for i, ts in enumerate(times) if start < ts < end]
    inside = inside[len(inside) // 8: len(inside) - len(inside) // 8]  # well inside: every session has frames after
    picks = sorted({inside[k * (len(inside) - 1) // (CUTS - 1)] for k in range(CUTS)})
    return [(i + 1, head + b"".join(recs[i:])) for i in picks]


def sessions(tracker: Tracker) -> int:
    return len(tracker.tunnels)


@pytest.mark.parametrize("name", HEALTHY)
def test_a_healthy_session_met_in_its_data_phase(data_dir: Path, name: str) -> None:
    whole, _ = run((data_dir / name).read_bytes())
    for first, raw in cuts_in_data(data_dir / name):
        tracker, diag = run(raw)
        where = f"{name} from frame {first}"
        assert sessions(tracker) == sessions(whole), where  # one row per session (and leg)
        for t in tracker.tunnels.values():
            assert t.phase is Phase.CLOSED and t.failed_in is None, (where, t.label, t.phase)
            assert t.joined and t.phases[0].outcome is Outcome.NOT_SEEN, where
            assert t.control_seen, (where, t.label)  # its control connection was bound to its GRE
            assert t.client.port is not None and t.server.port == 1723, where
            if t.traffic[0].data_packets + t.traffic[1].data_packets:
                assert t.ccp.mppe, (where, "MPPE recognised from 0x00FD data")
            else:  # no data after the cut: unknown, not "in clear"
                assert tunnel_dict(t, tracker.now)["ccp"]["mppe"] is None, where
            assert not [f.code for f in diag.findings(t) if f.severity is Severity.ERROR], where
            full = next(w for w in whole.tunnels.values() if (w.iface, w.client.port) == (t.iface, t.client.port))
            assert (t.client.ip, t.server.ip) == (full.client.ip, full.server.ip), where
            assert t.close.by == full.close.by and t.close.how == full.close.how, where


@pytest.mark.parametrize("name", ["s1-mschapv2-mppe128-inside.pcap", "s5-two-clients-same-nat-outside.pcap"])
def test_nothing_unseen_is_claimed(data_dir: Path, name: str) -> None:
    """Auth, CCP and NCP negotiated before the capture are unknown (null), not none; MPPE comes from the data."""
    _first, raw = cuts_in_data(data_dir / name)[1]
    tracker, _ = run(raw)
    for t in tracker.tunnels.values():
        d: dict[str, Any] = tunnel_dict(t, tracker.now)
        assert d["joined"] is True
        assert d["auth"]["negotiation_seen"] is False and d["auth"]["method"] is None
        assert d["auth"]["result"] is None
        assert d["ccp"]["negotiation_seen"] is False
        assert d["ccp"]["mppe"] is True and d["ccp"]["from_data"] is True and d["ccp"]["bits"] is None
        assert {p["outcome"] for p in d["phases"] if p["phase"] in ("tcp", "control", "call")} == {"not-seen"}


@requires_tshark
@pytest.mark.parametrize("name", ["s1-mschapv2-mppe128-both.pcapng", "s5-two-clients-same-nat-outside.pcap"])
def test_gre_counts_after_a_cut_equal_tsharks(data_dir: Path, tmp_path: Path, name: str,
                                              tshark: Any) -> None:
    for first, raw in cuts_in_data(data_dir / name):
        cut = tmp_path / f"cut-{first}{Path(name).suffix}"
        cut.write_bytes(raw)
        tracker, _ = run(raw)
        rows = tshark(cut, "gre", ["ip.src", "ip.dst", "gre.key.call_id"])
        assert tracker.stats.gre == len(rows), first
        for t in tracker.tunnels.values():
            to_server = sum(1 for s, d, c in rows if (s, d, int(c)) == (t.client.ip, t.server.ip, t.server.call_id))
            to_client = sum(1 for s, d, c in rows if (s, d, int(c)) == (t.server.ip, t.client.ip, t.client.call_id))
            assert (t.traffic[0].packets, t.traffic[1].packets) == (to_server, to_client), (first, t.label)


def test_a_control_connection_joined_without_calls_is_not_failed(data_dir: Path) -> None:
    """Only the end of a control connection (its FIN) is captured: closed, never 'FAILED in tcp'."""
    raw = (data_dir / "s1-mschapv2-mppe128-inside.pcap").read_bytes()
    head, recs = head_and_frames(raw)
    tracker, diag = run(head + b"".join(recs[-3:]))
    assert tracker.tunnels
    for t in tracker.tunnels.values():
        assert t.phase is Phase.CLOSED and t.failed_in is None
        assert not [f for f in diag.findings(t) if f.severity is Severity.ERROR]


def test_a_windows_session_met_in_its_data_phase_with_a_quiet_control_connection(data_dir: Path) -> None:
    """pptpsniffer's Windows session never ends in the capture and its control connection says nothing
    after the cut: one GRE-only tunnel in data, not failed, MPPE from the data, no error."""
    for first, raw in cuts_in_data(data_dir / "pptpsniffer__connect.pcapng"):
        tracker, diag = run(raw)
        data = [t for t in tracker.tunnels.values() if not t.control_seen]
        assert len(data) == 1, first
        t = data[0]
        assert t.phase is Phase.DATA and t.joined and t.ccp.mppe and t.ccp.from_data, first
        for u in tracker.tunnels.values():
            assert u.failed_in is None, (first, u.label)
            assert not [f.code for f in diag.findings(u) if f.severity is Severity.ERROR], first


def test_a_gre_only_session_ends_at_its_lcp_terminate(data_dir: Path) -> None:
    """Captured as GRE only (``proto 47``) from its data phase: no control connection will say the call is
    over, so the link going down (LCP Terminate-Request) closes it, by the side that sent it."""
    raw = (data_dir / "s1-mschapv2-mppe128-inside.pcap").read_bytes()
    head, recs = head_and_frames(raw)
    frames = list(PcapFileSource("x", io.BytesIO(raw)))
    gre = [r for r, f in zip(recs, frames, strict=True) if len(f.data) > 23 and f.data[23] == 47]
    tracker, diag = run(head + b"".join(gre[len(gre) // 2:]))
    assert len(tracker.tunnels) == 1
    t = next(iter(tracker.tunnels.values()))
    assert not t.control_seen and t.joined and t.phase is Phase.CLOSED
    assert (t.close.by, t.close.how, t.close.reason) == ("client", "lcp-terminate", "MPPE disabled")
    assert not [f for f in diag.findings(t) if f.severity is Severity.ERROR]


@pytest.mark.parametrize("name", [*HEALTHY, "pptpsniffer__connect.pcapng", "chapcrack__sample.dump",
                                  "s6-pap-no-encryption-inside.pcap"])
def test_no_cut_of_a_healthy_session_invents_a_failure(data_dir: Path, name: str) -> None:
    """Cut anywhere (in TCP, control, LCP, auth, NCP or data): no tunnel of a healthy session fails and
    none has an error finding, and the call IDs still on the wire are the whole capture's."""
    raw = (data_dir / name).read_bytes()
    whole, _ = run(raw)
    calls = {(t.iface, t.client.call_id, t.server.call_id) for t in whole.tunnels.values()}
    calls |= {(i, s, c) for i, c, s in calls}  # GRE only, roles are a guess (roles_guessed): either way round
    head, recs = head_and_frames(raw)
    for k in range(1, 10):
        first = len(recs) * k // 10
        tracker, diag = run(head + b"".join(recs[first:]))
        for t in tracker.tunnels.values():
            where = f"{name} from frame {first + 1}: {t.label}"
            assert t.failed_in is None, where
            assert not [f.code for f in diag.findings(t) if f.severity is Severity.ERROR], where
            if t.client.call_id is not None and t.server.call_id is not None:
                key = (t.iface, t.client.call_id, t.server.call_id)
                assert key in calls, where
                if not t.roles_guessed:
                    assert key in {(w.iface, w.client.call_id, w.server.call_id) for w in whole.tunnels.values()}
