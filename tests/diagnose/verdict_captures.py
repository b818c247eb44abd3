"""The crafted captures of the failure classes that need the right first verdict (tests/data/crafted-*).

Each builder writes one session the way the real peers behave (pppd 2.4.9,
pptpd 1.4.0, pptp-linux 1.10.0, the Linux PPTP conntrack helper; see the
lab notes), with scapy building Ethernet/IPv4/TCP/ICMP and their checksums,
and the PPTP control messages (RFC 2637 §2), enhanced GRE (§4.1) and PPP
from bytes (``diag_support``). The files are committed; ``test_verdict_classes``
checks that this module still builds them byte for byte. Regenerate with::

    python tests/diagnose/verdict_captures.py
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import PcapNgWriter, PcapWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diag_support import (
    ACK,
    CHAP,
    FIN,
    LCP,
    RST,
    SYN,
    Frame,
    Wire,
    ccrq,
    cp,
    opt,
    read_frames,
)

DATA = Path(__file__).resolve().parent.parent / "data"
MACS = {"client": "02:00:0a:00:00:02", "server": "02:00:c6:33:64:02"}
TERM_REQ, TERM_ACK = 5, 6
#: pppd's LCP options: <asyncmap 0x0> <pcomp> <accomp>, and the magic numbers of the two sides
ASYNCMAP, PCOMP, ACCOMP = opt(2, bytes(4)), opt(7), opt(8)
CLIENT_MAGIC, SERVER_MAGIC = bytes.fromhex("3c1f5e27"), bytes.fromhex("a4d2096b")
MSCHAPV2, PAP = b"\xc2\x23\x81", b"\xc0\x23"


@dataclass
class Lab(Wire):
    """A :class:`Wire` whose frames carry valid IPv4, TCP and ICMP checksums and per-host IP IDs."""

    ip_id: dict[str, int] = field(default_factory=lambda: {"client": 0x2F80, "server": 0xFE90})
    coherency: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})

    def _ip(self, sender: str, proto: int = 0, dst: str | None = None, src: str | None = None) -> Ether:
        a, b, _, _ = self._ends(sender)
        ident = self.ip_id[sender]
        self.ip_id[sender] = (ident + 1) & 0xFFFF
        peer = "server" if sender == "client" else "client"
        return Ether(src=MACS[sender], dst=MACS[peer]) / IP(src=src or a, dst=dst or b, id=ident, flags="DF",
                                                            ttl=64, **({"proto": proto} if proto else {}))

    def _put(self, pkt: Ether) -> Lab:
        self.frames.append((self.now, "eth0", 1, bytes(pkt)))
        self.now += 0.001
        return self

    def tcp(self, sender: str, flags: int, payload: bytes = b"") -> Lab:
        _, _, sport, dport = self._ends(sender)
        peer = "server" if sender == "client" else "client"
        seg = TCP(sport=sport, dport=dport, seq=self.seq[sender], ack=self.seq[peer] if flags & ACK else 0,
                  flags=flags, window=64240 if sender == "client" else 65160)
        pkt = self._ip(sender) / seg / (Raw(payload) if payload else b"")
        self.seq[sender] = (self.seq[sender] + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        return self._put(pkt)

    def gre(self, sender: str, ppp: bytes, *, seq: int | None = None) -> Lab:
        call = self.server_call if sender == "client" else self.client_call
        if seq is None:
            seq = self.gre_seq[sender]
            self.gre_seq[sender] = seq + 1
        hdr = struct.pack("!HHHHI", 0x3001, 0x880B, len(ppp), call, seq)
        return self._put(self._ip(sender, 47) / Raw(hdr + ppp))

    def icmp(self, sender: str, quoted: Frame, code: int = 2) -> Lab:
        """``sender``'s ICMP Destination Unreachable (RFC 792) quoting a frame of this session, as Linux does
        (the whole offending IP packet, within 576 octets)."""
        inner = quoted[3][14:]
        src, dst = IP(inner).dst, IP(inner).src
        return self._put(self._ip(sender, src=src, dst=dst) / ICMP(type=3, code=code) / Raw(inner[:548]))

    def mschapv2(self, success: bool = True, message: bytes = b"", user: bytes = b"alice") -> Lab:
        """MS-CHAPv2 as pptpd's pppd runs it (RFC 2759): Challenge named "pptpd", Response, and Success
        "S=<authenticator response, 40 uppercase hex> M=Access granted"."""
        chal = bytes.fromhex("645395330563b376c74673e83c9ccea8")
        self.ppp("server", CHAP, cp(1, 7, b"\x10" + chal + b"pptpd"))
        value = bytes.fromhex("64d33c1bab5b50e09628df6347c27ebd") + bytes(8) + bytes.fromhex(
            "6f2b5c44316e344bae54529e5d0ad7b0c1f6e4a3d2b19807") + b"\x00"
        self.ppp("client", CHAP, cp(2, 7, b"\x31" + value + user))
        return self.ppp("server", CHAP, cp(3, 7, b"S=BF04E1ADECF1307937DEDCD678218957B4B6ED25 M=Access granted"))

    def data(self, sender: str, n: int = 1, *, seqs: list[int] | None = None) -> Lab:
        """Stateless MPPE data (RFC 3078 §3): flushed and encrypted, the coherency count up by one a packet."""
        for i in range(n):
            count = self.coherency[sender]
            self.coherency[sender] = (count + 1) & 0xFFF
            body = bytes((count * 37 + k * 11) & 0xFF for k in range(40))  # stands in for the ciphertext
            self.gre(sender, b"\xff\x03\x00\xfd" + struct.pack("!H", 0x9000 | count) + body,
                     seq=seqs[i] if seqs else None)
        return self

    def lcp(self, sender: str, code: int, ident: int, data: bytes = b"") -> Lab:
        return self.ppp(sender, LCP, cp(code, ident, data))

    def last(self) -> Frame:
        return self.frames[-1]


def _pppd_lcp(w: Lab, server_auth: bytes | None) -> Lab:
    """Both sides' first LCP Configure-Requests as pppd sends them; the server asks for ``server_auth``."""
    w.at(0.009).lcp("client", 1, 1, ASYNCMAP + opt(5, CLIENT_MAGIC) + PCOMP + ACCOMP)
    auth = opt(3, server_auth) if server_auth else b""
    return w.at(0.002).lcp("server", 1, 1, ASYNCMAP + auth + opt(5, SERVER_MAGIC) + PCOMP + ACCOMP)


