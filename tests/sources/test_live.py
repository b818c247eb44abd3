"""Live capture on veth pairs between two network namespaces (root only)."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any

import pytest
from capfiles import DATA, IP_PACKETS, ethernet_cases
from netlab import Capture, Lab, enter_netns, have_tools, lab, sh
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from pptptop.sources import (
    FilterError,
    LiveCaptureError,
    LiveSource,
    open_file,
    open_live,
)
from pptptop.sources.batch import Batch
from pptptop.sources.bpf import BPF_K, BPF_RET, attach_filter, compile_filter, default_program, run_filter
from pptptop.sources.linktypes import LINKTYPE_ETHERNET, LINKTYPE_RAW
from pptptop.sources.spill import SPILL_LIMIT

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and network namespaces"),
    pytest.mark.skipif(have_tools() is not None, reason=have_tools() or ""),
]

MAC_TX = "02:00:00:00:00:01"
MAC_RX = "02:00:00:00:00:02"


@pytest.fixture
def net() -> Iterator[Lab]:
    with lab() as lb:
        lb.link("vt0", "vr0")
        yield lb


def pptp_frames(path: Path, program: list[tuple[int, int, int, int]] | None = None) -> list[bytes]:
    """The frames of a capture that the default filter (or ``program``) keeps."""
    prog = program or default_program(LINKTYPE_ETHERNET)
    return [f.data for f in open_file(path) if run_filter(prog, f.data)]


def noise(n: int) -> list[bytes]:
    """Frames that are not PPTP: UDP (also to port 1723), ICMP, TCP to port 80."""
    eth = Ether(src=MAC_TX, dst=MAC_RX)
    out = []
    for i in range(n):
        out.append(bytes(eth / IP(src="10.9.0.1", dst="10.9.0.2") / UDP(sport=5000 + i, dport=1723) / (b"u" * 20)))
        out.append(bytes(eth / IP(src="10.9.0.1", dst="10.9.0.2") / ICMP(seq=i)))
        out.append(bytes(eth / IP(src="10.9.0.1", dst="10.9.0.2") / TCP(sport=40000 + i, dport=80)))
    return out


@pytest.mark.parametrize("name", ["s1-mschapv2-mppe128-both.pcapng", "s5-two-clients-same-nat-outside.pcap",
                                  "ndpi__gre.pcapng", "chapcrack__sample.dump", "pptpsniffer__connect.pcapng"])
def test_replayed_capture_arrives_byte_identical(net: Lab, name: str) -> None:
    path = DATA / name
    expected = pptp_frames(path)
    assert expected
    with Capture(net.rx, lambda: open_live(["vr0"])) as cap:
        net.replay(path, "vt0")
        cap.wait_for(len(expected))
        st = cap.live.stats()
    assert [f.data for f in cap.frames] == expected
    assert {(f.iface, f.linktype) for f in cap.frames} == {("vr0", LINKTYPE_ETHERNET)}
    assert st.interfaces["vr0"].received == len(expected)
    assert st.kernel_drops == 0
    times = [f.ts for f in cap.frames]
    assert times == sorted(times) and abs(times[-1] - time.time()) < 60


def test_vlan_tag_is_put_back_after_offload(net: Lab) -> None:
    """The kernel strips the outer 802.1Q tag before the socket sees it; the frame must keep it."""
    (tagged,) = pptp_frames(DATA / "ndpi__gre.pcapng")
    with Capture(net.rx, lambda: open_live(["vr0"])) as cap:
        net.send_frames("vt0", [tagged])
        cap.wait_for(1)
    assert [f.data for f in cap.frames] == [tagged]
    assert cap.frames[0].data[12:14] == b"\x81\x00"


def test_non_pptp_is_dropped_by_the_kernel_filter(net: Lab) -> None:
    pptp = pptp_frames(DATA / "s2-mschapv2-wrong-password-outside.pcap")
    other = noise(30)
    mixed = [f for pair in zip_longest(pptp, other) for f in pair if f is not None]
    assert len(mixed) == len(pptp) + len(other)
    with Capture(net.rx, lambda: open_live(["vr0"])) as cap:
        net.send_frames("vt0", mixed)
        cap.wait_for(len(pptp))
        # the filter is locked: not even this process (after its privilege drop) can widen it
        (ring,) = cap.live._rings.values()
        with pytest.raises(PermissionError):
            attach_filter(ring.sock, [(BPF_RET | BPF_K, 0, 0, 0xFFFF)])
    # LiveSource has no filter of its own: whatever the kernel let through would be here.
    assert [f.data for f in cap.frames] == pptp
    # Without a filter the same frames do arrive, so they were sent.
    with Capture(net.rx, lambda: open_live(["vr0"], "")) as cap:
        net.send_frames("vt0", mixed)
        cap.wait_for(len(mixed))
    got = [f.data for f in cap.frames]
    assert all(f in got for f in other)


def kernel_view(frame: bytes) -> bytes:
    """The frame as the socket filter sees it: the kernel has already taken the outer VLAN tag off."""
    if frame[12:14] in (b"\x81\x00", b"\x88\xa8"):
        return frame[:12] + frame[16:]
    return frame


def test_crafted_frames_through_the_kernel_filter(net: Lab) -> None:
    """The hand-assembled program, run by the kernel on IPv4/IPv6/fragment/VLAN/QinQ edge cases."""
    sent = [frame for name, frame, _match in ethernet_cases() if name != "runt"]
    program = default_program(LINKTYPE_ETHERNET)
    expected = [f for f in sent if run_filter(program, kernel_view(f))]
    assert 0 < len(expected) < len(sent)
    with Capture(net.rx, lambda: open_live(["vr0"])) as cap:
        net.send_frames("vt0", sent)
        cap.wait_for(len(expected))
    assert [f.data for f in cap.frames] == expected  # tags re-inserted: byte-identical


TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def test_tun_interface_is_captured_as_raw_ip(net: Lab) -> None:
    sh("ip", "-n", net.rx, "tuntap", "add", "dev", "tn0", "mode", "tun")
    sh("ip", "-n", net.rx, "link", "set", "tn0", "up")
    packets = [(bytes(pkt), match) for name, (pkt, match) in IP_PACKETS.items() if not name.startswith("truncated")]
    errors: list[BaseException] = []

    def inject() -> None:
        # Writing to the tun file descriptor makes the packet arrive on tn0.
        try:
            enter_netns(net.rx)
            fd = os.open("/dev/net/tun", os.O_RDWR)
            try:
                fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", b"tn0", IFF_TUN | IFF_NO_PI))
                time.sleep(0.2)  # carrier up
                for data, _match in packets:
                    os.write(fd, data)
                time.sleep(0.3)
            finally:
                os.close(fd)
        except BaseException as e:
            errors.append(e)

    expected = [data for data, match in packets if match]
    with Capture(net.rx, lambda: open_live(["tn0"])) as cap:
        t = threading.Thread(target=inject)
        t.start()
        t.join(10)
        cap.wait_for(len(expected))
        st = cap.live.stats().interfaces["tn0"]
    assert errors == []
    assert [f.data for f in cap.frames] == expected
    assert {(f.iface, f.linktype) for f in cap.frames} == {("tn0", LINKTYPE_RAW)}
    assert st.linktype == LINKTYPE_RAW


def test_user_filter_compiled_by_libpcap(net: Lab) -> None:
    path = DATA / "s1-mschapv2-mppe128-outside.pcap"
    expr = "ip proto 47 and greater 200"
    expected = pptp_frames(path, compile_filter(expr, LINKTYPE_ETHERNET))
    assert 0 < len(expected) < len(pptp_frames(path))
    with Capture(net.rx, lambda: open_live(["vr0"], expr)) as cap:
        assert cap.live.filter == expr
        net.replay(path, "vt0")
        net.send_frames("vt0", noise(5))
        cap.wait_for(len(expected))
    assert [f.data for f in cap.frames] == expected


def test_bad_user_filter_fails_at_open(net: Lab) -> None:
    with pytest.raises(FilterError, match="bad capture filter 'tcp prot 1723'"), \
            Capture(net.rx, lambda: open_live(["vr0"], "tcp prot 1723")):
        pass


def test_unknown_interface_fails_at_open(net: Lab) -> None:
    with pytest.raises(LiveCaptureError, match=r"no such interface: nope0 \(interfaces here: .*vr0"), \
            Capture(net.rx, lambda: open_live(["nope0"])):
        pass


def test_two_interfaces_are_polled_together(net: Lab) -> None:
    net.link("vt1", "vr1")
    a = pptp_frames(DATA / "s3-gre-blocked-inside.pcap")
    b = pptp_frames(DATA / "s3-gre-blocked-outside.pcap")
    with Capture(net.rx, lambda: open_live(["vr0", "vr1"])) as cap:
        assert cap.live.interfaces == ["vr0", "vr1"]
        net.send_frames("vt0", a)
        net.send_frames("vt1", b)
        cap.wait_for(len(a) + len(b))
        st = cap.live.stats()
    assert [f.data for f in cap.frames if f.iface == "vr0"] == a
    assert [f.data for f in cap.frames if f.iface == "vr1"] == b
    assert (st.interfaces["vr0"].received, st.interfaces["vr1"].received) == (len(a), len(b))


def test_interface_deleted_during_capture_is_reported_and_retried(net: Lab) -> None:
    net.link("vt1", "vr1")
    frames = pptp_frames(DATA / "s2-mschapv2-wrong-password-inside.pcap")
    with Capture(net.rx, lambda: LiveSource(["vr0", "vr1"], rescan_interval=0.2)) as cap:
        sh("ip", "-n", net.tx, "link", "del", "vt1")  # takes vr1 with it
        deadline = time.monotonic() + 5
        while cap.live.stats().interfaces["vr1"].up and time.monotonic() < deadline:
            time.sleep(0.05)
        st = cap.live.stats().interfaces["vr1"]
        assert not st.up and st.error
        # The capture goes on on the other interface.
        net.send_frames("vt0", frames)
        cap.wait_for(len(frames))
        assert [f.data for f in cap.frames] == frames
        # The interface comes back (a new veth with the same name) and is picked up again.
        net.link("vt1", "vr1")
        deadline = time.monotonic() + 5
        while not cap.live.stats().interfaces["vr1"].up and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cap.live.stats().interfaces["vr1"].up
        assert cap.live.stats().interfaces["vr1"].error == ""
        net.send_frames("vt1", frames)
        cap.wait_for(2 * len(frames))
    assert [f.data for f in cap.frames if f.iface == "vr1"] == frames


def test_interface_set_down_and_up_again(net: Lab) -> None:
    frames = pptp_frames(DATA / "s2-mschapv2-wrong-password-inside.pcap")
    with Capture(net.rx, lambda: LiveSource(["vr0"], rescan_interval=0.2)) as cap:
        sh("ip", "-n", net.rx, "link", "set", "vr0", "down")
        deadline = time.monotonic() + 5
        while cap.live.stats().interfaces["vr0"].up and time.monotonic() < deadline:
            time.sleep(0.05)
        down = cap.live.stats().interfaces["vr0"]
        assert not down.up and "down" in down.error.lower()
        sh("ip", "-n", net.rx, "link", "set", "vr0", "up")
        deadline = time.monotonic() + 5
        while not cap.live.stats().interfaces["vr0"].up and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the veth carrier needs both ends up
        net.send_frames("vt0", frames)
        cap.wait_for(len(frames))
    assert [f.data for f in cap.frames] == frames


def _is_up(live: LiveSource, name: str) -> bool:
    st = live.stats().interfaces.get(name)
    return st is not None and st.up


def test_any_follows_interfaces_as_they_come(net: Lab) -> None:
    frames = pptp_frames(DATA / "s4-mppe-refused-by-client-inside.pcap")
    with Capture(net.rx, lambda: LiveSource(["any"], rescan_interval=0.2)) as cap:
        assert cap.live.name == "any"
        assert "vr0" in cap.live.interfaces
        net.link("vt1", "vr1")
        deadline = time.monotonic() + 5
        # vr1 is listed as soon as the rescan sees it, maybe while it is still
        # down (the veth pair is made, then set up): wait for it to be up.
        while not _is_up(cap.live, "vr1") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cap.live.stats().interfaces["vr1"].up
        net.send_frames("vt0", frames)
        net.send_frames("vt1", frames)
        cap.wait_for(2 * len(frames))
    assert [f.data for f in cap.frames if f.iface == "vr0"] == frames
    assert [f.data for f in cap.frames if f.iface == "vr1"] == frames


def test_close_from_another_thread_is_prompt(net: Lab) -> None:
    cap = Capture(net.rx, lambda: open_live(["vr0"]))
    with cap:
        time.sleep(0.3)
        took = cap.stop()
    assert took < 0.5
    assert cap.frames == []


_SIGNAL_STOP = """
import signal, sys, time
from pptptop.sources import open_live
src = open_live(["vr0"])
signal.signal(signal.SIGTERM, lambda *_: src.close())
print("ready", flush=True)
t0 = time.monotonic()
n = sum(1 for _ in src)
print(f"stopped {n} {time.monotonic() - t0:.3f}", flush=True)
"""


def test_close_from_a_signal_handler_ends_iteration(net: Lab) -> None:
    """``kill -TERM`` on a capture blocked in poll(): the handler's close() ends the loop at once."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(["ip", "netns", "exec", net.rx, sys.executable, "-c", _SIGNAL_STOP],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        net.replay(DATA / "s2-mschapv2-wrong-password-outside.pcap", "vt0")
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out = proc.stdout.readline().split()
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - sent < 1.0
        assert out[0] == "stopped" and int(out[1]) == len(pptp_frames(DATA / "s2-mschapv2-wrong-password-outside.pcap"))
    finally:
        proc.kill()
        proc.wait()


