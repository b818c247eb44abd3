"""Benchmark: pptptop against tshark on the same large, realistic capture.

``python -m pptptop.bench`` generates a capture of hundreds of PPTP tunnels
(~1M packets: each tunnel's real handshake from the lab's s1 session with
its addresses, ports and call IDs rewritten, then MPPE data both ways with
LCP/PPTP echoes, then the real teardown), and reports in one run:

* offline: packets/s (wall clock and per CPU second, counting every
  process) and peak memory of ``pptptop -r FILE --json`` against ``tshark -r
  FILE -q -z conv,ip`` (plain ``-q`` does not dissect); memory as the largest
  process's peak RSS and as the peak of all its processes' PSS, sampled every
  10 ms in one more run (pptptop reads a large file in a second process);
* memory flatness: pptptop's peak RSS at 1M and at 3M packets;
* live (root only): packets delivered and kernel drops when the capture is
  replayed at top speed with tcpreplay over a veth pair between two network
  namespaces while ``pptptop -i VETH --json -c N`` captures.
* ``--decrypt N`` instead: decrypted packets per CPU second, ``pptptop -r FILE
  --json`` with and without the user's password over the template session
  followed by N MPPE-128 packets its password decrypts (docs/decryption.md).
* ``--floods`` instead: GRE with random call IDs from a few sources and from
  spoofed ones, SYNs to TCP 1723, half-open control connections; time and
  peak memory against tshark on the same file.
* ``--storm N[,N...]`` instead: a reconnect storm of N complete short sessions
  (:func:`generate_storm`), pptptop against tshark as above, and the CPU of
  one handshake frame through the whole engine (:func:`storms`).
* ``--live-storm N`` instead (root): N sessions' handshakes replayed over veth
  within 10 s; kernel drops, how long the capture takes to catch up, and
  whether every tunnel's phase at the end is the one ``-r`` gives
  (:func:`live_storm`).

Nothing here is a pass/fail test: it prints figures to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pptptop.decode.ppp import ppp_header
from pptptop.record.writers import PcapWriter
from pptptop.sources import open_file

TEMPLATE = "s1-template.pcap"  # the lab's s1 outside leg: 10.0.0.2 NATed to 198.51.100.1 → 198.51.100.2
SERVER = bytes([198, 51, 100, 2])
CLIENT = bytes([198, 51, 100, 1])
ETH_IP = 14


def _pptp_off(frame: bytes) -> int:
    """Where the PPTP message starts in an Ethernet/IPv4/TCP frame (the TCP header has options)."""
    return 34 + (frame[46] >> 4) * 4 if len(frame) > 46 else len(frame)


@dataclass(slots=True)
class Run:
    label: str
    packets: int
    seconds: float  # wall clock
    cpu: float  # user + system CPU seconds of the process and its children: steadier than wall time
    max_rss_kb: int  # the largest process's peak resident set
    max_pss_kb: int = 0  # the peak of all its processes' proportional set sizes together (0: not measured)

    @property
    def pps(self) -> float:
        return self.packets / self.seconds if self.seconds else 0.0

    @property
    def cpu_pps(self) -> float:
        return self.packets / self.cpu if self.cpu else 0.0


def _template() -> list[tuple[float, bytes]]:
    path = resources.files("pptptop") / "data" / TEMPLATE
    return [(f.ts, f.data) for f in open_file(str(path))]


@dataclass(slots=True)
class Session:
    """What makes one generated session its own: real sessions differ in all of these."""

    client_isn: int
    server_isn: int
    magic: dict[bool, int]  # by "sent by the client"
    challenge: bytes
    peer_challenge: bytes

    @classmethod
    def random(cls, rng: random.Random) -> Session:
        return cls(rng.getrandbits(32), rng.getrandbits(32), {True: rng.getrandbits(32), False: rng.getrandbits(32)},
                   rng.randbytes(16), rng.randbytes(16))


def _personalise_ppp(b: bytearray, off: int, from_client: bool, sess: Session) -> None:
    """LCP magic numbers and MS-CHAP challenges of the PPP frame at ``off`` replaced by the session's own."""
    if off + 4 > len(b):
        return
    if b[off] == 0xFF:
        off += 2
    proto = b[off] if b[off] & 1 else (b[off] << 8 | b[off + 1])
    off += 1 if b[off] & 1 else 2
    if off + 4 > len(b):
        return
    code, length = b[off], struct.unpack_from("!H", b, off + 2)[0]
    end = min(len(b), off + length)
    if proto == 0xC021 and code in (1, 2, 3, 4):
        o = off + 4
        while o + 2 <= end and b[o + 1] >= 2:
            if b[o] == 5 and b[o + 1] == 6 and o + 6 <= end:
                # a Configure-Ack/Nak/Reject repeats the options of the other side's request
                struct.pack_into("!I", b, o + 2, sess.magic[from_client == (code == 1)])
            o += b[o + 1]
    elif proto == 0xC021 and code in (9, 10, 11) and off + 8 <= end:
        struct.pack_into("!I", b, off + 4, sess.magic[from_client])
    elif proto == 0xC223 and code == 1 and off + 5 + 16 <= end and b[off + 4] == 16:
        b[off + 5:off + 21] = sess.challenge
    elif proto == 0xC223 and code == 2 and off + 5 + 16 <= end and b[off + 4] == 49:
        b[off + 5:off + 21] = sess.peer_challenge