def auth_rejected() -> list[Frame]:
    """The client can authenticate with no method (pppd refuse-pap/-chap/-mschap/-mschap-v2): it
    Configure-Rejects the server's Authentication-Protocol (lcp.c lcp_reqci, "No auth is possible"). The
    server (require-mschap-v2) drops the option, LCP opens without it, and pppd's link_established closes
    the link: LCP Terminate-Request "peer refused to authenticate". pptpctrl then closes TCP; the client's
    late Call-Clear-Request is answered with RST (lab s9)."""
    w = Lab()
    w.setup()
    _pppd_lcp(w, MSCHAPV2)
    cli_req = ASYNCMAP + opt(5, CLIENT_MAGIC) + PCOMP + ACCOMP
    w.at(0.001).lcp("server", 2, 1, cli_req)
    w.at(0.001).lcp("client", 4, 1, opt(3, MSCHAPV2))
    w.at(0.002).lcp("server", 1, 2, ASYNCMAP + opt(5, SERVER_MAGIC) + PCOMP + ACCOMP)
    w.at(0.001).lcp("client", 2, 2, ASYNCMAP + opt(5, SERVER_MAGIC) + PCOMP + ACCOMP)
    w.at(0.003).lcp("server", TERM_REQ, 3, b"peer refused to authenticate")
    w.at(0.001).lcp("client", TERM_ACK, 3)
    return _server_closes(w)


