"""The Diagnoser: ordering, withdrawal bookkeeping, output forms, docs, bounds, and robustness."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pytest
from diag_support import (
    CHAP,
    LCP,
    PAP,
    T0,
    Wire,
    codes,
    cp,
    errors,
    finding,
    findings,
    ipv4,
    run_capture,
    run_frames,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pptptop.diagnose import RULES, Diagnoser, Severity, diagnosis_json, report_lines
from pptptop.track.tracker import Limits, Tracker

DOCS = Path(__file__).resolve().parents[2] / "docs" / "diagnosis.md"
CAPTURES = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "data").iterdir()
                  if p.suffix in (".pcap", ".pcapng", ".cap", ".dump"))


def test_errors_come_first_whatever_appeared_first() -> None:
    w = Wire().setup().lcp_up(auth=b"\xc0\x23")
    w.ppp("client", PAP, cp(1, 1, b"\x05carol\x02pw"))
    w.at(1).ppp("server", PAP, cp(3, 1, b"\x02no"))
    t = run_frames(w.frames).tunnels[0]
    found = findings(t)
    assert [f.code for f in found] == ["auth-failed", "pap-cleartext"]
    assert found[1].ts < found[0].ts  # the warning came first in time, the error still leads


def test_fallback_peer_terminated_yields_to_a_cause() -> None:
    w = Wire().setup().lcp_up().mschapv2(success=False)
    w.ppp("server", LCP, cp(5, 3, b"Authentication failed"))
    t = run_frames(w.frames).tunnels[0]
    assert errors(t) == ["auth-failed"]
    assert "peer-terminated" not in codes(t)


def test_json_and_report_forms() -> None:
    w = Wire().setup().lcp_up().mschapv2(success=False, message=b"E=649 R=0 C=00 V=3 M=\x1b[31mno")
    t = run_frames(w.frames).tunnels[0]
    (first, *_) = diagnosis_json(t)
    assert first["code"] == "auth-account" and first["severity"] == "error" and first["windows_error"] == 649
    assert first["evidence"] == finding(t, "auth-account").evidence and isinstance(first["time"], float)
    lines = report_lines(t)
    assert lines[0] == "  diagnosis"
    assert any("auth-account (Windows error 649): No dial-in permission" in x for x in lines)
    assert any(x.strip().startswith("fix: ") for x in lines)
    assert not any("\x1b" in x for x in lines)  # wire text cannot drive the terminal
    assert report_lines(run_frames(Wire().handshake().frames).tunnels[0]) == []


def test_rule_codes_are_unique_kebab_case_and_documented() -> None:
    codes_ = [r.code for r in RULES]
    assert len(codes_) == len(set(codes_))
    docs = DOCS.read_text(encoding="utf-8")
    for r in RULES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", r.code)
        assert r.fn.__doc__, r.code
        m = re.search(rf"^### `{re.escape(r.code)}`\n(.*?)(?=^### |\Z)", docs, re.M | re.S)
        assert m is not None, f"{r.code} is not in docs/diagnosis.md"
        body = m.group(1)
        for part in ("**Meaning**", "**On the wire**", "**Windows error**", "**Fix**"):
            assert part in body, (r.code, part)
        if r.windows_error is not None:
            assert str(r.windows_error) in body, r.code
        assert f"**Severity**: {r.severity.value}" in body, r.code


def test_issue_table_codes_are_all_there() -> None:
    wanted = {"server-unreachable", "server-refused", "control-refused", "call-refused", "gre-blocked",
              "gre-one-way", "gre-icmp-unreachable", "lcp-failed", "auth-failed", "auth-account",
              "auth-method-mismatch", "encryption-mismatch", "ncp-failed", "echo-timeout", "peer-terminated",
              "call-id-collision"}
    by_code = {r.code: r for r in RULES}
    assert wanted <= set(by_code)
    assert all(by_code[c].severity is Severity.ERROR for c in wanted)


def test_evicted_tunnels_are_forgotten() -> None:
    tracker = Tracker(Limits(max_tunnels=50))
    d = Diagnoser().attach(tracker)
    for i in range(500):
        syn = struct.pack("!HHIIBBHHH", 10_000 + i, 1723, 1, 0, 0x50, 0x02, 65535, 0, 0)
        for k in (1, 2):  # sent again: a client waiting for an answer (a lone SYN is held, not yet a tunnel)
            tracker.feed(2 * i + k, T0 + i * 0.01 + k * 1e-3, "eth0", 1, ipv4("10.0.0.2", "198.51.100.2", 6, syn))
    assert d.tracked <= 50 < tracker.stats.tunnels_created


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["client", "server"]),
                          st.sampled_from([LCP, CHAP, PAP, 0x8021, 0x80FD, 0x8057]),
                          st.binary(min_size=0, max_size=40)), max_size=25),
       st.lists(st.binary(min_size=0, max_size=60), max_size=5))
def test_arbitrary_ppp_and_control_bytes_never_raise(ppp: list[tuple[str, int, bytes]], ctl: list[bytes]) -> None:
    w = Wire().setup()
    for sender, proto, body in ppp:
        w.ppp(sender, proto, body)
    for raw in ctl:
        w.ctl("server", raw)
    res = run_frames(w.frames, clock=True, until=w.now + 65)
    for t in res.tunnels:
        for f in findings(t):
            assert f.code in {r.code for r in RULES} and all(isinstance(n, int) for n in f.evidence)


def test_keepalives_of_a_lossy_tunnel_wait_for_the_tick(tmp_path: Path) -> None:
    """A standing warning (GRE loss) does not make every LCP echo cost a full evaluation; it still shows."""
    from pptptop import sources
    from pptptop.bench import generate
    from pptptop.diagnose.observe import routine
    from pptptop.record.writers import PcapWriter

    clean = tmp_path / "clean.pcap"
    generate(clean, packets=20_000, tunnels=4, seed=5)
    frames = list(sources.open_file(str(clean)))
    lossy = tmp_path / "lossy.pcap"
    with open(lossy, "wb") as fh:
        w = PcapWriter(fh, linktype=1)
        for k, f in enumerate(frames):
            keepalive = f.data[50:52] == b"\xc0\x21"  # LCP: the echoes all arrive, no miss to chase
            if k < 1000 or k % 19 or keepalive:  # every 19th data packet of the data phase lost: 5 %
                w.write(T0 + k * 0.005, f.iface, f.linktype, f.data)  # 100 s: several keepalive ticks
    tracker = Tracker()
    d = Diagnoser().attach(tracker)
    echo_evaluations = 0
    echoes = 0
    evaluate = d._evaluate
    current: list[bool] = [False]

    def spy(*args: object, **kw: object) -> None:
        nonlocal echo_evaluations
        echo_evaluations += current[0]
        evaluate(*args, **kw)  # type: ignore[arg-type]

    def on_event(ev: object) -> None:
        nonlocal echoes
        current[0] = routine(ev)  # type: ignore[arg-type]
        echoes += current[0]
        Diagnoser.on_event(d, ev)  # type: ignore[arg-type]
        current[0] = False

    d._evaluate = spy  # type: ignore[method-assign]
    tracker._subscribers[tracker._subscribers.index(d)] = on_event
    for n, f in enumerate(sources.open_file(str(lossy)), 1):
        tracker.feed(n, f.ts, f.iface, f.linktype, f.data)
    tracker.finish()
    assert echoes > 50
    assert echo_evaluations == 0
    assert len(tracker.tunnels) == 4 and all("gre-loss" in codes(t) for t in tracker.tunnels.values())


@pytest.mark.parametrize("name", CAPTURES)
def test_rules_run_on_their_events_find_what_running_them_all_finds(data_dir: Path, name: str) -> None:
    """Every capture: the same findings, at the same events, as evaluating every rule after every event."""
    res = run_capture(data_dir / name)  # run_capture compares with the exhaustive run itself
    assert res.tracker.stats.frames > 0


def test_a_rule_that_answered_quiet_sleeps_until_an_event_can_change_it(tmp_path: Path) -> None:
    """A reconnect storm: the timed rules about the control connection answer "no" for good once the
    connection is up, and are not run again at every later event of the tunnel, while a rule that
    cannot sleep (GRE loss reads counters) still runs at every evaluation; the findings and their
    moments equal those of the exhaustive evaluation (run_capture)."""
    from dataclasses import replace

    from pptptop import sources
    from pptptop.bench import generate_storm
    from pptptop.pipeline import Pipeline

    storm = tmp_path / "storm.pcap"
    generate_storm(storm, sessions=30, concurrent=10, data=4)
    run_capture(storm)
    calls: dict[str, int] = {}

    def counted(rule: object) -> object:
        fn = rule.fn  # type: ignore[attr-defined]

        def run(case: object) -> object:
            calls[rule.code] = calls.get(rule.code, 0) + 1  # type: ignore[attr-defined]
            return fn(case)

        return replace(rule, fn=run)  # type: ignore[type-var]

    tracker = Tracker()
    Diagnoser(rules=[counted(r) for r in RULES]).attach(tracker)  # type: ignore[misc]
    Pipeline(sources.open_file(str(storm)), tracker).run()
    assert len(tracker.tunnels) == 30
    evaluations = calls["gre-loss"]
    assert evaluations > 30 * 30  # dozens of events a session, each evaluated
    for code in ("server-unreachable", "control-refused", "call-refused", "gre-blocked", "lcp-failed", "gre-one-way"):
        assert calls.get(code, 0) * 4 < evaluations, code


@pytest.mark.parametrize("name, code", [("s3-gre-blocked-inside.pcap", "gre-blocked"),
                                        ("s2-mschapv2-wrong-password-inside.pcap", "auth-failed"),
                                        ("s4-mppe-refused-by-client-inside.pcap", "encryption-mismatch")])
def test_a_tunnel_ended_by_a_control_message_ends_with_its_verdict(data_dir: Path, name: str, code: str) -> None:
    """The message that ends a call (a Call-Clear-Request in each) is observed before the tunnel's ENDED event,
    so the live --json stream's "ended" record, written at that event, carries the cause it brought."""
    from pptptop import sources

    tracker = Tracker()
    Diagnoser().attach(tracker)
    at_end: dict[int, tuple[str, list[str]]] = {}

    def ended(ev: Any) -> None:
        if ev.kind.value == "ended":
            at_end[ev.tunnel.id] = (ev.tunnel.close.how, [f.code for f in ev.tunnel.findings])

    tracker.subscribe(ended)  # after the diagnoser, as the CLI's event stream is
    for n, f in enumerate(sources.open_file(str(data_dir / name)), 1):
        tracker.feed(n, f.ts, f.iface, f.linktype, f.data)
    tracker.finish()
    ((how, codes),) = at_end.values()
    assert how in ("call-clear", "lcp-terminate")  # the first step of a close the Call-Clear-Request ended
    assert code in codes
