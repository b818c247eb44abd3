"""The traffic inside a decrypted tunnel: flows, DNS, failed TCP handshakes, MSS/MTU trouble.

Inner packets are built with scapy and sent through crafted stateless MPPE-128 (RFC 2759 §9.2's session),
so they reach the inner analysis only through key derivation and decryption.
"""

from __future__ import annotations

from inside_support import Wire, rfc_senders, rfc_session, run, secrets
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror

from pptptop.inside.inner import InnerTraffic
from pptptop.track.model import Direction

C, S, DNS_SERVER, WEB = "192.0.2.10", "192.0.2.1", "192.0.2.53", "203.0.113.80"


def tunnel(packets: list[tuple[str, bytes]], mru: int | None = None) -> Wire:
    """A session whose client asked for ``mru`` (LCP option 1), then ``packets`` as (sender, IP datagram)."""
    w = rfc_session(mru=mru)
    client, server = rfc_senders(128, stateless=True)
    for sender, ip in packets:
        s = client if sender == "client" else server
        w.gre(sender, s.packet(b"\x00\x21" + ip)).at(0.01)
    return w


def problems(r, kind: str) -> list:  # type: ignore[no-untyped-def]
    return [p for p in r.inside().inner.problems(r.tracker.now) if p.kind == kind]


def test_flows_and_top_talkers() -> None:
    pkts = [("client", bytes(IP(src=C, dst=WEB) / UDP(sport=5000 + i % 2, dport=443) / (b"x" * (100 * i))))
            for i in range(1, 5)]
    pkts.append(("server", bytes(IP(src=WEB, dst=C) / UDP(sport=443, dport=5000) / b"y")))
    r = run(tunnel(pkts).frames, secrets(("User", "clientPass")))
    inner = r.inside().inner
    assert inner.packets == 5
    f = inner.flows[(C, WEB, 17, 5000, 443)]
    assert (f.packets, f.bytes) == (2, 2 * 28 + 200 + 400)
    assert inner.top_talkers()[0] == (C, sum(28 + 100 * i for i in range(1, 5)))
    j = r.inside().as_dict(r.tracker.now)
    assert j["flows"][0]["protocol"] == "udp" and j["flows_total"] == 3


def test_dns_names_answers_and_errors() -> None:
    q = IP(src=C, dst=DNS_SERVER) / UDP(sport=33333, dport=53)
    a = IP(src=DNS_SERVER, dst=C) / UDP(sport=53, dport=33333)
    pkts = [("client", bytes(q / DNS(id=1, rd=1, qd=DNSQR(qname="intranet.corp.")))),
            ("server", bytes(a / DNS(id=1, qr=1, qd=DNSQR(qname="intranet.corp."),
                                     an=[DNSRR(rrname="intranet.corp.", rdata="10.1.2.3")]))),
            ("client", bytes(q / DNS(id=2, rd=1, qd=DNSQR(qname="typo.corp.")))),
            ("server", bytes(a / DNS(id=2, qr=1, rcode=3, qd=DNSQR(qname="typo.corp.")))),
            ("client", bytes(q / DNS(id=3, rd=1, qd=DNSQR(qname="\x1b[31mred.corp."))))]
    w = tunnel(pkts).at(5)
    w.gre("client", b"\xff\x03\xc0\x21\x09\x01\x00\x08\x00\x00\x00\x00")  # LCP echo: time passes
    r = run(w.frames, secrets(("User", "clientPass")))
    names = {e.name: e for e in r.inside().inner.names.values()}
    assert names["intranet.corp"].answers == ["10.1.2.3"] and names["intranet.corp"].rcode == 0
    assert [p.detail for p in problems(r, "dns-error")] == [
        f"the DNS server {DNS_SERVER} answered A 'typo.corp' with NXDOMAIN (frame {p.frames[0]})"
        for p in problems(r, "dns-error")]
    (unanswered,) = problems(r, "dns-no-answer")
    assert "red.corp" in unanswered.detail


