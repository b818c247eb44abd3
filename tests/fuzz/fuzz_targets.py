"""The fuzz targets: what each one is fed, and the contract it is held to.

The contract (docs/fuzzing.md): a decoder returns its dataclass or raises
``DecodeError`` with a code listed in docs/malformed.md, nothing else (no
IndexError, struct.error, ValueError, UnicodeError, RecursionError…);
what it returns is consistent with the bytes (offsets inside the buffer,
lengths as framed). Renderings (pppd's log line, the protocol tree as the
packet screen shows it) never raise and are printable once escaped. The
tracker, with the diagnosis and the NAT correlator subscribed, never raises
for any frame, on the per-frame or the batch path, and its exports render. A
corrupt capture file raises only ``CaptureFileError`` with an offset inside
the file, after the same good frames whether read frame by frame or in
batches.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from fuzz_corpus import (
    CBCP,
    CHAP,
    DATA,
    EAP,
    PAP,
    PPP_COMP,
    PPP_IPV4,
    PPP_IPV6,
    capture_files,
    capture_frames,
    capture_seeds,
    corpus,
    little_endian,
    record_fields,
    shapes,
)
from fuzz_mutate import INTERESTING_16, INTERESTING_32, mutate
from hypothesis import strategies as st

from pptptop.decode import pptp as P
from pptptop.decode.auth import (
    ChapPacket,
    EapPacket,
    PapPacket,
    decode_chap,
    decode_eap,
    decode_pap,
    parse_mschap_failure,
    parse_mschap_success,
)
from pptptop.decode.ccp import MppeHeader, coherency_count, decode_mppe_header
from pptptop.decode.dissect import dissect
from pptptop.decode.errors import DecodeError
from pptptop.decode.gre import GreHeader, decode_gre, gre_fields
from pptptop.decode.ip import IPPacket, decode_ip
from pptptop.decode.lcp import ControlPacket, decode_control_packet
from pptptop.decode.link import link_fields, network_offset
from pptptop.decode.ncp import CbcpPacket, decode_cbcp
from pptptop.decode.ppp import InnerIPv4, InnerIPv6, PppFrame, decode_inner_ipv4, decode_inner_ipv6, decode_ppp
from pptptop.decode.pppd import format_pppd, format_pppd_packet
from pptptop.decode.tcp import TcpSegment, decode_tcp
from pptptop.decode.tcpstream import StreamReassembler
from pptptop.diagnose import diagnosis_json
from pptptop.diagnose import report_lines as diagnosis_lines
from pptptop.diagnose.engine import Diagnoser
from pptptop.export.jsonout import document, tunnel_dict
from pptptop.export.report import report
from pptptop.sources import open_file
from pptptop.sources.base import CaptureFileError, Frame
from pptptop.sources.batch import batch_from_frames
from pptptop.sources.pcapfile import PcapFileSource
from pptptop.track import nat as natmod
from pptptop.track.tracker import Tracker
from pptptop.ui.format import wire

T = TypeVar("T")
MALFORMED_MD = Path(__file__).resolve().parents[2] / "docs" / "malformed.md"
#: every DecodeError code docs/malformed.md lists
CODES = frozenset(re.findall(r"^\| `([a-z0-9_]+)` \|", MALFORMED_MD.read_text(), re.M))
#: what a terminal must never receive: C0/C1 controls, DEL, lone surrogates, line/paragraph separators,
#: bidi overrides and isolates
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")
LINKTYPES = (0, 1, 101, 108, 113, 228, 229, 276, 9999)
CHAP_ALGORITHMS = (None, 5, 0x80, 0x81, 0x00)


def decoded(fn: Callable[..., T], *args: Any, **kw: Any) -> T | None:
    """``fn(*args)``, or None when it raises a documented DecodeError; anything else propagates."""
    try:
        return fn(*args, **kw)
    except DecodeError as e:
        assert e.code in CODES, f"DecodeError code {e.code!r} is not in docs/malformed.md"
        assert isinstance(e.detail, str) and (e.offset is None or isinstance(e.offset, int))
        return None


def printable(text: str, what: str) -> None:
    assert isinstance(text, str), what
    m = UNPRINTABLE.search(text)
    assert m is None, f"{what}: unescaped {m.group()!r} in {text!r}"


# -- per-target strategies ---------------------------------------------------------------------------


_random = st.binary(max_size=96)
_one_in_32 = st.integers(0, 31)


def _bytes(seeds: Sequence[bytes], max_edits: int = 4, refit: int | None = None) -> st.SearchStrategy[bytes]:
    """Mutations of ``seeds`` (see fuzz_mutate.mutate), and now and then plain random bytes."""
    index = st.integers(0, len(seeds) - 1)

    @st.composite
    def strategy(draw: Callable[[Any], Any]) -> bytes:
        if draw(_one_in_32) == 0:
            return bytes(draw(_random))
        return mutate(draw, seeds[draw(index)], seeds, max_edits, refit)

    return strategy()


def _window(seeds: Sequence[bytes]) -> st.SearchStrategy[tuple[bytes, int, int]]:
    """A mutated seed inside a buffer, with the offset and end a caller would pass (sometimes wrong)."""
    body = _bytes(seeds)
    pads = st.sampled_from((b"", b"\x00" * 14, b"\xff" * 3))
    shifts = st.sampled_from((0, 0, 0, -1, 1, 4))
    ends = st.sampled_from(("len", "len", "more", "less", "off", "huge", "negative"))

    @st.composite
    def strategy(draw: Callable[[Any], Any]) -> tuple[bytes, int, int]:
        pad = draw(pads)
        buf = pad + draw(body)
        off = len(pad) + draw(shifts)
        n = len(buf)
        end = {"len": n, "more": n + 100, "less": n - 1, "off": off, "huge": 1 << 20, "negative": -1}[draw(ends)]
        return buf, off, end

    return strategy()


# -- decoder checks ----------------------------------------------------------------------------------


def check_control(msg: bytes) -> None:
    P.peek_header(msg)
    m = decoded(P.decode_control, msg)
    if m is not None:
        assert isinstance(m, P.MESSAGE_CLASSES)
        assert m.magic_cookie == P.MAGIC_COOKIE and m.length >= P.MESSAGE_LENGTHS[P.ControlMessageType(m.message_type)]
        for f in P.control_fields(m.message_type):
            getattr(m, f.name)
    else:
        try:
            P.decode_control(msg)
        except P.ControlDecodeError as e:
            assert e.header is None or isinstance(e.header, P.ControlHeader)


def check_gre(case: tuple[bytes, int, int]) -> None:
    buf, off, end = case
    g = decoded(decode_gre, buf, off, end)
    if g is not None:
        assert isinstance(g, GreHeader)
        assert g.header_length in (8, 12, 16)
        assert off + g.header_length == g.payload_offset <= g.payload_end <= len(buf)
        assert g.payload_end - g.payload_offset <= g.payload_length
        for f in gre_fields(g, off):
            assert f.offset >= off and f.offset + f.length <= g.payload_offset


@st.composite
def _ip_case(draw: Callable[[Any], Any]) -> tuple[int, bytes, int]:
    """A mutated IP packet, sometimes after a few octets of link header, with its ethertype (or a wrong one)."""
    seeds = corpus().ip
    ethertype, packet = seeds[draw(st.integers(0, len(seeds) - 1))]
    ethertype = draw(st.sampled_from((ethertype, ethertype, ethertype, 0, 0x0800, 0x86DD, 0x0806)))
    pad = draw(st.sampled_from((b"", b"", b"\x00" * 14)))
    return ethertype, pad + mutate(draw, packet, _ip_bytes()), len(pad)


@cache
def _ip_bytes() -> list[bytes]:
    return [b for _, b in corpus().ip]


def check_ip(case: tuple[int, bytes, int]) -> None:
    ethertype, buf, off = case
    ip = decoded(decode_ip, buf, off, ethertype)
    if ip is not None:
        assert isinstance(ip, IPPacket) and ip.version in (4, 6)
        assert off < ip.payload_offset <= ip.payload_end <= len(buf)
        assert ip.header.version == ip.version


def check_tcp(case: tuple[bytes, int, int]) -> None:
    buf, off, end = case
    s = decoded(decode_tcp, buf, off, end)
    if s is not None:
        assert isinstance(s, TcpSegment)
        assert off + 20 <= s.payload_offset <= s.payload_end <= len(buf)
        assert s.header_length == s.payload_offset - off


def check_link(case: tuple[int, bytes]) -> None:
    linktype, data = case
    ethertype, off = network_offset(linktype, data)
    assert (ethertype, off) == (0, -1) or (ethertype in (0x0800, 0x86DD) and 0 <= off < len(data))
    for f in link_fields(linktype, data):
        assert f.offset >= 0 and f.offset + f.length <= len(data), f
        printable(f.value, f.name)


def _render(protocol: int, info: bytes) -> None:
    for secrets in (False, True):
        printable(format_pppd_packet(protocol, info, show_secrets=secrets), "format_pppd_packet")


def check_ppp(case: tuple[bytes, int | None]) -> None:
    raw, alg = case
    frame = decoded(decode_ppp, raw, chap_algorithm=alg)
    if frame is None:
        return
    assert (isinstance(frame, PppFrame) and frame.error is None) or isinstance(frame.error, DecodeError)
    if frame.error is not None:
        assert frame.message is None and frame.error.code in CODES
    printable(frame.protocol_name, "protocol name")
    printable(frame.short_name, "short name")
    for secrets in (False, True):
        printable(format_pppd(frame, show_secrets=secrets), "format_pppd")


def check_control_packet(case: tuple[int, bytes]) -> None:
    protocol, info = case
    m = decoded(decode_control_packet, protocol, info)
    if m is not None:
        assert isinstance(m, ControlPacket) and 4 <= m.length <= len(info)
        for o in m.options:
            assert o.offset >= 4 and o.offset + o.length <= m.length and len(o.data) == o.length - 2
        m.code_name  # noqa: B018 - the property is the check
    _render(protocol, info)


def check_pap(info: bytes) -> None:
    m = decoded(decode_pap, info)
    assert m is None or (isinstance(m, PapPacket) and m.length <= len(info))
    _render(PAP, info)


def check_chap(case: tuple[bytes, int | None]) -> None:
    info, alg = case
    m = decoded(decode_chap, info, alg)
    assert m is None or (isinstance(m, ChapPacket) and m.length <= len(info))
    _render(CHAP, info)


def check_eap(info: bytes) -> None:
    m = decoded(decode_eap, info)
    assert m is None or (isinstance(m, EapPacket) and m.length <= len(info))
    _render(EAP, info)


def check_cbcp(info: bytes) -> None:
    m = decoded(decode_cbcp, info)
    if m is not None:
        assert isinstance(m, CbcpPacket) and m.length <= len(info)
        for o in m.options:
            assert o.offset + o.length <= m.length
            o.address_type, o.address  # noqa: B018 - the properties are the check
    _render(CBCP, info)


def check_mppe(case: tuple[bytes, int]) -> None:
    info, off = case
    m = decoded(decode_mppe_header, info)
    assert m is None or (isinstance(m, MppeHeader) and 0 <= m.coherency_count < 4096)
    assert -1 <= coherency_count(info, off) < 4096
    _render(PPP_COMP, info)


def check_inner_ip(info: bytes) -> None:
    v4 = decoded(decode_inner_ipv4, info)
    assert v4 is None or isinstance(v4, InnerIPv4)
    v6 = decoded(decode_inner_ipv6, info)
    assert v6 is None or isinstance(v6, InnerIPv6)
    _render(PPP_IPV4, info)
    _render(PPP_IPV6, info)


def check_mschap_text(text: str) -> None:
    f = parse_mschap_failure(text)
    assert f is None or (isinstance(f.error, int) and isinstance(f.challenge, bytes))
    s = parse_mschap_success(text)
    assert s is None or len(s.authenticator) == 40


_MSCHAP_TOKENS = st.sampled_from(["E=691", "E=", "R=1", "R=0", "C=00112233445566778899aabbccddeeff", "C=0",
                                  "V=3", "V=", "M=Authentication failure", "M=", "S=" + "0A" * 20, "E=²",
                                  "V=²", "E=" + "9" * 5000, "V=" + "9" * 5000, "E=٣", "\t", "\n"])


# -- renderings --------------------------------------------------------------------------------------


def check_dissect(case: tuple[int, bytes]) -> None:
    linktype, data = case
    root = dissect(linktype, data)
    for n in root.walk():
        assert isinstance(n.label, str) and isinstance(n.value, str)
        assert 0 <= n.start <= n.end, n
        # what the packet screen shows (node_label in ui/screens/packet.py)
        printable(wire(n.label, 80), "tree label")
        printable(wire(n.value, 300), "tree value")


# -- the TCP reassembler -----------------------------------------------------------------------------

Segment = tuple[int, int, bytes]
Step = tuple[str, int, int, bytes]  # ("seg", seq, flags, payload) or ("ack", ack, 0, b"")


@st.composite
def _stream_case(draw: Callable[[Any], Any]) -> tuple[dict[str, int], list[Step]]:
    c = corpus()
    segs: list[Segment] = list(draw(st.sampled_from(c.streams)))
    if draw(st.booleans()):  # a second connection (or the same one again) on the same port pair
        segs += draw(st.sampled_from(c.streams))
    payloads = [p for s in c.streams for _, _, p in s if p]
    for _ in range(draw(st.integers(0, 6))):
        if not segs:
            break
        i = draw(st.integers(0, len(segs) - 1))
        seq, flags, payload = segs[i]
        kind = draw(st.integers(0, 8))
        if kind == 0:
            del segs[i]
        elif kind == 1:
            segs.insert(draw(st.integers(0, len(segs))), segs[i])  # a retransmission, anywhere
        elif kind == 2 and i + 1 < len(segs):
            segs[i], segs[i + 1] = segs[i + 1], segs[i]
        elif kind == 3:
            delta = draw(st.sampled_from((1, -1, 12, -12, 1 << 31, (1 << 32) - 1)) | st.integers(-2000, 2000))
            segs[i] = ((seq + delta) & 0xFFFFFFFF, flags, payload)
        elif kind == 4 and len(payload) > 1:  # split in two segments
            k = draw(st.integers(1, len(payload) - 1))
            segs[i:i + 1] = [(seq, flags & ~0x01, payload[:k]), ((seq + k) & 0xFFFFFFFF, flags & ~0x02, payload[k:])]
        elif kind == 5:
            segs[i] = (seq, flags, mutate(draw, payload, payloads, 3))
        elif kind == 6:
            segs[i] = (seq, flags ^ draw(st.sampled_from((0x01, 0x02, 0x04))), payload)
        elif kind == 7:
            segs[i] = (draw(st.sampled_from(INTERESTING_32)), flags, payload)
        elif kind == 8:
            segs[i] = (seq, flags, payload[: draw(st.integers(0, len(payload)))])
    steps: list[Step] = []
    for seq, flags, payload in segs:
        steps.append(("seg", seq, flags, payload))
        if draw(st.integers(0, 7)) == 0:
            steps.append(("ack", (seq + draw(st.integers(-4, 3000))) & 0xFFFFFFFF, 0, b""))
    limits = {
        "max_message": draw(st.sampled_from((1024, 12, 13, 156, 220, 0xFFFF))),
        "max_buffer": draw(st.sampled_from((64 * 1024, 1, 100, 4096))),
        "max_segments": draw(st.sampled_from((256, 1, 2, 5))),
        "gap_bytes": draw(st.sampled_from((2048, 0, 1))),
        "gap_segments": draw(st.sampled_from((8, 1, 2))),
    }
    return limits, steps


def check_stream(case: tuple[dict[str, int], list[Step]]) -> None:
    limits, steps = case
    r = StreamReassembler(**limits)
    out: list[bytes | DecodeError] = []
    for kind, a, flags, payload in steps:
        out += r.feed(a, flags, payload) if kind == "seg" else r.acknowledged(a)
        assert r.held_bytes <= r.max_buffer and r.held_segments <= r.max_segments
        assert r.pending_bytes < r.max_message, (r.pending_bytes, r.max_message)
    out += r.flush()
    assert r.held_segments == 0 and r.held_bytes == 0
    for item in out:
        if isinstance(item, DecodeError):
            assert item.code in ("pptp_bad_magic", "pptp_bad_length")
            continue
        assert isinstance(item, bytes) and 12 <= len(item) <= r.max_message
        assert int.from_bytes(item[:2], "big") == len(item) and item[4:8] == b"\x1a\x2b\x3c\x4d"
        check_control(item)
    assert r.messages == sum(isinstance(i, bytes) for i in out)
    assert r.resyncs == sum(isinstance(i, DecodeError) for i in out)


# -- the engine ----------------------------------------------------------------------------------------

#: the captures the engine targets replay (small enough to feed whole in a few milliseconds)
ENGINE_CAPTURES = tuple(str(p.relative_to(DATA)) for p in capture_files() if p.stat().st_size <= 20_000)


@st.composite
def _session(draw: Callable[[Any], Any], max_edits: int = 6) -> list[Frame]:
    """A real capture's frames with a few of them damaged, dropped, repeated, reordered or foreign."""
    frames = list(capture_frames(draw(st.sampled_from(ENGINE_CAPTURES))))
    donors = [f.data for f in frames]
    c = corpus()
    for _ in range(draw(st.integers(1, max_edits))):
        if not frames:
            break
        i = draw(st.integers(0, len(frames) - 1))
        f = frames[i]
        kind = draw(st.integers(0, 6))
        if kind <= 2:
            frames[i] = f._replace(data=mutate(draw, f.data, donors, 3))
        elif kind == 3:
            del frames[i]
        elif kind == 4:
            frames.insert(draw(st.integers(0, len(frames))), f)
        elif kind == 5 and i + 1 < len(frames):
            frames[i], frames[i + 1] = frames[i + 1], frames[i]
        elif kind == 6:
            linktype, data = c.frames[draw(st.integers(0, len(c.frames) - 1))]
            frames.insert(i, Frame(f.ts, f.iface, linktype, mutate(draw, data, donors, 2)))
    return frames


