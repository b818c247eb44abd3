"""Mutations of real seeds for hypothesis strategies, and the two budgets the harness runs under.

A mutated input (:func:`mutate`) is a seed followed by a few edits, in the spirit of AFL's
deterministic stages: bit flips, "interesting" octets, 16- and 32-bit
big-endian fields set to boundary values and to values near the input's own
length (so Length fields claim one octet too many or too few), truncations,
deletions, insertions, duplicated runs and splices with another seed.
Positions favour the first 64 octets, where the headers are. Hypothesis
shrinks a failure to the fewest edits, and the test prints the final bytes.

Budgets: the quick one runs in every ``python -m pytest`` with a fixed
derandomised seed; the long one (``-m fuzz``) runs ``PPTPTOP_FUZZ_EXAMPLES``
examples per target with fresh randomness. See docs/fuzzing.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

#: examples per target in the long run (``PPTPTOP_FUZZ_EXAMPLES=200000 python -m pytest -m fuzz tests/fuzz``)
LONG_EXAMPLES = int(os.environ.get("PPTPTOP_FUZZ_EXAMPLES", "20000"))
#: the quick budget is multiplied by this (CI machines with time to spare may raise it)
QUICK_SCALE = float(os.environ.get("PPTPTOP_FUZZ_QUICK_SCALE", "1"))

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.large_base_example]

INTERESTING_8 = (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x7F, 0x80, 0x81, 0xFE, 0xFF)
INTERESTING_16 = (0x0000, 0x0001, 0x0002, 0x0003, 0x0004, 0x000B, 0x000C, 0x0010, 0x0040, 0x007F, 0x0080, 0x00FF,
                  0x0100, 0x03FF, 0x0400, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
INTERESTING_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x1A2B3C4D)

# built once: making a strategy costs more than drawing from it
_position = st.one_of(st.integers(0, 63), st.integers(0, 1 << 16))
_length_delta = st.integers(-16, 8)
_kind = st.integers(0, 12)
_bit = st.integers(0, 7)
_octet = st.sampled_from(INTERESTING_8) | st.integers(0, 255)
_word16 = st.sampled_from(INTERESTING_16)
_word32 = st.sampled_from(INTERESTING_32) | st.integers(0, 0xFFFFFFFF)
_run = st.integers(1, 16)
_long_run = st.integers(1, 32)
_fill = st.sampled_from((0x00, 0xFF))
_insert = st.binary(min_size=1, max_size=16)
_junk = st.binary(min_size=1, max_size=8)
_edits = {n: st.integers(1, n) for n in range(1, 11)}


def _at(pos: int, n: int) -> int:
    return pos % n if n else 0


def _edit(draw: Callable[[Any], Any], b: bytearray, donors: Sequence[bytes]) -> None:
    """One mutation of ``b`` in place."""
    kind = draw(_kind)
    pos = draw(_position)
    n = len(b)
    if kind == 0 and n:  # bit flip
        b[_at(pos, n)] ^= 1 << draw(_bit)
    elif kind == 1 and n:  # an interesting or random octet
        b[_at(pos, n)] = draw(_octet)
    elif kind == 2 and n >= 2:  # a 16-bit field set to a boundary value
        p = _at(pos, n - 1)
        b[p:p + 2] = draw(_word16).to_bytes(2, "big")
    elif kind == 3 and n >= 2:  # a 16-bit length: what remains from the field on, give or take
        p = _at(pos, n - 1)
        b[p:p + 2] = ((n - p + draw(_length_delta)) & 0xFFFF).to_bytes(2, "big")
    elif kind == 12 and n:  # an 8-bit length (an option's): what remains, give or take
        p = _at(pos, n)
        b[p] = (n - p + draw(_length_delta)) & 0xFF
    elif kind == 4 and n >= 4:  # a 32-bit field
        p = _at(pos, n - 3)
        b[p:p + 4] = draw(_word32).to_bytes(4, "big")
    elif kind == 5:  # truncate
        del b[_at(pos, n + 1):]
    elif kind == 6 and n:  # delete a run
        p = _at(pos, n)
        del b[p:p + draw(_run)]
    elif kind == 7:  # insert octets
        p = _at(pos, n + 1)
        b[p:p] = draw(_insert)
    elif kind == 8 and n:  # duplicate a run
        p = _at(pos, n)
        b[p:p] = b[p:p + draw(_long_run)]
    elif kind == 9 and donors:  # splice: our head, another seed's tail
        other = donors[_at(draw(_position), len(donors))]
        b[_at(pos, n + 1):] = other[_at(draw(_position), len(other) + 1):]
    elif kind == 10 and n:  # an octet run set to one value (zeros, 0xff)
        p = _at(pos, n)
        run = len(b[p:p + draw(_run)])
        b[p:p + run] = bytes([draw(_fill)]) * run
    elif kind == 11 and n:  # random bytes over a run
        p = _at(pos, n)
        junk = draw(_junk)
        b[p:p + len(junk)] = junk


def mutate(draw: Callable[[Any], Any], data: bytes, donors: Sequence[bytes], max_edits: int = 4,
           refit: int | None = None) -> bytes:
    """``data`` after one to ``max_edits`` mutations (``draw`` is a composite strategy's or ``st.data()``'s).

    With ``refit``, half the time the 16-bit length field at that offset is then set to the new length, so
    that edits inside the body get past the framing check.
    """
    b = bytearray(data)
    for _ in range(draw(_edits[max_edits])):
        _edit(draw, b, donors)
    if refit is not None and len(b) >= refit + 2 and draw(_coin):
        b[refit:refit + 2] = len(b).to_bytes(2, "big")
    return bytes(b)


_coin = st.booleans()


def quick(examples: int) -> settings:
    """The CI budget: a fixed, derandomised run of ``examples`` (times PPTPTOP_FUZZ_QUICK_SCALE)."""
    return settings(max_examples=max(1, int(examples * QUICK_SCALE)), derandomize=True, database=None,
                    deadline=None, suppress_health_check=_SLOW_OK, print_blob=False)


def long(name: str) -> settings:
    """The long budget: fresh randomness, failures kept in .hypothesis/fuzz/<target> and replayed first."""
    db = DirectoryBasedExampleDatabase(str(Path(".hypothesis") / "fuzz" / name))
    return settings(max_examples=LONG_EXAMPLES, derandomize=False, database=db, deadline=None,
                    suppress_health_check=_SLOW_OK, phases=(Phase.explicit, Phase.reuse, Phase.generate,
                                                            Phase.target, Phase.shrink))


#: examples run and seconds taken per target in this session, for the summary the long run prints
RUNS: dict[str, tuple[int, float]] = {}


def run(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None], budget: settings) -> None:
    """Run ``check`` on ``strategy``'s examples under ``budget``, counting them under ``name``."""
    count = 0

    @budget
    @given(strategy)
    def fuzz(value: Any) -> None:
        nonlocal count
        count += 1
        check(value)

    start = time.perf_counter()
    try:
        fuzz()
    finally:
        n, t = RUNS.get(name, (0, 0.0))
        RUNS[name] = (n + count, t + time.perf_counter() - start)
