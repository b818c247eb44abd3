"""PPTP control messages (RFC 2637 §2): real captures against tshark, crafted bytes, fuzzing."""

from __future__ import annotations

import dataclasses
import json
import re
import struct
import subprocess
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pptp_capture import TSHARK, captures, control_messages, tshark_rows

from pptptop.decode.errors import DecodeError
from pptptop.decode.pptp import (
    MAGIC_COOKIE,
    MESSAGE_CLASSES,
    MESSAGE_LENGTHS,
    BearerCapability,
    CallClearRequest,
    CallDisconnectNotify,
    ControlDecodeError,
    ControlHeader,
    ControlMessageType,
    DisconnectResult,
    EchoReply,
    EchoRequest,
    EchoResult,
    FramingCapability,
    GeneralError,
    IncomingCallConnected,
    IncomingCallReply,
    IncomingCallRequest,
    IncomingResult,
    OutgoingCallReply,
    OutgoingCallRequest,
    OutgoingResult,
    PptpMessageType,
    SetLinkInfo,
    StartControlConnectionReply,
    StartControlConnectionRequest,
    StartResult,
    StopControlConnectionReply,
    StopControlConnectionRequest,
    StopReason,
    StopResult,
    WanErrorNotify,
    bearer_name,
    control_fields,
    decode_control,
    decode_header,
    error_name,
    framing_name,
    message_name,
    peek_header,
    pptp_type_name,
    reason_name,
    result_name,
)

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

# RFC 2637 §2 fixed lengths, written out independently of the layout tables.
RFC_LENGTHS = {
    1: 156, 2: 156, 3: 16, 4: 16, 5: 16, 6: 20, 7: 168, 8: 32,
    9: 220, 10: 24, 11: 28, 12: 16, 13: 148, 14: 40, 15: 24,
}  # fmt: skip


def header(
    msg_type: int, length: int, *, magic: int = MAGIC_COOKIE, pptp_type: int = 1, reserved0: int = 0
) -> bytes:
    return struct.pack("!HHIHH", length, pptp_type, magic, msg_type, reserved0)


def pad(text: bytes, size: int) -> bytes:
    return text + b"\x00" * (size - len(text))


def build(msg_type: int, body: bytes) -> bytes:
    return header(msg_type, 12 + len(body)) + body


# --- crafted messages, one per type ------------------------------------------

SCCRQ = build(
    1, struct.pack("!HHIIHH", 0x0100, 0, 1, 1, 0, 2160) + pad(b"", 64) + pad(b"Microsoft Windows NT", 64)
)
SCCRP = build(
    2, struct.pack("!HBBIIHH", 0x0100, 1, 0, 3, 2, 4, 0x0102) + pad(b"pac-host", 64) + pad(b"linux", 64)
)
STOPCCRQ = build(3, struct.pack("!BBH", 2, 0, 0))
STOPCCRP = build(4, struct.pack("!BBH", 2, 6, 0))
ECHORQ = build(5, struct.pack("!I", 0xDEADBEEF))
ECHORP = build(6, struct.pack("!IBBH", 0xDEADBEEF, 1, 0, 0))
OCRQ = build(
    7,
    struct.pack("!HHIIIIHHHH", 49245, 7, 300, 100_000_000, 3, 3, 64, 0, 7, 0)
    + pad(b"5551234", 64)
    + pad(b"ext9", 64),
)
OCRP = build(8, struct.pack("!HHBBHIHHI", 128, 49245, 1, 0, 0, 100_000_000, 16384, 0, 42))
ICRQ = build(
    9,
    struct.pack("!HHIIHH", 77, 8, 2, 0x01020304, 4, 7)
    + pad(b"1234", 64)
    + pad(b"5556789", 64)
    + pad(b"sub", 64),
)
ICRP = build(10, struct.pack("!HHBBHHH", 78, 77, 3, 4, 16384, 12, 0))
ICCN = build(11, struct.pack("!HHIHHI", 77, 0, 64000, 32, 5, 1))
CCRQ = build(12, struct.pack("!HH", 49245, 0))
CDN = build(13, struct.pack("!HBBHH", 128, 3, 0, 0x1234, 0) + pad(b"rx=1024 tx=2048 crc=0 dur=93s", 128))
WEN = build(14, struct.pack("!HHIIIIII", 49245, 0, 1, 2, 3, 4, 5, 6))
SLI = build(15, struct.pack("!HHII", 128, 0, 0x00000000, 0xFFFFFFFF))