def _rewrite(
    frame: bytes, n: int, client_call: int, server_call: int, port: int, tmpl_client_call: int, tmpl_port: int,
    sess: Session | None = None,
) -> bytes:
    """The template frame for tunnel ``n``: client address, TCP port, call IDs, ISNs, magic and challenges replaced."""
    b = bytearray(frame)
    if len(b) < 34 or b[12:14] != b"\x08\x00":
        return bytes(b)
    client = bytes([10, 64 + (n >> 16 & 0x3F), n >> 8 & 0xFF, n & 0xFF])
    if b[26:30] == CLIENT:
        b[26:30] = client
    if b[30:34] == CLIENT:
        b[30:34] = client
    proto = b[23]
    if proto == 6 and len(b) >= 38:
        sport, dport = struct.unpack_from("!HH", b, 34)
        if sport == tmpl_port:
            struct.pack_into("!H", b, 34, port)
        if dport == tmpl_port:
            struct.pack_into("!H", b, 36, port)
        if sess is not None:
            seq, ack = struct.unpack_from("!II", b, 38)
            mine, theirs = ((sess.client_isn, sess.server_isn) if dport == tmpl_port
                            else (sess.server_isn, sess.client_isn))
            struct.pack_into("!II", b, 38, (seq + mine) & 0xFFFFFFFF,
                             (ack + theirs) & 0xFFFFFFFF if b[47] & 0x10 else ack)
        po = _pptp_off(bytes(b))
        if len(b) >= po + 16 and b[po + 4 : po + 8] == b"\x1a\x2b\x3c\x4d":
            mtype = struct.unpack_from("!H", b, po + 8)[0]
            if mtype in (7, 12):  # OCRQ, CCRQ: the client's call ID
                struct.pack_into("!H", b, po + 12, client_call)
            elif mtype == 8:  # OCRP: server's call ID, then the peer's (client's)
                struct.pack_into("!HH", b, po + 12, server_call, client_call)
    elif proto == 47 and len(b) >= 42:
        cid = struct.unpack_from("!H", b, 40)[0]
        to_client = cid == tmpl_client_call
        struct.pack_into("!H", b, 40, client_call if to_client else server_call)
        fv, plen = struct.unpack_from("!H", b, 34)[0], struct.unpack_from("!H", b, 38)[0]
        if sess is not None and plen:
            _personalise_ppp(b, 42 + (4 if fv & 0x1000 else 0) + (4 if fv & 0x0080 else 0), not to_client, sess)
    return bytes(b)


def _ppp_protocol(frame: bytes) -> int:
    """The PPP protocol of an Ethernet/IPv4/GRE frame, -1 for anything else."""
    if len(frame) < 42 or frame[23] != 47:
        return -1
    fv, plen = struct.unpack_from("!H", frame, 34)[0], struct.unpack_from("!H", frame, 38)[0]
    off = 42 + (4 if fv & 0x1000 else 0) + (4 if fv & 0x0080 else 0)
    return ppp_header(frame, off)[0] if plen and off < len(frame) else -1


def _is_data(frame: bytes) -> bool:
    """A GRE packet carrying MPPE data (PPP protocol 0x00FD, however compressed)."""
    return _ppp_protocol(frame) == 0x00FD


def _renumber(frame: bytes, seqs: list[int]) -> bytes:
    """Give a GRE frame the next sequence number of its direction and ack the other's last (RFC 2637 §4.1).

    ``seqs`` holds the last sequence number sent each way (0: to the server) and is updated.
    """
    if len(frame) < 42 or frame[23] != 47:
        return frame
    out = bytearray(frame)
    d = 0 if out[30:34] == SERVER else 1
    flags = struct.unpack_from("!H", out, 34)[0]
    at = 42
    if flags & 0x1000:
        seqs[d] += 1
        struct.pack_into("!I", out, at, seqs[d])
        at += 4
    if flags & 0x0080 and len(out) >= at + 4:
        struct.pack_into("!I", out, at, seqs[1 - d])
    return bytes(out)


def _gre_packet(to_server: bool, n: int, client_call: int, server_call: int, seq: int, ack: int,
                ppp: bytes) -> bytes:
    """An Ethernet/IPv4/enhanced-GRE frame of tunnel ``n`` carrying ``ppp`` (ACFC and PFC negotiated)."""
    client = bytes([10, 64 + (n >> 16 & 0x3F), n >> 8 & 0xFF, n & 0xFF])
    src, dst = (client, SERVER) if to_server else (SERVER, client)
    gre = struct.pack("!HHHHII", 0x3081, 0x880B, len(ppp), server_call if to_server else client_call, seq, ack)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(gre) + len(ppp), seq & 0xFFFF, 0x4000, 64, 47, 0, src, dst)
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + gre + ppp


@dataclass(slots=True)
class _Template:
    """The template session cut for the generators: handshake, teardown and the IDs to replace."""

    head: list[tuple[float, bytes]]  # SYN to the last NCP frame, its data left out
    tail: list[tuple[float, bytes]]  # echoes and teardown after the data
    call: int  # the template client's call ID, read from its OCRQ
    port: int  # the template client's TCP port

    @classmethod
    def load(cls) -> _Template:
        tmpl = _template()
        # the template's own IDs, read from its OCRQ/OCRP
        call, port = 0, 0
        for _, fr in tmpl:
            if (
                len(fr) > _pptp_off(fr) + 14
                and fr[_pptp_off(fr) + 4 : _pptp_off(fr) + 8] == b"\x1a\x2b\x3c\x4d"
                and struct.unpack_from("!H", fr, _pptp_off(fr) + 8)[0] == 7
            ):
                call = struct.unpack_from("!H", fr, _pptp_off(fr) + 12)[0]
                port = struct.unpack_from("!H", fr, 34)[0]
        # the handshake runs to the last NCP frame (IPCP/CCP/IPV6CP); data may start before it ends
        last_ncp = max(i for i, (_, fr) in enumerate(tmpl) if _ppp_protocol(fr) in (0x8021, 0x80FD, 0x8057))
        head = [p for p in tmpl[:last_ncp + 1] if not _is_data(p[1])]
        after = [p for p in tmpl[last_ncp + 1:] if not _is_data(p[1])]
        return cls(head, _continuous(after[:-12], after[-12:], port), call, port)


