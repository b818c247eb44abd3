"""PPTP control messages (RFC 2637 §2), all fifteen.

Each message is a frozen dataclass whose annotated fields *are* its wire
layout, in the style of scapy's ``fields_desc``: ``call_id: U16`` says both
"this attribute is an int" and "two octets, big-endian, here".  The layout
table used to decode (one precompiled ``struct.Struct`` per message) and the
field list for the drill-down view (:func:`control_fields`) are both derived
from those annotations at import time, so they cannot disagree.

Field names are the RFC's, in snake_case.  Strings (host name, vendor,
phone numbers, subaddress, call statistics) are decoded latin-1 and cut at
the first NUL.  Codes are kept as ints (unknown values stay representable);
they compare equal to the IntEnum members below, and the ``*_name``
functions give Wireshark's strings from packet-pptp.c so our output and
tshark's can be compared.
"""

from __future__ import annotations

import dataclasses
import struct
import typing
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Annotated, Any, ClassVar, NamedTuple

from pptptop.decode.errors import DecodeError

MAGIC_COOKIE = 0x1A2B3C4D
HEADER_LENGTH = 12
PPTP_TCP_PORT = 1723

_PEEK = struct.Struct("!HHIH")  # length, pptp_type, magic, message_type
PEEK_LENGTH = _PEEK.size


class ControlMessageType(IntEnum):
    """Control Message Type (RFC 2637 §2)."""

    START_CONTROL_CONNECTION_REQUEST = 1
    START_CONTROL_CONNECTION_REPLY = 2
    STOP_CONTROL_CONNECTION_REQUEST = 3
    STOP_CONTROL_CONNECTION_REPLY = 4
    ECHO_REQUEST = 5
    ECHO_REPLY = 6
    OUTGOING_CALL_REQUEST = 7
    OUTGOING_CALL_REPLY = 8
    INCOMING_CALL_REQUEST = 9
    INCOMING_CALL_REPLY = 10
    INCOMING_CALL_CONNECTED = 11
    CALL_CLEAR_REQUEST = 12
    CALL_DISCONNECT_NOTIFY = 13
    WAN_ERROR_NOTIFY = 14
    SET_LINK_INFO = 15


class PptpMessageType(IntEnum):
    """PPTP Message Type (RFC 2637 §1.4)."""

    CONTROL_MESSAGE = 1
    MANAGEMENT_MESSAGE = 2


class StartResult(IntEnum):
    """Start-Control-Connection-Reply Result Code (RFC 2637 §2.2)."""

    SUCCESSFUL_CHANNEL_ESTABLISHMENT = 1
    GENERAL_ERROR = 2
    COMMAND_CHANNEL_ALREADY_EXISTS = 3
    REQUESTER_NOT_AUTHORIZED = 4
    PROTOCOL_VERSION_NOT_SUPPORTED = 5


class StopReason(IntEnum):
    """Stop-Control-Connection-Request Reason (RFC 2637 §2.3)."""

    NONE = 1
    STOP_PROTOCOL = 2
    STOP_LOCAL_SHUTDOWN = 3


class StopResult(IntEnum):
    """Stop-Control-Connection-Reply Result Code (RFC 2637 §2.4); Echo-Reply (§2.6) uses the same values."""

    OK = 1
    GENERAL_ERROR = 2


EchoResult = StopResult


class OutgoingResult(IntEnum):
    """Outgoing-Call-Reply Result Code (RFC 2637 §2.8)."""

    CONNECTED = 1
    GENERAL_ERROR = 2
    NO_CARRIER = 3
    BUSY = 4
    NO_DIAL_TONE = 5
    TIME_OUT = 6
    DO_NOT_ACCEPT = 7


class IncomingResult(IntEnum):
    """Incoming-Call-Reply Result Code (RFC 2637 §2.10)."""

    CONNECT = 1
    GENERAL_ERROR = 2
    DO_NOT_ACCEPT = 3


class DisconnectResult(IntEnum):
    """Call-Disconnect-Notify Result Code (RFC 2637 §2.13)."""

    LOST_CARRIER = 1
    GENERAL_ERROR = 2
    ADMIN_SHUTDOWN = 3
    REQUEST = 4


