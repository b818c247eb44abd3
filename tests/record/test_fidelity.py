"""A recording holds exactly the frames read: read ahead, on a loaded machine, rotated, exported, killed.

A capture of 32 MiB or more is read ahead by a forked child into shared
slots that it refills as soon as the pipeline asks for the next batch; the
recorder writes a batch later, from its flusher thread. These tests read a
capture that way (the thresholds shrunk as in ``tests/sources/test_readahead.py``:
see ``readahead_run.py``), with the recorder's process niced beside busy
loops, and compare every frame written with the frame read, byte for byte
and to the microsecond, with our reader and with tshark.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rechelp import DATA, HAVE_TSHARK, NO_TSHARK, env, wait_until

from pptptop import bench, sources
from pptptop.record import recorder as recorder_mod
from pptptop.record.recorder import Recorder
from pptptop.record.writers import PcapNgWriter
from pptptop.sources.base import CaptureFileError
from pptptop.sources.batch import Batch

needs_tshark = pytest.mark.skipif(not HAVE_TSHARK, reason=NO_TSHARK)

RUNNER = Path(__file__).with_name("readahead_run.py")
BUSY_LOOPS = 3
Key = tuple[int, str, bytes]  # capture time in microseconds, interface, bytes


def _make_input(path: Path, packets: int) -> Path:
    """The benchmark's PPTP tunnels, rewritten to pcapng on two interfaces (so the interface column counts)."""
    plain = path.with_suffix(".pcap")
    bench.generate(plain, packets, tunnels=6)
    with open(path, "wb") as f:
        w = PcapNgWriter(f)
        for i, fr in enumerate(sources.open_file(plain)):
            w.write(fr.ts, "lan0" if i % 3 else "wan0", fr.linktype, fr.data)
    plain.unlink()
    return path


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1.5 MB: a dozen of the runner's 128 KiB slots, each refilled several times."""
    return _make_input(tmp_path_factory.mktemp("fidelity") / "in.pcapng", 2500)


def frames(*paths: Path, names: bool = True) -> list[Key]:
    """Every frame of ``paths`` in order, as pptptop's reader reads it (a damaged file fails the test)."""
    out: list[Key] = []
    for p in paths:
        for f in sources.open_file(p):
            out.append((round(f.ts * 1_000_000), f.iface if names else "", f.data))
    return out


def tshark_fields(*paths: Path) -> list[str]:
    """``frame.len`` and ``frame.time_epoch`` of every frame, by tshark (which must not complain)."""
    lines: list[str] = []
    for p in paths:
        r = subprocess.run(["tshark", "-n", "-r", str(p), "-T", "fields", "-e", "frame.len", "-e",
                            "frame.time_epoch"], capture_output=True, text=True)
        err = [x for x in r.stderr.splitlines() if "could be dangerous" not in x]
        assert r.returncode == 0 and not err, f"{p.name}: {err}"
        lines += r.stdout.splitlines()
    return lines


def run_loaded(*runs: list[str], timeout: float = 240) -> list[tuple[int, dict[str, object]]]:
    """Each argument list one run of the pptptop command, read ahead, niced beside busy loops."""
    argv: list[str] = []
    for args in runs:
        argv += (["---"] if argv else []) + args
    p = subprocess.run([sys.executable, str(RUNNER), "--busy", str(BUSY_LOOPS), *argv], capture_output=True,
                       text=True, env=env(), timeout=timeout)
    assert p.returncode == 0, p.stderr[-2000:]
    return [(code, json.loads(out)) for code, out in json.loads(p.stdout.splitlines()[-1])]


