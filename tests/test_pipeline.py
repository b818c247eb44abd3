"""The pipeline: a quiet live link still ticks the tracker and never holds the lock while waiting."""

from __future__ import annotations

import itertools
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pptptop import sources
from pptptop.export.jsonout import tunnel_dict
from pptptop.pipeline import Pipeline
from pptptop.sources.base import Frame, InterfaceStats, Source, SourceStats
from pptptop.sources.batch import Batch
from pptptop.track.model import Phase
from pptptop.track.tracker import Limits, Tracker

ETH = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"


def syn(sport: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, 1723, 1000, 0, 0x50, 0x02, 65535, 0, 0)
    return ETH + struct.pack("!BBHHHBBHII", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, 0xC0000201, 0xC6336402) + tcp


class QuietLink(Source):
    """A live source that delivers a SYN and its retransmission, then nothing until closed."""

    live = True

    def __init__(self) -> None:
        self._closed = threading.Event()

    @property
    def name(self) -> str:
        return "quiet0"

    @property
    def interfaces(self) -> list[str]:
        return ["quiet0"]

    def __iter__(self) -> Iterator[Frame]:
        now = time.time()
        yield Frame(now - 1.0, "quiet0", 1, syn(40000))
        yield Frame(now, "quiet0", 1, syn(40000))
        self._closed.wait(30)

    def stats(self) -> SourceStats:
        return SourceStats({"quiet0": InterfaceStats("quiet0")})

    def close(self) -> None:
        self._closed.set()


def test_timeouts_fire_on_a_silent_link_and_the_lock_is_free() -> None:
    tracker = Tracker(Limits(syn_timeout=2.0))
    pipe = Pipeline(QuietLink(), tracker)
    worker = threading.Thread(target=pipe.run)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # the UI takes snapshots under the lock while the source waits for packets
            assert pipe.lock.acquire(timeout=1.0)
            try:
                ended = [t for t in tracker.tunnels.values() if t.ended]
            finally:
                pipe.lock.release()
            if ended:
                break
            time.sleep(0.2)
        (t,) = tracker.tunnels.values()
        assert t.phase is Phase.FAILED and t.failed_in is Phase.TCP
        assert t.close.how == "no-answer" and t.tcp.syn_count == 2
    finally:
        pipe.stop()
        worker.join(10)
    assert pipe.done.is_set() and pipe.crash is None


@pytest.mark.parametrize("count", [1, 57, 111, 221, 5000])
def test_count_stops_at_the_nth_frame_on_the_batch_path(data_dir: Path, count: int) -> None:
    """-c N cuts the batch that holds frame N: the same tunnels as feeding N frames one by one."""
    path = data_dir / "s1-mschapv2-mppe128-both.pcapng"
    total = sum(1 for _ in sources.open_file(str(path)))
    results = []
    for hooks in ([], [lambda number, frame: None]):  # a frame hook keeps the per-frame path
        tracker = Tracker()
        pipe = Pipeline(sources.open_file(str(path)), tracker, count=count, frame_hooks=hooks)
        assert pipe.batched is not hooks
        pipe.run()
        assert pipe.frames == tracker.stats.frames == min(count, total)
        results.append([tunnel_dict(t, tracker.now) for t in sorted(tracker.tunnels.values(), key=lambda t: t.id)])
    assert results[0] == results[1]


def test_a_bug_at_the_end_of_the_input_still_ends_the_run(data_dir: Path) -> None:
    """A bug in the final timeouts (Tracker.finish) is reported as a crash; the run ends all the same (the
    CLI and the UI wait for ``done``)."""
    class Buggy(Tracker):
        def finish(self) -> None:
            raise RuntimeError("a bug in the final tick")

    pipe = Pipeline(sources.open_file(str(data_dir / "s1-mschapv2-mppe128-inside.pcap")), Buggy())
    pipe.run()
    assert pipe.done.is_set() and isinstance(pipe.crash, RuntimeError) and pipe.frames == 111


class Listed(Source):
    """A source with no batch reader of its own: a list of frames, live or not."""

    def __init__(self, frames: list[Frame], live: bool) -> None:
        self.frames = frames
        self.live = live

    @property
    def name(self) -> str:
        return "listed"

    @property
    def interfaces(self) -> list[str]:
        return []

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames)

    def stats(self) -> SourceStats:
        return SourceStats()


