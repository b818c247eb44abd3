"""``--json`` and ``--report`` for what :mod:`pptptop.inside` sees in a tunnel (docs/decryption.md).

The ``inner`` key of each tunnel in ``--json`` and the ``inside`` lines of
``--report``: credential checks, decryption state, inner flows, DNS names and
problems. Wire strings (user and DNS names) are escaped here for the report;
no secret, hash or key is ever in what :mod:`pptptop.inside` hands over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pptptop.export.text import printable, quoted, size
from pptptop.inside.inner import PROTO_NAMES
from pptptop.inside.state import inside_of
from pptptop.track.model import Tunnel

if TYPE_CHECKING:
    from pptptop.inside.inspector import Inspector

__all__ = ["json_extensions", "report_extensions"]

MAX_LINES = 6


def json_extensions(inspector: Inspector | None) -> dict[str, Callable[[Tunnel], Any]]:
    """``{"inner": ...}`` for :func:`pptptop.export.jsonout.document` when secrets were given, else nothing."""
    if inspector is None:
        return {}
    return {"inner": inspector.inner_json}


def report_extensions(inspector: Inspector | None) -> list[Callable[[Tunnel], list[str]]]:
    """The ``inside`` lines of ``--report`` when secrets were given."""
    if inspector is None:
        return []

    def lines(t: Tunnel) -> list[str]:
        return report_lines(t, inspector.now)

    return [lines]


def report_lines(t: Tunnel, now: float) -> list[str]:
    inside = inside_of(t)
    if inside is None:
        return []
    out = [f"  inside   user {quoted(inside.user, 64)}"
           + (f" (secret from {printable(inside.secret_from, 200)})" if inside.secret_from else "")]
    for c in inside.checks[-3:]:
        text = f"{c.method} response (frame {c.response_frame}): "
        text += {"match": "follows from the secret", "mismatch": "does NOT follow from the secret",
                 "unverifiable": f"not checked ({c.why})"}[c.response.value]
        if c.server is not None:
            text += f"; server {c.server}" + (f" E={c.error_code}" if c.error_code is not None else "") \
                + f" (frame {c.server_frame})"
        if c.authenticator is not None:
            text += "; S= authenticator " + ("valid" if c.authenticator.value == "match" else "INVALID")
        out.append(f"    {text}")
    mode = ""
    if inside.bits is not None:
        mode = f" MPPE-{inside.bits} {'stateless' if inside.stateless else 'stateful'}:"
    dropped = ", ".join(f"{n} {why}" for why, n in sorted(inside.dropped.items())) or "none"
    out.append(f"    decryption {inside.state.value}{mode} {inside.decrypted} inner packets "
               f"({size(inside.decrypted_bytes)}); not decrypted: {dropped}"
               + (f"; CCP Reset-Request {inside.reset_requests}" if inside.reset_requests else ""))
    if inside.why:
        out.append(f"    ({printable(inside.why, 300)})")
    inner = inside.inner
    flows = sorted(inner.flows.items(), key=lambda x: -x[1].bytes)
    for (src, dst, proto, sp, dp), f in flows[:MAX_LINES]:
        name = PROTO_NAMES.get(proto, str(proto))
        ports = f" {sp} → {dp}" if sp is not None else ""
        out.append(f"    flow {src} → {dst} {name}{ports}: {f.packets} packets {size(f.bytes)}")
    if len(flows) > MAX_LINES:
        out.append(f"    … {len(flows) - MAX_LINES} more flows")
    for e in list(inner.names.values())[:MAX_LINES]:
        answers = ", ".join(e.answers[:3]) or "-"
        out.append(f"    dns {quoted(e.name, 120)}: {e.queries} queries → {answers}")
    for p in inner.problems(now)[:MAX_LINES]:
        out.append(f"    ! {p.kind}: {printable(p.detail, 300)}" + (f" (×{p.count})" if p.count > 1 else ""))
    return out
