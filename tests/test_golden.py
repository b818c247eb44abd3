"""Golden outputs (Zeek's baselines): ``--json`` and ``--report`` of every capture in tests/data, checked in.

A change to what pptptop reports shows up here as a diff against
``tests/golden/``. Where the change is meant (today's output was wrong),
regenerate the files in the same commit and say why::

    PPTPTOP_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

The captures are read from tests/data by their path relative to it, so the
outputs do not depend on where the checkout lives.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "sources"))
from capfiles import DATA, data_captures

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PPTPTOP_UPDATE_GOLDEN") == "1"


def captures() -> list[str]:
    return [str(p.relative_to(DATA)) for p in data_captures()]


def pptptop(name: str, mode: str) -> str:
    res = subprocess.run([sys.executable, "-m", "pptptop", "-r", name, mode], cwd=DATA, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode in (0, 65), res.stderr  # 65: a capture cut short, reported after what was read
    return res.stdout


def check(path: Path, text: str) -> None:
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if not UPDATE:
            pytest.fail(f"{path.name} was missing: written now, check it in")
        return
    want = path.read_text()
    if text != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True), str(path), "now", n=2))
        pytest.fail(f"output differs from {path.relative_to(GOLDEN.parent)}:\n{diff[:6000]}")


@pytest.mark.parametrize("name", captures())
def test_json(name: str) -> None:
    doc = json.loads(pptptop(name, "--json"))
    check(GOLDEN / f"{name}.json", json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n")


@pytest.mark.parametrize("name", captures())
def test_report(name: str) -> None:
    check(GOLDEN / f"{name}.report.txt", pptptop(name, "--report"))