def test_every_source_has_batches_and_only_a_live_one_without_its_own_stays_per_frame(data_dir: Path) -> None:
    """``batches()`` is in the Source interface: a source without a batch reader gets its frames grouped, and
    the pipeline takes the batch path with it, with the per-frame path's result; a live one that cannot cut
    its own batches stays per frame (grouping would wait for thousands of frames)."""
    frames = list(sources.open_file(str(data_dir / "s6-pap-no-encryption-both.pcapng")))
    batches = list(Listed(frames, live=False).batches())
    assert [b.frame(i) for b in batches for i in range(len(b))] == frames
    assert sources.open_file(str(data_dir / "s6-pap-no-encryption-both.pcapng")).cuts_batches
    assert not Listed(frames, live=False).cuts_batches

    def run(src: Source) -> tuple[bool, list[dict[str, object]]]:
        tracker = Tracker()
        pipe = Pipeline(src, tracker)
        pipe.run()
        assert pipe.crash is None and pipe.error is None
        return pipe.batched, [tunnel_dict(t, tracker.now) for t in tracker.tunnels.values()]

    batched, grouped = run(Listed(frames, live=False))
    per_frame, one_by_one = run(Listed(frames, live=True))
    assert (batched, per_frame) == (True, False)
    assert grouped == one_by_one and len(grouped) >= 1


def test_a_large_batch_is_fed_in_parts_with_the_result_of_one_frame_at_a_time(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A file's batch holds up to 128k frames; the tracker is fed at most FEED_FRAMES of them at a time (memory,
    and the lock let go between parts), numbered on, and the batch hooks still see each batch once."""
    from pptptop import pipeline
    from pptptop.bench import generate_storm

    monkeypatch.setattr(pipeline, "FEED_FRAMES", 1000)
    path = tmp_path / "storm.pcap"
    generate_storm(path, sessions=80, concurrent=40, data=6, seed=3)
    one = Tracker()
    for i, f in enumerate(sources.open_file(str(path))):
        one.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    one.finish()
    total = one.stats.frames
    tracker = Tracker()
    parts: list[tuple[int, int]] = []
    seen: list[tuple[int, int]] = []
    feed_batch = tracker.feed_batch

    def record(batch: Batch, first: int) -> None:
        parts.append((first, len(batch)))
        feed_batch(batch, first)

    tracker.feed_batch = record  # type: ignore[method-assign,assignment]
    pipe = Pipeline(sources.open_file(str(path)), tracker, batch_hooks=[lambda first, b: seen.append((first, len(b)))])
    pipe.run()
    assert pipe.frames == tracker.stats.frames == total > 3000
    assert max(n for _, n in parts) == 1000 and len(parts) > len(seen)
    assert [first for first, _ in parts] == list(itertools.accumulate([1] + [n for _, n in parts[:-1]]))
    assert sum(n for _, n in seen) == total and seen[0][0] == 1
    assert ([tunnel_dict(t, tracker.now) for t in sorted(tracker.tunnels.values(), key=lambda t: t.id)]
            == [tunnel_dict(t, one.now) for t in sorted(one.tunnels.values(), key=lambda t: t.id)])


def test_a_stop_ends_the_run_after_the_part_being_fed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """q or Ctrl-C while a large batch is fed: the run ends after the part being fed, not the whole batch, and
    the batch hooks (the recorder) get exactly the frames the tracker got."""
    from pptptop import pipeline
    from pptptop.bench import generate_storm

    monkeypatch.setattr(pipeline, "FEED_FRAMES", 1000)
    path = tmp_path / "storm.pcap"
    generate_storm(path, sessions=80, concurrent=40, data=6, seed=3)
    tracker = Tracker()
    seen: list[tuple[int, int]] = []
    feed_batch = tracker.feed_batch
    pipe = Pipeline(sources.open_file(str(path)), tracker, batch_hooks=[lambda first, b: seen.append((first, len(b)))])

    def stop_in_the_second_part(batch: Batch, first: int) -> None:
        feed_batch(batch, first)
        if first > 1:
            pipe.stop()

    tracker.feed_batch = stop_in_the_second_part  # type: ignore[method-assign,assignment]
    pipe.run()
    assert pipe.frames == tracker.stats.frames == 2000
    assert seen == [(1, 2000)]
