"""pptptop: a live terminal UI and headless analyser for PPTP VPN tunnels."""

import os

__version__ = "0.1.0"

# numpy serves for array gathers only, never linear algebra: without this, OpenBLAS starts one thread per
# core when numpy is imported, ~0.1 s of CPU on every run (a user's own setting is kept)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