class TestCraftedMessages:
    def test_sccrq(self) -> None:
        m = decode_control(SCCRQ)
        assert isinstance(m, StartControlConnectionRequest)
        assert (m.length, m.pptp_type, m.magic_cookie, m.message_type, m.reserved0) == (
            156,
            1,
            MAGIC_COOKIE,
            1,
            0,
        )
        assert m.protocol_version == 0x0100
        assert m.reserved1 == 0
        assert m.framing_capabilities == FramingCapability.ASYNCHRONOUS
        assert m.bearer_capabilities == BearerCapability.ANALOG
        assert (m.maximum_channels, m.firmware_revision) == (0, 2160)
        assert m.host_name == ""
        assert m.vendor_string == "Microsoft Windows NT"

    def test_sccrp(self) -> None:
        m = decode_control(SCCRP)
        assert isinstance(m, StartControlConnectionReply)
        assert m.result_code == StartResult.SUCCESSFUL_CHANNEL_ESTABLISHMENT
        assert m.error_code == GeneralError.NONE
        assert m.framing_capabilities == FramingCapability.ASYNCHRONOUS | FramingCapability.SYNCHRONOUS
        assert m.bearer_capabilities == BearerCapability.DIGITAL
        assert (m.maximum_channels, m.firmware_revision) == (4, 0x0102)
        assert (m.host_name, m.vendor_string) == ("pac-host", "linux")

    def test_stop_request_and_reply(self) -> None:
        rq = decode_control(STOPCCRQ)
        assert isinstance(rq, StopControlConnectionRequest)
        assert (rq.reason, rq.reserved1, rq.reserved2) == (StopReason.STOP_PROTOCOL, 0, 0)
        rp = decode_control(STOPCCRP)
        assert isinstance(rp, StopControlConnectionReply)
        assert (rp.result_code, rp.error_code, rp.reserved1) == (
            StopResult.GENERAL_ERROR,
            GeneralError.PAC_ERROR,
            0,
        )

    def test_echo(self) -> None:
        rq = decode_control(ECHORQ)
        assert isinstance(rq, EchoRequest)
        assert rq.identifier == 0xDEADBEEF
        rp = decode_control(ECHORP)
        assert isinstance(rp, EchoReply)
        assert (rp.identifier, rp.result_code, rp.error_code, rp.reserved1) == (
            0xDEADBEEF,
            EchoResult.OK,
            0,
            0,
        )

    def test_outgoing_call_request(self) -> None:
        m = decode_control(OCRQ)
        assert isinstance(m, OutgoingCallRequest)
        assert (m.call_id, m.call_serial_number, m.minimum_bps, m.maximum_bps) == (49245, 7, 300, 100_000_000)
        assert (m.bearer_type, m.framing_type) == (3, 3)
        assert (m.packet_recv_window_size, m.packet_processing_delay, m.phone_number_length) == (64, 0, 7)
        assert (m.reserved1, m.phone_number, m.subaddress) == (0, "5551234", "ext9")

    def test_outgoing_call_reply(self) -> None:
        m = decode_control(OCRP)
        assert isinstance(m, OutgoingCallReply)
        assert (m.call_id, m.peer_call_id, m.result_code, m.error_code, m.cause_code) == (128, 49245, 1, 0, 0)
        assert m.result_code == OutgoingResult.CONNECTED
        assert (m.connect_speed, m.packet_recv_window_size, m.packet_processing_delay) == (
            100_000_000,
            16384,
            0,
        )
        assert m.physical_channel_id == 42

    def test_incoming_call_request(self) -> None:
        m = decode_control(ICRQ)
        assert isinstance(m, IncomingCallRequest)
        assert (m.call_id, m.call_serial_number, m.bearer_type, m.physical_channel_id) == (
            77,
            8,
            2,
            0x01020304,
        )
        assert (m.dialed_number_length, m.dialing_number_length) == (4, 7)
        assert (m.dialed_number, m.dialing_number, m.subaddress) == ("1234", "5556789", "sub")

    def test_incoming_call_reply(self) -> None:
        m = decode_control(ICRP)
        assert isinstance(m, IncomingCallReply)
        assert (m.call_id, m.peer_call_id) == (78, 77)
        assert m.result_code == IncomingResult.DO_NOT_ACCEPT
        assert m.error_code == GeneralError.NO_RESOURCE
        assert (m.packet_recv_window_size, m.packet_transmit_delay, m.reserved1) == (16384, 12, 0)

    def test_incoming_call_connected(self) -> None:
        m = decode_control(ICCN)
        assert isinstance(m, IncomingCallConnected)
        assert (m.peer_call_id, m.reserved1, m.connect_speed) == (77, 0, 64000)
        assert (m.packet_recv_window_size, m.packet_transmit_delay, m.framing_type) == (32, 5, 1)

    def test_call_clear_request(self) -> None:
        m = decode_control(CCRQ)
        assert isinstance(m, CallClearRequest)
        assert (m.call_id, m.reserved1) == (49245, 0)

    def test_call_disconnect_notify_with_statistics(self) -> None:
        m = decode_control(CDN)
        assert isinstance(m, CallDisconnectNotify)
        assert (m.call_id, m.result_code, m.error_code, m.cause_code) == (
            128,
            DisconnectResult.ADMIN_SHUTDOWN,
            0,
            0x1234,
        )
        assert m.call_statistics == "rx=1024 tx=2048 crc=0 dur=93s"

    def test_cdn_statistics_fill_all_128_octets(self) -> None:
        stats = bytes(range(0x41, 0x41 + 26)) * 5
        m = decode_control(build(13, struct.pack("!HBBHH", 1, 1, 0, 0, 0) + stats[:128]))
        assert isinstance(m, CallDisconnectNotify)
        assert m.call_statistics == stats[:128].decode("latin-1")

    def test_wan_error_notify(self) -> None:
        m = decode_control(WEN)
        assert isinstance(m, WanErrorNotify)
        assert m.peer_call_id == 49245
        counters = (m.crc_errors, m.framing_errors, m.hardware_overruns)
        assert (*counters, m.buffer_overruns, m.timeout_errors, m.alignment_errors) == (1, 2, 3, 4, 5, 6)

    def test_set_link_info(self) -> None:
        m = decode_control(SLI)
        assert isinstance(m, SetLinkInfo)
        assert (m.peer_call_id, m.reserved1, m.send_accm, m.receive_accm) == (128, 0, 0, 0xFFFFFFFF)

    def test_every_type_has_its_class(self) -> None:
        crafted = [
            SCCRQ,
            SCCRP,
            STOPCCRQ,
            STOPCCRP,
            ECHORQ,
            ECHORP,
            OCRQ,
            OCRP,
            ICRQ,
            ICRP,
            ICCN,
            CCRQ,
            CDN,
            WEN,
            SLI,
        ]
        for t, raw in enumerate(crafted, start=1):
            m = decode_control(raw)
            assert m.message_type == t
            assert t == type(m).MESSAGE_TYPE
            assert len(raw) == RFC_LENGTHS[t]

    def test_trailing_octets_beyond_fixed_length_are_ignored(self) -> None:
        raw = header(12, 20) + struct.pack("!HH", 5, 0) + b"\xff" * 4
        m = decode_control(raw)
        assert isinstance(m, CallClearRequest)
        assert (m.length, m.call_id) == (20, 5)

    def test_messages_are_frozen_and_slotted(self) -> None:
        m = decode_control(CCRQ)
        assert isinstance(m, CallClearRequest)
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.call_id = 1  # type: ignore[misc]
        assert not hasattr(m, "__dict__")


