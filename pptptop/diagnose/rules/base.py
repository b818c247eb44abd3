"""The rule contract: one small function per cause.

A rule looks at a :class:`Case` (one tunnel, its observations, the config and
the capture time) and returns a :class:`Hit` when its cause is proven now, or
None, or :func:`quiet` when only certain kinds of event can prove it later.
The engine turns hits into :class:`~pptptop.diagnose.finding.Finding`s, keeps
the time a finding first appeared, and withdraws a finding as soon as its
rule stops returning a hit (later packets contradicted it).

Adding a rule::

    @rule("my-code", Severity.WARNING, windows_error=None)
    def my_code(c: Case) -> Hit | None:
        ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from pptptop.diagnose.config import DiagnosisConfig
from pptptop.diagnose.finding import Severity
from pptptop.diagnose.observe import CATEGORIES, Observations, Ref, Term
from pptptop.diagnose.text import quoted
from pptptop.track.model import HexData, Tunnel


@dataclass(frozen=True, slots=True)
class Collision:
    """Another live tunnel from the same public address to the same server with the same PNS call ID."""

    tunnel: Tunnel
    obs: Observations


@dataclass(slots=True)
class Case:
    """What a rule sees: one tunnel at capture time ``now``."""

    tunnel: Tunnel
    obs: Observations
    cfg: DiagnosisConfig
    now: float
    show_secrets: bool = False
    collisions: list[Collision] = field(default_factory=list)
    #: GRE call IDs seen between the tunnel's two addresses that belong to no known call
    stray_call_ids: list[tuple[int, Ref]] = field(default_factory=list)
    #: the input has ended (the end of a file, or a live capture stopped): decide from what was seen
    final: bool = False


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule's verdict; ``windows_error`` None keeps the rule's default. ``provisional``: the timeout that
    decides it has not expired yet (see Finding)."""

    title: str
    detail: str
    evidence: list[int]
    hint: str = ""
    windows_error: int | None = None
    provisional: bool = False


@dataclass(frozen=True, slots=True)
class Quiet:
    """A rule's "no" that stays "no" until an event of one of the ``wake`` categories
    (:data:`~pptptop.diagnose.observe.CATEGORIES`) reaches the tunnel: neither capture time nor
    counters that move without events (GRE data) can change it, nor any other kind of event.

    ``until``: a timeout can turn the "no" into a hit at this capture time, not before (what moves
    without events may only delay it). The engine then leaves the rule out of the tunnel's
    evaluations until such an event comes or the capture time reaches ``until`` (an event of no
    category wakes every rule, and a full evaluation runs every rule). A timed rule that answers
    "no" at every event of a healthy tunnel costs nothing per event this way. Answer it only when
    every fact behind the "no" is filed by those categories' events (observe.py): the engine's
    equality with the exhaustive evaluation is checked on every test capture.
    """

    wake: frozenset[str]
    until: float = math.inf


def quiet(*wake: str, until: float = math.inf) -> Quiet:
    """The :class:`Quiet` answer that wakes on ``wake`` or at capture time ``until`` (one shared instance
    per set of categories when there is no ``until``)."""
    key = frozenset(wake)
    if until != math.inf:
        return Quiet(key, until)
    if not key <= CATEGORIES:
        raise ValueError(f"quiet({', '.join(wake)}): not event categories")
    return _QUIET.setdefault(key, Quiet(key))


_QUIET: dict[frozenset[str], Quiet] = {}
#: "no" for good: what it rests on only ever grows (an LCP answer seen, IPCP opened); an event of no
#: category (ROLES: the sides swapped) and full evaluations still run the rule
NEVER = quiet()

RuleFn = Callable[[Case], "Hit | Quiet | None"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered rule.

    ``timed``: its verdict can change with capture time alone (a timeout) or
    with counters that move without events (GRE sequence numbers), so it is
    also run on TICK. ``fallback``: shown only when no other error explains
    the tunnel. ``unless``: hidden while any of these codes is present.
    ``on``: the kinds of event (:data:`~pptptop.diagnose.observe.CATEGORIES`)
    that can change its verdict, when it reads only what those events bring;
    None (the default, and always for a timed rule) runs it after every event.
    """

    code: str
    severity: Severity
    fn: RuleFn
    windows_error: int | None = None
    timed: bool = False
    fallback: bool = False
    unless: frozenset[str] = frozenset()
    on: frozenset[str] | None = None


RULES: list[Rule] = []


def rule(code: str, severity: Severity, *, windows_error: int | None = None, timed: bool = False,
         fallback: bool = False, unless: Iterable[str] = (), on: Iterable[str] | None = None,
         ) -> Callable[[RuleFn], RuleFn]:
    """Register ``fn`` as the rule for ``code``."""
    kinds = None if on is None else frozenset(on)
    if kinds is not None and (timed or not kinds <= CATEGORIES):
        raise ValueError(f"rule {code!r}: 'on' names event categories ({', '.join(sorted(CATEGORIES))}) "
                         "and a timed rule runs after every event")

    def register(fn: RuleFn) -> RuleFn:
        if any(r.code == code for r in RULES):
            raise ValueError(f"rule {code!r} registered twice")
        RULES.append(Rule(code, severity, fn, windows_error, timed, fallback, frozenset(unless), kinds))
        return fn

    return register


def frames(*items: Ref | Iterable[Ref] | None) -> list[int]:
    """Sorted, distinct frame numbers of the packets given (refs, lists of refs, or None)."""
    out: set[int] = set()
    for item in items:
        if item is None:
            continue
        refs = [item] if isinstance(item, Ref) else item
        for r in refs:
            if r is not None and r.frame is not None:
                out.add(r.frame)
    return sorted(out)


X = TypeVar("X")


def few(items: list[X], n: int = 3) -> list[X]:
    """The first and last ``n`` of a long list: enough evidence, not a flood."""
    return items if len(items) <= 2 * n else [*items[:n], *items[-n:]]


def seconds(a: float, b: float) -> str:
    return f"{abs(b - a):.1f} s"


def wire(s: str | None, limit: int = 120) -> str:
    """A wire string quoted in a finding's detail, ``'bob'``: escaped once by
    :func:`~pptptop.diagnose.text.printable`, cut to ``limit``.

    Findings are text for people, and this is where their wire strings are
    escaped (``repr`` of escaped text doubled every backslash: ``\\x1b``).
    """
    return quoted(s, limit, "'") if s else "''"


def said(reason: str) -> str:
    """What a Terminate-Request said, for a detail: its text quoted (``'User request'``), or, when its data
    is not text, the octets in hex as they are (``data 00 00 00 03 … (8 octets, not text)``)."""
    return reason if isinstance(reason, HexData) else wire(reason)


#: how a terminating action (observe.Term.how) is named in a detail
ACTIONS = {"lcp-terminate": "LCP Terminate-Request", "ccp-terminate": "CCP Terminate-Request",
           "ipcp-terminate": "IPCP Terminate-Request", "call-clear": "Call-Clear-Request",
           "call-disconnect": "Call-Disconnect-Notify", "stop-control": "Stop-Control-Connection-Request",
           "tcp-fin": "TCP FIN", "tcp-rst": "TCP RST"}


def action(t: Term) -> str:
    """A terminating action for a detail: ``LCP Terminate-Request 'peer refused to authenticate'``,
    ``TCP FIN``."""
    name = ACTIONS.get(t.how, t.how)
    return f"{name} {said(t.reason)}" if t.reason and t.how.endswith("-terminate") else name
