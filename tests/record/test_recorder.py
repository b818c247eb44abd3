"""``-w``: packets written equal packets captured, rotation, crash-safety, full and read-only disks."""

from __future__ import annotations

import os
import re
import signal
import stat
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rechelp import (
    DATA,
    HAVE_TSHARK,
    NO_TSHARK,
    capinfos,
    env,
    is_root,
    json_doc,
    pcapng_blocks,
    pptptop_cmd,
    raw_frames,
    run_pptptop,
    tmpfs,
    tshark_read,
    wait_until,
)

from pptptop import sources
from pptptop.pipeline import Pipeline
from pptptop.record.recorder import FILLER_TYPE, PAGE, STALLED_AFTER, Recorder, Rotation, rotated_name
from pptptop.sources.batch import Batch
from pptptop.track.tracker import Tracker

needs_tshark = pytest.mark.skipif(not HAVE_TSHARK, reason=NO_TSHARK)

S1_BOTH = DATA / "s1-mschapv2-mppe128-both.pcapng"
S2_BOTH = DATA / "s2-mschapv2-wrong-password-both.pcapng"
S5_BOTH = DATA / "s5-two-clients-same-nat-both.pcapng"
ROTATED = re.compile(r"^out-(\d{5})-(\d{8}T\d{6}Z)\.pcapng$")


