"""A tiny PPTP PAC (server) and PNS (client) for the live NAT test, run in network namespaces.

Real TCP sockets carry the control messages (RFC 2637 §2, built with scapy's
PPTP layers); a raw IPPROTO_GRE socket carries enhanced GRE (RFC 2637 §4.1)
with a PPP LCP Configure-Request inside. Each peer writes down what it
actually sent and received, so the test compares pptptop with what crossed
the kernel's NAT, not with numbers it worked out itself.

    python pptp_peers.py server --bind 198.51.100.2 --report srv.json --stop stop-file
    python pptp_peers.py client --server 198.51.100.2 --call-id 4660 --report c1.json \
        --ready c1.ready --release c1.release
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from scapy.layers.l2 import GRE_PPTP
from scapy.layers.ppp import PPP, PPP_LCP_Configure, PPP_LCP_Echo, PPP_LCP_Magic_Number_Option
from scapy.layers.pptp import (
    PPTPCallClearRequest,
    PPTPOutgoingCallReply,
    PPTPOutgoingCallRequest,
    PPTPStartControlConnectionReply,
    PPTPStartControlConnectionRequest,
)

PPTP_PORT = 1723
IPPROTO_GRE = 47
SCCRQ, SCCRP, OCRQ, OCRP, CCRQ = 1, 2, 7, 8, 12
LIMIT = 30.0  # no wait in here lasts longer


def read_message(sock: socket.socket, deadline: float) -> bytes | None:
    """One control message, framed by its Length (RFC 2637 §2); None when the peer closed."""
    buf = b""
    need = 2
    while len(buf) < need:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no PPTP message in time")
        sock.settimeout(left)
        chunk = sock.recv(need - len(buf))
        if not chunk:
            return None
        buf += chunk
        if len(buf) >= 2 and need == 2:
            need = max(12, struct.unpack("!H", buf[:2])[0])
    return buf


def gre_packet(key: int, seq: int, magic: int) -> bytes:
    """Enhanced GRE carrying an LCP Configure-Request with a Magic-Number (RFC 1661 §6.4)."""
    lcp = PPP_LCP_Configure(code=1, id=seq & 0xFF, options=[PPP_LCP_Magic_Number_Option(magic_number=magic)])
    return bytes(GRE_PPTP(call_id=key, seqnum_present=1, sequence_number=seq) / PPP(proto=0xC021) / lcp)


def gre_echo(key: int, seq: int, magic: int) -> bytes:
    """Enhanced GRE carrying an LCP Echo-Request (RFC 1661 §5.8), a server's keepalive."""
    echo = PPP_LCP_Echo(code=9, id=seq & 0xFF, magic_number=magic)
    return bytes(GRE_PPTP(call_id=key, seqnum_present=1, sequence_number=seq) / PPP(proto=0xC021) / echo)


def parse_gre(datagram: bytes) -> tuple[str, int] | None:
    """(source address, key Call ID) of a raw IPv4 datagram carrying enhanced GRE."""
    if len(datagram) < 20:
        return None
    ihl = (datagram[0] & 0x0F) * 4
    if len(datagram) < ihl + 8 or datagram[9] != IPPROTO_GRE:
        return None
    flags_version, proto, _plen, call_id = struct.unpack_from("!HHHH", datagram, ihl)
    if flags_version & 7 != 1 or proto != 0x880B:
        return None
    return socket.inet_ntoa(datagram[12:16]), call_id


def write_json(path: str, data: Any) -> None:
    tmp = path + ".tmp"
    Path(tmp).write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