def test_burst_at_top_speed_is_fully_accounted(net: Lab) -> None:
    """Every matching frame sent is either delivered or counted as dropped (ring or interface)."""
    path = DATA / "s1-mschapv2-mppe128-both.pcapng"
    loops = 200
    per_loop = pptp_frames(path)
    with Capture(net.rx, lambda: open_live(["vr0"], ring_size=64 << 20)) as cap:
        net.replay(path, "vt0", loops=loops)
        cap.wait_for(loops * len(per_loop), timeout=30)
        st = cap.live.stats().interfaces["vr0"]
    sent = loops * len(per_loop)
    assert st.received == len(cap.frames)
    assert st.received + st.kernel_drops <= sent <= st.received + st.kernel_drops + st.if_drops
    # Frames that arrive arrive intact and in order.
    got = [f.data for f in cap.frames]
    assert got[:len(per_loop)] == per_loop or st.kernel_drops + st.if_drops > 0



def test_a_trickle_costs_its_frames_not_whole_blocks(net: Lab) -> None:
    """A block handed over by its timeout with a few frames in it is copied up to its blk_len, not 1 MiB."""
    expected = pptp_frames(DATA / "s2-mschapv2-wrong-password-outside.pcap")
    # one frame per block timeout or so: every block is almost empty
    got, _ = _trickle(net, expected, 0.03)
    assert [b.frame(i).data for b in got for i in range(len(b))] == expected
    for b in got:
        payload = int(b.lengths.sum())
        # the block header (48 bytes), and each frame's tpacket3_hdr and alignment
        assert len(b.buf) <= 48 + payload + 128 * len(b), (len(b.buf), len(b))


