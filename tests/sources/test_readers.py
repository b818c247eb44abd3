"""The pcap and pcapng readers on their own: typed frame and batch readers that agree, a batch walk bounded
at every byte of a record header, and a stream released however a reader ends."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import pytest
from capfiles import DATA, data_captures, epb, idb, pcap_file, pcap_header, pcap_record, shb

from pptptop.sources import pcap, pcapfile, pcapng
from pptptop.sources.base import CaptureFileError, Frame
from pptptop.sources.batch import Batch
from pptptop.sources.pcapfile import PcapFileSource
from pptptop.sources.window import Input, ReadState

#: 40 bytes of frame data: 56 bytes a record, so 56 consecutive buffer sizes end at every byte of one
DATA_LEN = 40
RECORD = 16 + DATA_LEN


def _records(count: int) -> list[tuple[int, int, bytes]]:
    return [(1_700_000_000 + i, i * 7, bytes([i & 0xFF]) * DATA_LEN) for i in range(count)]


def _state(released: list[bool], label: str = "") -> ReadState:
    return ReadState("mem", label, lambda: released.append(True))


def _frames_of(batches: list[Batch]) -> list[Frame]:
    return [b.frame(i) for b in batches for i in range(len(b))]


def _source(path: Path, chunk: int) -> PcapFileSource:
    """A regular file read ``chunk`` bytes at a time (so that its batches end where the test wants)."""
    return PcapFileSource(str(path), open(path, "rb", buffering=0), chunk_size=chunk)


def _read(src: PcapFileSource, batched: bool) -> tuple[list[Frame], CaptureFileError | None]:
    got: list[Frame] = []
    try:
        if batched:
            for b in src.batches():  # a batch's bytes are good until the next one is read
                got += [b.frame(i) for i in range(len(b))]
        else:
            for f in src:
                got.append(f)
    except CaptureFileError as e:
        return got, e
    return got, None


@pytest.mark.parametrize("path", data_captures(), ids=lambda p: str(p.relative_to(DATA)))
def test_the_format_readers_give_frames_and_batches_alike(path: Path) -> None:
    """Each reader's frame reader yields Frames, its batch reader Batches of the same frames; both release
    the stream when they end."""
    raw = path.read_bytes()
    ng = raw[:4] == b"\x0a\x0d\x0d\x0a"
    order = pcap.byte_order(raw[:4])
    assert ng == (order is None)
    released: list[bool] = []
    inp = Input(io.BytesIO(raw), 1 << 16)
    frames = list(pcapng.frames(inp, _state(released)) if ng else pcap.frames(inp, _state(released), order or ""))
    assert frames and all(type(f) is Frame for f in frames)
    inp = Input(io.BytesIO(raw), 1 << 16, reuse=True)
    batches: list[Batch] = []
    frames_of_batches: list[Frame] = []
    for b in pcapng.batches(inp, _state(released)) if ng else pcap.batches(inp, _state(released), order or ""):
        assert type(b) is Batch
        batches.append(b)
        frames_of_batches += [b.frame(i) for i in range(len(b))]
    assert frames_of_batches == frames
    assert released == [True, True]


@pytest.mark.parametrize("chunk", range(24 + 3 * RECORD, 24 + 4 * RECORD + 1))
def test_the_pcap_batch_walk_stops_at_every_byte_of_a_record_header(chunk: int, tmp_path: Path,
                                                                   monkeypatch: Any) -> None:
    """The walk notes record starts until a length word no longer fits in the buffer: with buffers that
    end at each byte of a record (its header included), the batches hold every frame, in order."""
    monkeypatch.setattr(pcapfile, "PIECE", chunk)
    monkeypatch.setattr(pcapfile, "BATCH_CHUNK_SIZE", chunk)
    path = tmp_path / "walk.pcap"
    path.write_bytes(pcap_file(_records(20)))
    want, err = _read(_source(path, chunk), False)
    assert err is None and len(want) == 20
    sizes: list[int] = []
    src = _source(path, chunk)
    got: list[Frame] = []
    for b in src.batches():
        sizes.append(len(b))
        got += [b.frame(i) for i in range(len(b))]
    assert got == want
    assert len(sizes) > 1 and src.stats().received == 20


@pytest.mark.parametrize("chunk", range(24 + 3 * RECORD, 24 + 4 * RECORD + 1, 3))
def test_an_oversized_record_length_at_a_buffer_end_is_the_same_error(chunk: int, tmp_path: Path,
                                                                     monkeypatch: Any) -> None:
    """A record length past the limit, wherever the buffer ends around it: the batch reader gives the frames
    before it and the per-frame reader's error, offset and reason alike."""
    monkeypatch.setattr(pcapfile, "PIECE", chunk)
    monkeypatch.setattr(pcapfile, "BATCH_CHUNK_SIZE", chunk)
    good = _records(5)
    raw = pcap_header() + b"".join(pcap_record(s, f, d) for s, f, d in good)
    raw += struct.pack("<IIII", 1_700_000_100, 0, 1 << 30, 1 << 30) + b"\0" * 64
    path = tmp_path / "big.pcap"
    path.write_bytes(raw)
    want, want_err = _read(_source(path, chunk), False)
    got, err = _read(_source(path, chunk), True)
    assert len(want) == 5 and got == want
    assert want_err is not None and err is not None
    assert (err.offset, err.reason) == (want_err.offset, want_err.reason) == (
        24 + 5 * RECORD, "record length 1073741824 is larger than the snapshot length limit (262144 bytes)")


def test_a_reader_releases_its_stream_when_it_fails() -> None:
    """A pcapng block with a bad trailer: the frames before it, then its offset and reason; the stream is
    released by the reader that raised, frame or batch alike."""
    blocks = shb() + idb(1) + epb(0, 2, b"a" * 30)
    bad = bytearray(epb(0, 3, b"b" * 30))
    bad[-4:] = struct.pack("<I", len(bad) + 4)
    raw = blocks + bytes(bad)
    for batched in (False, True):
        released: list[bool] = []
        inp = Input(io.BytesIO(raw), 1 << 16, reuse=batched)
        reader = pcapng.batches(inp, _state(released)) if batched else pcapng.frames(inp, _state(released))
        got: list[Any] = []
        with pytest.raises(CaptureFileError) as info:
            for item in reader:
                got.append(item)
        assert info.value.offset == len(blocks)
        assert info.value.reason == f"block length mismatch: the header says {len(bad)}, the trailer says " \
                                    f"{len(bad) + 4}"
        assert released == [True]
        frames = _frames_of(got) if batched else got
        assert [f.data for f in frames] == [b"a" * 30]
