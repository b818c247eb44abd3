"""--export-hashes: MS-CHAP exchanges as NetNTLMv1 lines, checked against RFC 2759's vectors and cracked by hashcat."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from diag_support import CHAP, Wire, cp

from pptptop import sources
from pptptop.cli import main
from pptptop.diagnose.hashes import ChapExchange, HashCollector, challenge_hash, netntlm_line
from pptptop.pipeline import Pipeline
from pptptop.track.tracker import Tracker

#: RFC 2759 §9.2 test vector
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
#: hashcat's documented example for -m 5500 (example_hashes wiki): user::domain:lm:nt:challenge
HASHCAT_5500_EXAMPLE = ("u4-netntlm::kNS:338d08f8e26de93300000000000000000000000000000000:"
                        "9526fb8c23a90751cdd619b6cea564742e1e4bf33006ba41:cb8086049ec4736c")
LINE = re.compile(r"^[^:\s]+::::[0-9a-f]{48}:[0-9a-f]{16}$")


def test_challenge_hash_rfc2759_vector() -> None:
    assert challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, b"User") == bytes.fromhex("D02E4386BCE91226")
    # RFC 2759 §8.2: only the user name, without a prepended domain
    assert challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, b"CORP\\User") == bytes.fromhex("D02E4386BCE91226")


def test_line_has_the_fields_hashcat_and_john_expect() -> None:
    ex = ChapExchange(1, "MS-CHAPv2", "User", b"User", AUTH_CHALLENGE, PEER_CHALLENGE, NT_RESPONSE, 1, 2)
    line = netntlm_line(ex)
    assert line == "User::::82309ecd8d708b5ea08faa3981cd83544233114a3d85d6df:d02e4386bce91226"
    ours, theirs = line.split(":"), HASHCAT_5500_EXAMPLE.split(":")
    assert len(ours) == len(theirs) == 6  # user : unused : domain : LM : NT : challenge
    assert [len(x) for x in ours[4:]] == [len(x) for x in theirs[4:]] == [48, 16]
    assert ours[1] == theirs[1] == ""


def test_hostile_user_names_cannot_break_the_line() -> None:
    ex = ChapExchange(1, "MS-CHAPv2", "a:b\nc", b"a:b\nc", AUTH_CHALLENGE, PEER_CHALLENGE, NT_RESPONSE, 1, 2)
    line = netntlm_line(ex)
    assert "\n" not in line and line.count(":") == 5 and line.startswith("a_b_c::::")


def _exchanges(w: Wire) -> list[ChapExchange]:
    """The exchanges --export-hashes collects from the tracker's events for these frames."""
    tracker = Tracker()
    collector = HashCollector().attach(tracker)
    for n, (ts, iface, linktype, data) in enumerate(w.frames, 1):
        tracker.feed(n, ts, iface, linktype, data)
    tracker.finish()
    return collector.exchanges


def test_mschapv1_uses_the_8_octet_challenge_directly() -> None:
    w = Wire().setup().lcp_up(auth=b"\xc2\x23\x80")
    w.ppp("server", CHAP, cp(1, 7, b"\x08" + bytes(range(8)) + b"srv"))
    w.ppp("client", CHAP, cp(2, 7, b"\x31" + bytes(24) + bytes(range(24)) + b"\x01" + b"dave"))
    (ex,) = _exchanges(w)
    assert ex.method == "MS-CHAP" and ex.challenge == bytes(range(8))
    assert netntlm_line(ex) == f"dave::::{bytes(range(24)).hex()}:0001020304050607"


def test_retry_uses_the_challenge_from_the_failure() -> None:
    """RFC 2759 §6: a Failure's C= is the challenge of the retry."""
    w = Wire().setup().lcp_up().mschapv2(success=False)
    value = bytes(range(100, 116)) + bytes(8) + bytes(range(24)) + b"\x00"
    w.ppp("client", CHAP, cp(2, 8, b"\x31" + value + b"alice"))
    w.ppp("server", CHAP, cp(3, 8, b"S=" + b"A" * 40 + b" M=ok"))
    first, retry = _exchanges(w)
    assert first.result == "failure" and retry.result == "success"
    assert retry.authenticator_challenge == bytes.fromhex("00112233445566778899aabbccddeeff")
    assert first.authenticator_challenge == bytes(range(16))


