"""``--record-failed DIR``: one pcapng per session that ends failed, with its diagnosis in words.

The "catch the 3 a.m. failure" mode. When the tracker says a tunnel ended
``failed`` (:class:`~pptptop.track.events.EventKind` ``ENDED``), its session
is written a few seconds of capture time later (:data:`LINGER`), so the
packets that follow the end — the TCP FIN, a late Call-Clear-Request, the
RST — are in the file too.

On a NAT gateway a session is seen twice, once per leg, as two tunnels that
:mod:`pptptop.track.nat` joins (``tunnel.nat.peer``, docs/nat.md).
Both legs go into **one** file, each on its own pcapng interface as it was
captured, in capture order. The join may come after a leg failed: the
writer looks for the other leg when the linger time is over, and then waits
for that leg's own linger too (it may end a little later, or not fail at
all); a leg that does not end is waited for at most :data:`LEG_WAIT` more.
A session is written once: a leg already written with its peer is not
written again. It is written at once if the tracker evicts a failed leg,
and everything pending is written when the capture ends.

The pcapng section comment (§4.1 ``opt_comment``) says in sentences which
session failed, where, how it was closed, which legs the file holds and the
diagnosis findings; the packet where a leg ended and each finding's
evidence packets carry an EPB comment (§4.3) as well, so Wireshark shows
them in the packet list (``frame.comment``). Every string from the wire is
escaped with :func:`pptptop.diagnose.text.printable`.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from pptptop.diagnose.finding import Finding, Severity
from pptptop.diagnose.text import printable, quoted
from pptptop.record.export import ExportPacket, collect_packets, nat_peers, write_packets
from pptptop.record.writers import RecordError, describe_os_error
from pptptop.track.events import Event, EventKind
from pptptop.track.model import DATA_RING, HexData, Phase, Tunnel
from pptptop.track.tracker import Tracker

log = logging.getLogger("pptptop.record")

#: seconds of capture time to wait after a tunnel ends before writing it
LINGER: Final = 3.0
#: seconds of capture time, past a failed leg's linger, to wait for the session's other NAT leg to end
LEG_WAIT: Final = 30.0
DIR_MODE: Final = 0o700
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


@dataclass(frozen=True, slots=True)
class FailedState:
    """What ``--record-failed`` did so far, for the header and ``--json``."""

    directory: str
    files: tuple[str, ...]
    pending: int
    errors: int
    last_error: str

    def as_dict(self) -> dict[str, object]:
        return {"directory": self.directory, "files": list(self.files), "pending": self.pending,
                "errors": self.errors, "last_error": self.last_error or None}


@dataclass(slots=True)
class _Pending:
    """A failed tunnel waiting for its linger time, and the other NAT legs of its session seen so far."""

    tunnel: Tunnel
    due: float
    peers: list[Tunnel] = field(default_factory=list)


def _safe(text: str, limit: int = 32) -> str:
    """A file-name fragment from untrusted text (user names come from the wire)."""
    return _UNSAFE.sub("_", text)[:limit].strip("._") or "x"


def _role(t: Tunnel) -> str | None:
    """``inside`` or ``outside`` once NAT correlation decided it (docs/nat.md)."""
    return None if t.nat is None else t.nat.role


def session_legs(t: Tunnel, *peers: Tunnel) -> list[Tunnel]:
    """The legs of one session, inside first (the client's own view), each once."""
    legs: list[Tunnel] = []
    for leg in (t, *peers):
        if all(leg is not x for x in legs):
            legs.append(leg)
    return sorted(legs, key=lambda x: (_role(x) != "inside", x.id))


def _user(legs: Sequence[Tunnel]) -> str | None:
    return next((x.auth.user for x in legs if x.auth.user), None)


def _failed_in(legs: Sequence[Tunnel]) -> Phase | None:
    return next((x.failed_in for x in legs if x.failed_in is not None), None)


def failed_file_name(t: Tunnel, *peers: Tunnel) -> str:
    """``20261123T073238Z-tunnel2+1-lan0+wan0-10.0.0.2-bob-failed-auth.pcapng`` for a session seen on two legs.

    The session's start (UTC), its tunnels and interfaces (inside leg first),
    the client's own address, the user name and the phase it failed in; a
    session seen once gives ``…-tunnel2-lan0-10.0.0.2-bob-failed-auth.pcapng``.
    """
    legs = session_legs(t, *peers)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(min(x.first_seen for x in legs)))
    ifaces = list(dict.fromkeys(_safe(x.iface or "any") for x in legs))
    parts = [stamp, "tunnel" + "+".join(str(x.id) for x in legs), "+".join(ifaces), _safe(legs[0].client.ip)]
    user = _user(legs)
    if user:
        parts.append(_safe(user))
    phase = _failed_in(legs)
    parts.append(f"failed-{phase.value if phase else 'unknown'}")
    return "-".join(parts) + ".pcapng"


