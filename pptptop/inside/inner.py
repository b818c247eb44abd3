"""The IP traffic inside one tunnel: flows, DNS, failed TCP handshakes, MTU trouble.

Fed with each inner datagram (decrypted MPPE, or plain PPP IP) in capture
order; answers the questions left once a tunnel is up: what flows in it, which
names its users look up, and why "the VPN is up but nothing works": TCP
handshakes that get no answer or a reset, DNS errors, an inner TCP MSS larger
than the tunnel can carry whole, ICMP fragmentation-needed.

Every table is bounded (a tunnel may carry millions of packets and any number
of flows); what did not fit is counted.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pptptop.decode.dns import decode_dns, rcode_name, type_name
from pptptop.decode.errors import DecodeError
from pptptop.track.model import Direction

__all__ = ["InnerTraffic", "Problem"]

MAX_FLOWS = 256
MAX_NAMES = 256
MAX_HANDSHAKES = 1024
MAX_PROBLEMS = 64
MAX_ANSWERS = 8
MAX_FRAMES = 8
#: seconds a SYN or a DNS query may wait for its answer before it counts as unanswered
ANSWER_TIMEOUT = 3.0
#: an IPv4 + TCP header without options: MSS + this is a full-size segment (RFC 9293 §3.7.1)
TCP_IP_HEADERS = 40
#: the outer path MTU assumed when none is known (Ethernet)
PATH_MTU = 1500
#: outer IPv4 header + enhanced GRE with sequence and acknowledgment numbers (RFC 2637 §4.1)
OUTER_OVERHEAD = 20 + 16
DEFAULT_MRU = 1500  # RFC 1661 §6.1
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
TH_FIN, TH_SYN, TH_RST, TH_ACK = 0x01, 0x02, 0x04, 0x10
DNS_PORT = 53
PROTO_NAMES = {IPPROTO_ICMP: "icmp", IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_ICMPV6: "icmpv6"}
_UNREACHABLE = {0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
                9: "net prohibited", 10: "host prohibited", 13: "administratively prohibited"}
_PORTS = struct.Struct("!HH")

FlowKey = tuple[str, str, int, int | None, int | None]


@dataclass(slots=True)
class Flow:
    packets: int = 0
    bytes: int = 0
    first: float = 0.0
    last: float = 0.0
    first_frame: int = 0


@dataclass(slots=True)
class DnsName:
    name: str
    type: int
    queries: int = 0
    responses: int = 0
    rcode: int | None = None
    answers: list[str] = field(default_factory=list)
    first_frame: int = 0
    asked: float = 0.0  # capture time of the oldest unanswered query, 0 when answered


@dataclass(slots=True)
class Handshake:
    """A TCP connection attempt inside the tunnel (RFC 9293 §3.5): SYN, then SYN-ACK or RST."""

    syn_ts: float
    syn_frame: int
    syns: int = 1
    answered: bool = False
    refused_frame: int | None = None


@dataclass(slots=True)
class Problem:
    """Something that breaks traffic inside the tunnel; ``kind`` is a stable name (docs/decryption.md)."""

    kind: str
    detail: str
    frames: list[int]
    count: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "count": self.count, "frames": list(self.frames)}


def _ntop(family: int, raw: bytes) -> str:
    return socket.inet_ntop(family, raw)


def _where(addr: str, port: int | None) -> str:
    if port is None:
        return addr
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class InnerTraffic:
    """The inner datagrams of one tunnel. ``mru(d)`` is the MRU of the side direction ``d`` goes to."""

    def __init__(self, mru: Callable[[Direction], int] | None = None) -> None:
        self._mru = mru or (lambda d: DEFAULT_MRU)
        self.packets = 0
        self.bytes = 0
        self.malformed = 0
        self.flows: dict[FlowKey, Flow] = {}
        self.flows_dropped = 0
        self.names: dict[tuple[str, int], DnsName] = {}
        self.names_dropped = 0
        self._dns_pending: dict[tuple[str, int], tuple[str, int]] = {}  # (client, query id) -> name key
        self._syns: dict[tuple[str, int, str, int], Handshake] = {}
        self._problems: dict[tuple[str, str], Problem] = {}
        self.problems_dropped = 0
        self.overhead = 0  # octets around an inner datagram in the PPP frame (protocol, MPPE header), largest seen

    # ------------------------------------------------------------------ input
    def packet(self, number: int, ts: float, d: Direction, ip: bytes, ppp_overhead: int = 0) -> None:
        """One inner IPv4 or IPv6 datagram, whole, as it crossed the tunnel in direction ``d``."""
        if ppp_overhead > self.overhead:
            self.overhead = ppp_overhead
        try:
            self._datagram(number, ts, d, ip)
        except (DecodeError, IndexError, struct.error, ValueError):
            self.malformed += 1

    def _datagram(self, number: int, ts: float, d: Direction, ip: bytes) -> None:
        n = len(ip)
        version = ip[0] >> 4
        if version == 4:
            ihl = (ip[0] & 0x0F) * 4
            proto = ip[9]
            src, dst = _ntop(socket.AF_INET, ip[12:16]), _ntop(socket.AF_INET, ip[16:20])
            first = ((ip[6] & 0x1F) << 8 | ip[7]) == 0
            l4 = ihl
        elif version == 6:
            proto = ip[6]
            src, dst = _ntop(socket.AF_INET6, ip[8:24]), _ntop(socket.AF_INET6, ip[24:40])
            first, l4 = True, 40
            while proto in (0, 43, 60, 44) and l4 + 8 <= n:  # hop-by-hop, routing, destination, fragment
                if proto == 44:
                    first = first and ((ip[l4 + 2] << 8 | ip[l4 + 3]) & 0xFFF8) == 0
                    size = 8
                else:
                    size = (ip[l4 + 1] + 1) * 8
                proto = ip[l4]
                l4 += size
        else:
            self.malformed += 1
            return
        self.packets += 1
        self.bytes += n
        mru = self._mru(d)
        if n > mru:
            self._problem("packet-above-mru", f"{d.value}", number,
                          f"inner packets of up to {n} octets went to a side whose MRU is {mru} "
                          f"(frame {number}): it may drop them")
        sport = dport = None
        if first and proto in (IPPROTO_TCP, IPPROTO_UDP) and l4 + 4 <= n:
            sport, dport = _PORTS.unpack_from(ip, l4)
        self._flow((src, dst, proto, sport, dport), n, ts, number)
        if not first:
            return
        if proto == IPPROTO_TCP and l4 + 20 <= n:
            self._tcp(number, ts, d, ip, l4, src, dst)
        elif proto == IPPROTO_UDP and DNS_PORT in (sport, dport) and l4 + 8 <= n:
            self._dns(number, ts, ip[l4 + 8:], src, dst, sport == DNS_PORT)
        elif proto in (IPPROTO_ICMP, IPPROTO_ICMPV6) and l4 + 8 <= n:
            self._icmp(number, proto, ip, l4, src, dst)

    def _flow(self, key: FlowKey, n: int, ts: float, number: int) -> None:
        f = self.flows.get(key)
        if f is None:
            if len(self.flows) >= MAX_FLOWS:
                self.flows_dropped += 1
                return
            f = self.flows[key] = Flow(first=ts, first_frame=number)
        f.packets += 1
        f.bytes += n
        f.last = ts

    # ------------------------------------------------------------------ TCP (RFC 9293)
    def _tcp(self, number: int, ts: float, d: Direction, ip: bytes, l4: int, src: str, dst: str) -> None:
        sport, dport = _PORTS.unpack_from(ip, l4)
        flags = ip[l4 + 13]
        if flags & TH_SYN and not flags & TH_ACK:
            key = (src, sport, dst, dport)
            h = self._syns.get(key)
            if h is None:
                if len(self._syns) >= MAX_HANDSHAKES:
                    del self._syns[next(iter(self._syns))]
                self._syns[key] = Handshake(ts, number)
            else:
                h.syns += 1
            self._mss(number, d, ip, l4, src)
            return
        h = self._syns.get((dst, dport, src, sport))
        if h is None:
            return
        if flags & TH_SYN and flags & TH_ACK:
            h.answered = True
            self._mss(number, d, ip, l4, src)
        elif flags & TH_RST and not h.answered:
            h.refused_frame = number
            self._problem("tcp-refused", f"{dst}|{_where(src, sport)}", number,
                          f"{_where(dst, dport)} → {_where(src, sport)}: the SYN was answered by a reset "
                          f"(frame {number}): nothing listens there, or a firewall rejects it")
            h.answered = True

    def _mss(self, number: int, d: Direction, ip: bytes, l4: int, src: str) -> None:
        """The MSS option of a SYN (RFC 9293 §3.7.1): can the peer's full-size segments cross the tunnel whole?"""
        end = l4 + (ip[l4 + 12] >> 4) * 4
        pos = l4 + 20
        while pos < min(end, len(ip)):
            kind = ip[pos]
            if kind == 0:
                break
            if kind == 1:
                pos += 1
                continue
            if pos + 1 >= len(ip) or ip[pos + 1] < 2:
                break
            if kind == 2 and ip[pos + 1] == 4 and pos + 4 <= len(ip):
                mss = (ip[pos + 2] << 8) | ip[pos + 3]
                segment = mss + TCP_IP_HEADERS
                mru = self._mru(d.other)  # the SYN's sender receives the peer's segments
                if segment > mru:
                    self._problem("mss-above-mru", src, number,
                                  f"{src} announces TCP MSS {mss} (frame {number}): full-size segments to it are "
                                  f"{segment} octets, above its side's MRU {mru}; clamp the MSS to {mru - 40}")
                else:
                    outer = segment + max(self.overhead, 4) + OUTER_OVERHEAD
                    if outer > PATH_MTU:
                        fit = PATH_MTU - OUTER_OVERHEAD - max(self.overhead, 4) - TCP_IP_HEADERS
                        self._problem("mss-above-path-mtu", src, number,
                                      f"{src} announces TCP MSS {mss} (frame {number}): its peer's full-size segments "
                                      f"become {outer}-octet GRE packets, more than a {PATH_MTU}-octet path carries "
                                      f"whole; they are fragmented, or dropped when DF is set (pages that hang). "
                                      f"Clamp the MSS to {fit} (iptables TCPMSS --clamp-mss-to-pmtu) or lower "
                                      f"the tunnel MTU")
                return
            pos += ip[pos + 1]

    # ------------------------------------------------------------------ DNS (RFC 1035)
    def _dns(self, number: int, ts: float, payload: bytes, src: str, dst: str, response: bool) -> None:
        try:
            m = decode_dns(payload)
        except DecodeError:
            self.malformed += 1
            return
        if not m.questions:
            return
        q = m.questions[0]
        key = (q.name, q.type)
        entry = self.names.get(key)
        if entry is None:
            if len(self.names) >= MAX_NAMES:
                self.names_dropped += 1
                return
            entry = self.names[key] = DnsName(q.name, q.type, first_frame=number)
        client = dst if response else src
        if not m.response:
            entry.queries += 1
            if not entry.asked:
                entry.asked = ts
            if len(self._dns_pending) >= MAX_NAMES:
                del self._dns_pending[next(iter(self._dns_pending))]
            self._dns_pending[(client, m.id)] = key
            return
        self._dns_pending.pop((client, m.id), None)
        entry.responses += 1
        entry.rcode = m.rcode
        entry.asked = 0.0
        for a in m.answers:
            if a.value is not None and a.value not in entry.answers and len(entry.answers) < MAX_ANSWERS:
                entry.answers.append(a.value)
        if m.rcode:
            self._problem("dns-error", f"{q.name}|{q.type}", number,
                          f"the DNS server {src} answered {type_name(q.type)} '{q.name}' with "
                          f"{rcode_name(m.rcode)} (frame {number})")

    # ------------------------------------------------------------------ ICMP (RFC 792, RFC 4443)
    def _icmp(self, number: int, proto: int, ip: bytes, l4: int, src: str, dst: str) -> None:
        t, code = ip[l4], ip[l4 + 1]
        if proto == IPPROTO_ICMP and t == 3 and code == 4:
            mtu = (ip[l4 + 6] << 8) | ip[l4 + 7]
            self._problem("icmp-frag-needed", f"{src}|{mtu}", number,
                          f"{src} told {dst} that packets must be fragmented to cross a next hop of MTU {mtu} "
                          f"(ICMP fragmentation needed, frame {number}); repeated, it means the tunnel's MTU "
                          "is too large for the path")
        elif proto == IPPROTO_ICMPV6 and t == 2:
            mtu = int.from_bytes(ip[l4 + 4:l4 + 8], "big")
            self._problem("icmp-frag-needed", f"{src}|{mtu}", number,
                          f"{src} told {dst} that packets over {mtu} octets do not fit its next hop "
                          f"(ICMPv6 packet too big, frame {number})")
        elif (proto == IPPROTO_ICMP and t == 3) or (proto == IPPROTO_ICMPV6 and t == 1):
            what = _UNREACHABLE.get(code, f"code {code}") if proto == IPPROTO_ICMP else f"code {code}"
            self._problem("icmp-unreachable", f"{src}|{dst}|{code}", number,
                          f"{src} told {dst}: destination unreachable ({what}, frame {number})")

    # ------------------------------------------------------------------ output
    def _problem(self, kind: str, key: str, number: int, detail: str) -> None:
        p = self._problems.get((kind, key))
        if p is None:
            if len(self._problems) >= MAX_PROBLEMS:
                self.problems_dropped += 1
                return
            self._problems[(kind, key)] = Problem(kind, detail, [number])
            return
        p.count += 1
        if len(p.frames) < MAX_FRAMES:
            p.frames.append(number)

    def problems(self, now: float) -> list[Problem]:
        """What goes wrong inside, as of capture time ``now``: SYNs and DNS queries unanswered for
        :data:`ANSWER_TIMEOUT` seconds are counted here."""
        out = list(self._problems.values())
        for (src, sport, dst, dport), h in self._syns.items():
            if not h.answered and now - h.syn_ts >= ANSWER_TIMEOUT and len(out) < MAX_PROBLEMS:
                out.append(Problem("tcp-no-answer",
                                   f"{_where(src, sport)} → {_where(dst, dport)}: {h.syns} SYN, no answer in "
                                   f"{now - h.syn_ts:.1f} s (frame {h.syn_frame}): the server is down, or a firewall "
                                   "drops it, or the route back into the tunnel is missing", [h.syn_frame], h.syns))
        for e in self.names.values():
            if e.asked and now - e.asked >= ANSWER_TIMEOUT and len(out) < MAX_PROBLEMS:
                out.append(Problem("dns-no-answer",
                                   f"{type_name(e.type)} '{e.name}': {e.queries} queries, no answer "
                                   f"(frame {e.first_frame}): the DNS server given to the tunnel is unreachable",
                                   [e.first_frame], e.queries))
        return out

    def top_talkers(self, n: int = 5) -> list[tuple[str, int]]:
        """The addresses that sent the most octets inside, most first."""
        sent: dict[str, int] = {}
        for (src, _, _, _, _), f in self.flows.items():
            sent[src] = sent.get(src, 0) + f.bytes
        return sorted(sent.items(), key=lambda x: -x[1])[:n]

    def as_dict(self, now: float) -> dict[str, Any]:
        flows = sorted(self.flows.items(), key=lambda x: -x[1].bytes)[:32]
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "malformed": self.malformed,
            "flows": [{"src": k[0], "dst": k[1], "protocol": PROTO_NAMES.get(k[2], k[2]), "src_port": k[3],
                       "dst_port": k[4], "packets": f.packets, "bytes": f.bytes, "first": f.first, "last": f.last,
                       "rate_bps": round(8 * f.bytes / (f.last - f.first)) if f.last > f.first else None}
                      for k, f in flows],
            "flows_total": len(self.flows),
            "flows_not_kept": self.flows_dropped,
            "top_talkers": [{"ip": ip, "bytes": b} for ip, b in self.top_talkers()],
            "dns": [{"name": e.name, "type": type_name(e.type), "queries": e.queries, "responses": e.responses,
                     "rcode": rcode_name(e.rcode) if e.rcode is not None else None, "answers": list(e.answers)}
                    for e in list(self.names.values())[:64]],
            "dns_names_not_kept": self.names_dropped,
            "problems": [p.as_dict() for p in self.problems(now)],
        }
