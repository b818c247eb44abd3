"""Reading ahead in a second process: the same frames, counters and errors as reading in process.

The captures here are small, so the tests lower the size from which a file is
read ahead and shrink the slots and the reader's buffer until every path
runs: several reader batches packed into one slot, slots filled and handed
back many times, a slot closed early by its frame limit, batches too large
for a slot sent whole, and pcapng interfaces renumbered per slot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from capfiles import DATA
from test_pcapfile import assert_cut_files_read_as_per_frame, assert_same_frames, read_all

from pptptop import cli
from pptptop.sources import Frame, open_file, pcapfile, readahead
from pptptop.sources.batch import Batch

S1_INSIDE = DATA / "s1-mschapv2-mppe128-inside.pcap"
S1_BOTH = DATA / "s1-mschapv2-mppe128-both.pcapng"
S5_BOTH = DATA / "s5-two-clients-same-nat-both.pcapng"
REAL_PCAPNG = DATA / "pptpsniffer__connect.pcapng"
SAMPLE = DATA / "chapcrack__sample.dump"

#: (reader buffer, slot bytes, slot frames): many batches per slot; slots closed by their frame limit;
#: reader batches larger than a slot, sent whole
SHAPES = [(4096, 16384, 1000), (4096, 16384, 40), (8192, 3000, 1000)]


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Read every file ahead; the pids of the read-ahead processes started."""
    monkeypatch.setattr(pcapfile, "READ_AHEAD_MIN", 0)
    pids: list[int] = []
    real = os.fork

    def fork() -> int:
        pid = real()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return pids


def _shape(monkeypatch: pytest.MonkeyPatch, chunk: int, slot: int, frames: int) -> None:
    monkeypatch.setattr(pcapfile, "READ_AHEAD_CHUNK", chunk)
    monkeypatch.setattr(pcapfile, "PIECE", 1000)
    monkeypatch.setattr(readahead, "SLOT_DATA", slot)
    monkeypatch.setattr(readahead, "FRAMES", frames)


def _frames(batches: Iterator[Batch], sizes: list[tuple[int, bool]] | None = None) -> list[Frame]:
    """Every frame; ``sizes`` gets each batch's length and whether it came in a slot (not whole)."""
    out: list[Frame] = []
    for b in batches:  # a batch's bytes are good until the next one is asked for
        out += [b.frame(i) for i in range(len(b))]
        if sizes is not None:
            sizes.append((len(b), isinstance(b.buf, memoryview)))
    return out


def _gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # reaped already
    return False


