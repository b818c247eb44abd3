"""Run the pptptop command on a small capture as if it were a large one: read ahead, slot after slot.

A regular file of 32 MiB or more is read by a forked child into two 8 MiB
shared-memory slots (``pptptop/sources/readahead.py``). Shrinking the
thresholds the way ``tests/sources/test_readahead.py`` does sends a capture of
a few MB through the same path, its slots refilled dozens of times, in a
fraction of the time. The thresholds are module globals, so they must be
shrunk in the process that runs the command (and the child it forks): hence
this script, run as ``python readahead_run.py [--busy N] ARGS [--- ARGS ...]``.
Each ``---``-separated argument list is one run of ``pptptop.cli.main`` in
this one process (the imports are paid once); the last line of stdout is a
JSON list of ``[exit status, stdout]``, one per run.

``--busy N`` runs them on a loaded machine: once the imports are done, this
process lowers its priority (``nice`` 10, which the read-ahead child
inherits) and starts N busy loops beside itself, stopped when the runs end.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

from pptptop import cli
from pptptop.sources import pcapfile, readahead

READ_AHEAD_MIN = 0  # every regular file is read ahead
READ_AHEAD_CHUNK = 16 << 10  # the reader's buffer: several of its batches go into one slot
PIECE = 4 << 10
SLOT_DATA = 128 << 10  # bytes of frame data per slot
FRAMES = 4096  # frames per slot
NICE = 10
#: a busy loop that ends with this process, however it ends (PR_SET_PDEATHSIG = 1, SIGKILL = 9)
BUSY = "import ctypes\nctypes.CDLL(None).prctl(1, 9)\nwhile 1: pass"


def shrink() -> None:
    pcapfile.READ_AHEAD_MIN = READ_AHEAD_MIN  # type: ignore[misc]
    pcapfile.READ_AHEAD_CHUNK = READ_AHEAD_CHUNK  # type: ignore[misc]
    pcapfile.PIECE = PIECE  # type: ignore[misc]
    readahead.SLOT_DATA = SLOT_DATA  # type: ignore[misc]
    readahead.FRAMES = FRAMES  # type: ignore[misc]


def main(argv: list[str]) -> int:
    shrink()
    busy = 0
    if argv[:1] == ["--busy"]:
        busy, argv = int(argv[1]), argv[2:]
    runs: list[list[str]] = [[]]
    for a in argv:
        if a == "---":
            runs.append([])
        else:
            runs[-1].append(a)
    results = []
    loops = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    try:
        if busy:
            os.nice(NICE)
        for args in runs:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = cli.main(args)
            results.append([code, out.getvalue()])
    finally:
        for p in loops:
            p.kill()
            p.wait()
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