class TestStrings:
    def test_cut_at_first_nul_even_with_garbage_after(self) -> None:
        body = (
            struct.pack("!HHIIHH", 0x0100, 0, 1, 1, 0, 0)
            + pad(b"host\x00junk", 64)
            + pad(b"vend\x00\xff", 64)
        )
        m = decode_control(build(1, body))
        assert isinstance(m, StartControlConnectionRequest)
        assert (m.host_name, m.vendor_string) == ("host", "vend")

    def test_latin1_high_bytes_and_no_nul(self) -> None:
        name = bytes(range(0xC0, 0x100))  # 64 octets, none of them NUL
        body = struct.pack("!HHIIHH", 0x0100, 0, 1, 1, 0, 0) + name + pad(b"\x1b[31mred", 64)
        m = decode_control(build(1, body))
        assert isinstance(m, StartControlConnectionRequest)
        assert m.host_name == name.decode("latin-1")
        assert len(m.host_name) == 64
        assert m.vendor_string == "\x1b[31mred"  # escaping is the UI's job


class TestErrors:
    def test_bad_magic_gives_header(self) -> None:
        raw = header(1, 156, magic=0x1A2B3C4E) + SCCRQ[12:]
        with pytest.raises(ControlDecodeError) as ei:
            decode_control(raw)
        assert ei.value.code == "pptp_bad_magic"
        assert ei.value.offset == 4
        assert ei.value.header is not None
        assert ei.value.header.magic_cookie == 0x1A2B3C4E
        assert ei.value.header.message_type == 1
        assert isinstance(ei.value, DecodeError)

    @pytest.mark.parametrize("msg_type", [0, 16, 0xFFFF])
    def test_unknown_type_gives_header(self, msg_type: int) -> None:
        raw = header(msg_type, 16) + b"\x00" * 4
        with pytest.raises(ControlDecodeError) as ei:
            decode_control(raw)
        assert ei.value.code == "pptp_unknown_type"
        assert ei.value.header == ControlHeader(16, 1, MAGIC_COOKIE, msg_type, 0)

    @pytest.mark.parametrize("msg_type", range(1, 16))
    def test_bytes_shorter_than_fixed_length(self, msg_type: int) -> None:
        n = RFC_LENGTHS[msg_type]
        raw = header(msg_type, n) + b"\x00" * (n - 13)
        with pytest.raises(DecodeError) as ei:
            decode_control(raw)
        assert ei.value.code == "pptp_truncated"

    @pytest.mark.parametrize("msg_type", range(1, 16))
    def test_length_field_shorter_than_fixed_length(self, msg_type: int) -> None:
        n = RFC_LENGTHS[msg_type]
        raw = header(msg_type, n - 1) + b"\x00" * (n - 12)
        with pytest.raises(DecodeError) as ei:
            decode_control(raw)
        assert ei.value.code == "pptp_truncated"

    @pytest.mark.parametrize("n", range(12))
    def test_shorter_than_header(self, n: int) -> None:
        with pytest.raises(DecodeError) as ei:
            decode_control(SCCRQ[:n])
        assert ei.value.code == "pptp_truncated"

    def test_management_message_type_is_kept(self) -> None:
        raw = struct.pack("!HHIHH", 16, 2, MAGIC_COOKIE, 5, 0) + struct.pack("!I", 9)
        m = decode_control(raw)
        assert m.pptp_type == PptpMessageType.MANAGEMENT_MESSAGE
        assert pptp_type_name(m.pptp_type) == "Management Message"


