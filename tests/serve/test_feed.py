"""The feed's stream, read back: the frames of the capture, whatever the batch size and whenever a client
attaches (batches encoded as they come, or kept as copies and encoded when the client attaches)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import DATA

from pptptop import sources
from pptptop.pipeline import Pipeline
from pptptop.serve.feed import FrameFeed
from pptptop.sources.attach import open_attach
from pptptop.sources.batch import group_frames
from pptptop.track.tracker import Tracker
from pptptop.wire import Frame

CAPTURES = ["s5-two-clients-same-nat-both.pcapng", "s1-mschapv2-mppe128-both.pcapng", "ndpi__gre.pcapng"]


def frames_of(name: str) -> list[Frame]:
    return list(sources.open_file(str(DATA / name)))


def read_all(path: str, out: list[Frame]) -> None:
    out.extend(open_attach(path))


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("size", [1, 16, 4096])
@pytest.mark.parametrize("attach_first", [True, False])
def test_the_stream_carries_the_capture(tmp_path: Path, name: str, size: int, attach_first: bool) -> None:
    want = frames_of(name)
    src = sources.open_file(str(DATA / name))
    pipe = Pipeline(src, Tracker())
    feed = FrameFeed(str(tmp_path / "ui.sock"), say=lambda _: None)
    feed.start(pipe)
    got: list[Frame] = []
    reader = threading.Thread(target=read_all, args=(str(tmp_path / "ui.sock"), got))
    try:
        if attach_first:
            reader.start()
            while feed.served == 0:
                threading.Event().wait(0.01)
        n = 0
        for batch in group_frames(src, size):  # the hook, as the pipeline calls it, batches of any size
            feed.batch(n + 1, batch)
            n += len(batch)
        pipe.done.set()  # the input has ended: each client gets the rest, then the end of the stream
        if not attach_first:
            reader.start()
        reader.join(timeout=30)
        assert not reader.is_alive()
    finally:
        feed.close()
    assert [(f.ts, f.iface, f.linktype, f.data) for f in got] == [(f.ts, f.iface, f.linktype, f.data) for f in want]
    assert not (tmp_path / "ui.sock").exists()
