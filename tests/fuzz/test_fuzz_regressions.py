"""What the fuzz harness found, each crashing input kept as a literal (docs/fuzzing.md lists them)."""

from __future__ import annotations

from pptptop.decode.auth import decode_chap, parse_mschap_failure
from pptptop.decode.ppp import decode_ppp
from pptptop.decode.pppd import format_pppd, format_pppd_packet

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
