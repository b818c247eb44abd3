"""Secrets: pppd's file syntax, the command-line forms, lookups, and that no secret is ever shown."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pytest

from pptptop.decode.mschap_crypto import nt_password_hash
from pptptop.inside import options
from pptptop.inside.secrets import SecretError, SecretStore, read_secrets_file

DATA = Path(__file__).parent.parent / "data"


def _write(tmp_path: Path, text: str | bytes, mode: int = 0o600) -> str:
    p = tmp_path / "chap-secrets"
    p.write_bytes(text.encode("latin-1") if isinstance(text, str) else text)
    p.chmod(mode)
    return str(p)


class TestFileSyntax:
    def test_the_labs_file(self, tmp_path: Path) -> None:
        path = str(tmp_path / "chap-secrets")
        shutil.copy(DATA / "lab-chap-secrets", path)
        os.chmod(path, 0o600)
        entries, warnings = read_secrets_file(path)
        assert warnings == []
        assert [(e.client, e.server, e.password, e.source) for e in entries] == [
            ("alice", "pptpsrv", "wonderland-42", f"{path} line 2"),
            ("bob", "pptpsrv", "builder-7", f"{path} line 3"),
        ]
        assert entries[0].nt_hash == nt_password_hash("wonderland-42")

    def test_quotes_escapes_comments_and_continuations(self, tmp_path: Path) -> None:
        path = _write(tmp_path, (
            "# a comment line\n"
            "carol * 'single quoted' *   # trailing comment\n"
            'dave  srv "with \\"quote\\" and # hash" 10.0.0.1\n'
            "eve srv sp\\sace\\x41\\101\\t\\q\n"
            "frank \\\n srv joined\n"
            "gina srv pw#nocomment\n"
            "lonely srv\n"
        ))
        entries, warnings = read_secrets_file(path)
        got = {e.client: (e.server, e.password) for e in entries}
        assert got["carol"] == ("*", "single quoted")
        assert got["dave"] == ("srv", 'with "quote" and # hash')
        assert got["eve"] == ("srv", "sp aceAA\tq")
        assert got["frank"] == ("srv", "joined")
        assert got["gina"] == ("srv", "pw")  # pppd: '#' ends an unquoted word
        assert "lonely" not in got
        assert any("line 8" in w and "without a secret" in w for w in warnings)

    def test_secret_from_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "pw").write_text("from-file   rest\n")
        path = _write(tmp_path, f"alice * @{tmp_path / 'pw'}\nbob * @{tmp_path / 'missing'}\n")
        entries, warnings = read_secrets_file(path)
        assert [(e.client, e.password) for e in entries] == [("alice", "from-file")]
        assert len(warnings) == 1 and "line 2" in warnings[0]

    def test_octets_are_latin1_as_pppd_hashes_them(self, tmp_path: Path) -> None:
        path = _write(tmp_path, b"u * \xe9t\xe9\n")
        (e,), _ = read_secrets_file(path)
        assert e.password == "\xe9t\xe9"
        assert e.nt_hash == nt_password_hash("été")

    def test_readable_by_others_is_warned(self, tmp_path: Path) -> None:
        path = _write(tmp_path, "alice * pw\n", mode=0o644)
        _, warnings = read_secrets_file(path)
        assert warnings == [f"{path} is readable by other users (mode 0644): chmod 600 {path}"]

    @pytest.mark.parametrize("make", ["missing", "directory"])
    def test_unreadable_is_one_sentence(self, tmp_path: Path, make: str) -> None:
        path = tmp_path / "x"
        if make == "directory":
            path.mkdir()
        with pytest.raises(SecretError) as e:
            read_secrets_file(str(path))
        assert str(path) in str(e.value) and "\n" not in str(e.value)


class TestLookup:
    def store(self, tmp_path: Path) -> SecretStore:
        path = _write(tmp_path, "* * wild\nalice * alice-any\nalice pptpsrv alice-srv\n* pptpsrv any-srv\n")
        entries, _ = read_secrets_file(path)
        return SecretStore([], entries)

    def test_pppd_precedence(self, tmp_path: Path) -> None:
        s = self.store(tmp_path)
        assert s.lookup("alice", "pptpsrv").password == "alice-srv"  # type: ignore[union-attr]
        assert s.lookup("alice", "other").password == "alice-any"  # type: ignore[union-attr]
        assert s.lookup("bob", "pptpsrv").password == "any-srv"  # type: ignore[union-attr]
        assert s.lookup("bob", "other").password == "wild"  # type: ignore[union-attr]

    def test_domain_prefix_and_command_line_first(self, tmp_path: Path) -> None:
        files = read_secrets_file(_write(tmp_path, "alice pptpsrv from-file\n"))[0]
        s = SecretStore([options._password("alice:from-cli")], files)
        assert s.lookup("CORP\\alice", "pptpsrv").password == "from-cli"  # type: ignore[union-attr]
        assert SecretStore([], files).lookup("CORP\\alice", "pptpsrv").password == "from-file"  # type: ignore
        assert SecretStore([], files).lookup("bob", None) is None


class TestCommandLine:
    def parse(self, *argv: str) -> argparse.Namespace:
        from pptptop.cli import build_parser

        return build_parser().parse_args(["-r", "x.pcap", *argv])

    def test_password_and_nt_hash(self) -> None:
        a = self.parse("--password", "alice:pa:ss", "--nt-hash", "CORP\\bob:" + "44EBBA8D5312B8D611474411F56989AE")
        store, warnings = options.load(a)
        assert warnings == []
        assert store.lookup("alice", "x").password == "pa:ss"  # type: ignore[union-attr]
        bob = store.lookup("CORP\\bob", None)
        assert bob is not None and bob.password is None
        assert bob.nt_hash == nt_password_hash("clientPass")

    @pytest.mark.parametrize("argv", [["--password", "nocolon-S3CRET"], ["--nt-hash", "bob:S3CRET"],
                                      ["--nt-hash", "bob:" + "ab" * 15], ["--password", ":S3CRET"]])
    def test_bad_values_never_echo_the_secret(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            self.parse(*argv)
        err = capsys.readouterr().err
        assert "S3CRET" not in err and "ab" * 15 not in err
        assert argv[0] in err

    def test_repr_hides_the_secret(self) -> None:
        s = options._password("alice:S3CRET")
        h = options._nt_hash("bob:" + "cd" * 16)
        for text in (repr(s), str(s), repr(h), repr(SecretStore([s, h]))):
            assert "S3CRET" not in text and "cd" * 16 not in text and s.nt_hash.hex() not in text

    @pytest.mark.parametrize(("argv", "word"), [
        (["--decrypted", "--password", "a:b"], "-w FILE"),
        (["-w", "o.pcapng", "--decrypted"], "needs a secret"),
        (["-w", "o.pcapng", "-C", "1", "--decrypted", "--password", "a:b"], "one pcapng"),
    ])
    def test_usage_errors(self, argv: list[str], word: str) -> None:
        assert word in (options.usage_error(self.parse(*argv)) or "")


class TestCli:
    """The command reads the secrets before anything else is opened, and says why it cannot in one line."""

    def test_missing_file_exits_66(self, capsys: pytest.CaptureFixture[str]) -> None:
        from pptptop.cli import EXIT_NO_INPUT, main

        code = main(["-r", str(DATA / "s1-mschapv2-mppe128-outside.pcap"), "--report", "--secrets", "/nonexistent/cs"])
        assert code == EXIT_NO_INPUT
        assert capsys.readouterr().err == "pptptop: cannot read /nonexistent/cs: no such file\n"

    def test_world_readable_file_is_warned_and_read(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        from pptptop.cli import EXIT_OK, main

        path = _write(tmp_path, "alice * S3CRET-pw\n", mode=0o644)
        assert main(["-r", str(DATA / "s1-mschapv2-mppe128-outside.pcap"), "--report", "--secrets", path]) == EXIT_OK
        out = capsys.readouterr()
        assert f"pptptop: warning: {path} is readable by other users (mode 0644)" in out.err
        assert "S3CRET" not in out.err + out.out
