"""Which frames of a batch are enhanced GRE over Ethernet/IPv4, and what their headers say, all at once.

The tracker's data path (:mod:`pptptop.track.fastpath`) counts GRE data
packets a batch at a time. What it needs from the bytes alone — which frames
are Ethernet/IPv4/enhanced GRE (RFC 2637 §4.1), their GRE keys grouped with
one stable sort, whether each carries a sequence number or an
acknowledgment, its payload length and whether the PPP inside is data that is only
counted — depends on no tracker state, so it is decoded here, as a pure
function of the batch, with numpy. Each frame's first 64 octets are gathered
once into a row; every field is then read from the rows, which stay in the
cache, rather than gathered from the whole batch buffer field by field.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from pptptop.decode.gre import GRE_PPTP_MASK, GRE_PPTP_VALUE
from pptptop.decode.ppp import COUNTED_PROTOCOLS
from pptptop.wire import LINKTYPE_ETHERNET, Batch

#: by octet: the one-octet (PFC) PPP protocol numbers of data that is only counted, which are also the low
#: octets of the two-octet ones (0x00XX)
DATA_1 = np.zeros(256, dtype=bool)
DATA_1[sorted(COUNTED_PROTOCOLS)] = True
LE64 = np.dtype("<u8")
U64 = np.uint64
#: the fields tested, as masks and values of little-endian 64-bit words read at frame offsets 12, 20, 34:
#: EtherType 0x0800 and IPv4 version/IHL 0x45 (octets 12-14), no fragment (20-21) and protocol 47 (23),
#: and, byte-swapped, GRE flags/version (34-35, RFC 2637 §4.1) and protocol type 0x880B (36-37)
IP_MASK, IP_VALUE = U64(0xFFFFFF), U64(0x450008)
FRAG_MASK, FRAG_VALUE = U64(0xFF00FF3F), U64(47 << 24)
GRE_MASK = U64((GRE_PPTP_MASK << 48) | (0xFFFF << 32))
GRE_VALUE = U64((GRE_PPTP_VALUE << 48) | (0x880B << 32))
#: the octets of a frame read: Ethernet, IPv4 without options, enhanced GRE with S and A, and PPP's first 8
HEAD = 64
ROW = np.dtype((np.void, HEAD))


class GreLanes(NamedTuple):
    """The GRE candidates of a batch: Ethernet/IPv4 (no fragment)/enhanced GRE version 1 frames.

    Arrays over the candidates, in capture order, but for ``keys_*`` (one
    value per group of equal GRE key) and ``by_key`` (the candidates sorted
    by group, stably: capture order within each group).
    """

    ci: Any  # the candidates' frame numbers in the batch; None when every frame is one
    inv: Any  # each candidate's group
    by_key: Any
    keys_addr: Any  # each group's source and destination address, as one big-endian 64-bit number
    keys_call: Any  # each group's interface index << 16 | GRE call ID
    has_seq: Any  # 1 when S is set (a sequence number follows the key), else 0
    has_ack: Any  # 1 when A is set
    plen: Any  # the GRE payload length: 0 for an ack-only packet
    is_data: Any  # the PPP inside is data only counted (COUNTED_PROTOCOLS, with or without ACFC/PFC)
    length_ok: Any  # the frame holds the GRE header and the PPP protocol field
    has_ppp: Any  # the frame holds the GRE header
    s42: Any  # octets 42-49 as a big-endian word: sequence and acknowledgment numbers


def _heads(buf: bytes | memoryview, offs: Any) -> Any:
    """The first :data:`HEAD` octets of every frame starting at ``offs``, one frame per row, in one gather.

    A frame's fields are read from its row, which stays in the cache, instead
    of gathering each field from the whole buffer. Octets past the end of the
    buffer read as zeros; those past the end of a frame are filler that the
    length checks exclude.
    """
    if len(buf) < 2 * HEAD:  # a short batch (a pipe's one record, a file's short last frame): zeros after it
        buf = bytes(buf) + bytes(2 * HEAD)
    size = len(buf)
    rows = np.ndarray((len(buf) - HEAD + 1,), dtype=ROW, buffer=buf, strides=(1,))
    edge = size - HEAD
    heads = rows[np.minimum(offs, edge)]
    near = np.nonzero(offs > edge)[0]
    if len(near):  # a frame in the buffer's last HEAD octets: from a copy with zeros after them
        tail = np.ndarray((HEAD + 1,), dtype=ROW, buffer=bytes(buf[edge:size]) + bytes(HEAD), strides=(1,))
        heads[near] = tail[offs[near] - edge]
    return heads


def _word(heads: Any, k: int) -> Any:
    """Octets ``k`` to ``k + 7`` of every row, as a little-endian 64-bit number (a view, no copy)."""
    return np.ndarray((len(heads),), dtype=LE64, buffer=heads, offset=k, strides=(HEAD,))


def gre_lanes(batch: Batch) -> GreLanes | None:
    """The GRE candidates of ``batch``, or None when it has none (nor any Ethernet interface)."""
    n = len(batch)
    eth = [lt == LINKTYPE_ETHERNET for _, lt in batch.ifaces]
    if n == 0 or not any(eth):
        return None
    offs, lens = batch.offsets, batch.lengths
    heads = _heads(batch.buf, offs)
    w12 = _word(heads, 12)
    w20 = _word(heads, 20)
    s34 = _word(heads, 34).byteswap()  # big-endian: flags/version, protocol, length, call ID
    cand = (
        (lens >= 42)
        & ((w12 & IP_MASK) == IP_VALUE)
        & ((w20 & FRAG_MASK) == FRAG_VALUE)
        & ((s34 & GRE_MASK) == GRE_VALUE)
    )
    ifidx = batch.ifidx
    if ifidx is not None:
        cand &= np.asarray(eth, dtype=bool)[ifidx]
    elif not eth[0]:
        return None
    ci = np.nonzero(cand)[0]
    if len(ci) == 0:
        return None
    every = len(ci) == n  # usually every frame is a candidate: no copies
    if not every:
        heads = heads[ci]
        s34 = s34[ci]
    k1 = _word(heads, 26).byteswap()  # source and destination address, octets 26-33
    cid = (s34 & U64(0xFFFF)).astype(np.int64)
    ifc = ifidx[ci] if ifidx is not None else np.zeros(len(ci), dtype=np.int64)
    k2 = (ifc << 16) | cid
    # group by (k1, k2) with one stable lexsort: capture order is kept within each group
    by_key = np.lexsort((k2, k1))
    s1, s2 = k1[by_key], k2[by_key]
    first = np.ones(len(by_key), dtype=bool)
    first[1:] = (s1[1:] != s1[:-1]) | (s2[1:] != s2[:-1])
    inv = np.empty(len(by_key), dtype=np.int64)
    inv[by_key] = np.cumsum(first) - 1
    # PPP inside: ack-only, or a data protocol (ACFC/PFC in any combination); signed views from here on
    s34 = s34.view(np.int64)
    has_seq = (s34 >> 60) & 1  # S, 0x1000 of the flags
    has_ack = (s34 >> 55) & 1  # A, 0x0080
    po = 42 + 4 * (has_seq + has_ack)  # where the PPP frame starts
    plen = (s34 >> 16) & 0xFFFF
    # the word at po: 42, 46 or 50
    wp = np.where(po == 42, _word(heads, 42), np.where(po == 46, _word(heads, 46), _word(heads, 50))).view(np.int64)
    acf = (wp & 0xFF) == 0xFF
    shift = acf * 16
    pb = (wp >> shift) & 0xFF
    nb = (wp >> (shift + 8)) & 0xFF
    # PFC: one odd octet; otherwise two octets, data protocols all being 0x00XX
    is_data = (plen > 0) & np.where((pb & 1) == 1, DATA_1[pb], (pb == 0) & DATA_1[nb])
    lc = lens if every else lens[ci]
    length_ok = lc >= np.where(plen > 0, po + shift // 8 + 2 - (pb & 1), po)
    s42 = _word(heads, 42).byteswap().view(np.int64)  # sequence and acknowledgment numbers
    return GreLanes(None if every else ci, inv, by_key, s1[first], s2[first], has_seq, has_ack, plen, is_data,
                    length_ok, lc >= po, s42)
