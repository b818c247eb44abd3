"""The ground floor (pptptop.wire): the decoders stand on it without importing a capture source, and the
names sources still offer are the same objects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pptptop import wire
from pptptop.sources import base, batch, linktypes

PACKAGE = Path(wire.__file__).resolve().parent


def test_no_decoder_imports_a_capture_source() -> None:
    """Every module of pptptop.decode, imported in a fresh interpreter, loads no module of pptptop.sources."""
    modules = sorted(
        ".".join(("pptptop", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        for p in (PACKAGE / "decode").rglob("*.py")
    )
    assert "pptptop.decode.lanes" in modules and "pptptop.decode.link" in modules
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pptptop.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    assert "pptptop.wire" in loaded
    assert [m for m in loaded if m.startswith("pptptop.sources")] == []


def test_sources_name_the_ground_floor_objects() -> None:
    assert base.Frame is wire.Frame and batch.Batch is wire.Batch
    for name in linktypes.__all__:
        if name.startswith("LINKTYPE_") or name == "linktype_name":
            assert getattr(linktypes, name) is getattr(wire, name)
    assert linktypes.to_dlt(wire.LINKTYPE_RAW) == linktypes.DLT_RAW_LINUX
    assert linktypes.to_dlt(wire.LINKTYPE_ETHERNET) == wire.LINKTYPE_ETHERNET


def test_a_batch_frame_is_the_frame_it_was_cut_from() -> None:
    frames = [wire.Frame(1.5, "lan0", wire.LINKTYPE_ETHERNET, b"abc"),
              wire.Frame(2.25, "wan0", wire.LINKTYPE_RAW, b"\x45defg")]
    b = batch.batch_from_frames(frames)
    assert len(b) == 2 and [b.frame(i) for i in range(2)] == frames
    assert b.part(1, 2).frame(0) == frames[1]
    assert wire.linktype_name(wire.LINKTYPE_LINUX_SLL2) == "Linux cooked v2 (SLL2)"
    assert wire.linktype_name(9999) == "linktype 9999"
