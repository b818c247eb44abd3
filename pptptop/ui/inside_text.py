"""The tunnel screen's Inside tab: what flows inside a decrypted tunnel, and why it does not work.

Pure Rich (no Textual), from a :class:`~pptptop.view.inside.InsideView`
copied under the pipeline lock. Every string that came off the wire (user,
DNS names and answers, problem details that quote them, where the secret came
from) goes through :func:`~pptptop.ui.format.wire`. No secret is in the view.
"""

from __future__ import annotations

from rich.text import Text

from pptptop.export.text import size
from pptptop.ui.format import bits_rate, wire
from pptptop.ui.tunnel_text import StyleOf
from pptptop.view.inside import InsideView, why_empty

__all__ = ["inside"]

SHOWN = 20  # rows per table


def _where(addr: str, port: int | None) -> str:
    if port is None:
        return addr
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _section(out: Text, title: str, st: StyleOf) -> None:
    if out.plain:
        out.append("\n\n")
    out.append(title + "\n", style=st("tunnel-text--heading"))


def header(v: InsideView, st: StyleOf) -> Text:
    """User, where the secret came from, and the decryption state with its counts."""
    out = Text()
    if v.user is not None:
        out.append(f"user {wire(v.user, 64)}")
    if v.secret_from:
        out.append(f"  secret from {wire(v.secret_from, 200)}", style=st("tunnel-text--dim"))
    if out.plain:
        out.append("\n")
    mode = ""
    if v.bits is not None:
        mode = f"  MPPE-{v.bits} {'stateless' if v.stateless else 'stateful'}"
    out.append(f"decryption {v.state}{mode}: {v.decrypted} inner packets ({size(v.decrypted_bytes)})")
    lost = ", ".join(f"{n} {why}" for why, n in v.dropped)
    if lost:
        out.append(f"; not decrypted: {lost}", style=st("tunnel-text--bad"))
    if v.malformed:
        out.append(f"; {v.malformed} malformed", style=st("tunnel-text--bad"))
    return out


def inside(v: InsideView, st: StyleOf) -> Text:
    """The whole Inside tab. When nothing is read inside, one sentence says why (never the secret)."""
    out = Text()
    why = why_empty(v)
    if why:
        out.append(wire(why, 400), style=st("tunnel-text--dim"))
        return out
    _section(out, "Decryption", st)
    out.append_text(header(v, st))
    _section(out, "Problems inside", st)
    if not v.problems:
        out.append("  none seen", style=st("tunnel-text--dim"))
    for p in v.problems[:SHOWN]:
        out.append(f"  ✗ {wire(p.kind, 40)}", style=st("tunnel-text--finding-error"))
        out.append(f"  {wire(p.detail, 400)}" + (f" (×{p.count})" if p.count > 1 else "") + "\n")
    out.rstrip()
    _section(out, f"Flows ({v.flows_total}" + (f", {v.flows_not_kept} packets of flows not kept" if v.flows_not_kept
                                               else "") + ")", st)
    out.append(f"  {'source':<24} {'destination':<24} {'proto':<6} {'packets':>8} {'bytes':>9} {'rate':>7}\n",
               style="bold")
    for f in v.flows[:SHOWN]:
        rate = bits_rate(f.rate_bps / 8) if f.rate_bps is not None else "-"
        out.append(f"  {_where(f.src, f.src_port):<24} {_where(f.dst, f.dst_port):<24} {f.protocol:<6} "
                   f"{f.packets:>8} {size(f.bytes):>9} {rate:>7}\n")
    if len(v.flows) > SHOWN:
        out.append(f"  … {len(v.flows) - SHOWN} more\n", style=st("tunnel-text--dim"))
    out.rstrip()
    _section(out, "Top talkers", st)
    for ip, n in v.talkers:
        out.append(f"  {ip:<40} {size(n):>9} sent\n")
    out.rstrip()
    _section(out, "DNS", st)
    if not v.dns:
        out.append("  no DNS query seen", style=st("tunnel-text--dim"))
    for e in v.dns[:SHOWN]:
        out.append(f"  {e.type:<5} '{wire(e.name, 120)}'  {e.queries} asked, {e.responses} answered")
        if e.rcode not in (None, "NOERROR"):
            out.append(f"  {e.rcode}", style=st("tunnel-text--bad"))
        if e.answers:
            out.append("  → " + ", ".join(wire(a, 80) for a in e.answers[:4]))
        out.append("\n")
    out.rstrip()
    return out
