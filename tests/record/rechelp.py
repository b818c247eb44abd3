"""Helpers for the recording tests: run pptptop, read files back with tshark/capinfos/scapy, namespaces."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
NOBODY = 65534

HAVE_TSHARK = shutil.which("tshark") is not None and shutil.which("capinfos") is not None
NO_TSHARK = "tshark/capinfos are not installed (apt-get install tshark)"


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("SUDO_USER", None)
    return e


def pptptop_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pptptop", *args]


def run_pptptop(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(pptptop_cmd(*args), capture_output=True, text=True, env=env(), timeout=timeout,
                          cwd=cwd or REPO)


def json_doc(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json`` document of a file run (or the capture-end line of a live one)."""
    out = proc.stdout.strip()
    lines = out.splitlines()
    if len(lines) == 1 or out.startswith("{\n"):
        doc: dict[str, Any] = json.loads(out)
        if "source" in doc:
            return doc
    for line in reversed(lines):
        rec: dict[str, Any] = json.loads(line)
        if rec.get("event") == "capture-end":
            return rec
    raise AssertionError(f"no capture-end line in {out[-500:]!r}")


@dataclass(frozen=True)
class Read:
    """What tshark made of a file."""

    returncode: int
    stderr: str
    lengths: list[int]
    interfaces: list[str]
    comments: list[str]

    @property
    def count(self) -> int:
        return len(self.lengths)

    @property
    def bytes(self) -> int:
        return sum(self.lengths)


def tshark_read(path: Path | str) -> Read:
    """Every frame's length, interface name and comment, and whether tshark complained."""
    p = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t",
                        "-e", "frame.cap_len", "-e", "frame.interface_name", "-e", "frame.comment"],
                       capture_output=True, text=True)
    lengths, names, comments = [], [], []
    for line in p.stdout.splitlines():
        cols = line.split("\t")
        lengths.append(int(cols[0]))
        names.append(cols[1] if len(cols) > 1 else "")
        comments.append(cols[2] if len(cols) > 2 else "")
    err = "\n".join(x for x in p.stderr.splitlines() if "could be dangerous" not in x)
    return Read(p.returncode, err, lengths, names, comments)


def capinfos(path: Path | str) -> dict[str, str]:
    """``capinfos -M`` (exact numbers) as a dict of its labels."""
    p = subprocess.run(["capinfos", "-M", "-c", "-d", "-k", "-t", "-a", "-e", "-S", str(path)],
                       capture_output=True, text=True)
    out: dict[str, str] = {"returncode": str(p.returncode), "stderr": p.stderr}
    for line in p.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def packet_count(path: Path | str) -> int:
    return int(capinfos(path)["Number of packets"])


def data_bytes(path: Path | str) -> int:
    return int(capinfos(path)["Data size"].split()[0])


def raw_frames(path: Path | str) -> list[bytes]:
    """The frames' bytes as scapy reads them (a reader independent of pptptop's)."""
    import scapy.layers.l2  # noqa: F401 - registers link type 1 so frames are not "unknown"
    from scapy.utils import PcapNgReader, PcapReader

    with open(path, "rb") as f:
        magic = f.read(4)
    reader = PcapNgReader if magic == b"\x0a\x0d\x0d\x0a" else PcapReader
    with reader(str(path)) as r:
        return [bytes(p) for p in r]


def pcapng_blocks(path: Path | str) -> list[tuple[int, int, int]]:
    """``(offset, block type, total length)`` of every block of a little-endian pcapng file."""
    b = Path(path).read_bytes()
    out = []
    off = 0
    while off + 8 <= len(b):
        btype, length = struct.unpack_from("<II", b, off)
        out.append((off, btype, length))
        if length < 12:
            break
        off += length
    return out


def wait_until(cond: Any, timeout: float = 10.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def proc_uid(pid: int) -> tuple[int, ...] | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return tuple(int(x) for x in line.split()[1:])
    except OSError:
        return None
    return None


def proc_capeff(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------- root-only helpers
def is_root() -> bool:
    return os.geteuid() == 0


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *, readonly: bool = False) -> Iterator[Path]:
    """A small tmpfs mounted at ``where`` (root only)."""
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size},mode=0755" + (",ro" if readonly else "")
    sh("mount", "-t", "tmpfs", "-o", opts, "pptptop-test", str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@dataclass
class Veth:
    """Namespaces ``tx`` and ``rx`` with veth pairs between them."""

    tx: str
    rx: str

    def link(self, a: str, b: str) -> None:
        sh("ip", "link", "add", a, "netns", self.tx, "type", "veth", "peer", "name", b, "netns", self.rx)
        for ns, dev in ((self.tx, a), (self.rx, b)):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                            f"net.ipv6.conf.{dev}.disable_ipv6=1"], capture_output=True)
            sh("ip", "-n", ns, "link", "set", dev, "up")

    def replay(self, path: Path | str, dev: str) -> None:
        sh("ip", "netns", "exec", self.tx, "tcpreplay", "-q", "-t", "-i", dev, str(path))

    def popen(self, *args: str, cwd: Path) -> subprocess.Popen[str]:
        """pptptop inside the rx namespace."""
        return subprocess.Popen(["ip", "netns", "exec", self.rx, *pptptop_cmd(*args)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env(), cwd=cwd)


def netns_missing() -> str | None:
    if not is_root():
        return "needs root and network namespaces"
    for tool in ("ip", "tcpreplay"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


@contextlib.contextmanager
def veth() -> Iterator[Veth]:
    tag = uuid.uuid4().hex[:8]
    v = Veth(f"pptptop-rtx-{tag}", f"pptptop-rrx-{tag}")
    sh("ip", "netns", "add", v.tx)
    try:
        sh("ip", "netns", "add", v.rx)
        yield v
    finally:
        for ns in (v.tx, v.rx):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def child_pid(wrapper: subprocess.Popen[str], timeout: float = 10.0) -> int:
    """``ip netns exec`` execs the command, so the wrapper's pid is pptptop's own."""
    wait_until(lambda: os.path.exists(f"/proc/{wrapper.pid}/status"), timeout)
    return wrapper.pid
