"""The shapes real input takes: pipes that deliver one record at a time, captures cut anywhere, any batch size.

Every capture in tests/data is read in each shape, and each result must equal
the whole-file, frame-by-frame run on the same frames (or, for a cut file, on
the frames before the cut): never a crash, never a lost analysis.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from capfiles import DATA, data_captures, pcap_offsets, pcapng_blocks

from pptptop import sources
from pptptop.export.jsonout import tunnel_dict
from pptptop.export.report import report
from pptptop.pipeline import Pipeline
from pptptop.sources.base import CaptureFileError
from pptptop.sources.batch import batch_from_frames, merge_by_time
from pptptop.sources.pcapfile import PcapFileSource
from pptptop.track.tracker import Tracker

CAPTURES = data_captures()
IDS = [str(p.relative_to(DATA)) for p in CAPTURES]
EVERY_FRAME_UP_TO = 150  # captures this long are cut after every frame; longer ones at sampled points
SAMPLED_CUTS = 40


def records(raw: bytes) -> tuple[bytes, list[bytes]]:
    """A capture file's header and its records (pcap records, or every pcapng block after the first SHB)."""
    if raw[:4] == b"\x0a\x0d\x0d\x0a":
        blocks = pcapng_blocks(raw)
        first_end = blocks[0][0] + blocks[0][2]
        return raw[:first_end], [raw[off:off + length] for off, _t, length in blocks[1:]]
    offs = pcap_offsets(raw)
    ends = [*offs[1:], len(raw)]
    return raw[:24], [raw[a:b] for a, b in zip(offs, ends, strict=True)]


def frame_records(raw: bytes) -> list[int]:
    """The end offset in ``raw`` of each record that carries a frame (for cutting a file after frame N)."""
    if raw[:4] == b"\x0a\x0d\x0d\x0a":
        return [off + length for off, btype, length in pcapng_blocks(raw) if btype in (2, 3, 6)]
    offs = pcap_offsets(raw)
    return [*offs[1:], len(raw)]


