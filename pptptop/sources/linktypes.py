"""Link-layer header types, as libpcap's filter compiler wants them.

The link types themselves (:mod:`pptptop.wire`) are the registry at https://www.tcpdump.org/linktypes.html
(``LINKTYPE_*``), which pcap file headers and pcapng Interface Description
Blocks use. They are not always the in-kernel ``DLT_*`` values: ``LINKTYPE_RAW``
is 101 in files but ``DLT_RAW`` is 12 on Linux, so :func:`to_dlt` maps the
one case libpcap's compiler needs.
"""

from __future__ import annotations

from typing import Final

from pptptop.wire import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NAMES,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    linktype_name,
)

#: the link types live on the ground floor (pptptop.wire); named here for the modules that import them
#: from sources
__all__ = [
    "DLT_RAW_LINUX",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NAMES",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "linktype_name",
    "to_dlt",
]

#: ``DLT_RAW`` on Linux, which libpcap's filter compiler expects for raw IP.
DLT_RAW_LINUX: Final = 12


def to_dlt(linktype: int) -> int:
    """The ``DLT_*`` value libpcap's ``pcap_open_dead`` wants for a ``LINKTYPE_*``."""
    if linktype == LINKTYPE_RAW:
        return DLT_RAW_LINUX
    return linktype