def auth_nak_refused() -> list[Frame]:
    """The client allows PAP only (a Windows client with "Unencrypted password (PAP)"): it Naks the
    server's MS-CHAPv2 with PAP. The server (require-mschap-v2, PAP not allowed) stops asking for CHAP
    (lcp.c lcp_nakci) and has nothing else to ask for, so LCP opens without authentication and pppd ends
    the link: "peer refused to authenticate"."""
    w = Lab()
    w.setup()
    _pppd_lcp(w, MSCHAPV2)
    w.at(0.001).lcp("server", 2, 1, ASYNCMAP + opt(5, CLIENT_MAGIC) + PCOMP + ACCOMP)
    w.at(0.001).lcp("client", 3, 1, opt(3, PAP))
    w.at(0.002).lcp("server", 1, 2, ASYNCMAP + opt(5, SERVER_MAGIC) + PCOMP + ACCOMP)
    w.at(0.001).lcp("client", 2, 2, ASYNCMAP + opt(5, SERVER_MAGIC) + PCOMP + ACCOMP)
    w.at(0.003).lcp("server", TERM_REQ, 3, b"peer refused to authenticate")
    w.at(0.001).lcp("client", TERM_ACK, 3)
    return _server_closes(w)


def _server_closes(w: Lab) -> list[Frame]:
    """pptpctrl closes TCP when its pppd exits; pptp-linux's late Call-Clear-Request meets an RST (lab s9)."""
    w.at(0.022).tcp("server", FIN | ACK)
    w.ctl("client", ccrq(w.client_call))
    w.tcp("server", RST)
    return w.frames


def syn_unanswered() -> list[Frame]:
    """A Linux client's SYN to TCP 1723 and its retransmissions (RTO 1 s, doubling: RFC 6298 §5.5), never
    answered (a firewall drops them); the capture ends with the fourth."""
    w = Lab()
    for gap in (0.0, 1.0, 2.0, 4.2):
        w.at(gap)
        w.seq["client"] = 1000
        w.tcp("client", SYN)
    return w.frames


def binary_terminate() -> list[Frame]:
    """A working session the server ends with an LCP Terminate-Request whose data is not text (RFC 1661
    §5.5 leaves it uninterpreted: some access concentrators put a cause code and their magic number
    there)."""
    w = Lab()
    w.up()
    w.at(1.0).data("client", 3).data("server", 3)
    w.at(2.0).lcp("server", TERM_REQ, 9, bytes.fromhex("00000003") + SERVER_MAGIC)
    w.at(0.001).lcp("client", TERM_ACK, 9)
    w.at(0.02).tcp("server", FIN | ACK)
    w.ctl("client", ccrq(w.client_call))
    w.tcp("server", RST)
    return w.frames


def teardown_lcp_icmp() -> list[Frame]:
    """The server hangs up (pppd's LCP Terminate-Request "User request"); the client's Terminate-Ack is
    lost on the way, the client's pppd exits and pptp-linux clears the call and closes TCP. The server's
    pppd repeats its Terminate-Request 3 s later (RFC 1661 §4.6 restart timer); no GRE socket is left on the
    client, whose kernel answers ICMP protocol-unreachable. pppd gives up after its second request and
    pptpctrl closes TCP. Captured on the client's side."""
    w = Lab()
    w.up()
    w.at(1.0).data("client", 2).data("server", 2)
    w.at(1.5).lcp("server", TERM_REQ, 9, b"User request")
    w.at(0.001).lcp("client", TERM_ACK, 9)
    w.at(0.015).ctl("client", ccrq(w.client_call))
    w.tcp("client", FIN | ACK)
    w.at(0.002).tcp("server", ACK)
    w.at(2.98).lcp("server", TERM_REQ, 9, b"User request")
    w.at(0.00005).icmp("client", w.last())
    w.at(3.0).tcp("server", FIN | ACK)
    w.tcp("client", ACK)
    return w.frames