# ---------------------------------------------------------------------- sentences
def _findings(t: Tunnel) -> list[Finding]:
    return list(t.findings)


def _sentence(text: str) -> str:
    text = text.rstrip()
    return text if not text or text[-1] in ".!?…" else text + "."


def _werr(f: Finding) -> str:
    return f" (Windows error {f.windows_error})" if f.windows_error else ""


#: how a tunnel was closed (``CloseInfo.how``), with its article: what the sentences say
CLOSED_WITH: Final = {
    "lcp-terminate": "an LCP Terminate-Request", "ccp-terminate": "a CCP Terminate-Request",
    "ipcp-terminate": "an IPCP Terminate-Request", "call-clear": "a Call-Clear-Request",
    "call-disconnect": "a Call-Disconnect-Notify", "stop-control": "a Stop-Control-Connection-Request",
    "tcp-fin": "a TCP FIN", "tcp-rst": "a TCP RST",
    "control-refused": "a Start-Control-Connection-Reply that refused it",
    "call-refused": "a call reply that refused the call",
}


def _action(t: Tunnel) -> str:
    """How a tunnel was closed, as a person says it: ``an LCP Terminate-Request "Authentication failed"``."""
    c = t.close
    if not c.how:
        return ""
    name = CLOSED_WITH.get(c.how) or printable(c.how, 64)
    if c.reason:
        if isinstance(c.reason, HexData):  # a Terminate's data that is not text, in hex
            name += f" carrying {printable(c.reason, 128)}"
        elif c.how.endswith("-terminate"):
            name += f" {quoted(c.reason, 128)}"
        else:
            name += f" ({printable(c.reason, 128)})"
    return name


def _closer(t: Tunnel) -> str:
    by = t.close.by
    return f"the {printable(by, 16)}" if by and by != "unknown" else "someone"


def _leg_text(t: Tunnel) -> str:
    """``tunnel 2 on lan0 (10.0.0.2 port 47958, Call ID 12799)``."""
    where = f" on {printable(t.iface, 64)}" if t.iface else ""
    c = t.client
    port = f" port {c.port}" if c.port is not None else ""
    cid = f", Call ID {c.call_id}" if c.call_id is not None else ""
    return f"tunnel {t.id}{where} ({printable(c.ip, 64)}{port}{cid})"


def _first_error(legs: Sequence[Tunnel]) -> Finding | None:
    return next((f for t in legs for f in _findings(t) if f.severity is Severity.ERROR), None)


def headline(legs: Sequence[Tunnel]) -> str:
    """``pptptop: session 10.0.0.2 → 198.51.100.2 (user "bob") failed in auth: auth-failed (Windows error 691)
    — Authentication failed.``"""
    first = legs[0]
    phase = _failed_in(legs)
    user = _user(legs)
    who = f" (user {quoted(user, 64)})" if user else ""
    text = (f"pptptop: session {printable(first.client.ip, 64)} → {printable(first.server.ip, 64)}{who} "
            f"failed in {phase.value if phase else first.phase.value}")
    err = _first_error(legs)
    if err is not None:
        text += f": {printable(err.code, 64)}{_werr(err)} — {printable(err.title, 160)}"
    return _sentence(text)


