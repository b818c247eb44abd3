"""Every diagnosis rule, registered in :data:`RULES` when this package is imported.

One module per part of the protocol stack; one function per cause. The order
here is the order of findings that appear at the same instant.
"""

from __future__ import annotations

from pptptop.diagnose.rules import benign, control, credentials, gre, health, ppp, security, session
from pptptop.diagnose.rules.base import RULES, Case, Collision, Hit, Quiet, Rule, quiet, rule

__all__ = ["RULES", "Case", "Collision", "Hit", "Quiet", "Rule", "benign", "control", "credentials", "gre", "health",
           "ppp", "quiet", "rule", "security", "session"]