def s10_teardown_icmp() -> list[tuple[Frame, int]]:
    """Lab s10 (pptpctrl stopped with SIGTERM: Call-Disconnect-Notify, Stop-Control-Connection) with the
    race that follows on the NAT gateway: the Linux helper removes the call's GRE mapping when it forwards
    the Call-Disconnect-Notify, and the Terminate-Request the server's pppd sends as it stops ("User
    request") reaches the gateway after that, finds no conntrack entry and is answered by the gateway with
    ICMP protocol-unreachable (as in lab s3b). Returns the frames and, for each, its place in the file."""
    src = read_frames(DATA / "s10-server-ctrl-sigterm-both.pcapng")
    wan = [(i, f) for i, f in enumerate(src) if f[1] == "wan0"]
    cdn_at = next(i for i, f in wan if _tcp_payload(f[3])[8:10] == b"\x00\x0d")
    echo_reply = next(f for _, f in reversed(wan) if _gre_from_server(f[3]))
    ts = src[cdn_at][0] + 0.00065
    term = _late_server_term(echo_reply[3], b"User request")
    gw = _gateway_icmp(term)
    out = [(f, 2 * i) for i, f in enumerate(src)]
    return [*out, ((ts, "wan0", 1, term), 2 * cdn_at + 1), ((ts + 0.00004, "wan0", 1, gw), 2 * cdn_at + 1)]


def _tcp_payload(eth: bytes) -> bytes:
    p = IP(eth[14:])
    return bytes(p[TCP].payload) if p.haslayer(TCP) else b""


def _gre_from_server(eth: bytes) -> bool:
    p = IP(eth[14:])
    return p.proto == 47 and p.src == "198.51.100.2"


def _late_server_term(template: bytes, reason: bytes) -> bytes:
    """The server's next GRE packet after ``template`` (same addresses and key), carrying LCP
    Terminate-Request ``reason``."""
    eth, ip = Ether(template[:14]), IP(template[14:])
    gre = bytes(ip.payload)
    seq = struct.unpack_from("!I", gre, 8)[0] + 1
    ppp = b"\xff\x03" + struct.pack("!H", LCP) + cp(TERM_REQ, 10, reason)
    hdr = struct.pack("!HHHHI", 0x3001, 0x880B, len(ppp), struct.unpack_from("!H", gre, 6)[0], seq)
    return bytes(Ether(src=eth.src, dst=eth.dst) / IP(src=ip.src, dst=ip.dst, id=(ip.id + 1) & 0xFFFF,
                                                      flags="DF", ttl=64, proto=47) / Raw(hdr + ppp))


def _gateway_icmp(quoted: bytes) -> bytes:
    eth, ip = Ether(quoted[:14]), IP(quoted[14:])
    return bytes(Ether(src=eth.dst, dst=eth.src) / IP(src=ip.dst, dst=ip.src, ttl=64, id=0x5d1e)
                 / ICMP(type=3, code=2) / Raw(quoted[14:]))


# ---------------------------------------------------------------------- files
def _packet(ts: float, iface: str, data: bytes) -> Ether:
    pkt = Ether(data)  # re-encodes to ``data`` octet for octet (checked by test_verdict_classes)
    pkt.time, pkt.sniffed_on = ts, iface
    return pkt


def _write_pcap(path: Path, frames: list[Frame]) -> None:
    with PcapWriter(str(path), linktype=1, sync=True) as out:
        for ts, iface, _, data in frames:
            out.write(_packet(ts, iface, data))


def _write_pcapng(path: Path, placed: list[tuple[Frame, int]]) -> None:
    """One interface description block per interface name, in order of first use (as dumpcap writes)."""
    with PcapNgWriter(str(path)) as out:
        for (ts, iface, _, data), _ in sorted(placed, key=lambda x: x[1]):
            out.write(_packet(ts, iface, data))


FILES: dict[str, Callable[[], list[Frame]]] = {
    "crafted-auth-rejected.pcap": auth_rejected,
    "crafted-auth-nak-refused.pcap": auth_nak_refused,
    "crafted-syn-unanswered.pcap": syn_unanswered,
    "crafted-binary-terminate.pcap": binary_terminate,
    "crafted-teardown-lcp-icmp.pcap": teardown_lcp_icmp,
}
NG_FILES: dict[str, Callable[[], list[tuple[Frame, int]]]] = {
    "crafted-s10-teardown-icmp-both.pcapng": s10_teardown_icmp,
}


def build(name: str, out_dir: Path) -> Path:
    path = out_dir / name
    if name in FILES:
        _write_pcap(path, FILES[name]())
    else:
        _write_pcapng(path, NG_FILES[name]())
    return path


def main() -> None:
    for name in [*FILES, *NG_FILES]:
        print(build(name, DATA))


if __name__ == "__main__":
    main()