def _continuous(left_out: list[tuple[float, bytes]], tail: list[tuple[float, bytes]],
                client_port: int) -> list[tuple[float, bytes]]:
    """``tail`` with its TCP sequence and acknowledgment numbers moved back over the control octets of the
    frames ``left_out`` before it (the template's PPTP echoes), so that each control stream goes on without
    a hole, as a session that sent fewer echoes would have (a hole would make every generated session end in
    out-of-order segments that no peer sends)."""
    gap = [0, 0]  # octets left out: 0 from the client, 1 from the server
    for _, fr in left_out:
        if len(fr) >= 54 and fr[23] == 6:
            gap[struct.unpack_from("!H", fr, 34)[0] != client_port] += _tcp_payload(fr)
    out = []
    for ts, fr in tail:
        if len(fr) >= 54 and fr[23] == 6:
            b = bytearray(fr)
            d = struct.unpack_from("!H", b, 34)[0] != client_port
            seq, ack = struct.unpack_from("!II", b, 38)
            struct.pack_into("!II", b, 38, (seq - gap[d]) & 0xFFFFFFFF,
                             (ack - gap[1 - d]) & 0xFFFFFFFF if b[47] & 0x10 else ack)
            fr = bytes(b)
        out.append((ts, fr))
    return out


def _tcp_payload(frame: bytes) -> int:
    """Octets of TCP payload in an Ethernet/IPv4/TCP frame: where the IP datagram ends (not the frame: Ethernet
    pads short ones) less where the payload starts."""
    return 14 + int(struct.unpack_from("!H", frame, 16)[0]) - _pptp_off(frame)


def _session_packets(
    tmpl: _Template, rng: random.Random, n: int, server_call: int, port: int, data: int
) -> Iterator[bytes]:
    """One whole session of client ``n``: the template's handshake, ``data`` MPPE frames with an LCP echo
    every 400, then the template's teardown, with its own IDs, ISNs, magic numbers and challenges."""
    ccall = rng.randrange(1, 65535)
    sess = Session.random(rng)
    seqs = [0, 0]  # the last GRE sequence number sent each way (0: to the server)
    for _, fr in tmpl.head:
        # the template's data packets are left out: number its GRE packets again so the
        # sequence stays continuous (no loss the real session did not have)
        yield _renumber(_rewrite(fr, n, ccall, server_call, port, tmpl.call, tmpl.port, sess), seqs)
    echo_every = 400  # with the handshakes, ~1 % of the traffic is negotiation and keepalives
    for i in range(data):
        d = i & 1
        seqs[d] += 1
        if i % echo_every >= echo_every - 2:  # an LCP Echo-Request, then its Echo-Reply
            lcp = struct.pack("!HBBHI", 0xC021, 9 + d, (i // echo_every) & 0xFF, 8, sess.magic[d == 0])
            yield _gre_packet(d == 0, n, ccall, server_call, seqs[d], seqs[1 - d], lcp)
            continue
        size = rng.choice((60, 120, 400, 1100, 1300))
        ppp = b"\xfd" + struct.pack("!H", 0x9000 | (seqs[d] & 0xFFF)) + rng.randbytes(size)
        yield _gre_packet(d == 0, n, ccall, server_call, seqs[d], seqs[1 - d], ppp)
    for _, fr in tmpl.tail:
        yield _renumber(_rewrite(fr, n, ccall, server_call, port, tmpl.call, tmpl.port, sess), seqs)


def generate(path: Path, packets: int = 1_000_000, tunnels: int = 200, seed: int = 1) -> int:
    """Write a realistic capture of ``tunnels`` sessions and about ``packets`` packets; returns the count."""
    rng = random.Random(seed)
    tmpl = _Template.load()
    fixed = len(tmpl.head) + len(tmpl.tail)
    per_tunnel_data = max(10, (packets - fixed * tunnels) // tunnels)
    gens = [_session_packets(tmpl, rng, n, (n * 128) & 0xFFFF, 20000 + n, per_tunnel_data) for n in range(tunnels)]
    return _interleave(path, gens, len(gens))


def generate_storm(path: Path, sessions: int, concurrent: int = 500, data: int = 20, seed: int = 1) -> int:
    """Write a reconnect storm: ``sessions`` complete short sessions (handshake, ``data`` MPPE frames,
    teardown), at most ``concurrent`` under way at once, each next one starting as one ends, their
    frames interleaved. Returns the number of packets written.

    Every session has its own client address (10.64.0.0/10 holds 4M), so a call ID or port used
    again later belongs to another client, as on a server after a link flap.
    """
    rng = random.Random(seed)
    tmpl = _Template.load()

    def session(n: int) -> Iterator[bytes]:
        # client ports from 1724 up: a client port of 1723 would make both ends look like servers
        return _session_packets(tmpl, rng, n, 1 + n % 65535, 1724 + n % 63000, data)

    gens = (session(n) for n in range(sessions))
    return _interleave(path, gens, concurrent)


def _interleave(path: Path, sessions: Iterable[Iterator[bytes]], concurrent: int) -> int:
    """Write the sessions' packets in turns, at most ``concurrent`` at once, 100 µs apart."""
    t0 = 1_700_000_000.0
    pending = iter(sessions)
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype=1)
        gens = list(itertools.islice(pending, concurrent))
        step = 0
        while gens:
            alive: list[Iterator[bytes]] = []
            for g in gens:
                pkt: bytes | None = next(g, None)
                if pkt is None:
                    alive.extend(itertools.islice(pending, 1))
                    continue
                alive.append(g)
                w.write(t0 + step * 0.0001, "", 1, pkt)
                step += 1
            gens = alive
        return w.records


FLOOD_SOURCES = [0xCB007101, 0xCB007102, 0xCB007103, 0xCB007104]  # 203.0.113.1-4 (RFC 5737)
FLOOD_SERVER = 0xC6336402  # 198.51.100.2
FLOODS = ("gre-few-sources", "gre-spoofed", "syn", "half-open")


def _ip_frame(src: int, dst: int, proto: int, payload: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0, src, dst)
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + payload


def _tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0) + payload


def generate_flood(path: Path, kind: str, packets: int, seed: int = 1) -> int:
    """Write a flood of ``kind`` (one of :data:`FLOODS`), about ``packets`` packets at 100,000 a second.

    * ``gre-few-sources``: enhanced GRE data with random call IDs and sequence numbers from four sources
      to one server (RFC 2637 §4.1);
    * ``gre-spoofed``: the same from a random source each;
    * ``syn``: SYNs to TCP 1723 from random sources and ports;
    * ``half-open``: each a SYN, the server's SYN-ACK, and for a third the client's RST (a spoofed
      address that exists), for a third three bytes from a blind sender.
    """
    rng = random.Random(seed)
    bodies = [rng.randbytes(size) for size in (40, 100, 400)]
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype=1)
        i = 0
        while i < packets:
            t = 1_700_000_000.0 + i * 1e-5
            if kind.startswith("gre"):
                src = rng.choice(FLOOD_SOURCES) if kind == "gre-few-sources" else rng.getrandbits(32)
                ppp = b"\xfd" + bodies[i % 3]
                gre = struct.pack("!HHHHI", 0x3001, 0x880B, len(ppp), rng.getrandbits(16), rng.getrandbits(32))
                w.write(t, "", 1, _ip_frame(src, FLOOD_SERVER, 47, gre + ppp))
                i += 1
                continue
            src, port, isn = rng.getrandbits(32), rng.randrange(1024, 65536), rng.getrandbits(32)
            w.write(t, "", 1, _ip_frame(src, FLOOD_SERVER, 6, _tcp(port, 1723, isn, 0, 0x02)))
            i += 1
            if kind == "half-open":
                sisn = rng.getrandbits(32)
                w.write(t, "", 1, _ip_frame(FLOOD_SERVER, src, 6, _tcp(1723, port, sisn, isn + 1, 0x12)))
                i += 1
                if i % 3 == 1:
                    w.write(t, "", 1, _ip_frame(src, FLOOD_SERVER, 6, _tcp(port, 1723, isn + 1, 0, 0x04)))
                    i += 1
                elif i % 3 == 2:
                    blind = _tcp(port, 1723, isn + 1, rng.getrandbits(32), 0x18, b"\x00\x9c\x00")
                    w.write(t, "", 1, _ip_frame(src, FLOOD_SERVER, 6, blind))
                    i += 1
        return w.records


