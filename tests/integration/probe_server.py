"""A scripted PPTP server (PAC) for the probe's tests, made to fail at a chosen step; run in a namespace.

Real TCP on 1723 for the control messages (built with scapy's PPTP layers, as
pptp_peers.py does), enhanced GRE over a raw socket for PPP: LCP asking for
MS-CHAPv2, MS-CHAPv2 checked against the NT hash of ``--password``
(pptptop.decode.mschap_crypto, RFC 2759), MS-CHAPv1 checked with code of its
own (pycryptodome's MD4 and DES, RFC 2433: not the probe's functions), CCP offering stateless MPPE-128 and
IPCP assigning an address and two DNS servers by Nak (RFC 1332, RFC 1877).
It writes down what it received so the tests can check the probe's teardown
from the server's side.

    python probe_server.py --bind 10.91.0.2 --mode ok --report srv.json --stop stop-file
"""

from __future__ import annotations

import argparse
import hashlib
import os
import select
import socket
import struct
import sys
import time
from typing import Any

from Crypto.Cipher import DES
from Crypto.Hash import MD4
from pptp_peers import LIMIT, PPTP_PORT, read_message, write_json
from scapy.layers.l2 import GRE_PPTP
from scapy.layers.pptp import (
    PPTPCallDisconnectNotify,
    PPTPOutgoingCallReply,
    PPTPStartControlConnectionReply,
    PPTPStopControlConnectionReply,
)
from scapy.packet import Raw

from pptptop.decode.mschap_crypto import generate_authenticator_response, generate_nt_response, nt_password_hash

MODES = ("ok", "sccrp-refused", "ocrp-busy", "auth-eap", "auth-691", "bad-authenticator", "ccp-reject",
         "close-on-clear", "wrong-key", "auth-649", "chap-md5", "pap", "mschapv1", "eap-then-v1",
         "eap-then-both")
#: what the server's LCP Configure-Request asks for first, per mode (MS-CHAPv2 otherwise)
FIRST_ASK = {"auth-eap": "eap", "eap-then-v1": "eap", "eap-then-both": "eap", "pap": "pap", "chap-md5": "md5",
             "mschapv1": "v1"}
AUTH_OPTION = {"eap": struct.pack("!H", 0xC227), "pap": struct.pack("!H", 0xC023),
               "md5": struct.pack("!HB", 0xC223, 5), "v1": struct.pack("!HB", 0xC223, 0x80),
               "v2": struct.pack("!HB", 0xC223, 0x81)}
LCP, PAP, CHAP, IPCP, CCP = 0xC021, 0xC023, 0xC223, 0x8021, 0x80FD
SERVER_CALL_ID = 0x0A0B
ADDRESS, DNS1, DNS2, SERVER_IP = "192.0.2.10", "192.0.2.53", "192.0.2.54", "192.0.2.1"
MPPE_128_STATELESS = 0x01000040


def ppp(proto: int, code: int, ident: int, data: bytes) -> bytes:
    return struct.pack("!HBBH", proto, code, ident, len(data) + 4) + data


def opts(*items: tuple[int, bytes]) -> bytes:
    return b"".join(bytes((k, len(v) + 2)) + v for k, v in items)


def parse_opts(data: bytes) -> dict[int, bytes]:
    out, off = {}, 0
    while off + 2 <= len(data) and data[off + 1] >= 2:
        out[data[off]] = data[off + 2:off + data[off + 1]]
        off += data[off + 1]
    return out


