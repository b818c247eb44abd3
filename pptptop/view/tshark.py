"""tshark's own dissection of one packet, to show beside ours (no Textual here).

The packet is written to a temporary pcapng and read back with
``tshark -V -r``: exactly what Wireshark shows in its details pane. A
missing tshark, a timeout or a failure gives one sentence instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile

from pptptop.record.writers import PcapNgWriter
from pptptop.track.model import Packet

TIMEOUT = 20.0


def tshark_available() -> bool:
    return shutil.which("tshark") is not None


def tshark_dissect(p: Packet, timeout: float = TIMEOUT) -> tuple[bool, str]:
    """(ok, text): tshark's verbose dissection of ``p``, or why there is none."""
    exe = shutil.which("tshark")
    if exe is None:
        return (
            False,
            "tshark is not installed (apt-get install tshark), so only pptptop's dissection is shown.",
        )
    fd, path = tempfile.mkstemp(prefix="pptptop-", suffix=".pcapng")
    try:
        with os.fdopen(fd, "wb") as f:
            PcapNgWriter(f).write(p.ts, p.iface, p.linktype, p.data)
        proc = subprocess.run(
            [exe, "-n", "-V", "-r", path],
            capture_output=True,
            text=True,
            errors="backslashreplace",
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired:
        return False, f"tshark did not answer within {timeout:.0f} s."
    except OSError as e:
        return False, f"tshark could not be run: {e.strerror or e}."
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if proc.returncode != 0:
        return False, f"tshark failed ({proc.returncode}): {proc.stderr.strip()[-300:]}"
    return True, proc.stdout


def without_frame_block(text: str) -> str:
    """tshark's protocol layers without its leading "Frame N:" block (capture metadata, not the packet)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("Frame "):
        return text
    for i, line in enumerate(lines[1:], start=1):
        if line and not line[0].isspace():
            return "\n".join(lines[i:])
    return text