def _engine() -> tuple[Tracker, natmod.NatCorrelator, Diagnoser]:
    tracker = Tracker()
    nat = natmod.attach(tracker)
    diagnoser = Diagnoser().attach(tracker)
    return tracker, nat, diagnoser


def _exports(tracker: Tracker, nat: natmod.NatCorrelator) -> None:
    tracker.tick(tracker.now + 3600)
    tracker.finish()
    extensions = natmod.json_extensions(nat)
    extensions["diagnosis"] = diagnosis_json
    json.dumps(document(tracker, {"name": "fuzz"}, extensions, fold=nat.fold), default=str)
    text = report(tracker, {"name": "fuzz"}, [natmod.report_lines(nat), diagnosis_lines])
    for line in text.splitlines():
        printable(line, "--report line")


def check_engine(frames: list[Frame]) -> None:
    tracker, nat, _ = _engine()
    for i, f in enumerate(frames):
        tracker.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    assert tracker.stats.frames == len(frames)
    _exports(tracker, nat)


@st.composite
def _batch_case(draw: Callable[[Any], Any]) -> tuple[list[Frame], int]:
    frames = draw(_session(max_edits=10))
    return frames, draw(st.integers(0, len(frames)))


def _state(tracker: Tracker) -> tuple[list[dict[str, Any]], tuple[int, ...]]:
    st = tracker.stats
    return ([tunnel_dict(t, tracker.now) for t in sorted(tracker.tunnels.values(), key=lambda t: t.id)],
            (st.frames, st.bytes, st.ip, st.gre, st.gre_data, st.gre_unknown, st.other, st.malformed))


