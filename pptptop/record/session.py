"""Wiring of the recording options for the CLI: ``-w``, rotation, exports, ``--record-failed``, ``-Z``.

The CLI calls, in this order (see ``docs/recording.md``)::

    session = RecordingSession(args)          # after parsing; usage_error() first
    session.open(source, tracker)             # as root: output files, the failed-tunnel directory
    session.drop_privileges(source)           # -Z / --no-drop-privileges, before the first packet
    session.start(pipeline)                   # the -w hook, tunnel-close flushes, the flusher thread
    ... the capture runs ...
    session.close()                           # on the end of input, -c, SIGINT/SIGTERM/SIGHUP

Problems with recording never stop the capture: they are printed (headless)
or shown in the UI header through :meth:`RecordingSession.status`, logged,
and the unrecorded packets counted. Only ``--export-tunnel``, whose whole job
is the file, stops at once when its file cannot be created.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from pptptop import privdrop
from pptptop.pipeline import Pipeline
from pptptop.record.decrypted import DecryptedRecorder, DecryptedSpool
from pptptop.record.export import export_tunnels, select_tunnels
from pptptop.record.failed import FailedRecorder, FailedState
from pptptop.record.recorder import (
    MEGABYTE,
    Recorder,
    RecordingState,
    Rotation,
    directory_writable,
    wants_pcapng,
)
from pptptop.record.status import InterfaceCounters, counters_dict, interface_counters
from pptptop.record.writers import RecordError, open_output
from pptptop.sources.base import Source
from pptptop.track.model import Tunnel
from pptptop.track.tracker import Tracker

log = logging.getLogger("pptptop.record")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The recording and privilege options (tcpdump's letters where tcpdump has one)."""
    g = p.add_argument_group("recording")
    g.add_argument("-w", "--write", metavar="FILE",
                   help="record every captured packet to FILE (pcapng, one interface block per interface; "
                        "classic pcap if FILE ends in .pcap); with --export-tunnel, the export's file")
    g.add_argument("--pcap", action="store_true", help="write classic pcap instead of pcapng")
    g.add_argument("-C", "--file-size", type=_positive_float, metavar="MB",
                   help="start a new -w file before this many million bytes")
    g.add_argument("-G", "--rotate-seconds", type=_positive_float, metavar="SECONDS",
                   help="start a new -w file every SECONDS of capture time")
    g.add_argument("-W", "--file-count", type=_positive_int, metavar="N",
                   help="with -C or -G: keep only the last N files")
    g.add_argument("--export-tunnel", metavar="ID|FILTER",
                   help="headless: write the packets kept for tunnel ID (or every tunnel the UI filter "
                        "FILTER matches, e.g. 'failed user=bob'), both NAT legs, to -w FILE")
    g.add_argument("--record-failed", metavar="DIR",
                   help="write one pcapng per tunnel that ends failed into DIR, with its diagnosis "
                        "as a comment")
    z = p.add_argument_group("privileges")
    z.add_argument("-Z", "--relinquish-privileges", dest="drop_user", metavar="USER",
                   help="after opening the capture and output files as root, run as USER "
                        "(default for live capture: $SUDO_USER, else nobody)")
    z.add_argument("--no-drop-privileges", action="store_true",
                   help="stay root, but keep only CAP_NET_ADMIN and CAP_NET_RAW (e.g. for conntrack reads)")


def usage_error(args: argparse.Namespace) -> str | None:
    """A one-sentence complaint about contradictory recording options, or None."""
    rotating = args.file_size is not None or args.rotate_seconds is not None
    if not args.write and (rotating or args.file_count is not None or args.pcap):
        return "-C, -G, -W and --pcap need -w FILE"
    if args.file_count is not None and not rotating:
        return "-W N keeps the last N rotated files: give -C MB or -G SECONDS too"
    if args.export_tunnel is not None and not args.write:
        return "--export-tunnel needs -w FILE for the export"
    if args.export_tunnel is not None and rotating:
        return "--export-tunnel writes one file: -C, -G and -W do not apply"
    if args.drop_user is not None and args.no_drop_privileges:
        return "-Z USER and --no-drop-privileges contradict each other"
    return None


