"""A crafted PPTP session whose every wire string tries to take over the terminal.

Host name, vendor, user (CHAP name), server name, Failure message and LCP
Terminate text carry Rich markup (``[red]``, ``[/]``, ``[link=…]``), ANSI
escapes (``ESC[2J`` clear screen, an OSC title) and control characters.
Built with scapy's PPTP/GRE/PPP layers, written as classic pcap.
"""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import GRE_PPTP, Ether
from scapy.layers.ppp import PPP, PPP_CHAP, PPP_CHAP_ChallengeResponse, PPP_LCP_Configure, PPP_LCP_Terminate
from scapy.layers.pptp import (
    PPTPOutgoingCallReply,
    PPTPOutgoingCallRequest,
    PPTPStartControlConnectionReply,
    PPTPStartControlConnectionRequest,
)
from scapy.packet import Packet
from scapy.utils import wrpcap

HOST = "[red]evil[/]\x1b[2J"
VENDOR = "[bold]v[/bold]\x07\x08"
USER = "\x1b]0;pwned\x07[red]mallory[/red]"
SERVER_NAME = "[link=http://x]srv[/link]"
FAILURE = "E=691 R=0 V=3 M=[blink]denied\x1b[31m"
TERMINATE = "bye [/][reverse]\x1b[?1049h"
HOSTILE = (HOST, VENDOR, USER, SERVER_NAME, FAILURE, TERMINATE)

CLIENT, SERVER = "10.9.0.2", "10.9.0.1"
CPORT = 40000


def frames() -> list[Packet]:
    """The packets, in order: TCP handshake, SCCRQ/RP, OCRQ/RP, LCP, CHAP failure, TermReq."""
    e = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
    er = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    out: list[Packet] = []
    cseq, sseq = 1000, 5000

    def c2s(payload: bytes = b"", flags: str = "PA") -> None:
        nonlocal cseq
        out.append(e / IP(src=CLIENT, dst=SERVER) / TCP(sport=CPORT, dport=1723, seq=cseq, ack=sseq,
                                                           flags=flags) / payload)
        cseq += len(payload) + (1 if "S" in flags or "F" in flags else 0)

    def s2c(payload: bytes = b"", flags: str = "PA") -> None:
        nonlocal sseq
        out.append(er / IP(src=SERVER, dst=CLIENT) / TCP(sport=1723, dport=CPORT, seq=sseq, ack=cseq,
                                                            flags=flags) / payload)
        sseq += len(payload) + (1 if "S" in flags or "F" in flags else 0)

    c2s(flags="S")
    s2c(flags="SA")
    c2s(bytes(PPTPStartControlConnectionRequest(host_name=HOST.encode(), vendor_string=VENDOR.encode())))
    s2c(bytes(PPTPStartControlConnectionReply(host_name=HOST.encode(), vendor_string=VENDOR.encode())))
    c2s(bytes(PPTPOutgoingCallRequest(call_id=7)))
    s2c(bytes(PPTPOutgoingCallReply(call_id=9, peer_call_id=7)))

    def gre_c(ppp: object, seq: int) -> None:
        out.append(e / IP(src=CLIENT, dst=SERVER) / GRE_PPTP(call_id=9, seqnum_present=1, sequence_number=seq)
                   / ppp)

    def gre_s(ppp: object, seq: int) -> None:
        out.append(er / IP(src=SERVER, dst=CLIENT) / GRE_PPTP(call_id=7, seqnum_present=1, sequence_number=seq)
                   / ppp)

    gre_c(PPP(proto=0xC021) / PPP_LCP_Configure(code=1, id=1), 1)
    gre_s(PPP(proto=0xC021) / PPP_LCP_Configure(code=1, id=1), 1)
    gre_s(PPP(proto=0xC021) / PPP_LCP_Configure(code=2, id=1), 2)
    gre_c(PPP(proto=0xC021) / PPP_LCP_Configure(code=2, id=1), 2)
    gre_s(PPP(proto=0xC223) / PPP_CHAP_ChallengeResponse(code=1, id=5, value=b"\x11" * 16,
                                                            optional_name=SERVER_NAME.encode()), 3)
    gre_c(PPP(proto=0xC223) / PPP_CHAP_ChallengeResponse(code=2, id=5, value=b"\x22" * 49,
                                                            optional_name=USER.encode()), 3)
    gre_s(PPP(proto=0xC223) / PPP_CHAP(code=4, id=5, data=FAILURE.encode()), 4)
    gre_s(PPP(proto=0xC021) / PPP_LCP_Terminate(code=5, id=2, data=TERMINATE.encode()), 5)
    return out


def write_hostile(path: Path) -> Path:
    pkts = frames()
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i * 0.01
    wrpcap(str(path), pkts)
    return path
