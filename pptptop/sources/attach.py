"""``pptptop --attach SOCKET``: the frames a running pptptop offers on its UI socket, as a :class:`Source`.

The service (:mod:`pptptop.serve.feed`) writes one line of JSON, the hello
(:data:`HELLO_KEY`, whether its capture is live, its source's name), then a
pcapng stream: a Section Header Block, an Interface Description Block per
interface, the Enhanced Packet Blocks of its recent frames (a bounded
backlog) and then of every new frame. After the hello the stream is read by
the ordinary pcapng reader, as ``-r -`` reads a pipe, so an attached UI runs
its own tracker on the same frames and every screen works unchanged; the
tracker's join logic handles tunnels whose start left the backlog.
"""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any, BinaryIO, Final, cast

from pptptop.sources.pcapfile import PcapFileSource

#: the hello's key: its value is the version of the stream's format
HELLO_KEY: Final = "pptptop-ui-feed"
FEED_VERSION: Final = 1
#: the longest hello line read before the stream is refused as not pptptop's
HELLO_MAX: Final = 4096


class AttachError(Exception):
    """The socket cannot be attached to: one sentence for the user."""


def hello_line(live: bool, name: str) -> bytes:
    """What the service writes first to each client."""
    return json.dumps({HELLO_KEY: FEED_VERSION, "live": live, "name": name}).encode() + b"\n"


class AttachSource(PcapFileSource):
    """The frames of a running pptptop, read from its UI socket; live when the service's capture is."""

    def __init__(self, path: str, sock: socket.socket, hello: dict[str, Any]) -> None:
        stream = cast("BinaryIO", sock.makefile("rb", buffering=0))  # a raw reader: readinto gives what is there
        super().__init__(str(hello.get("name") or path), stream)  # the service's source: what the header shows
        self.socket_path = path
        self._sock = sock
        self.live = bool(hello.get("live"))

    def close(self) -> None:
        """Also wakes a capture thread blocked reading the socket (the UI quits while the service is quiet)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        super().close()
        with contextlib.suppress(OSError):
            self._sock.close()


def open_attach(path: str, timeout: float = 5.0) -> AttachSource:
    """Connect to a UI socket and read its hello; raises :class:`AttachError` with the reason."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise AttachError(f"cannot attach to {path}: no such socket (is pptptop --serve or "
                              "--ui-socket running?)") from None
        except PermissionError:
            raise AttachError(f"cannot attach to {path}: permission denied (the socket is the service "
                              "user's, mode 0600)") from None
        except OSError as e:
            raise AttachError(f"cannot attach to {path}: {e.strerror or e}") from None
        hello = _read_hello(sock, path)
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return AttachSource(path, sock, hello)


def _read_hello(sock: socket.socket, path: str) -> dict[str, Any]:
    """The first line, a byte at a time: what follows it belongs to the pcapng reader."""
    line = bytearray()
    try:
        while len(line) < HELLO_MAX:
            b = sock.recv(1)
            if not b or b == b"\n":
                break
            line += b
    except OSError as e:
        raise AttachError(f"cannot attach to {path}: {e.strerror or e}") from None
    try:
        hello = json.loads(line)
    except ValueError:
        hello = None
    if not isinstance(hello, dict) or HELLO_KEY not in hello:
        raise AttachError(f"cannot attach to {path}: it is not a pptptop UI socket")
    if hello[HELLO_KEY] != FEED_VERSION:
        raise AttachError(f"cannot attach to {path}: its pptptop speaks feed version {hello[HELLO_KEY]!r}, "
                          f"this one {FEED_VERSION}: run the same version")
    return hello
