"""Finding the local process that listens on TCP 1723."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from pptptop.sources.owner import PptpListener, local_pptp_listeners


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", 1723))
    except OSError as e:
        s.close()
        if e.errno in (errno.EADDRINUSE, errno.EACCES):
            pytest.skip(f"cannot listen on 127.0.0.1:1723 here: {e.strerror}")
        raise
    s.listen()
    yield s
    s.close()


def test_finds_this_process(listener: socket.socket) -> None:
    # Our own sockets are visible to psutil without any privilege.
    found = local_pptp_listeners()
    me = PptpListener(pid=os.getpid(), process=psutil.Process().name(), address="127.0.0.1")
    assert me in found
    assert str(me) == f"{psutil.Process().name()}[{os.getpid()}] on 127.0.0.1:1723"


def test_finds_another_process_and_ignores_its_connections() -> None:
    child = subprocess.Popen([sys.executable, "-c", (
        "import socket, time\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('::1', 1723)); s.listen()\n"
        "c = socket.create_connection(('::1', 1723)); a, _ = s.accept()\n"
        "c.close()  # the client closes first: no TIME_WAIT on port 1723 afterwards\n"
        "print('ready', flush=True); time.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        # The accepted connection (now CLOSE_WAIT) also has local port 1723; only the listener counts.
        found = [x for x in local_pptp_listeners() if x.address == "::1"]
        assert found == [PptpListener(pid=child.pid, process=psutil.Process(child.pid).name(), address="::1")]
        assert str(found[0]).endswith(f"[{child.pid}] on [::1]:1723")
    finally:
        child.kill()
        child.wait()


def test_nothing_listening_gives_an_empty_list() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert local_pptp_listeners(port) == []


def test_no_permission_gives_an_empty_list(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(kind: str = "inet") -> list[object]:
        raise psutil.AccessDenied(pid=None, name=None, msg="not allowed")

    monkeypatch.setattr(psutil, "net_connections", denied)
    assert local_pptp_listeners() == []


def test_vanished_process_keeps_the_socket(monkeypatch: pytest.MonkeyPatch, listener: socket.socket) -> None:
    def gone(pid: int) -> psutil.Process:
        raise psutil.NoSuchProcess(pid)

    monkeypatch.setattr(psutil, "Process", gone)
    found = [x for x in local_pptp_listeners() if x.pid == os.getpid()]
    assert found == [PptpListener(pid=os.getpid(), process="", address="127.0.0.1")]
    assert str(found[0]) == f"?[{os.getpid()}] on 127.0.0.1:1723"


def test_unknown_owner_is_described() -> None:
    assert str(PptpListener(pid=None, process="", address="0.0.0.0")) == "unknown process on 0.0.0.0:1723"