def check_batch(case: tuple[list[Frame], int]) -> None:
    """Frames before ``split`` one by one (tunnels get to the data phase), the rest as one batch: the result
    of feeding every frame one by one."""
    frames, split = case
    tracker, nat, _ = _engine()
    for i, f in enumerate(frames[:split]):
        tracker.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    rest = frames[split:]
    if rest:
        batch = batch_from_frames(rest)
        tracker.feed_batch(batch, split + 1)
    assert tracker.stats.frames == len(frames)
    one_by_one, _, _ = _engine()
    for i, f in enumerate(frames):
        one_by_one.feed(i + 1, f.ts, f.iface, f.linktype, f.data)
    assert _state(tracker) == _state(one_by_one)
    _exports(tracker, nat)


# -- capture files -------------------------------------------------------------------------------------

_TMP = Path(tempfile.mkdtemp(prefix="pptptop-fuzz-"))


_near = st.integers(-16, 16)
_length_value = st.sampled_from(INTERESTING_32 + INTERESTING_16)


@st.composite
def _capture_file(draw: Callable[[Any], Any]) -> tuple[bytes, int]:
    """A small capture file, its records' length fields and other octets mutated; a read chunk size."""
    seeds = capture_seeds()
    raw = bytearray(seeds[draw(st.integers(0, len(seeds) - 1))])
    fields = record_fields(bytes(raw))
    e = "little" if little_endian(bytes(raw)) else "big"
    for _ in range(draw(st.integers(1, 4))):
        if fields and draw(st.booleans()):  # a record's length field: a boundary value or near the truth
            p = fields[draw(st.integers(0, len(fields) - 1))]
            if p + 4 <= len(raw):
                old = int.from_bytes(raw[p:p + 4], e)
                new = draw(_length_value) if draw(st.booleans()) else (old + draw(_near)) & 0xFFFFFFFF
                raw[p:p + 4] = new.to_bytes(4, e)
        else:
            raw = bytearray(mutate(draw, bytes(raw), seeds, 1))
    return bytes(raw), draw(st.sampled_from((1 << 20, 1, 13, 64, 4096)))