def _trickle(net: Lab, frames: list[bytes], gap: float, **live: Any) -> tuple[list[Batch], int]:
    """Send ``frames`` ``gap`` s apart; the batches a live source hands over, and its kernel drops."""
    got: list[Batch] = []
    ready = threading.Event()
    holder: list[LiveSource] = []

    def run() -> None:
        enter_netns(net.rx)
        src = open_live(["vr0"], **live)
        holder.append(src)
        ready.set()
        for b in src.batches():
            got.append(b)
            if sum(map(len, got)) >= len(frames):
                break

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(10)
    for frame in frames:
        net.send_frames("vt0", [frame])
        time.sleep(gap)
    t.join(10)
    st = holder[0].stats()
    holder[0].close()
    return got, st.kernel_drops


def test_a_slow_link_comes_in_a_few_batches_a_second(net: Lab) -> None:
    """At a few dozen frames a second every block is handed over by its 20 ms timeout; a batch has a fixed
    cost (the vectorised path), which at low rates made most of the CPU. After a small turn the next poll
    waits, so ~1.3 s of frames arrive in a handful of batches (one per block timeout would be ~45), all in
    order, none dropped."""
    expected = pptp_frames(DATA / "s2-mschapv2-wrong-password-outside.pcap")[:45]
    got, drops = _trickle(net, expected, 0.03)
    assert [b.frame(i).data for b in got for i in range(len(b))] == expected
    assert drops == 0
    assert len(got) <= 12, [len(b) for b in got]


