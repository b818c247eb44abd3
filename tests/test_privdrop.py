"""Privilege drop (tcpdump -Z): the process really runs as the target user, with only the kept capabilities."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pty_session import Terminal, installed

from pptptop import privdrop
from pptptop.privdrop import Cap, PrivDropError, default_user, resolve_user

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
S2 = DATA / "s2-mschapv2-wrong-password-both.pcapng"
root_only = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def _env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO)
    e.pop("SUDO_USER", None)
    return e


def in_child(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (a drop cannot be undone); it prints one JSON object."""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert p.returncode == 0, p.stderr
    result: dict[str, Any] = json.loads(p.stdout)
    return result


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pptptop", *args], capture_output=True, text=True, env=_env(),
                          timeout=120, cwd=REPO)


def status_of(result: str) -> str:
    """Code for the child: ``result`` is an expression; prints it with /proc/self/status and a setuid(0) try."""
    return ("import json, os\nfrom pptptop import privdrop as p\n"
            f"res = {result}\n"
            "ids = p.proc_ids()\n"
            "try:\n    os.setuid(0)\n    back = 'regained'\nexcept PermissionError:\n    back = 'refused'\n"
            "print(json.dumps({'result': res, 'status': {k: list(v) for k, v in ids.items()}, 'setuid0': back}))\n")


def test_default_user() -> None:
    assert default_user({"SUDO_USER": "alice"}) == "alice"
    assert default_user({"SUDO_USER": "root"}) == "nobody"
    assert default_user({"SUDO_USER": ""}) == "nobody"
    assert default_user({}) == "nobody"


def test_resolve_user() -> None:
    assert resolve_user("root").pw_uid == 0
    assert resolve_user("0").pw_name == pwd.getpwuid(0).pw_name
    with pytest.raises(PrivDropError, match="no such user 'no-such-user-x'"):
        resolve_user("no-such-user-x")


def test_capabilities_of_this_process_are_readable() -> None:
    eff, prm, _inh = privdrop.get_capabilities()
    assert eff & ~prm == 0  # effective is a subset of permitted
    assert privdrop.cap_name(12) == "CAP_NET_ADMIN" and privdrop.cap_name(39) == "CAP_39"
    assert privdrop.last_cap() >= int(Cap.CAP_SYS_ADMIN)