class GeneralError(IntEnum):
    """General Error Codes (RFC 2637 §2.16)."""

    NONE = 0
    NOT_CONNECTED = 1
    BAD_FORMAT = 2
    BAD_VALUE = 3
    NO_RESOURCE = 4
    BAD_CALL_ID = 5
    PAC_ERROR = 6


class FramingCapability(IntFlag):
    """Framing Capabilities / Framing Type bits (RFC 2637 §2.1, §2.7)."""

    ASYNCHRONOUS = 1
    SYNCHRONOUS = 2


class BearerCapability(IntFlag):
    """Bearer Capabilities / Bearer Type bits (RFC 2637 §2.1, §2.7)."""

    ANALOG = 1
    DIGITAL = 2


# --- wire field kinds ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Wire:
    """How one field sits on the wire: a struct code and its size in octets."""

    code: str
    size: int
    text: bool = False


U8 = Annotated[int, _Wire("B", 1)]
U16 = Annotated[int, _Wire("H", 2)]
U32 = Annotated[int, _Wire("I", 4)]
Text64 = Annotated[str, _Wire("64s", 64, text=True)]
Text128 = Annotated[str, _Wire("128s", 128, text=True)]


# --- messages --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlHeader:
    """The 12-octet header every control message starts with (RFC 2637 §2)."""

    MESSAGE_TYPE: ClassVar[int] = 0
    length: U16
    pptp_type: U16
    magic_cookie: U32
    message_type: U16
    reserved0: U16


@dataclass(frozen=True, slots=True)
class StartControlConnectionRequest(ControlHeader):
    """SCCRQ (RFC 2637 §2.1)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.START_CONTROL_CONNECTION_REQUEST
    protocol_version: U16
    reserved1: U16
    framing_capabilities: U32
    bearer_capabilities: U32
    maximum_channels: U16
    firmware_revision: U16
    host_name: Text64
    vendor_string: Text64


@dataclass(frozen=True, slots=True)
class StartControlConnectionReply(ControlHeader):
    """SCCRP (RFC 2637 §2.2)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.START_CONTROL_CONNECTION_REPLY
    protocol_version: U16
    result_code: U8
    error_code: U8
    framing_capabilities: U32
    bearer_capabilities: U32
    maximum_channels: U16
    firmware_revision: U16
    host_name: Text64
    vendor_string: Text64


@dataclass(frozen=True, slots=True)
class StopControlConnectionRequest(ControlHeader):
    """StopCCRQ (RFC 2637 §2.3)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.STOP_CONTROL_CONNECTION_REQUEST
    reason: U8
    reserved1: U8
    reserved2: U16


@dataclass(frozen=True, slots=True)
class StopControlConnectionReply(ControlHeader):
    """StopCCRP (RFC 2637 §2.4)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.STOP_CONTROL_CONNECTION_REPLY
    result_code: U8
    error_code: U8
    reserved1: U16


@dataclass(frozen=True, slots=True)
class EchoRequest(ControlHeader):
    """Echo-Request (RFC 2637 §2.5)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.ECHO_REQUEST
    identifier: U32


@dataclass(frozen=True, slots=True)
class EchoReply(ControlHeader):
    """Echo-Reply (RFC 2637 §2.6)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.ECHO_REPLY
    identifier: U32
    result_code: U8
    error_code: U8
    reserved1: U16


@dataclass(frozen=True, slots=True)
class OutgoingCallRequest(ControlHeader):
    """OCRQ (RFC 2637 §2.7)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.OUTGOING_CALL_REQUEST
    call_id: U16
    call_serial_number: U16
    minimum_bps: U32
    maximum_bps: U32
    bearer_type: U32
    framing_type: U32
    packet_recv_window_size: U16
    packet_processing_delay: U16
    phone_number_length: U16
    reserved1: U16
    phone_number: Text64
    subaddress: Text64


@dataclass(frozen=True, slots=True)
class OutgoingCallReply(ControlHeader):
    """OCRP (RFC 2637 §2.8)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.OUTGOING_CALL_REPLY
    call_id: U16
    peer_call_id: U16
    result_code: U8
    error_code: U8
    cause_code: U16
    connect_speed: U32
    packet_recv_window_size: U16
    packet_processing_delay: U16
    physical_channel_id: U32