@dataclass(frozen=True, slots=True)
class RecordingStatus:
    """Everything the UI header shows about recording and capture health (copied, thread-safe)."""

    recording: RecordingState | None  # -w, None when not asked for
    failed: FailedState | None  # --record-failed
    interfaces: tuple[InterfaceCounters, ...]
    privileges: privdrop.DropResult | None

    @property
    def kernel_drops(self) -> int:
        return sum(i.kernel_drops for i in self.interfaces)


class RecordingSession:
    """The recording side of one pptptop run; see the module docstring for the order of calls."""

    def __init__(self, args: argparse.Namespace, *, err: IO[str] | None = None, quiet: bool = False) -> None:
        self.args = args
        self.err = err if err is not None else sys.stderr
        self.quiet = quiet  # the UI owns the terminal: only log, the header shows the state
        self.recorder: Recorder | None = None
        self.failed: FailedRecorder | None = None
        self.export_fd: int | None = None
        self.privileges: privdrop.DropResult | None = None
        self.source: Source | None = None
        self.tracker: Tracker | None = None
        self.messages: list[str] = []
        #: --decrypted: the inner packets of decrypted tunnels, written as read (-w) or kept for the export
        self.decrypted: DecryptedRecorder | DecryptedSpool | None = None

    def _report(self, message: str) -> None:
        self.messages.append(message)
        if not self.quiet:
            print(f"pptptop: {message}", file=self.err, flush=True)

    # ------------------------------------------------------------------ as root
    def open(self, src: Source, tracker: Tracker) -> None:
        """Create the output files now. Raises :class:`RecordError` only for ``--export-tunnel``."""
        a = self.args
        self.source, self.tracker = src, tracker
        if a.export_tunnel is not None:
            self.export_fd = open_output(a.write)
            if a.decrypted:
                self.decrypted = DecryptedSpool()
            return
        if a.write and a.decrypted:
            self.decrypted = DecryptedRecorder(open_output(a.write), a.write, self._report)
        elif a.write:
            size = None if a.file_size is None else max(1, int(a.file_size * MEGABYTE))
            rotation = Rotation(size=size, seconds=a.rotate_seconds, keep=a.file_count)
            linktypes = {i.linktype for i in src.stats().interfaces.values() if i.linktype}
            self.recorder = Recorder(
                a.write, pcapng=wants_pcapng(a.write, a.pcap), rotation=rotation,
                linktype=linktypes.pop() if len(linktypes) == 1 else None,
                capture_filter=(getattr(src, "filter", None) or None) if src.live else None,
                wait_when_full=not src.live, on_error=self._report)
            self.recorder.open()
        if a.record_failed:
            fr = FailedRecorder(a.record_failed, tracker, on_error=self._report)
            try:
                fr.prepare()
            except RecordError as e:
                self._report(f"{e}; failed tunnels will not be recorded")
            else:
                self.failed = fr

    def drop_privileges(self, src: Source, *, ui: bool = False) -> None:
        """tcpdump's ``-Z``: become the target user before the first packet is decoded.

        Live capture as root drops by default (to ``$SUDO_USER``, else
        nobody); reading files as root drops only when ``-Z`` is given.
        Import whatever will be needed later *before* calling this: the
        target user may not be able to read the Python installation. The UI
        keeps importing as it runs, so with ``ui`` an unreadable installation
        is refused up front. Raises :class:`pptptop.privdrop.PrivDropError`.
        """
        a = self.args
        root = os.geteuid() == 0
        if a.no_drop_privileges:
            if root:
                self.privileges = privdrop.limit_capabilities(privdrop.ROOT_KEEP)
            return
        if not root:
            if a.drop_user is not None:
                raise privdrop.PrivDropError("-Z USER needs pptptop to be started as root")
            if src.live and privdrop.get_capabilities()[0]:
                self.privileges = privdrop.limit_capabilities(())  # e.g. CAP_NET_RAW via setcap: done with it
            return
        if a.drop_user is None and not src.live:
            return
        user = a.drop_user or privdrop.default_user()
        pw = privdrop.resolve_user(user)
        if ui:
            paths = sysconfig.get_paths()
            bad = privdrop.unreadable_for(pw.pw_name, {paths["stdlib"], paths["purelib"], paths["platlib"],
                                                       os.path.dirname(os.path.dirname(__file__))})
            if bad:
                raise privdrop.PrivDropError(
                    f"cannot run the UI as {pw.pw_name}: it cannot read {bad[0]} (the Python installation); "
                    "install pptptop where that user can read it, name another user with -Z USER, "
                    "or use --no-drop-privileges")
        fds = [] if self.recorder is None else self.recorder.fds()
        if self.export_fd is not None:
            fds.append(self.export_fd)
        if self.decrypted is not None:
            fds.extend(self.decrypted.fds())
        if self.failed is not None:
            self.failed.chown(pw.pw_uid, pw.pw_gid)
        self.privileges = privdrop.drop_privileges(pw.pw_name, chown=fds)
        r = self.recorder
        if r is not None and r.rotation.active and not directory_writable(r.directory):
            self._report(f"{r.directory} is not writable by {pw.pw_name}: rotated files cannot be created "
                         "(make it writable by that user, or use -Z/--no-drop-privileges)")
        if self.failed is not None and not directory_writable(self.failed.directory):
            self._report(f"{self.failed.directory} is not writable by {pw.pw_name}: failed tunnels cannot "
                         "be recorded (make it writable by that user, or use -Z/--no-drop-privileges)")

    # ------------------------------------------------------------------ running
    def start(self, pipeline: Pipeline) -> None:
        """Hook the recorder into the pipeline and start its flusher thread."""
        if self.recorder is not None:
            if pipeline.batched:  # the capture keeps its vectorised data path; the recorder gets whole batches
                pipeline.batch_hooks.append(self.recorder.batch)
            else:
                pipeline.frame_hooks.append(self.recorder)
            self.recorder.attach(pipeline.tracker)
            self.recorder.start()
        if self.failed is not None:
            self.failed.attach()

    def flush(self) -> None:
        if self.recorder is not None:
            self.recorder.flush()

    def close(self) -> None:
        """Write everything pending and close the files; idempotent, safe from a signal handler."""
        if self.recorder is not None:
            self.recorder.close()
        if self.failed is not None:
            self.failed.close()
        if isinstance(self.decrypted, DecryptedRecorder):
            self.decrypted.close()

    def export(self, match: Callable[[Tunnel], bool] | None = None) -> int:
        """Headless ``--export-tunnel``: write the selected tunnels; returns the packets written.

        Raises ``ValueError`` (nothing selected) or :class:`RecordError`.
        """
        assert self.tracker is not None and self.export_fd is not None
        fd, self.export_fd = self.export_fd, None
        try:
            tunnels = select_tunnels(self.tracker, self.args.export_tunnel, match)
        except ValueError:
            export_tunnels([], fd, tracker=self.tracker)  # leave a valid, empty capture behind
            raise
        if isinstance(self.decrypted, DecryptedSpool):  # --decrypted: their inner packets, not the captured ones
            return self.decrypted.export(tunnels, fd, self.args.write, self._report)
        return export_tunnels(tunnels, fd, pcapng=wants_pcapng(self.args.write, self.args.pcap),
                              tracker=self.tracker)

    # ------------------------------------------------------------------ state
    def status(self) -> RecordingStatus:
        """For the UI header (cheap: call it once a second)."""
        return RecordingStatus(
            recording=None if self.recorder is None else self.recorder.state(),
            failed=None if self.failed is None else self.failed.state(),
            interfaces=tuple(interface_counters(self.source)) if self.source is not None else (),
            privileges=self.privileges)

    def summary(self) -> dict[str, Any]:
        """The ``--json`` keys this session adds: ``recording``, ``record_failed``, ``privileges``."""
        out: dict[str, Any] = {}
        if self.recorder is not None:
            out["recording"] = self.recorder.state().as_dict()
        if self.failed is not None:
            out["record_failed"] = self.failed.state().as_dict()
        if self.privileges is not None:
            out["privileges"] = self.privileges.as_dict()
        if isinstance(self.decrypted, DecryptedRecorder):
            out["decrypted_recording"] = self.decrypted.as_dict()
        return out

    def interfaces_dict(self) -> dict[str, dict[str, Any]]:
        """Per-interface counters for the live ``capture-end`` line."""
        return counters_dict(interface_counters(self.source)) if self.source is not None else {}