class OneRecordAtATime(io.RawIOBase):
    """A pipe whose writer sends one record per write (``tcpdump -U -w -``): each read returns at most one."""

    def __init__(self, raw: bytes) -> None:
        header, recs = records(raw)
        self._pieces = [header, *recs]
        self._i = 0
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self._left:
            if self._i >= len(self._pieces):
                return 0
            self._left = self._pieces[self._i]
            self._i += 1
        n = min(len(b), len(self._left))
        b[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def summary(tracker: Tracker) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What the tracker knows, comparable across runs: every tunnel's JSON and the capture counters."""
    tunnels = [tunnel_dict(t, tracker.now) for t in sorted(tracker.tunnels.values(), key=lambda t: t.id)]
    st = tracker.stats
    counters = {k: getattr(st, k) for k in ("frames", "bytes", "ip", "gre", "gre_data", "gre_unknown", "other",
                                            "malformed", "tunnels_created", "evicted")}
    counters["malformed_by_code"] = dict(st.malformed_by_code)
    return tunnels, counters


def run_source(src: sources.Source, *, batched: bool) -> tuple[Pipeline, Tracker]:
    tracker = Tracker()
    hooks = [] if batched else [lambda number, frame: None]  # a frame hook keeps the per-frame path
    pipe = Pipeline(src, tracker, frame_hooks=hooks)
    assert pipe.batched is batched
    pipe.run()
    assert pipe.crash is None, repr(pipe.crash)
    return pipe, tracker


def run_bytes(raw: bytes, *, batched: bool, name: str = "cut") -> tuple[Pipeline, Tracker]:
    return run_source(PcapFileSource(name, io.BytesIO(raw)), batched=batched)


def per_frame(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return summary(run_source(sources.open_file(str(path)), batched=False)[1])


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_a_pipe_delivering_one_record_at_a_time(path: Path) -> None:
    """The README's ``tcpdump -U -w - | pptptop -r -``: each read of the pipe returns one record."""
    raw = path.read_bytes()
    pipe, tracker = run_source(PcapFileSource("-", OneRecordAtATime(raw)), batched=True)
    assert pipe.error is None
    assert summary(tracker) == per_frame(path)


@pytest.mark.parametrize("size", [1, 16, 4096])
@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_batches_of_any_size_equal_the_per_frame_path(path: Path, size: int) -> None:
    frames = list(sources.open_file(str(path)))
    tracker = Tracker()
    for lo in range(0, len(frames), size):
        tracker.feed_batch(batch_from_frames(frames[lo:lo + size]), lo + 1)
    tracker.finish()
    assert summary(tracker) == per_frame(path)


def cut_points(n: int, seed: str) -> list[int]:
    if n <= EVERY_FRAME_UP_TO:
        return list(range(1, n + 1))
    rng = random.Random(seed)
    return sorted({1, 2, 3, n, *rng.sample(range(4, n), SAMPLED_CUTS)})


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_cut_after_any_frame(path: Path) -> None:
    """``editcap -r F OUT 1-N``: the batch path equals the per-frame path on the first N frames, and the
    outputs are made; no cut crashes."""
    raw = path.read_bytes()
    ends = frame_records(raw)
    for n in cut_points(len(ends), path.name):
        cut = raw[:ends[n - 1]]
        p_fast, fast = run_bytes(cut, batched=True)
        p_slow, slow = run_bytes(cut, batched=False)
        assert p_fast.error is None and p_slow.error is None, (n, p_fast.error, p_slow.error)
        assert fast.stats.frames == n
        assert summary(fast) == summary(slow), f"cut after frame {n}"
        report(fast, {"name": "cut", "live": False})


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_cut_inside_a_record(path: Path) -> None:
    """A file cut mid-record (a copy still being written, a full disk): every whole frame before the cut is
    analysed, then the error names the offset of the cut record."""
    raw = path.read_bytes()
    ends = frame_records(raw)
    rng = random.Random(path.name)
    starts = [0, *ends[:-1]]
    picks = range(len(ends)) if len(ends) <= 20 else rng.sample(range(len(ends)), 20)
    for i in picks:
        record_start, record_end = starts[i], ends[i]
        # the cut frame's own record starts where the previous frame record ended, or later (pcapng: IDBs)
        at = rng.randrange(record_start + 1, record_end)
        for batched in (True, False):
            pipe, tracker = run_bytes(raw[:at], batched=batched)
            assert isinstance(pipe.error, CaptureFileError), (i, at, pipe.error)
            assert tracker.stats.frames == i
            assert pipe.error.offset is not None and record_start <= pipe.error.offset < at


def trickle(raw: bytes, fd: int) -> None:
    """Write ``raw`` to ``fd`` one record per write, as ``tcpdump -U`` does."""
    header, recs = records(raw)
    with os.fdopen(fd, "wb", buffering=0) as out:
        for piece in (header, *recs):
            out.write(piece)


@pytest.mark.parametrize("name", ["s1-mschapv2-mppe128-both.pcapng", "s6-pap-no-encryption-inside.pcap",
                                  "pcapplusplus__GrePackets.pcap"])
def test_the_readme_pipe_example(data_dir: Path, name: str) -> None:
    """``… | pptptop -r - --json`` through a real pipe written one record at a time equals ``-r FILE``."""
    path = data_dir / name
    whole = subprocess.run([sys.executable, "-m", "pptptop", "-r", str(path), "--json"],
                           capture_output=True, check=True, timeout=60).stdout
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "pptptop", "-r", "-", "--json"], stdin=r,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(r)
    trickle(path.read_bytes(), w)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    a, b = json.loads(whole), json.loads(out)
    a["source"].pop("name")
    b["source"].pop("name")
    assert a == b


def test_a_short_last_frame_in_a_batch_of_its_own(data_dir: Path) -> None:
    """A batch buffer shorter than the 64 octets the batch decoder reads per frame (a 60-octet frame alone)
    crashed the data path once a tunnel existed; now it is decoded like any other frame."""
    frames = list(sources.open_file(str(data_dir / "s1-mschapv2-mppe128-inside.pcap")))
    short = [i for i, f in enumerate(frames) if len(f.data) < 64 and i > 20]
    assert short, "the capture has short frames after its handshake"
    i = short[0]
    tracker = Tracker()
    tracker.feed_batch(batch_from_frames(frames[:i]), 1)
    tracker.feed_batch(batch_from_frames([frames[i]]), i + 1)
    slow = Tracker()
    for k, f in enumerate(frames[:i + 1], 1):
        slow.feed(k, f.ts, f.iface, f.linktype, f.data)
    assert summary(tracker) == summary(slow)


def test_a_truncated_pcap_header_of_a_pipe() -> None:
    """Fewer bytes than a pcap file header, through a pipe: a clear error at offset 0, no crash."""
    pipe, tracker = run_source(PcapFileSource("-", io.BytesIO(struct.pack("<I", 0xA1B2C3D4))), batched=True)
    assert isinstance(pipe.error, CaptureFileError) and pipe.error.offset == 0
    assert tracker.stats.frames == 0


@pytest.mark.parametrize("size", [1, 7, 64])
def test_interfaces_read_in_turn_are_merged_in_capture_order(size: int) -> None:
    """A live turn drains each interface's ring in turn; merged, the frames of a two-legged capture come
    in the order they were captured, with their own interfaces, as the file holds them."""
    frames = list(sources.open_file(str(DATA / "s5-two-clients-same-nat-both.pcapng")))
    assert len({f.iface for f in frames}) == 2
    for lo in range(0, len(frames), size * 2):
        turn = frames[lo:lo + size * 2]
        by_iface = [batch_from_frames([f for f in turn if f.iface == name]) for name in sorted({f.iface for f in turn})]
        merged = merge_by_time([b for b in by_iface if len(b)])
        got = [merged.frame(i) for i in range(len(merged))]
        assert [(f.ts, f.iface, f.linktype, f.data) for f in got] == \
            [(f.ts, f.iface, f.linktype, f.data) for f in sorted(turn, key=lambda f: f.ts)]
