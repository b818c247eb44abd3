"""What the user sees with secrets: --json 'inner', --report, -w FILE --decrypted, --export-tunnel --decrypted;
and that no secret, hash or key is in any of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from inside_support import DATA

from pptptop.cli import EXIT_OK, main
from pptptop.decode import mschap_crypto as mc

BOTH = DATA / "s1-mschapv2-mppe128-both.pcapng"
S1_NT_RESPONSE = bytes.fromhex("936d3fa6ce4d57a8c3bd59ddcd9e54b5e08d86d213f38bac")
PASSWORD = "wonderland-42"


def secret_values() -> list[str]:
    """alice's password, NT hash, its hash, the s1 session's master key, start keys and first session keys."""
    ph = mc.nt_password_hash(PASSWORD)
    hh = mc.hash_nt_password_hash(ph)
    master = mc.get_master_key(hh, S1_NT_RESPONSE)
    values = [ph, hh, master]
    for send in (True, False):
        start = mc.get_asymmetric_start_key(master, 16, is_send=send, is_server=False)
        initial = mc.initial_session_key(start, 128)
        values += [start, initial, mc.next_session_key(start, initial, 128)]
    return [PASSWORD] + [v.hex() for v in values] + [v.hex().upper() for v in values]


def contents(path: Path) -> str:
    """A file's bytes as text both ways a secret could be in it: as octets (latin-1) and in hex."""
    raw = path.read_bytes()
    return raw.decode("latin-1") + raw.hex()


@pytest.fixture
def secrets_file(tmp_path: Path) -> str:
    path = tmp_path / "chap-secrets"
    shutil.copy(DATA / "lab-chap-secrets", path)
    path.chmod(0o600)
    return str(path)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_inner(capsys: pytest.CaptureFixture[str], secrets_file: str) -> None:
    code, out, _ = cli(capsys, "-r", str(BOTH), "--json", "--secrets", secrets_file)
    assert code == EXIT_OK
    tunnels = json.loads(out)["tunnels"]
    inners = [t["inner"] for t in tunnels] + [leg["inner"] for t in tunnels for leg in t.get("legs", [])]
    assert len(inners) == 2
    for inner in inners:
        assert inner["decryption"]["state"] == "decrypting" and inner["decryption"]["packets"] == 22
        assert inner["credentials"][0]["response"] == "match" and inner["credentials"][0]["authenticator"] == "match"
        assert {(f["src"], f["dst"], f["protocol"]) for f in inner["flows"]} >= {
            ("192.0.2.10", "192.0.2.1", "icmp"), ("192.0.2.1", "192.0.2.10", "icmp")}


