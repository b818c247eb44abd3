"""Every decoder, the renderings, the reassembler, the tracker (per frame and in batches) and the capture
file readers, fuzzed with mutations of real frames under the contract of docs/fuzzing.md.

``test_quick`` runs in every ``python -m pytest`` (fixed seed, small budget);
``test_long`` is the same with ``PPTPTOP_FUZZ_EXAMPLES`` examples and fresh
randomness, selected with ``-m fuzz``. ``test_every_truncation`` cuts a few
seeds of each message kind at every length.
"""

from __future__ import annotations

import pytest
from fuzz_mutate import long, quick, run
from fuzz_targets import TARGETS, Target

_IDS = [t.name for t in TARGETS]


@pytest.mark.parametrize("target", TARGETS, ids=_IDS)
def test_quick(target: Target) -> None:
    run(target.name, target.strategy(), target.check, quick(target.quick))


@pytest.mark.fuzz
@pytest.mark.parametrize("target", TARGETS, ids=_IDS)
def test_long(target: Target) -> None:
    run(target.name, target.strategy(), target.check, long(target.name))


@pytest.mark.parametrize("target", [t for t in TARGETS if t.truncations is not None],
                         ids=[t.name for t in TARGETS if t.truncations is not None])
def test_every_truncation(target: Target) -> None:
    assert target.truncations is not None
    cases = target.truncations()
    assert cases
    for case in cases:
        case()
