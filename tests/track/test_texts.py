"""One copy of each text many tunnels repeat (track/texts.py): shared where tunnels repeat it, bounded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pptptop.track.texts import Texts


def test_an_equal_text_comes_back_as_the_first_copy() -> None:
    texts = Texts()
    first = "".join(["call-clear", " by client"])  # built at run time: not a constant the compiler shares
    again = "".join(["call-clear by", " client"])
    assert first == again and first is not again
    assert texts(first) is first
    assert texts(again) is first
    assert len(texts) == 1


def test_the_table_starts_afresh_when_full() -> None:
    texts = Texts(limit=3)
    names = [f"host-{i}" for i in range(10)]
    for n in names:
        assert texts(n) == n
        assert len(texts) <= 3
    # what was dropped is still returned equal, only no longer shared with the old copy
    late = "".join(["host-", "0"])
    assert texts(late) == "host-0"


def test_two_tunnels_of_one_server_share_its_texts(data_dir: Path, engine: Callable[..., Any]) -> None:
    """Two clients behind one NAT to one pptpd (the lab's s5 capture, outside leg): the server's address,
    host name and vendor, its CCP offer and success message, and the steps of the teardown are one string
    each in both tunnels, and equal to what each tunnel decoded."""
    tracker = engine(data_dir / "s5-two-clients-same-nat-outside.pcap")
    a, b = sorted(tracker.tunnels.values(), key=lambda t: t.id)
    assert a.server.ip == b.server.ip and a.server.ip is b.server.ip
    assert a.client.ip is b.client.ip  # one public address for both clients: the NAT's
    assert a.control.server_vendor == b.control.server_vendor == "linux"
    assert a.control.server_vendor is b.control.server_vendor
    assert a.control.client_vendor is b.control.client_vendor
    assert a.auth.message is not None and a.auth.message is b.auth.message
    assert a.ccp.offered["server"] is b.ccp.offered["server"]
    assert a.ncp.server_ip is not None and a.ncp.server_ip is b.ncp.server_ip
    shared = set(a.close.steps) & set(b.close.steps)
    assert shared
    for step in shared:
        assert a.close.steps[a.close.steps.index(step)] is b.close.steps[b.close.steps.index(step)]


def test_a_finding_sentence_many_tunnels_repeat_is_kept_once(tmp_path: Path) -> None:
    """A reconnect storm of one user's sessions: each tunnel has the same findings, word for word (the same
    user's hang-up, the same crackable exchange). Each sentence is one string across all the tunnels."""
    from pptptop import diagnose
    from pptptop.bench import generate_storm
    from pptptop.sources import open_file
    from pptptop.track import nat
    from pptptop.track.tracker import Tracker

    path = tmp_path / "storm.pcap"
    generate_storm(path, 12, concurrent=4, data=2)
    tracker = Tracker()
    nat.attach(tracker)
    diagnose.Diagnoser().attach(tracker)
    for n, f in enumerate(open_file(str(path)), 1):
        tracker.feed(n, f.ts, f.iface, f.linktype, f.data)
    tracker.finish()
    held: dict[str, str] = {}
    shared = 0
    for t in sorted(tracker.tunnels.values(), key=lambda t: t.id):
        for f in t.findings:
            if f.detail in held:
                assert f.detail is held[f.detail], f"{f.code}: an equal sentence kept twice"
                shared += 1
            else:
                held[f.detail] = f.detail
    assert len(tracker.tunnels) == 12 and shared >= 11  # each tunnel after the first repeats one at least