def section_comment(legs: Sequence[Tunnel], packets: int) -> str:
    """The file's comment: what failed and why, in sentences, one per line (``capinfos -k`` joins the lines)."""
    lines = [headline(legs)]
    closed = next((t for t in legs if t.close.how), None)
    if closed is None:
        lines.append("No packet closed it: it ended on a timeout or at the end of the capture.")
    else:
        lines.append(f"{_closer(closed).capitalize()} ended it with {_action(closed)}.")
    if len(legs) > 1:
        lines.append("This file holds both legs of the NAT session, each on its own interface: "
                     + "; ".join(f"{_role(t) or 'leg'}, {_leg_text(t)}" for t in legs) + ".")
    else:
        lines.append(f"This file holds one tunnel: {_leg_text(legs[0])}.")
    shown: dict[tuple[str, str, str, int | None, str], list[Tunnel]] = {}
    for t in legs:
        for f in _findings(t):
            shown.setdefault((f.code, f.title, f.detail, f.windows_error, f.hint), []).append(t)
    if shown:
        lines.append("Diagnosis:")
    for (code, title, detail, _w, hint), seen in shown.items():
        f = next(x for x in _findings(seen[0]) if x.code == code and x.detail == detail)
        leg = (f", seen on {printable(seen[0].iface, 64) or 'tunnel ' + str(seen[0].id)}"
               if len(legs) > 1 and len(seen) < len(legs) else "")
        line = (f"- {printable(f.severity.value, 16)} {printable(code, 64)}{leg}: "
                f"{_sentence(printable(title, 160) + _werr(f))}")
        if detail:
            line += " " + _sentence(printable(detail, 600))
        if hint:
            line += " Fix: " + _sentence(printable(hint, 600))
        lines.append(line)
    whose = "each leg's" if len(legs) > 1 else "the tunnel's"
    lines.append(f"Its {packets} packets, in capture order, are what pptptop keeps of a tunnel: {whose} "
                 f"negotiation and control packets, latest keepalives and last {DATA_RING} data "
                 "packets (bare TCP and GRE acknowledgements are not kept).")
    for t in legs:
        if t.packets_dropped:
            lines.append(f"{t.packets_dropped} stored packets of tunnel {t.id} were dropped "
                         "(only its first and last packets are kept).")
    lines.append("Recorded by pptptop --record-failed.")
    return "\n".join(lines)


def _comments(legs: Sequence[Tunnel]) -> dict[int, list[str]]:
    """Frame number -> comments: where each leg was closed, and each finding's evidence."""
    notes: dict[int, list[str]] = {}
    for t in legs:
        c = t.close
        state = f"failed in {t.failed_in.value}" if t.failed_in else f"ended {t.phase.value}"
        where = f"tunnel {t.id}" + (f" on {printable(t.iface, 64)}" if t.iface else "")
        if c.frame is not None and c.how:
            notes.setdefault(c.frame, []).append(
                f"pptptop: here {_closer(t)} closes {where} with {_action(t)}; the session {state}.")
        for f in _findings(t):
            text = (f"pptptop: evidence for {printable(f.code, 64)}"
                    f"{_werr(f)} — {_sentence(printable(f.title, 160))}")
            for n in f.evidence:
                if isinstance(n, int) and text not in notes.get(n, ()):
                    notes.setdefault(n, []).append(text)
    return notes