@pytest.mark.tshark
def test_exchanges_match_tshark(data_dir: Path) -> None:
    """Challenge and NT-Response come out as tshark dissects them."""
    path = data_dir / "s5-two-clients-same-nat-outside.pcap"
    tracker = Tracker()
    live = HashCollector().attach(tracker)
    Pipeline(sources.open_file(str(path)), tracker).run()
    ours = live.exchanges
    assert sorted(map(netntlm_line, ours)) == sorted(live.lines()) and len(ours) == 2
    rows = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "chap.code == 1 || chap.code == 2", "-T",
                           "fields", "-e", "chap.code", "-e", "chap.value", "-e", "chap.name"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    fields = [r.split("\t") for r in rows]
    challenges = {bytes.fromhex(v.replace(":", "")) for c, v, _ in fields if c == "1"}
    responses = {(n, bytes.fromhex(v.replace(":", ""))[24:48]) for c, v, n in fields if c == "2"}
    assert {ex.authenticator_challenge for ex in ours} == challenges
    assert {(ex.user, ex.nt_response) for ex in ours} == responses
    assert all(ex.result == "success" for ex in ours)


def _export(path: Path, out: Path) -> list[str]:
    assert main(["-r", str(path), "--export-hashes", str(out)]) == 0
    assert out.stat().st_mode & 0o077 == 0  # credentials: owner only
    lines = out.read_text().splitlines()
    assert lines and all(LINE.match(x) for x in lines), lines
    return lines


@pytest.mark.skipif(shutil.which("hashcat") is None,
                    reason="hashcat is not installed (apt-get install hashcat pocl-opencl-icd)")
def test_hashcat_cracks_the_exported_exchanges(data_dir: Path, tmp_path: Path) -> None:
    """An independent implementation as the oracle: hashcat -m 5500 on CPU, a small word list."""
    lines: dict[str, list[str]] = {}
    for name in ("s1-mschapv2-mppe128-outside.pcap", "s5-two-clients-same-nat-outside.pcap",
                 "pptpsniffer__connect.pcapng", "s2-mschapv2-wrong-password-outside.pcap"):
        lines[name] = _export(data_dir / name, tmp_path / f"{name}.hashes")
    hashes = tmp_path / "all.hashes"
    hashes.write_text("".join(x + "\n" for v in lines.values() for x in v))
    words = tmp_path / "words.txt"
    # the lab's passwords (alice, bob), the public capture's ("123", its author's paper), and decoys
    words.write_text("password\nwonderland-42\nletmein\nbuilder-7\n123\nsecret\n")
    cracked_file = tmp_path / "cracked.txt"
    started = time.monotonic()
    subprocess.run(["hashcat", "-m", "5500", "-a", "0", "--potfile-disable", "-O", "--force", "--quiet",
                    "--session", f"pptptop-{tmp_path.name}", "-o", str(cracked_file), "--outfile-format", "1,2",
                    str(hashes), str(words)], capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    cracked = {}
    for row in cracked_file.read_text().splitlines() if cracked_file.exists() else []:
        h, _, plain = row.rpartition(":")
        cracked[h.split(":")[0] + ":" + h.split(":")[4]] = plain
    assert cracked, f"hashcat cracked nothing in {elapsed:.0f} s"

    def plain_of(line: str) -> str | None:
        f = line.split(":")
        return cracked.get(f"{f[0]}:{f[4]}")

    assert [plain_of(x) for x in lines["s1-mschapv2-mppe128-outside.pcap"]] == ["wonderland-42"]
    assert sorted(str(plain_of(x)) for x in lines["s5-two-clients-same-nat-outside.pcap"]) == \
        ["builder-7", "wonderland-42"]
    assert [plain_of(x) for x in lines["pptpsniffer__connect.pcapng"]] == ["123"]
    # s2 is bob typing a wrong password: his real one must not match the captured attempt
    assert [plain_of(x) for x in lines["s2-mschapv2-wrong-password-outside.pcap"]] == [None]