class TestLayout:
    def test_lengths_match_rfc(self) -> None:
        assert {int(k): v for k, v in MESSAGE_LENGTHS.items()} == RFC_LENGTHS

    @pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda c: c.__name__)
    def test_fields_are_contiguous_and_named_like_the_dataclass(self, cls: type[ControlHeader]) -> None:
        rows = control_fields(cls.MESSAGE_TYPE)
        assert [r.name for r in rows] == [f.name for f in dataclasses.fields(cls)]
        offset = 0
        for r in rows:
            assert r.offset == offset
            offset += r.size
        assert offset == RFC_LENGTHS[cls.MESSAGE_TYPE]

    def test_unknown_type_lists_the_header(self) -> None:
        assert [r.name for r in control_fields(99)] == [
            "length",
            "pptp_type",
            "magic_cookie",
            "message_type",
            "reserved0",
        ]

    def test_peek_header(self) -> None:
        buf = b"xx" + SCCRQ
        assert peek_header(buf, 2) == (156, MAGIC_COOKIE, 1)
        assert peek_header(buf, len(buf) - 9) is None
        assert peek_header(b"", 0) is None
        assert decode_header(SCCRQ) == ControlHeader(156, 1, MAGIC_COOKIE, 1, 0)


class TestNames:
    def test_enum_values_follow_rfc(self) -> None:
        assert int(ControlMessageType.SET_LINK_INFO) == 15
        assert int(StartResult.PROTOCOL_VERSION_NOT_SUPPORTED) == 5
        assert int(OutgoingResult.DO_NOT_ACCEPT) == 7
        assert int(DisconnectResult.REQUEST) == 4
        assert int(GeneralError.PAC_ERROR) == 6
        assert EchoResult is StopResult

    def test_wireshark_strings(self) -> None:
        assert message_name(1) == "Start-Control-Connection-Request"
        assert message_name(14) == "WAN-Error-Notify"
        assert message_name(42) == "Unknown control type (42)"
        assert result_name(8, 7) == "Do Not Accept"
        assert result_name(10, 1) == "Connect"
        assert result_name(13, 3) == "Admin Shutdown"
        assert result_name(2, 4) == "Requester not authorized"
        assert result_name(6, 2) == "General error"
        assert result_name(8, 9) == "Unknown (9)"
        assert result_name(1, 1) == "Unknown (1)"
        assert error_name(7) == "Unknown (7)"
        assert error_name(5) == "Bad-Call ID"
        assert reason_name(3) == "Stop-Local-Shutdown"
        assert framing_name(3) == "Either Framing supported"
        assert bearer_name(2) == "Digital access supported"


