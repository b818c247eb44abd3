"""The hand-assembled PPTP filter and the BPF interpreter, with libpcap as the oracle.

libpcap compiles the same expression (plus ``vlan and …`` for tagged frames)
and runs programs with its own ``bpf_filter()``; both must agree with ours on
every frame of every capture and on crafted edge cases.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
from collections.abc import Sequence

import pytest
from capfiles import DATA, IP_PACKETS, data_captures, ethernet_cases
from hypothesis import given, settings
from hypothesis import strategies as st

from pptptop.sources import bpf
from pptptop.sources.bpf import DEFAULT_FILTER, FilterError, Insn, compile_filter, default_program, run_filter
from pptptop.sources.linktypes import LINKTYPE_ETHERNET, LINKTYPE_RAW
from pptptop.sources.pcapfile import open_file

#: libpcap's spelling of "the default filter, on zero, one or two VLAN tags": each ``vlan``
#: moves the offsets of everything after it by 4 bytes.
VLAN_AWARE = f"({DEFAULT_FILTER}) or (vlan and ({DEFAULT_FILTER})) or (vlan and ({DEFAULT_FILTER}))"


def libpcap_run(program: Sequence[Insn], packet: bytes) -> int:
    """libpcap's own ``bpf_filter()`` interpreter."""
    lib = bpf.libpcap()
    fn = lib.bpf_filter
    fn.restype = ctypes.c_uint
    fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
    insns = (bpf._BpfInsn * len(program))(*(bpf._BpfInsn(*i) for i in program))
    return int(fn(ctypes.addressof(insns), packet, len(packet), len(packet)))


@pytest.mark.parametrize(("name", "frame", "match"), ethernet_cases(), ids=[c[0] for c in ethernet_cases()])
def test_default_filter_on_crafted_ethernet(name: str, frame: bytes, match: bool) -> None:
    ours = default_program(LINKTYPE_ETHERNET)
    theirs = compile_filter(VLAN_AWARE, LINKTYPE_ETHERNET)
    assert bool(run_filter(ours, frame)) is match
    assert bool(libpcap_run(ours, frame)) is match
    assert bool(libpcap_run(theirs, frame)) is match
    if match:
        assert run_filter(ours, frame) == bpf.SNAPLEN


@pytest.mark.parametrize("name", list(IP_PACKETS))
def test_default_filter_on_raw_ip(name: str) -> None:
    pkt, match = IP_PACKETS[name]
    data = bytes(pkt)
    ours = default_program(LINKTYPE_RAW)
    theirs = compile_filter(DEFAULT_FILTER, LINKTYPE_RAW)
    assert bool(run_filter(ours, data)) is match
    assert bool(libpcap_run(ours, data)) is match
    assert bool(libpcap_run(theirs, data)) is match


@pytest.mark.parametrize("path", data_captures(), ids=lambda p: str(p.relative_to(DATA)))
def test_default_filter_agrees_with_libpcap_on_real_captures(path: object) -> None:
    ours = default_program(LINKTYPE_ETHERNET)
    theirs = compile_filter(VLAN_AWARE, LINKTYPE_ETHERNET)
    kept = 0
    for frame in open_file(str(path)):
        a = run_filter(ours, frame.data)
        assert a == libpcap_run(ours, frame.data) == libpcap_run(theirs, frame.data)
        kept += bool(a)
    assert kept > 0  # every capture here has PPTP in it


@pytest.mark.parametrize("expr", ["tcp port 1723", "host 10.0.0.2 and not arp", "greater 100",
                                  "ip[9] = 47 and len < 200", "ether[0] & 1 = 1", "ip6 or arp",
                                  "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0", "vlan and ip proto 47",
                                  "ip[2:2] - ((ip[0] & 0xf) << 2) > 40", "ether host 00:0c:29:2b:5e:16"])
def test_interpreter_agrees_with_libpcap(expr: str) -> None:
    program = compile_filter(expr, LINKTYPE_ETHERNET)
    for name in ("s1-mschapv2-mppe128-both.pcapng", "chapcrack__sample.dump", "ndpi__gre.pcapng",
                 "pptpsniffer__connect.pcapng"):
        for frame in open_file(DATA / name):
            assert run_filter(program, frame.data) == libpcap_run(program, frame.data)


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from([c[1] for c in ethernet_cases()]), cut=st.integers(0, 120),
       tail=st.binary(max_size=40))
