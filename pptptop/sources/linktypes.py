"""Link-layer header types, as written in pcap and pcapng files.

The numbers are the registry at https://www.tcpdump.org/linktypes.html
(``LINKTYPE_*``), which pcap file headers and pcapng Interface Description
Blocks use. They are not always the in-kernel ``DLT_*`` values: ``LINKTYPE_RAW``
is 101 in files but ``DLT_RAW`` is 12 on Linux, so :func:`to_dlt` maps the
one case libpcap's compiler needs.
"""

from __future__ import annotations

from typing import Final

LINKTYPE_NULL: Final = 0  # BSD loopback: 4-byte address family in host byte order
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101  # raw IPv4 or IPv6, told apart by the version nibble
LINKTYPE_LOOP: Final = 108  # OpenBSD loopback: address family in network byte order
LINKTYPE_LINUX_SLL: Final = 113  # Linux "cooked" capture, 16-byte header
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276  # Linux "cooked" capture v2, 20-byte header

#: Short names, as tshark's ``frame.encap_type``-style labels and capinfos show them.
LINKTYPE_NAMES: Final[dict[int, str]] = {
    LINKTYPE_NULL: "NULL (BSD loopback)",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW: "Raw IP",
    LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
    LINKTYPE_IPV4: "Raw IPv4",
    LINKTYPE_IPV6: "Raw IPv6",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2 (SLL2)",
}

#: ``DLT_RAW`` on Linux, which libpcap's filter compiler expects for raw IP.
DLT_RAW_LINUX: Final = 12


def linktype_name(linktype: int) -> str:
    """A human name for a link type, or ``"linktype N"`` for one we do not decode."""
    return LINKTYPE_NAMES.get(linktype, f"linktype {linktype}")


def to_dlt(linktype: int) -> int:
    """The ``DLT_*`` value libpcap's ``pcap_open_dead`` wants for a ``LINKTYPE_*``."""
    if linktype == LINKTYPE_RAW:
        return DLT_RAW_LINUX
    return linktype