def floods(work: Path, packets: int, repeat: int) -> None:
    """Each flood against tshark: time, CPU and peak memory on the same file."""
    print(f"{'flood':16} {'side':6} {'packets/s':>11} {'wall s':>7} {'pkts/CPU-s':>11} {'CPU s':>7} {'peak RSS':>9}")
    for kind in FLOODS:
        path = work / f"flood-{kind}-{packets}.pcap"
        n = generate_flood(path, kind, packets)
        ours, theirs = offline(path, n, repeat)
        for side, r in (("pptptop", ours), ("tshark", theirs)):
            if r is not None:
                print(f"{kind:16} {side:6} {r.pps:11,.0f} {r.seconds:7.2f} {r.cpu_pps:11,.0f} {r.cpu:7.2f} "
                      f"{r.max_rss_kb / 1024:6.0f} MB")
        if theirs is not None:
            print(f"{kind:16} ratio  {ours.pps / theirs.pps:.2f}x packets/s (wall), "
                  f"{ours.cpu_pps / theirs.cpu_pps:.2f}x per CPU second, {ours.max_rss_kb / theirs.max_rss_kb:.2f}x "
                  "peak memory")
        path.unlink(missing_ok=True)


def _least_cpu(label: str, cmd: list[str], packets: int, repeat: int) -> Run:
    """The run with the least CPU of ``repeat``."""
    return min((_timed(label, cmd, packets) for _ in range(max(1, repeat))), key=lambda r: r.cpu)


def storms(work: Path, sizes: list[int], repeat: int) -> None:
    """Each reconnect storm against tshark, then what one handshake frame costs pptptop.

    A storm's frames are handshakes and teardowns (53 a session) and MPPE data (20 a session); the
    data frames take the batch path and cost far less, and the CPU of the run over its non-data
    frames would charge the handshakes with the data frames' cost and the start-up's. Instead the
    same storm is written once more without data frames, and an empty capture (the start-up, the
    imports, the exit) is run too:
    µs per handshake frame = (CPU of the data-less storm - CPU of the empty capture) / its frames.
    """
    empty = work / "storm-empty.pcap"
    with open(empty, "wb") as f:
        PcapWriter(f, linktype=1)
    base = _least_cpu("pptptop, empty capture", [sys.executable, "-m", "pptptop", "-r", str(empty), "--json"], 0,
                      repeat)
    print(f"pptptop -r EMPTY --json: {base.cpu:.2f} s CPU (start-up, imports and exit)")
    head = (f"{'storm':>14} {'side':8} {'packets/s':>11} {'wall s':>7} {'pkts/CPU-s':>11} {'CPU s':>7} "
            f"{'peak RSS':>9} {'peak PSS':>9}")
    for sessions in sizes:
        path = work / f"storm-{sessions}.pcap"
        n = generate_storm(path, sessions)
        print(f"\ngenerated a storm of {sessions} sessions, {n} packets, {path.stat().st_size / 1e6:.0f} MB: {path}")
        ours, theirs = offline(path, n, repeat)
        print(head)
        for side, r in (("pptptop", ours), ("tshark", theirs)):
            if r is not None:
                print(f"{sessions:>14,} {side:8} {r.pps:11,.0f} {r.seconds:7.2f} {r.cpu_pps:11,.0f} {r.cpu:7.2f} "
                      f"{r.max_rss_kb / 1024:6.0f} MB {r.max_pss_kb / 1024:6.0f} MB")
        if theirs is not None:
            print(f"ratio pptptop/tshark: {ours.pps / theirs.pps:.2f}x packets/s (wall), "
                  f"{ours.cpu_pps / theirs.cpu_pps:.2f}x packets per CPU second, "
                  f"{ours.max_rss_kb / theirs.max_rss_kb:.2f}x peak memory")
        path.unlink(missing_ok=True)
        bare = work / f"storm-{sessions}-nodata.pcap"
        hs = generate_storm(bare, sessions, data=0)
        cmd = [sys.executable, "-m", "pptptop", "-r", str(bare), "--json"]
        run = _least_cpu("pptptop, storm without data", cmd, hs, repeat)
        per = (run.cpu - base.cpu) / hs * 1e6 if hs else 0.0
        print(f"handshake frames: {hs:,} ({n - hs:,} data frames left out); the storm without them "
              f"{run.cpu:.2f} s CPU: {per:.1f} µs per handshake frame ((CPU - empty capture's) / frames)")
        bare.unlink(missing_ok=True)
    empty.unlink(missing_ok=True)