def test_drop_needs_root() -> None:
    if os.geteuid() == 0:
        code = "import os, json\nfrom pptptop import privdrop\nos.setresuid(65534, 65534, 0)\n" \
               "try:\n    privdrop.drop_privileges('nobody')\nexcept privdrop.PrivDropError as e:\n" \
               "    print(json.dumps({'error': str(e)}))\n"
    else:
        code = "import json\nfrom pptptop import privdrop\ntry:\n    privdrop.drop_privileges('nobody')\n" \
               "except privdrop.PrivDropError as e:\n    print(json.dumps({'error': str(e)}))\n"
    assert in_child(code)["error"] == "dropping privileges needs root"


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user can reach (pytest's own tmp dirs are 0700 under root)."""
    d = Path(tempfile.mkdtemp(prefix="pptptop-privdrop-", dir="/tmp"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
class TestAsRoot:
    def test_drop_to_nobody_is_complete_and_final(self) -> None:
        r = in_child(status_of("p.drop_privileges('nobody').as_dict()"))
        st = r["status"]
        assert st["Uid"] == [65534] * 4 and st["Gid"] == [65534] * 4
        assert st["CapEff"] == [0] and st["CapPrm"] == [0] and st["CapBnd"] == [0] and st["CapAmb"] == [0]
        assert st["NoNewPrivs"] == [1]
        assert r["setuid0"] == "refused"
        assert r["result"] == {"user": "nobody", "uid": 65534, "gid": 65534, "capabilities": []}

    def test_keep_net_admin_across_the_switch(self) -> None:
        r = in_child(status_of("p.drop_privileges('nobody', keep=[p.Cap.CAP_NET_ADMIN]).as_dict()"))
        st = r["status"]
        assert st["Uid"] == [65534] * 4
        assert st["CapEff"] == [1 << 12] and st["CapPrm"] == [1 << 12] and st["CapBnd"] == [1 << 12]
        assert r["result"]["capabilities"] == ["CAP_NET_ADMIN"]

    def test_no_drop_keeps_root_with_two_capabilities(self) -> None:
        r = in_child("import json, os\nfrom pptptop import privdrop as p\nres = p.limit_capabilities().as_dict()\n"
                     "ids = p.proc_ids()\n"
                     "try:\n    open('/proc/1/environ', 'rb').read(1)\n    env1 = 'read'\n"
                     "except PermissionError:\n    env1 = 'denied'\n"
                     "print(json.dumps({'result': res, 'env1': env1, "
                     "'status': {k: list(v) for k, v in ids.items()}}))\n")
        st = r["status"]
        assert st["Uid"] == [0] * 4
        assert st["CapEff"] == [(1 << 12) | (1 << 13)] and st["CapBnd"] == [(1 << 12) | (1 << 13)]
        assert r["result"]["capabilities"] == ["CAP_NET_ADMIN", "CAP_NET_RAW"]
        assert r["env1"] == "denied"  # without CAP_SYS_PTRACE/DAC_OVERRIDE root cannot read other processes

    def test_refuses_with_threads_running(self) -> None:
        r = in_child("import json, threading, time\nfrom pptptop import privdrop as p\n"
                     "threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n"
                     "try:\n    p.drop_privileges('nobody')\n    out = 'dropped'\n"
                     "except p.PrivDropError as e:\n    out = str(e)\nprint(json.dumps({'out': out}))\n")
        assert "before any thread starts" in r["out"]

    def test_cli_file_input_with_Z_hands_the_file_to_the_user(self, tmp_path: Path) -> None:
        out = tmp_path / "out.pcapng"
        p = cli("-r", str(S2), "--json", "-w", str(out), "-Z", "nobody")
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        assert doc["privileges"] == {"user": "nobody", "uid": 65534, "gid": 65534, "capabilities": []}
        assert doc["recording"]["packets"] == 68
        st = out.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (65534, 0o600)

    @pytest.mark.parametrize("args", [
        ("-r", "s5-two-clients-same-nat-both.pcapng", "--json", "-w", "OUT.pcapng"),
        ("-r", "s1-mschapv2-mppe128-both.pcapng", "--report", "-w", "OUT.pcap", "--record-failed", "DIR"),
        ("-r", "s2-mschapv2-wrong-password-both.pcapng", "--json", "--export-tunnel", "failed", "-w", "OUT.pcapng"),
        ("-r", "tcpdump__pptp.pcap", "--json", "--export-hashes", "OUT.hashes"),
    ])
    def test_nothing_is_imported_after_the_drop(self, tmp_path: Path, args: tuple[str, ...]) -> None:
        """The target user may not be able to read the Python installation (here it cannot: /root/.pyenv), so
        whatever a run needs late (numpy's set routines import numpy.ma on first use) is imported before the
        drop. The drop is faked here so that a late import shows up instead of failing."""
        argv = [str(DATA / a) if a.endswith((".pcap", ".pcapng")) and "OUT" not in a else a for a in args]
        argv = [a.replace("OUT", str(tmp_path / "out")).replace("DIR", str(tmp_path)) for a in argv]
        code = f"""
import json, sys
from pptptop import privdrop
from pptptop.record import session
seen = {{}}
def fake(user, *, keep=(), chown=()):
    seen["modules"] = set(sys.modules)
    return privdrop.DropResult(user, 65534, 65534, (), ())
session.privdrop.drop_privileges = fake
from pptptop.cli import main
sys.stdout = open("/dev/null", "w")
rc = main({[*argv, "-Z", "nobody"]!r})
sys.stdout = sys.__stdout__
print(json.dumps({{"rc": rc, "dropped": "modules" in seen,
                  "late": sorted(set(sys.modules) - seen.get("modules", set(sys.modules)))}}))
"""
        r = in_child(code)
        assert r["rc"] == 0 and r["dropped"]
        assert r["late"] == []

    def test_cli_file_input_as_root_keeps_root_without_Z(self, tmp_path: Path) -> None:
        p = cli("-r", str(S2), "--json", "-w", str(tmp_path / "o.pcapng"))
        assert p.returncode == 0, p.stderr
        assert "privileges" not in json.loads(p.stdout)
        assert (tmp_path / "o.pcapng").stat().st_uid == 0

    def test_cli_no_drop_privileges(self, tmp_path: Path) -> None:
        p = cli("-r", str(S2), "--json", "--no-drop-privileges")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["privileges"]["capabilities"] == ["CAP_NET_ADMIN", "CAP_NET_RAW"]

    def test_cli_unknown_user(self) -> None:
        p = cli("-r", str(S2), "--json", "-Z", "no-such-user-x")
        assert p.returncode == 67
        assert "no such user 'no-such-user-x'" in p.stderr

    def test_cli_warns_when_failed_dir_is_not_writable_after_the_drop(self, public_dir: Path) -> None:
        d = public_dir / "failed"
        d.mkdir(mode=0o755)
        p = cli("-r", str(S2), "--json", "-Z", "nobody", "--record-failed", str(d))
        assert p.returncode == 0
        assert f"{d} is not writable by nobody" in p.stderr
        assert json.loads(p.stdout)["record_failed"]["errors"] == 1  # the session's one file, and it says so

    def test_cli_creates_the_failed_dir_for_the_user(self, public_dir: Path) -> None:
        d = public_dir / "new"
        p = cli("-r", str(S2), "--json", "-Z", "nobody", "--record-failed", str(d))
        assert p.returncode == 0, p.stderr
        files = list(d.iterdir())
        assert len(files) == 1  # one file per failed session, both NAT legs in it
        assert d.stat().st_uid == 65534 and stat.S_IMODE(d.stat().st_mode) == 0o700
        assert all(f.stat().st_uid == 65534 and stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)

    def test_unreadable_for(self, public_dir: Path) -> None:
        (public_dir / "open" / "lib").mkdir(parents=True)
        (public_dir / "closed").mkdir(mode=0o700)
        (public_dir / "closed" / "lib").mkdir(mode=0o755)
        os.chmod(public_dir / "closed", 0o700)
        lib_open, lib_closed = str(public_dir / "open" / "lib"), str(public_dir / "closed" / "lib")
        assert privdrop.unreadable_for("nobody", [lib_open, lib_closed]) == [lib_closed]
        assert privdrop.unreadable_for("root", [lib_closed]) == []
        os.chown(public_dir / "closed", 65534, 65534)
        assert privdrop.unreadable_for("nobody", [lib_closed]) == []

    def test_ui_refuses_a_drop_to_a_user_who_cannot_read_python(self, public_dir: Path) -> None:
        """-Z names the user: never overridden. (The UI needs a terminal: it gets one.)"""
        if not privdrop.unreadable_installation("nobody"):
            pytest.skip("this Python installation is readable by nobody")
        term = Terminal([*installed(), "-r", str(S2), "-Z", "nobody"])  # no --json/--report: the UI
        try:
            assert term.wait(30) == 77
            time.sleep(0.2)
            out = term.text()
        finally:
            term.close()
        assert "cannot run the UI as nobody" in out and "--no-drop-privileges" in out and "Traceback" not in out

    def test_live_ui_stays_root_with_two_capabilities_when_the_user_cannot_read_python(self) -> None:
        """A pyenv or venv under /root: nobody (the default user) cannot import from it, so the live UI keeps
        uid 0 with only CAP_NET_RAW and CAP_NET_ADMIN, says so, and runs."""
        if not privdrop.unreadable_installation(privdrop.default_user({})):
            pytest.skip("this Python installation is readable by nobody")
        term = Terminal([*installed(), "lo"], env={"SUDO_USER": ""})
        try:
            assert term.wait_for(" LIVE "), term.text()
            st = privdrop.proc_ids(term.proc.pid)
            term.send("q")
            assert term.wait(20) == 0
            time.sleep(0.2)
            out = " ".join(term.text().split())
        finally:
            term.close()
        assert st["Uid"] == (0, 0, 0, 0)
        assert st["CapEff"] == ((1 << 12) | (1 << 13),) and st["CapBnd"] == ((1 << 12) | (1 << 13),)
        assert "pptptop: staying root with only CAP_NET_RAW and CAP_NET_ADMIN (as --no-drop-privileges): " \
               "nobody cannot read" in out
        assert "Traceback" not in out


class TestInstallationCheck:
    def test_the_installation_is_what_python_imports_from(self) -> None:
        import sysconfig

        paths = privdrop.installation_paths()
        assert sysconfig.get_paths()["stdlib"] in paths and sysconfig.get_paths()["purelib"] in paths
        assert str(Path(privdrop.__file__).parent) in paths
        assert privdrop.unreadable_installation("root") == []

    def test_the_cli_keeps_root_only_for_a_live_ui_with_the_default_user(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        from pptptop.cli import config

        monkeypatch.setattr(config.os, "geteuid", lambda: 0)
        monkeypatch.setattr(privdrop, "unreadable_installation", lambda user: ["/root/.pyenv/lib/python3.11"])
        monkeypatch.delenv("SUDO_USER", raising=False)

        def args(*argv: str) -> config.RunConfig:
            from pptptop.cli import build_parser

            return config.configure(build_parser().parse_args(list(argv)))

        a = args("lo")
        said = config.keep_root_for_the_ui(a, live=True)
        assert said is not None  # the CLI then runs with cfg.keeping_root(), as --no-drop-privileges
        assert said.startswith("staying root with only CAP_NET_RAW and CAP_NET_ADMIN")
        assert "nobody cannot read /root/.pyenv/lib/python3.11" in said
        for a, live in [(args("lo", "-Z", "nobody"), True), (args("lo", "--json"), True), (args("-r", "x"), False)]:
            assert config.keep_root_for_the_ui(a, live=live) is None
            assert not a.recording.no_drop_privileges
