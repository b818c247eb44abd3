"""pcap and pcapng writers, one whole record per write.

pcapng (draft-ietf-opsawg-pcapng): a Section Header Block, one Interface
Description Block per interface (with ``if_name``, so both legs of a NAT stay
apart), then Enhanced Packet Blocks (with an optional ``opt_comment``, used
for diagnoses). Classic pcap: microsecond resolution, one link type per file.

Each record is assembled in memory and handed to the file in one ``write``
call, so a reader sees it whole or not at all after a crash.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

PCAP_MAGIC = 0xA1B2C3D4
BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
IF_NAME = 2
IF_TSRESOL = 9
SHB_USERAPPL = 4
DEFAULT_SNAPLEN = 262144


def _option(code: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _options(opts: list[tuple[int, bytes]]) -> bytes:
    if not opts:
        return b""
    return b"".join(_option(c, v) for c, v in opts) + struct.pack("<HH", OPT_ENDOFOPT, 0)


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


class PcapNgWriter:
    """Writes pcapng to a binary file object; interfaces are added as they appear."""

    def __init__(self, f: BinaryIO, application: str = "pptptop") -> None:
        self.f = f
        self._ifaces: dict[tuple[str, int], int] = {}
        self.records = 0
        self.bytes_written = 0
        shb = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options(
            [(SHB_USERAPPL, application.encode())])
        self._write(_block(BT_SHB, shb))

    def _write(self, data: bytes) -> None:
        self.f.write(data)
        self.bytes_written += len(data)

    def interface(self, name: str, linktype: int, snaplen: int = DEFAULT_SNAPLEN) -> int:
        """The interface ID for (name, linktype), writing its IDB the first time."""
        key = (name, linktype)
        idx = self._ifaces.get(key)
        if idx is None:
            idx = len(self._ifaces)
            opts = [(IF_TSRESOL, b"\x06")]  # microseconds
            if name:
                opts.insert(0, (IF_NAME, name.encode("utf-8", "replace")))
            self._write(_block(BT_IDB, struct.pack("<HHI", linktype, 0, snaplen) + _options(opts)))
            self._ifaces[key] = idx
        return idx

    def write(self, ts: float, iface: str, linktype: int, data: bytes, orig_len: int | None = None,
              comment: str | None = None) -> int:
        """Write one packet; returns the bytes written."""
        idx = self.interface(iface, linktype)
        us = round(ts * 1_000_000)
        pad = (-len(data)) % 4
        body = struct.pack("<IIIII", idx, us >> 32, us & 0xFFFFFFFF, len(data),
                           orig_len if orig_len is not None else len(data)) + data + b"\0" * pad
        if comment:
            body += _options([(OPT_COMMENT, comment.encode("utf-8", "replace"))])
        block = _block(BT_EPB, body)
        self._write(block)
        self.records += 1
        return len(block)


class PcapWriter:
    """Writes classic pcap (microseconds). The link type is fixed by the first packet."""

    def __init__(self, f: BinaryIO, linktype: int | None = None, snaplen: int = DEFAULT_SNAPLEN) -> None:
        self.f = f
        self.linktype = linktype
        self.snaplen = snaplen
        self.records = 0
        self.bytes_written = 0
        self.skipped_linktype = 0  # packets of another link type, which classic pcap cannot hold
        if linktype is not None:
            self._header(linktype)

    def _header(self, linktype: int) -> None:
        self.linktype = linktype
        hdr = struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, self.snaplen, linktype)
        self.f.write(hdr)
        self.bytes_written += len(hdr)

    def write(self, ts: float, iface: str, linktype: int, data: bytes, orig_len: int | None = None,
              comment: str | None = None) -> int:
        if self.linktype is None:
            self._header(linktype)
        elif linktype != self.linktype:
            self.skipped_linktype += 1
            return 0
        us = round(ts * 1_000_000)
        rec = struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(data),
                          orig_len if orig_len is not None else len(data)) + data
        self.f.write(rec)
        self.bytes_written += len(rec)
        self.records += 1
        return len(rec)
