"""The ``--metrics`` options, apart from the exporter (export/metrics.py) so that a run without them never
loads prometheus_client: it costs ~40 ms and several megabytes of every run's memory."""

from __future__ import annotations

import argparse

DEFAULT_ADDR = "127.0.0.1"
#: tunnels that get their own per-tunnel series; the others are summed into tunnel="other"
TUNNEL_CAP = 500


class MetricsAddressError(ValueError):
    """``--metrics`` was given something that is not ``[ADDR:]PORT``."""


def parse_address(text: str) -> tuple[str, int]:
    """``9180`` → (127.0.0.1, 9180); ``0.0.0.0:9180``; ``[::1]:9180``."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = DEFAULT_ADDR, text
    host = host.strip("[]") or DEFAULT_ADDR
    try:
        n = int(port)
    except ValueError:
        raise MetricsAddressError(f"expected [ADDR:]PORT, not {text!r}") from None
    if not 0 <= n <= 65535:
        raise MetricsAddressError(f"port {n} is out of range (0-65535)")
    return host, n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics",
        metavar="[ADDR:]PORT",
        help="serve Prometheus metrics on http://ADDR:PORT/metrics (ADDR defaults to 127.0.0.1; docs/metrics.md)",
    )
    p.add_argument(
        "--metrics-per-tunnel",
        action="store_true",
        help=f"add series per tunnel (tunnel, user, client, server labels), at most {TUNNEL_CAP} tunnels, "
        "the rest summed as tunnel=\"other\"",
    )