# --- tshark ------------------------------------------------------------------

# tshark field -> our attribute; result codes have one tshark field per message family.
_TSHARK_TO_ATTR = {
    "pptp.length": "length",
    "pptp.type": "pptp_type",
    "pptp.magic_cookie": "magic_cookie",
    "pptp.control_message_type": "message_type",
    "pptp.protocol_version": "protocol_version",
    "pptp.framing_capabilities": "framing_capabilities",
    "pptp.bearer_capabilities": "bearer_capabilities",
    "pptp.maximum_channels": "maximum_channels",
    "pptp.firmware_revision": "firmware_revision",
    "pptp.host_name": "host_name",
    "pptp.vendor_name": "vendor_string",
    "pptp.control_result": "result_code",
    "pptp.stop_result": "result_code",
    "pptp.echo_result": "result_code",
    "pptp.out_result": "result_code",
    "pptp.in_result": "result_code",
    "pptp.disc_result": "result_code",
    "pptp.error": "error_code",
    "pptp.reason": "reason",
    "pptp.identifier": "identifier",
    "pptp.call_id": "call_id",
    "pptp.call_serial_number": "call_serial_number",
    "pptp.minimum_bps": "minimum_bps",
    "pptp.maximum_bps": "maximum_bps",
    "pptp.bearer_type": "bearer_type",
    "pptp.framing_type": "framing_type",
    "pptp.packet_receive_window_size": "packet_recv_window_size",
    "pptp.phone_number_length": "phone_number_length",
    "pptp.phone_number": "phone_number",
    "pptp.subaddress": "subaddress",
    "pptp.peer_call_id": "peer_call_id",
    "pptp.cause": "cause_code",
    "pptp.connect_speed": "connect_speed",
    "pptp.physical_channel_id": "physical_channel_id",
    "pptp.dialed_number_length": "dialed_number_length",
    "pptp.dialed_number": "dialed_number",
    "pptp.dialing_number_length": "dialing_number_length",
    "pptp.dialing_number": "dialing_number",
    "pptp.call_Statistics": "call_statistics",
    "pptp.crc_errors": "crc_errors",
    "pptp.framing_errors": "framing_errors",
    "pptp.hardware_overruns": "hardware_overruns",
    "pptp.buffer_overruns": "buffer_overruns",
    "pptp.timeout_errors": "timeout_errors",
    "pptp.alignment_errors": "alignment_errors",
    "pptp.send_accm": "send_accm",
    "pptp.receive_accm": "receive_accm",
}
# tshark 4.0 shows only the first 64 of the 128 Call Statistics octets (packet-pptp.c says 64).
_TSHARK_STATS_LEN = 64


