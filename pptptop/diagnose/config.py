"""Timeouts and thresholds of the diagnosis rules, with the protocols' defaults.

Every timeout is measured in capture time (the tracker's TICK events), so a
replayed capture is diagnosed exactly as it was live.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DiagnosisConfig:
    """Knobs of the rules; ``--lcp-restart`` etc. on the command line.

    - ``lcp_restart``, ``lcp_max_configure``, ``lcp_max_failure``: RFC 1661 §4.6
      Restart timer (3 s), Max-Configure (10) and Max-Failure (5). A PPP
      negotiation that has not converged after ``lcp_restart * lcp_max_configure``
      seconds has given up (pppd: "timeout sending Config-Requests").
    - ``syn_timeout``: how long a client keeps trying TCP 1723 (Windows: SYN
      and two retransmissions, 3 + 6 + 12 s = 21 s).
    - ``control_timeout``: an unanswered Start-Control-Connection-Request or
      Outgoing-Call-Request (RFC 2637 gives no number; pptp-linux and Windows
      wait about a minute).
    - ``pptp_echo_timeout``: RFC 2637 §2.5 (60 s); one unanswered PPTP
      Echo-Request for that long is a dead control connection.
    - ``lcp_echo_failures``: consecutive unanswered LCP Echo-Requests that make
      a side declare the link dead (pppd ``lcp-echo-failure``; pptpd's sample
      options and the lab use 3). ``lcp_echo_timeout``: an LCP Echo-Request
      not answered for this long is missed even if no later one follows.
    - ``echo_grace``: an Echo-Request still in flight when the tunnel ends
      counts as missed only if it was sent at least this long before the end.
    - ``gre_silence``: mid-session, GRE flowing one way while the other side
      has sent nothing for this long is ``gre-one-way``.
    - ``gre_loss_pct``, ``gre_reorder_pct``, ``gre_min_packets``: health
      thresholds per direction (RFC 2637 §4.3 sequence numbers).
    - ``rtt_spike_factor``, ``rtt_spike_min_ms``: an echo round trip this many
      times the average of the earlier ones, and at least this much above it.
    - ``min_mru``: an MRU below this (Windows' default is 1400) fragments or
      black-holes full-size packets.
    - ``ccp_reset_threshold``: CCP Reset-Requests on stateful MPPE (RFC 3078 §3.2).
    """

    lcp_restart: float = 3.0
    lcp_max_configure: int = 10
    lcp_max_failure: int = 5
    syn_timeout: float = 21.0
    control_timeout: float = 60.0
    pptp_echo_timeout: float = 60.0
    lcp_echo_failures: int = 3
    lcp_echo_timeout: float = 10.0
    echo_grace: float = 1.0
    gre_silence: float = 10.0
    gre_loss_pct: float = 1.0
    gre_reorder_pct: float = 1.0
    gre_min_packets: int = 50
    rtt_spike_factor: float = 5.0
    rtt_spike_min_ms: float = 200.0
    min_mru: int = 1400
    ccp_reset_threshold: int = 3

    @property
    def negotiation_timeout(self) -> float:
        """How long an LCP/NCP negotiation may go unanswered before the sender gives up."""
        return self.lcp_restart * self.lcp_max_configure

    @property
    def horizon(self) -> float:
        """A tunnel silent for longer than this cannot meet a new timeout: ticks skip it."""
        return max(self.syn_timeout, self.control_timeout, self.pptp_echo_timeout, self.lcp_echo_timeout,
                   self.gre_silence, self.negotiation_timeout) + 2.0
