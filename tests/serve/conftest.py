"""A pptptop service offering its capture on a UI socket, run as the command runs, for the attach tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data"


class ServiceRun:
    """``pptptop ARGS`` in the background; :meth:`stop` sends SIGTERM and returns (status, stderr)."""

    def __init__(self, args: list[str], stdin: int | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "pptptop", *args], stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stdout = ""

    def wait_for(self, path: Path, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"the service ended: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} did not appear")
            time.sleep(0.05)

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=20)
        self.stdout = out.decode()
        return self.proc.returncode, err.decode()


@pytest.fixture
def service() -> Iterator[list[ServiceRun]]:
    runs: list[ServiceRun] = []
    yield runs
    for r in runs:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.communicate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    return dict(os.environ)