def _tshark_layers(path: Path, pcap_filter: str = "pptp") -> list[tuple[int, dict[str, Any]]]:
    assert TSHARK is not None
    cmd = [
        TSHARK,
        "-n",
        "-r",
        str(path),
        "-Y",
        pcap_filter,
        "-T",
        "json",
        "--no-duplicate-keys",
        "-J",
        "frame pptp",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    out: list[tuple[int, dict[str, Any]]] = []
    for pkt in json.loads(res.stdout):
        layers = pkt["_source"]["layers"]
        frame = int(layers["frame"]["frame.number"])
        pptp = layers["pptp"]
        for layer in pptp if isinstance(pptp, list) else [pptp]:
            out.append((frame, layer))
    return out


def _reserved_hex(msg: ControlHeader) -> list[str]:
    rows = {r.name: r for r in control_fields(msg.message_type)}
    hexes = []
    for name, row in rows.items():
        if name.startswith("reserved"):
            value: int = getattr(msg, name)
            hexes.append(":".join(f"{b:02x}" for b in value.to_bytes(row.size, "big")))
    return hexes


def _delay_attr(msg: ControlHeader) -> str:
    return "packet_transmit_delay" if hasattr(msg, "packet_transmit_delay") else "packet_processing_delay"


PPTP_CAPTURES = [p for p in captures() if control_messages(p)[0]]


def test_captures_with_control_messages_were_found() -> None:
    names = {p.name for p in PPTP_CAPTURES}
    assert {"pptpsniffer__connect.pcapng", "ndpi__pptp.pcap", "s10-server-ctrl-sigterm-both.pcapng"} <= names


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("path", PPTP_CAPTURES, ids=lambda p: str(p.relative_to(p.parent.parent)))
def test_every_field_matches_tshark(path: Path) -> None:
    items, _ = control_messages(path)
    ours = [(i.frame, decode_control(i.item)) for i in items if isinstance(i.item, bytes)]
    theirs = _tshark_layers(path)
    assert [f for f, _ in ours] == [f for f, _ in theirs]
    compared = 0
    for (frame, msg), (_, layer) in zip(ours, theirs, strict=True):
        for key, value in layer.items():
            if key == "pptp.reserved":
                expected = value if isinstance(value, list) else [value]
                assert _reserved_hex(msg) == expected, frame
                continue
            attr = _delay_attr(msg) if key == "pptp.packet_processing_delay" else _TSHARK_TO_ATTR[key]
            got = getattr(msg, attr)
            if isinstance(got, str):
                if attr == "call_statistics":
                    got = got[:_TSHARK_STATS_LEN]
                assert got == value, (frame, key)
            else:
                assert got == int(value, 0), (frame, key)
            compared += 1
    assert compared > len(ours) * 5


@pytest.mark.tshark
@needs_tshark
def test_teardown_messages_match_tshark_in_s10() -> None:
    path = next(p for p in PPTP_CAPTURES if p.name == "s10-server-ctrl-sigterm-inside.pcap")
    items, _ = control_messages(path)
    msgs = [decode_control(i.item) for i in items if isinstance(i.item, bytes)]
    teardown = (
        "pptp.control_message_type == 3 || pptp.control_message_type == 4 || pptp.control_message_type == 13"
    )
    rows = tshark_rows(path, teardown, ["pptp.control_message_type", "pptp.reason"])
    kinds = [type(m) for m in msgs if m.message_type in (3, 4, 13)]
    assert kinds == [CallDisconnectNotify, StopControlConnectionRequest, StopControlConnectionReply]
    assert [int(r[1]) for r in rows] == [13, 3, 4]
    stop = next(m for m in msgs if isinstance(m, StopControlConnectionRequest))
    assert stop.reason == int(rows[1][2])


# Every crafted message in one capture, for tshark to name; shownames look like "Reason: Stop-Protocol (2)".
def _pcap(payloads: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    seq = 1
    for i, payload in enumerate(payloads):
        tcp = struct.pack("!HHIIBBHHH", 40000, 1723, seq, 0, 0x50, 0x18, 8192, 0, 0)
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), i, 0, 64, 6, 0, b"\x0a\0\0\1", b"\x0a\0\0\2"
        )
        frame = b"\x02\0\0\0\0\1\x02\0\0\0\0\2\x08\x00" + ip + tcp + payload
        out += struct.pack("<IIII", i, 0, len(frame), len(frame)) + frame
        seq += len(payload)
    return out