def is_subsequence(part: list[Key], whole: list[Key]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


@needs_tshark
def test_every_output_holds_exactly_the_frames_read(capture: Path, tmp_path: Path) -> None:
    """``-w`` pcapng and pcap, ``-C``/``-W`` rotation and ``--export-tunnel`` of a capture read ahead on a
    busy machine: every frame is the one read (the recorder used to keep the lengths, times and interface
    indexes of a batch as views on a slot that the read-ahead child refilled before the flusher wrote it)."""
    ng, classic, exported = tmp_path / "out.pcapng", tmp_path / "out.pcap", tmp_path / "tunnel.pcapng"
    rotated = tmp_path / "rot.pcapng"
    src = str(capture)
    results = run_loaded(["-r", src, "--json", "-w", str(ng)],
                         ["-r", src, "--json", "-w", str(classic)],
                         ["-r", src, "--json", "-w", str(rotated), "-C", "0.25", "-W", "3"],
                         ["-r", src, "--json", "-w", str(exported), "--export-tunnel", "1"])
    assert [code for code, _ in results] == [0, 0, 0, 0]
    read = frames(capture)
    read_fields = tshark_fields(capture)
    n = len(read)

    for out, names in ((ng, True), (classic, False)):
        assert frames(out, names=names) == [(t, i if names else "", d) for t, i, d in read], out.name
        assert tshark_fields(out) == read_fields, out.name
    for _, doc in results[:3]:
        rec = doc["recording"]
        assert isinstance(rec, dict) and rec["unrecorded"] == 0 and rec["errors"] == 0 and rec["packets"] == n

    kept = sorted(tmp_path.glob("rot-*.pcapng"))
    assert len(kept) == 3, kept
    tail = frames(*kept)
    assert 0 < len(tail) < n and tail == read[n - len(tail):]
    assert tshark_fields(*kept) == read_fields[n - len(tail):]

    part = frames(exported)
    assert len(part) > 50 and is_subsequence(part, read)


@needs_tshark
def test_kill_9_mid_run_leaves_the_frames_read_so_far(tmp_path: Path) -> None:
    """``-r BIG -w OUT`` killed with SIGKILL once a quarter of its frames reached the file: the file holds
    frames, every one the frame read at its place, and readers read it to its end."""
    big = _make_input(tmp_path / "big.pcapng", 30_000)  # ~20 MB, 150 slots: several seconds niced
    out = tmp_path / "out.pcapng"
    proc = subprocess.Popen([sys.executable, str(RUNNER), "--busy", str(BUSY_LOOPS), "-r", str(big), "--json",
                             "-w", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env(),
                            start_new_session=True)
    try:
        # killed once a quarter of the frames are on disk, not a fixed time after the first: on a fast host
        # the whole run took less than 2 s
        quarter = big.stat().st_size // 4
        assert wait_until(lambda: out.exists() and out.stat().st_size > quarter, timeout=120, step=0.01), \
            "not a quarter written"
        running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the read-ahead child, if it is still there
        if proc.stderr is not None:
            proc.stderr.close()
    assert running, "the run ended before the kill: make the capture bigger"
    got: list[Key] = []
    try:
        for f in sources.open_file(out):
            got.append((round(f.ts * 1_000_000), f.iface, f.data))
    except CaptureFileError as e:  # only a record cut by the kill, at the very end
        assert e.offset > out.stat().st_size - 65536, e
    read = frames(big)
    assert 0 < len(got) < len(read)
    assert got == read[:len(got)]
    r = subprocess.run(["tshark", "-n", "-r", str(out), "-T", "fields", "-e", "frame.len"], capture_output=True,
                       text=True)
    assert len(r.stdout.splitlines()) == len(got)
    assert r.returncode == 0 or "cut short" in r.stderr, r.stderr


# ---------------------------------------------------------------------- the recording keeps up
S1_BOTH = DATA / "s1-mschapv2-mppe128-both.pcapng"
INTERVAL = 0.25  # flush_interval of these tests
READ_EVERY = 0.05  # the simulated reader's pace: a batch every 50 ms


def _one_batch(path: Path) -> Batch:
    (b,) = list(sources.open_file(path).batches())
    return Batch(bytes(b.buf), b.offsets.copy(), b.lengths.copy(), b.ts.copy(), b.ifaces, b.ifidx)


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each write(2) takes 30 ms and writes at most 8 KiB: the flusher makes progress, slower than the reader."""
    real_write = os.write

    def slow(fd: int, data: bytes) -> int:
        time.sleep(0.03)
        return real_write(fd, data)

    monkeypatch.setattr(recorder_mod, "WRITE_BYTES", 8192)
    monkeypatch.setattr("pptptop.record.recorder.os.write", slow)
    yield


@pytest.mark.parametrize("wait_when_full", [True, False], ids=["file", "live"])
def test_reading_never_runs_a_flush_interval_ahead_of_the_file(tmp_path: Path, slow_disk: None,
                                                                wait_when_full: bool) -> None:
    """Whenever the reader hands over a batch, every frame it handed over ``flush_interval`` before is in the
    file (a kill -9 loses at most the last second): the reader waits for a disk that is slower than it but
    keeps writing, as it waits for a full queue (it used to run ahead until 64 MiB were queued)."""
    batch = _one_batch(S1_BOTH)
    rec = Recorder(tmp_path / "o.pcapng", flush_interval=INTERVAL, wait_when_full=wait_when_full)
    rec.open()
    rec.start()
    queued: list[tuple[float, int]] = []  # (when the hook returned, frames handed over by then)
    lagging: list[tuple[float, int, int]] = []
    try:
        total = 0
        for _ in range(16):
            time.sleep(READ_EVERY)
            rec.batch(total + 1, batch)
            now = time.monotonic()
            written = rec.state().packets
            total += len(batch)
            queued.append((now, total))
            due = max((n for t, n in queued if t <= now - INTERVAL - 0.05), default=0)
            if written < due:
                lagging.append((round(now - queued[0][0], 2), written, due))
    finally:
        rec.close()
    assert not lagging, f"(seconds, frames written, frames handed over {INTERVAL} s before): {lagging}"
    st = rec.state()
    assert st.packets == 16 * len(batch) and st.unrecorded == 0
    assert frames(tmp_path / "o.pcapng") == frames(S1_BOTH) * 16


def test_a_quiet_capture_is_written_within_the_flush_interval(tmp_path: Path) -> None:
    """One batch and then nothing: the flusher's timer writes it within ``flush_interval``."""
    batch = _one_batch(S1_BOTH)
    rec = Recorder(tmp_path / "o.pcapng", flush_interval=INTERVAL)
    rec.open()
    rec.start()
    try:
        rec.batch(1, batch)
        t0 = time.monotonic()
        assert wait_until(lambda: rec.state().packets == len(batch), timeout=5, step=0.01)
        assert time.monotonic() - t0 <= INTERVAL + 0.2
    finally:
        rec.close()
