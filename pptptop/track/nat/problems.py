"""NAT problems seen on the wire: Call ID collisions, GRE one way or lost in the gateway, a leg alone or silent.

Each has a stable code (:class:`NatProblemCode`, docs/nat.md); a problem is reported once per leg
(``Leg.flagged``) into both legs' ``tunnel.nat_problems`` and to the subscribers.
"""

from __future__ import annotations

from collections.abc import Callable

from pptptop.track.events import Event
from pptptop.track.model import PHASE_ORDER, Direction, Phase
from pptptop.track.nat.legs import Leg, NatLimits, Pair, Role
from pptptop.track.notes import NatProblem, NatProblemCode

ProblemCallback = Callable[[NatProblem], None]


class ProblemFinder:
    """The checks behind :class:`NatProblemCode`, over the correlator's legs (it owns them and calls in)."""

    def __init__(self, legs: dict[int, Leg], limits: NatLimits) -> None:
        self.legs = legs
        self.limits = limits
        self.problems: list[NatProblem] = []
        self.max_problems = 4096
        self.callbacks: list[ProblemCallback] = []
        self.ifaces: set[str] = set()  # every interface a leg was seen on
        self.crossing: dict[str, set[str]] = {}  # server -> interfaces its joined sessions were seen on
        self._callids: dict[tuple[str, str, str, int], int] = {}

    def joined(self, pair: Pair) -> None:
        """A session crosses the gateway: its server is reached through both legs' interfaces."""
        self.crossing.setdefault(pair.a.tunnel.server.ip, set()).update((pair.a.tunnel.iface, pair.b.tunnel.iface))

    def release(self, leg: Leg) -> None:
        """``leg`` ended or was forgotten: its Call IDs are free again."""
        for key in leg.collision_keys:
            if self._callids.get(key) == leg.tunnel.id:
                del self._callids[key]

    def report(self, p: NatProblem, legs: list[Leg]) -> None:
        if len(self.problems) < self.max_problems:
            self.problems.append(p)
        for leg in legs:
            if len(leg.tunnel.nat_problems) < 32:
                leg.tunnel.nat_problems = (*leg.tunnel.nat_problems, p)
            leg.tunnel.changed = True
        for cb in self.callbacks:
            cb(p)

    def check_collision(self, leg: Leg, ev: Event) -> None:
        """Two live control connections from one address to one server, one PNS Call ID (RFC 2637 §4.1)."""
        t = leg.tunnel
        cid = t.client.call_id
        if cid is None:
            return
        key = (t.iface, t.client.ip, t.server.ip, cid)
        if key in leg.collision_keys:
            return
        leg.collision_keys.append(key)
        owner = self._callids.get(key)
        if owner is None or owner == t.id:
            self._callids[key] = t.id
            return
        other = self.legs.get(owner)
        ot = other.tunnel if other is not None else None
        if other is None or ot is None or ot.ended or (ot.client.port == t.client.port):
            self._callids[key] = t.id
            return
        insides = []
        for lg in (other, leg):
            peer = lg.pair.other(lg).tunnel if lg.pair is not None else None
            if peer is not None and peer.client.ip != lg.tunnel.client.ip:
                insides.append(f"{peer.client.ip} call {peer.client.call_id}")
        text = (f"two control connections from {t.client.ip} (ports {ot.client.port} and {t.client.port}) to "
                f"{t.server.ip} both use Call ID {cid}: the server's GRE for Call ID {cid} cannot be told "
                "apart. "
                "The NAT in front of these clients does not rewrite PPTP Call IDs, so only one client "
                "behind it can connect at a time")
        if insides:
            text += f" (inside: {', '.join(insides)})"
        self.report(NatProblem(NatProblemCode.CALL_ID_COLLISION, ev.ts, ev.frame, (ot.id, t.id), text, {
            "address": t.client.ip, "server": t.server.ip, "call_id": cid, "interface": t.iface,
            "ports": [ot.client.port, t.client.port]}), [other, leg])

    def icmp(self, leg: Leg, ev: Event) -> None:
        """ICMP protocol-unreachable quoting GRE (RFC 792 type 3 code 2; RFC 4443 §3.4 type 4 code 1)."""
        det = ev.detail
        itype, code, inner = det.get("type"), det.get("code"), det.get("inner_protocol")
        src = str(det.get("from", ""))
        v6 = ":" in src
        if inner != 47 or not ((not v6 and itype == 3 and code == 2) or (v6 and itype == 4 and code == 1)):
            return
        if det.get("late"):
            return  # late GRE racing an orderly teardown (track.icmp.late): normal, not a NAT problem
        if leg.has(f"icmp:{src}"):
            return
        leg.flag(f"icmp:{src}")
        t = leg.tunnel
        pair = leg.pair
        peer = pair.other(leg) if pair is not None else None
        public = (peer.tunnel.client.ip if pair is not None and peer is not None and pair.role(leg) is not Role.OUTSIDE
                  else t.client.ip)
        by_gateway = peer is not None and src == public
        if by_gateway:
            text = (f"the NAT gateway ({src}) itself answered the server's GRE with ICMP "
                    "protocol-unreachable: no conntrack expectation matched it, so the gateway took it for "
                    "itself (GRE dropped in its forward path, or no pptp helper assigned to TCP 1723)")
        elif src == public:
            text = (f"{src}, the client's address as the server sees it, answered GRE with ICMP "
                    "protocol-unreachable: nothing there accepts GRE (a NAT whose pptp helper had no "
                    "expectation for it, or no PPTP client running)")
        else:
            text = f"{src} answered GRE with ICMP protocol-unreachable: it does not forward or accept GRE"
        legs = [leg] + ([peer] if peer is not None else [])
        self.report(NatProblem(NatProblemCode.GRE_ICMP_UNREACHABLE, ev.ts, ev.frame,
                                tuple(x.tunnel.id for x in legs), text,
                                {"from": src, "by_gateway": by_gateway, "interface": t.iface}), legs)

    def gre_checks(self, leg: Leg, now: float, frame: int | None, *, ended: bool, final: bool) -> None:
        """GRE one way: on this leg (the wire), and between the legs (the gateway)."""
        t = leg.tunnel
        up, down = t.traffic[Direction.TO_SERVER].packets, t.traffic[Direction.TO_CLIENT].packets
        if not (up or down):
            return
        if leg.gre_first is None:
            leg.gre_first = now
        if not (ended or final or now - leg.gre_first >= self.limits.gre_grace):
            return
        pair = leg.pair
        if pair is not None:
            peer = pair.other(leg)
            pt = peer.tunnel
            if final or pt.ended or not ended or now - pt.last_seen >= self.limits.gre_grace:
                self.pair_gre(pair, now, frame)
        if leg.has("gre-one-way") or (up > 0) == (down > 0) or up + down < self.limits.one_way_min:
            return
        leg.flag("gre-one-way")
        n = up or down
        text = (f"GRE only {'from the client to the server' if up else 'from the server to the client'} on "
                f"{t.iface or 'this capture'} ({n} packet(s)), none the other way")
        self.report(NatProblem(NatProblemCode.GRE_ONE_WAY, now, frame, (t.id,), text, {
            "direction": "to_server" if up else "to_client", "packets": n, "interface": t.iface,
            "where": "wire"}), [leg])

    def pair_gre(self, pair: Pair, now: float, frame: int | None) -> None:
        """GRE that entered the gateway on one leg and did not leave on the other (counted since the join)."""
        inside = pair.inside or pair.a
        outside = pair.other(inside)
        ti, to = inside.tunnel, outside.tunnel
        for d, src_leg, dst_leg, what in ((Direction.TO_SERVER, inside, outside, "client → server"),
                                          (Direction.TO_CLIENT, outside, inside, "server → client")):
            st, dt = src_leg.tunnel, dst_leg.tunnel
            total_in, total_out = st.traffic[d].packets, dt.traffic[d].packets
            if pair.closing is not None:  # what entered once the session was ending may be dropped
                total_in = min(total_in, pair.closing.get((st.id, d), total_in))
            n_in = total_in - pair.base.get((st.id, d), 0)
            n_out = total_out - pair.base.get((dt.id, d), 0)
            # Counted since the join (a leg captured late must not look lossy) and also in total: live,
            # the two interfaces' rings are read in turns, so a burst of GRE can be counted on one leg
            # before the join and on the other after it although the gateway forwarded every packet.
            lost = min(n_in - n_out, total_in - total_out)
            dname = "to_server" if d is Direction.TO_SERVER else "to_client"
            if n_in and not n_out and not total_out:
                code = NatProblemCode.GRE_ONE_WAY
                text = (f"{what} GRE entered the gateway on {st.iface} ({n_in} packet(s)) and never left on "
                        f"{dt.iface}: the gateway dropped it")
            elif lost >= self.limits.loss_min:
                code = NatProblemCode.GRE_GATEWAY_LOSS
                text = (f"{what} GRE: {n_in} packet(s) entered the gateway on {st.iface}, {n_out} left on "
                        f"{dt.iface}: {lost} dropped by the gateway")
            else:
                continue
            flag = f"pair:{code.value}:{dname}"
            if inside.has(flag):
                continue
            inside.flag(flag)
            outside.flag(flag)
            self.report(NatProblem(code, now, frame, (ti.id, to.id), text, {
                "direction": dname, "packets": n_in, "forwarded": n_out, "seen_on": st.iface,
                "missing_on": dt.iface, "where": "gateway"}), [inside, outside])

    def unmatched(self, leg: Leg, now: float, *, final: bool) -> None:
        """A session seen on one side of the gateway only, while others to its server cross it."""
        t = leg.tunnel
        if leg.has("unmatched") or len(self.ifaces) < 2:
            return
        ifaces = self.crossing.get(t.server.ip)
        if not ifaces or t.iface not in ifaces or len(ifaces) < 2:
            return
        reached = PHASE_ORDER[t.failed_in or t.phase] >= PHASE_ORDER[Phase.CALL] or not t.control_seen
        if reached and (final or now - t.first_seen >= self.limits.unmatched_after):
            leg.flag("unmatched")
            others = sorted(ifaces - {t.iface})
            text = (f"this session to {t.server.ip} was seen on {t.iface} only, never on "
                    f"{', '.join(others)}, although other sessions to that server cross the gateway there")
            self.report(NatProblem(NatProblemCode.LEG_UNMATCHED, now, None, (t.id,), text, {
                "interface": t.iface, "other_interfaces": others}), [leg])

    def silent(self, leg: Leg, pair: Pair, now: float) -> None:
        """One leg quiet while the other still carries the session: an interface or its capture went away."""
        t = leg.tunnel
        peer = pair.other(leg)
        pt = peer.tunnel
        quiet = now - t.last_seen
        lim = self.limits
        if (leg.has("silent") or t.ended or pt.ended or quiet < lim.silent_after
                or pt.last_seen - t.last_seen < lim.silent_after / 2):
            return
        leg.flag("silent")
        text = (f"no packet of this session on {t.iface} for {quiet:.0f} s while {pt.iface} still carries it:"
                " the interface went away, its capture stopped, or the gateway stopped forwarding")
        self.report(NatProblem(NatProblemCode.LEG_SILENT, now, None, (t.id, pt.id), text, {
            "interface": t.iface, "peer_interface": pt.iface, "quiet_seconds": round(quiet, 3)}), [leg, peer])
