"""``--record-failed DIR``: one pcapng per failed session (both NAT legs), with its diagnosis in sentences."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile_capture import OSC52, RAW_CONTROLS, USER, write_hostile
from rechelp import DATA, HAVE_TSHARK, NO_TSHARK, capinfos, json_doc, raw_frames, run_pptptop, tshark_read

from pptptop import diagnose, sources
from pptptop.pipeline import Pipeline
from pptptop.record.failed import FailedRecorder, failed_file_name, section_comment
from pptptop.track import nat as natmod
from pptptop.track.events import Event, EventKind
from pptptop.track.model import Endpoint, Phase, PhaseSpan, Tunnel
from pptptop.track.notes import NatEndpoint, NatNote
from pptptop.track.tracker import Tracker

needs_tshark = pytest.mark.skipif(not HAVE_TSHARK, reason=NO_TSHARK)
#: lab captures of one failed session seen on both sides of the NAT: the phase it failed in, the first error
BOTH = {"s2-mschapv2-wrong-password-both.pcapng": ("auth", "auth-failed (Windows error 691)"),
        "s3-gre-blocked-both.pcapng": ("lcp", "gre-blocked (Windows error 806)"),
        "s3b-gre-forward-drop-both.pcapng": ("lcp", "gre-blocked (Windows error 806)"),
        "s4-mppe-refused-by-client-both.pcapng": ("ncp", "encryption-mismatch (Windows error 741)")}
CLIENT, PUBLIC, SERVER = "10.0.0.2", "198.51.100.1", "198.51.100.2"
#: tshark's view of the lab session (either leg), without what pptptop does not keep: bare TCP and GRE acks
SESSION = (f"(ip.addr=={CLIENT} || ip.addr=={PUBLIC}) && ip.addr=={SERVER} && (tcp.port==1723 || gre || icmp)"
           " && !(tcp && tcp.len==0 && tcp.flags.syn==0 && tcp.flags.fin==0 && tcp.flags.reset==0)"
           " && !(gre && !ppp)")


def run(path: Path, directory: Path, *, diagnosis: bool = True, nat: bool = True,
        before: list[Callable[[Event], None]] | None = None) -> tuple[Tracker, FailedRecorder]:
    """The engine as the CLI wires it: NAT legs, diagnosis, then the failed-session recorder."""
    tracker = Tracker()
    if nat:
        natmod.attach(tracker)
    if diagnosis:
        diagnose.Diagnoser().attach(tracker)
    for sub in before or ():
        tracker.subscribe(sub)
    fr = FailedRecorder(directory, tracker)
    fr.prepare()
    fr.attach()
    Pipeline(sources.open_file(path), tracker).run()
    fr.close()
    return tracker, fr


def session_frames(src: Path) -> tuple[list[int], list[str]]:
    """Frame numbers and interface names of the lab session in ``src``, as tshark selects them."""
    p = subprocess.run(["tshark", "-n", "-r", str(src), "-Y", SESSION, "-T", "fields", "-E", "separator=\t",
                        "-e", "frame.number", "-e", "frame.interface_name"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    rows = [line.split("\t") for line in p.stdout.splitlines()]
    return [int(r[0]) for r in rows], [r[1] if len(r) > 1 else "" for r in rows]


def shown(path: Path | str) -> str:
    """What ``capinfos -k`` and ``tshark -V`` print of a file: the comments included, as a terminal gets them."""
    out = b""
    for cmd in (["capinfos", "-k", str(path)], ["tshark", "-n", "-V", "-r", str(path)]):
        p = subprocess.run(cmd, capture_output=True)
        assert p.returncode == 0, p.stderr
        out += p.stdout
    return out.decode("latin-1")


class TestOneFilePerSession:
    @needs_tshark
    @pytest.mark.parametrize("name", list(BOTH))
    def test_both_legs_in_one_file_as_captured(self, tmp_path: Path, name: str) -> None:
        src = DATA / name
        tracker, fr = run(src, tmp_path / "failed")
        failed = sorted((t for t in tracker.tunnels.values() if t.phase is Phase.FAILED), key=lambda t: t.iface)
        assert [t.iface for t in failed] == ["lan0", "wan0"]  # the session failed on both legs
        inside, outside = failed
        assert inside.nat is not None and inside.nat.peer == outside.id
        files = sorted((tmp_path / "failed").iterdir())
        assert [str(f) for f in files] == fr.files and len(files) == 1
        (path,) = files
        assert path.name == failed_file_name(inside, outside) == (
            f"{path.name[:16]}-tunnel{inside.id}+{outside.id}-lan0+wan0-{CLIENT}-"
            + ("bob-" if "s2" in name else "alice-" if "s4" in name else "") + f"failed-{BOTH[name][0]}.pcapng")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # every frame of the session that pptptop keeps, from both legs, byte for byte, in capture order,
        # each on the interface it was captured on
        numbers, ifaces = session_frames(src)
        originals = raw_frames(src)
        r = tshark_read(path)
        assert r.returncode == 0 and not r.stderr
        assert raw_frames(path) == [originals[n - 1] for n in numbers]
        assert r.interfaces == ifaces and {"lan0", "wan0"} <= set(ifaces)
        assert r.bytes == sum(len(originals[n - 1]) for n in numbers)

    @needs_tshark
    def test_single_leg_capture_gives_one_file(self, tmp_path: Path) -> None:
        src = DATA / "s2-mschapv2-wrong-password-inside.pcap"
        tracker, fr = run(src, tmp_path / "f")
        (t,) = tracker.tunnels.values()
        (path,) = fr.files
        assert Path(path).name == failed_file_name(t) == "20261123T073238Z-tunnel1-any-10.0.0.2-bob-failed-auth.pcapng"
        numbers, _ = session_frames(src)
        assert raw_frames(path) == [raw_frames(src)[n - 1] for n in numbers] and len(numbers) == 24
        assert "This file holds one tunnel: tunnel 1 (10.0.0.2 port 47958, Call ID 12799)." in capinfos(path)[
            "Capture comment"]

    def test_successful_sessions_write_nothing(self, tmp_path: Path) -> None:
        for name in ("s1-mschapv2-mppe128-both.pcapng", "s5-two-clients-same-nat-both.pcapng"):
            _, fr = run(DATA / name, tmp_path / name)
            assert fr.files == []
            assert list((tmp_path / name).iterdir()) == []

    def test_without_nat_correlation_each_leg_is_its_own_session(self, tmp_path: Path) -> None:
        """What pairs the legs is the correlator's note, nothing else (an unpaired leg is a session alone)."""
        tracker, fr = run(DATA / "s2-mschapv2-wrong-password-both.pcapng", tmp_path / "f", nat=False)
        assert sorted(Path(f).name for f in fr.files) == sorted(failed_file_name(t) for t in tracker.tunnels.values())
        assert len(fr.files) == 2

    def test_waits_for_the_packets_after_the_end(self, tmp_path: Path) -> None:
        """Written a few seconds after the session ended: the FIN/ACKs that follow both legs' ends are in it."""
        ended: dict[int, int] = {}

        def on_event(ev: Event) -> None:
            if ev.kind is EventKind.ENDED and ev.tunnel is not None:
                ended.setdefault(ev.tunnel.id, ev.frame or 0)

        src = DATA / "s2-mschapv2-wrong-password-both.pcapng"
        _, fr = run(src, tmp_path / "f", diagnosis=False, before=[on_event])
        (path,) = fr.files
        frames = raw_frames(path)
        originals = raw_frames(src)
        assert originals[66] in frames  # frame 67, the server's FIN on wan0, after both legs ended (45, 65)
        assert max(ended.values()) < 67
        assert len(frames) == 48

    def test_cli_record_failed(self, tmp_path: Path) -> None:
        d = tmp_path / "failed"
        p = run_pptptop("-r", str(DATA / "s3-gre-blocked-both.pcapng"), "--json", "--record-failed", str(d))
        assert p.returncode == 0, p.stderr
        rf = json_doc(p)["record_failed"]
        assert len(rf["files"]) == 1 and rf["errors"] == 0 and rf["pending"] == 0
        assert [str(x) for x in d.iterdir()] == rf["files"]
        assert "-tunnel1+2-lan0+wan0-10.0.0.2-failed-lcp.pcapng" in rf["files"][0]


