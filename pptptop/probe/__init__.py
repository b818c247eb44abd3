"""``pptptop --probe HOST``: act as a PPTP client and say at which step the handshake breaks (docs/probe.md).

:mod:`.client` is the client's state machine, :mod:`.craft` builds and reads
its packets (scapy for what it sends), :mod:`.render` prints ``--report`` and
``--json``. The CLI calls :func:`add_arguments` when it builds its parser and
:func:`main` when ``--probe`` is given, before any capture is set up.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import sys
import threading
import time
from typing import IO, TYPE_CHECKING

from pptptop import privdrop
from pptptop.diagnose.text import printable
from pptptop.exitcodes import (
    EXIT_NO_HOST,
    EXIT_NO_INPUT,
    EXIT_NO_PERMISSION,
    EXIT_NO_USER,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from pptptop.inside.secrets import SecretError, read_secrets_file
from pptptop.privdrop import PrivDropError

if TYPE_CHECKING:
    from pptptop.probe.client import Credentials, ProbeResult, Step
    from pptptop.probe.live import Runs
    from pptptop.ui.app import PptpTopApp

EXIT_FAILED = EXIT_UNAVAILABLE  # a step failed


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("active probe (docs/probe.md)")
    g.add_argument("--probe", metavar="HOST",
                   help="act as a PPTP client towards HOST and report each step of the handshake; credentials "
                        "(--password, --nt-hash, --secrets) go to HOST only")
    g.add_argument("--probe-timeout", type=_positive, default=10.0, metavar="SECONDS",
                   help="how long each step waits (default 10)")
    g.add_argument("--probe-repeat", type=_count, default=1, metavar="N", help="run the probe N times")
    g.add_argument("--interval", type=_positive, default=10.0, metavar="SECONDS",
                   help="with --probe-repeat: seconds between the starts of two runs (default 10)")
    g.add_argument("--probe-user", metavar="USER", help="with --secrets: the user to authenticate as")


def usage_problem(args: argparse.Namespace) -> str | None:
    if args.read or args.demo:
        return "--probe talks to a server: give it without -r FILE or --demo"
    if args.json and args.report:
        return "--json and --report both write to standard output: choose one"
    if getattr(args, "export_tunnel", None) is not None or args.record_failed or args.decrypted:
        return "--probe records with -w FILE only (--export-tunnel, --record-failed and --decrypted do not apply)"
    if (args.interfaces or args.iface_opt) and not args.write:
        return "with --probe, interfaces say where -w FILE captures the probe's packets: give -w FILE too"
    return None


def credentials(args: argparse.Namespace) -> Credentials | None:
    """The one user the probe authenticates as, or None. Raises :class:`SecretError` (one sentence)."""
    given = [*args.password, *args.nt_hash]
    for path in args.secrets:
        given.extend(read_secrets_file(path)[0])
    if args.probe_user is not None:
        given = [s for s in given if s.client == args.probe_user]
        if not given:
            raise SecretError(f"no secret for --probe-user {args.probe_user!r}")
    if not given:
        return None
    users = {s.client for s in given}
    if len(users) > 1:
        raise SecretError(f"the secrets name {len(users)} users: choose one with --probe-user USER")
    pw = next((s.password for s in given if s.password is not None), None)
    from pptptop.probe.client import Credentials
    return Credentials(given[0].client, pw, given[0].nt_hash)


def resolve(host: str) -> str:
    """``host``'s IPv4 address (PPTP's GRE here is IPv4). Raises OSError."""
    return str(socket.getaddrinfo(host, 1723, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])


def drop(args: argparse.Namespace) -> None:
    """As live capture does: the raw sockets are open, so root (and every capability) goes now."""
    if os.geteuid() != 0:
        return
    user = args.drop_user or privdrop.default_user()
    if args.no_drop_privileges or (args.drop_user is None and privdrop.unreadable_installation(user)):
        privdrop.limit_capabilities(())  # stay root, without a single capability
        return
    privdrop.drop_privileges(user)


def _warm_up(creds: Credentials | None) -> None:
    """Run the code the probe needs later once now, before the privilege drop: pycryptodome and scapy load
    parts of themselves on first use, which the target user may not be able to read."""
    if creds is None:
        return
    from pptptop.decode import mschap_crypto as m

    z = bytes(16)
    m.generate_authenticator_response(z, m.generate_nt_response(z, z, b"u", z), z, z, b"u")
    m.chap_md5_response(0, b"", z)
    m.nt_password_hash("")


class ProbeCapture:
    """``-w FILE`` with ``--probe``: a live capture (``-i IFACE``, default ``any``) through the usual pipeline and
    recorder, so the file holds the probe's own packets as any capture would."""

    def __init__(self, args: argparse.Namespace, server: str | None = None) -> None:
        """``server``: under the UI, with no ``-f``, capture only what goes to and from it."""
        from pptptop.diagnose import Diagnoser
        from pptptop.diagnose import options as diagopts
        from pptptop.pipeline import Pipeline
        from pptptop.record.session import RecordingOptions, RecordingSession
        from pptptop.sources import open_live
        from pptptop.track.tracker import Tracker

        ifaces = [*args.interfaces, *args.iface_opt] or ["any"]
        self.source = open_live(ifaces, args.filter or (f"host {server}" if server else None))
        self.tracker = Tracker()
        Diagnoser(diagopts.config(args)).attach(self.tracker)  # what passive capture makes of the probe
        self.session = RecordingSession(RecordingOptions.from_args(args), quiet=True)
        self.session.open(self.source, self.tracker)  # created as root, before the drop
        self.pipeline = Pipeline(self.source, self.tracker)
        self.thread: threading.Thread | None = None
        self.report_lines: list[str] = []  # after stop(): the passive report of what was captured

    def start(self) -> None:
        self.session.start(self.pipeline)
        self.thread = threading.Thread(target=self.pipeline.run, name="pptptop-capture", daemon=True)
        self.thread.start()

    def stop(self) -> dict[str, object]:
        time.sleep(0.3)  # the last FIN and ICMP into the ring
        self.pipeline.stop()
        if self.thread is not None:
            self.thread.join(5)
        self.session.close()
        return self.summary()

    def summary(self) -> dict[str, object]:
        """What ``--json`` says under ``capture``; :attr:`report_lines` gets the ``--report`` of each tunnel
        (the passive engine's view of the probe, its diagnosis included), as ``-r FILE --report`` prints it."""
        from pptptop import diagnose
        from pptptop.export.report import tunnel_lines

        with self.pipeline.lock:
            tunnels = sorted(self.tracker.tunnels.values(), key=lambda t: t.id)
            findings = [f.code for t in tunnels for f in t.findings if f.severity.value == "error"]
            self.report_lines = [line for t in tunnels for line in tunnel_lines(t, [diagnose.report_lines])]
        return {"file": self.session.args.write, "frames": self.pipeline.frames,
                "kernel_drops": self.source.stats().kernel_drops, "tunnels": len(self.tracker.tunnels),
                "findings": findings, "messages": list(self.session.messages)}


