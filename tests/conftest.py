"""Shared fixtures: the test captures, running the engine on one, and tshark as an oracle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_tshark = shutil.which("tshark") is None
    not_root = os.geteuid() != 0
    for item in items:
        if no_tshark and "tshark" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="tshark is not installed (apt-get install tshark)"))
        if not_root and "root" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs root and network namespaces"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def run_engine(*paths: Path | str) -> Any:
    """Run the whole pipeline on capture files; return the tracker."""
    from pptptop import sources
    from pptptop.pipeline import Pipeline
    from pptptop.track.tracker import Tracker

    names = [str(p) for p in paths]
    src = sources.open_file(names[0]) if len(names) == 1 else sources.open_files(names)
    tracker = Tracker()
    pipe = Pipeline(src, tracker)
    pipe.run()
    if pipe.error is not None:
        raise pipe.error
    return tracker


@pytest.fixture(scope="session")
def engine() -> Callable[..., Any]:
    return run_engine


def tshark_fields(path: Path | str, display_filter: str, fields: list[str]) -> list[list[str]]:
    """Rows of ``tshark -T fields`` for ``display_filter`` (one list of strings per packet)."""
    cmd = [
        "tshark",
        "-n",
        "-r",
        str(path),
        "-Y",
        display_filter,
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def tshark_json(path: Path | str, display_filter: str = "") -> list[dict[str, Any]]:
    cmd = ["tshark", "-n", "-r", str(path), "-T", "json"]
    if display_filter:
        cmd += ["-Y", display_filter]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result: list[dict[str, Any]] = json.loads(out or "[]")
    return result


@pytest.fixture(scope="session")
def tshark() -> Callable[..., list[list[str]]]:
    return tshark_fields