class FailedRecorder:
    """Subscribes to a tracker; writes one file per failed session into ``directory``.

    :meth:`prepare` before the privilege drop (it may create the directory
    and hand it to the target user), :meth:`attach`, and :meth:`close` at the
    end. Events arrive on the capture thread; files are small and written there.
    Subscribe it after the NAT correlator, so a leg's ``nat`` note is up to date.
    """

    def __init__(self, directory: str | os.PathLike[str], tracker: Tracker, *, linger: float = LINGER,
                 leg_wait: float = LEG_WAIT, on_error: Callable[[str], None] | None = None) -> None:
        self.directory = os.fspath(directory)
        self.tracker = tracker
        self.linger = linger
        self.leg_wait = leg_wait
        self.on_error = on_error
        self._pending: dict[int, _Pending] = {}
        self._done: set[int] = set()
        self.files: list[str] = []
        self.errors = 0
        self.last_error = ""
        self.created_directory = False

    def prepare(self) -> None:
        """Create the directory (0700) if missing; refuse a symbolic link. Raises :class:`RecordError`."""
        d = self.directory
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            try:
                os.makedirs(d, mode=DIR_MODE)
            except OSError as e:
                raise RecordError(d, f"cannot create directory {d}: {describe_os_error(e)}",
                                  e.errno or 0) from e
            self.created_directory = True
            return
        except OSError as e:
            raise RecordError(d, f"cannot use {d}: {describe_os_error(e)}", e.errno or 0) from e
        if stat.S_ISLNK(st.st_mode):
            raise RecordError(d, f"refusing to use {d} for --record-failed: it is a symbolic link",
                              errno.ELOOP)
        if not stat.S_ISDIR(st.st_mode):
            raise RecordError(d, f"--record-failed needs a directory, and {d} is not one", errno.ENOTDIR)

    def chown(self, uid: int, gid: int) -> None:
        """Give a directory we created to the user we are about to become."""
        if self.created_directory:
            os.chown(self.directory, uid, gid, follow_symlinks=False)

    def attach(self) -> None:
        self.tracker.subscribe(self._on_event)

    def state(self) -> FailedState:
        return FailedState(self.directory, tuple(self.files), len(self._pending), self.errors,
                           self.last_error)

    # ------------------------------------------------------------------ events
    def _on_event(self, ev: Event) -> None:
        kind = ev.kind
        if kind is EventKind.ENDED:
            t = ev.tunnel
            if t is not None and t.phase is Phase.FAILED and t.id not in self._done:
                p = self._pending[t.id] = _Pending(t, ev.ts + self.linger)
                self._update_peers(p)
        elif kind is EventKind.TICK:
            if ev.detail.get("final"):
                self.write_pending()
            else:
                self.write_pending(ev.ts)
        elif kind is EventKind.EVICTED and ev.tunnel is not None and ev.tunnel.id in self._pending:
            p = self._pending[ev.tunnel.id]
            self._update_peers(p)
            self._write(p)

    def _update_peers(self, p: _Pending) -> None:
        """Learn the session's other legs from the NAT note; keep a leg the tracker evicted since.

        When the correlator forgets an evicted leg it removes the note from the
        leg that stays, so an evicted peer is kept from what was seen before;
        a peer still tracked but no longer named was split off (docs/nat.md).
        """
        t = p.tunnel
        tunnels = self.tracker.tunnels
        named = [x for x in (tunnels.get(i) for i in nat_peers(t)) if x is not None and x is not t]
        gone = [x for x in p.peers if tunnels.get(x.id) is not x and all(x is not y for y in named)]
        p.peers = named + gone

    def _ready(self, p: _Pending, now: float) -> bool:
        """Whether every leg of ``p``'s session has had its linger time (a leg that goes on: LEG_WAIT)."""
        if now < p.due:
            return False
        for leg in p.peers:
            if leg.id in self._done:
                continue
            other = self._pending.get(leg.id)
            if other is not None:
                if now < other.due:
                    return False
            elif leg.ended:
                end = leg.ended_at
                if now < end + self.linger and now < p.due + self.leg_wait:
                    return False
            elif now < p.due + self.leg_wait:
                return False
        return True

    def write_pending(self, now: float | None = None) -> None:
        """Write the failed sessions whose linger time has passed (all of them when ``now`` is None)."""
        for p in list(self._pending.values()):
            if p.tunnel.id not in self._pending:
                continue  # written with an earlier leg of its session
            self._update_peers(p)
            if now is None or self._ready(p, now):
                self._write(p)

    def close(self) -> None:
        self.write_pending()

    # ------------------------------------------------------------------ writing
    def session(self, t: Tunnel) -> list[Tunnel]:
        """The legs a file for ``t`` holds: ``t`` and its NAT peers not written already, inside first."""
        p = self._pending.get(t.id)
        peers = p.peers if p is not None else [x for x in (self.tracker.tunnels.get(i) for i in nat_peers(t))
                                                 if x is not None]
        return session_legs(t, *(x for x in peers if x.id not in self._done))

    def packets_for(self, legs: Sequence[Tunnel]) -> list[ExportPacket]:
        """Every packet kept for the legs, each frame once, in capture order; the end and the evidence commented."""
        notes = _comments(legs)
        out = []
        for pk in collect_packets(legs):
            c = notes.get(pk.number)
            out.append(ExportPacket(pk.number, pk.ts, pk.iface, pk.linktype, pk.data, "\n".join(c)) if c else pk)
        if out and not any(pk.comment for pk in out):
            last = out[-1]
            out[-1] = ExportPacket(last.number, last.ts, last.iface, last.linktype, last.data, headline(legs))
        return out

    def _write(self, p: _Pending) -> None:
        legs = self.session(p.tunnel)
        for leg in legs:
            self._pending.pop(leg.id, None)
            self._done.add(leg.id)
        name = failed_file_name(*legs)
        path = os.path.join(self.directory, name)
        stem = name[:-len(".pcapng")]
        n = 1
        while os.path.lexists(path):
            n += 1
            path = os.path.join(self.directory, f"{stem}-{n}.pcapng")
        packets = self.packets_for(legs)
        try:
            write_packets(packets, path, comment=section_comment(legs, len(packets)), replace=False)
        except RecordError as e:
            self.errors += 1
            self.last_error = str(e)
            log.error("%s", e)
            if self.on_error is not None:
                self.on_error(str(e))
            return
        self.files.append(path)
        log.info("recorded failed session (tunnel %s) to %s", "+".join(str(x.id) for x in legs), path)
