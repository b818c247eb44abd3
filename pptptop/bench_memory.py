"""What a tunnel costs in memory, and the peak RSS of a reconnect storm: ``python -m pptptop.bench_memory``.

Two measures, both on :func:`pptptop.bench.generate_storm` captures (complete short sessions, a bounded
number under way at once):

- *bytes per tunnel*, in process with :mod:`tracemalloc`: the engine the CLI builds (tracker, NAT pairing,
  diagnosis) is fed a storm; the memory it holds is taken once while ``concurrent`` tunnels are live and once
  after every tunnel has closed, and divided by the tunnels held (minus an empty engine's);
- *peak RSS* of ``pptptop -r FILE --json`` (``/usr/bin/time -f %M``) on storms of 20,000 and 100,000
  sessions with the default ``--max-tunnels``: flat when eviction keeps memory bounded.

The figures go in docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from pptptop import diagnose
from pptptop.bench import generate_storm
from pptptop.sources import open_file
from pptptop.track import nat
from pptptop.track.model import Phase
from pptptop.track.tracker import Limits, Tracker

#: the session counts of the RSS measure (issue 23: flat from 20,000 to 100,000)
RSS_SESSIONS = (20_000, 100_000)


@dataclass(frozen=True, slots=True)
class PerTunnel:
    """Bytes the engine holds per tunnel: live ones (mid-storm) and closed ones (at the end)."""

    live: int
    live_bytes: float
    closed: int
    closed_bytes: float


class _Engine:
    """The tracker with what the CLI attaches to it (NAT pairing, diagnosis), fed frame by frame."""

    def __init__(self, max_tunnels: int) -> None:
        self.tracker = Tracker(Limits(max_tunnels=max_tunnels))
        self.nat = nat.attach(self.tracker)
        self.diagnoser = diagnose.Diagnoser(diagnose.DiagnosisConfig()).attach(self.tracker)


def _held() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def per_tunnel(path: Path, every: int = 250) -> PerTunnel:
    """Feed the storm in ``path`` to a fresh engine under tracemalloc. The live tunnels are counted, every
    ``every`` frames, where the most of them are in the data phase with none closed yet."""
    frames = list(open_file(str(path)))
    tracemalloc.start()
    base = _held()
    eng = _Engine(max_tunnels=10**9)
    tr = eng.tracker
    live, live_held = 0, 0
    for n, f in enumerate(frames, 1):
        tr.feed(n, f.ts, f.iface, f.linktype, f.data)
        if n % every == 0 and all(not t.ended for t in tr.tunnels.values()):
            up = sum(t.phase is Phase.DATA for t in tr.tunnels.values())
            if up and up >= live:
                live, live_held = up, _held() - base
    tr.finish()
    tr.tick(tr.now + tr.limits.settle_after)  # as if the link then stayed quiet: every tunnel settles
    frames.clear()
    closed = len(tr.tunnels)
    held = _held() - base
    tracemalloc.stop()
    return PerTunnel(live, live_held / max(live, 1), closed, held / max(closed, 1))


def peak_rss_kb(path: Path, extra: tuple[str, ...] = ()) -> int:
    """Peak RSS (KiB) of ``pptptop -r path --json`` in a child, by ``/usr/bin/time -f %M``."""
    with tempfile.TemporaryFile() as err:
        subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "pptptop", "-r", str(path), "--json",
                        *extra], stdout=subprocess.DEVNULL, stderr=err, check=True, env=os.environ.copy())
        err.seek(0)
        return int(err.read().decode().strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pptptop.bench_memory", description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=2_000, help="sessions of the per-tunnel measure")
    ap.add_argument("--rss", type=int, nargs="*", default=list(RSS_SESSIONS),
                    help="session counts of the peak-RSS measure (none: skip it)")
    ap.add_argument("--data", type=int, default=20, help="MPPE data frames per session")
    ap.add_argument("--rss-data", type=int, default=None, help="data frames per session of the RSS storms")
    ap.add_argument("--dir", type=Path, default=None, help="where the storms are written (a temporary one)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        d = a.dir or Path(tmp)
        p = d / f"storm-{a.sessions}-{a.data}.pcap"
        if not p.exists():
            generate_storm(p, a.sessions, concurrent=500, data=a.data)
        m = per_tunnel(p)
        print(f"per tunnel ({a.sessions} sessions, 500 at once, data={a.data}): "
              f"{m.closed_bytes / 1024:.1f} KB per closed tunnel ({m.closed}), "
              f"{m.live_bytes / 1024:.1f} KB per live tunnel ({m.live})", flush=True)
        rss_data = a.rss_data if a.rss_data is not None else a.data
        for n in a.rss:
            p = d / f"storm-{n}-{rss_data}.pcap"
            if not p.exists():
                generate_storm(p, n, concurrent=500, data=rss_data)
            kb = peak_rss_kb(p)
            print(f"peak RSS, {n} sessions (data={rss_data}), default --max-tunnels: {kb / 1024:.0f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