@pytest.mark.parametrize("shape", SHAPES, ids=["packed", "frame-limit", "too-large"])
@pytest.mark.parametrize("path", [S1_INSIDE, SAMPLE, S1_BOTH, S5_BOTH, REAL_PCAPNG], ids=lambda p: p.name)
def test_the_same_frames_and_counters_as_in_process(path: Path, shape: tuple[int, int, int], forks: list[int],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _shape(monkeypatch, *shape)
    reference = read_all(path)
    in_process = open_file(path)
    monkeypatch.setattr(pcapfile, "READ_AHEAD_MIN", 1 << 62)
    _frames(in_process.batches())
    monkeypatch.setattr(pcapfile, "READ_AHEAD_MIN", 0)
    assert not forks
    src = open_file(path)
    sizes: list[tuple[int, bool]] = []
    got = _frames(src.batches(), sizes)
    assert len(forks) == 1 and _gone(forks[0])
    assert_same_frames(got, reference)
    assert len(sizes) > 1
    slot_frames = [n for n, in_slot in sizes if in_slot]
    assert max(slot_frames, default=0) <= shape[2]
    if shape[1] < shape[0]:
        assert any(not in_slot for _, in_slot in sizes)  # reads larger than a slot came whole
    ours, theirs = src.stats(), in_process.stats()
    assert ours.bytes_read == theirs.bytes_read == path.stat().st_size
    assert {k: v.received for k, v in ours.interfaces.items()} == \
        {k: v.received for k, v in theirs.interfaces.items()}
    assert src.interfaces == in_process.interfaces


def test_slots_hold_whole_batches_of_several_reads(forks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """With the real sizes scaled down, the parent gets slot-sized batches, not the reader's small ones."""
    _shape(monkeypatch, 2048, 8192, 4096)
    batches = 0
    for b in open_file(S1_INSIDE).batches():
        batches += 1
        assert isinstance(b.buf, memoryview) and len(b.buf) <= 8192
        ends = b.offsets + b.lengths
        assert b.offsets[0] == 0 and bool(np.all(b.offsets[1:] >= ends[:-1]))
    # a slot is handed over when the next read (at most 2 KiB of records) no longer fits: more than 6 KiB
    size = S1_INSIDE.stat().st_size
    assert 1 < batches <= -(-size // (8192 - 2048)) < size // 2048


@pytest.mark.parametrize("path", [S1_INSIDE, SAMPLE, S1_BOTH, REAL_PCAPNG], ids=lambda p: p.name)
def test_a_cut_file_gives_the_same_frames_then_the_same_error(path: Path, tmp_path: Path, forks: list[int],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _shape(monkeypatch, 4096, 16384, 1000)
    assert_cut_files_read_as_per_frame(path, tmp_path, open_file)
    assert forks and all(_gone(pid) for pid in forks)


def test_stopping_early_ends_the_reader(forks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """``-c N`` or Ctrl-C: the pipeline drops the generator after a batch; the child is ended and reaped."""
    _shape(monkeypatch, 4096, 8192, 1000)
    it = open_file(SAMPLE).batches()
    assert isinstance(it, Generator)
    first = next(it)
    assert len(first) > 0
    assert len(forks) == 1 and not _gone(forks[0])  # it waits for the slot the first batch holds
    it.close()
    assert _gone(forks[0])


def test_a_reader_that_fails_is_a_crash_not_an_error(forks: list[int]) -> None:
    """A bug in the child is reported with its traceback, after the batches before it."""
    def produce() -> Iterator[Batch]:
        yield next(iter(open_file(S1_INSIDE).batches()))
        raise ValueError("a bug in the reader")

    got = []
    with pytest.raises(RuntimeError, match="a bug in the reader"):
        for b in readahead.read_ahead(produce, lambda: None, lambda _: None):
            got.append(len(b))
    assert got and len(forks) == 1 and _gone(forks[0])


def test_pipes_and_small_files_are_read_in_process(monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    monkeypatch.setattr(pcapfile, "READ_AHEAD_MIN", S1_INSIDE.stat().st_size + 1)
    assert len(_frames(open_file(S1_INSIDE).batches())) == len(read_all(S1_INSIDE))
    r, w = os.pipe()
    os.write(w, S1_INSIDE.read_bytes()[:60000])
    os.close(w)
    monkeypatch.setattr(pcapfile, "READ_AHEAD_MIN", 0)
    with open(r, "rb", buffering=0) as pipe:
        src = pcapfile.PcapFileSource("pipe", pipe, close_stream=False)
        assert len(_frames(src.batches())) > 0
    assert not forks


def _json(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert cli.main(["-r", str(path), "--json", *extra]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


@pytest.mark.parametrize("path", [S5_BOTH, S1_INSIDE], ids=lambda p: p.name)
def test_the_report_is_the_same_read_ahead(path: Path, capsys: pytest.CaptureFixture[str], forks: list[int],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end, ``-r FILE --json`` (and ``-c N``) do not change when the file is read ahead."""
    _shape(monkeypatch, 4096, 16384, 1000)
    ahead = _json(path, capsys)
    cut = _json(path, capsys, "-c", "50")
    assert len(forks) == 2 and all(_gone(p) for p in forks)
    monkeypatch.setattr(pcapfile, "READ_AHEAD_MIN", 1 << 62)
    assert _json(path, capsys) == ahead
    assert _json(path, capsys, "-c", "50") == cut
    assert ahead["source"]["frames_read"] == len(read_all(path))
    assert cut["source"]["frames_read"] == 50
