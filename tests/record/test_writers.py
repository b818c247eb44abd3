"""pcap/pcapng encoders and the safe output-file opener, read back by tshark, scapy and our reader."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rechelp import DATA, HAVE_TSHARK, NO_TSHARK, capinfos, raw_frames, tshark_read

from pptptop import sources
from pptptop.record.writers import (
    OUTPUT_MODE,
    PcapEncoder,
    PcapNgEncoder,
    PcapNgWriter,
    PcapWriter,
    RecordError,
    open_output,
)

needs_tshark = pytest.mark.skipif(not HAVE_TSHARK, reason=NO_TSHARK)
BOTH = DATA / "s1-mschapv2-mppe128-both.pcapng"
INSIDE = DATA / "s1-mschapv2-mppe128-inside.pcap"


def write_with(path: Path, frames: list[sources.Frame], *, ng: bool) -> None:
    with open(path, "wb") as f:
        w = PcapNgWriter(f) if ng else PcapWriter(f)
        for fr in frames:
            w.write(fr.ts, fr.iface, fr.linktype, fr.data)


# ---------------------------------------------------------------------- open_output
class TestOpenOutput:
    def test_new_file_is_0600_whatever_the_umask(self, tmp_path: Path) -> None:
        old = os.umask(0)
        try:
            fd = open_output(tmp_path / "a.pcapng")
        finally:
            os.umask(old)
        os.close(fd)
        assert stat.S_IMODE(os.stat(tmp_path / "a.pcapng").st_mode) == OUTPUT_MODE == 0o600

    def test_symlink_to_a_file_is_refused_and_the_target_untouched(self, tmp_path: Path) -> None:
        target = tmp_path / "precious"
        target.write_bytes(b"keep me")
        link = tmp_path / "out.pcapng"
        link.symlink_to(target)
        with pytest.raises(RecordError, match="symbolic link") as ei:
            open_output(link)
        assert ei.value.errno == errno.ELOOP
        assert target.read_bytes() == b"keep me"
        assert link.is_symlink()

    def test_dangling_symlink_is_refused_and_nothing_created(self, tmp_path: Path) -> None:
        target = tmp_path / "would-be-created"
        link = tmp_path / "out.pcap"
        link.symlink_to(target)
        with pytest.raises(RecordError, match="symbolic link"):
            open_output(link)
        assert not target.exists()

    def test_existing_regular_file_is_replaced_by_a_new_inode(self, tmp_path: Path) -> None:
        p = tmp_path / "out.pcapng"
        p.write_bytes(b"old contents")
        os.chmod(p, 0o644)
        hard = tmp_path / "hardlink"
        os.link(p, hard)  # a hard link planted at the name must not be truncated through it
        fd = open_output(p)
        os.write(fd, b"new")
        os.close(fd)
        assert p.read_bytes() == b"new"
        assert hard.read_bytes() == b"old contents"
        assert stat.S_IMODE(p.stat().st_mode) == 0o600

    def test_replace_false_refuses_an_existing_file(self, tmp_path: Path) -> None:
        p = tmp_path / "x.pcapng"
        p.write_bytes(b"x")
        with pytest.raises(RecordError, match="already exists"):
            open_output(p, replace=False)

    def test_not_a_regular_file_is_refused(self, tmp_path: Path) -> None:
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        with pytest.raises(RecordError, match="not a regular file"):
            open_output(fifo)
        with pytest.raises(RecordError, match="not a regular file"):
            open_output(tmp_path)

    def test_missing_directory_is_one_clear_sentence(self, tmp_path: Path) -> None:
        with pytest.raises(RecordError, match=r"cannot create .*no such directory"):
            open_output(tmp_path / "nope" / "x.pcapng")


# ---------------------------------------------------------------------- encoders against tshark
@needs_tshark
class TestAgainstTshark:
    def test_pcapng_keeps_every_frame_and_both_interface_names(self, tmp_path: Path) -> None:
        frames = list(sources.open_file(BOTH))
        out = tmp_path / "both.pcapng"
        write_with(out, frames, ng=True)
        got, orig = tshark_read(out), tshark_read(BOTH)
        assert got.returncode == 0 and not got.stderr
        assert got.lengths == orig.lengths
        assert got.interfaces == orig.interfaces
        assert sorted(set(got.interfaces)) == ["lan0", "wan0"]
        assert raw_frames(out) == raw_frames(BOTH)

    def test_classic_pcap_from_pcap(self, tmp_path: Path) -> None:
        frames = list(sources.open_file(INSIDE))
        out = tmp_path / "inside.pcap"
        write_with(out, frames, ng=False)
        info = capinfos(out)
        assert info["File type"] == "pcap"
        assert int(info["Number of packets"]) == int(capinfos(INSIDE)["Number of packets"])
        assert raw_frames(out) == raw_frames(INSIDE)

    def test_comments_reach_wireshark(self, tmp_path: Path) -> None:
        frames = list(sources.open_file(INSIDE))[:3]
        enc = PcapNgEncoder(comment="section says hello\nsecond line", capture_filter="tcp port 1723")
        body = enc.begin() + b"".join(
            enc.encode(f.ts, "lan0", f.linktype, f.data, comment="packet note" if i == 1 else None)
            for i, f in enumerate(frames))
        out = tmp_path / "c.pcapng"
        out.write_bytes(body)
        r = tshark_read(out)
        assert r.returncode == 0
        assert r.comments == ["", "packet note", ""]
        assert "section says hello" in capinfos(out)["Capture comment"]

    def test_rollback_forgets_an_interface_block_that_never_landed(self, tmp_path: Path) -> None:
        a, b = list(sources.open_file(INSIDE))[:2]
        enc = PcapNgEncoder()
        kept = enc.begin() + enc.encode(a.ts, "lan0", 1, a.data)
        before = enc.state()
        lost = enc.encode(b.ts, "wan0", 1, b.data)  # carries wan0's IDB; pretend the disk refused it
        enc.rollback(before)
        again = enc.encode(b.ts, "wan0", 1, b.data)
        assert again == lost  # the IDB is emitted again, with the same index
        out = tmp_path / "r.pcapng"
        out.write_bytes(kept + again)
        r = tshark_read(out)
        assert r.returncode == 0 and r.interfaces == ["lan0", "wan0"]


def test_classic_pcap_keeps_one_link_type() -> None:
    enc = PcapEncoder()
    first = enc.encode(1.0, "eth0", 1, b"\x00" * 60)
    assert first is not None and first[:4] == b"\xd4\xc3\xb2\xa1"
    assert enc.encode(2.0, "tun0", 101, b"\x45" + b"\x00" * 19) is None
    assert enc.skipped_linktype == 1
    enc.rollback(0)
    assert enc.linktype is None and enc.state() == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 4e9, allow_nan=False), st.text(max_size=40),
                          st.binary(min_size=0, max_size=300), st.none() | st.text(max_size=80)),
                min_size=1, max_size=12))
def test_pcapng_round_trips_through_our_reader(tmp_path_factory: pytest.TempPathFactory,
                                               pkts: list[tuple[float, str, bytes, str | None]]) -> None:
    """Whatever names, bytes and comments: the file reads back as the same frames."""
    enc = PcapNgEncoder()
    body = enc.begin() + b"".join(enc.encode(ts, name, 1, data, comment=c) for ts, name, data, c in pkts)
    path = tmp_path_factory.mktemp("rt") / "x.pcapng"
    path.write_bytes(body)
    back = list(sources.open_file(path))
    assert [f.data for f in back] == [p[2] for p in pkts]
    assert [abs(f.ts - p[0]) <= 1e-6 for f, p in zip(back, pkts, strict=True)] == [True] * len(pkts)


# ---------------------------------------------------------------------- encode_batch
@pytest.mark.parametrize("capture", ["s1-mschapv2-mppe128-both.pcapng", "s5-two-clients-same-nat-both.pcapng",
                                     "s1-mschapv2-mppe128-inside.pcap", "ndpi__gre.pcapng"])
@pytest.mark.parametrize("ng", [True, False], ids=["pcapng", "pcap"])
def test_encode_batch_equals_encode_one_by_one(capture: str, ng: bool) -> None:
    """The vectorised records are byte for byte those of encode(); frames of a batch keep their interface."""
    (batch,) = list(sources.open_file(DATA / capture).batches())
    frames = [batch.frame(i) for i in range(len(batch))]
    one = PcapNgEncoder() if ng else PcapEncoder()
    many = PcapNgEncoder() if ng else PcapEncoder()
    assert many.encode_batch(batch) is None  # nothing begun: the header comes with the first packet
    # the first frame of every interface through encode(), as the recorder's first packets go
    firsts = [frames[0 if batch.ifidx is None else int((batch.ifidx == k).argmax())] for k in range(len(batch.ifaces))]
    for enc in (one, many):
        for f in firsts:
            enc.encode(f.ts, f.iface, f.linktype, f.data)
    expected = [one.encode(f.ts, f.iface, f.linktype, f.data) for f in frames]
    got = many.encode_batch(batch)
    assert got is not None and len(got) == len(frames)
    assert got == expected


def test_encode_batch_leaves_a_new_interface_to_encode() -> None:
    (batch,) = list(sources.open_file(DATA / "s5-two-clients-same-nat-both.pcapng").batches())
    assert batch.ifidx is not None and len(batch.ifaces) == 2
    enc = PcapNgEncoder()
    first = batch.frame(0)
    enc.encode(first.ts, first.iface, first.linktype, first.data)  # the section and one interface
    assert enc.encode_batch(batch) is None  # the other one needs its IDB first
    assert enc.encode_batch(batch.part(0, 1)) is not None
