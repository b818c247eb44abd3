"""Classic BPF: the default PPTP filter, hand-assembled, and user filters through libpcap.

The kernel runs a socket filter (``SO_ATTACH_FILTER``, Documentation/
networking/filter.rst) on every packet before it is copied to the ring, so a
busy interface costs us only the PPTP packets. The default filter is

    tcp port 1723 or ip proto 47 or ip6 proto 47

(RFC 2637 §1.3: the control connection is TCP port 1723, the data GRE
protocol 47), written out by hand for Ethernet — with up to two 802.1Q/802.1ad
tags, which libpcap would need ``vlan and …`` for — and for raw IP, so it
works without libpcap. IPv6 is matched as libpcap's own ``ip6 proto`` and
``tcp port`` match it: TCP as the first next header, GRE as the first or
after a Fragment header; other extension headers are not walked.

A user filter (``-f EXPR``) is compiled by libpcap through ctypes for the
interface's link type. :func:`run_filter` is a small interpreter, so the same
programs can filter frames read from a file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Final

from pptptop.sources.linktypes import to_dlt
from pptptop.wire import LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_RAW, linktype_name

#: A classic BPF instruction: (code, jt, jf, k), as in ``struct sock_filter``.
Insn = tuple[int, int, int, int]

DEFAULT_FILTER: Final = "tcp port 1723 or ip proto 47 or ip6 proto 47"
#: What a filter returns for an accepted packet: keep all of it.
SNAPLEN: Final = 262144
PPTP_PORT: Final = 1723  # RFC 2637 §1.3
IPPROTO_TCP: Final = 6
IPPROTO_GRE: Final = 47
IPPROTO_FRAGMENT: Final = 44  # IPv6 Fragment header
MAX_VLAN_TAGS: Final = 2

SO_ATTACH_FILTER: Final = 26
SO_DETACH_FILTER: Final = 27
SO_LOCK_FILTER: Final = 44  # Linux 3.9: the filter can no longer be detached or replaced
PCAP_NETMASK_UNKNOWN: Final = 0xFFFFFFFF
LIBPCAP_NAMES: Final = ("libpcap.so.0.8", "libpcap.so", "libpcap.so.1")

# Instruction classes and fields (linux/bpf_common.h).
BPF_LD: Final = 0x00
BPF_LDX: Final = 0x01
BPF_ST: Final = 0x02
BPF_STX: Final = 0x03
BPF_ALU: Final = 0x04
BPF_JMP: Final = 0x05
BPF_RET: Final = 0x06
BPF_MISC: Final = 0x07
BPF_W: Final = 0x00
BPF_H: Final = 0x08
BPF_B: Final = 0x10
BPF_IMM: Final = 0x00
BPF_ABS: Final = 0x20
BPF_IND: Final = 0x40
BPF_MEM: Final = 0x60
BPF_LEN: Final = 0x80
BPF_MSH: Final = 0xA0
BPF_ADD: Final = 0x00
BPF_SUB: Final = 0x10
BPF_MUL: Final = 0x20
BPF_DIV: Final = 0x30
BPF_OR: Final = 0x40
BPF_AND: Final = 0x50
BPF_LSH: Final = 0x60
BPF_RSH: Final = 0x70
BPF_NEG: Final = 0x80
BPF_MOD: Final = 0x90
BPF_XOR: Final = 0xA0
BPF_JA: Final = 0x00
BPF_JEQ: Final = 0x10
BPF_JGT: Final = 0x20
BPF_JGE: Final = 0x30
BPF_JSET: Final = 0x40
BPF_K: Final = 0x00
BPF_X: Final = 0x08
BPF_A: Final = 0x10
BPF_TAX: Final = 0x00
BPF_TXA: Final = 0x80
BPF_MEMWORDS: Final = 16

ETH_TYPE_OFFSET: Final = 12
ETH_HEADER_LEN: Final = 14
VLAN_TPIDS: Final = (0x8100, 0x88A8, 0x9100)
ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
IPV4_FRAG_OFFSET_MASK: Final = 0x1FFF  # RFC 791 §3.1: fragment offset bits
IPV6_HEADER_LEN: Final = 40


class FilterError(Exception):
    """A capture filter that cannot be compiled, or libpcap missing; the message says what to do."""


class _Asm:
    """A tiny assembler with forward labels; jumps are resolved to relative offsets."""

    def __init__(self) -> None:
        self.code: list[tuple[int, str | None, str | None, int]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def op(self, code: int, k: int = 0) -> None:
        self.code.append((code, None, None, k))

    def jump(self, code: int, k: int, jt: str | None, jf: str | None) -> None:
        """``jt``/``jf`` are labels; None means the next instruction."""
        self.code.append((code, jt, jf, k))

    def assemble(self) -> list[Insn]:
        out: list[Insn] = []
        for i, (code, jt, jf, k) in enumerate(self.code):
            if code == BPF_JMP | BPF_JA:
                assert jt is not None
                out.append((code, 0, 0, self._rel(i, jt, 0xFFFFFFFF)))
            else:
                out.append((code, self._rel(i, jt, 255), self._rel(i, jf, 255), k))
        return out

    def _rel(self, i: int, label: str | None, limit: int) -> int:
        if label is None:
            return 0
        rel = self.labels[label] - (i + 1)
        if not 0 <= rel <= limit:
            raise ValueError(f"BPF jump to {label} out of range ({rel})")
        return rel


def _ip_blocks(a: _Asm, bases: Sequence[int]) -> None:
    """The IPv4 and IPv6 tests for IP headers starting at each offset in ``bases``."""
    jeq = BPF_JMP | BPF_JEQ | BPF_K
    for b in bases:
        a.label(f"v4_{b}")
        a.op(BPF_LD | BPF_B | BPF_ABS, b + 9)  # RFC 791: protocol
        a.jump(jeq, IPPROTO_GRE, "accept", None)
        a.jump(jeq, IPPROTO_TCP, None, "reject")
        a.op(BPF_LD | BPF_H | BPF_ABS, b + 6)  # flags and fragment offset
        a.jump(BPF_JMP | BPF_JSET | BPF_K, IPV4_FRAG_OFFSET_MASK, "reject", None)
        a.op(BPF_LDX | BPF_B | BPF_MSH, b)  # X = 4 * IHL
        a.op(BPF_LD | BPF_H | BPF_IND, b)  # TCP source port
        a.jump(jeq, PPTP_PORT, "accept", None)
        a.op(BPF_LD | BPF_H | BPF_IND, b + 2)  # TCP destination port
        a.jump(jeq, PPTP_PORT, "accept", "reject")
        a.label(f"v6_{b}")
        a.op(BPF_LD | BPF_B | BPF_ABS, b + 6)  # RFC 8200 §3: next header
        a.jump(jeq, IPPROTO_GRE, "accept", None)
        a.jump(jeq, IPPROTO_TCP, f"tcp6_{b}", None)
        a.jump(jeq, IPPROTO_FRAGMENT, None, "reject")
        a.op(BPF_LD | BPF_B | BPF_ABS, b + IPV6_HEADER_LEN)  # RFC 8200 §4.5: the fragment's next header
        a.jump(jeq, IPPROTO_GRE, "accept", "reject")
        a.label(f"tcp6_{b}")
        a.op(BPF_LD | BPF_H | BPF_ABS, b + IPV6_HEADER_LEN)
        a.jump(jeq, PPTP_PORT, "accept", None)
        a.op(BPF_LD | BPF_H | BPF_ABS, b + IPV6_HEADER_LEN + 2)
        a.jump(jeq, PPTP_PORT, "accept", "reject")
    a.label("accept")
    a.op(BPF_RET | BPF_K, SNAPLEN)
    a.label("reject")
    a.op(BPF_RET | BPF_K, 0)


def default_program(linktype: int) -> list[Insn]:
    """The default PPTP filter for Ethernet or raw IP, as kernel classic BPF.

    Ethernet frames may carry up to two VLAN tags (0x8100, 0x88A8, 0x9100).
    The kernel usually strips the outer tag before the filter runs (VLAN
    offload); both forms match.
    """
    a = _Asm()
    jeq = BPF_JMP | BPF_JEQ | BPF_K
    if linktype == LINKTYPE_ETHERNET:
        bases = [ETH_HEADER_LEN + 4 * depth for depth in range(MAX_VLAN_TAGS + 1)]
        a.op(BPF_LD | BPF_H | BPF_ABS, ETH_TYPE_OFFSET)
        for depth, b in enumerate(bases):
            a.jump(jeq, ETHERTYPE_IPV4, f"v4_{b}", None)
            if depth < MAX_VLAN_TAGS:
                a.jump(jeq, ETHERTYPE_IPV6, f"v6_{b}", None)
                for tpid in VLAN_TPIDS[:-1]:
                    a.jump(jeq, tpid, f"tag_{b}", None)
                a.jump(jeq, VLAN_TPIDS[-1], f"tag_{b}", "reject")
                a.label(f"tag_{b}")
                a.op(BPF_LD | BPF_H | BPF_ABS, b + 2)  # the EtherType after the tag
            else:
                a.jump(jeq, ETHERTYPE_IPV6, f"v6_{b}", "reject")
        _ip_blocks(a, bases)
    elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        a.op(BPF_LD | BPF_B | BPF_ABS, 0)
        a.op(BPF_ALU | BPF_AND | BPF_K, 0xF0)  # the version nibble
        a.jump(jeq, 0x40, "v4_0", None)
        a.jump(jeq, 0x60, "v6_0", "reject")
        _ip_blocks(a, [0])
    else:
        raise FilterError(f"no built-in PPTP filter for {linktype_name(linktype)}")
    return a.assemble()


# -- libpcap --------------------------------------------------------------------------------


class _BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


_libpcap: ctypes.CDLL | None = None


def libpcap() -> ctypes.CDLL:
    """Load libpcap once; :class:`FilterError` saying what to install if it is missing."""
    global _libpcap
    if _libpcap is not None:
        return _libpcap
    names = list(LIBPCAP_NAMES)
    found = ctypes.util.find_library("pcap")
    if found:
        names.append(found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                     ctypes.c_int, ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.restype = None
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.restype = None
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        _libpcap = lib
        return lib
    raise FilterError("capture filters (-f) need libpcap, which is not installed: "
                      "install it with 'apt install libpcap0.8' (or your system's libpcap package)")


def compile_filter(expr: str, linktype: int, snaplen: int = SNAPLEN) -> list[Insn]:
    """Compile a tcpdump-style filter expression with libpcap for ``linktype``.

    Uses ``pcap_open_dead`` + ``pcap_compile`` (what ``pcap_compile_nopcap``
    does, plus the error message).
    """
    lib = libpcap()
    handle = lib.pcap_open_dead(to_dlt(linktype), snaplen)
    if not handle:
        raise FilterError(f"libpcap cannot compile filters for {linktype_name(linktype)}")
    prog = _BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(prog), expr.encode(), 1, PCAP_NETMASK_UNKNOWN) != 0:
            err = (lib.pcap_geterr(handle) or b"").decode("utf-8", "backslashreplace")
            raise FilterError(f"bad capture filter {expr!r}: {err}")
        try:
            return [(prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
                    for i in range(prog.bf_len)]
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(handle)


def attach_filter(sock: socket.socket, program: Sequence[Insn]) -> None:
    """Attach a classic BPF program to a socket (``SO_ATTACH_FILTER``)."""
    insns = (_BpfInsn * len(program))(*(_BpfInsn(*i) for i in program))
    fprog = struct.pack("HP", len(program), ctypes.addressof(insns))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def lock_filter(sock: socket.socket) -> None:
    """Lock the socket's filter (``SO_LOCK_FILTER``): nothing, not even this process after it
    drops its privileges, can detach or replace it and see more than the filter lets through."""
    sock.setsockopt(socket.SOL_SOCKET, SO_LOCK_FILTER, 1)


# -- interpreter ----------------------------------------------------------------------------


def run_filter(program: Sequence[Insn], packet: bytes, wirelen: int | None = None) -> int:
    """Run a classic BPF program over a packet, like the kernel's ``bpf_prog_run``.

    Returns the number of bytes to keep (0: drop). Loads past the end of the
    packet and division by zero end the program with 0, as in the kernel;
    ancillary loads (``SKF_AD_*``) are not emulated and also give 0.
    """
    a = x = 0
    mem = [0] * BPF_MEMWORDS
    n = len(packet)
    pc = 0
    mask = 0xFFFFFFFF
    while pc < len(program):
        code, jt, jf, k = program[pc]
        pc += 1
        cls = code & 0x07
        if cls == BPF_RET:
            return (a if code & 0x18 == BPF_A else k) & mask
        if cls in (BPF_LD, BPF_LDX):
            mode = code & 0xE0
            size = {BPF_W: 4, BPF_H: 2, BPF_B: 1}.get(code & 0x18, 4)
            if mode == BPF_IMM:
                val = k
            elif mode == BPF_LEN:
                val = n if wirelen is None else wirelen
            elif mode == BPF_MEM:
                val = mem[k & 0xF]
            elif mode == BPF_MSH and cls == BPF_LDX:
                if k >= n:
                    return 0
                val = (packet[k] & 0x0F) * 4
            elif mode in (BPF_ABS, BPF_IND):
                off = k + (x if mode == BPF_IND else 0)
                if off < 0 or off > 0x7FFFFFFF or off + size > n:
                    return 0
                val = int.from_bytes(packet[off:off + size], "big")
            else:
                return 0
            if cls == BPF_LD:
                a = val & mask
            else:
                x = val & mask
        elif cls == BPF_ST:
            mem[k & 0xF] = a
        elif cls == BPF_STX:
            mem[k & 0xF] = x
        elif cls == BPF_ALU:
            op = code & 0xF0
            src = x if code & BPF_X else k
            if op == BPF_NEG:
                a = -a & mask
            elif op in (BPF_DIV, BPF_MOD) and src == 0:
                return 0
            else:
                a = _ALU[op](a, src) & mask
        elif cls == BPF_JMP:
            op = code & 0xF0
            if op == BPF_JA:
                pc += k
                continue
            src = x if code & BPF_X else k
            if op == BPF_JEQ:
                cond = a == src
            elif op == BPF_JGT:
                cond = a > src
            elif op == BPF_JGE:
                cond = a >= src
            elif op == BPF_JSET:
                cond = bool(a & src)
            else:
                return 0
            pc += jt if cond else jf
        elif cls == BPF_MISC:
            if code & 0xF8 == BPF_TXA:
                a = x
            else:
                x = a
    return 0


_ALU: Final[dict[int, Callable[[int, int], int]]] = {
    BPF_ADD: lambda a, b: a + b,
    BPF_SUB: lambda a, b: a - b,
    BPF_MUL: lambda a, b: a * b,
    BPF_DIV: lambda a, b: a // b,
    BPF_MOD: lambda a, b: a % b,
    BPF_OR: lambda a, b: a | b,
    BPF_AND: lambda a, b: a & b,
    BPF_XOR: lambda a, b: a ^ b,
    BPF_LSH: lambda a, b: a << b if b < 32 else 0,
    BPF_RSH: lambda a, b: a >> b if b < 32 else 0,
}
