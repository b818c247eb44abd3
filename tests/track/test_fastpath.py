"""The vectorised data path gives exactly what feeding frame by frame gives."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from pptptop import sources
from pptptop.bench import generate, generate_storm
from pptptop.export.jsonout import tunnel_dict
from pptptop.pipeline import Pipeline
from pptptop.record.writers import PcapWriter
from pptptop.sources.base import Frame
from pptptop.sources.batch import batch_from_frames
from pptptop.track import fastpath
from pptptop.track.model import Phase
from pptptop.track.tracker import Tracker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "diagnose"))
from diag_support import Wire


def run(path: Path, batched: bool) -> tuple[Tracker, list[dict[str, Any]]]:
    tracker = Tracker()
    # a frame hook needs every frame on its own: it keeps the pipeline on the per-frame path
    hooks = [] if batched else [lambda number, frame: None]
    pipe = Pipeline(sources.open_file(str(path)), tracker, frame_hooks=hooks)
    assert pipe.batched is batched
    pipe.run()
    assert pipe.error is None and pipe.crash is None
    tunnels = [tunnel_dict(t, tracker.now) for t in sorted(tracker.tunnels.values(), key=lambda t: t.id)]
    return tracker, tunnels


def assert_same(path: Path) -> Tracker:
    fast, a = run(path, batched=True)
    slow, b = run(path, batched=False)
    assert len(a) == len(b)
    for ta, tb in zip(a, b, strict=True):
        assert ta == tb, [k for k in ta if ta[k] != tb[k]]
    assert fast.stats.frames == slow.stats.frames
    frames = list(sources.open_file(str(path)))
    for tf, ts_ in zip(sorted(fast.tunnels.values(), key=lambda t: t.id),
                       sorted(slow.tunnels.values(), key=lambda t: t.id), strict=True):
        # the batch path keeps a sample of each batch's data packets: each one is the real frame,
        # and the newest of each direction is the per-frame path's newest
        for number, ts, _d, data in tf.data_ring:
            assert (frames[number - 1].ts, frames[number - 1].data) == (ts, data)
        for d in (0, 1):
            newest_fast = [e for e in tf.data_ring if e[2] == d][-1:]
            newest_slow = [e for e in ts_.data_ring if e[2] == d][-1:]
            assert newest_fast == newest_slow or not newest_slow
    assert (fast.stats.gre, fast.stats.gre_data, fast.stats.bytes) == (slow.stats.gre, slow.stats.gre_data,
                                                                      slow.stats.bytes)
    return fast


DATA = Path(__file__).resolve().parent.parent / "data"
#: every capture in tests/data (by its magic, nft/ included): s6, PAP without MPPE, carries plain IP as data
CAPTURES = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file()
                  and p.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                                             b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a"))


@pytest.mark.parametrize("name", CAPTURES)
def test_real_captures(data_dir: Path, name: str) -> None:
    assert_same(data_dir / name)


def test_generated_sessions_with_loss_reordering_and_duplicates(tmp_path: Path) -> None:
    clean = tmp_path / "clean.pcap"
    generate(clean, packets=30_000, tunnels=20, seed=7)
    frames = list(sources.open_file(str(clean)))
    rng = random.Random(3)
    messy: list[Any] = []
    for i, f in enumerate(frames):
        if i > 2000 and rng.random() < 0.01:
            continue  # lost
        messy.append(f)
        if i > 2000 and rng.random() < 0.005:
            messy.append(f)  # duplicated
    for _ in range(100):  # reordered: the generator sends each tunnel's next packet that way 40 frames later
        j = rng.randrange(2000, len(messy) - 41)
        messy[j], messy[j + 40] = messy[j + 40], messy[j]
    path = tmp_path / "messy.pcap"
    with open(path, "wb") as fh:
        w = PcapWriter(fh, linktype=1)
        for k, f in enumerate(messy):
            w.write(1_700_000_000.0 + k * 1e-4, f.iface, f.linktype, f.data)
    tracker = assert_same(path)
    lost = sum(t.traffic[d].lost for t in tracker.tunnels.values() for d in (0, 1))
    dups = sum(t.traffic[d].duplicates for t in tracker.tunnels.values() for d in (0, 1))
    reordered = sum(t.traffic[d].reordered for t in tracker.tunnels.values() for d in (0, 1))
    assert lost > 100 and dups > 50 and reordered > 50


def test_frames_cut_short_by_the_snapshot_length(tmp_path: Path) -> None:
    """A frame cut inside its GRE header is malformed on both paths, never read on from the next record's bytes."""
    clean = tmp_path / "clean.pcap"
    generate(clean, packets=6_000, tunnels=4, seed=5)
    path = tmp_path / "cut.pcap"
    cut_in_gre = 0
    with open(path, "wb") as fh:
        w = PcapWriter(fh, linktype=1)
        for k, f in enumerate(sources.open_file(str(clean))):
            data = f.data
            if k > 1500 and k % 7 == 0:  # every seventh frame loses its last octets, from octet 44 on
                data = data[: 44 + k % 5]
                gre = data[23] == 47
                flags = f.data[34]
                header = 42 + (4 if flags & 0x10 else 0) + (4 if f.data[35] & 0x80 else 0)
                cut_in_gre += gre and len(data) < header
            w.write(f.ts, f.iface, f.linktype, data)
    tracker = assert_same(path)  # and neither path crashes on them
    assert sum(t.traffic[d].packets for t in tracker.tunnels.values() for d in (0, 1)) > 4_000
    assert cut_in_gre > 500
    assert tracker.stats.malformed_by_code["truncated_gre"] == cut_in_gre


