"""``pptptop --probe HOST`` in the UI, driven by Textual's pilot; run as root in the probe's namespace.

Builds the UI as the command does (pptptop.probe: the capture beside the
probe through the ordinary pipeline, the probe in a worker thread, its steps
under every screen), waits for the probe to end, opens the tunnel and writes
what the terminal showed to a JSON file for tests/integration/test_probe.py.

    python probe_ui_pilot.py --out result.json -- --probe 10.91.0.2 -i pc --password alice:PASS
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain text (one line per row), from the compositor."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


async def drive(argv: list[str]) -> dict[str, Any]:
    from pptptop.cli import build_parser
    from pptptop.probe import ProbeCapture, credentials, resolve, ui_app
    from pptptop.probe.client import ProbeSockets
    from pptptop.probe.live import ProbeFeed, Runs

    args = build_parser().parse_args(argv)
    address = resolve(args.probe)
    capture = ProbeCapture(args, address)
    socks = ProbeSockets.open()
    runs = Runs(args.probe, address, socks, timeout=args.probe_timeout, repeat=1, interval=1.0,
                credentials=credentials(args), feed=ProbeFeed(f"probe of {args.probe} ({address})"))
    app = ui_app(capture, runs)
    out: dict[str, Any] = {}
    try:
        async with app.run_test(size=(150, 46)) as pilot:
            runs.start()
            end = time.monotonic() + 60
            while not runs.done.is_set() and time.monotonic() < end:
                await pilot.pause(0.05)
                text = screen_text(app)
                if "during" not in out and not runs.done.is_set() and "[ ok ] call" in text:
                    out["during"] = text  # the screen while the probe still ran, after its third step
            out["probe_done"] = runs.done.is_set()
            await pilot.pause(0.6)  # the last packets through the pipeline, a snapshot or two
            out["main"] = screen_text(app)
            await pilot.press("enter")
            await pilot.pause(0.8)
            out["screen"] = type(app.screen).__name__
            out["flow"] = screen_text(app)
            ladder = app.screen.query_one("#ladder")
            out["ladder"] = [e.label for e in getattr(ladder, "entries", [])]
            await pilot.press("4")
            await pilot.pause(0.5)
            out["transcript"] = screen_text(app)
            out["results"] = [r.as_dict() for r in runs.results]
            await pilot.press("q")
    finally:
        runs.stop()
        socks.close()
        capture.session.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    a = p.parse_args()
    rest = a.rest[1:] if a.rest[:1] == ["--"] else a.rest
    result = asyncio.run(drive(rest))
    with open(a.out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
