"""The options of the browser UI and the UI socket, their checks, and the token's reading (docs/fleet.md)."""

from __future__ import annotations

import argparse
import ipaddress

from pptptop.export.metrics_options import MetricsAddressError, parse_address
from pptptop.serve import ServeOptions
from pptptop.serve.feed import BACKLOG_BYTES


class TokenError(Exception):
    """The token file cannot be read, or holds no token: one sentence."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the UI in a browser, and attached to a running pptptop")
    g.add_argument("--serve", metavar="[ADDR:]PORT",
                   help="serve the UI in a browser (textual-serve) on ADDR (default 127.0.0.1); every browser "
                   "tab attaches to this run's one capture and cannot stop it; implies --headless")
    g.add_argument("--serve-token", metavar="TOKEN",
                   help="the token a browser must give (http://HOST:PORT/?token=TOKEN); required when "
                   "--serve binds to an address other than loopback")
    g.add_argument("--serve-token-file", metavar="FILE",
                   help="read the token from FILE (its first line), out of sight of ps")
    g.add_argument("--ui-socket", metavar="PATH",
                   help="offer this run's frames on a Unix socket (mode 0600) for pptptop --attach PATH")
    g.add_argument("--ui-backlog", type=int, default=BACKLOG_BYTES >> 20, metavar="MB",
                   help="MiB of recent frames an attached UI starts from (default %(default)s)")
    g.add_argument("--attach", metavar="SOCKET",
                   help="open the UI on a running pptptop's --ui-socket (read-only: the capture stays the "
                   "service's)")


def usage_error(args: argparse.Namespace) -> str | None:
    """One sentence about these options that cannot work, or None."""
    offers = args.serve is not None or args.ui_socket is not None
    if args.attach is not None:
        if args.interfaces or args.iface_opt or args.read or args.demo:
            return "--attach reads a running pptptop's frames: give it without interfaces, -r FILE or --demo"
        if offers:
            return "--attach opens a view of another pptptop: it cannot offer --serve or --ui-socket itself"
    if args.serve_token is not None and args.serve_token_file is not None:
        return "give the token once: --serve-token or --serve-token-file"
    token = args.serve_token is not None or args.serve_token_file is not None
    if token and args.serve is None:
        return "--serve-token and --serve-token-file guard --serve: give --serve [ADDR:]PORT too"
    if args.serve_token is not None and not args.serve_token.strip():
        return "--serve-token is empty"
    if args.serve is not None:
        try:
            host, _ = parse_address(args.serve)
        except MetricsAddressError as e:
            return f"--serve: {e}"
        if not is_loopback(host) and not token:
            return (f"--serve {args.serve} is reachable from other machines: give --serve-token TOKEN or "
                    "--serve-token-file FILE (or serve on 127.0.0.1 and use an SSH tunnel)")
    if args.ui_backlog < 1:
        return f"--ui-backlog must be at least 1 MiB, not {args.ui_backlog}"
    if args.ui_backlog != BACKLOG_BYTES >> 20 and not offers:
        return "--ui-backlog sizes what --serve and --ui-socket offer: give one of them too"
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serving(args: argparse.Namespace, theme: str) -> ServeOptions | None:
    """The checked options, the token read; None when nothing is offered. Raises :class:`TokenError`."""
    if args.serve is None and args.ui_socket is None:
        return None
    token = args.serve_token.strip() if args.serve_token is not None else None
    if args.serve_token_file is not None:
        token = read_token(args.serve_token_file)
    return ServeOptions(serve=parse_address(args.serve) if args.serve is not None else None, token=token,
                        ui_socket=args.ui_socket, backlog=args.ui_backlog << 20, theme=theme)


def read_token(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline(4096).strip()
    except OSError as e:
        raise TokenError(f"--serve-token-file: cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise TokenError(f"--serve-token-file: {path} is not text") from None
    if not line:
        raise TokenError(f"--serve-token-file: {path} holds no token (its first line is empty)")
    return line
