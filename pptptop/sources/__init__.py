"""Capture sources: pcap/pcapng files and stdin, live AF_PACKET rings.

Everything yields :class:`Frame` ``(ts, iface, linktype, data)``; see
:mod:`pptptop.sources.base` for the contract.
"""

from __future__ import annotations

from pptptop.sources.base import CaptureFileError, Frame, InterfaceStats, Source, SourceStats
from pptptop.sources.bpf import DEFAULT_FILTER, FilterError
from pptptop.sources.live import LiveCaptureError, LiveSource, open_live
from pptptop.sources.pcapfile import MergedSource, PcapFileSource, open_file, open_files
from pptptop.sources.spill import SPILL_LIMIT

__all__ = [
    "DEFAULT_FILTER",
    "SPILL_LIMIT",
    "CaptureFileError",
    "FilterError",
    "Frame",
    "InterfaceStats",
    "LiveCaptureError",
    "LiveSource",
    "MergedSource",
    "PcapFileSource",
    "Source",
    "SourceStats",
    "open_file",
    "open_files",
    "open_live",
]
