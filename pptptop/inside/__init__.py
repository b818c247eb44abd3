"""Inside the tunnel, from the user's own secrets: credential checks, MPPE decryption, inner traffic.

A stage between ``track`` and ``diagnose``: it subscribes to the tracker's
events (the CHAP/PAP exchange, CCP), checks the captured response against a
secret the user gave (``--secrets``, ``--password``, ``--nt-hash``), derives
the MPPE keys (RFC 3079) and, for those tunnels only, takes their data packets
through the tunnel's data tap to decrypt them (RFC 3078) and follow the inner
IP traffic. What it finds is kept in ``tunnel.inside``
(:class:`~pptptop.inside.state.InsideTunnel`) for the diagnosis rules, the
exporters and the recorder of decrypted packets. See docs/decryption.md.
"""