def _read(src: PcapFileSource, batches: bool) -> tuple[list[Frame], CaptureFileError | None]:
    frames: list[Frame] = []
    try:
        if batches:
            for b in src.batches():  # a batch's bytes are good until the next one is read: copy them out
                frames += [b.frame(i) for i in range(len(b))]
        else:
            frames += src
    except CaptureFileError as e:
        return frames, e
    return frames, None


def check_capture_file(case: tuple[bytes, int]) -> None:
    raw, chunk = case
    path = _TMP / "capture"
    path.write_bytes(raw)
    results = [
        _read(open_file(path), batches=False),
        _read(open_file(path), batches=True),
        _read(PcapFileSource("mem", io.BytesIO(raw), chunk_size=chunk), batches=False),
        _read(PcapFileSource("mem", io.BytesIO(raw), chunk_size=chunk), batches=True),
    ]
    for frames, err in results:
        assert all(isinstance(f.data, bytes) and len(f.data) <= 262144 for f in frames)
        if err is not None:
            assert isinstance(err.offset, int) and 0 <= err.offset <= len(raw), (err.offset, len(raw))
    first_frames, first_err = results[0]
    for frames, err in results[1:]:
        assert frames == first_frames
        assert (err is None) == (first_err is None)
        if err is not None and first_err is not None:
            assert (err.offset, err.reason) == (first_err.offset, first_err.reason)


