"""The installed ``pptptop`` in a pseudo-terminal of its own, as a user at a terminal runs it.

The terminal is the process's controlling terminal (``/dev/tty``), 80×24 by
default; the UI draws on it, and messages printed before or after the UI land
there too. What the terminal receives is collected by a thread unless
``read=False`` (a terminal nobody reads: the UI's writes end up blocked).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest


def installed() -> list[str]:
    """The ``pptptop`` command on PATH (what ``pip install`` puts there); the test is skipped without it."""
    exe = shutil.which("pptptop")
    if exe is None:
        pytest.skip("pptptop is not installed on PATH (pip install .)")
    return [exe]


class Terminal:
    """One command in a fresh session whose controlling terminal is a new pty."""

    def __init__(self, argv: list[str], *, stdin: bytes | None = None, size: tuple[int, int] = (80, 24),
                 read: bool = True, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

        def own_terminal() -> None:  # in the child: a new session, with the pty as its controlling terminal
            os.setsid()
            fcntl.ioctl(1, termios.TIOCSCTTY, 0)

        self.master = master
        self.output = bytearray()
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            argv, stdin=slave if stdin is None else subprocess.PIPE, stdout=slave, stderr=slave,
            preexec_fn=own_terminal, cwd=cwd, env={**os.environ, "TERM": "xterm-256color", **(env or {})})
        os.close(slave)
        if stdin is not None:
            assert self.proc.stdin is not None
            threading.Thread(target=self._feed, args=(self.proc.stdin, stdin), daemon=True).start()
        if read:
            threading.Thread(target=self._drain, daemon=True).start()

    @staticmethod
    def _feed(pipe: object, data: bytes) -> None:
        with contextlib.suppress(OSError):
            pipe.write(data)  # type: ignore[attr-defined]
            pipe.close()  # type: ignore[attr-defined]

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.output.extend(chunk)

    def text(self) -> str:
        with self._lock:
            return self.output.decode("utf-8", "replace")

    def wait_for(self, text: str, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.text():
                return True
            if self.proc.poll() is not None:
                return text in self.text()
            time.sleep(0.1)
        return False

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def unread(self) -> int:
        """Bytes the program wrote that nobody has read from the terminal yet."""
        return int(struct.unpack("i", fcntl.ioctl(self.master, termios.FIONREAD, b"\0\0\0\0"))[0])

    def wait_until_stuck(self, timeout: float = 40.0) -> bool:
        """With ``read=False``: until the program's main thread waits on a lock (Textual's writer queue,
        full because the terminal is) rather than in its event loop. Linux (``/proc/PID/wchan``)."""
        deadline = time.monotonic() + timeout
        since = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(f"/proc/{self.proc.pid}/wchan") as f:
                waiting = f.read()
            if "futex" in waiting and self.unread() > 0:
                since = since or time.monotonic()
                if time.monotonic() - since >= 1.0:
                    return True
            else:
                since = None
            time.sleep(0.1)
        return False

    def hang_up(self) -> None:
        """Close the terminal (the window went away): the pty's other side sees a hang-up."""
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.hang_up()
