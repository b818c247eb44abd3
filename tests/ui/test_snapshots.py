"""SVG snapshots of the main screens on the lab captures (pytest-textual-snapshot).

The captures are read to the end before the app starts (``-r FILE`` at max
speed, then the screen), the time zone is UTC and the file is opened by a
relative name, so every run draws the same screen. Update with
``pytest tests/ui/test_snapshots.py --snapshot-update`` after a deliberate change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import DATA, SIZE, replayed_app

from pptptop.ui.app import PptpTopApp

S1 = "s1-mschapv2-mppe128-both.pcapng"
S2 = "s2-mschapv2-wrong-password-both.pcapng"
S3 = "s3-gre-blocked-both.pcapng"
S5 = "s5-two-clients-same-nat-both.pcapng"

Snap = Callable[..., bool]


@pytest.fixture
def lab_app(monkeypatch: pytest.MonkeyPatch, utc: None, tmp_path: Path) -> Callable[[str], PptpTopApp]:
    monkeypatch.chdir(DATA)

    def make(name: str) -> PptpTopApp:
        return replayed_app(Path(name), save_dir=tmp_path)
    return make


async def settle(pilot: Any) -> None:
    await pilot.pause(0.2)


@pytest.mark.parametrize("name", [S1, S2, S3, S5])
def test_tunnels(snap_compare: Snap, lab_app: Callable[[str], PptpTopApp], name: str) -> None:
    assert snap_compare(lab_app(name), terminal_size=SIZE, run_before=settle)


def test_tunnels_80x24(snap_compare: Snap, lab_app: Callable[[str], PptpTopApp]) -> None:
    assert snap_compare(lab_app(S5), terminal_size=(80, 24), run_before=settle)


@pytest.mark.parametrize("name", [S1, S2, S3])
def test_tunnel_flow(snap_compare: Snap, lab_app: Callable[[str], PptpTopApp], name: str) -> None:
    assert snap_compare(lab_app(name), press=["enter"], terminal_size=SIZE, run_before=settle)


def test_tunnel_summary(snap_compare: Snap, lab_app: Callable[[str], PptpTopApp]) -> None:
    assert snap_compare(lab_app(S2), press=["enter", "2"], terminal_size=SIZE, run_before=settle)


def test_packet(snap_compare: Snap, lab_app: Callable[[str], PptpTopApp]) -> None:
    keys = ["enter", *["down"] * 15, "enter"]  # the CHAP Response of s2's outside leg (user bob)
    assert snap_compare(lab_app(S2), press=keys, terminal_size=SIZE, run_before=settle)


def test_nat(snap_compare: Snap, lab_app: Callable[[str], PptpTopApp]) -> None:
    assert snap_compare(lab_app(S5), press=["n"], terminal_size=SIZE, run_before=settle)


def test_events(snap_compare: Snap, lab_app: Callable[[str], PptpTopApp]) -> None:
    assert snap_compare(lab_app(S3), press=["e"], terminal_size=SIZE, run_before=settle)


def test_help(snap_compare: Snap, lab_app: Callable[[str], PptpTopApp]) -> None:
    assert snap_compare(lab_app(S1), press=["question_mark"], terminal_size=SIZE, run_before=settle)
