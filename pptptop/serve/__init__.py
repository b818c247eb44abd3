"""One capture, many views: the UI socket (``--ui-socket``), the browser UI (``--serve``) and ``--attach``.

``feed`` is the service side of the socket (a pcapng stream of the
pipeline's frames); ``pptptop.sources.attach`` reads it as a source; ``web``
serves ``pptptop --attach SOCKET`` in a browser through textual-serve;
``options`` holds the command-line options and their checks. docs/fleet.md
says how they fit together and why the stream carries frames.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pptptop.serve.feed import FeedError, FrameFeed, private_socket_path

if TYPE_CHECKING:
    from pptptop.pipeline import Pipeline
    from pptptop.serve.web import WebUi

__all__ = ["FeedError", "ServeOptions", "Serving", "open_serving"]


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What ``--serve``, ``--serve-token[-file]``, ``--ui-socket`` and ``--ui-backlog`` asked for."""

    serve: tuple[str, int] | None  # the browser UI's address
    token: str | None = field(repr=False)  # never printed, never logged
    ui_socket: str | None  # None with --serve: a private socket of its own
    backlog: int  # bytes of recent frames a new client starts from
    theme: str = "dark"


class Serving:
    """The UI socket and, with ``--serve``, the web server running ``pptptop --attach`` per session."""

    def __init__(self, feed: FrameFeed, web: WebUi | None) -> None:
        self.feed = feed
        self.web = web

    def start(self, pipeline: Pipeline) -> None:
        self.feed.start(pipeline)

    def close(self) -> None:
        if self.web is not None:
            self.web.close()
        self.feed.close()


def session_command(socket_path: str, theme: str) -> str:
    """What textual-serve runs for each browser session: this pptptop, attached to the socket."""
    return shlex.join([sys.executable, "-m", "pptptop", "--attach", socket_path, "--theme", theme])


def open_serving(opts: ServeOptions, say: Callable[[str], None]) -> Serving:
    """Create the socket and start listening for browsers; raises FeedError or ServeError (one sentence)."""
    if opts.ui_socket is not None:
        path, tmp = opts.ui_socket, None
    else:
        path, tmp = private_socket_path()
    feed = FrameFeed(path, backlog=opts.backlog, temporary_dir=tmp, say=say)
    if opts.ui_socket is not None:
        say(f"offering the UI on {path} (pptptop --attach {shlex.quote(path)})")
    web = None
    if opts.serve is not None:
        from pptptop.serve import web as webmod

        host, port = opts.serve
        try:
            web = webmod.start(session_command(path, opts.theme), host, port, opts.token)
        except BaseException:
            feed.close()
            raise
        shown = f"[{web.address[0]}]" if ":" in web.address[0] else web.address[0]
        say(f"serving the UI on http://{shown}:{web.address[1]}/" + (" (open it with ?token=TOKEN)" if opts.token
                                                                     else ""))
    return Serving(feed, web)
