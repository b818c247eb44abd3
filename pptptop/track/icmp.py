"""ICMP errors about a tunnel: the GRE or TCP 1723 packet an ICMP error quotes tells whose it is.

An ICMPv4 error (RFC 792) or ICMPv6 error (RFC 4443 §3) carries the start of
the packet that caused it; when that is GRE of a known call or a segment of a
known control connection, the error is the tunnel's (e.g. a firewall's
protocol-unreachable for GRE, lab s3b).
"""

from __future__ import annotations

from typing import Any

from pptptop.decode.errors import DecodeError
from pptptop.decode.ip import ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPProtocol, decode_ip
from pptptop.track.actions import TunnelActions
from pptptop.track.events import Event, EventKind
from pptptop.track.model import Direction, Packet, PacketKind, Tunnel

#: ICMPv4 errors that quote the offending packet: destination unreachable, time exceeded, parameter problem
ICMP4_ERRORS = (3, 11, 12)
#: ICMPv6 errors: destination unreachable, packet too big, time exceeded, parameter problem
ICMP6_ERRORS = (1, 2, 3, 4)
ICMP_HEADER = 8
MAX_ERRORS_KEPT = 16


def icmp_packet(
    tracker: TunnelActions, number: int, ts: float, iface: str, linktype: int, data: bytes, ip: Any
) -> None:
    """ICMP errors quoting our GRE or TCP 1723 (e.g. protocol-unreachable for GRE, lab s3b)."""
    tracker.stats.icmp += 1
    off, end = ip.payload_offset, ip.payload_end
    if end - off < ICMP_HEADER + 20:
        return
    itype, icode = data[off], data[off + 1]
    if ip.version == 4 and itype not in ICMP4_ERRORS:
        return
    if ip.version == 6 and itype not in ICMP6_ERRORS:
        return
    try:
        inner = decode_ip(data, off + ICMP_HEADER, ETHERTYPE_IPV4 if ip.version == 4 else ETHERTYPE_IPV6)
    except DecodeError:
        return
    t: Tunnel | None = None
    d = Direction.TO_SERVER
    iend = min(end, len(data))
    if inner.protocol == IPProtocol.GRE and inner.payload_offset + 8 <= iend:
        cid = int.from_bytes(data[inner.payload_offset + 6 : inner.payload_offset + 8], "big")
        ent = tracker.gre_entry(iface, inner.src_raw, inner.dst_raw, cid)
        if ent is not None:
            t, d = ent
    elif inner.protocol == IPProtocol.TCP and inner.payload_offset + 4 <= iend:
        sport = int.from_bytes(data[inner.payload_offset : inner.payload_offset + 2], "big")
        dport = int.from_bytes(data[inner.payload_offset + 2 : inner.payload_offset + 4], "big")
        conn = tracker.connection((iface, inner.src, sport, inner.dst, dport)) or tracker.connection(
            (iface, inner.dst, dport, inner.src, sport)
        )
        if conn is not None and conn.tunnels:
            t = conn.tunnels[-1]
            d = Direction.TO_SERVER if inner.dst == conn.server_ip else Direction.TO_CLIENT
    if t is None:
        return
    what = icmp_text(ip.version, itype, icode)
    gre = inner.protocol == IPProtocol.GRE
    carried = "GRE" if gre else "TCP"
    text = f"{what} from {ip.src} for {carried} {inner.src} → {inner.dst}"
    if len(t.icmp_errors) < MAX_ERRORS_KEPT:
        t.icmp_errors.append(text)
    t.changed = True
    tracker.store(t, Packet(number, ts, iface, linktype, d, PacketKind.ICMP, text, data))
    tracker.emit(
        Event(
            ts,
            EventKind.ICMP,
            t,
            number,
            d,
            detail={
                "type": itype,
                "code": icode,
                "from": ip.src,
                "inner_protocol": inner.protocol,
                "text": text,
                "late": late(t, gre),
            },
        )
    )


def late(t: Tunnel, gre: bool) -> bool:
    """An ICMP error that is part of an orderly teardown, not a path problem.

    Once one side has begun to end the session (LCP Terminate-Request, Call-Clear-Request, Call-Disconnect-
    Notify, Stop-Control-Connection, TCP FIN or RST), the last packets race the teardown: a peer that closed
    its GRE socket answers GRE still in flight with protocol-unreachable, a NAT whose PPTP helper dropped the
    call's mapping at the Call-Disconnect-Notify answers the server's late GRE itself, a closed port answers
    a late TCP segment. Only when the path had worked: GRE seen both ways (TCP: established); an ICMP error
    about a tunnel whose GRE never went both ways says why, even if it comes after a give-up.
    """
    if t.close.how is None:
        return False
    if gre:
        return t.traffic[Direction.TO_SERVER].packets > 0 and t.traffic[Direction.TO_CLIENT].packets > 0
    return t.tcp.established


def icmp_text(version: int, itype: int, code: int) -> str:
    """One line for an ICMP error: type and code (RFC 792, RFC 1812 §5.2.7.1; RFC 4443 §3)."""
    if version == 4 and itype == 3:
        return {
            0: "ICMP network unreachable",
            1: "ICMP host unreachable",
            2: "ICMP protocol unreachable",
            3: "ICMP port unreachable",
            4: "ICMP fragmentation needed",
            9: "ICMP network prohibited",
            10: "ICMP host prohibited",
            13: "ICMP administratively prohibited",
        }.get(code, f"ICMP destination unreachable (code {code})")
    if version == 4 and itype == 11:
        return "ICMP time exceeded"
    if version == 6 and itype == 1:
        return f"ICMPv6 destination unreachable (code {code})"
    if version == 6 and itype == 4:
        return "ICMPv6 parameter problem"
    return f"ICMP type {itype} code {code}"
