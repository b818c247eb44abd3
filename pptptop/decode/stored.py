"""A stored frame decoded again to what the tracker took from it (issue 23: memory per tunnel).

A tunnel keeps each negotiation packet as its frame alone; the PPP frame in it, or the PPTP control message
once the tunnel has settled, is decoded again when the packets are shown or exported, as the tracker
decoded it when it came.
"""

from __future__ import annotations

import struct
from typing import Any

from pptptop.decode.errors import DecodeError
from pptptop.decode.gre import decode_gre
from pptptop.decode.ip import decode_ip
from pptptop.decode.link import network_offset
from pptptop.decode.ppp import PppFrame, decode_ppp
from pptptop.decode.pptp import MAGIC_COOKIE, decode_control, peek_header

#: IP protocol numbers of an IP header inside IP, and the ethertype of what they carry (as the tracker)
_INNER_IP = {4: 0x0800, 41: 0x86DD}
_MAX_IP_NESTING = 4
_IPPROTO_GRE = 47
#: :func:`control_at`'s answer for a control message that is not whole in its frame
NOT_IN_FRAME = -1
_COOKIE = struct.pack("!I", MAGIC_COOKIE)


def ppp_of(linktype: int, data: bytes, chap_algorithm: int | None) -> PppFrame | None:
    """The PPP frame in a captured GRE frame, decoded as the tracker decoded it; None if there is none."""
    try:
        ethertype, off = network_offset(linktype, data)
        if off < 0:
            return None
        ip = decode_ip(data, off, ethertype)
        for _ in range(_MAX_IP_NESTING):
            if ip.fragment or ip.protocol not in _INNER_IP:
                break
            ip = decode_ip(data, ip.payload_offset, _INNER_IP[ip.protocol])
        if ip.fragment or ip.protocol != _IPPROTO_GRE:
            return None
        g = decode_gre(data, ip.payload_offset, ip.payload_end)
        return decode_ppp(data[g.payload_offset:g.payload_end], chap_algorithm=chap_algorithm)
    except DecodeError:
        return None


def control_at(frame: bytes, msg: Any) -> int:
    """Where in ``frame`` the control message ``msg`` starts, decoded as it was (its magic cookie found and
    the message there decoded equal to it); ``NOT_IN_FRAME`` if it is not whole in the frame (it was reassembled
    from several segments)."""
    i = frame.find(_COOKIE, 4)
    while i >= 0:
        off = i - 4
        head = peek_header(frame, off)
        if head is not None and off + head[0] <= len(frame):
            try:
                if decode_control(frame[off:off + head[0]]) == msg:
                    return off
            except DecodeError:
                pass
        i = frame.find(_COOKIE, i + 1)
    return NOT_IN_FRAME


def control_from(frame: bytes, off: int) -> Any:
    """The control message starting at ``off`` in ``frame`` (where :func:`control_at` found it)."""
    head = peek_header(frame, off)
    assert head is not None
    return decode_control(frame[off:off + head[0]])