# ---------------------------------------------------------------------- -r input: written == read
@needs_tshark
@pytest.mark.parametrize(("capture", "out_name"), [
    ("s1-mschapv2-mppe128-both.pcapng", "out.pcapng"),
    ("s1-mschapv2-mppe128-both.pcapng", "out.pcap"),
    ("s1-mschapv2-mppe128-inside.pcap", "out.pcapng"),
    ("s5-two-clients-same-nat-outside.pcap", "out.pcap"),
    ("s10-server-ctrl-sigterm-both.pcapng", "out.pcapng"),
    ("ndpi__gre.pcapng", "out.pcapng"),
    ("tcpdump__pptp.pcap", "out.pcap"),
])
def test_written_equals_read(tmp_path: Path, capture: str, out_name: str) -> None:
    src, out = DATA / capture, tmp_path / out_name
    p = run_pptptop("-r", str(src), "--json", "-w", str(out))
    assert p.returncode == 0, p.stderr
    doc = json_doc(p)
    want, got = capinfos(src), capinfos(out)
    assert got["returncode"] == "0" and not got["stderr"]
    assert got["Number of packets"] == want["Number of packets"]
    assert got["Data size"] == want["Data size"]
    assert got["File type"] == ("pcapng" if out_name.endswith(".pcapng") else "pcap")
    assert raw_frames(out) == raw_frames(src)
    rec = doc["recording"]
    assert rec["packets"] == doc["source"]["frames"] == int(want["Number of packets"])
    assert rec["unrecorded"] == 0 and rec["errors"] == 0 and rec["last_error"] is None
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_file_of_many_chunks_is_recorded_byte_for_byte(tmp_path: Path) -> None:
    """-r big.pcap -w out.pcap records batch by batch; the reader refills one buffer in place, so a batch
    kept for the flusher must not see the next chunk's bytes. 20 MB: three of the reader's 8 MiB chunks."""
    data = (DATA / "s1-mschapv2-mppe128-outside.pcap").read_bytes()
    header, body = data[:24], data[24:]
    records, pos = [], 0
    while pos < len(body):
        incl = struct.unpack_from("<I", body, pos + 8)[0]
        records.append(body[pos + 8:pos + 16 + incl])  # lengths and frame; the time is set below
        pos += 16 + incl
    big = tmp_path / "big.pcap"
    n = 0
    with big.open("wb") as f:
        f.write(header)
        while f.tell() < 20 << 20:
            for r in records:
                f.write(struct.pack("<II", 1_700_000_000 + n // 1000, n % 1000 * 1000) + r)
                n += 1
    out = tmp_path / "out.pcap"
    rec = Recorder(out)
    rec.open()  # no flusher thread: everything waits in the queue until close(), past every refill
    pipe = Pipeline(sources.open_file(big), Tracker(), batch_hooks=[rec.batch])
    pipe.run()
    assert pipe.batched and pipe.frames == n
    rec.close()
    assert rec.state().packets == n
    assert out.read_bytes()[24:] == big.read_bytes()[24:]
    # a queue of 1 MiB, smaller than one batch: a file waits for the flusher instead of losing packets
    waited = tmp_path / "waited.pcap"
    rec = Recorder(waited, max_pending_bytes=1 << 20, wait_when_full=True)
    rec.open()
    rec.start()
    Pipeline(sources.open_file(big), Tracker(), batch_hooks=[rec.batch]).run()
    rec.close()
    assert rec.state().packets == n and rec.state().unrecorded == 0
    assert waited.read_bytes() == out.read_bytes()
    # and through the CLI, flusher running
    cli_out = tmp_path / "cli.pcap"
    p = run_pptptop("-r", str(big), "--json", "-w", str(cli_out))
    assert p.returncode == 0, p.stderr
    assert json_doc(p)["recording"]["packets"] == n
    assert cli_out.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("rotation", [None, Rotation(size=6000), Rotation(seconds=2.0)], ids=["one", "size", "time"])
@pytest.mark.parametrize("name", ["out.pcapng", "out.pcap"])
def test_batches_and_frames_make_the_same_files(tmp_path: Path, rotation: Rotation | None, name: str) -> None:
    """The recorder as a batch hook (the capture stays vectorised) writes what it writes frame by frame:
    interfaces of a two-interface pcapng, page fillers, and the files rotation starts, byte for byte."""
    made = []
    for how in ("frames", "batches"):
        (tmp_path / how).mkdir()
        rec = Recorder(tmp_path / how / name, rotation=rotation)
        rec.open()
        pipe = Pipeline(sources.open_file(S5_BOTH), Tracker(), frame_hooks=[rec] if how == "frames" else [],
                        batch_hooks=[rec.batch] if how == "batches" else [])
        assert pipe.batched is (how == "batches")
        rec.start()
        pipe.run()
        rec.close()
        assert rec.state().packets == pipe.frames and rec.state().unrecorded == 0
        made.append({p.name: p.read_bytes() for p in sorted((tmp_path / how).iterdir())})
    assert made[0] == made[1]
    if rotation is None:
        assert len(made[0]) == 1
        assert raw_frames(tmp_path / "batches" / name) == raw_frames(S5_BOTH)
    else:
        assert len(made[0]) > 2  # rotation happened, inside batches too


def record_both(batch: Batch, out: Path, name: str, *, rotation: Rotation | None = None,
                cut: int = 16) -> list[dict[str, bytes]]:
    """Record ``batch`` frame by frame into ``out/frames``, then in parts of ``cut`` frames into
    ``out/batches``: the files each made, by name. Every packet must be recorded both ways."""
    made = []
    for how in ("frames", "batches"):
        (out / how).mkdir()
        rec = Recorder(out / how / name, rotation=rotation)
        rec.open()
        if how == "frames":
            for i in range(len(batch)):
                rec(i + 1, batch.frame(i))
        else:
            for lo in range(0, len(batch), cut):
                rec.batch(lo + 1, batch.part(lo, min(lo + cut, len(batch))))
        rec.close()
        st = rec.state()
        assert st.packets == len(batch) and st.unrecorded == 0 and not st.last_error
        made.append({p.name: p.read_bytes() for p in sorted((out / how).iterdir())})
    return made


@pytest.mark.parametrize("rotation", [Rotation(size=40_000), Rotation(seconds=1.0)], ids=["size", "time"])
def test_small_batches_rotate_as_frames_do(tmp_path: Path, rotation: Rotation) -> None:
    """Batches of 16 frames: most are encoded whole, the ones a rotation falls in go frame by frame."""
    (batch,) = list(sources.open_file(S1_BOTH).batches())
    batch = Batch(bytes(batch.buf), batch.offsets, batch.lengths, batch.ts, batch.ifaces, batch.ifidx)
    made = record_both(batch, tmp_path, "out.pcapng", rotation=rotation)
    assert made[0] == made[1] and len(made[0]) > 1


@pytest.mark.parametrize("name", ["out.pcapng", "out.pcap"])
def test_hostile_timestamps_are_recorded(tmp_path: Path, name: str) -> None:
    """A pcapng may carry any 64-bit time: past 2106 classic pcap's 32-bit seconds wrap instead of failing
    the flush (struct.error lost every packet pending), and batches write what frames write."""
    data = bytearray(S1_BOTH.read_bytes())
    pos, n = 0, 0
    while pos < len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        if btype == 6:  # EPB
            n += 1
            if n in (3, 50):
                struct.pack_into("<II", data, pos + 12, 0xFFFFFFFF, 0xFFFFFFF0)
        pos += blen
    hostile = tmp_path / "hostile.pcapng"
    hostile.write_bytes(bytes(data))
    (batch,) = list(sources.open_file(hostile).batches())
    batch = Batch(bytes(batch.buf), batch.offsets, batch.lengths, batch.ts, batch.ifaces, batch.ifidx)
    assert batch.ts[2] > 2**32
    made = record_both(batch, tmp_path, name)
    assert made[0] == made[1]
    assert len(raw_frames(tmp_path / "batches" / name)) == len(batch)


_frames = st.lists(st.tuples(
    st.one_of(st.floats(0, 4e9), st.floats(4e9, 2e13), st.sampled_from([0.0, 4294967295.999999, 4294967296.0])),
    st.integers(0, 1),  # interface
    st.binary(max_size=300)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(frames=_frames, cut=st.integers(1, 40), ng=st.booleans())
def test_any_frames_record_the_same_in_batches(tmp_path_factory: pytest.TempPathFactory,
                                               frames: list[tuple[float, int, bytes]], cut: int, ng: bool) -> None:
    """Whatever the times, sizes and interfaces, batches cut anywhere write the bytes frames write."""
    d = tmp_path_factory.mktemp("any")
    ifaces = [("lan0", 1), ("wan0", 1)]
    lengths = np.array([len(f[2]) for f in frames], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    batch = Batch(b"".join(f[2] for f in frames), offsets, lengths, np.array([f[0] for f in frames]), ifaces,
                  np.array([f[1] for f in frames], dtype=np.int64))
    made = record_both(batch, d, "out.pcapng" if ng else "out.pcap", cut=cut)
    assert made[0] == made[1]


@needs_tshark
def test_interface_names_survive(tmp_path: Path) -> None:
    out = tmp_path / "both.pcapng"
    p = run_pptptop("-r", str(S1_BOTH), "--report", "-w", str(out))
    assert p.returncode == 0, p.stderr
    got, want = tshark_read(out), tshark_read(S1_BOTH)
    assert got.returncode == 0
    assert got.interfaces == want.interfaces
    assert got.interfaces.count("lan0") == 111 and got.interfaces.count("wan0") == 111


@needs_tshark
def test_pcap_flag_forces_classic_pcap(tmp_path: Path) -> None:
    out = tmp_path / "out.pcapng"
    p = run_pptptop("-r", str(S2_BOTH), "--json", "-w", str(out), "--pcap")
    assert p.returncode == 0, p.stderr
    assert capinfos(out)["File type"] == "pcap"
    assert raw_frames(out) == raw_frames(S2_BOTH)


def test_no_record_crosses_a_page_boundary(tmp_path: Path) -> None:
    """What makes kill -9 safe: every record lies inside one page; fillers pad page ends."""
    out = tmp_path / "out.pcapng"
    p = run_pptptop("-r", str(S5_BOTH), "-r", str(S1_BOTH), "--json", "-w", str(out))
    assert p.returncode == 0, p.stderr
    blocks = pcapng_blocks(out)
    assert sum(off + length for off, _, length in blocks[-1:]) == out.stat().st_size
    fillers = [b for b in blocks if b[1] == FILLER_TYPE]
    assert fillers, "the lab captures are bigger than a page: some page end must have been filled"
    for off, btype, length in blocks:
        if length <= PAGE - 12:
            assert off // PAGE == (off + length - 1) // PAGE, (off, hex(btype), length)
    assert sum(1 for b in blocks if b[1] == 6) == json_doc(p)["recording"]["packets"]


def test_existing_symlink_is_refused_and_capture_continues(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("do not touch")
    out = tmp_path / "out.pcapng"
    out.symlink_to(victim)
    p = run_pptptop("-r", str(S2_BOTH), "--json", "-w", str(out))
    assert p.returncode == 0
    assert "refusing to write" in p.stderr and "symbolic link" in p.stderr
    doc = json_doc(p)
    assert doc["recording"]["unrecorded"] == doc["source"]["frames"] == 68
    assert doc["recording"]["packets"] == 0
    assert victim.read_text() == "do not touch" and out.is_symlink()


def test_usage_errors(tmp_path: Path) -> None:
    for args, msg in ((["-C", "1"], "need -w"), (["-w", "x.pcapng", "-W", "3"], "give -C MB or -G"),
                      (["--export-tunnel", "1"], "needs -w"),
                      (["-w", "x", "-Z", "nobody", "--no-drop-privileges"], "contradict")):
        p = run_pptptop("-r", str(S2_BOTH), "--json", *args, cwd=tmp_path)
        assert p.returncode == 64 and msg in p.stderr, (args, p.stderr)


# ---------------------------------------------------------------------- rotation
def rotated(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if ROTATED.match(p.name))


@needs_tshark
def test_size_rotation_keeps_every_packet_in_order(tmp_path: Path) -> None:
    p = run_pptptop("-r", str(S1_BOTH), "--json", "-w", str(tmp_path / "out.pcapng"), "-C", "0.008")
    assert p.returncode == 0, p.stderr
    files = rotated(tmp_path)
    assert len(files) == json_doc(p)["recording"]["files"] >= 5
    assert [int(ROTATED.match(f.name).group(1)) for f in files] == list(range(1, len(files) + 1))  # type: ignore[union-attr]
    frames: list[bytes] = []
    for f in files:
        assert f.stat().st_size <= 8000
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert tshark_read(f).returncode == 0
        frames += raw_frames(f)
    assert frames == raw_frames(S1_BOTH)


@needs_tshark
def test_size_rotation_with_W_keeps_the_last_n(tmp_path: Path) -> None:
    p = run_pptptop("-r", str(S1_BOTH), "--json", "-w", str(tmp_path / "out.pcapng"), "-C", "0.008", "-W", "3")
    assert p.returncode == 0, p.stderr
    total = json_doc(p)["recording"]["files"]
    files = rotated(tmp_path)
    assert total >= 5 and len(files) == 3
    assert [int(ROTATED.match(f.name).group(1)) for f in files] == [total - 2, total - 1, total]  # type: ignore[union-attr]
    tail = [fr for f in files for fr in raw_frames(f)]
    assert tail == raw_frames(S1_BOTH)[-len(tail):]


@needs_tshark
def test_time_rotation_names_files_by_their_first_packet(tmp_path: Path) -> None:
    p = run_pptptop("-r", str(S1_BOTH), "--json", "-w", str(tmp_path / "out.pcapng"), "-G", "4")
    assert p.returncode == 0, p.stderr
    files = rotated(tmp_path)
    assert len(files) == 4  # 14.7 s of capture, a new file every 4 s
    all_frames = []
    for f in files:
        info = capinfos(f)
        first, last = float(info["First packet time"]), float(info["Last packet time"])
        assert last - first < 4.0
        stamp = ROTATED.match(f.name).group(2)  # type: ignore[union-attr]
        assert stamp == time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(first))
        all_frames += raw_frames(f)
    assert all_frames == raw_frames(S1_BOTH)


def test_rotated_name() -> None:
    assert rotated_name("/x/out.pcapng", 3, 0.0) == "/x/out-00003-19700101T000000Z.pcapng"
    assert rotated_name("cap", 12, 86400.5) == "cap-00012-19700102T000000Z"
    assert rotated_name("a.b.PCAP", 1, 0) == "a.b-00001-19700101T000000Z.PCAP"


# ---------------------------------------------------------------------- flushing
def test_flushes_when_a_tunnel_ends_without_waiting_for_the_timer(tmp_path: Path) -> None:
    """flush_interval is an hour: the file is only written because the tunnel ended."""
    out = tmp_path / "out.pcapng"
    rec = Recorder(out, flush_interval=3600)
    rec.open()
    tracker = Tracker()
    pipe = Pipeline(sources.open_file(S2_BOTH), tracker, frame_hooks=[rec])
    rec.attach(tracker)
    rec.start()
    try:
        pipe.run()
        # the lan0 leg ends at frame 45, the wan0 leg at 65 (of 68)
        assert wait_until(lambda: rec.state().packets >= 65, timeout=5)
        assert out.stat().st_size > 5000
        assert not rec.closed
    finally:
        rec.close()
    assert rec.state().packets == 68


def feeder(proc: subprocess.Popen[bytes], stop: threading.Event) -> None:
    """Stream a lab capture into pptptop's stdin over and over, as fast as it reads (classic pcap)."""
    data = (DATA / "s1-mschapv2-mppe128-outside.pcap").read_bytes()
    header, body = data[:24], data[24:]
    assert proc.stdin is not None
    try:
        proc.stdin.write(header)
        while not stop.is_set():
            proc.stdin.write(body)
    except (BrokenPipeError, ValueError, OSError):
        pass


@pytest.fixture
def streaming(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    out = tmp_path / "live.pcapng"
    proc = subprocess.Popen(pptptop_cmd("-r", "-", "--json", "-w", str(out)), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    stop = threading.Event()
    t = threading.Thread(target=feeder, args=(proc, stop), daemon=True)
    t.start()
    try:
        yield proc, out
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        t.join(5)


@needs_tshark
@pytest.mark.parametrize("run", range(3))
def test_kill_9_under_load_leaves_a_readable_file(streaming: tuple[subprocess.Popen[bytes], Path],
                                                  run: int) -> None:
    proc, out = streaming
    # flushed while running: data reaches the file long before the process ends
    assert wait_until(lambda: out.exists() and out.stat().st_size > 300_000 + run * 200_000, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    r = tshark_read(out)
    assert r.returncode == 0, r.stderr
    assert not r.stderr
    assert r.count > 1000
    assert capinfos(out)["returncode"] == "0"


@needs_tshark
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_closes_a_complete_file(streaming: tuple[subprocess.Popen[bytes], Path], sig: int) -> None:
    proc, out = streaming
    assert wait_until(lambda: out.exists() and out.stat().st_size > 200_000, timeout=60)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    doc = json_doc(subprocess.CompletedProcess([], 0, stdout.decode(), stderr.decode()))
    rec = doc["recording"]
    r = tshark_read(out)
    assert r.returncode == 0 and not r.stderr
    assert r.count == rec["packets"] == doc["source"]["frames"]
    assert rec["unrecorded"] == 0


# ---------------------------------------------------------------------- full and read-only disks
def in_order_subset(part: list[bytes], whole: list[bytes]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


@needs_tshark
@pytest.mark.root
@pytest.mark.skipif(not is_root(), reason="needs root to mount a tmpfs")
def test_full_disk_is_reported_and_capture_continues(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "64k") as mnt:
        out = mnt / "out.pcapng"
        p = run_pptptop("-r", str(S5_BOTH), "-r", str(S1_BOTH), "--json", "-w", str(out))
        assert p.returncode == 0, p.stderr
        assert "no space left on device" in p.stderr and "the capture goes on" in p.stderr
        doc = json_doc(p)
        rec, frames = doc["recording"], doc["source"]["frames"]
        assert frames == 338 + 222 and doc["tunnels"]  # the whole input was read and analysed
        assert rec["unrecorded"] > 0 and rec["errors"] >= 1
        assert rec["packets"] + rec["unrecorded"] == frames
        assert "no space left on device" in rec["last_error"]
        r = tshark_read(out)
        assert r.returncode == 0 and not r.stderr
        assert r.count == rec["packets"] > 100
        # what was written is the capture in order, minus what did not fit
        merged = [f.data for f in sources.open_files([S5_BOTH, S1_BOTH])]  # -r twice merges by time
        assert in_order_subset(raw_frames(out), merged)


@pytest.mark.root
@pytest.mark.skipif(not is_root(), reason="needs root to mount a tmpfs")
def test_read_only_directory_is_reported_and_capture_continues(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "64k", readonly=True) as ro:
        p = run_pptptop("-r", str(S2_BOTH), "--json", "-w", str(ro / "out.pcapng"))
        assert p.returncode == 0, p.stderr
        assert "read-only file system" in p.stderr
        doc = json_doc(p)
        assert doc["recording"]["unrecorded"] == doc["source"]["frames"] == 68
        assert doc["recording"]["recording"] is False
        assert doc["tunnels"]
        assert not (ro / "out.pcapng").exists()


@needs_tshark
@pytest.mark.root
@pytest.mark.skipif(not is_root(), reason="needs root to mount a tmpfs")
def test_recording_resumes_when_space_comes_back(tmp_path: Path) -> None:
    frames = list(sources.open_file(S5_BOTH))
    with tmpfs(tmp_path / "mnt", "64k") as mnt:
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * (56 << 10))  # leaves 8 KiB
        errors: list[str] = []
        rec = Recorder(mnt / "out.pcapng", on_error=errors.append)
        assert rec.open()
        for i, f in enumerate(frames[:200]):
            rec(i, f)
        rec.flush()
        full = rec.state()
        assert full.unrecorded > 0 and not full.recording and "no space" in full.last_error
        written_before = full.packets
        filler.unlink()
        time.sleep(1.1)  # the retry interval
        for i, f in enumerate(frames[200:], 200):
            rec(i, f)
        rec.close()
        st = rec.state()
        assert any("resumed" in e for e in errors)
        assert st.packets == written_before + len(frames) - 200
        assert st.unrecorded == 200 - written_before
        r = tshark_read(mnt / "out.pcapng")
        assert r.returncode == 0 and not r.stderr and r.count == st.packets
        want = [f.data for f in frames[:written_before]] + [f.data for f in frames[200:]]
        assert raw_frames(mnt / "out.pcapng") == want


def test_stuck_disk_counts_unrecorded_instead_of_growing(tmp_path: Path) -> None:
    """The capture thread never waits for the disk: beyond the pending limit packets are counted."""
    frames = list(sources.open_file(S1_BOTH))
    rec = Recorder(tmp_path / "o.pcapng", max_pending_bytes=20_000)
    rec.open()
    for i, f in enumerate(frames):
        rec(i, f)  # no flusher thread: nothing drains the queue
    st = rec.state()
    assert st.unrecorded > 0 and st.pending + st.unrecorded == len(frames)
    rec.close()
    assert rec.state().packets == st.pending


def _batches(path: Path, copies: int) -> list[Batch]:
    (b,) = list(sources.open_file(path).batches())
    b = Batch(bytes(b.buf), b.offsets, b.lengths, b.ts, b.ifaces, b.ifidx)  # its own bytes, not the reader's
    return [b] * copies


def test_live_waits_for_a_disk_that_keeps_up(tmp_path: Path) -> None:
    """A burst bigger than the queue: live, the capture waits for a flusher that is writing (the drain thread
    holds the packets meanwhile), so nothing is lost."""
    batches = _batches(S1_BOTH, 40)
    rec = Recorder(tmp_path / "o.pcapng", max_pending_bytes=len(batches[0].buf) * 2)
    rec.open()
    rec.start()
    for i, b in enumerate(batches):
        rec.batch(i * len(b) + 1, b)
    rec.close()
    st = rec.state()
    assert st.unrecorded == 0 and st.packets == sum(map(len, batches))
    assert len(raw_frames(tmp_path / "o.pcapng")) == st.packets


def test_live_does_not_wait_for_a_stuck_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write(2) never returns (a hung NFS server): after STALLED_AFTER the capture goes on, counting."""
    release = threading.Event()
    real_write = os.write

    def stuck(fd: int, data: bytes) -> int:
        release.wait(30)
        return real_write(fd, data)

    batches = _batches(S1_BOTH, 6)
    rec = Recorder(tmp_path / "o.pcapng", max_pending_bytes=len(batches[0].buf) * 2)
    rec.open()  # the file header is written before the disk hangs
    monkeypatch.setattr("pptptop.record.recorder.os.write", stuck)
    rec.start()
    t0 = time.monotonic()
    for i, b in enumerate(batches):
        rec.batch(i * len(b) + 1, b)
    took = time.monotonic() - t0
    st = rec.state()
    assert st.unrecorded > 0
    assert took < STALLED_AFTER + 2.0
    release.set()
    rec.close()
    assert rec.state().packets + rec.state().unrecorded == sum(map(len, batches))


def test_rotation_dataclass() -> None:
    assert not Rotation().active
    assert Rotation(size=10).active and Rotation(seconds=1.0).active
    assert os.path.basename(rotated_name("out.pcapng", 1, 0)).startswith("out-00001-")
