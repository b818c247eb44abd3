"""Recording: pcap/pcapng writing, ``-w`` with rotation, per-tunnel export, ``--record-failed``.

Problems are logged to the ``pptptop.record`` logger. It gets a
``NullHandler`` so that, when nothing configured logging, Python does not
print them a second time on stderr (under the UI that would scribble over the
screen): the CLI prints them itself and the UI shows them in its header.
"""

from __future__ import annotations

import logging

logging.getLogger("pptptop.record").addHandler(logging.NullHandler())