def _shown(text: str, code: int) -> str:
    """tshark's tree label: "Connected (1)", or "Unknown (9)" as the name already carries the code."""
    return text if text.startswith("Unknown (") else f"{text} ({code})"


def _expected_label(msg: ControlHeader, field: str) -> str | None:
    values: dict[str, int] = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
    mt = msg.message_type
    if field == "pptp.control_message_type":
        return _shown(message_name(mt), mt)
    if field == "pptp.type":
        return _shown(pptp_type_name(msg.pptp_type), msg.pptp_type)
    if field.endswith("_result"):
        return _shown(result_name(mt, values["result_code"]), values["result_code"])
    if field == "pptp.error":
        return _shown(error_name(values["error_code"]), values["error_code"])
    if field == "pptp.reason":
        return _shown(reason_name(values["reason"]), values["reason"])
    if field in ("pptp.framing_capabilities", "pptp.framing_type"):
        value = values[_TSHARK_TO_ATTR[field]]
        return _shown(framing_name(value), value)
    if field in ("pptp.bearer_capabilities", "pptp.bearer_type"):
        value = values[_TSHARK_TO_ATTR[field]]
        return _shown(bearer_name(value), value)
    return None


_SHOWNAME = re.compile(r'name="(pptp\.[a-z_]+)" showname="([^"]*)" size="(\d+)" pos="(\d+)"')