class TestComments:
    @needs_tshark
    @pytest.mark.parametrize("name", list(BOTH))
    def test_section_comment_says_what_failed_in_sentences(self, tmp_path: Path, name: str) -> None:
        tracker, fr = run(DATA / name, tmp_path / "f")
        (path,) = fr.files
        comment = capinfos(path)["Capture comment"]
        phase, error = BOTH[name]
        user = ' (user "bob")' if "s2" in name else ' (user "alice")' if "s4" in name else ""
        assert comment.startswith(f"pptptop: session {CLIENT} → {SERVER}{user} failed in {phase}: {error} — ")
        inside, outside = sorted(tracker.tunnels.values(), key=lambda t: t.iface)
        assert ("This file holds both legs of the NAT session, each on its own interface: "
                f"inside, tunnel {inside.id} on lan0 ({CLIENT} port {inside.client.port}, Call ID "
                f"{inside.client.call_id}); outside, tunnel {outside.id} on wan0 ({PUBLIC} port "
                f"{outside.client.port}, Call ID {outside.client.call_id}).") in comment
        for t in (inside, outside):
            for f in t.findings:
                assert f"{f.severity.value} {f.code}" in comment and f.title in comment
        assert "this tunnel ended failed" not in comment
        assert "Recorded by pptptop --record-failed." in comment

    @needs_tshark
    def test_s2_comments_read_as_a_person_writes(self, tmp_path: Path) -> None:
        _, fr = run(DATA / "s2-mschapv2-wrong-password-both.pcapng", tmp_path / "f")
        (path,) = fr.files
        comment = capinfos(path)["Capture comment"]
        assert comment.startswith('pptptop: session 10.0.0.2 → 198.51.100.2 (user "bob") failed in auth: '
                                  "auth-failed (Windows error 691) — Authentication failed. "
                                  'The server ended it with an LCP Terminate-Request "Authentication failed". ')
        # findings seen identically on both legs are said once
        assert comment.count("auth-failed: Authentication failed (Windows error 691). MS-CHAPv2 Failure") == 1
        assert "Its 48 packets, in capture order, are what pptptop keeps of a tunnel" in comment
        ends = [c for c in tshark_read(path).comments if " closes tunnel " in c]
        assert ends == [
            'pptptop: here the server closes tunnel 2 on lan0 with an LCP Terminate-Request "Authentication '
            'failed"; the session failed in auth.',
            'pptptop: here the server closes tunnel 1 on wan0 with an LCP Terminate-Request "Authentication '
            'failed"; the session failed in auth.']
        evidence = [line for c in tshark_read(path).comments for line in c.split("\\n")
                    if line.startswith("pptptop: evidence")]  # tshark shows a comment's line break as \n
        assert evidence.count("pptptop: evidence for auth-failed (Windows error 691) — Authentication failed.") == 6
        assert set(evidence) == {"pptptop: evidence for auth-failed (Windows error 691) — Authentication failed.",
                                 "pptptop: evidence for mschapv2-crackable — MS-CHAPv2 exchange crackable offline."}

    @needs_tshark
    def test_a_finding_on_one_leg_only_names_it(self, tmp_path: Path) -> None:
        """s3b: the ICMP that refuses the server's GRE is seen outside only; the comment says where."""
        _, fr = run(DATA / "s3b-gre-forward-drop-both.pcapng", tmp_path / "f")
        (path,) = fr.files
        comment = capinfos(path)["Capture comment"]
        assert "- error gre-icmp-unreachable, seen on wan0: GRE refused by ICMP (Windows error 806)." in comment
        assert "- error gre-blocked, seen on lan0: GRE blocked: LCP never answered (Windows error 806)." in comment
        assert "The server ended it with a TCP FIN." in comment

    @needs_tshark
    def test_without_findings_the_comment_names_phase_and_close_reason(self, tmp_path: Path) -> None:
        _, fr = run(DATA / "s2-mschapv2-wrong-password-both.pcapng", tmp_path / "f", diagnosis=False)
        (path,) = fr.files
        comment = capinfos(path)["Capture comment"]
        assert comment.startswith('pptptop: session 10.0.0.2 → 198.51.100.2 (user "bob") failed in auth. '
                                  'The server ended it with an LCP Terminate-Request "Authentication failed".')
        assert "Diagnosis" not in comment

    @needs_tshark
    def test_wire_text_in_the_comments_is_escaped(self, tmp_path: Path) -> None:
        """User names, host names and Terminate texts reach the comments as printable escapes, never raw: ESC[2J,
        an OSC 52 clipboard write or a CR/LF from the wire would act on the terminal of whoever runs capinfos."""
        tracker, fr = run(write_hostile(tmp_path / "hostile.pcap"), tmp_path / "f")
        (t,) = tracker.tunnels.values()
        assert t.auth.user == USER.decode("latin-1") and t.close.how == "lcp-terminate"
        (path,) = fr.files
        assert not [c for c in RAW_CONTROLS if c in path]
        text = shown(path)
        assert not [c for c in RAW_CONTROLS if c in text]
        escaped = "\\x1b]52;c;cHduZWQ=\\x07"  # OSC52 as printable() shows it, escaped once
        assert OSC52.decode() == escaped.replace("\\x1b", "\x1b").replace("\\x07", "\x07")
        comment = capinfos(path)["Capture comment"]
        assert comment.startswith(f'pptptop: session 10.0.0.2 → 198.51.100.2 (user "{escaped}\\x1b[2Jbob\\x0d'
                                  '\\x0ainjected") failed in auth')
        # the Terminate's data is text with a few controls in it: kept as text, every control escaped once
        assert ('The server ended it with an LCP Terminate-Request "bye\\x1b]52;c;cHduZWQ=\\x07\\x0d\\x0aforged '
                'line\\x1b[2J".') in comment
        assert 'pptptop: here the server closes tunnel 1 with an LCP Terminate-Request "bye\\x1b]52' in text

    def test_interface_names_are_escaped(self) -> None:
        """Interface names come from the capture file (pcapng if_name): escaped in comments, made safe in names."""
        a = _tunnel(1, "lan\x1b[2J0", CLIENT)
        name = failed_file_name(a)
        assert "\x1b" not in name and name.startswith("19700101T000000Z-tunnel1-lan_2J0-10.0.0.2-")
        text = section_comment([a], 0)
        assert "\x1b" not in text and "tunnel 1 on lan\\x1b[2J0" in text