def summary(tracker: Tracker) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    tunnels = [tunnel_dict(t, tracker.now) for t in sorted(tracker.tunnels.values(), key=lambda t: t.id)]
    st = tracker.stats
    counters = {k: getattr(st, k) for k in ("frames", "bytes", "ip", "gre", "gre_data", "gre_unknown", "other",
                                            "malformed", "tunnels_created", "evicted", "tcp_pptp",
                                            "control_messages")}
    return tunnels, counters


def both_paths(path: Path, size: int | None) -> tuple[Tracker, Tracker]:
    """The capture fed frame by frame, and ``size`` frames a batch (None: all in one)."""
    frames = list(sources.open_file(str(path)))
    one_by_one = Tracker()
    for i, f in enumerate(frames):
        one_by_one.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    one_by_one.finish()
    batched = Tracker()
    step = size or max(1, len(frames))
    for lo in range(0, len(frames), step):
        batched.feed_batch(batch_from_frames(frames[lo:lo + step]), lo + 1)
    batched.finish()
    return one_by_one, batched


@pytest.mark.parametrize("size", [1, 16, 4096])
@pytest.mark.parametrize("kind", ["sessions", "storm"])
def test_generated_captures_in_batches_of_any_size_equal_the_per_frame_path(tmp_path: Path, kind: str,
                                                                          size: int) -> None:
    """The benchmark's captures (long sessions; a reconnect storm of short ones, a call ID used again by the
    next client), fed ``size`` frames a batch, give what feeding every frame gives."""
    path = tmp_path / f"{kind}.pcap"
    if kind == "sessions":
        generate(path, packets=4_000, tunnels=6, seed=11)
    else:
        generate_storm(path, sessions=120, concurrent=12, data=6, seed=11)
    one_by_one, batched = both_paths(path, size)
    tunnels, counters = summary(one_by_one)
    assert len(tunnels) >= 6 and counters["gre_data"] > 500
    assert summary(batched) == (tunnels, counters)


def test_a_frame_whose_capture_time_runs_ahead_is_a_tunnels_newest_in_a_batch_too() -> None:
    """Capture times may run backwards (interfaces merged, a clock set back): a tunnel's ``last_seen`` is the
    newest time of its frames, as one frame at a time keeps it, not its last frame's (found by fuzzing)."""
    w = Wire()
    w.setup().lcp_up().mschapv2().ccp_up().ipcp_up().data("client", 3)
    split = len(w.frames)
    later = w.now
    w.at(0.5).data("client", 1)
    w.now = later
    w.data("client", 3)
    frames = [Frame(*f) for f in w.frames]
    one_by_one = Tracker()
    for i, f in enumerate(frames):
        one_by_one.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    batched = Tracker()
    for i, f in enumerate(frames[:split]):
        batched.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    batched.feed_batch(batch_from_frames(frames[split:]), split + 1)
    (t,) = batched.tunnels.values()
    assert t.phase is Phase.DATA and t.last_seen == later + 0.5
    assert summary(batched) == summary(one_by_one)


def test_one_batch_fed_one_by_one_a_chunk_of_columns_at_a_time(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The frames the batch path feeds one by one have their columns made plain lists a chunk at a time (a
    file's batch holds up to 128k frames); with chunks of 5 frames, a storm in one batch still gives what
    feeding every frame gives."""
    monkeypatch.setattr(fastpath, "SLOW_CHUNK", 5)
    path = tmp_path / "storm.pcap"
    generate_storm(path, sessions=60, concurrent=20, data=6, seed=7)
    one_by_one, batched = both_paths(path, size=None)
    tunnels, counters = summary(one_by_one)
    assert len(tunnels) == 60 and all(t["phase"] == "closed" for t in tunnels)
    assert summary(batched) == (tunnels, counters)


def test_one_batch_of_a_storm_with_thousands_of_call_messages(tmp_path: Path) -> None:
    """A live ring cuts whole blocks: in a reconnect storm one batch holds thousands of frames that may give a
    GRE key to another tunnel (each call's control messages). Each ends a vectorised run; the batch path once
    recursed at each, and this batch raised RecursionError. Now it loops, in linear work, and
    the result is still that of feeding every frame."""
    path = tmp_path / "storm.pcap"
    generate_storm(path, sessions=400, concurrent=400, data=20, seed=5)
    one_by_one, batched = both_paths(path, size=None)  # the whole storm in one batch
    tunnels, counters = summary(one_by_one)
    assert len(tunnels) == 400 and all(t["phase"] == "closed" for t in tunnels)
    assert summary(batched) == (tunnels, counters)
