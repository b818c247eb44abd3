"""Helpers for the diagnosis tests: run a capture with the Diagnoser attached, and craft sessions.

:class:`Wire` builds the frames of one PPTP session the way RFC 2637 lays them
out (Ethernet/IPv4/TCP 1723 control messages with correct sequence numbers,
enhanced GRE with PPP inside), for the causes the lab captures do not show.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pptptop import sources
from pptptop.diagnose import Diagnoser, DiagnosisConfig, Finding, FindingChange, Severity
from pptptop.pipeline import Pipeline
from pptptop.track.model import Tunnel
from pptptop.track.tracker import Tracker

T0 = 1_700_000_000.0
MAGIC = 0x1A2B3C4D
ETH_HDR = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08
LCP, PAP, CHAP, IPCP, IPV6CP, CCP = 0xC021, 0xC023, 0xC223, 0x8021, 0x8057, 0x80FD
Frame = tuple[float, str, int, bytes]


@dataclass
class Result:
    tracker: Tracker
    diagnoser: Diagnoser
    changes: list[FindingChange] = field(default_factory=list)
    #: how many tracker events had been taken when each change came (the event that made it)
    at: list[int] = field(default_factory=list)

    @property
    def tunnels(self) -> list[Tunnel]:
        return sorted(self.tracker.tunnels.values(), key=lambda t: t.id)

    @property
    def only(self) -> Tunnel:
        assert len(self.tracker.tunnels) == 1, [t.label for t in self.tunnels]
        return self.tunnels[0]


def findings(t: Tunnel) -> list[Finding]:
    found = list(t.findings)
    return found


def errors(t: Tunnel) -> list[str]:
    return [f.code for f in findings(t) if f.severity is Severity.ERROR]


def codes(t: Tunnel) -> list[str]:
    return [f.code for f in findings(t)]


def finding(t: Tunnel, code: str) -> Finding:
    for f in findings(t):
        if f.code == code:
            return f
    raise AssertionError(f"no {code} among {codes(t)}")


def run_capture(path: Path | str, config: DiagnosisConfig | None = None, *, show_secrets: bool = False,
                speed: float | None = None, exhaustive: bool = False) -> Result:
    """The whole pipeline on a capture file, with a Diagnoser attached and its changes recorded.

    Unless ``exhaustive``, the run is repeated with every rule evaluated after
    every event, and must find the same things at the same moments: each
    test's scenario also checks the rules' declared event categories (Rule.on).
    """
    tracker = Tracker()
    res = _attach(tracker, Diagnoser(config, show_secrets=show_secrets, exhaustive=exhaustive))
    pipe = Pipeline(sources.open_file(str(path)), tracker, speed=speed)
    pipe.run()
    if pipe.error is not None:
        raise pipe.error
    if not exhaustive:
        assert_same_findings(res, run_capture(path, config, show_secrets=show_secrets, speed=speed, exhaustive=True))
    return res


def _attach(tracker: Tracker, d: Diagnoser) -> Result:
    res = Result(tracker, d.attach(tracker))
    taken = [0]

    def count(_ev: Any) -> None:
        taken[0] += 1

    tracker.subscribe(count)  # after the diagnoser: an event is counted once it was diagnosed
    d.subscribe(res.changes.append)
    d.subscribe(lambda _c: res.at.append(taken[0]))
    return res


def outcome(res: Result) -> tuple[list[Any], list[Any]]:
    """Every finding change (what, where, when) and every tunnel's findings and withdrawals at the end."""
    changes = [(at, c.kind, c.tunnel.id, c.ts, c.finding.to_dict()) for at, c in zip(res.at, res.changes, strict=True)]
    final = [(t.id, [f.to_dict() for f in findings(t)],
              [(w.finding.to_dict(), w.ts) for w in t.withdrawn]) for t in res.tunnels]
    return changes, final


def assert_same_findings(res: Result, reference: Result) -> None:
    """``res`` (rules run on the events they declare) found what ``reference`` (every rule, every event) did."""
    got, want = outcome(res), outcome(reference)
    assert got[0] == want[0], "finding changes differ from the exhaustive evaluation"
    assert got[1] == want[1], "final findings differ from the exhaustive evaluation"


def read_frames(path: Path | str) -> list[Frame]:
    """(ts, iface, linktype, data) of every frame of a capture."""
    return [(f.ts, f.iface, f.linktype, f.data) for f in sources.open_file(str(path))]


def run_frames(frames: Iterable[Frame], config: DiagnosisConfig | None = None, *, show_secrets: bool = False,
               clock: bool = False, until: float | None = None, exhaustive: bool = False) -> Result:
    """Feed frames straight into a tracker; ``clock`` ticks every capture second between frames (and on
    to ``until``), as a live capture's clock does while the link is silent. Checked against an
    ``exhaustive`` run as :func:`run_capture` is."""
    frames = list(frames)
    tracker = Tracker()
    res = _attach(tracker, Diagnoser(config, show_secrets=show_secrets, exhaustive=exhaustive))
    last: float | None = None
    for n, (ts, iface, linktype, data) in enumerate(frames, 1):
        if clock and last is not None:
            sec = int(last) + 1
            while sec < ts:
                tracker.tick(float(sec))
                sec += 1
        tracker.feed(n, ts, iface, linktype, data)
        last = ts
    if until is not None and last is not None:
        sec = int(last) + 1
        while sec <= until:
            tracker.tick(float(sec))
            sec += 1
    tracker.finish()
    if not exhaustive:
        assert_same_findings(res, run_frames(frames, config, show_secrets=show_secrets, clock=clock, until=until,
                                             exhaustive=True))
    return res


