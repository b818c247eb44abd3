"""Live capture in network namespaces: ``pptptop -i veth -w out --json -c N`` records exactly what was sent.

tcpreplay sends a lab capture into a veth pair; pptptop runs in the other
namespace as a subprocess, as root, and drops to ``nobody`` (no SUDO_USER)
once its sockets and file are open — which is also how the test knows it is
ready. The oracle for "what should have been captured" is tshark's reading
of the lab file with the default filter's meaning (TCP port 1723 or GRE).
"""

from __future__ import annotations

import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from rechelp import (
    DATA,
    HAVE_TSHARK,
    NO_TSHARK,
    NOBODY,
    Veth,
    capinfos,
    child_pid,
    json_doc,
    netns_missing,
    proc_capeff,
    proc_uid,
    raw_frames,
    tshark_read,
    veth,
    wait_until,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(netns_missing() is not None, reason=netns_missing() or ""),
    pytest.mark.skipif(not HAVE_TSHARK, reason=NO_TSHARK),
]

INSIDE = DATA / "s1-mschapv2-mppe128-inside.pcap"
OUTSIDE = DATA / "s1-mschapv2-mppe128-outside.pcap"


def pptp_frames(path: Path) -> list[bytes]:
    """The frames the default capture filter keeps, as tshark and scapy see them."""
    p = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tcp.port == 1723 || (ip.proto == 47 && !icmp)",
                        "-T", "fields", "-e", "frame.number"], capture_output=True, text=True, check=True)
    keep = [int(x) for x in p.stdout.split()]
    frames = raw_frames(path)
    return [frames[n - 1] for n in keep]


@pytest.fixture
def net() -> Iterator[Veth]:
    with veth() as v:
        v.link("vt0", "vr0")
        v.link("vt1", "vr1")
        yield v


def start(v: Veth, tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    p = v.popen(*args, cwd=tmp_path)
    return p, child_pid(p)


def finish(p: subprocess.Popen[str], timeout: float = 60) -> dict[str, object]:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return json_doc(subprocess.CompletedProcess([], 0, out, err))


@pytest.mark.parametrize("out_name", ["live.pcapng", "live.pcap"])
def test_live_packets_written_equal_packets_sent(net: Veth, tmp_path: Path, out_name: str) -> None:
    want = pptp_frames(INSIDE)
    out = tmp_path / out_name
    p, pid = start(net, tmp_path, "-i", "vr0", "-w", str(out), "--json", "-c", str(len(want)))
    try:
        # the privilege drop comes after the sockets and the file are open: then it is ready
        assert wait_until(lambda: proc_uid(pid) == (NOBODY,) * 4, timeout=30), p.stderr
        net.replay(INSIDE, "vt0")
        end = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert raw_frames(out) == want  # count, bytes and order
    info = capinfos(out)
    assert int(info["Number of packets"]) == len(want)
    assert int(info["Data size"].split()[0]) == sum(len(f) for f in want)
    rec = end["recording"]
    assert isinstance(rec, dict)
    assert rec["packets"] == len(want) and rec["unrecorded"] == 0 and rec["errors"] == 0
    iface = end["interfaces"]["vr0"]  # type: ignore[index]
    assert iface["up"] is True and iface["kernel_drops"] == 0 and iface["received"] >= len(want)
    assert iface["rx_packets"] >= len(raw_frames(INSIDE))  # psutil's counter sees everything, not only PPTP
    assert end["privileges"] == {"user": "nobody", "uid": NOBODY, "gid": NOBODY, "capabilities": []}
    st = out.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY, 0o600)
    if out_name.endswith(".pcapng"):
        assert set(tshark_read(out).interfaces) == {"vr0"}


def test_two_interfaces_keep_their_names(net: Veth, tmp_path: Path) -> None:
    inside, outside = pptp_frames(INSIDE), pptp_frames(OUTSIDE)
    out = tmp_path / "both.pcapng"
    p, pid = start(net, tmp_path, "-i", "vr0", "-i", "vr1", "-w", str(out), "--json",
                   "-c", str(len(inside) + len(outside)))
    try:
        assert wait_until(lambda: proc_uid(pid) == (NOBODY,) * 4, timeout=30), p.stderr
        net.replay(INSIDE, "vt0")
        net.replay(OUTSIDE, "vt1")
        finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    r = tshark_read(out)
    assert r.returncode == 0
    assert r.interfaces.count("vr0") == len(inside) and r.interfaces.count("vr1") == len(outside)
    got = raw_frames(out)
    assert [f for f, n in zip(got, r.interfaces, strict=True) if n == "vr0"] == inside
    assert [f for f, n in zip(got, r.interfaces, strict=True) if n == "vr1"] == outside


def test_no_drop_privileges_keeps_two_capabilities_and_captures(net: Veth, tmp_path: Path) -> None:
    want = pptp_frames(INSIDE)
    out = tmp_path / "root.pcapng"
    p, pid = start(net, tmp_path, "-i", "vr0", "-w", str(out), "--json", "--no-drop-privileges")
    try:
        assert wait_until(lambda: proc_capeff(pid) == (1 << 12) | (1 << 13), timeout=30), p.stderr
        assert proc_uid(pid) == (0, 0, 0, 0)
        net.replay(INSIDE, "vt0")
        assert wait_until(lambda: out.stat().st_size > 10_000, timeout=10)  # flushed within a second or so
        p.send_signal(signal.SIGTERM)
        end = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert raw_frames(out) == want
    assert end["privileges"] == {"user": "root", "uid": 0, "gid": 0, "capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW"]}
