"""Both legs of a NATed PPTP session: pairing, the translation table, NAT problems seen on the wire.

A capture on a NAT gateway (``-i lan0 -i wan0``, a ``-both.pcapng``, or
``-r inside.pcap -r outside.pcap``) shows every PPTP session twice: once
before the translation with the client's private address and its own Call ID,
once after it with the public address and, through a PPTP-aware NAT such as
Linux's ``nf_nat_pptp``, a rewritten PNS Call ID (RFC 2637 §1.3 and §4.1: the
GRE Key carries the *peer's* Call ID, so a NAT that multiplexes several
clients towards one server has to treat the client's Call ID like a port).

:class:`NatCorrelator` subscribes to the tracker's events and pairs the two
legs on evidence that survives NAT, never on timing alone (timing is only a
window): TCP sequence numbers of the control messages (MASQUERADE keeps them),
the control messages themselves in the same order with every field the NAT
does not rewrite, identical PPP negotiation frames inside GRE, LCP Magic
Numbers (RFC 1661 §6.4), MS-CHAP challenges (RFC 2759 §4), the Call Serial
Number (RFC 2637 §2.7) and host/vendor strings (§2.1) — the last ones only as
consistency checks, since every pptp-linux client sends the same.

Results go into ``tunnel.nat`` on both legs and NAT problems into
``tunnel.nat_problems`` (types in track/notes.py; docs/nat.md for the ``--json`` shapes).

The package: :mod:`.evidence` (what survives NAT, and the score), :mod:`.pairing` (candidate
pairs and the join), :mod:`.table` (roles and the translation table written to the notes),
:mod:`.problems` (NAT problems), :mod:`.correlator` (the subscriber that drives them) and
:mod:`.output` (the ``--json``/``--report`` extensions and the table the UI shows).
"""

from pptptop.track.nat.correlator import NatCorrelator
from pptptop.track.nat.evidence import STRONG_EVIDENCE, control_signature, ppp_signature
from pptptop.track.nat.legs import Evidence, NatLimits, Role
from pptptop.track.nat.output import KernelView, attach, json_extensions, nat_table, report_lines
from pptptop.track.nat.problems import ProblemCallback
from pptptop.track.nat.table import INSIDE_NETS
from pptptop.track.notes import NatProblem, NatProblemCode

__all__ = [
    "INSIDE_NETS", "STRONG_EVIDENCE", "Evidence", "KernelView", "NatCorrelator",
    "NatLimits", "NatProblem", "NatProblemCode", "ProblemCallback", "Role", "attach", "control_signature",
    "json_extensions", "nat_table", "ppp_signature", "report_lines",
]