def test_default_filter_agrees_with_libpcap_on_mangled_frames(prefix: bytes, cut: int, tail: bytes) -> None:
    frame = prefix[:cut] + tail
    ours = default_program(LINKTYPE_ETHERNET)
    assert run_filter(ours, frame) == libpcap_run(ours, frame)
    assert bool(run_filter(ours, frame)) == bool(libpcap_run(compile_filter(VLAN_AWARE, 1), frame))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_raw_filter_agrees_with_libpcap_on_random_bytes(data: bytes) -> None:
    ours = default_program(LINKTYPE_RAW)
    theirs = compile_filter(DEFAULT_FILTER, LINKTYPE_RAW)
    assert bool(run_filter(ours, data)) == bool(libpcap_run(theirs, data))


def test_the_kernel_accepts_the_programs() -> None:
    """SO_ATTACH_FILTER runs the kernel's checker (sk_chk_filter) on the program."""
    for linktype in (LINKTYPE_ETHERNET, LINKTYPE_RAW):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            bpf.attach_filter(s, default_program(linktype))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError):
        bpf.attach_filter(s, [(bpf.BPF_JMP | bpf.BPF_JA, 0, 0, 5)])  # jumps out of the program


def test_a_locked_filter_cannot_be_replaced_or_removed() -> None:
    """What a capture socket gets before the privilege drop (SO_LOCK_FILTER, Linux 3.9)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        bpf.attach_filter(s, default_program(LINKTYPE_ETHERNET))
        bpf.lock_filter(s)
        with pytest.raises(PermissionError):
            bpf.attach_filter(s, [(bpf.BPF_RET | bpf.BPF_K, 0, 0, 0xFFFF)])  # accept everything
        with pytest.raises(PermissionError):
            s.setsockopt(socket.SOL_SOCKET, bpf.SO_DETACH_FILTER, 0)


def test_no_builtin_filter_for_other_link_types() -> None:
    with pytest.raises(FilterError, match="no built-in PPTP filter"):
        default_program(113)


def test_syntax_error_names_the_expression() -> None:
    with pytest.raises(FilterError) as info:
        compile_filter("tcp prot 1723", LINKTYPE_ETHERNET)
    assert str(info.value).startswith("bad capture filter 'tcp prot 1723': ")


def test_missing_libpcap_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bpf, "_libpcap", None)
    monkeypatch.setattr(bpf, "LIBPCAP_NAMES", ("libpcap-does-not-exist.so.9",))
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(FilterError, match=r"install it with 'apt install libpcap0\.8'"):
        compile_filter("tcp", LINKTYPE_ETHERNET)


def test_interpreter_alu_memory_and_return_a() -> None:
    """Instructions libpcap's optimiser rarely emits: scratch memory, TXA/TAX, RET A, division by zero."""
    program: list[Insn] = [
        (bpf.BPF_LD | bpf.BPF_W | bpf.BPF_LEN, 0, 0, 0),  # A = len
        (bpf.BPF_ST, 0, 0, 3),  # M[3] = A
        (bpf.BPF_LDX | bpf.BPF_W | bpf.BPF_IMM, 0, 0, 3),  # X = 3
        (bpf.BPF_ALU | bpf.BPF_MUL | bpf.BPF_X, 0, 0, 0),  # A *= X
        (bpf.BPF_MISC | bpf.BPF_TAX, 0, 0, 0),  # X = A
        (bpf.BPF_LD | bpf.BPF_MEM, 0, 0, 3),  # A = M[3]
        (bpf.BPF_ALU | bpf.BPF_ADD | bpf.BPF_X, 0, 0, 0),  # A += X  -> 4 * len
        (bpf.BPF_ALU | bpf.BPF_NEG, 0, 0, 0),
        (bpf.BPF_ALU | bpf.BPF_NEG, 0, 0, 0),
        (bpf.BPF_RET | bpf.BPF_A, 0, 0, 0),
    ]
    assert run_filter(program, bytes(10)) == 40 == libpcap_run(program, bytes(10))
    divide_by_zero: list[Insn] = [
        (bpf.BPF_LD | bpf.BPF_IMM, 0, 0, 7),
        (bpf.BPF_ALU | bpf.BPF_DIV | bpf.BPF_K, 0, 0, 0),
        (bpf.BPF_RET | bpf.BPF_K, 0, 0, 1),
    ]
    assert run_filter(divide_by_zero, b"x") == 0
