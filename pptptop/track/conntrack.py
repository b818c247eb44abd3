"""The kernel's view of PPTP NAT: conntrack entries for TCP/1723 and GRE, beside what the wire shows.

On a Linux NAT gateway the ``pptp`` conntrack helper (nf_conntrack_pptp)
watches the control connection and, on Outgoing-Call-Request/Reply (RFC 2637
§2.7-2.8), expects the call's GRE: the GRE entry it creates carries the
call IDs as ``srckey``/``dstkey`` (RFC 2637 §4.1 keys), and nf_nat_pptp
rewrites the PNS Call ID on the way out. One PPTP call therefore appears as

    tcp  src=INSIDE dst=SERVER sport=IN_PORT dport=1723  src=SERVER dst=PUBLIC sport=1723 dport=OUT_PORT  helper=pptp
    gre  src=INSIDE dst=SERVER srckey=IN_CALL dstkey=SRV_CALL  src=SERVER dst=PUBLIC srckey=SRV_CALL dstkey=OUT_CALL

This module reads those entries — over ctnetlink with pyroute2's
:class:`NFCTSocket` (which also gives a GRE entry's master connection), or
by running ``conntrack -L`` when netlink is not available — and compares them
with the mapping pptptop observed (:mod:`pptptop.track.nat`), flagging every
disagreement. It needs Linux and root (CAP_NET_ADMIN).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pptptop.track.events import Event, EventKind
from pptptop.track.model import Direction, Tunnel
from pptptop.track.nat import NatCorrelator
from pptptop.track.notes import ConntrackNote, NatNote
from pptptop.track.tracker import Tracker

PPTP_PORT = 1723
IPPROTO_TCP = 6
IPPROTO_GRE = 47
IPS_HELPER = 1 << 13  # include/uapi/linux/netfilter/nf_conntrack_common.h
TCP_STATES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
              "TIME_WAIT", "CLOSE", "SYN_SENT2")


class ConntrackUnavailable(Exception):
    """The conntrack table cannot be read here; the message says why and what to do, in one sentence."""


@dataclass(frozen=True, slots=True)
class CtTuple:
    """One direction of a conntrack entry. For GRE, ``sport``/``dport`` hold ``srckey``/``dstkey``."""

    src: str
    dst: str
    sport: int | None = None
    dport: int | None = None

    def as_dict(self, gre: bool = False) -> dict[str, Any]:
        if gre:
            return {"src": self.src, "dst": self.dst, "srckey": self.sport, "dstkey": self.dport}
        return {"src": self.src, "dst": self.dst, "sport": self.sport, "dport": self.dport}


@dataclass(frozen=True, slots=True)
class CtEntry:
    """One conntrack entry (``conntrack -L`` line or ctnetlink message)."""

    protocol: int
    orig: CtTuple
    reply: CtTuple
    helper: str | None = None
    master: CtTuple | None = None  # the original tuple of the connection that expected this one
    state: str | None = None
    status: int | None = None
    timeout: int | None = None
    id: int | None = None

    @property
    def is_gre(self) -> bool:
        return self.protocol == IPPROTO_GRE

    @property
    def is_pptp_control(self) -> bool:
        return self.protocol == IPPROTO_TCP and PPTP_PORT in (self.orig.dport, self.orig.sport)

    def as_dict(self) -> dict[str, Any]:
        gre = self.is_gre
        return {"protocol": "gre" if gre else "tcp" if self.protocol == IPPROTO_TCP else self.protocol,
                "orig": self.orig.as_dict(gre), "reply": self.reply.as_dict(gre), "helper": self.helper,
                "state": self.state, "timeout": self.timeout,
                "master": self.master.as_dict() if self.master is not None else None}


# ---------------------------------------------------------------------- reading
_KV = re.compile(r"(\w+)=(\S+)")


def _int(v: str) -> int | None:
    try:
        return int(v, 0)
    except ValueError:
        return None


def parse_conntrack_text(text: str) -> list[CtEntry]:
    """Entries of ``conntrack -L`` output (plain or ``-o extended``); other lines are skipped."""
    out: list[CtEntry] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("conntrack"):
            continue
        if words[0] in ("ipv4", "ipv6") and len(words) > 2:
            words = words[2:]
        if len(words) < 3:
            continue
        proto = _int(words[1])
        if proto is None:
            continue
        timeout = _int(words[2])
        state = words[3] if len(words) > 3 and "=" not in words[3] and not words[3].startswith("[") else None
        tuples: list[dict[str, str]] = [{}, {}]
        extra: dict[str, str] = {}
        side = -1
        for w in words[3:]:
            m = _KV.fullmatch(w)
            if m is None:
                continue
            k, v = m.groups()
            if k == "src":
                side += 1
            if k in ("src", "dst", "sport", "dport", "srckey", "dstkey") and 0 <= side < 2:
                tuples[side].setdefault(k, v)
            else:
                extra.setdefault(k, v)
        if side < 1 or "dst" not in tuples[0] or "dst" not in tuples[1]:
            continue

        def tup(d: dict[str, str]) -> CtTuple:
            sp = d.get("sport", d.get("srckey"))
            dp = d.get("dport", d.get("dstkey"))
            return CtTuple(d["src"], d["dst"], _int(sp) if sp else None, _int(dp) if dp else None)

        out.append(CtEntry(proto, tup(tuples[0]), tup(tuples[1]), extra.get("helper"), None, state, None,
                           timeout, _int(extra["id"]) if "id" in extra else None))
    return out


def _nla(msg: Any, name: str) -> Any:
    try:
        return msg.get_attr(name)
    except (AttributeError, KeyError, TypeError):
        return None


def _nl_tuple(nla: Any) -> CtTuple | None:
    if nla is None:
        return None
    ip, proto = _nla(nla, "CTA_TUPLE_IP"), _nla(nla, "CTA_TUPLE_PROTO")
    if ip is None or proto is None:
        return None
    src = _nla(ip, "CTA_IP_V4_SRC") or _nla(ip, "CTA_IP_V6_SRC")
    dst = _nla(ip, "CTA_IP_V4_DST") or _nla(ip, "CTA_IP_V6_DST")
    if src is None or dst is None:
        return None
    return CtTuple(str(src), str(dst), _nla(proto, "CTA_PROTO_SRC_PORT"), _nla(proto, "CTA_PROTO_DST_PORT"))


def _helper_name(raw: Any) -> str | None:
    """pyroute2 maps the nested CTA_HELP as one string: keep the printable CTA_HELP_NAME in it."""
    if isinstance(raw, bytes):
        raw = raw.decode("latin-1")
    if not isinstance(raw, str):
        return None
    return "".join(ch for ch in raw if ch.isprintable()) or None


def entry_from_netlink(msg: Any) -> CtEntry | None:
    """A :class:`CtEntry` from a pyroute2 ``nfct_msg``; None for what is not an IP conntrack entry."""
    orig, reply = _nl_tuple(_nla(msg, "CTA_TUPLE_ORIG")), _nl_tuple(_nla(msg, "CTA_TUPLE_REPLY"))
    proto_nla = _nla(_nla(msg, "CTA_TUPLE_ORIG"), "CTA_TUPLE_PROTO")
    proto = _nla(proto_nla, "CTA_PROTO_NUM") if proto_nla is not None else None
    if orig is None or reply is None or proto is None:
        return None
    helper = _helper_name(_nla(msg, "CTA_HELP"))
    state = None
    info = _nla(_nla(msg, "CTA_PROTOINFO"), "CTA_PROTOINFO_TCP")
    if info is not None:
        st = _nla(info, "CTA_PROTOINFO_TCP_STATE")
        if isinstance(st, int) and 0 <= st < len(TCP_STATES):
            state = TCP_STATES[st]
    status = _nla(msg, "CTA_STATUS")
    if helper is None and isinstance(status, int) and status & IPS_HELPER and proto == IPPROTO_TCP:
        helper = "(helper)"
    return CtEntry(int(proto), orig, reply, helper, _nl_tuple(_nla(msg, "CTA_TUPLE_MASTER")), state,
                   status if isinstance(status, int) else None, _nla(msg, "CTA_TIMEOUT"), _nla(msg, "CTA_ID"))


def check_available() -> None:
    """Raise :class:`ConntrackUnavailable` unless this is Linux and we are root."""
    if not sys.platform.startswith("linux"):
        raise ConntrackUnavailable("the conntrack table exists only on Linux; --conntrack cannot be used here")
    if os.geteuid() != 0:
        raise ConntrackUnavailable("reading the kernel's conntrack table needs root (CAP_NET_ADMIN): "
                                   "run pptptop with sudo, or leave out --conntrack")


def _read_netlink(netns: str | None) -> list[CtEntry]:
    from pyroute2 import NFCTSocket

    out: list[CtEntry] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        kwargs: dict[str, Any] = {"netns": netns} if netns else {}
        sock = NFCTSocket(nfgen_family=family, **kwargs)
        try:
            for msg in sock.dump():
                e = entry_from_netlink(msg)
                if e is not None:
                    out.append(e)
        finally:
            sock.close()
    return out


def _read_tool(netns: str | None) -> list[CtEntry]:
    tool = shutil.which("conntrack")
    if tool is None:
        raise ConntrackUnavailable("neither ctnetlink (pyroute2) nor the conntrack tool works here: "
                                   "install conntrack (apt-get install conntrack)")
    prefix = ["ip", "netns", "exec", netns] if netns else []
    out: list[CtEntry] = []
    for fam in ("ipv4", "ipv6"):
        r = subprocess.run([*prefix, tool, "-L", "-f", fam], capture_output=True, text=True, timeout=10,
                           check=False)
        if r.returncode != 0:
            msg = (r.stderr.strip().splitlines() or ["conntrack -L failed"])[-1]
            raise ConntrackUnavailable(f"conntrack -L failed: {msg}")
        out.extend(parse_conntrack_text(r.stdout))
    return out


def read_table(netns: str | None = None, *, method: str = "auto") -> tuple[list[CtEntry], str]:
    """The kernel's conntrack entries and how they were read (``"netlink"`` or ``"conntrack-tool"``).

    ``method`` is ``"auto"`` (netlink, then the tool), ``"netlink"`` or ``"tool"``. ``netns`` names a
    network namespace (``ip netns``) to read instead of the current one.
    """
    check_available()
    if method in ("auto", "netlink"):
        try:
            return _read_netlink(netns), "netlink"
        except ConntrackUnavailable:
            raise
        except Exception as e:  # pyroute2 raises many kinds; fall back to the tool
            if method == "netlink":
                raise ConntrackUnavailable(f"ctnetlink dump failed: {e}") from e
    return _read_tool(netns), "conntrack-tool"


# ---------------------------------------------------------------------- comparing
def _gre_oriented(g: CtEntry, tcp: CtEntry) -> CtEntry:
    """A GRE entry turned so that ``orig`` runs client → server like its control connection.

    The helper expects GRE both ways; if the server's GRE arrived first, the entry's original direction
    is server → gateway.
    """
    if g.orig.src == tcp.orig.src or g.reply.src != tcp.orig.src:
        return g
    return CtEntry(g.protocol, g.reply, g.orig, g.helper, g.master, g.state, g.status, g.timeout, g.id)


def _gre_of(tcp: CtEntry, entries: Iterable[CtEntry]) -> list[CtEntry]:
    out = []
    for e in entries:
        if not e.is_gre:
            continue
        if e.master is not None:
            if e.master == tcp.orig:
                out.append(_gre_oriented(e, tcp))
            continue
        g = _gre_oriented(e, tcp)
        if g.orig.src == tcp.orig.src and g.orig.dst == tcp.orig.dst and g.reply.dst == tcp.reply.dst:
            out.append(g)
    return out


def _observed(t: Tunnel, nat: NatNote | None) -> dict[str, dict[str, Any]]:
    """What the wire shows for ``t``: inside/outside/server endpoints (one of the first two may be unknown)."""
    if nat is not None:
        return {"inside": nat.inside.as_dict(), "outside": nat.outside.as_dict(), "server": nat.server.as_dict()}
    ep = {"ip": t.client.ip, "port": t.client.port, "call_id": t.client.call_id}
    return {"client": ep, "server": {"ip": t.server.ip, "port": t.server.port, "call_id": t.server.call_id}}


def find_control_entry(obs: dict[str, dict[str, Any]], entries: Iterable[CtEntry]) -> tuple[CtEntry, str] | None:
    """The TCP/1723 entry of an observed session and the side that matched (``inside`` or ``outside``).

    The inside endpoint is the entry's original source, the outside one its reply destination; a
    single leg (``client``) may be either.
    """
    srv = obs["server"]
    for e in entries:
        if not e.is_pptp_control or e.orig.dst != srv["ip"] or e.orig.dport != srv["port"]:
            continue
        for name in ("inside", "client"):
            ep = obs.get(name)
            if ep is not None and (e.orig.src, e.orig.sport) == (ep["ip"], ep["port"]):
                return e, "inside"
        for name in ("outside", "client"):
            ep = obs.get(name)
            if ep is not None and (e.reply.dst, e.reply.dport) == (ep["ip"], ep["port"]):
                return e, "outside"
    return None


def compare(t: Tunnel, nat: NatNote | None, entries: list[CtEntry],
            peer: Tunnel | None = None) -> dict[str, Any]:
    """The kernel's entries for ``t``'s session beside the observed mapping, with every disagreement.

    ``nat`` is ``t.nat`` and ``peer`` the other leg (both legs known), or None (one leg: the
    kernel fills in the other side). Server → client GRE seen on the outside with a key the kernel has
    no entry for is flagged as ``gre-key-unknown``.
    """
    obs = _observed(t, nat)
    dis: list[dict[str, Any]] = []
    result: dict[str, Any] = {"tcp": None, "gre": None, "kernel": None, "matched": None, "agrees": False,
                              "disagreements": dis}
    found = find_control_entry(obs, entries)
    if found is None:
        if not t.ended:
            dis.append({"code": "no-tcp-entry", "text": "the kernel tracks no TCP/1723 connection for this "
                        "session: it does not pass through this host's netfilter, or the entry expired"})
        return result
    tcp, side = found
    if "client" in obs:
        obs = {side: obs["client"], "server": obs["server"]}
        outside_leg = t if side == "outside" else None
    else:
        outside_leg = (peer if nat is not None and nat.role == "inside" else t)
    result["tcp"] = tcp.as_dict()
    result["matched"] = side
    if not (tcp.helper and ("pptp" in tcp.helper or tcp.helper == "(helper)")):
        dis.append({"code": "helper-missing", "text": "the control connection has no pptp conntrack helper: "
                    "GRE is not expected and Call IDs are not translated (automatic helper assignment is off "
                    "since Linux 6.0; add an nftables 'ct helper set' or iptables '-j CT --helper pptp' rule)"})
    server_cid = obs["server"].get("call_id")
    want_in = (obs.get("inside") or {}).get("call_id")
    want_out = (obs.get("outside") or {}).get("call_id")
    gres = _gre_of(tcp, entries)
    gre = next((g for g in gres if g.orig.dport == server_cid and want_in in (None, g.orig.sport)), None) or \
        next((g for g in gres if server_cid is not None and g.orig.dport == server_cid), None)
    kernel = {
        "inside": {"ip": tcp.orig.src, "port": tcp.orig.sport, "call_id": gre.orig.sport if gre else None},
        "outside": {"ip": tcp.reply.dst, "port": tcp.reply.dport, "call_id": gre.reply.dport if gre else None},
        "server": {"ip": tcp.orig.dst, "port": tcp.orig.dport, "call_id": gre.orig.dport if gre else None},
    }
    result["kernel"] = kernel
    if gre is not None:
        result["gre"] = gre.as_dict()
    legs = [x for x in (t, peer) if x is not None]
    if gre is None and any(p.packets for x in legs for p in x.traffic):
        down = outside_leg.traffic[Direction.TO_CLIENT].packets if outside_leg is not None else 0
        if down and want_out is not None and want_out not in {g.reply.dport for g in gres}:
            dis.append({"code": "gre-key-unknown", "text": f"GRE from the server arrived with key {want_out} "
                        "and the kernel has no GRE entry for that key: the gateway cannot deliver it"})
        else:
            dis.append({"code": "no-gre-entry", "text": "GRE flows on the wire but the kernel has no GRE entry "
                        "with this call's keys (no expectation from the pptp helper)"})
    for name in ("inside", "outside", "server"):
        ob = obs.get(name)
        if ob is None:
            continue
        for k in ("ip", "port", "call_id"):
            ov, kv = ob.get(k), kernel[name][k]
            if ov is not None and kv is not None and ov != kv:
                dis.append({"code": "mismatch", "text": f"{name} {k}: observed {ov}, kernel {kv}",
                            "field": f"{name}.{k}", "observed": ov, "kernel": kv})
    result["agrees"] = not dis
    return result


def kernel_pptp_sessions(entries: list[CtEntry]) -> list[dict[str, Any]]:
    """Every PPTP control connection the kernel tracks, with its GRE entries (the kernel-only view)."""
    out = []
    for tcp in entries:
        if not tcp.is_pptp_control:
            continue
        gres = _gre_of(tcp, entries)
        out.append({"tcp": tcp.as_dict(), "gre": [g.as_dict() for g in gres],
                    "inside": {"ip": tcp.orig.src, "port": tcp.orig.sport},
                    "outside": {"ip": tcp.reply.dst, "port": tcp.reply.dport},
                    "server": {"ip": tcp.orig.dst, "port": tcp.orig.dport},
                    "calls": [{"inside_call_id": g.orig.sport, "outside_call_id": g.reply.dport,
                               "server_call_id": g.orig.dport} for g in gres]})
    return out


Reader = Callable[[], tuple[list[CtEntry], str]]


class ConntrackMonitor:
    """Polls the conntrack table in a thread and annotates tunnels with the kernel's view.

    Annotation runs in the tracker's thread (it subscribes to the tracker): on each TICK after a new
    snapshot, and when a tunnel ends. ``tunnel.conntrack`` keeps the last entries that matched,
    marked ``stale`` once the kernel has dropped them.
    """

    def __init__(self, tracker: Tracker, nat: NatCorrelator | None = None, *, netns: str | None = None,
                 interval: float = 1.0, method: str = "auto", reader: Reader | None = None) -> None:
        self.tracker = tracker
        self.nat = nat
        self.interval = interval
        self.entries: list[CtEntry] = []
        self.method = ""
        self.error: str | None = None
        self.snapshots = 0
        self.updated: float | None = None
        self._reader: Reader = reader or (lambda: read_table(netns, method=method))
        self._seen_snapshot = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        tracker.subscribe(self)

    def poll(self) -> None:
        """Read the table once (errors are kept in :attr:`error`, never raised)."""
        try:
            entries, method = self._reader()
        except ConntrackUnavailable as e:
            self.error = str(e)
            return
        except Exception as e:  # a netlink hiccup must not stop the capture
            self.error = f"reading conntrack failed: {e}"
            return
        self.entries, self.method, self.error = entries, method, None
        self.updated = time.time()
        self.snapshots += 1

    def start(self) -> None:
        """First read now (so a permission problem shows at once), then every ``interval`` seconds."""
        self.poll()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pptptop-conntrack", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    # ------------------------------------------------------------------ views
    def view(self, t: Tunnel) -> ConntrackNote:
        """The kernel's view of ``t``'s session (also stored in ``t.conntrack``)."""
        nat = self.nat.view(t) if self.nat is not None else None
        peer = self.nat.peer(t) if self.nat is not None else None
        v = compare(t, nat, self.entries, peer)
        prev = t.conntrack
        if v["tcp"] is None and prev is not None and prev.source is not None:
            if not prev.stale:
                prev = t.conntrack = ConntrackNote(prev.agrees, True, prev.source, {**prev.view, "stale": True})
            return prev
        v["stale"] = False
        v["method"] = self.method
        v["snapshot_time"] = self.updated
        if self.error:
            v["error"] = self.error
        tcp = v["tcp"]
        source = None if tcp is None else (tcp["orig"]["src"], tcp["orig"]["sport"])
        note = ConntrackNote(bool(v["agrees"]), False, source, v)
        t.conntrack = note
        return note

    def summary(self) -> dict[str, Any]:
        """For ``--json``: how the table was read, and PPTP sessions the kernel has that the wire did not show."""
        seen = {t.conntrack.source for t in self.tracker.tunnels.values()
                if t.conntrack is not None and t.conntrack.source is not None}
        sessions = kernel_pptp_sessions(self.entries)
        return {"method": self.method, "error": self.error, "snapshots": self.snapshots,
                "snapshot_time": self.updated, "entries": len(self.entries),
                "pptp_sessions": len(sessions),
                "kernel_only": [s for s in sessions
                                if (s["inside"]["ip"], s["inside"]["port"]) not in seen]}

    def __call__(self, ev: Event) -> None:
        if ev.kind is EventKind.ENDED and ev.tunnel is not None and self.snapshots:
            self.view(ev.tunnel)
        elif ev.kind is EventKind.TICK and self.snapshots != self._seen_snapshot:
            self._seen_snapshot = self.snapshots
            for t in list(self.tracker.tunnels.values()):
                if not t.ended and (t.control_seen or t.client.call_id is not None):
                    self.view(t)
