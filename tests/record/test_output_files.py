"""Every file pptptop writes is created as docs/recording.md says: never through a link, always mode 0600.

Captures and hash files hold user names and MS-CHAP exchanges. A symbolic
link planted at the output path (as root, pptptop would write through it to
any file on the system) is refused and its target left as it was; a file that
exists with a loose mode (0666) is replaced by a fresh 0600 one; a hard link
planted there keeps its old contents. Checked for ``-w``, ``--export-tunnel
-w``, ``--export-hashes`` and ``--record-failed``, through the command line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from rechelp import DATA

from pptptop import cli

S2 = str(DATA / "s2-mschapv2-wrong-password-inside.pcap")
#: one run per kind of output file; OUT is replaced by the path under test
OUTPUTS = {
    "record": ("-r", S2, "--json", "-w", "OUT"),
    "export-tunnel": ("-r", S2, "--export-tunnel", "1", "-w", "OUT"),
    "export-hashes": ("-r", S2, "--json", "--export-hashes", "OUT"),
}
PRECIOUS = b"precious contents that must survive\n"
#: -w keeps capturing when its file cannot be created (docs/recording.md, "Disk full, read-only"); the others stop
REFUSED_EXIT = {"record": cli.EXIT_OK, "export-tunnel": cli.EXIT_CANT_CREATE, "export-hashes": cli.EXIT_CANT_CREATE}


def run(capsys: pytest.CaptureFixture[str], kind: str, out: Path) -> tuple[int, str]:
    code = cli.main([str(out) if a == "OUT" else a for a in OUTPUTS[kind]])
    return code, capsys.readouterr().err


def mode(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


@pytest.mark.parametrize("kind", list(OUTPUTS))
def test_a_symbolic_link_at_the_path_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                kind: str) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(PRECIOUS)
    victim.chmod(0o644)
    out = tmp_path / "out"
    out.symlink_to(victim)
    code, err = run(capsys, kind, out)
    assert code == REFUSED_EXIT[kind]
    assert "symbolic link" in err
    assert out.is_symlink() and victim.read_bytes() == PRECIOUS and mode(victim) == 0o644


@pytest.mark.parametrize("kind", list(OUTPUTS))
def test_a_dangling_symbolic_link_creates_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                  kind: str) -> None:
    target = tmp_path / "created-through-the-link"
    out = tmp_path / "out"
    out.symlink_to(target)
    code, err = run(capsys, kind, out)
    assert code == REFUSED_EXIT[kind]
    assert "symbolic link" in err and not target.exists()


@pytest.mark.parametrize("kind", list(OUTPUTS))
def test_an_existing_loose_file_is_replaced_by_a_private_one(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                             kind: str) -> None:
    out = tmp_path / "out"
    out.write_bytes(PRECIOUS)
    out.chmod(0o666)
    code, err = run(capsys, kind, out)
    assert code == cli.EXIT_OK, err
    assert mode(out) == 0o600
    assert out.read_bytes() != PRECIOUS and out.stat().st_size > 0


@pytest.mark.parametrize("kind", list(OUTPUTS))
def test_a_hard_link_at_the_path_keeps_its_contents(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    kind: str) -> None:
    other = tmp_path / "other-name"
    other.write_bytes(PRECIOUS)
    other.chmod(0o644)
    out = tmp_path / "out"
    os.link(other, out)
    code, err = run(capsys, kind, out)
    assert code == cli.EXIT_OK, err
    assert other.read_bytes() == PRECIOUS and mode(other) == 0o644
    assert mode(out) == 0o600 and out.read_bytes() != PRECIOUS


def test_umask_does_not_loosen_a_new_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        for kind in OUTPUTS:
            out = tmp_path / kind
            code, err = run(capsys, kind, out)
            assert code == cli.EXIT_OK, err
            assert mode(out) == 0o600, kind
    finally:
        os.umask(old)


def _record_failed(capsys: pytest.CaptureFixture[str], directory: Path) -> list[str]:
    code = cli.main(["-r", S2, "--json", "--record-failed", str(directory)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_OK, err
    return sorted(os.listdir(directory))


def test_record_failed_never_writes_through_a_planted_link_or_file(capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path) -> None:
    (name,) = _record_failed(capsys, tmp_path / "first")  # the name this run gives its file
    d = tmp_path / "failed"
    d.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(PRECIOUS)
    victim.chmod(0o644)
    (d / name).symlink_to(victim)
    assert _record_failed(capsys, d) == sorted([name, name.replace(".pcapng", "-2.pcapng")])
    assert victim.read_bytes() == PRECIOUS and mode(victim) == 0o644
    written = d / name.replace(".pcapng", "-2.pcapng")
    assert mode(written) == 0o600 and written.read_bytes().startswith(b"\x0a\x0d\x0d\x0a")
    # a loose file there is left alone too, and the new one is private
    (d / name).unlink()
    (d / name).write_bytes(PRECIOUS)
    (d / name).chmod(0o666)
    files = _record_failed(capsys, d)
    assert name.replace(".pcapng", "-3.pcapng") in files
    assert (d / name).read_bytes() == PRECIOUS
    assert all(mode(d / f) == 0o600 for f in files if f != name)