@st.composite
def _frame_case(draw: Callable[[Any], Any], others: Sequence[int]) -> tuple[int, bytes]:
    """A mutated frame under its own link type, or now and then under another one."""
    frames = corpus().frames
    linktype, data = frames[draw(st.integers(0, len(frames) - 1))]
    if draw(_one_in_4) == 0:
        linktype = draw(st.sampled_from(others))
    return linktype, mutate(draw, data, _frame_bytes(), 4)


@cache
def _frame_bytes() -> list[bytes]:
    return [d for _, d in corpus().frames]


@st.composite
def _control_packet_case(draw: Callable[[Any], Any]) -> tuple[int, bytes]:
    """An LCP/IPCP/IPV6CP/CCP/ECP packet, mutated, decoded as its own protocol or now and then another's."""
    seeds = _control_packet_seeds()
    protocol, info = seeds[draw(st.integers(0, len(seeds) - 1))]
    if draw(_one_in_4) == 0:
        protocol = draw(st.sampled_from((0xC021, 0x8021, 0x8057, 0x80FD, 0x80FB, 0x8053, 0xC02B)))
    return protocol, mutate(draw, info, [i for _, i in seeds], 4, refit=2)


_one_in_4 = st.integers(0, 3)


# -- the table ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One fuzz target: its inputs, its contract and its share of the quick budget."""

    name: str
    strategy: Callable[[], st.SearchStrategy[Any]]
    check: Callable[[Any], None]
    quick: int
    #: every prefix of these is checked too (the "truncation at every length" stage)
    truncations: Callable[[], list[Callable[[], None]]] | None = None