#: the template session's user and lab-only password (tests/data/SOURCES.md): its MPPE keys follow from them
TEMPLATE_USER, TEMPLATE_PASSWORD = "alice", "wonderland-42"
INNER_SIZES = (60, 120, 400, 1100, 1300)  # inner UDP payloads, as generate() sizes its data


def _inner_udp(i: int, size: int, to_server: bool) -> bytes:
    """A valid inner IPv4/UDP datagram (header checksum right, RFC 791) of the template's tunnel addresses."""
    src, dst = (bytes([192, 0, 2, 10]), bytes([192, 0, 2, 1])) if to_server else (bytes([192, 0, 2, 1]),
                                                                                   bytes([192, 0, 2, 10]))
    udp = struct.pack("!HHHH", 40000 + i % 64, 443, 8 + size, 0) + bytes(size)
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, src, dst))
    c = sum(struct.unpack("!10H", hdr))
    c = (c & 0xFFFF) + (c >> 16)
    struct.pack_into("!H", hdr, 10, ~((c & 0xFFFF) + (c >> 16)) & 0xFFFF)
    return bytes(hdr) + udp


def generate_encrypted(path: Path, packets: int) -> tuple[int, int]:
    """The template session (s1: MS-CHAPv2, MPPE-128 stateless), then ``packets`` MPPE packets both ways that
    its user's password decrypts (RFC 3078/3079, the keys derived as pptptop derives them); returns (packets,
    inner octets)."""
    from Crypto.Cipher import ARC4

    from pptptop.decode import mschap_crypto as mc
    from pptptop.decode.auth import decode_chap

    tmpl = _template()
    last_ncp = max(i for i, (_, fr) in enumerate(tmpl) if _ppp_protocol(fr) in (0x8021, 0x80FD, 0x8057))
    head = [fr for _, fr in tmpl[:last_ncp + 1] if not _is_data(fr)]
    chal = resp = b""
    client_call = server_call = 0
    for fr in head:
        if _ppp_protocol(fr) != 0xC223:
            continue
        fv = struct.unpack_from("!H", fr, 34)[0]
        off = 42 + (4 if fv & 0x1000 else 0) + (4 if fv & 0x0080 else 0)
        _, hl = ppp_header(fr, off)
        m = decode_chap(fr[off + hl:])
        if m.code == 1:
            chal, client_call = m.value, struct.unpack_from("!H", fr, 40)[0]
        elif m.code == 2 and m.mschapv2_response is not None:
            resp, server_call = m.mschapv2_response.nt_response, struct.unpack_from("!H", fr, 40)[0]
    assert chal and resp, "the template has no MS-CHAPv2 exchange"
    hh = mc.hash_nt_password_hash(mc.nt_password_hash(TEMPLATE_PASSWORD))
    master = mc.get_master_key(hh, resp)
    keys = [mc.initial_session_key(mc.get_asymmetric_start_key(master, 16, is_send=True, is_server=srv), 128)
            for srv in (False, True)]
    starts = [mc.get_asymmetric_start_key(master, 16, is_send=True, is_server=srv) for srv in (False, True)]
    seqs = [0, 0]
    t0 = 1_700_000_000.0
    octets = 0
    addresses = [_addresses(head, to_server=True), _addresses(head, to_server=False)]
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype=1)
        for i, fr in enumerate(head):
            w.write(t0 + i * 0.001, "", 1, _renumber(fr, seqs))
        for i in range(packets):
            d = i & 1
            keys[d] = mc.next_session_key(starts[d], keys[d], 128)  # stateless: a new key every packet
            ccount = (i >> 1) & 0xFFF
            inner = _inner_udp(i, INNER_SIZES[(i >> 1) % len(INNER_SIZES)], d == 0)
            octets += len(inner)
            ppp = b"\xfd" + struct.pack("!H", 0x9000 | ccount) + ARC4.new(keys[d]).encrypt(b"\x21" + inner)
            seqs[d] += 1
            frame = _gre_packet(d == 0, 0, client_call, server_call, seqs[d], seqs[1 - d], ppp)
            frame = frame[:26] + addresses[d] + frame[34:]
            w.write(t0 + 1 + i * 0.0001, "", 1, frame)
        return w.records, octets


def _addresses(head: list[bytes], to_server: bool) -> bytes:
    """The outer source and destination of the template's GRE in one direction."""
    for fr in head:
        if len(fr) >= 34 and fr[23] == 47 and (fr[30:34] == SERVER) == to_server:
            return fr[26:34]
    raise ValueError("the template has no GRE that way")


def decryption(work: Path, packets: int) -> str:
    """Decrypted packets per CPU second: ``pptptop -r FILE --json`` with and without the user's password over
    :func:`generate_encrypted`'s capture, and what a 100 Mbit/s tunnel would cost."""
    path = work / f"bench-mppe-{packets}.pcap"
    n, octets = generate_encrypted(path, packets)
    base = [sys.executable, "-m", "pptptop", "-r", str(path), "--json"]
    plain = min((_timed("no secret", base, n) for _ in range(2)), key=lambda r: r.cpu)
    secret = min((_timed("decrypting", [*base, "--password", f"{TEMPLATE_USER}:{TEMPLATE_PASSWORD}"], n)
                  for _ in range(2)), key=lambda r: r.cpu)
    per_packet = (secret.cpu - plain.cpu) / packets
    mean = octets / packets
    pps_100 = 100e6 / 8 / mean
    return (f"decryption: {packets} MPPE-128 stateless packets (inner {mean:.0f} octets on average): "
            f"{plain.cpu:.2f} CPU s without the secret, {secret.cpu:.2f} CPU s decrypting = "
            f"{1 / per_packet:,.0f} decrypted packets per CPU second ({per_packet * 1e6:.0f} us each, "
            f"{8 * mean / per_packet / 1e6:.0f} Mbit/s of inner IP); a 100 Mbit/s tunnel ({pps_100:,.0f} packets/s) "
            f"costs {100 * pps_100 * per_packet:.0f} % of one core")


