"""Build pptptop/data/demo.pcapng from the lab captures (both NAT legs of each).

The scenarios are shifted in time so that they overlap the way a busy
gateway's tunnels do: a successful MS-CHAPv2 session, two clients behind one
NAT, a wrong password, PAP in clear, GRE blocked, MPPE refused, an echo
timeout. Run from the repository root: ``python tools/make_demo.py``.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pptptop.record.writers import PcapNgWriter
from pptptop.sources import open_file

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
OUT = Path(__file__).resolve().parent.parent / "pptptop" / "data" / "demo.pcapng"
START = 1_763_900_000.0  # the demo's own clock

#: (capture, seconds after the demo's start)
SCENARIOS = [
    ("s1-mschapv2-mppe128-both.pcapng", 0.0),
    ("s5-two-clients-same-nat-both.pcapng", 3.0),
    ("s2-mschapv2-wrong-password-both.pcapng", 7.0),
    ("s6-pap-no-encryption-both.pcapng", 11.0),
    ("s3-gre-blocked-both.pcapng", 15.0),
    ("s4-mppe-refused-by-client-both.pcapng", 21.0),
    ("s7-echo-timeout-both.pcapng", 25.0),
]


SERVER = bytes([198, 51, 100, 2])


def server_call_ids(data: bytes, shift: int) -> bytes:
    """Give a scenario its own server (PAC) call IDs, as one pptpd serving all of them would.

    Each lab scenario ran a fresh pptpd, so every one starts at call ID 0; replayed
    side by side they would claim the same GRE key. The PAC's call ID appears in
    GRE towards the server, in Outgoing-Call-Reply and in Call-Disconnect-Notify.
    """
    b = bytearray(data)
    if len(b) < 34 or b[12:14] != b"\x08\x00":
        return data
    ihl = (b[14] & 0x0F) * 4
    l4 = 14 + ihl
    if b[23] == 47 and b[30:34] == SERVER and len(b) >= l4 + 8:
        struct.pack_into("!H", b, l4 + 6, (struct.unpack_from("!H", b, l4 + 6)[0] + shift) & 0xFFFF)
    elif b[23] == 6 and b[26:30] == SERVER and len(b) >= l4 + 14:
        msg = l4 + (b[l4 + 12] >> 4) * 4
        if (
            len(b) >= msg + 14
            and b[msg + 4 : msg + 8] == b"\x1a\x2b\x3c\x4d"
            and struct.unpack_from("!H", b, msg + 8)[0] in (8, 13)
        ):  # OCRP, CDN
            struct.pack_into("!H", b, msg + 12, (struct.unpack_from("!H", b, msg + 12)[0] + shift) & 0xFFFF)
    return bytes(b)


def main() -> int:
    frames = []
    for k, (name, offset) in enumerate(SCENARIOS):
        got = list(open_file(str(DATA / name)))
        t0 = min(f.ts for f in got)
        frames.extend(
            (START + offset + (f.ts - t0), f.iface, f.linktype, server_call_ids(f.data, 256 * k)) for f in got
        )
    frames.sort(key=lambda f: f[0])
    with open(OUT, "wb") as fh:
        w = PcapNgWriter(fh, application="pptptop demo (lab captures)")
        for ts, iface, lt, data in frames:
            w.write(ts, iface, lt, data)
    print(f"wrote {len(frames)} frames to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
