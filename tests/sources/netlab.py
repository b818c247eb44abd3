"""Network namespaces for the live-capture tests: two namespaces joined by veth pairs.

The capture runs in a thread that has joined the receiving namespace with
``setns(2)`` (network namespaces are per thread), so ``open_live`` creates
its sockets there. Frames are sent from the other namespace with tcpreplay
or a raw ``AF_PACKET`` socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pptptop.sources import Frame, LiveSource

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def enter_netns(name: str) -> None:
    """Move the calling thread (only) into network namespace ``name``."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


@dataclass
class Lab:
    """Namespaces ``tx`` and ``rx``; ``link(a, b)`` makes a veth pair a (in tx) — b (in rx)."""

    tx: str
    rx: str
    links: list[tuple[str, str]] = field(default_factory=list)

    def link(self, a: str, b: str) -> None:
        sh("ip", "link", "add", a, "netns", self.tx, "type", "veth", "peer", "name", b, "netns", self.rx)
        sh("ip", "-n", self.tx, "link", "set", a, "up")
        sh("ip", "-n", self.rx, "link", "set", b, "up")
        for ns, dev in ((self.tx, a), (self.rx, b)):
            # No IPv6 chatter (DAD, MLD, RS) from the test links themselves.
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                            f"net.ipv6.conf.{dev}.disable_ipv6=1"], capture_output=True)
        self.links.append((a, b))

    def replay(self, path: Path | str, dev: str, *, loops: int = 1, pps: int | None = None) -> None:
        """Send a capture out of ``dev`` (in tx) as fast as tcpreplay can, or at ``pps`` packets a second."""
        rate = f"--pps={pps}" if pps else "-t"
        sh("ip", "netns", "exec", self.tx, "tcpreplay", "-q", rate, f"--loop={loops}", "-i", dev, str(path))

    def send_frames(self, dev: str, frames: Sequence[bytes]) -> None:
        """Send raw Ethernet frames out of ``dev`` (in tx) from a thread that joins tx."""
        error: list[BaseException] = []

        def run() -> None:
            try:
                enter_netns(self.tx)
                with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
                    s.bind((dev, 0))
                    for f in frames:
                        s.send(f)
            except BaseException as e:
                error.append(e)

        t = threading.Thread(target=run)
        t.start()
        t.join(30)
        if error:
            raise error[0]


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    tag = uuid.uuid4().hex[:8]
    lb = Lab(tx=f"pptptop-tx-{tag}", rx=f"pptptop-rx-{tag}")
    sh("ip", "netns", "add", lb.tx)
    try:
        sh("ip", "netns", "add", lb.rx)
        yield lb
    finally:
        for ns in (lb.tx, lb.rx):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def have_tools() -> str | None:
    """Why the live tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root and network namespaces"
    for tool in ("ip", "tcpreplay"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


class Capture:
    """``open_live`` in a thread inside the rx namespace, collecting frames until stopped."""

    def __init__(self, netns: str, make: Callable[[], LiveSource]) -> None:
        self.frames: list[Frame] = []
        self.source: LiveSource | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._netns = netns
        self._make = make
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            enter_netns(self._netns)
            self.source = self._make()
            self._ready.set()
            for f in self.source:
                self.frames.append(f)
        except BaseException as e:
            self.error = e
        finally:
            self._ready.set()

    def __enter__(self) -> Capture:
        self._thread.start()
        self._ready.wait(10)
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def live(self) -> LiveSource:
        assert self.source is not None
        return self.source

    def wait_for(self, n: int, timeout: float = 10.0) -> None:
        """Until ``n`` frames arrived, or the timeout; then a little longer for stragglers."""
        end = time.monotonic() + timeout
        while len(self.frames) < n and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(0.15)

    def stop(self, timeout: float = 5.0) -> float:
        """close() from this thread; returns how long the capture thread took to end."""
        t0 = time.monotonic()
        if self.source is not None:
            self.source.close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("the capture thread did not stop after close()")
        if self.error is not None:
            raise self.error
        return time.monotonic() - t0
