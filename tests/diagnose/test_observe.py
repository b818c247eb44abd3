"""Observations: the per-side facts of a tunnel (issue 23: ``Sides``, not a dict each) swap with the roles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pptptop.diagnose.config import DiagnosisConfig
from pptptop.diagnose.observe import Observations
from pptptop.sources import open_file
from pptptop.track.events import Event
from pptptop.track.sides import Sides
from pptptop.track.tracker import Limits, Tracker

DATA = Path(__file__).parent.parent / "data"


def observed(name: str) -> Observations:
    """The observations of the capture's first tunnel, as the diagnoser files them."""
    tracker = Tracker(Limits())
    obs = Observations(DiagnosisConfig())
    first: list[int] = []

    def take(ev: Event) -> None:
        if ev.tunnel is None:
            return
        if not first:
            first.append(ev.tunnel.id)
        if ev.tunnel.id == first[0]:
            obs.update(ev)

    tracker.subscribe(take)
    for n, f in enumerate(open_file(str(DATA / name)), 1):
        tracker.feed(n, f.ts, f.iface, f.linktype, f.data)
    tracker.finish()
    return obs


def per_side(obs: Observations) -> dict[str, Any]:
    """Every per-side field (a Sides, or the dict of each side's last PPP frame) as plain dicts, in order."""
    out = {name: dict(getattr(obs, name)) for name in Observations.__slots__
           if isinstance(getattr(obs, name), Sides) or name == "last_message"}
    for echo in (obs.lcp_echo, obs.pptp_echo):
        out[f"{echo.kind}_unanswered"] = dict(echo.unanswered)
        out[f"{echo.kind}_requests"] = dict(echo.requests)
    return out


def test_a_real_handshake_fills_both_sides_and_swapping_moves_every_one() -> None:
    obs = observed("s1-mschapv2-mppe128-inside.pcap")
    before = per_side(obs)
    both = [name for name, d in before.items() if set(d) == {"client", "server"}]
    assert {"lcp_acked", "magic", "ccp_acked", "ipcp_opened", "last_message"} <= set(both)
    obs.swap_sides()
    after = per_side(obs)
    other = {"client": "server", "server": "client"}
    for name, d in before.items():
        # each value on the other side, the keys in the order they were first set (a dict's order)
        assert list(after[name].items()) == [(other[k], v) for k, v in d.items()], name
    obs.swap_sides()
    assert per_side(obs) == before
