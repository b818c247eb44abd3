"""``--serve [ADDR:]PORT``: the Textual UI in a browser through textual-serve, behind an optional token.

textual-serve starts one process per browser session (here ``pptptop
--attach SOCKET``, which reads the service's UI socket: one capture however
many tabs) and relays its terminal over a websocket. Its aiohttp application
gets a middleware here: with a token, every request (page, static files,
websocket) must carry it, as ``?token=`` on the first page (answered with a
cookie holding a digest of it, and a redirect that takes the token out of the
address bar) or as that cookie; comparisons are constant-time
(:func:`hmac.compare_digest`); anything else gets 403. A websocket from
another origin gets 403 too. Access logging is off: the token would be in it.
The page's URLs are built from the request's own host, so the page works
through an SSH tunnel or a proxy on another port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import WSCloseCode, web
from textual_serve.app_service import AppService
from textual_serve.server import Server

log = logging.getLogger("pptptop.serve")

COOKIE: Final = "pptptop_serve"
#: what the cookie holds is derived from the token, so the cookie is not the token itself
_COOKIE_SALT: Final = b"pptptop --serve cookie"


class ServeError(Exception):
    """The web server cannot start: one sentence for the user."""


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), _COOKIE_SALT, hashlib.sha256).hexdigest()


class _Server(Server):
    """textual-serve's server with the token check and URLs from the request."""

    def __init__(self, command: str, host: str, port: int, title: str, token: str | None) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self.token = token
        self.cookie = cookie_value(token) if token else None
        self.sockets: set[web.WebSocketResponse] = set()  # the sessions' websockets, closed at shutdown

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="pptptop: a page from another origin may not use this UI\n")
        if self.token is None or self.cookie is None:
            return await handler(request)
        given = request.query.get("token")
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            # the cookie is set and the token leaves the address bar (and the browser's history)
            query = {k: v for k, v in request.query.items() if k != "token"}
            target = request.rel_url.with_query(query)
            response = web.HTTPSeeOther(str(target))
            response.set_cookie(COOKIE, self.cookie, httponly=True, samesite="Strict", path="/")
            raise response
        held = request.cookies.get(COOKIE, "")
        if hmac.compare_digest(held.encode(), self.cookie.encode()):
            return await handler(request)
        raise web.HTTPForbidden(text="pptptop: this UI needs its token: open /?token=TOKEN\n")

    async def on_startup(self, app: web.Application) -> None:
        """Nothing on standard output (textual-serve prints its logo): the CLI says where it serves."""

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's session (its ``handle_websocket``), with the websocket known to :meth:`on_shutdown`."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = _int(request.query.get("width", "80"), 80)
        height = _int(request.query.get("height", "24"), 24)
        service: AppService | None = None
        self.sockets.add(websocket)
        try:
            await websocket.prepare(request)

            async def close() -> None:
                await websocket.close()

            service = AppService(self.command, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                                 close=close, download_manager=self.download_manager, debug=False)
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as e:  # a session's failure is that session's: logged, the server goes on
            log.warning("a browser session failed: %s", type(e).__name__)
        finally:
            self.sockets.discard(websocket)
            if service is not None:
                await service.stop()
        return websocket

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every session's websocket: textual-serve then asks its process to quit and waits for it."""
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"pptptop is stopping")

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        base = f"{request.scheme}://{request.host}"
        ws = ("wss" if request.scheme == "https" else "ws") + base[len(request.scheme):]
        router = request.app.router
        return {
            "font_size": _int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": ws + str(router["websocket"].url_for()),
            "config": {"static": {"url": base + str(router["static"].url_for(filename="/")).rstrip("/") + "/"}},
            "application": {"name": self.title},
        }


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


class WebUi:
    """textual-serve in a thread of its own with its own event loop; listening from :func:`start`."""

    def __init__(self, server: _Server, loop: asyncio.AbstractEventLoop, runner: web.AppRunner,
                 address: tuple[str, int]) -> None:
        self.server = server
        self.loop = loop
        self.runner = runner
        self.address = address
        self._thread = threading.Thread(target=loop.run_forever, name="pptptop-serve", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving: the sessions' processes are ended, the port is closed."""
        if not self._thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
        with contextlib.suppress(Exception):
            fut.result(timeout=5.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=2.0)
        # the loop is left stopped, not closed: a session's process reaped after this (it has just been told
        # to quit) is reported to the loop by asyncio's child watcher, which complains about a closed one


def start(command: str, host: str, port: int, token: str | None, title: str = "pptptop") -> WebUi:
    """Listen on ``host:port`` now (a refusal is raised here, as :class:`ServeError`), then serve in a thread."""
    server = _Server(command, host, port, title, token)
    loop = asyncio.new_event_loop()
    try:
        app = loop.run_until_complete(server._make_app())
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, host, port)
        try:
            loop.run_until_complete(site.start())
        except OSError as e:
            loop.run_until_complete(runner.cleanup())
            raise ServeError(f"--serve: cannot listen on {host}:{port}: {e.strerror or e}") from None
        bound = runner.addresses[0][:2] if runner.addresses else (host, port)
    except BaseException:
        loop.close()
        raise
    return WebUi(server, loop, runner, (str(bound[0]), int(bound[1])))