@dataclass(frozen=True, slots=True)
class IncomingCallRequest(ControlHeader):
    """ICRQ (RFC 2637 §2.9); ``bearer_type`` is the RFC's "Call Bearer Type"."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.INCOMING_CALL_REQUEST
    call_id: U16
    call_serial_number: U16
    bearer_type: U32
    physical_channel_id: U32
    dialed_number_length: U16
    dialing_number_length: U16
    dialed_number: Text64
    dialing_number: Text64
    subaddress: Text64


@dataclass(frozen=True, slots=True)
class IncomingCallReply(ControlHeader):
    """ICRP (RFC 2637 §2.10); the RFC calls the delay "Packet Transmit Delay" here."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.INCOMING_CALL_REPLY
    call_id: U16
    peer_call_id: U16
    result_code: U8
    error_code: U8
    packet_recv_window_size: U16
    packet_transmit_delay: U16
    reserved1: U16


@dataclass(frozen=True, slots=True)
class IncomingCallConnected(ControlHeader):
    """ICCN (RFC 2637 §2.11)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.INCOMING_CALL_CONNECTED
    peer_call_id: U16
    reserved1: U16
    connect_speed: U32
    packet_recv_window_size: U16
    packet_transmit_delay: U16
    framing_type: U32


@dataclass(frozen=True, slots=True)
class CallClearRequest(ControlHeader):
    """CCRQ (RFC 2637 §2.12)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.CALL_CLEAR_REQUEST
    call_id: U16
    reserved1: U16


@dataclass(frozen=True, slots=True)
class CallDisconnectNotify(ControlHeader):
    """CDN (RFC 2637 §2.13)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.CALL_DISCONNECT_NOTIFY
    call_id: U16
    result_code: U8
    error_code: U8
    cause_code: U16
    reserved1: U16
    call_statistics: Text128


@dataclass(frozen=True, slots=True)
class WanErrorNotify(ControlHeader):
    """WEN (RFC 2637 §2.14)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.WAN_ERROR_NOTIFY
    peer_call_id: U16
    reserved1: U16
    crc_errors: U32
    framing_errors: U32
    hardware_overruns: U32
    buffer_overruns: U32
    timeout_errors: U32
    alignment_errors: U32


@dataclass(frozen=True, slots=True)
class SetLinkInfo(ControlHeader):
    """SLI (RFC 2637 §2.15)."""

    MESSAGE_TYPE: ClassVar[ControlMessageType] = ControlMessageType.SET_LINK_INFO
    peer_call_id: U16
    reserved1: U16
    send_accm: U32
    receive_accm: U32


ControlMessage = (
    StartControlConnectionRequest
    | StartControlConnectionReply
    | StopControlConnectionRequest
    | StopControlConnectionReply
    | EchoRequest
    | EchoReply
    | OutgoingCallRequest
    | OutgoingCallReply
    | IncomingCallRequest
    | IncomingCallReply
    | IncomingCallConnected
    | CallClearRequest
    | CallDisconnectNotify
    | WanErrorNotify
    | SetLinkInfo
)

MESSAGE_CLASSES: tuple[type[ControlHeader], ...] = (
    StartControlConnectionRequest,
    StartControlConnectionReply,
    StopControlConnectionRequest,
    StopControlConnectionReply,
    EchoRequest,
    EchoReply,
    OutgoingCallRequest,
    OutgoingCallReply,
    IncomingCallRequest,
    IncomingCallReply,
    IncomingCallConnected,
    CallClearRequest,
    CallDisconnectNotify,
    WanErrorNotify,
    SetLinkInfo,
)


# --- layouts derived from the annotations ---------------------------------