@pytest.mark.tshark
@needs_tshark
def test_names_and_layout_match_tshark(tmp_path: Path) -> None:
    # Unusual codes on purpose: every result/error/reason value, known and unknown.
    payloads = [
        SCCRQ,
        SCCRP,
        STOPCCRQ,
        STOPCCRP,
        ECHORQ,
        ECHORP,
        OCRQ,
        OCRP,
        ICRQ,
        ICRP,
        ICCN,
        CCRQ,
        CDN,
        WEN,
        SLI,
    ]
    for code in range(0, 9):
        payloads.append(
            build(2, struct.pack("!HBBIIHH", 0x100, code, code, code % 4, code % 4, 0, 0) + bytes(128))
        )
        payloads.append(build(3, struct.pack("!BBH", code, 0, 0)))
        payloads.append(build(6, struct.pack("!IBBH", 1, code, code, 0)))
        payloads.append(build(8, struct.pack("!HHBBHIHHI", 1, 2, code, code, 0, 0, 0, 0, 0)))
        payloads.append(build(10, struct.pack("!HHBBHHH", 1, 2, code, code, 0, 0, 0)))
        payloads.append(build(13, struct.pack("!HBBHH", 1, code, code, 0, 0) + bytes(128)))
        payloads.append(build(4, struct.pack("!BBH", code, code, 0)))
    payloads.append(build(16, b"\0" * 4))
    path = tmp_path / "crafted.pcap"
    path.write_bytes(_pcap(payloads))
    assert TSHARK is not None
    pdml = subprocess.run(
        [TSHARK, "-n", "-r", str(path), "-T", "pdml"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    packets = pdml.split("<packet>")[1:]
    assert len(packets) == len(payloads)
    checked = 0
    for raw, pkt in zip(payloads, packets, strict=True):
        hdr = decode_header(raw)
        fields = _SHOWNAME.findall(pkt)
        if hdr.message_type == 16:
            assert ("pptp.control_message_type", "Control Message Type: Unknown (16)") in {
                f[:2] for f in fields
            }
            last = len(payloads)
            assert tshark_rows(path, f"frame.number == {last}", ["_ws.col.Info"]) == [
                [str(last), message_name(16)]
            ]
            continue
        msg = decode_control(raw)
        rows = control_fields(msg.message_type)
        layout = {(r.offset, r.size) for r in rows}
        for name, showname, size, pos in fields:
            text = unescape(showname)
            offset = int(pos) - 54
            if name == "pptp.call_Statistics":
                assert offset == 20 and int(size) == _TSHARK_STATS_LEN  # tshark's known short field
            else:
                assert (offset, int(size)) in layout, (name, offset, size)
            label = text.split(": ", 1)[1] if ": " in text else ""
            expected = _expected_label(msg, name)
            if expected is None:
                continue
            assert label == expected, text
            checked += 1
    assert checked > 100


# --- fuzzing -----------------------------------------------------------------

ALL_CRAFTED = [
    SCCRQ,
    SCCRP,
    STOPCCRQ,
    STOPCCRP,
    ECHORQ,
    ECHORP,
    OCRQ,
    OCRP,
    ICRQ,
    ICRP,
    ICCN,
    CCRQ,
    CDN,
    WEN,
    SLI,
]


def _decode_or_error(raw: bytes) -> None:
    try:
        m = decode_control(raw)
    except DecodeError as exc:
        assert exc.code in {"pptp_truncated", "pptp_bad_magic", "pptp_unknown_type"}
        return
    assert m.magic_cookie == MAGIC_COOKIE
    assert len(raw) >= RFC_LENGTHS[m.message_type]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(raw: bytes) -> None:
    _decode_or_error(raw)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ALL_CRAFTED), st.data())
def test_truncated_and_bit_flipped_messages_raise_only_decode_error(raw: bytes, data: st.DataObject) -> None:
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(0, 8))):
        bit = data.draw(st.integers(0, len(buf) * 8 - 1))
        buf[bit // 8] ^= 1 << (bit % 8)
    cut = data.draw(st.integers(0, len(buf)))
    _decode_or_error(bytes(buf[:cut]))
    _decode_or_error(bytes(buf))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 15), st.binary(min_size=0, max_size=250))
def test_valid_header_with_random_body(msg_type: int, body: bytes) -> None:
    raw = header(msg_type, 12 + len(body)) + body
    _decode_or_error(raw)
    if len(raw) >= RFC_LENGTHS[msg_type]:
        assert decode_control(raw).message_type == msg_type