def _pss_kb(pid: int) -> int:
    """The proportional set size of ``pid`` and its descendants together, in KiB (0 once it is gone).

    A page two processes share counts half in each: pptptop's read-ahead
    process shares its slots and its start-up memory with the main one.
    """
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def _sample_pss(pid: int, done: threading.Event, peak: list[int]) -> None:
    while not done.wait(0.01):
        peak[0] = max(peak[0], _pss_kb(pid))


def _timed(label: str, cmd: list[str], packets: int, *, sample: bool = False) -> Run:
    """One run; with ``sample``, its PSS too (reading smaps takes a few ms a time: not in a timed run)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = threading.Event()
    peak = [0]
    sampler = threading.Thread(target=_sample_pss, args=(proc.pid, done, peak), daemon=True)
    if sample:
        sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    if sample:
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed ({proc.returncode}): {err[-500:]}")
    return Run(label, packets, seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, peak[0])


def offline(path: Path, packets: int, repeat: int = 1) -> tuple[Run, Run | None]:
    """The run with the least CPU of ``repeat`` for each side, taken in turns (a shared machine drifts),
    then one more of each whose memory is sampled."""
    _compile_bytecode()
    sides = [("pptptop -r FILE --json", [sys.executable, "-m", "pptptop", "-r", str(path), "--json"])]
    if shutil.which("tshark"):
        sides.append(("tshark -r FILE -q -z conv,ip", ["tshark", "-n", "-r", str(path), "-q", "-z", "conv,ip"]))
    runs: list[list[Run]] = [[] for _ in sides]
    for _ in range(max(1, repeat)):
        for (label, cmd), got in zip(sides, runs, strict=True):
            got.append(_timed(label, cmd, packets))
    best = [min(got, key=lambda r: r.cpu) for got in runs]
    for (label, cmd), run in zip(sides, best, strict=True):
        run.max_pss_kb = _timed(label, cmd, packets, sample=True).max_pss_kb
    return best[0], best[1] if len(best) > 1 else None


def _compile_bytecode() -> None:
    """Compile pptptop's modules once, as pip does when it installs them.

    Run from a checkout with PYTHONDONTWRITEBYTECODE set, every start would
    compile ~90 modules from source (~0.1 s) that an installed pptptop never does.
    """
    import compileall

    with contextlib.suppress(OSError):
        compileall.compile_dir(str(Path(__file__).resolve().parent), quiet=1)


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])  # utime, stime (proc(5), counted after the command name)


def _wait_idle(pid: int, limit: float = 60.0) -> None:
    """Until the process has used (almost) no CPU for half a second: it has caught up with its input."""
    end = time.monotonic() + limit
    last = _cpu_ticks(pid)
    while time.monotonic() < end:
        time.sleep(0.5)
        now = _cpu_ticks(pid)
        if now < 0 or now - last <= 2:  # two clock ticks: the 1 s tick of an idle capture
            return
        last = now


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@contextlib.contextmanager
def _veth() -> Iterator[tuple[str, str, str, str]]:
    """Two namespaces joined by a veth pair, removed at the end: (tx netns, tx link, rx netns, rx link)."""
    tag = f"pb{os.getpid() % 10000}"
    a, b = f"{tag}a", f"{tag}b"
    ns_tx, ns_rx = f"{tag}tx", f"{tag}rx"
    try:
        _run("ip", "netns", "add", ns_tx)
        _run("ip", "netns", "add", ns_rx)
        _run("ip", "link", "add", a, "netns", ns_tx, "type", "veth", "peer", "name", b, "netns", ns_rx)
        _run("ip", "-n", ns_tx, "link", "set", a, "up")
        _run("ip", "-n", ns_rx, "link", "set", b, "up")
        yield ns_tx, a, ns_rx, b
    finally:
        subprocess.run(["ip", "netns", "del", ns_tx], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns_rx], capture_output=True)


def _capture(ns_rx: str, link: str, out: Any, *extra: str) -> subprocess.Popen[bytes]:
    """``pptptop -i LINK --json`` in the receiving namespace, writing to ``out``."""
    cmd = ["ip", "netns", "exec", ns_rx, sys.executable, "-m", "pptptop", "-i", link, "--json", *extra]
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)


def _capture_end(cap: subprocess.Popen[bytes], out_name: str,
                 lines: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], int]:
    """Stop the capture; its capture-end summary and its peak RSS in KB (its event lines into ``lines``)."""
    cap.terminate()
    _, status, usage = os.wait4(cap.pid, 0)  # ip netns exec execs python: this is pptptop's own usage
    cap.returncode = os.waitstatus_to_exitcode(status)
    read: list[dict[str, Any]] = [json.loads(x) for x in Path(out_name).read_text().splitlines() if x.strip()]
    os.unlink(out_name)
    if lines is not None:
        lines.extend(read)
    return next((x for x in reversed(read) if x.get("event") == "capture-end"), {}), usage.ru_maxrss


def live(path: Path, packets: int, record: Path | None = None) -> dict[str, int | str]:
    """Replay ``path`` at top speed over a veth pair between two namespaces; count what pptptop got
    (and, with ``record``, what it wrote there with ``-w``)."""
    if os.geteuid() != 0 or not shutil.which("tcpreplay"):
        return {"skipped": "needs root and tcpreplay"}
    with _veth() as (ns_tx, a, ns_rx, b):
        out = tempfile.NamedTemporaryFile(suffix=".json", delete=False)  # noqa: SIM115 - read back by name
        cap = _capture(ns_rx, b, out, "-c", str(packets), *(["-w", str(record)] if record is not None else []))
        time.sleep(1.5)
        _run("ip", "netns", "exec", ns_tx, "tcpreplay", "--topspeed", "-i", a, str(path))
        _wait_idle(cap.pid)  # what waits in the drain thread's queue is delivered late, not lost
        summary, rss_kb = _capture_end(cap, out.name)
        result: dict[str, int | str] = {
            "sent": packets,
            "delivered": int(summary.get("frames", -1)),
            "kernel_drops": int(summary.get("kernel_drops", -1)),
            "peak_rss_mb": rss_kb // 1024,  # with the kernel ring and the batches waiting
        }
        if record is not None:
            rec = summary.get("recording") or {}
            result["recorded"] = int(rec.get("packets", -1))
            result["unrecorded"] = int(rec.get("unrecorded", -1))
        return result


LIVE_RATE_SECONDS = 5  # each offered rate is replayed this long (at most LIVE_RATE_MAX packets)
LIVE_RATE_MAX = 400_000
#: a slow rate is replayed longer, up to LIVE_RATE_LONGEST seconds or this many packets: the CPU is read in
#: clock ticks of 10 ms, and 5 s at 1,000 packets/s cost about 5 of them
LIVE_RATE_MIN = 100_000
LIVE_RATE_LONGEST = 20


def live_rate_packets(rate: int) -> int:
    """How many packets the measure at ``rate`` packets/s replays."""
    return min(max(rate * LIVE_RATE_SECONDS, min(LIVE_RATE_MIN, rate * LIVE_RATE_LONGEST)), LIVE_RATE_MAX)


def live_rates(work: Path, rates: list[int]) -> None:
    """CPU per packet of a live capture at fixed offered rates (issue 23, goal 3).

    The 200-tunnel shape's handshakes are replayed first at top speed, outside the measure; then, for each
    rate, its data-phase packets at ``tcpreplay --pps RATE`` (:func:`live_rate_packets`). The measure is the
    pptptop process's user+system CPU (/proc/PID/stat) from the first packet of the rate to the capture's
    being idle again, over the packets sent: what a monitor costs a gateway at that rate.
    """
    if os.geteuid() != 0 or not shutil.which("tcpreplay") or not shutil.which("editcap"):
        print("live rates: skipped (needs root, tcpreplay and editcap)")
        return
    full = work / "live-rate-source.pcap"
    head_n = 20_000  # the 200 tunnels' handshakes and their first data
    generate(full, head_n + LIVE_RATE_MAX, 200)
    head = work / "live-rate-head.pcap"
    _run("editcap", "-r", str(full), str(head), f"1-{head_n}")
    hz = os.sysconf("SC_CLK_TCK")
    print(f"{'offered packets/s':>18} {'packets':>8} {'CPU s':>7} {'us/packet':>10} {'share of a core':>16} "
          f"{'kernel drops':>13}")
    for rate in rates:
        n = live_rate_packets(rate)
        part = work / f"live-rate-{n}.pcap"
        _run("editcap", "-r", str(full), str(part), f"{head_n + 1}-{head_n + n}")
        with _veth() as (ns_tx, a, ns_rx, b):
            out = tempfile.NamedTemporaryFile(suffix=".json", delete=False)  # noqa: SIM115 - read back by name
            cap = _capture(ns_rx, b, out)
            time.sleep(1.5)
            _run("ip", "netns", "exec", ns_tx, "tcpreplay", "--topspeed", "-i", a, str(head))
            _wait_idle(cap.pid)
            t0, w0 = _cpu_ticks(cap.pid), time.monotonic()
            _run("ip", "netns", "exec", ns_tx, "tcpreplay", "--pps", str(rate), "-i", a, str(part))
            _wait_idle(cap.pid)
            cpu, wall = (_cpu_ticks(cap.pid) - t0) / hz, time.monotonic() - w0
            summary, _ = _capture_end(cap, out.name)
        part.unlink(missing_ok=True)
        print(f"{rate:18,} {n:8,} {cpu:7.2f} {cpu / n * 1e6:10.2f} {cpu / wall * 100:15.1f}% "
              f"{int(summary.get('kernel_drops', -1)):13,}")
    for p in (full, head):
        p.unlink(missing_ok=True)


LIVE_STORM_SECONDS = 10  # issue 23, goal 4: the storm's handshakes are replayed within this long


def _session_key(t: dict[str, Any]) -> tuple[Any, ...]:
    """A tunnel of the storm, in either output: its client address and call ID, its server's address."""
    return (t["client"]["ip"], t["client"]["call_id"], t["server"]["ip"])


