"""``--record-failed DIR``: one pcapng per failed tunnel, with the diagnosis in its comments."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from hostile_capture import OSC52, RAW_CONTROLS, USER, write_hostile
from rechelp import DATA, HAVE_TSHARK, NO_TSHARK, capinfos, json_doc, raw_frames, run_pptptop, tshark_read

from pptptop import diagnose, sources
from pptptop.pipeline import Pipeline
from pptptop.record.export import collect_packets
from pptptop.record.failed import FailedRecorder, failed_file_name
from pptptop.track import nat as natmod
from pptptop.track.events import Event, EventKind
from pptptop.track.model import Endpoint, Phase, Tunnel
from pptptop.track.tracker import Tracker

needs_tshark = pytest.mark.skipif(not HAVE_TSHARK, reason=NO_TSHARK)
FAILING = {"s2-mschapv2-wrong-password-both.pcapng": "auth", "s3-gre-blocked-both.pcapng": "lcp",
           "s3b-gre-forward-drop-both.pcapng": None, "s4-mppe-refused-by-client-both.pcapng": None}


def run(path: Path, directory: Path, *, diagnosis: bool = True) -> tuple[Tracker, FailedRecorder]:
    """The engine as the CLI wires it: NAT legs, diagnosis, then the failed-tunnel recorder."""
    tracker = Tracker()
    natmod.attach(tracker)
    if diagnosis:
        diagnose.Diagnoser().attach(tracker)
    fr = FailedRecorder(directory, tracker)
    fr.prepare()
    fr.attach()
    Pipeline(sources.open_file(path), tracker).run()
    fr.close()
    return tracker, fr


@needs_tshark
@pytest.mark.parametrize("name", list(FAILING))
def test_one_file_per_failed_tunnel_with_its_diagnosis(tmp_path: Path, name: str) -> None:
    src = DATA / name
    tracker, fr = run(src, tmp_path / "failed")
    failed = [t for t in tracker.tunnels.values() if t.phase is Phase.FAILED]
    assert failed, "the lab scenario fails"
    files = sorted((tmp_path / "failed").iterdir())
    assert len(files) == len(failed) == len(fr.files)
    assert stat.S_IMODE((tmp_path / "failed").stat().st_mode) == 0o700
    originals = raw_frames(src)
    for t in failed:
        (path,) = [f for f in files if f.name == failed_file_name(t)]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        r = tshark_read(path)
        assert r.returncode == 0 and not r.stderr
        kept = collect_packets([t], tracker)
        assert raw_frames(path) == [originals[p.number - 1] for p in kept]
        comment = capinfos(path)["Capture comment"]
        assert f"tunnel {t.id} on {t.iface}" in comment
        assert f"failed in {t.failed_in.value}" in comment  # type: ignore[union-attr]
        if FAILING[name]:
            assert t.failed_in is not None and t.failed_in.value == FAILING[name]
        if t.close.how:
            assert t.close.how in comment
        for f in t.notes.get("findings", []):
            assert f"{f.code}: {f.title}" in comment
        # the packet where it ended carries its own comment
        end = [c for c in r.comments if f"tunnel {t.id} failed in" in c]
        assert len(end) == 1


@needs_tshark
def test_without_findings_the_comment_names_phase_and_close_reason(tmp_path: Path) -> None:
    _, fr = run(DATA / "s2-mschapv2-wrong-password-both.pcapng", tmp_path / "f", diagnosis=False)
    assert len(fr.files) == 2
    for name in fr.files:
        comment = capinfos(name)["Capture comment"]
        assert "failed in auth" in comment
        assert "lcp-terminate" in comment and "Authentication failed" in comment


def test_successful_sessions_write_nothing(tmp_path: Path) -> None:
    for name in ("s1-mschapv2-mppe128-both.pcapng", "s5-two-clients-same-nat-both.pcapng"):
        _, fr = run(DATA / name, tmp_path / name)
        assert fr.files == []
        assert list((tmp_path / name).iterdir()) == []


def test_waits_for_the_packets_after_the_end(tmp_path: Path) -> None:
    """The file is written a few seconds after the tunnel ended: the FIN/ACKs that follow are in it."""
    tracker = Tracker()
    ended: dict[int, int] = {}

    def on_event(ev: Event) -> None:
        if ev.kind is EventKind.ENDED and ev.tunnel is not None:
            ended.setdefault(ev.tunnel.id, ev.frame or 0)

    tracker.subscribe(on_event)
    fr = FailedRecorder(tmp_path / "f", tracker)
    fr.prepare()
    fr.attach()
    Pipeline(sources.open_file(DATA / "s2-mschapv2-wrong-password-both.pcapng"), tracker).run()
    fr.close()
    assert len(fr.files) == 2
    for t in tracker.tunnels.values():
        numbers = [p.number for p in collect_packets([t], None)]
        assert max(numbers) > ended[t.id]
        assert len(raw_frames(Path(next(f for f in fr.files if f"tunnel{t.id}-" in f)))) == len(numbers)


def test_cli_record_failed(tmp_path: Path) -> None:
    d = tmp_path / "failed"
    p = run_pptptop("-r", str(DATA / "s3-gre-blocked-both.pcapng"), "--json", "--record-failed", str(d))
    assert p.returncode == 0, p.stderr
    rf = json_doc(p)["record_failed"]
    assert len(rf["files"]) == 2 and rf["errors"] == 0
    assert sorted(str(x) for x in d.iterdir()) == sorted(rf["files"])


def test_symlinked_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    p = run_pptptop("-r", str(DATA / "s2-mschapv2-wrong-password-both.pcapng"), "--json",
                    "--record-failed", str(tmp_path / "link"))
    assert p.returncode == 0
    assert "symbolic link" in p.stderr and "failed tunnels will not be recorded" in p.stderr
    assert list(real.iterdir()) == []


def test_untrusted_user_names_make_safe_file_names() -> None:
    t = Tunnel(id=7, iface="eth0", client=Endpoint("10.0.0.2"), server=Endpoint("10.0.0.1"),
               first_seen=0.0, last_seen=0.0, failed_in=Phase.AUTH)
    t.auth.user = "../../etc/passwd\n\x00evil"
    name = failed_file_name(t)
    assert "/" not in name and "\n" not in name and "\x00" not in name
    assert name == "19700101T000000Z-tunnel7-eth0-10.0.0.2-etc_passwd_evil-failed-auth.pcapng"


def shown(path: Path | str) -> str:
    """What ``capinfos -k`` and ``tshark -V`` print of a file: the comments included, as a terminal gets them."""
    out = b""
    for cmd in (["capinfos", "-k", str(path)], ["tshark", "-n", "-V", "-r", str(path)]):
        p = subprocess.run(cmd, capture_output=True)
        assert p.returncode == 0, p.stderr
        out += p.stdout
    return out.decode("latin-1")


@needs_tshark
def test_wire_text_in_the_comments_is_escaped(tmp_path: Path) -> None:
    """User names, host names and Terminate texts reach the comments as printable escapes, never raw: ESC[2J,
    an OSC 52 clipboard write or a CR/LF from the wire would act on the terminal of whoever runs capinfos."""
    tracker, fr = run(write_hostile(tmp_path / "hostile.pcap"), tmp_path / "f")
    (t,) = tracker.tunnels.values()
    assert t.auth.user == USER.decode("latin-1") and t.close.how == "lcp-terminate"
    (path,) = fr.files
    text = shown(path)
    assert not [c for c in RAW_CONTROLS if c in text]
    escaped = "\\x1b]52;c;cHduZWQ=\\x07"  # OSC52 as printable() shows it, escaped once
    assert OSC52.decode() == escaped.replace("\\x1b", "\x1b").replace("\\x07", "\x07")
    comment = capinfos(path)["Capture comment"]
    assert f'user "{escaped}\\x1b[2Jbob\\x0d\\x0ainjected"' in comment
    assert "pptptop: tunnel 1 failed in auth here (lcp-terminate by server: " in text  # the packet comment
