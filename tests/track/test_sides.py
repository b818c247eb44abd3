"""Sides (track/sides.py) behaves as the dict it replaces, order of keys included: the JSON export shows it."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pptptop.track.sides import Sides

KEYS = st.sampled_from(["client", "server"])
OPS = st.lists(st.tuples(st.sampled_from(["set", "del", "pop", "setdefault"]), KEYS, st.integers(0, 9)), max_size=12)
START = st.sampled_from([(), ("client",), ("server",), ("client", "server")])


def _same(s: Sides[int], d: dict[str, int]) -> None:
    assert list(s) == list(d) and list(s.items()) == list(d.items()) and list(s.values()) == list(d.values())
    assert len(s) == len(d) and dict(s) == d and s == d and bool(s) == bool(d)
    assert json.dumps(dict(s)) == json.dumps(d)
    for k in ("client", "server", "other"):
        assert (k in s) == (k in d) and s.get(k) == d.get(k) and s.get(k, -1) == d.get(k, -1)


@given(START, OPS)
def test_sides_behave_as_a_dict(start: tuple[str, ...], ops: list[tuple[str, str, int]]) -> None:
    d = {k: 0 for k in start}
    s: Sides[int] = Sides(**{k: 0 for k in start})
    _same(s, d)
    for op, k, v in ops:
        if op == "set":
            s[k] = v
            d[k] = v
        elif op == "setdefault":
            assert s.setdefault(k, v) == d.setdefault(k, v)
        elif k in d:
            if op == "del":
                del s[k]
                del d[k]
            else:
                assert s.pop(k) == d.pop(k)
        else:
            with pytest.raises(KeyError):
                del s[k]
        _same(s, d)
    flipped = {("server" if k == "client" else "client"): v for k, v in d.items()}  # the tracker's old flip
    _same(s.swapped(), flipped)
    for again in (copy.copy(s), copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        _same(again, d)
        again["client"] = 99  # a copy is its own
    _same(s, d)


def test_only_the_two_sides_are_keys() -> None:
    s: Sides[Any] = Sides()
    with pytest.raises(KeyError):
        s["gateway"] = 1
    with pytest.raises(KeyError):
        s["gateway"]
    assert repr(Sides(client=1)) == "Sides({'client': 1})"
