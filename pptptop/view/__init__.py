"""View models: what the screens show, computed from the tracker without Textual.

Snapshots of tunnels (:mod:`.snapshot`), the ``/`` filter language
(:mod:`.filtering`), the ladder's rows (:mod:`.ladder_model`), the event feed
(:mod:`.eventfeed`) and tshark's dissection (:mod:`.tshark`). Nothing here
imports Textual, so the CLI (``--export-tunnel FILTER``) and tests use them
headless; ``pptptop.ui`` draws them.
"""
