"""Wiring of the recording options for the CLI: ``-w``, rotation, exports, ``--record-failed``, ``-Z``.

The CLI calls, in this order (see ``docs/recording.md``)::

    session = RecordingSession(options)       # RecordingOptions, checked by the CLI
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


@dataclass(frozen=True, slots=True)
class RecordingOptions:
    """What the recording side of a run was asked for (the CLI's ``-w``, rotation, exports, ``-Z``)."""

    write: str | None = None
    pcap: bool = False
    file_size: float | None = None  # -C MB
    rotate_seconds: float | None = None  # -G
    file_count: int | None = None  # -W
    export_tunnel: str | None = None
    record_failed: str | None = None
    decrypted: bool = False
    drop_user: str | None = None  # -Z USER
    no_drop_privileges: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RecordingOptions:
        """From the CLI's parsed options (the names the parser gives them)."""
        return cls(write=args.write, pcap=args.pcap, file_size=args.file_size, rotate_seconds=args.rotate_seconds,
                   file_count=args.file_count, export_tunnel=args.export_tunnel, record_failed=args.record_failed,
                   decrypted=bool(args.decrypted), drop_user=args.drop_user,
                   no_drop_privileges=bool(args.no_drop_privileges))


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

    def __init__(self, args: RecordingOptions, *, err: IO[str] | None = None, quiet: bool = False) -> None:
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
            if a.write is None:
                raise RecordError("", "--export-tunnel needs -w FILE for the export")
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
        a = self.args
        assert self.tracker is not None and self.export_fd is not None
        assert a.export_tunnel is not None and a.write is not None  # as open() made export_fd
        fd, self.export_fd = self.export_fd, None
        try:
            tunnels = select_tunnels(self.tracker, a.export_tunnel, match)
        except ValueError:
            export_tunnels([], fd, tracker=self.tracker)  # leave a valid, empty capture behind
            raise
        if isinstance(self.decrypted, DecryptedSpool):  # --decrypted: their inner packets, not the captured ones
            return self.decrypted.export(tunnels, fd, a.write, self._report)
        return export_tunnels(tunnels, fd, pcapng=wants_pcapng(a.write, a.pcap),
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
