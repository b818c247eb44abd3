"""Wiring a run: the source, the engine on the tracker, what is done as root, and the signals.

Each step raises :class:`~pptptop.cli.config.Refusal` with the sentence the
user reads and the exit status; :func:`pptptop.cli.main` prints it.
"""

from __future__ import annotations

import importlib
import signal
import threading
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from pptptop import diagnose as diagmod
from pptptop.cli.config import Refusal, RunConfig
from pptptop.diagnose.hashes import HashCollector
from pptptop.exitcodes import (
    EXIT_BAD_INPUT,
    EXIT_CANT_CREATE,
    EXIT_NO_INPUT,
    EXIT_NO_PERMISSION,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from pptptop.inside import options as insideopts
from pptptop.pipeline import Pipeline
from pptptop.record import session as recording
from pptptop.record.writers import RecordError, open_output
from pptptop.sources.attach import AttachError, open_attach
from pptptop.sources.base import CaptureFileError, Source
from pptptop.sources.bpf import FilterError
from pptptop.sources.live import LiveCaptureError, NoSuchInterface
from pptptop.sources.owner import local_pptp_listeners
from pptptop.track import nat as natmod
from pptptop.track.tracker import Limits, Tracker

if TYPE_CHECKING:
    from pptptop.inside.inspector import Inspector
    from pptptop.inside.secrets import SecretStore


def open_source(cfg: RunConfig) -> Source:
    from pptptop import sources

    if cfg.attach is not None:
        return open_attach(cfg.attach)
    if cfg.files:
        files = list(cfg.files)
        return sources.open_file(files[0]) if len(files) == 1 else sources.open_files(files)
    ring = None if cfg.buffer_size is None else cfg.buffer_size << 10  # None: the size for named/any
    queue = sources.SPILL_LIMIT if cfg.queue is None else cfg.queue << 20
    return sources.open_live(list(cfg.interfaces), cfg.bpf_filter, ring_size=ring, spill_limit=queue)


def source_refusal(e: Exception) -> Refusal:
    """Why the source could not be opened, for the user; re-raises what is not a reason (a bug)."""
    if isinstance(e, AttachError):
        return Refusal(str(e), EXIT_UNAVAILABLE)
    if isinstance(e, FileNotFoundError):
        return Refusal(f"cannot read {e.filename}: no such file", EXIT_NO_INPUT)
    if isinstance(e, IsADirectoryError):
        return Refusal(f"cannot read {e.filename}: it is a directory, not a capture file", EXIT_NO_INPUT)
    if isinstance(e, PermissionError):
        what = e.filename or "the capture interface"
        hint = "" if e.filename else " (live capture needs root or CAP_NET_RAW: try sudo)"
        return Refusal(f"permission denied for {what}{hint}", EXIT_NO_PERMISSION)
    if isinstance(e, CaptureFileError):
        return Refusal(str(e), EXIT_BAD_INPUT)
    if isinstance(e, FilterError):
        return Refusal(str(e), EXIT_USAGE)
    if isinstance(e, NoSuchInterface):
        return Refusal(str(e), EXIT_NO_INPUT)
    if isinstance(e, LiveCaptureError):
        return Refusal(str(e), EXIT_NO_PERMISSION if isinstance(e.__cause__, PermissionError) else EXIT_UNAVAILABLE)
    if isinstance(e, OSError):
        return Refusal(f"cannot read {e.filename or 'the input'}: {e.strerror or e}", EXIT_NO_INPUT)
    raise e


#: what :func:`source_refusal` turns into a sentence
SOURCE_ERRORS = (AttachError, OSError, CaptureFileError, FilterError, NoSuchInterface, LiveCaptureError)


@dataclass(frozen=True, slots=True)
class Engine:
    """The tracker and what is attached to it, in the order their subscriptions must run."""

    tracker: Tracker
    inspector: Inspector | None
    nat: natmod.NatCorrelator
    diagnoser: diagmod.Diagnoser
    hashes: HashCollector | None


def build_engine(cfg: RunConfig, secrets: SecretStore) -> Engine:
    """The tracker, the inspector before the diagnosis (whose rules read what it finds), NAT pairing, the
    diagnosis and ``--export-hashes`` (its file created now, before any privilege drop; 0600, never through a
    link: docs/recording.md)."""
    tracker = Tracker(Limits(max_tunnels=cfg.max_tunnels, idle_timeout=cfg.idle_timeout))
    inspector = insideopts.inspector(secrets, tracker)
    nat = natmod.attach(tracker)  # pairs the legs of NATed sessions
    diagnoser = diagmod.Diagnoser(cfg.diagnosis, show_secrets=cfg.show_secrets).attach(tracker)
    try:
        hashes = (HashCollector(open_output(cfg.export_hashes)).attach(tracker)
                  if cfg.export_hashes is not None else None)
    except RecordError as e:
        raise Refusal(f"--export-hashes: {e}", EXIT_CANT_CREATE) from None
    return Engine(tracker, inspector, nat, diagnoser, hashes)


def preload(cfg: RunConfig, live: bool) -> None:
    """Import now, as root, what is otherwise imported after the privilege drop."""
    names = ["traceback"] + ([] if cfg.headless else ["pptptop.ui.app"]) + (["psutil"] if live else [])
    if cfg.serving is not None and cfg.serving.serve is not None:
        names.append("pptptop.serve.web")  # aiohttp and textual-serve, imported as root
    if live or cfg.drop_user is not None:
        names.append("numpy.ma")  # numpy's set routines (np.unique: the data path, the recorder) import it late
    if cfg.export_tunnel is not None:
        names += ["pptptop.view.filtering", "pptptop.view.snapshot"]
    for name in names:
        importlib.import_module(name)


def source_info(src: Source) -> dict[str, Any]:
    info: dict[str, Any] = {"name": src.name, "live": src.live, "interfaces": list(src.interfaces)}
    if src.live:
        # on a VPN server: which process answers on TCP 1723 (pptpd), as psutil sees it
        info["pptp_listeners"] = [str(x) for x in local_pptp_listeners()]
    return info


def install_signals(pipeline: Pipeline, session: recording.RecordingSession, *, ui: bool = False) -> None:
    """SIGINT/SIGTERM/SIGHUP end the capture; the recording is flushed and closed cleanly.

    Under the UI, SIGINT is the UI's (Ctrl-C); SIGTERM and SIGHUP close the
    files at once, so they are complete even if the terminal is gone.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        if ui:
            session.close()
        pipeline.stop()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP) if ui else (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stop)
