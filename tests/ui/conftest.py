"""Fixtures for the UI tests: a pinned time zone and apps over replayed lab captures."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ui_helpers import DATA, replayed_app

from pptptop.ui.app import PptpTopApp


@pytest.fixture
def utc() -> Iterator[None]:
    """Capture times are drawn in local time: pin the zone so screens are the same everywhere."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture
def make_app(tmp_path: Path, utc: None) -> Callable[..., PptpTopApp]:
    def make(name: str, theme: str = "dark") -> PptpTopApp:
        return replayed_app(DATA / name, save_dir=tmp_path, theme=theme)
    return make