class ControlField(NamedTuple):
    """One field of a control message: name, offset and size in octets."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class _Layout:
    cls: type[ControlHeader]
    fields: tuple[ControlField, ...]
    text: tuple[int, ...]  # positions (in unpack order) of text fields
    struct: struct.Struct

    @property
    def length(self) -> int:
        return self.struct.size


def _layout(cls: type[ControlHeader]) -> _Layout:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields: list[ControlField] = []
    text: list[int] = []
    fmt = "!"
    offset = 0
    for i, f in enumerate(dataclasses.fields(cls)):
        wire = next(m for m in typing.get_args(hints[f.name])[1:] if isinstance(m, _Wire))
        fields.append(ControlField(f.name, offset, wire.size))
        if wire.text:
            text.append(i)
        fmt += wire.code
        offset += wire.size
    return _Layout(cls, tuple(fields), tuple(text), struct.Struct(fmt))


_HEADER_LAYOUT = _layout(ControlHeader)
_LAYOUTS: dict[int, _Layout] = {int(c.MESSAGE_TYPE): _layout(c) for c in MESSAGE_CLASSES}

#: Fixed length of each message in octets (RFC 2637 §2), from the layouts.
MESSAGE_LENGTHS: dict[ControlMessageType, int] = {
    ControlMessageType(t): layout.length for t, layout in _LAYOUTS.items()
}


def control_fields(msg_type: int) -> list[ControlField]:
    """The wire layout of a message type for the drill-down: (name, offset, size), header included.

    An unknown type gives just the header's fields.
    """
    layout = _LAYOUTS.get(msg_type, _HEADER_LAYOUT)
    return list(layout.fields)


# --- decoding --------------------------------------------------------------


class ControlDecodeError(DecodeError):
    """A control message that could not be decoded; ``header`` is set when the 12-octet header could."""

    def __init__(
        self, code: str, detail: str, offset: int | None = None, header: ControlHeader | None = None
    ) -> None:
        super().__init__(code, detail, offset)
        self.header = header


def _text(raw: bytes) -> str:
    nul = raw.find(b"\x00")
    return (raw if nul < 0 else raw[:nul]).decode("latin-1")


def peek_header(buf: bytes | bytearray | memoryview, off: int = 0) -> tuple[int, int, int] | None:
    """``(length, magic_cookie, message_type)`` of the header at ``buf[off:]``, None if under 10 octets."""
    if off < 0 or len(buf) - off < PEEK_LENGTH:
        return None
    length, _pptp_type, magic, msg_type = _PEEK.unpack_from(buf, off)
    return length, magic, msg_type


def decode_header(msg: bytes) -> ControlHeader:
    """The 12-octet common header alone; ``pptp_truncated`` if shorter."""
    if len(msg) < HEADER_LENGTH:
        raise ControlDecodeError("pptp_truncated", f"{len(msg)} octets, the control header needs 12", 0)
    return ControlHeader(*_HEADER_LAYOUT.struct.unpack_from(msg, 0))


def decode_control(msg: bytes) -> ControlMessage:
    """Decode one whole control message (framed by its Length field).

    Raises :class:`ControlDecodeError` (a ``DecodeError``): ``pptp_truncated``
    when the bytes or the Length field are shorter than the message's fixed
    length; ``pptp_bad_magic`` when the Magic Cookie is not 0x1A2B3C4D;
    ``pptp_unknown_type`` for a Control Message Type outside 1-15.  The last
    two carry the decoded ``header``.
    """
    header = decode_header(msg)
    if header.magic_cookie != MAGIC_COOKIE:
        raise ControlDecodeError(
            "pptp_bad_magic", f"magic cookie 0x{header.magic_cookie:08x}, expected 0x1a2b3c4d", 4, header
        )
    layout = _LAYOUTS.get(header.message_type)
    if layout is None:
        raise ControlDecodeError(
            "pptp_unknown_type", f"control message type {header.message_type} is not defined", 8, header
        )
    need = layout.length
    if len(msg) < need or header.length < need:
        raise ControlDecodeError(
            "pptp_truncated",
            f"{message_name(header.message_type)} needs {need} octets;"
            f" Length field says {header.length}, {len(msg)} present",
            0,
            header,
        )
    values: list[Any] = list(layout.struct.unpack_from(msg, 0))
    for i in layout.text:
        raw = values[i]
        assert isinstance(raw, bytes)
        values[i] = _text(raw)
    return typing.cast(ControlMessage, layout.cls(*values))


# --- Wireshark's value strings (epan/dissectors/packet-pptp.c) -------------

_MESSAGE_NAMES: dict[int, str] = {
    1: "Start-Control-Connection-Request",
    2: "Start-Control-Connection-Reply",
    3: "Stop-Control-Connection-Request",
    4: "Stop-Control-Connection-Reply",
    5: "Echo-Request",
    6: "Echo-Reply",
    7: "Outgoing-Call-Request",
    8: "Outgoing-Call-Reply",
    9: "Incoming-Call-Request",
    10: "Incoming-Call-Reply",
    11: "Incoming-Call-Connected",
    12: "Call-Clear-Request",
    13: "Call-Disconnect-Notify",
    14: "WAN-Error-Notify",
    15: "Set-Link-Info",
}
_PPTP_TYPE_NAMES = {1: "Control Message", 2: "Management Message"}
_FRAMING_NAMES = {
    1: "Asynchronous Framing supported",
    2: "Synchronous Framing supported",
    3: "Either Framing supported",
}
_BEARER_NAMES = {1: "Analog access supported", 2: "Digital access supported", 3: "Either access supported"}
_START_RESULT_NAMES = {
    1: "Successful channel establishment",
    2: "General error",
    3: "Command channel already exists",
    4: "Requester not authorized",
    5: "Protocol version not supported",
}
_ERROR_NAMES = {
    0: "None",
    1: "Not-Connected",
    2: "Bad-Format",
    3: "Bad-Value",
    4: "No-Resource",
    5: "Bad-Call ID",
    6: "PAC-Error",
}
_REASON_NAMES = {1: "None", 2: "Stop-Protocol", 3: "Stop-Local-Shutdown"}
_STOP_RESULT_NAMES = {1: "OK", 2: "General error"}
_OUT_RESULT_NAMES = {
    1: "Connected",
    2: "General Error",
    3: "No Carrier",
    4: "Busy",
    5: "No Dial Tone",
    6: "Time-out",
    7: "Do Not Accept",
}
_IN_RESULT_NAMES = {1: "Connect", 2: "General error", 3: "Do Not Accept"}
_DISC_RESULT_NAMES = {1: "Lost Carrier", 2: "General Error", 3: "Admin Shutdown", 4: "Request"}
_RESULT_TABLES: dict[int, dict[int, str]] = {
    ControlMessageType.START_CONTROL_CONNECTION_REPLY: _START_RESULT_NAMES,
    ControlMessageType.STOP_CONTROL_CONNECTION_REPLY: _STOP_RESULT_NAMES,
    ControlMessageType.ECHO_REPLY: _STOP_RESULT_NAMES,
    ControlMessageType.OUTGOING_CALL_REPLY: _OUT_RESULT_NAMES,
    ControlMessageType.INCOMING_CALL_REPLY: _IN_RESULT_NAMES,
    ControlMessageType.CALL_DISCONNECT_NOTIFY: _DISC_RESULT_NAMES,
}


def _unknown(code: int) -> str:
    """Wireshark's text for a value missing from its table, as its tree shows it."""
    return f"Unknown ({code})"