def test_a_small_ring_waits_no_longer_than_it_can_hold(net: Lab) -> None:
    """With two 1 MiB blocks (``-B 2``) the wait is cut to what half the ring covers at the block timeout:
    the batches come one per block or so, and nothing is dropped."""
    expected = pptp_frames(DATA / "s2-mschapv2-wrong-password-outside.pcap")[:30]
    got, drops = _trickle(net, expected, 0.03, ring_size=2 << 20)
    assert [b.frame(i).data for b in got for i in range(len(b))] == expected
    assert drops == 0
    assert len(got) > 12, [len(b) for b in got]


LOOPS = 300  # replays of s1 (218 PPTP frames, 31 kB) sent while the consumer stalls
PPS = 20_000  # 3.3 s for the 65,400 frames (~13 MB in ring slots)
STALL = 2.5  # ~9 MB arrive meanwhile: twice the ring


def _stalled_capture(net: Lab, batches: bool, stall: float, expect: int,
                     spill_limit: int = SPILL_LIMIT) -> tuple[list[bytes], int]:
    """Capture on vr0 with a small ring while the consumer stalls for ``stall`` s after its first frames.

    Returns the frames' bytes in order and the kernel's drops.
    """
    got: list[bytes] = []
    drops: list[int] = []
    ready = threading.Event()
    first = threading.Event()
    holder: list[LiveSource] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            enter_netns(net.rx)
            # four 1 MiB blocks; at this rate a block is handed over by its timeout long before it fills, so the ring
            # holds 4 timeouts' worth: 200 ms each rides out a hiccup of the drain thread (20 ms: 80 ms in all)
            src = open_live(["vr0"], ring_size=4 << 20, block_timeout_ms=200, spill_limit=spill_limit)
            holder.append(src)
            ready.set()
            items = src.batches() if batches else src
            for item in items:
                if isinstance(item, Batch):
                    got.extend(item.frame(i).data for i in range(len(item)))
                else:
                    got.append(item.data)
                if not first.is_set():
                    first.set()
                    time.sleep(stall)  # the tracker is busy: a storm of handshakes
                if len(got) >= expect:
                    break
            drops.append(src.stats().interfaces["vr0"].kernel_drops)
        except BaseException as e:
            errors.append(e)
        finally:
            ready.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait(10)
    net.replay(DATA / "s1-mschapv2-mppe128-both.pcapng", "vt0", loops=1)
    first.wait(10)
    time.sleep(0.3)
    net.replay(DATA / "s1-mschapv2-mppe128-both.pcapng", "vt0", loops=LOOPS, pps=PPS)
    deadline = time.monotonic() + stall + 5.0
    while len(got) < expect and time.monotonic() < deadline:
        time.sleep(0.05)
    if holder:
        holder[0].close()
    t.join(10)
    if errors:
        raise errors[0]
    if not drops:
        drops.append(holder[0].stats().interfaces["vr0"].kernel_drops)
    return got, drops[0]


@pytest.mark.parametrize("batches", [True, False], ids=["batches", "frames"])
def test_a_busy_consumer_loses_nothing_while_a_thread_drains_the_ring(net: Lab, batches: bool) -> None:
    """The rings are drained by a thread of their own into memory (sources/spill.py): a stall of the
    consumer far longer than the ring's worth of traffic costs no drop, whether it takes batches (the
    tracker) or frames (recording). With nothing allowed to wait (spill_limit=0) the same stall overflows
    the same ring: the burst really is too big for it."""
    per_loop = pptp_frames(DATA / "s1-mschapv2-mppe128-both.pcapng")
    expect = (LOOPS + 1) * len(per_loop)
    got, drops = _stalled_capture(net, batches, stall=STALL, expect=expect)
    assert drops == 0
    assert got == per_loop * (LOOPS + 1)
    got, drops = _stalled_capture(net, batches, stall=STALL, expect=expect, spill_limit=0)
    assert drops > 0 and len(got) < expect