def test_json_without_secrets_has_no_inner(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = cli(capsys, "-r", str(BOTH), "--json")
    assert all("inner" not in t for t in json.loads(out)["tunnels"])


def test_json_says_why_a_tunnel_is_not_decrypted(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = cli(capsys, "-r", str(DATA / "s5-two-clients-same-nat-outside.pcap"), "--json",
                    "--password", "alice:" + PASSWORD)
    by_user = {t["auth"]["user"]: t["inner"] for t in json.loads(out)["tunnels"]}
    assert by_user["alice"]["decryption"]["state"] == "decrypting"
    assert by_user["bob"]["decryption"]["state"] == "no-secret"
    assert "no secret names user 'bob'" in by_user["bob"]["decryption"]["why"]


@pytest.mark.tshark
def test_decrypted_pcapng_is_plain_ip_for_tshark(capsys: pytest.CaptureFixture[str], secrets_file: str,
                                                   tmp_path: Path) -> None:
    out_file = tmp_path / "inner.pcapng"
    code, _, _ = cli(capsys, "-r", str(BOTH), "--report", "--secrets", secrets_file, "-w", str(out_file),
                     "--decrypted")
    assert code == EXIT_OK
    assert os.stat(out_file).st_mode & 0o777 == 0o600
    fields = subprocess.run(
        ["tshark", "-n", "-r", str(out_file), "-o", "ip.check_checksum:TRUE", "-T", "fields",
         "-e", "frame.interface_name", "-e", "frame.protocols", "-e", "ip.checksum.status",
         "-e", "icmp.checksum.status", "-e", "icmpv6.checksum.status", "-e", "frame.comment"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(fields) == 44
    names = {f.split("\t")[0] for f in fields}
    assert names == {"tunnel 1 alice 198.51.100.1-198.51.100.2", "tunnel 2 alice 10.0.0.2-198.51.100.2"}
    for line in fields:
        _, protocols, ip_ok, icmp_ok, icmp6_ok, comment = line.split("\t")
        assert protocols in ("raw:ip:icmp:data", "raw:ipv6:icmpv6"), protocols
        # every checksum verified good (Wireshark's status 1), none left unverified
        assert (ip_ok, icmp_ok, icmp6_ok) == (("1", "1", "") if protocols.startswith("raw:ip:") else ("", "", "1"))
        assert comment.startswith("frame ")
    bad = '_ws.malformed || _ws.expert.severity >= "Warning"'
    malformed = subprocess.run(["tshark", "-n", "-r", str(out_file), "-Y", bad],
                               capture_output=True, text=True, check=True).stdout
    assert malformed == ""


def test_export_tunnel_decrypted(capsys: pytest.CaptureFixture[str], secrets_file: str, tmp_path: Path) -> None:
    from pptptop.sources import open_file

    out_file = tmp_path / "alice.pcapng"
    code, _, err = cli(capsys, "-r", str(BOTH), "--secrets", secrets_file, "--export-tunnel", "2", "-w",
                       str(out_file), "--decrypted")
    assert code == EXIT_OK and f"wrote 22 packets to {out_file}" in err
    frames = list(open_file(str(out_file)))
    assert len(frames) == 22 and {f.linktype for f in frames} == {101}
    assert {f.iface for f in frames} == {"tunnel 2 alice 10.0.0.2-198.51.100.2"}


def test_report_inside(capsys: pytest.CaptureFixture[str], secrets_file: str) -> None:
    _, out, _ = cli(capsys, "-r", str(DATA / "s1-mschapv2-mppe128-outside.pcap"), "--report", "--secrets",
                    secrets_file)
    assert f'  inside   user "alice" (secret from {secrets_file} line 2)' in out
    assert "MS-CHAPv2 response (frame 24): follows from the secret; server success (frame 25); S= authenticator " \
           "valid" in out
    assert "decryption decrypting MPPE-128 stateless: 22 inner packets" in out


def test_no_secret_in_any_output(capsys: pytest.CaptureFixture[str], secrets_file: str, tmp_path: Path) -> None:
    """Every output a run with secrets makes: stdout and stderr of --json, --report, live-style --json lines,
    -w (the capture and the decrypted packets), --export-tunnel (both), --export-hashes, --record-failed."""
    texts: list[str] = []
    runs = [["--json"], ["--report"], ["--report", "-w", "{out}/raw.pcapng"],
            ["--json", "-w", "{out}/inner.pcapng", "--decrypted"], ["--export-tunnel", "1", "-w", "{out}/exp.pcapng"],
            ["--export-tunnel", "1", "-w", "{out}/exp-inner.pcapng", "--decrypted"],
            ["--report", "--export-hashes", "{out}/hashes.txt"], ["--json", "--record-failed", "{out}/failed"]]
    for capture in ("s1-mschapv2-mppe128-both.pcapng", "s2-mschapv2-wrong-password-outside.pcap"):
        out_dir = tmp_path / capture
        out_dir.mkdir()
        for extra in runs:
            code, out, err = cli(capsys, "-r", str(DATA / capture), "--secrets", secrets_file,
                                 "--password", "alice:" + PASSWORD, *(a.format(out=out_dir) for a in extra))
            assert code == EXIT_OK, (extra, err)
            texts += [out, err]
    files = [f for f in tmp_path.rglob("*") if f.is_file() and f.name != "chap-secrets"]
    texts += [contents(f) for f in files]
    assert len(files) == 11 and (tmp_path / "s1-mschapv2-mppe128-both.pcapng" / "inner.pcapng").stat().st_size > 1000
    everything = "\n".join(texts)
    for value in secret_values():
        assert value not in everything, value[:6]


def test_a_write_error_is_said_once_and_counted(tmp_path: Path) -> None:
    from inside_support import Wire

    from pptptop.record.decrypted import DecryptedRecorder
    from pptptop.track.model import Endpoint, Tunnel

    r, w = os.pipe()
    os.close(r)  # nobody reads: every write fails (EPIPE)
    said: list[str] = []
    rec = DecryptedRecorder(w, "inner.pcapng", said.append)
    t = Tunnel(1, "eth0", Endpoint("10.0.0.2"), Endpoint("198.51.100.2"), 0.0, 0.0)
    for i in range(3):
        rec.write(t, i + 1, Wire().now + 2 * i, b"\x45" + bytes(19) + bytes(70000))  # larger than the buffer
    rec.close()
    assert len(said) == 1 and said[0].startswith("cannot write inner.pcapng:")
    d = rec.as_dict()
    assert d["packets"] + d["not_written"] == 3 and d["not_written"] >= 2 and d["error"]


def test_the_benchmarks_encrypted_capture_decrypts_whole(tmp_path: Path) -> None:
    """``python -m pptptop.bench --decrypt N`` times what it measures only if every packet decrypts."""
    from inside_support import run_file, secrets

    from pptptop.bench import TEMPLATE_PASSWORD, TEMPLATE_USER, generate_encrypted

    n, octets = generate_encrypted(tmp_path / "mppe.pcap", 120)
    r = run_file(tmp_path / "mppe.pcap", secrets((TEMPLATE_USER, TEMPLATE_PASSWORD)))
    inside = r.inside()
    assert (inside.decrypted, inside.decrypted_bytes, dict(inside.dropped)) == (120, octets, {})
    assert n > 120 and not inside.inner.problems(r.tracker.now)