class Pac:
    def __init__(self, args: argparse.Namespace) -> None:
        self.mode, self.user, self.password = args.mode, args.user.encode(), args.password
        self.report_path, self.stop = args.report, args.stop
        self.got: dict[str, Any] = {"mode": self.mode, "control": [], "lcp": [], "fin": False}
        self.gre = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((args.bind, PPTP_PORT))
        self.listener.listen(4)
        self.peer: str | None = None
        self.seq = 0
        self.new_connection()

    def new_connection(self) -> None:
        self.peer_call_id: int | None = None
        self.lcp_sent_at = 0.0
        self.lcp_acked = self.lcp_peer_acked = False
        self.asks = FIRST_ASK.get(self.mode, "v2")
        self.lcp_ident = 1
        self.challenge = os.urandom(8 if self.asks == "v1" else 16)
        self.got.update({"control": [], "lcp": [], "fin": False, "asked": [self.asks]})
        for k in ("challenged", "terminated", "response_valid", "ipcp_acked"):
            self.got.pop(k, None)

    def save(self) -> None:
        write_json(self.report_path, self.got)

    def send(self, frame: bytes) -> None:
        assert self.peer is not None and self.peer_call_id is not None
        self.seq += 1
        key = self.peer_call_id ^ 0x5555 if self.mode == "wrong-key" else self.peer_call_id  # a NAT's mistake
        pkt = GRE_PPTP(call_id=key, seqnum_present=1, sequence_number=self.seq)
        self.gre.sendto(bytes(pkt / Raw(load=b"\xff\x03" + frame)), (self.peer, 0))

    def lcp_request(self) -> None:
        auth = AUTH_OPTION[self.asks]
        self.send(ppp(LCP, 1, self.lcp_ident, opts((1, struct.pack("!H", 1400)), (2, bytes(4)), (3, auth),
                                      (5, b"\x5e\x4a\x00\x01"), (7, b""), (8, b""))))
        self.lcp_sent_at = time.monotonic()

    def run(self) -> None:
        end = time.monotonic() + 4 * LIMIT
        conn: socket.socket | None = None
        while not os.path.exists(self.stop) and time.monotonic() < end:
            socks = [self.gre, conn] if conn is not None else [self.listener]
            r, _, _ = select.select(socks, [], [], 0.2)
            if self.listener in r:
                conn, addr = self.listener.accept()
                self.peer = addr[0]
                self.new_connection()
            if conn is not None and conn in r and not self.control(conn):
                conn.close()
                conn = None
                self.got["fin"] = True
                self.save()
            if self.gre in r:
                self.on_gre(self.gre.recv(65535))
            if self.peer_call_id is not None and not self.lcp_acked and self.got["control"][-1:] != ["ccrq"] \
                    and time.monotonic() - self.lcp_sent_at > 1.0 and self.mode != "ocrp-busy":
                self.lcp_request()
        self.save()

    def control(self, conn: socket.socket) -> bool:
        try:
            msg = read_message(conn, time.monotonic() + LIMIT)
        except (OSError, TimeoutError):
            return False
        if msg is None:
            return False
        mtype = struct.unpack_from("!H", msg, 8)[0]
        names = {1: "sccrq", 3: "stopccrq", 7: "ocrq", 12: "ccrq"}
        self.got["control"].append(names.get(mtype, mtype))
        if mtype == 1:
            result = 4 if self.mode == "sccrp-refused" else 1
            conn.sendall(bytes(PPTPStartControlConnectionReply(
                result_code=result, host_name=b"pptptop-pac", vendor_string=b"scripted \x1b[31mPAC",
                firmware_revision=0x0107, maximum_channels=8)))
        elif mtype == 7:
            self.peer_call_id = struct.unpack_from("!H", msg, 12)[0]
            result = 4 if self.mode == "ocrp-busy" else 1
            conn.sendall(bytes(PPTPOutgoingCallReply(call_id=SERVER_CALL_ID, peer_call_id=self.peer_call_id,
                                                     result_code=result)))
            if result == 1:
                self.lcp_request()  # as pppd: the server's LCP goes out as soon as the call is up
        elif mtype == 12 and self.mode == "close-on-clear":
            return False  # as pptpd 1.4.0 does: the control connection closes at a Call-Clear-Request
        elif mtype == 12:
            conn.sendall(bytes(PPTPCallDisconnectNotify(call_id=SERVER_CALL_ID, result_code=4)))
        elif mtype == 3:
            conn.sendall(bytes(PPTPStopControlConnectionReply(result_code=1)))
        self.save()
        return True

    def on_gre(self, datagram: bytes) -> None:
        ihl = (datagram[0] & 0x0F) * 4
        flags, _proto, _plen, key = struct.unpack_from("!HHHH", datagram, ihl)
        if key != SERVER_CALL_ID or socket.inet_ntoa(datagram[12:16]) != self.peer:
            return
        off = ihl + 8 + (4 if flags & 0x1000 else 0) + (4 if flags & 0x0080 else 0)
        frame = datagram[off:]
        if frame[:2] == b"\xff\x03":
            frame = frame[2:]
        if len(frame) < 6:
            return
        proto, code, ident, length = struct.unpack_from("!HBBH", frame)
        data = frame[6:2 + length]
        if proto == LCP:
            self.on_lcp(code, ident, data)
        elif proto == CHAP and code == 2 and self.mode == "chap-md5":
            value = data[1:1 + data[0]]
            good = value == hashlib.md5(bytes((ident,)) + self.password.encode() + self.challenge).digest()
            self.got["response_valid"] = good
            self.send(ppp(CHAP, 3 if good else 4, ident, b"Welcome" if good else b"Access denied"))
            if good:
                self.ncps_up()
        elif proto == CHAP and code == 2 and self.asks == "v1":
            self.on_v1_response(ident, data)
        elif proto == CHAP and code == 2:
            self.on_response(ident, data)
        elif proto == PAP and code == 1:
            user = data[1:1 + data[0]]
            rest = data[1 + data[0]:]
            good = user == self.user and rest[1:1 + rest[0]] == self.password.encode()
            self.got["response_valid"] = good
            self.send(ppp(PAP, 2 if good else 3, ident, b"\x02OK" if good else b"\x06Denied"))
            if good:
                self.ncps_up()
        elif proto in (IPCP, CCP):
            self.on_ncp(proto, code, ident, data)
        self.save()

    def on_lcp(self, code: int, ident: int, data: bytes) -> None:
        self.got["lcp"].append(code)
        if code == 1:
            self.send(ppp(LCP, 2, ident, data))
            self.lcp_peer_acked = True
        elif code == 2:
            self.lcp_acked = True
        elif code == 3 and self.mode in ("eap-then-v1", "eap-then-both") and self.asks == "eap":
            # the client Nak'd EAP: as pppd, take its suggestion if allowed, else the next method allowed
            suggested = parse_opts(data).get(3, b"")
            self.asks = "v2" if self.mode == "eap-then-both" and suggested == AUTH_OPTION["v2"] else "v1"
            if self.asks == "v1":
                self.challenge = os.urandom(8)
            self.got["asked"].append(self.asks)
            self.lcp_ident += 1
            self.lcp_request()
        elif code == 3 and self.mode == "auth-eap":
            self.send(ppp(LCP, 5, 2, b"No authentication protocol in common"))
            self.got["terminated"] = True
            self.lcp_acked = True  # no more Configure-Requests
        elif code == 5:
            self.send(ppp(LCP, 6, ident, b""))
        if self.lcp_acked and self.lcp_peer_acked and not self.got.get("challenged") \
                and not self.got.get("terminated"):
            self.got["challenged"] = True
            if self.mode != "pap":
                self.send(ppp(CHAP, 1, 7, bytes((len(self.challenge),)) + self.challenge + b"pptptop-pac"))

    def on_response(self, ident: int, data: bytes) -> None:
        value = data[1:1 + data[0]]
        name = data[1 + data[0]:]
        peer, nt = value[:16], value[24:48]
        h = nt_password_hash(self.password)
        good = name == self.user and nt == generate_nt_response(self.challenge, peer, name, h)
        self.got["response_valid"] = good
        if self.mode == "auth-649":
            self.send(ppp(CHAP, 4, ident, b"E=649 R=0 C=" + self.challenge.hex().upper().encode()
                          + b" V=3 M=No dial-in permission"))
            self.send(ppp(LCP, 5, 3, b"Authentication failed"))
            return
        if not good or self.mode == "auth-691":
            self.send(ppp(CHAP, 4, ident, b"E=691 R=0 C=" + self.challenge.hex().upper().encode()
                          + b" V=3 M=Authentication failed"))
            self.send(ppp(LCP, 5, 3, b"Authentication failed"))
            return
        s = generate_authenticator_response(h, nt, peer, self.challenge, name)
        if self.mode == "bad-authenticator":
            s = "0" * 40
        self.send(ppp(CHAP, 3, ident, f"S={s} M=Access granted".encode()))
        self.ncps_up()

    def on_v1_response(self, ident: int, data: bytes) -> None:
        """RFC 2433 §3: 24 octets of LAN Manager response, 24 of NT response, the UseNT flag."""
        value = data[1:1 + data[0]]
        name = data[1 + data[0]:]
        self.got["v1_value_length"] = len(value)
        self.got["v1_use_nt"] = value[48] if len(value) == 49 else None
        self.got["v1_lm_zero"] = value[:24] == bytes(24)
        good = name == self.user and len(value) == 49 and value[48] == 1 \
            and value[24:48] == v1_nt_response(self.challenge, self.password)
        self.got["response_valid"] = good
        if not good:
            self.send(ppp(CHAP, 4, ident, b"E=691 R=1"))
            self.send(ppp(LCP, 5, 3, b"Authentication failed"))
            return
        self.send(ppp(CHAP, 3, ident, b"Access granted"))
        self.ncps_up()

    def ncps_up(self) -> None:
        self.send(ppp(CCP, 1, 1, opts((18, struct.pack("!I", MPPE_128_STATELESS)))))
        self.send(ppp(IPCP, 1, 1, opts((3, socket.inet_aton(SERVER_IP)))))

    def on_ncp(self, proto: int, code: int, ident: int, data: bytes) -> None:
        if code != 1:
            return
        got = parse_opts(data)
        if proto == CCP:
            if self.mode == "ccp-reject":
                self.send(ppp(CCP, 4, ident, data))
            elif got.get(18) == struct.pack("!I", MPPE_128_STATELESS):
                self.send(ppp(CCP, 2, ident, data))
            else:
                self.send(ppp(CCP, 3, ident, opts((18, struct.pack("!I", MPPE_128_STATELESS)))))
            return
        want = {3: socket.inet_aton(ADDRESS), 129: socket.inet_aton(DNS1), 131: socket.inet_aton(DNS2)}
        if all(got.get(k) == v for k, v in want.items() if k in got) and 3 in got:
            self.send(ppp(IPCP, 2, ident, data))
            self.got["ipcp_acked"] = socket.inet_ntoa(got[3])
        else:
            self.send(ppp(IPCP, 3, ident, opts(*((k, v) for k, v in want.items() if k in got))))


def v1_nt_response(challenge: bytes, password: str) -> bytes:
    """RFC 2433 §A.5 NtChallengeResponse, written here apart from pptptop's: the MD4 of the password in
    UTF-16LE padded to 21 octets, three 7-octet DES keys (a parity bit added after every 7 bits)."""
    h = MD4.new(password.encode("utf-16-le")).digest() + bytes(5)
    out = b""
    for i in range(3):
        k7 = h[7 * i:7 * i + 7]
        bits = "".join(f"{b:08b}" for b in k7)
        key = bytes(int(bits[j:j + 7] + "0", 2) for j in range(0, 56, 7))
        out += DES.new(key, DES.MODE_ECB).encrypt(challenge)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bind", required=True)
    p.add_argument("--mode", choices=MODES, default="ok")
    p.add_argument("--user", default="alice")
    p.add_argument("--password", default="correct horse")
    p.add_argument("--report", required=True)
    p.add_argument("--stop", required=True)
    Pac(p.parse_args(argv)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