def message_name(msg_type: int) -> str:
    """tshark's name of a Control Message Type ("Start-Control-Connection-Request").

    An unknown type reads as tshark's Info column does: "Unknown control type (16)".
    """
    return _MESSAGE_NAMES.get(msg_type, f"Unknown control type ({msg_type})")


def pptp_type_name(pptp_type: int) -> str:
    """tshark's name of the PPTP Message Type ("Control Message")."""
    return _PPTP_TYPE_NAMES.get(pptp_type, _unknown(pptp_type))


def result_name(msg_type: int, code: int) -> str:
    """tshark's name of a Result Code, which depends on the message carrying it."""
    table = _RESULT_TABLES.get(msg_type)
    if table is None:
        return _unknown(code)
    return table.get(code, _unknown(code))


def error_name(code: int) -> str:
    """tshark's name of a General Error Code ("Bad-Call ID")."""
    return _ERROR_NAMES.get(code, _unknown(code))


def reason_name(code: int) -> str:
    """tshark's name of a Stop-Control-Connection-Request Reason."""
    return _REASON_NAMES.get(code, _unknown(code))


def framing_name(value: int) -> str:
    """tshark's name of Framing Capabilities / Framing Type."""
    return _FRAMING_NAMES.get(value, _unknown(value))


def bearer_name(value: int) -> str:
    """tshark's name of Bearer Capabilities / Bearer Type."""
    return _BEARER_NAMES.get(value, _unknown(value))
