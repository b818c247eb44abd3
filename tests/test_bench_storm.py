"""The benchmark's reconnect storm (``pptptop.bench.generate_storm``) is traffic a real peer sends: the figures
of issue 23 are measured on it, so a defect of the generator would be a defect of every figure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pptptop.bench import generate_storm
from pptptop.decode.pptp import CallClearRequest
from pptptop.track.model import PacketKind

SESSIONS = 20


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("storm") / "storm.pcap"
    generate_storm(path, SESSIONS, concurrent=8, data=6)
    return path


@pytest.mark.tshark
def test_every_control_stream_goes_on_without_a_hole(storm: Path, tshark: Callable[..., list[list[str]]]) -> None:
    """The template's PPTP echoes are left out between the handshake and the teardown: the teardown's TCP
    numbers follow on, as in a session that sent fewer echoes (tshark finds no segment missing or unseen)."""
    assert len(tshark(storm, "tcp.port == 1723", ["frame.number"])) == SESSIONS * 15
    holes = tshark(storm, "tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment "
                          "|| tcp.analysis.out_of_order || tcp.analysis.retransmission", ["frame.number"])
    assert holes == []


def test_each_call_clear_is_in_its_own_frame(storm: Path, engine: Callable[..., Any]) -> None:
    tracker = engine(storm)
    assert len(tracker.tunnels) == SESSIONS
    for t in tracker.tunnels.values():
        assert t.tcp.out_of_order == 0 and t.tcp.retransmissions == 0
        clears = [p for p in t.stored_packets()
                  if p.kind is PacketKind.CONTROL and isinstance(p.message, CallClearRequest)]
        assert len(clears) == 1
        assert clears[0].label.startswith("Call-Clear-Request")
        # the frame carries the message whole: 14 + 20 + 32 (TCP with timestamps) + 16 octets
        assert len(clears[0].data) == 82
        assert [s for s in t.close.steps if s.startswith("call-clear")] == ["call-clear by client"]