# ---------------------------------------------------------------------- server (PAC)
class Server:
    def __init__(self, bind: str, report: str, stop: str, beacon: float = 0.0) -> None:
        self.bind, self.report, self.stop, self.beacon = bind, report, stop, beacon
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []  # one per Outgoing-Call-Request
        self.next_call_id = 0x0500
        self.gre = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_GRE)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((bind, PPTP_PORT))
        self.listener.listen(16)

    def run(self) -> None:
        threading.Thread(target=self.gre_loop, daemon=True).start()
        end = time.monotonic() + 4 * LIMIT
        while not os.path.exists(self.stop) and time.monotonic() < end:
            r, _, _ = select.select([self.listener], [], [], 0.1)
            if r:
                conn, addr = self.listener.accept()
                threading.Thread(target=self.control, args=(conn, addr), daemon=True).start()
        self.save()

    def save(self) -> None:
        with self.lock:
            write_json(self.report, {"calls": self.calls})

    def control(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        deadline = time.monotonic() + 4 * LIMIT
        try:
            while True:
                msg = read_message(conn, deadline)
                if msg is None:
                    break
                mtype = struct.unpack_from("!H", msg, 8)[0]
                if mtype == SCCRQ:
                    conn.sendall(bytes(PPTPStartControlConnectionReply(
                        host_name=b"pptptop-pac", vendor_string=b"pptptop-test")))
                elif mtype == OCRQ:
                    call_id, serial = struct.unpack_from("!HH", msg, 12)
                    with self.lock:
                        mine = self.next_call_id
                        self.next_call_id += 0x80
                        self.calls.append({"peer_ip": addr[0], "peer_port": addr[1], "ocrq_call_id": call_id,
                                           "serial": serial, "server_call_id": mine, "gre_in": [],
                                           "gre_out": [], "ccrq_call_id": None})
                    conn.sendall(bytes(PPTPOutgoingCallReply(call_id=mine, peer_call_id=call_id)))
                    self.save()
                    if self.beacon:
                        threading.Thread(target=self.keepalive, args=(conn, addr[0], call_id),
                                         daemon=True).start()
                elif mtype == CCRQ:
                    cid = struct.unpack_from("!H", msg, 12)[0]
                    with self.lock:
                        for c in self.calls:
                            if c["peer_ip"] == addr[0] and c["peer_port"] == addr[1]:
                                c["ccrq_call_id"] = cid
                    self.save()
        except (OSError, TimeoutError):
            pass
        finally:
            conn.close()

    def keepalive(self, conn: socket.socket, peer: str, key: int) -> None:
        """LCP Echo-Requests to the client every ``beacon`` seconds while its control connection is open."""
        seq = 1000
        end = time.monotonic() + 4 * LIMIT
        while conn.fileno() != -1 and not os.path.exists(self.stop) and time.monotonic() < end:
            self.gre.sendto(gre_echo(key, seq, 0x5E4A0000), (peer, 0))
            seq += 1
            time.sleep(self.beacon)

    def gre_loop(self) -> None:
        seq = 1
        while True:
            data, _ = self.gre.recvfrom(65535)
            got = parse_gre(data)
            if got is None:
                continue
            src, key = got
            with self.lock:
                call = next((c for c in self.calls if c["server_call_id"] == key), None)
                if call is None or len(call["gre_in"]) >= 16:
                    continue
                call["gre_in"].append({"from": src, "key": key})
                reply_key = call["ocrq_call_id"]
                call["gre_out"].append({"to": src, "key": reply_key})
            self.gre.sendto(gre_packet(reply_key, seq, 0x5E4A0000 | seq), (src, 0))
            seq += 1
            self.save()


# ---------------------------------------------------------------------- client (PNS)
def client(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {"call_id": args.call_id, "serial": args.serial}
    gre = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_GRE)  # open first: no ICMP for early GRE
    gre.bind((args.bind, 0))  # the source address of our GRE, and only GRE to it is received
    sock = socket.create_connection((args.server, PPTP_PORT), timeout=LIMIT, source_address=(args.bind, 0))
    deadline = time.monotonic() + LIMIT
    report["local_ip"], report["local_port"] = sock.getsockname()
    sock.sendall(bytes(PPTPStartControlConnectionRequest(host_name=b"pptptop-pns", vendor_string=b"pptptop-test")))
    msg = read_message(sock, deadline)
    if msg is None or struct.unpack_from("!H", msg, 8)[0] != SCCRP:
        raise SystemExit("no Start-Control-Connection-Reply")
    sock.sendall(bytes(PPTPOutgoingCallRequest(call_id=args.call_id, call_serial_number=args.serial)))
    msg = read_message(sock, deadline)
    if msg is None or struct.unpack_from("!H", msg, 8)[0] != OCRP:
        raise SystemExit("no Outgoing-Call-Reply")
    server_call_id, peer_call_id = struct.unpack_from("!HH", msg, 12)
    report["server_call_id"], report["ocrp_peer_call_id"] = server_call_id, peer_call_id
    report["gre_received"] = []
    magic = int.from_bytes(os.urandom(4), "big") or 1
    for seq in range(1, args.gre + 1):
        gre.sendto(gre_packet(server_call_id, seq, magic), (args.server, 0))
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            r, _, _ = select.select([gre], [], [], max(0.0, end - time.monotonic()))
            if not r:
                break
            got = parse_gre(gre.recv(65535))
            if got is not None and got[0] == args.server:
                report["gre_received"].append({"from": got[0], "key": got[1]})
                break
    write_json(args.report, report)
    Path(args.ready).touch()
    end = time.monotonic() + LIMIT
    while not os.path.exists(args.release) and time.monotonic() < end:
        time.sleep(0.05)
    sock.sendall(bytes(PPTPCallClearRequest(call_id=args.call_id)))
    time.sleep(0.2)
    sock.close()
    report["cleared"] = True
    write_json(args.report, report)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--bind", required=True)
    s.add_argument("--report", required=True)
    s.add_argument("--stop", required=True)
    s.add_argument("--beacon", type=float, default=0.0, help="send LCP echoes every N seconds after a call")
    c = sub.add_parser("client")
    c.add_argument("--server", required=True)
    c.add_argument("--bind", required=True, help="the client's own address")
    c.add_argument("--call-id", type=int, required=True)
    c.add_argument("--serial", type=int, default=0)
    c.add_argument("--gre", type=int, default=3)
    c.add_argument("--report", required=True)
    c.add_argument("--ready", required=True)
    c.add_argument("--release", required=True)
    args = p.parse_args(argv)
    if args.role == "server":
        Server(args.bind, args.report, args.stop, args.beacon).run()
        return 0
    return client(args)


if __name__ == "__main__":
    sys.exit(main())
