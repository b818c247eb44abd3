"""PPTP control connections (TCP 1723) as the tracker holds them.

A :class:`Connection` is one control connection with its two reassembled
byte streams and the tunnels (calls) it set up; :class:`Connections` is the
tracker's table of them: those open, those held as a bare handshake
(:mod:`pptptop.track.control`), and each tunnel's connection.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pptptop.decode.tcpstream import StreamReassembler
from pptptop.track import records as _records
from pptptop.track.model import ControlInfo, Direction, EchoStats, TcpInfo, Tunnel

#: a control connection's index key: interface, client address and port, server address and port
ConnKey = tuple[str, str, int, str, int]
#: a held segment: frame number, time, link type, frame, direction, TCP sequence and ack numbers, flags,
#: where its payload starts and ends
HeldSegment = tuple[int, float, int, bytes, Direction, int, int, int, int, int]


@dataclass(slots=True, eq=False)
class Connection:
    """One PPTP control connection (TCP 1723) on one interface."""

    iface: str
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    streams: tuple[StreamReassembler, StreamReassembler]
    tcp: TcpInfo
    echo: EchoStats
    info: ControlInfo
    tunnels: list[Tunnel] = field(default_factory=list)
    last_seen: float = 0.0
    closed: bool = False
    #: a closed connection's :data:`PACKED` once every call on it has settled (:meth:`pack`)
    records: bytes | None = None

    @property
    def key(self) -> ConnKey:
        return (self.iface, self.client_ip, self.client_port, self.server_ip, self.server_port)

    def pack(self) -> None:
        """Pack the byte streams and control info of a closed connection whose calls have all settled (issue
        23: 1.5 KB, kept as long as its tunnels are, for the segments that may still come). A late segment
        unpacks them (:class:`_PackedConnection`); one still open, or with a call not settled, is left as it
        is."""
        if self.records is not None or not self.closed or any(t.packed is None for t in self.tunnels):
            return
        _records.stow(self, PACKED, _ZDICT, _PackedConnection)


#: what a closed connection keeps packed once its calls have settled
PACKED = ("streams", "info")


class _PackedConnection(Connection):
    """A connection whose :data:`PACKED` are packed in ``records``: the first read of one unpacks them, and it is
    a :class:`Connection` again (as ``Tunnel.pack_records`` does, track/model.py)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return _records.restore(self, name, PACKED, _ZDICT, Connection)


#: zlib's preset dictionary for :meth:`Connection.pack`: a new connection's
_ZDICT = _records.dumps(((StreamReassembler(), StreamReassembler()), ControlInfo()))


@dataclass(slots=True)
class Connections:
    """The tracker's control connections."""

    open: dict[ConnKey, Connection] = field(default_factory=dict)
    #: connections seen only as a handshake so far, oldest first, with their segments (track/control.py)
    pending: OrderedDict[ConnKey, list[HeldSegment]] = field(default_factory=OrderedDict)
    of: dict[int, Connection] = field(default_factory=dict)  # tunnel id -> its control connection