def main(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    from pptptop.probe import render  # scapy and pycryptodome: loaded only for the probe, before the drop
    from pptptop.probe.client import ProbeSockets
    from pptptop.probe.live import ProbeFeed, Runs

    out = out or sys.stdout
    err = err or sys.stderr
    problem = usage_problem(args)
    if problem:
        print(f"pptptop: {problem}", file=err)
        return EXIT_USAGE
    try:
        creds = credentials(args)  # read now, before the privilege drop
    except (SecretError, OSError) as e:
        print(f"pptptop: {e}", file=err)
        return EXIT_NO_INPUT
    try:
        address = resolve(args.probe)
    except OSError as e:
        print(f"pptptop: cannot resolve {args.probe!r}: {e.strerror or e}", file=err)
        return EXIT_NO_HOST
    ui = wants_ui(args, out)
    capture: ProbeCapture | None = None
    if (args.write or ui) and os.geteuid() == 0 and args.drop_user is None and not args.no_drop_privileges \
            and privdrop.unreadable_installation(privdrop.default_user()):
        args.no_drop_privileges = True  # as the UI does: the user could not import what comes later
    if args.write or ui:
        from pptptop.record.writers import RecordError
        from pptptop.sources.bpf import FilterError
        from pptptop.sources.live import LiveCaptureError

        try:
            capture = ProbeCapture(args, address if ui else None)
        except (LiveCaptureError, FilterError, RecordError, OSError) as e:  # each one sentence
            if not args.write:  # the UI only: the steps are printed instead
                print(f"pptptop: warning: cannot capture the probe's packets for the UI ({e}): "
                      "the steps are printed instead", file=err)
                ui = False
            else:
                print(f"pptptop: cannot capture the probe's packets: {e}", file=err)
                return EXIT_USAGE if isinstance(e, FilterError) else EXIT_NO_PERMISSION
        if capture is not None:
            importlib.import_module("numpy.ma")  # imported late by the recorder's data path: now, before the drop
    socks = ProbeSockets.open()
    if socks.why_not:
        print(f"pptptop: warning: {socks.why_not}: the probe stops after the call (steps tcp, control, call)",
              file=err)
    _warm_up(creds)
    if ui:
        preload_ui()
    try:
        if capture is not None:
            capture.session.drop_privileges(capture.source, ui=ui)
        else:
            drop(args)
    except PrivDropError as e:
        print(f"pptptop: {e}", file=err)
        return EXIT_NO_USER if "no such user" in str(e) else EXIT_NO_PERMISSION
    runs = Runs(args.probe, address, socks, timeout=args.probe_timeout, repeat=args.probe_repeat,
                interval=args.interval, credentials=creds,
                feed=ProbeFeed(f"probe of {printable(args.probe, 128)} ({address})") if ui else None)
    if ui:
        assert capture is not None and runs.feed is not None
        code = run_in_ui(capture, runs, err)
        results = runs.results
        seen = capture.summary()
        if code != EXIT_OK:
            return code
        out.write(render.report(results, seen if args.write else None,
                                capture.report_lines if args.write else None) if results else "")
        out.flush()
        return EXIT_OK if results and all(r.failed is None for r in results) else EXIT_FAILED
    if capture is not None:
        capture.start()
    live = not args.json and not args.report

    def show(step: Step) -> None:
        if live:
            out.write("\n".join(render.step_lines(step)) + "\n")
            out.flush()

    def announce(i: int, r: ProbeResult | None) -> None:
        if not live:
            return
        if r is None:
            out.write(f"pptptop probe of {args.probe} ({address})"
                      + (f", run {i + 1} of {args.probe_repeat}" if args.probe_repeat > 1 else "") + "\n")
        else:
            out.write(render.verdict(r) + "\n")

    try:
        runs.run(show, announce)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends a repeated probe early: the results so far are still rendered below
    finally:
        socks.close()
        recorded = capture.stop() if capture is not None else None
    results = runs.results
    if not results:
        return EXIT_FAILED
    if args.json:
        doc = render.document(results)
        if recorded is not None:
            doc["capture"] = recorded
        out.write(json.dumps(doc) + "\n")
    elif args.report:
        out.write(render.report(results, recorded, capture.report_lines if capture is not None else None))
    elif len(results) > 1:
        out.write("\n".join(render.timing_lines(results)) + "\n")
    out.flush()
    return EXIT_OK if all(r.failed is None for r in results) else EXIT_FAILED


def wants_ui(args: argparse.Namespace, out: IO[str]) -> bool:
    """The UI, as for a capture: without ``--json``/``--report``, on a terminal (standard input and output)."""
    if args.json or args.report:
        return False
    try:
        return out is sys.stdout and out.isatty() and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def preload_ui() -> None:
    """Import the UI now, before the privilege drop (the target user may not read the installation)."""
    importlib.import_module("pptptop.ui.app")
    importlib.import_module("pptptop.ui.screens.tunnel")


def ui_app(capture: ProbeCapture, runs: Runs) -> PptpTopApp:
    """The UI over the capture beside the probe, the probe's steps under every screen (the tests build it so)."""
    from pptptop.ui.app import PptpTopApp
    from pptptop.ui.themes import load_theme

    capture.session.start(capture.pipeline)  # the UI starts the pipeline's thread itself
    app = PptpTopApp(capture.pipeline, load_theme("dark"), recording=capture.session.status)
    app.probe = runs.feed
    return app


def run_in_ui(capture: ProbeCapture, runs: Runs, err: IO[str]) -> int:
    """``pptptop --probe HOST`` on a terminal: the probe in a worker thread, its packets through the ordinary
    pipeline into the tunnel screen; the UI stays open after the probe for drill-down, until the user quits."""
    from pptptop.ui.app import UiOptions, run_ui

    capture.session.start(capture.pipeline)
    runs.start()
    try:
        return run_ui(capture.pipeline, UiOptions(recording=capture.session.status, probe=runs.feed))
    finally:
        runs.stop()  # the user quit during a run: it ends at its next wait and tears down
        runs.sockets.close()
        capture.session.close()