def live_storm(work: Path, sessions: int) -> None:
    """A reconnect storm live (issue 23, goal 4): ``sessions`` sessions' handshakes and teardowns (no data)
    replayed over a veth pair within LIVE_STORM_SECONDS (``tcpreplay --pps``) into ``pptptop -i VETH --json``.

    Reported: the kernel's drops; how long after the last frame was sent the capture had caught up (what
    waited meanwhile, in the drain thread's memory, was delivered late, not lost); its CPU and peak RSS;
    and, per tunnel, whether the phase its last event line gives is the one ``pptptop -r`` gives for the
    same file. The UI's key latency during the same storm: ``python tests/ui/bench_ui.py --storm N``.
    """
    if os.geteuid() != 0 or not shutil.which("tcpreplay"):
        print("live storm: skipped (needs root and tcpreplay)")
        return
    path = work / f"live-storm-{sessions}.pcap"
    n = generate_storm(path, sessions, concurrent=500, data=0)
    # each session repeats the template's two ARP frames, which the default capture filter leaves out
    ipv4 = sum(1 for f in open_file(str(path)) if f.data[12:14] == b"\x08\x00")
    ref = subprocess.run([sys.executable, "-m", "pptptop", "-r", str(path), "--json"], capture_output=True,
                         check=True)
    expected = {_session_key(t): t["phase"] for t in json.loads(ref.stdout)["tunnels"]}
    rate = max(1, n // LIVE_STORM_SECONDS)
    hz = os.sysconf("SC_CLK_TCK")
    lines: list[dict[str, Any]] = []
    with _veth() as (ns_tx, a, ns_rx, b):
        out = tempfile.NamedTemporaryFile(suffix=".json", delete=False)  # noqa: SIM115 - read back by name
        cap = _capture(ns_rx, b, out)
        time.sleep(1.5)
        t0, w0 = _cpu_ticks(cap.pid), time.monotonic()
        _run("ip", "netns", "exec", ns_tx, "tcpreplay", "--pps", str(rate), "-i", a, str(path))
        sent = time.monotonic()
        _wait_idle(cap.pid, limit=600)
        idle = time.monotonic()
        cpu = (_cpu_ticks(cap.pid) - t0) / hz
        summary, rss_kb = _capture_end(cap, out.name, lines)
    live: dict[tuple[Any, ...], str] = {}
    for line in lines:
        t = line.get("tunnel")
        if isinstance(t, dict) and "client" in t and "phase" in t:
            live[_session_key(t)] = t["phase"]
    right = sum(1 for k, phase in expected.items() if live.get(k) == phase)
    missing = sum(1 for k in expected if k not in live)
    print(f"live storm: {sessions:,} sessions, {n:,} frames offered at {rate:,}/s in {sent - w0:.1f} s; "
          f"delivered {int(summary.get('frames', -1)):,} of its {ipv4:,} IPv4 frames, "
          f"kernel drops {int(summary.get('kernel_drops', -1)):,}")
    print(f"  caught up {max(0.0, idle - sent - 0.5):.1f} s after the last frame (idle detected within 0.5 s); "
          f"CPU {cpu:.1f} s ({cpu / n * 1e6:.1f} µs a frame); peak RSS {rss_kb // 1024} MB")
    print(f"  phases right at the end: {right:,} of {len(expected):,} tunnels ({missing:,} with no event line; "
          f"the rest differ from pptptop -r)")
    path.unlink(missing_ok=True)


def _sizes(text: str) -> list[int]:
    """``5000,20000`` -> [5000, 20000]: session counts, or rates (argparse: a wrong list is a usage error)."""
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of positive numbers: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"not a list of positive numbers: {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pptptop.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--tunnels", type=int, default=200)
    ap.add_argument("--flat", action="store_true", help="also run 3x the packets to check RSS stays flat")
    ap.add_argument("--live", action="store_true", help="also measure live capture over veth (root)")
    ap.add_argument("--live-rate", type=_sizes, default=None, metavar="PPS[,PPS...]",
                    help="only measure live CPU per packet at these offered rates over veth (root), "
                         "e.g. 1000,5000,20000,50000,200000")
    ap.add_argument("--live-record", action="store_true",
                    help="with --live, replay once more while recording with -w (root)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each side, in turns; the one with the least CPU is shown (default 3)")
    ap.add_argument("--dir", default=None, help="where to write the generated captures (default: a temp dir)")
    ap.add_argument("--decrypt", type=int, default=0, metavar="N",
                    help="only measure MPPE decryption: N packets of a tunnel whose password is given")
    ap.add_argument("--floods", action="store_true",
                    help="only measure floods: GRE with random call IDs, SYNs, half-open connections")
    ap.add_argument("--flood-packets", type=int, default=1_000_000, help="packets in each flood (default 1M)")
    ap.add_argument("--live-storm", type=int, default=0, metavar="N",
                    help="only measure a reconnect storm live: N sessions' handshakes over veth within "
                         f"{LIVE_STORM_SECONDS} s (root): kernel drops, catching up, every tunnel's phase")
    ap.add_argument("--storm", default=None, metavar="N[,N...]", type=_sizes,
                    help="only measure reconnect storms of N sessions each (e.g. 5000,20000): against tshark, "
                         "and µs per handshake frame")
    args = ap.parse_args(argv)
    work = Path(args.dir or tempfile.mkdtemp(prefix="pptptop-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.decrypt:
        _compile_bytecode()
        print(decryption(work, args.decrypt))
        return 0
    if args.floods:
        floods(work, args.flood_packets, args.repeat)
        return 0
    if args.storm:
        storms(work, args.storm, args.repeat)
        return 0
    if args.live_storm:
        _compile_bytecode()
        live_storm(work, args.live_storm)
        return 0
    if args.live_rate:
        _compile_bytecode()
        live_rates(work, args.live_rate)
        return 0
    path = work / f"bench-{args.packets}.pcap"
    t = time.perf_counter()
    n = generate(path, args.packets, args.tunnels)
    print(
        f"generated {n} packets, {args.tunnels} tunnels, {path.stat().st_size / 1e6:.0f} MB "
        f"in {time.perf_counter() - t:.1f} s: {path}"
    )
    ours, theirs = offline(path, n, args.repeat)
    print(f"{'':34} {'packets/s':>11} {'wall s':>7} {'pkts/CPU-s':>11} {'CPU s':>7} {'peak RSS':>9} "
          f"{'peak PSS':>9}")
    for r in (ours, theirs):
        if r is not None:
            print(f"{r.label:34} {r.pps:11,.0f} {r.seconds:7.2f} {r.cpu_pps:11,.0f} {r.cpu:7.2f} "
                  f"{r.max_rss_kb / 1024:6.0f} MB {r.max_pss_kb / 1024:6.0f} MB")
    if theirs is not None:
        print(f"ratio pptptop/tshark: {ours.pps / theirs.pps:.2f}x packets/s (wall), "
              f"{ours.cpu_pps / theirs.cpu_pps:.2f}x packets per CPU second, "
              f"{ours.max_rss_kb / theirs.max_rss_kb:.2f}x peak memory")
    if args.flat:
        path3 = work / f"bench-{3 * args.packets}.pcap"
        n3 = generate(path3, 3 * args.packets, args.tunnels)
        big, _ = offline(path3, n3)
        print(
            f"RSS at {n} packets: {ours.max_rss_kb / 1024:.0f} MB; at {n3}: {big.max_rss_kb / 1024:.0f} MB "
            f"({(big.max_rss_kb / ours.max_rss_kb - 1) * 100:+.1f} %); PSS of all processes "
            f"{ours.max_pss_kb / 1024:.0f} MB and {big.max_pss_kb / 1024:.0f} MB; {big.pps:,.0f} packets/s"
        )
    if args.live:
        res = live(path, n)
        print("live over veth (tcpreplay --topspeed):", res)
        if args.live_record:
            rec = work / "live-record.pcapng"
            res = live(path, n, rec)
            print("live over veth, recording with -w:", res)
            rec.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
