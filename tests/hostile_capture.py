"""A lab capture whose wire strings were rewritten to attack the terminal that prints pptptop's output.

``s2-mschapv2-wrong-password-inside.pcap`` (a real failed MS-CHAPv2 login,
tests/data/SOURCES.md) with the client's host name (SCCRQ), the CHAP user
name, the MS-CHAP Failure message and the server's LCP Terminate-Request text
replaced by ESC[2J (clear screen), an OSC 52 clipboard write, BEL and CR/LF.
Lengths and checksums are recomputed by scapy, so the tunnel still fails in
auth exactly as in the lab.
"""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import GRE_PPTP
from scapy.layers.ppp import PPP_CHAP, PPP_CHAP_ChallengeResponse, PPP_LCP_Terminate
from scapy.layers.pptp import PPTPStartControlConnectionRequest
from scapy.utils import rdpcap, wrpcap

DATA = Path(__file__).resolve().parent / "data"
SOURCE = DATA / "s2-mschapv2-wrong-password-inside.pcap"

OSC52 = b"\x1b]52;c;cHduZWQ=\x07"  # puts "pwned" on the clipboard of a terminal that allows it
HOST = b"\x1b[2J" + OSC52 + b"host\r\nfake: line"
USER = OSC52 + b"\x1b[2Jbob\r\ninjected"
FAILURE = b"E=691 R=1 C=b5ee1e340a640999fc9d513d482123f6 V=0 M=denied" + OSC52 + b"\r\n"
TERMINATE = b"bye" + OSC52 + b"\r\nforged line\x1b[2J"
#: the control bytes none of these may put on a terminal
RAW_CONTROLS = ("\x1b", "\x07", "\r")


def write_hostile(path: Path, *, host: bytes = HOST, user: bytes = USER, failure: bytes = FAILURE,
                  terminate: bytes = TERMINATE) -> Path:
    """Write the rewritten capture to ``path`` (classic pcap, as the source); any string can be chosen."""
    out = []
    for p in rdpcap(str(SOURCE)):
        changed = True
        if p.haslayer(PPTPStartControlConnectionRequest):
            p[PPTPStartControlConnectionRequest].host_name = host
        elif p.haslayer(PPP_CHAP_ChallengeResponse) and p[PPP_CHAP_ChallengeResponse].code == 2:
            p[PPP_CHAP_ChallengeResponse].optional_name = user
            del p[PPP_CHAP_ChallengeResponse].len
        elif p.haslayer(PPP_CHAP) and p[PPP_CHAP].code == 4:
            p[PPP_CHAP].data = failure
            del p[PPP_CHAP].len
        elif (p.haslayer(PPP_LCP_Terminate) and p[PPP_LCP_Terminate].code == 5
              and p[PPP_LCP_Terminate].data == b"Authentication failed"):
            p[PPP_LCP_Terminate].data = terminate
            del p[PPP_LCP_Terminate].len
        else:
            changed = False
        if changed:
            del p[IP].len, p[IP].chksum
            if p.haslayer(TCP):
                del p[TCP].chksum
            if p.haslayer(GRE_PPTP):
                del p[GRE_PPTP].payload_len
            ts = p.time
            p = p.__class__(bytes(p))
            p.time = ts
        out.append(p)
    wrpcap(str(path), out)
    return path