def tshark_frames(path: Path | str, display_filter: str) -> set[int]:
    """Frame numbers matching a tshark display filter."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
    return {int(x) for x in out.split()}


def tshark_times(path: Path | str) -> dict[int, float]:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.number",
                          "-e", "frame.time_epoch"], capture_output=True, text=True, check=True).stdout
    return {int(a): float(b) for a, b in (line.split("\t") for line in out.splitlines())}


# ---------------------------------------------------------------------- crafting
def _ip(addr: str) -> int:
    a, b, c, d = (int(x) for x in addr.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    return ETH_HDR + struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,
                                 _ip(src), _ip(dst)) + payload


def control(ctype: int, body: bytes) -> bytes:
    """A PPTP control message (RFC 2637 §2: Length, type 1, Magic Cookie, Control Message Type)."""
    return struct.pack("!HHIHH", 12 + len(body), 1, MAGIC, ctype, 0) + body


def sccrq() -> bytes:
    return control(1, struct.pack("!HHIIHH64s64s", 0x0100, 0, 1, 1, 0, 1, b"client", b"test"))


def sccrp(result: int = 1, error: int = 0) -> bytes:
    return control(2, struct.pack("!HBBIIHH64s64s", 0x0100, result, error, 1, 1, 1, 1, b"server", b"test"))


def stopccrq(reason: int = 1) -> bytes:
    return control(3, struct.pack("!BBH", reason, 0, 0))


def echo_request(ident: int) -> bytes:
    return control(5, struct.pack("!I", ident))


def echo_reply(ident: int) -> bytes:
    return control(6, struct.pack("!IBBH", ident, 1, 0, 0))


def ocrq(call_id: int, serial: int = 1) -> bytes:
    return control(7, struct.pack("!HHIIIIHHHH64s64s", call_id, serial, 300, 100_000_000, 3, 3, 64, 0, 0, 0,
                                  b"", b""))


def ocrp(call_id: int, peer: int, result: int = 1, error: int = 0, cause: int = 0) -> bytes:
    return control(8, struct.pack("!HHBBHIHHI", call_id, peer, result, error, cause, 100_000_000, 64, 0, 0))


def ccrq(call_id: int) -> bytes:
    return control(12, struct.pack("!HH", call_id, 0))


def cdn(call_id: int, result: int = 3, cause: int = 0) -> bytes:
    return control(13, struct.pack("!HBBHH128s", call_id, result, 0, cause, 0, b""))


def wen(peer: int, crc: int = 0, framing: int = 0) -> bytes:
    return control(14, struct.pack("!HHIIIIII", peer, 0, crc, framing, 0, 0, 0, 0))


def icmp_error(w: Wire, sender: str, itype: int, icode: int, quoted: bytes, origin: str | None = None) -> bytes:
    """An ICMP error from ``origin`` (default: the other end) quoting an IPv4 packet built by ``w`` (RFC 792)."""
    inner = quoted[14:14 + 28]
    src = origin or (w.server if sender == "client" else w.client)
    dst = w.client if sender == "client" else w.server
    return ipv4(src, dst, 1, struct.pack("!BBHI", itype, icode, 0, 0) + inner)


def cp(code: int, ident: int, data: bytes = b"") -> bytes:
    """An RFC 1661 §5 packet: Code, Identifier, Length, data."""
    return struct.pack("!BBH", code, ident, 4 + len(data)) + data


def opt(t: int, value: bytes = b"") -> bytes:
    return struct.pack("!BB", t, 2 + len(value)) + value


def mppe(bits: int) -> bytes:
    return opt(18, struct.pack("!I", bits))


MPPE_H, MPPE_S, MPPE_L, MPPE_M = 0x01000000, 0x40, 0x20, 0x80


@dataclass
class Wire:
    """One PPTP session between ``client`` and ``server``, built frame by frame at capture time ``now``."""

    client: str = "10.0.0.2"
    server: str = "198.51.100.2"
    cport: int = 40000
    client_call: int = 0x1234
    server_call: int = 0x0080
    now: float = T0
    frames: list[Frame] = field(default_factory=list)
    seq: dict[str, int] = field(default_factory=lambda: {"client": 1000, "server": 5000})
    gre_seq: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})

    def at(self, dt: float) -> Wire:
        """Advance the capture clock by ``dt`` seconds."""
        self.now += dt
        return self

    def raw(self, data: bytes) -> Wire:
        """Any frame (an ICMP error, another session's packet) at the current time."""
        self.frames.append((self.now, "eth0", 1, data))
        self.now += 0.001
        return self

    def _ends(self, sender: str) -> tuple[str, str, int, int]:
        if sender == "client":
            return self.client, self.server, self.cport, 1723
        return self.server, self.client, 1723, self.cport

    def tcp(self, sender: str, flags: int, payload: bytes = b"") -> Wire:
        src, dst, sport, dport = self._ends(sender)
        peer = "server" if sender == "client" else "client"
        seg = struct.pack("!HHIIBBHHH", sport, dport, self.seq[sender], self.seq[peer] if flags & ACK else 0,
                          0x50, flags, 65535, 0, 0) + payload
        self.frames.append((self.now, "eth0", 1, ipv4(src, dst, 6, seg)))
        self.seq[sender] = (self.seq[sender] + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        self.now += 0.001
        return self

    def handshake(self) -> Wire:
        return self.tcp("client", SYN).tcp("server", SYN | ACK).tcp("client", ACK)

    def ctl(self, sender: str, msg: bytes) -> Wire:
        return self.tcp(sender, PSH | ACK, msg)

    def setup(self, result: int = 1) -> Wire:
        """TCP, SCCRQ/SCCRP and OCRQ/OCRP (RFC 2637 §2.1, §2.7-2.8)."""
        self.handshake().ctl("client", sccrq()).ctl("server", sccrp())
        self.ctl("client", ocrq(self.client_call))
        return self.ctl("server", ocrp(self.server_call, self.client_call, result))

    def gre(self, sender: str, ppp: bytes, *, seq: int | None = None) -> Wire:
        """Enhanced GRE (RFC 2637 §4.1): the key is the receiver's call ID."""
        src, dst, _, _ = self._ends(sender)
        call = self.server_call if sender == "client" else self.client_call
        if seq is None:
            seq = self.gre_seq[sender]
            self.gre_seq[sender] = seq + 1
        hdr = struct.pack("!HHHHI", 0x3001, 0x880B, len(ppp), call, seq)
        self.frames.append((self.now, "eth0", 1, ipv4(src, dst, 47, hdr + ppp)))
        self.now += 0.001
        return self

    def ppp(self, sender: str, protocol: int, packet: bytes, **kw: Any) -> Wire:
        return self.gre(sender, b"\xff\x03" + struct.pack("!H", protocol) + packet, **kw)

    def lcp_up(self, auth: bytes = b"\xc2\x23\x81", mru: int | None = None) -> Wire:
        """Both LCP Configure-Requests acknowledged; the server asks for ``auth`` (default MS-CHAPv2)."""
        copts = opt(5, b"\x11\x22\x33\x44") + (opt(1, struct.pack("!H", mru)) if mru else b"")
        sopts = opt(3, auth) + opt(5, b"\x55\x66\x77\x88")
        self.ppp("client", LCP, cp(1, 1, copts)).ppp("server", LCP, cp(1, 1, sopts))
        return self.ppp("server", LCP, cp(2, 1, copts)).ppp("client", LCP, cp(2, 1, sopts))

    def mschapv2(self, success: bool = True, message: bytes = b"E=691 R=1 C=00112233445566778899aabbccddeeff V=3 M=x",
                 user: bytes = b"alice") -> Wire:
        chal = bytes(range(16))
        self.ppp("server", CHAP, cp(1, 7, b"\x10" + chal + b"srv"))
        value = bytes(range(100, 116)) + bytes(8) + bytes(range(24)) + b"\x00"
        self.ppp("client", CHAP, cp(2, 7, b"\x31" + value + user))
        if success:
            return self.ppp("server", CHAP, cp(3, 7, b"S=" + b"A" * 40 + b" M=ok"))
        return self.ppp("server", CHAP, cp(4, 7, message))

    def ipcp_up(self) -> Wire:
        a = opt(3, bytes([192, 0, 2, 10]))
        s = opt(3, bytes([192, 0, 2, 1]))
        self.ppp("client", IPCP, cp(1, 1, a)).ppp("server", IPCP, cp(1, 1, s))
        return self.ppp("server", IPCP, cp(2, 1, a)).ppp("client", IPCP, cp(2, 1, s))

    def ccp_up(self, bits: int = MPPE_H | MPPE_S) -> Wire:
        o = mppe(bits)
        self.ppp("client", CCP, cp(1, 1, o)).ppp("server", CCP, cp(1, 1, o))
        return self.ppp("server", CCP, cp(2, 1, o)).ppp("client", CCP, cp(2, 1, o))

    def data(self, sender: str, n: int = 1, *, seqs: list[int] | None = None) -> Wire:
        """MPPE data frames (protocol 0x00FD)."""
        for i in range(n):
            self.gre(sender, b"\xff\x03\x00\xfd\x90\x01" + bytes(40), seq=seqs[i] if seqs else None)
        return self

    def up(self) -> Wire:
        """A working session: control, LCP, MS-CHAPv2, CCP (MPPE-128 stateless), IPCP, data both ways."""
        return self.setup().lcp_up().mschapv2().ccp_up().ipcp_up().data("client").data("server")
