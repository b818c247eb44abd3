"""Link layers: where the IP header starts in a captured frame.

Handles Ethernet II (IEEE 802.3 clause 3.2.6 length/type) with any stack of
IEEE 802.1Q (0x8100), 802.1ad (0x88A8) and the old QinQ 0x9100 tags and
802.2 LLC/SNAP (RFC 1042), Linux cooked captures (SLL, SLL2), raw IP, and
the BSD loopback headers (NULL, LOOP). Pure functions that never raise: a
frame we cannot place gives ``(0, -1)``.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final, NamedTuple

from pptptop.wire import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)


class EtherType(IntEnum):
    """IEEE 802 EtherTypes we look at (IEEE Registration Authority list)."""

    IPv4 = 0x0800
    ARP = 0x0806
    VLAN = 0x8100  # IEEE 802.1Q C-tag
    IPv6 = 0x86DD
    PPPoE_Discovery = 0x8863
    PPPoE_Session = 0x8864
    QinQ = 0x88A8  # IEEE 802.1ad S-tag
    QinQ_old = 0x9100  # pre-802.1ad double tagging


#: Tag types that are followed by a 2-byte TCI and another EtherType.
VLAN_TPIDS: Final = frozenset((EtherType.VLAN, EtherType.QinQ, EtherType.QinQ_old))

ETH_HEADER_LEN: Final = 14
VLAN_TAG_LEN: Final = 4
SLL_HEADER_LEN: Final = 16
SLL2_HEADER_LEN: Final = 20
NULL_HEADER_LEN: Final = 4

# BSD address families seen in NULL/LOOP headers (tcpdump's print-null.c).
BSD_AF_INET: Final = 2
BSD_AF_INET6: Final = frozenset((24, 28, 30))  # NetBSD/OpenBSD, FreeBSD, Darwin

_H = struct.Struct(">H").unpack_from
_ETHERTYPE_NAMES: Final = {t.value: t.name.replace("_", " ") for t in EtherType}

_SLL_PACKET_TYPES: Final = {
    0: "Unicast to us",
    1: "Broadcast",
    2: "Multicast",
    3: "Unicast to another host",
    4: "Sent by us",
}


class LinkField(NamedTuple):
    """One field of the link-layer header, for the drill-down view and hex highlight."""

    name: str
    value: str
    offset: int
    length: int


def _ip_version(data: bytes, off: int) -> tuple[int, int]:
    if off >= len(data):
        return 0, -1
    v = data[off] >> 4
    if v == 4:
        return EtherType.IPv4, off
    if v == 6:
        return EtherType.IPv6, off
    return 0, -1


def _after_ethertype(data: bytes, ethertype: int, off: int) -> tuple[int, int]:
    """Walk VLAN tags from an EtherType at ``off - 2``; returns the IP EtherType and header offset."""
    n = len(data)
    while ethertype in VLAN_TPIDS:
        if off + VLAN_TAG_LEN > n:
            return 0, -1
        ethertype = _H(data, off + 2)[0]
        off += VLAN_TAG_LEN
    if ethertype < 0x0600 and off + 8 <= n and data[off:off + 6] == b"\xaa\xaa\x03\x00\x00\x00":
        ethertype = _H(data, off + 6)[0]  # RFC 1042 SNAP with OUI 0: an EtherType follows
        off += 8
    if (ethertype == 0x0800 or ethertype == 0x86DD) and off < n:
        return ethertype, off
    return 0, -1


def network_offset(linktype: int, data: bytes) -> tuple[int, int]:
    """``(ethertype, offset of the IP header)``, or ``(0, -1)`` when the frame carries no IP.

    The ethertype is 0x0800 or 0x86DD whatever the link layer, so raw IP and
    BSD loopback frames report the same values as Ethernet.
    """
    if linktype == 1:  # LINKTYPE_ETHERNET, the hot case first
        if len(data) > 14:
            t = (data[12] << 8) | data[13]
            if t == 0x0800 or t == 0x86DD:
                return t, 14
            return _after_ethertype(data, t, 14)
        return 0, -1
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        et, off = _ip_version(data, 0)
        if (linktype == LINKTYPE_IPV4 and et != EtherType.IPv4) or (
                linktype == LINKTYPE_IPV6 and et != EtherType.IPv6):
            return 0, -1
        return et, off
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < SLL_HEADER_LEN:
            return 0, -1
        return _after_ethertype(data, _H(data, 14)[0], SLL_HEADER_LEN)
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < SLL2_HEADER_LEN:
            return 0, -1
        return _after_ethertype(data, _H(data, 0)[0], SLL2_HEADER_LEN)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        af = _null_family(linktype, data)
        if af == BSD_AF_INET:
            return _only(data, EtherType.IPv4)
        if af in BSD_AF_INET6:
            return _only(data, EtherType.IPv6)
        return 0, -1
    return 0, -1


def _only(data: bytes, ethertype: int) -> tuple[int, int]:
    return (ethertype, NULL_HEADER_LEN) if len(data) > NULL_HEADER_LEN else (0, -1)


def _null_family(linktype: int, data: bytes) -> int:
    """The address family of a NULL (host byte order) or LOOP (network byte order) header."""
    if len(data) < NULL_HEADER_LEN:
        return -1
    if linktype == LINKTYPE_LOOP:
        return int.from_bytes(data[:4], "big")
    # NULL is in the capturing host's order: families are small, so the zero bytes tell.
    if data[0] == 0 and data[1] == 0:
        return int.from_bytes(data[:4], "big")
    return int.from_bytes(data[:4], "little")


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _type_str(t: int) -> str:
    name = _ETHERTYPE_NAMES.get(t)
    return f"{name} (0x{t:04x})" if name else f"0x{t:04x}"


def _vlan_fields(data: bytes, ethertype: int, off: int, out: list[LinkField]) -> None:
    """IEEE 802.1Q tag fields: PCP (3 bits), DEI (1 bit), VID (12 bits), then the inner type."""
    n = len(data)
    while ethertype in VLAN_TPIDS and off + VLAN_TAG_LEN <= n:
        tci = _H(data, off)[0]
        inner = _H(data, off + 2)[0]
        label = "802.1ad" if ethertype != EtherType.VLAN else "802.1Q"
        out.append(LinkField(f"{label} priority", str(tci >> 13), off, 2))
        out.append(LinkField(f"{label} DEI", str((tci >> 12) & 1), off, 2))
        out.append(LinkField(f"{label} VLAN ID", str(tci & 0x0FFF), off, 2))
        out.append(LinkField(f"{label} type", _type_str(inner), off + 2, 2))
        ethertype = inner
        off += VLAN_TAG_LEN


def link_fields(linktype: int, data: bytes) -> list[LinkField]:
    """The link-layer header as ``(name, value, offset, length)`` fields; as many as fit."""
    out: list[LinkField] = []
    n = len(data)
    if linktype == LINKTYPE_ETHERNET:
        if n >= 6:
            out.append(LinkField("Destination", _mac(data[0:6]), 0, 6))
        if n >= 12:
            out.append(LinkField("Source", _mac(data[6:12]), 6, 6))
        if n >= 14:
            t = _H(data, 12)[0]
            if t < 0x0600:
                out.append(LinkField("Length", str(t), 12, 2))
            else:
                out.append(LinkField("Type", _type_str(t), 12, 2))
                _vlan_fields(data, t, 14, out)
    elif linktype == LINKTYPE_LINUX_SLL:
        if n >= 2:
            pt = _H(data, 0)[0]
            out.append(LinkField("Packet type", _SLL_PACKET_TYPES.get(pt, str(pt)) + f" ({pt})", 0, 2))
        if n >= 4:
            out.append(LinkField("Link-layer address type", str(_H(data, 2)[0]), 2, 2))
        if n >= 6:
            alen = _H(data, 4)[0]
            out.append(LinkField("Link-layer address length", str(alen), 4, 2))
            if n >= 14:
                out.append(LinkField("Source", _mac(data[6:6 + min(alen, 8)]), 6, 8))
        if n >= 16:
            t = _H(data, 14)[0]
            out.append(LinkField("Protocol", _type_str(t), 14, 2))
            _vlan_fields(data, t, 16, out)
    elif linktype == LINKTYPE_LINUX_SLL2:
        if n >= 2:
            t = _H(data, 0)[0]
            out.append(LinkField("Protocol", _type_str(t), 0, 2))
        if n >= 8:
            out.append(LinkField("Interface index", str(int.from_bytes(data[4:8], "big")), 4, 4))
        if n >= 10:
            out.append(LinkField("Link-layer address type", str(_H(data, 8)[0]), 8, 2))
        if n >= 11:
            pt = data[10]
            out.append(LinkField("Packet type", _SLL_PACKET_TYPES.get(pt, str(pt)) + f" ({pt})", 10, 1))
        if n >= 12:
            alen = data[11]
            out.append(LinkField("Link-layer address length", str(alen), 11, 1))
            if n >= 20:
                out.append(LinkField("Source", _mac(data[12:12 + min(alen, 8)]), 12, 8))
        if n >= 20:
            _vlan_fields(data, _H(data, 0)[0], 20, out)
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        af = _null_family(linktype, data)
        if af >= 0:
            name = "IPv4" if af == BSD_AF_INET else "IPv6" if af in BSD_AF_INET6 else "unknown"
            out.append(LinkField("Family", f"{name} ({af})", 0, 4))
    return out
