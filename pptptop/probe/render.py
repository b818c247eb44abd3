"""The probe's output: ``--report`` text (also printed step by step as the probe goes) and ``--json``.

Every wire string in a step was escaped by the client (``diagnose.text.printable``)
before it got here; the password is never part of a step.
"""

from __future__ import annotations

import statistics

from pptptop.diagnose.text import printable
from pptptop.probe.client import STEPS, ProbeResult, Status, Step

MARK = {Status.OK: " ok ", Status.FAILED: "FAIL", Status.SKIPPED: "skip"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _value(v: object) -> str:
    if isinstance(v, dict):
        return "; ".join(f"{k} ({w})" for k, w in v.items()) if v else "none"
    if isinstance(v, list):
        return ", ".join(str(x) for x in v) if v else "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return "-" if v is None else str(v)


def step_lines(step: Step) -> list[str]:
    """One step: a line with its outcome and time, then its details, one per line."""
    code = f"  [{step.code}]" if step.code else ""
    out = [f"  [{MARK[step.status]}] {step.name:<9} {_duration(step.seconds):>10}  {step.summary}{code}"]
    out += [f"{'':20}{k}: {_value(v)}" for k, v in step.details.items()]
    return out


def header(result: ProbeResult) -> str:
    return f"pptptop probe of {printable(result.host, 128)} ({result.address})"


def verdict(result: ProbeResult) -> str:
    bad = result.failed
    if bad is None:
        return "result: every step passed"
    return f"result: failed at step {bad.name} ({bad.code})"


def report(results: list[ProbeResult], capture: dict[str, object] | None = None,
           passive: list[str] | None = None) -> str:
    """``--report``: each run's steps, then per-step timing when the probe was repeated; with ``-w``, the
    capture (``capture``, as under ``--json``) and the passive engine's report of it (``passive``)."""
    lines: list[str] = []
    for i, r in enumerate(results, 1):
        lines.append(header(r) + (f", run {i} of {len(results)}" if len(results) > 1 else ""))
        for s in r.steps:
            lines += step_lines(s)
        lines.append(verdict(r))
    if len(results) > 1:
        lines += timing_lines(results)
    if capture is not None:
        lines += capture_lines(capture, passive or [])
    return "\n".join(lines) + "\n"


def capture_lines(capture: dict[str, object], passive: list[str]) -> list[str]:
    """The ``-w`` capture beside the probe: the file, its frames, the error codes the passive engine found
    (``capture.findings`` of ``--json``), then its report of each tunnel with the diagnosis."""
    findings = capture.get("findings") or []
    assert isinstance(findings, list)
    lines = ["", f"capture of the probe's packets: {printable(str(capture.get('file')), 200)}, "
                 f"{capture.get('frames')} frames, {capture.get('kernel_drops')} dropped by the kernel, "
                 f"{capture.get('tunnels')} tunnel(s)",
             "passive findings: " + (", ".join(printable(str(f), 64) for f in findings) or "none")]
    messages = capture.get("messages") or []
    assert isinstance(messages, list)
    lines += [f"  {printable(str(m), 200)}" for m in messages]
    if passive:
        lines += ["", *passive]
    return lines


def timing_lines(results: list[ProbeResult]) -> list[str]:
    lines = ["per-step timing over the runs (passed steps only):"]
    for name, st in timing(results).items():
        if st["ok"]:
            lines.append(f"  {name:<9} ok {st['ok']}/{st['runs']}  min {_duration(st['min'])}  "
                         f"mean {_duration(st['mean'])}  max {_duration(st['max'])}")
        else:
            lines.append(f"  {name:<9} ok 0/{st['runs']}")
    return lines


def timing(results: list[ProbeResult]) -> dict[str, dict[str, float | int | None]]:
    """Per step over every run: how often it ran and passed, and min/mean/max seconds when it passed."""
    out: dict[str, dict[str, float | int | None]] = {}
    for name in STEPS:
        ran = [s for r in results for s in r.steps if s.name == name and s.status is not Status.SKIPPED]
        if not ran:
            continue
        ok = [s.seconds for s in ran if s.status is Status.OK and s.seconds is not None]
        out[name] = {"runs": len(ran), "ok": len(ok), "failed": sum(s.status is Status.FAILED for s in ran),
                     "min": min(ok) if ok else None, "mean": statistics.fmean(ok) if ok else None,
                     "max": max(ok) if ok else None}
    return out


def document(results: list[ProbeResult]) -> dict[str, object]:
    """``--json``: one document. ``runs`` holds each run's steps; ``timing`` the per-step statistics."""
    last = results[-1]
    return {"probe": {"host": printable(last.host, 128), "address": last.address, "runs": len(results),
                      "ok": all(r.failed is None for r in results)},
            "runs": [r.as_dict() for r in results], "timing": timing(results)}
