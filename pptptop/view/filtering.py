"""The `/` filter of the tunnels table: free text and ``key=value`` terms, all of which must match.

Terms (separated by spaces, case-insensitive)::

    alice              free text: any address, user, host name, interface, phase or id contains it
    user=alice         the user name contains "alice"
    ip=10.0.0.2        client, server or NAT public address starts with it (10.0. works),
    ip=10.0.0.0/24     ... or lies in the network
    phase=auth         the phase is AUTH (ctrl/control, lcp, ncp, data, closed, failed, ...);
                       for a failed tunnel the phase it failed in matches too
    iface=wan0         captured on that interface
    id=12              tunnel 12
    failed             only failed tunnels
    active             only tunnels that have not ended
    diag               only tunnels with a diagnosis

A term may be negated with a leading ``!`` (``!failed``, ``!user=bob``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from pptptop.track.model import Phase
from pptptop.view.snapshot import TunnelRow

#: names people type for phases, beyond the enum values
PHASE_ALIASES: dict[str, Phase] = {
    "ctrl": Phase.CONTROL,
    "control": Phase.CONTROL,
    "tcp": Phase.TCP,
    "call": Phase.CALL,
    "lcp": Phase.LCP,
    "auth": Phase.AUTH,
    "ncp": Phase.NCP,
    "ipcp": Phase.NCP,
    "data": Phase.DATA,
    "up": Phase.DATA,
    "closed": Phase.CLOSED,
    "failed": Phase.FAILED,
    "fail": Phase.FAILED,
}

KEYS = ("user", "ip", "phase", "iface", "id")
WORDS = ("failed", "active", "diag")

Predicate = Callable[[TunnelRow], bool]


class FilterError(ValueError):
    """A filter the user typed that cannot be understood; the message says why in one sentence."""


@lru_cache(maxsize=65536)
def _addr(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def _addresses(r: TunnelRow) -> list[str]:
    out = [r.client_ip, r.server_ip]
    if r.nat is not None:
        out += [x for x in (r.nat.inside.ip, r.nat.outside.ip) if x]
    return out


def _ip_pred(value: str) -> Predicate:
    if "/" in value:
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise FilterError(f"ip={value} is not an address or a network like 10.0.0.0/24") from None

        def in_net(r: TunnelRow) -> bool:
            for a in _addresses(r):
                ad = _addr(a)
                if ad is not None and ad.version == net.version and ad in net:
                    return True
            return False

        return in_net
    return lambda r: any(a.startswith(value) for a in _addresses(r))


def _phase_pred(value: str) -> Predicate:
    phase = PHASE_ALIASES.get(value)
    if phase is None:
        names = ", ".join(sorted(PHASE_ALIASES))
        raise FilterError(f"phase={value} is not a phase; use one of {names}")
    return lambda r: r.phase is phase or r.failed_in is phase


def _haystack(r: TunnelRow) -> str:
    parts = [str(r.id), r.iface, r.phase.value, r.encryption, r.auth_method, *_addresses(r)]
    for x in (r.user, r.client_host, r.server_host, r.failed_in.value if r.failed_in else None):
        if x:
            parts.append(x)
    return "\x00".join(parts).lower()


def _term(term: str) -> Predicate:
    key, sep, value = term.partition("=")
    if not sep:
        if term == "failed":
            return lambda r: r.failed
        if term == "active":
            return lambda r: not r.ended
        if term == "diag":
            return lambda r: bool(r.findings)
        return lambda r: term in _haystack(r)
    if not value:
        raise FilterError(f"{key}= needs a value, e.g. {key}=something")
    if key == "user":
        return lambda r: r.user is not None and value in r.user.lower()
    if key == "ip":
        return _ip_pred(value)
    if key == "phase":
        return _phase_pred(value)
    if key == "iface":
        return lambda r: r.iface.lower() == value
    if key == "id":
        if not value.isdigit():
            raise FilterError(f"id={value} is not a tunnel number")
        n = int(value)
        return lambda r: r.id == n
    raise FilterError(f"unknown filter key {key}=; use {', '.join(k + '=' for k in KEYS)} or free text")


@dataclass(frozen=True, slots=True)
class RowFilter:
    """A parsed filter; ``text`` is what the user typed."""

    text: str
    preds: tuple[Predicate, ...]

    def __call__(self, r: TunnelRow) -> bool:
        return all(p(r) for p in self.preds)

    @property
    def empty(self) -> bool:
        return not self.preds


def _negate(p: Predicate) -> Predicate:
    return lambda r: not p(r)


def parse_filter(text: str) -> RowFilter:
    """Parse what was typed after ``/``; raises :class:`FilterError` with a one-sentence reason."""
    preds: list[Predicate] = []
    for raw in text.lower().split():
        neg = raw.startswith("!")
        term = raw[1:] if neg else raw
        if not term:
            continue
        p = _term(term)
        preds.append(_negate(p) if neg else p)
    return RowFilter(text.strip(), tuple(preds))


NO_FILTER = RowFilter("", ())