def _prefixes(seeds: Sequence[T], data: Callable[[T], bytes], check: Callable[[T, bytes], None]) -> list[
        Callable[[], None]]:
    out: list[Callable[[], None]] = []
    for s in seeds:
        b = data(s)
        out += [lambda s=s, b=b, k=k: check(s, b[:k]) for k in range(len(b))]
    return out


@cache
def _control_packet_seeds() -> list[tuple[int, bytes]]:
    return [(p, i) for p, i in corpus().info if p >> 8 in (0x80, 0xC0) and p not in (PAP, CHAP, EAP, CBCP)]


@cache
def _info(*protocols: int) -> list[bytes]:
    return list(corpus().info_of(protocols))


def _info_shapes(*protocols: int) -> list[bytes]:
    return shapes(_info(*protocols), lambda b: bytes(b[:1]), 3)


TARGETS: tuple[Target, ...] = (
    Target("pptp_control", lambda: _bytes(corpus().control, refit=0), check_control, 300,
           lambda: _prefixes(shapes(corpus().control, lambda b: b[8:10], 2), lambda b: b,
                             lambda _s, b: check_control(b))),
    Target("gre", lambda: _window(corpus().gre), check_gre, 200,
           lambda: _prefixes(shapes(corpus().gre, lambda b: (b[:2], len(b) > 30), 2), lambda b: b,
                             lambda _s, b: check_gre((b, 0, len(b))))),
    Target("link", lambda: _frame_case(LINKTYPES), check_link, 200,
           lambda: _prefixes(shapes(corpus().frames, lambda f: (f[0], f[1][12:14]), 2), lambda f: f[1][:80],
                             lambda f, b: check_link((f[0], b)))),
    Target("ip", _ip_case, check_ip, 200,
           lambda: _prefixes(shapes(corpus().ip, lambda s: (s[0], s[1][9:10] if s[0] == 0x800 else s[1][6:7]), 2),
                             lambda s: s[1][:80], lambda s, b: check_ip((s[0], b, 0)))),
    Target("tcp", lambda: _window(corpus().tcp), check_tcp, 200,
           lambda: _prefixes(shapes(corpus().tcp, lambda b: b[13:14], 2), lambda b: b[:70],
                             lambda _s, b: check_tcp((b, 0, len(b))))),
    Target("stream_reassembler", _stream_case, check_stream, 120),
    Target("ppp", lambda: st.tuples(_bytes(corpus().ppp), st.sampled_from(CHAP_ALGORITHMS)), check_ppp, 300,
           lambda: _prefixes(shapes(corpus().ppp, lambda b: b[:6], 2), lambda b: b[:120],
                             lambda _s, b: check_ppp((b, None)))),
    Target("lcp_ipcp_ipv6cp_ccp", _control_packet_case,
           check_control_packet, 300,
           lambda: _prefixes(shapes(_control_packet_seeds(), lambda s: (s[0], s[1][:1]), 2), lambda s: s[1],
                             lambda s, b: check_control_packet((s[0], b)))),
    Target("pap", lambda: _bytes(_info(PAP), refit=2), check_pap, 200,
           lambda: _prefixes(_info_shapes(PAP), lambda b: b, lambda _s, b: check_pap(b))),
    Target("chap_mschap", lambda: st.tuples(_bytes(_info(CHAP), refit=2), st.sampled_from(CHAP_ALGORITHMS)),
           check_chap, 200,
           lambda: _prefixes(_info_shapes(CHAP), lambda b: b[:100], lambda _s, b: check_chap((b, None)))),
    Target("mschap_text", lambda: st.lists(_MSCHAP_TOKENS | st.text(max_size=12), max_size=8).map(" ".join)
           | _bytes(_info(CHAP)).map(lambda b: b[4:].decode("utf-8", "backslashreplace")), check_mschap_text, 200),
    Target("eap", lambda: _bytes(_info(EAP), refit=2), check_eap, 200,
           lambda: _prefixes(_info_shapes(EAP), lambda b: b, lambda _s, b: check_eap(b))),
    Target("cbcp", lambda: _bytes(_info(CBCP), refit=2), check_cbcp, 200,
           lambda: _prefixes(_info_shapes(CBCP), lambda b: b, lambda _s, b: check_cbcp(b))),
    Target("mppe", lambda: st.tuples(_bytes(_info(PPP_COMP)), st.integers(-2, 4)), check_mppe, 100),
    Target("inner_ip", lambda: _bytes(_info(PPP_IPV4, PPP_IPV6)), check_inner_ip, 200,
           lambda: _prefixes(_info_shapes(PPP_IPV4, PPP_IPV6), lambda b: b[:80], lambda _s, b: check_inner_ip(b))),
    Target("dissect", lambda: _frame_case((0, 101, 113, 276)),
           check_dissect, 200,
           lambda: _prefixes(shapes(corpus().frames, lambda f: (f[0], f[1][23:24], f[1][46:48]), 1)[::3],
                             lambda f: f[1][:100], lambda f, b: check_dissect((f[0], b)))),
    Target("tracker_feed", _session, check_engine, 40),
    Target("feed_batch", _batch_case, check_batch, 40),
    Target("capture_file", _capture_file, check_capture_file, 100),
)
