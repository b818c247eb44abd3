"""A tunnel met mid-session shows as such in the table: a joined mark, and what was not seen as unknown."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from pptptop.pipeline import Pipeline
from pptptop.sources import open_file
from pptptop.sources.pcapfile import PcapFileSource
from pptptop.track.tracker import Tracker
from pptptop.ui.columns import JOINED_MARK, phase_chip
from pptptop.view.snapshot import make_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sources"))
from capfiles import head_and_frames


def tail_of(path: Path, first: int) -> bytes:
    """The capture from frame ``first`` on: what pptptop sees when started then."""
    head, frames = head_and_frames(path.read_bytes())
    return head + b"".join(frames[first - 1:])


def test_a_joined_tunnel_row(data_dir: Path) -> None:
    tracker = Tracker()
    Pipeline(PcapFileSource("cut", io.BytesIO(tail_of(data_dir / "s1-mschapv2-mppe128-inside.pcap", 60))),
             tracker).run()
    (t,) = tracker.tunnels.values()
    row = make_row(t, tracker.now)
    assert row.joined and phase_chip(row) == JOINED_MARK + "CLOSED"
    assert row.encryption == "MPPE"  # from the 0x00FD data: the strength was negotiated before the capture
    assert row.auth_method == "?"


def test_a_whole_session_row_has_no_mark(data_dir: Path) -> None:
    tracker = Tracker()
    Pipeline(open_file(str(data_dir / "s1-mschapv2-mppe128-inside.pcap")), tracker).run()
    row = make_row(next(iter(tracker.tunnels.values())), tracker.now)
    assert not row.joined and phase_chip(row) == "CLOSED"
    assert row.encryption == "MPPE-128" and row.auth_method == "MS-CHAPv2"
