"""The fuzz harness's two budgets: the quick one always runs; the long one only when asked for.

Tests marked ``fuzz`` (the long budget) are skipped unless selected with
``-m fuzz`` or ``PPTPTOP_FUZZ_EXAMPLES`` is set; see docs/fuzzing.md.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = "fuzz" in (config.getoption("markexpr", "") or "") or "PPTPTOP_FUZZ_EXAMPLES" in os.environ
    if asked:
        return
    skip = pytest.mark.skip(reason="the long fuzz budget: run with -m fuzz (see docs/fuzzing.md)")
    for item in items:
        if item.get_closest_marker("fuzz") is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Examples run per target (hypothesis's own statistics do not see the harness's inner tests)."""
    from fuzz_mutate import RUNS

    if not RUNS:
        return
    terminalreporter.section("fuzz examples per target")
    for name, (n, seconds) in sorted(RUNS.items()):
        terminalreporter.write_line(f"{name:22s} {n:9d} examples {seconds:8.1f} s {n / max(seconds, 1e-9):8.0f}/s")
    total = sum(n for n, _ in RUNS.values())
    terminalreporter.write_line(f"{'total':22s} {total:9d} examples")