def test_tcp_handshakes_that_fail_inside() -> None:
    """The "VPN up but nothing works" case: a SYN nobody answers, a SYN answered by a reset."""
    pkts = [("client", bytes(IP(src=C, dst=WEB) / TCP(sport=40001, dport=443, flags="S"))),
            ("client", bytes(IP(src=C, dst=WEB) / TCP(sport=40001, dport=443, flags="S"))),
            ("client", bytes(IP(src=C, dst=S) / TCP(sport=40002, dport=8080, flags="S"))),
            ("server", bytes(IP(src=S, dst=C) / TCP(sport=8080, dport=40002, flags="RA"))),
            ("client", bytes(IP(src=C, dst=S) / TCP(sport=40003, dport=22, flags="S"))),
            ("server", bytes(IP(src=S, dst=C) / TCP(sport=22, dport=40003, flags="SA")))]
    w = tunnel(pkts).at(4)
    w.gre("client", b"\xff\x03\xc0\x21\x09\x01\x00\x08\x00\x00\x00\x00")
    r = run(w.frames, secrets(("User", "clientPass")))
    (silent,) = problems(r, "tcp-no-answer")
    assert f"{C}:40001 → {WEB}:443: 2 SYN" in silent.detail and silent.count == 2
    (refused,) = problems(r, "tcp-refused")
    assert f"{S}:8080" in refused.detail
    kinds = {p["kind"] for p in r.inside().as_dict(r.tracker.now)["problems"]}
    assert kinds == {"tcp-no-answer", "tcp-refused"}


def test_mss_above_the_mru_and_the_path() -> None:
    syn = bytes(IP(src=C, dst=WEB) / TCP(sport=40004, dport=443, flags="S", options=[("MSS", 1460)]))
    r = run(tunnel([("client", syn)], mru=1400).frames, secrets(("User", "clientPass")))
    (p,) = problems(r, "mss-above-mru")
    assert "MSS 1460" in p.detail and "MRU 1400" in p.detail and "1360" in p.detail
    r = run(tunnel([("client", syn)]).frames, secrets(("User", "clientPass")))
    (p,) = problems(r, "mss-above-path-mtu")
    assert "1500-octet path" in p.detail
    small = bytes(IP(src=C, dst=WEB) / TCP(sport=40005, dport=443, flags="S", options=[("MSS", 1350)]))
    r = run(tunnel([("client", small)]).frames, secrets(("User", "clientPass")))
    assert not r.inside().inner.problems(r.tracker.now)


def test_icmp_fragmentation_needed_and_unreachable() -> None:
    quoted = IPerror(src=C, dst=WEB) / TCPerror(sport=40006, dport=443)
    pkts = [("server", bytes(IP(src=S, dst=C) / ICMP(type=3, code=4, nexthopmtu=1400) / quoted)),
            ("server", bytes(IP(src=S, dst=C) / ICMP(type=3, code=13) / quoted))]
    r = run(tunnel(pkts).frames, secrets(("User", "clientPass")))
    (frag,) = problems(r, "icmp-frag-needed")
    assert "MTU 1400" in frag.detail
    (unreach,) = problems(r, "icmp-unreachable")
    assert "administratively prohibited" in unreach.detail


def test_tables_are_bounded() -> None:
    from pptptop.inside import inner as mod

    t = InnerTraffic()
    for i in range(mod.MAX_FLOWS + 10):
        t.packet(i, 1.0, Direction.TO_SERVER, bytes(IP(src=C, dst=WEB) / UDP(sport=1000 + i, dport=9)))
    assert len(t.flows) == mod.MAX_FLOWS and t.flows_dropped == 10
    t.packet(1, 1.0, Direction.TO_SERVER, b"\x45\x00")  # cut short: counted, never raised
    t.packet(2, 1.0, Direction.TO_SERVER, b"\x00" * 40)
    assert t.malformed == 2
