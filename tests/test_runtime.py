"""The interpreter adjustments of the ``pptptop`` command (pptptop.runtime), each in a fresh interpreter:
they change process-wide state that the rest of the suite must not see."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12 has no EnumType.__getattr__ to remove")
def test_enum_members_are_found_as_before_without_the_311_hook() -> None:
    res = _run("""
        import enum, json
        import pptptop.cli  # every enum of the command, and those of its libraries
        from pptptop.runtime import enum_lookup_as_in_3_12
        from pptptop.track.events import EventKind
        from pptptop.decode.lcp import ControlCode
        from pptptop.track.model import Direction

        before = [EventKind.MESSAGE, ControlCode.ECHO_REQUEST, Direction.TO_CLIENT, EventKind["TICK"]]
        removed = enum_lookup_as_in_3_12()
        after = [EventKind.MESSAGE, ControlCode.ECHO_REQUEST, Direction.TO_CLIENT, EventKind["TICK"]]
        try:
            EventKind.NO_SUCH_MEMBER
            missing = "found"
        except AttributeError:
            missing = "AttributeError"
        print(json.dumps({
            "removed": removed, "again": enum_lookup_as_in_3_12(),
            "hook": "__getattr__" in vars(enum.EnumType),
            "same": all(a is b for a, b in zip(before, after)),
            "by_value": EventKind("message") is EventKind.MESSAGE and ControlCode(9) is ControlCode.ECHO_REQUEST,
            "name_value": [Direction.TO_CLIENT.name, Direction.TO_CLIENT.value, EventKind.MESSAGE.value],
            "missing": missing,
            "new_enum": enum.IntEnum("Late", "A B").B.value,
        }))
    """)
    assert res == {"removed": True, "again": False, "hook": False, "same": True, "by_value": True,
                   "name_value": ["TO_CLIENT", 1, "message"], "missing": "AttributeError", "new_enum": 2}


def test_an_enum_member_missing_from_its_class_keeps_the_hook() -> None:
    """The method is only dropped while it is dead code: every member an attribute of its class."""
    res = _run("""
        import enum, json
        from pptptop.runtime import enum_lookup_as_in_3_12

        class Odd(enum.Enum):
            A = 1
        del Odd._member_map_["A"]  # simulate a member the class dict lacks: the hook would be needed
        Odd._member_map_["B"] = Odd.A
        had = "__getattr__" in vars(enum.EnumType)
        print(json.dumps({"removed": enum_lookup_as_in_3_12(), "hook": "__getattr__" in vars(enum.EnumType),
                          "had": had}))
    """)
    assert res["removed"] is False
    assert res["hook"] == res["had"]


def test_the_command_runs_with_the_312_lookup() -> None:
    """``pptptop`` and ``python -m pptptop`` go through run(), which applies it before main()."""
    res = _run("""
        import enum, json, sys
        import pptptop.cli as cli

        def main(argv=None):
            print(json.dumps({"hook": "__getattr__" in vars(enum.EnumType)}))
            sys.stdout.flush()
            return 0

        cli.main = main
        cli.run()
    """)
    assert res == {"hook": False}
