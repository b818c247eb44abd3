"""Regenerate the SVG screenshots in this directory: ``python docs/screenshots/make.py``.

Runs the real command line (``pptptop -r FILE``, with diagnosis and NAT
correlation wired in as the CLI does) but swaps the terminal for Textual's
headless test driver, presses keys and saves each screen as SVG.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from argparse import Namespace
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE.parent.parent / "tests" / "data"
SIZE = (120, 36)

#: file name → (capture, keys to press after the replay ended; a longer "key" puts the ladder cursor on the
#: first arrow whose label starts with it)
SHOTS: dict[str, tuple[str, list[str]]] = {
    "tunnels.svg": ("s5-two-clients-same-nat-both.pcapng", []),
    "tunnels-80x24.svg": ("s2-mschapv2-wrong-password-both.pcapng", []),
    "tunnel-flow.svg": ("s5-two-clients-same-nat-both.pcapng", ["down", "enter"]),
    "tunnel-summary.svg": ("s2-mschapv2-wrong-password-both.pcapng", ["enter", "2"]),
    "tunnel-traffic.svg": ("s1-mschapv2-mppe128-both.pcapng", ["enter", "3"]),
    "tunnel-transcript.svg": ("s1-mschapv2-mppe128-both.pcapng", ["enter", "4"]),
    "packet.svg": ("s2-mschapv2-wrong-password-both.pcapng", ["enter", "CHAP Failure", "enter"]),
    "packet-tshark.svg": ("s2-mschapv2-wrong-password-both.pcapng", ["enter", "CHAP Failure", "enter", "d"]),
    "nat.svg": ("s5-two-clients-same-nat-both.pcapng", ["n"]),
    "events.svg": ("s3-gre-blocked-both.pcapng", ["e"]),
    "help.svg": ("s1-mschapv2-mppe128-both.pcapng", ["question_mark"]),
    "theme-light.svg": ("s5-two-clients-same-nat-both.pcapng", ["t"]),
    "theme-contrast.svg": ("s2-mschapv2-wrong-password-both.pcapng", ["t", "t"]),
}


def shoot(name: str, capture: str, keys: list[str]) -> None:
    import pptptop.ui.app as ui
    from pptptop import cli
    from pptptop.pipeline import Pipeline
    from pptptop.ui.themes import load_theme
    from pptptop.ui.widgets.ladder import LadderView

    size = (80, 24) if "80x24" in name else SIZE

    def headless(pipeline: Pipeline, args: Namespace) -> int:
        assert isinstance(pipeline, Pipeline)
        app = ui.PptpTopApp(pipeline, load_theme("dark"))

        async def run() -> None:
            async with app.run_test(size=size) as pilot:
                while not app.pipeline.done.is_set():
                    await pilot.pause(0.05)
                await pilot.pause(0.3)
                for k in keys:
                    if len(k) > 1 and " " in k:
                        ladder = app.screen.query_one(LadderView)
                        ladder.move_cursor(next(i for i, e in enumerate(ladder.entries) if e.label.startswith(k)))
                    else:
                        await pilot.press(k)
                    await pilot.pause(0.2)
                if keys and keys[-1] == "d":
                    await pilot.pause(3.0)  # tshark's answer
                app.save_screenshot(str(HERE / name))
        asyncio.run(run())
        return 0

    setattr(ui, "run_ui", headless)  # noqa: B010 - the CLI imports run_ui when it needs it
    setattr(cli, "_take_terminal", lambda args: None)  # noqa: B010 - the headless driver reads no keys
    os.chdir(DATA)  # the header shows the file by the name it was given
    cli.main(["-r", capture])


def main() -> int:
    os.environ["TZ"] = "UTC"
    time.tzset()
    for name, (capture, keys) in SHOTS.items():
        shoot(name, capture, keys)
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
