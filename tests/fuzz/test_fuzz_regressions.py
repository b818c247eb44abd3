"""What the fuzz harness found, each crashing input kept as a literal (docs/fuzzing.md lists them)."""

from __future__ import annotations

from pptptop.decode.auth import decode_chap, parse_mschap_failure
from pptptop.decode.ppp import decode_ppp
from pptptop.decode.pppd import format_pppd, format_pppd_packet
from pptptop.sources.base import Frame
from pptptop.sources.batch import batch_from_frames
from pptptop.track.tracker import Tracker

CBCP = 0xC029


def test_mschap_failure_error_of_thousands_of_digits_is_not_the_grammar() -> None:
    """int() refuses strings of more than 4300 digits (CVE-2020-10735): the parser raised ValueError."""
    text = "E=" + "9" * 5000 + " R=1 M=x"
    assert parse_mschap_failure(text) is None
    info = b"\x04\x07" + (4 + len(text)).to_bytes(2, "big") + text.encode()
    chap = decode_chap(info)
    assert chap.failure is None and chap.message == text
    frame = decode_ppp(b"\xc2\x23" + info)
    assert frame.error is None and frame.message == chap


def test_mschap_failure_version_in_superscript_digits_is_no_version() -> None:
    """'²'.isdigit() is True but int('²') raises ValueError: a Failure with V=² crashed decode_chap."""
    info = b"\x04\x01\x00\x17E=691 R=0 V=\xc2\xb2 M=no"
    chap = decode_chap(info)
    assert chap.failure is not None
    assert (chap.failure.error, chap.failure.version, chap.failure.message) == (691, None, "no")
    assert parse_mschap_failure("E=691 V=\u00b3") is not None


def test_mschap_failure_error_in_other_scripts_digits_is_not_a_windows_error() -> None:
    """``\\d`` matched any Unicode digit ('٦٩١' is 691 in Arabic-Indic): only ASCII digits are an error code."""
    assert parse_mschap_failure("E=\u0666\u0669\u0661 R=0") is None
    failure = parse_mschap_failure("E=691 R=1 V=3 M=x")
    assert failure is not None and (failure.error, failure.retry, failure.version) == (691, True, 3)


def test_cbcp_number_control_characters_are_escaped() -> None:
    """pppd prints the CBCP number with %s; ours went to the log line raw, ESC and all."""
    info = b"\x01\x01\x00\x1a\x01\x02\x02\x05\x0c\x01\x00\x03\x03\x00\x0b\x0c\x0c\x015551234\x00"
    text = format_pppd_packet(CBCP, info)
    assert text == ("[CBCP Request id=0x1 < NoCallback> < UserDefined delay = 12 number = >"
                    " < option=0x0 delay = 3> < option=0x0 delay = 12 number = \\001555123> 01]3535353132333400")
    escape = b"\x02\x01\x00\x0e\x02\x0a\x0f\x01\x1b[2J\x9b\x00"
    shown = format_pppd(decode_ppp(b"\xc0\x29" + escape))
    assert shown == "[CBCP Response id=0x1 < UserDefined delay = 15 number = \\033[2J\\233>]1b5b324a9b00"


# MPPE data from the server for call ID 0x28b2 before any control message (a GRE-only tunnel once its
# sequence numbers continue), an Outgoing-Call-Request from the client for that same call ID, and the server's
# data again (pptpsniffer capture, frames reordered by the fuzzer).
_GRE_DATA = bytes.fromhex(
    "7aa253ec3ca6ba34a6299850080045000059a65c40003f2f60e2c63364020a0000023081880b003528b20000000c0000000b"
    "fd90001ddf73e0b0f704e51714cdd8d67f507375971277c65d852ec990c8c70b4c226832250ea58ad57704f5f3cd4de7674d"
    "3a55b3")
_OCRQ = bytes.fromhex(
    "ba34a62998507aa253ec3ca60800450000dc7a3b400040068ba90a000002c6336402857406bb66316d60850131ab801801f5"
    "66c300000101080ab7e94c3bbaade38000a800011a2b3c4d0007000028b200000000096000989680000000030000000300"
    "03" + "00" * 134)


def _gre(seq: int) -> bytes:
    return _GRE_DATA[:42] + seq.to_bytes(4, "big") + _GRE_DATA[46:]


_T0 = 1795419378.2
_REBOUND = [Frame(_T0, "", 1, _gre(12)), Frame(_T0 + 0.1, "", 1, _gre(13)), Frame(_T0 + 0.2, "", 1, _OCRQ),
            Frame(_T0 + 0.3, "", 1, _gre(14))]


def _tunnels(tracker: Tracker) -> list[tuple[int, str, list[int]]]:
    return [(t.id, t.phase.value, [d.packets for d in t.traffic]) for t in tracker.tunnels.values()]


def test_batch_sees_a_gre_key_rebound_by_a_call_inside_the_batch() -> None:
    """The batch path looked GRE keys up once per batch: the data after a call that took the key over
    still went to the GRE-only tunnel, and the call's tunnel ended failed in the call phase."""
    one_by_one = Tracker()
    for i, f in enumerate(_REBOUND):
        one_by_one.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    batched = Tracker()
    for i, f in enumerate(_REBOUND[:2]):
        batched.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    batched.feed_batch(batch_from_frames(_REBOUND[2:]), 3)
    assert _tunnels(one_by_one) == [(1, "data", [2, 0]), (2, "data", [0, 1])]  # the call got the server's data
    assert _tunnels(batched) == _tunnels(one_by_one)


def test_gre_of_a_known_tunnel_with_ip_total_length_zero_is_read_to_the_end_of_the_frame() -> None:
    """IPv4 total length 0 (a TSO capture on the sender): decode_ip, the batch path and a key no tunnel owns
    read to the end of the frame, but Tracker.feed cut a known tunnel's packet at octet 14, an ack-only
    packet; fed in one batch, the LCP inside it (or here MPPE data) was read (found by the feed_batch target)."""
    tso = _gre(14)[:16] + b"\x00\x00" + _gre(14)[18:]
    frames = [*_REBOUND[:2], Frame(_T0 + 0.2, "", 1, tso)]
    one_by_one = Tracker()
    for i, f in enumerate(frames):
        one_by_one.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    ds = one_by_one.tunnels[1].traffic[0]
    assert (ds.packets, ds.data_packets, ds.ack_only) == (3, 3, 0)
    batched = Tracker()
    batched.feed_batch(batch_from_frames(frames), 1)
    assert _tunnels(batched) == _tunnels(one_by_one)