def _nat(role: str, peer: int) -> NatNote:
    """The part of a NAT note the recorder reads: the leg's role and its peer."""
    nowhere = NatEndpoint(None, None, None)
    return NatNote(role, peer, nowhere, nowhere, nowhere)


def _tunnel(tid: int, iface: str, client: str, *, nat_peer: int | None = None, role: str = "inside") -> Tunnel:
    t = Tunnel(id=tid, iface=iface, client=Endpoint(client, 40000, 100 + tid), server=Endpoint(SERVER, 1723, 7),
               first_seen=0.0, last_seen=0.0)
    t.phases.append(PhaseSpan(Phase.TCP, 0.0))
    if nat_peer is not None:
        t.nat = _nat(role, nat_peer)
    return t


def _fail(tracker: Tracker, t: Tunnel, ts: float) -> Event:
    """What the tracker does when a tunnel ends failed in auth at ``ts``."""
    t.ended, t.ended_at, t.failed_in, t.phase = True, ts, Phase.AUTH, Phase.FAILED
    t.phases.append(PhaseSpan(Phase.FAILED, ts, ts))
    return Event(ts, EventKind.ENDED, t)


def _tick(ts: float) -> Event:
    return Event(ts, EventKind.TICK, None)


class TestTiming:
    """When a session is written: the NAT join, the other leg's end, eviction (events crafted as the tracker's)."""

    def recorder(self, tmp_path: Path, *tunnels: Tunnel) -> tuple[Tracker, FailedRecorder]:
        tracker = Tracker()
        for t in tunnels:
            tracker.tunnels[t.id] = t
        fr = FailedRecorder(tmp_path / "f", tracker)
        fr.prepare()
        return tracker, fr

    def test_a_join_after_the_failure_is_waited_for(self, tmp_path: Path) -> None:
        a, b = _tunnel(1, "lan0", CLIENT), _tunnel(2, "wan0", PUBLIC)
        tracker, fr = self.recorder(tmp_path, a, b)
        fr._on_event(_fail(tracker, a, 10.0))
        fr._on_event(_tick(11.0))
        a.nat = _nat("inside", 2)  # the correlator joins the legs after a failed
        b.nat = _nat("outside", 1)
        fr._on_event(_fail(tracker, b, 11.5))
        fr._on_event(_tick(13.5))
        assert fr.files == []  # a's linger is over, b's is not
        fr._on_event(_tick(14.6))
        assert [Path(f).name for f in fr.files] == ["19700101T000000Z-tunnel1+2-lan0+wan0-10.0.0.2-failed-auth.pcapng"]
        assert fr.state().pending == 0

    def test_a_leg_that_goes_on_is_waited_for_then_not_written_again(self, tmp_path: Path) -> None:
        a, b = _tunnel(1, "lan0", CLIENT, nat_peer=2), _tunnel(2, "wan0", PUBLIC, nat_peer=1, role="outside")
        tracker, fr = self.recorder(tmp_path, a, b)
        fr._on_event(_fail(tracker, a, 10.0))
        fr._on_event(_tick(20.0))
        assert fr.files == [] and fr.state().pending == 1
        fr._on_event(_tick(10.0 + fr.linger + fr.leg_wait))
        assert [Path(f).name for f in fr.files] == ["19700101T000000Z-tunnel1+2-lan0+wan0-10.0.0.2-failed-auth.pcapng"]
        fr._on_event(_fail(tracker, b, 60.0))
        fr.close()
        assert len(fr.files) == 1

    def test_a_peer_that_ended_without_failing_is_in_the_file(self, tmp_path: Path) -> None:
        a, b = _tunnel(1, "lan0", CLIENT, nat_peer=2), _tunnel(2, "wan0", PUBLIC, nat_peer=1, role="outside")
        tracker, fr = self.recorder(tmp_path, a, b)
        fr._on_event(_fail(tracker, a, 10.0))
        b.ended, b.ended_at, b.phase = True, 12.0, Phase.CLOSED
        b.phases.append(PhaseSpan(Phase.CLOSED, 12.0, 12.0))
        fr._on_event(_tick(13.5))
        assert fr.files == []  # b's packets after its end (at 12) may still come
        fr._on_event(_tick(15.0))
        assert [Path(f).name for f in fr.files] == ["19700101T000000Z-tunnel1+2-lan0+wan0-10.0.0.2-failed-auth.pcapng"]

    def test_an_evicted_peer_stays_in_the_session(self, tmp_path: Path) -> None:
        """Evicting a leg makes the correlator remove the note of the leg that stays: the peer is remembered."""
        a, b = _tunnel(1, "lan0", CLIENT, nat_peer=2), _tunnel(2, "wan0", PUBLIC, nat_peer=1, role="outside")
        tracker, fr = self.recorder(tmp_path, a, b)
        fr._on_event(_fail(tracker, a, 10.0))
        fr._on_event(_fail(tracker, b, 10.1))
        del tracker.tunnels[2]
        a.nat = None
        fr._on_event(_tick(13.0))
        fr._on_event(Event(13.05, EventKind.EVICTED, b))
        assert [Path(f).name for f in fr.files] == ["19700101T000000Z-tunnel1+2-lan0+wan0-10.0.0.2-failed-auth.pcapng"]
        fr.close()
        assert len(fr.files) == 1

    def test_evicting_a_failed_leg_writes_its_session_at_once(self, tmp_path: Path) -> None:
        a, b = _tunnel(1, "lan0", CLIENT, nat_peer=2), _tunnel(2, "wan0", PUBLIC, nat_peer=1, role="outside")
        tracker, fr = self.recorder(tmp_path, a, b)
        fr._on_event(_fail(tracker, a, 10.0))
        fr._on_event(_fail(tracker, b, 10.0))
        b.nat = None  # what the correlator does to the other leg when it forgets a
        fr._on_event(Event(10.5, EventKind.EVICTED, a))
        assert len(fr.files) == 1 and "tunnel1+2" in fr.files[0]
        fr.close()
        assert len(fr.files) == 1

    def test_a_split_pair_is_two_sessions(self, tmp_path: Path) -> None:
        """The correlator splits a join that later evidence contradicts: the legs are then written apart."""
        a, b = _tunnel(1, "lan0", CLIENT, nat_peer=2), _tunnel(2, "wan0", PUBLIC, nat_peer=1, role="outside")
        tracker, fr = self.recorder(tmp_path, a, b)
        fr._on_event(_fail(tracker, a, 10.0))
        a.nat = None
        b.nat = None
        fr._on_event(_fail(tracker, b, 10.0))
        fr._on_event(_tick(13.0))
        assert sorted(Path(f).name.split("-")[1] for f in fr.files) == ["tunnel1", "tunnel2"]


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
