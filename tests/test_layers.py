"""The house's joints, read from the package's source with ``ast``: no import cycles, no private reaching.

Every import of a pptptop module counts, wherever it is written: at module
level, under ``TYPE_CHECKING``, or inside a function (a function-local
import that breaks a cycle at run time is still the cycle). ``from pkg
import name`` is an import of ``pkg.name`` when that is a module, else of
``pkg``. The parent packages that Python imports on the way
(``pptptop/track/__init__.py`` for ``pptptop.track.tracker``) are not
counted: a package and its modules are one room.

A private name (``_name``, not a dunder) is its module's or object's own:
only ``self._x`` and ``cls._x`` read one, and no module imports another's.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pptptop"

#: private names that are not ours to rename, each with why: (module, the expression as written)
ALLOWED_PRIVATE = {
    # the documented way out of a forked child (os module docs): the read-ahead child must not run the
    # parent's atexit handlers or flush its stdio buffers twice
    ("pptptop.sources.readahead", "os._exit"),
    # textual-serve's Server builds its aiohttp app in _make_app and has no public hook for a middleware:
    # the token check wraps it; pyproject pins textual-serve to the minor version this was read against
    ("pptptop.serve.web", "super()._make_app"),
    ("pptptop.serve.web", "server._make_app"),
}


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = modules()


def imported(name: str, path: Path, tree: ast.AST) -> Iterator[tuple[int, str, str]]:
    """Each pptptop module ``name`` imports: (line, module, the name imported from it or "")."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pptptop":
                    yield node.lineno, alias.name, ""
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "pptptop":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if sub in MODULES else target, alias.name


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        edges[name] = {m for _, m, _ in imported(name, path, tree) if m in MODULES and m != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def private_reaches() -> list[tuple[str, int, str]]:
    """Every ``x._name`` with ``x`` not ``self``/``cls``, and every ``from m import _name`` of a pptptop module."""
    out = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        for line, module, alias in imported(name, path, tree):
            if alias.startswith("_") and not alias.startswith("__"):
                out.append((name, line, f"from {module} import {alias}"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            attr = node.attr
            if not attr.startswith("_") or (attr.startswith("__") and attr.endswith("__")):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            text = ast.unparse(node)
            if (name, text) not in ALLOWED_PRIVATE:
                out.append((name, node.lineno, text))
    return out


def test_no_import_cycles_between_pptptop_modules() -> None:
    assert cycles(graph()) == []


def test_no_module_reaches_into_another_modules_or_objects_private_names() -> None:
    assert private_reaches() == []


def test_the_checks_see_what_they_look_for() -> None:
    """The walk finds the imports written in each of the three places, and a private reach."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "from pptptop.track import model\n"
        "from . import events as ev\n"
        "if TYPE_CHECKING:\n"
        "    from pptptop.track.tracker import Tracker\n"
        "def f():\n"
        "    import pptptop.pipeline\n"
        "    from pptptop.track.unknown import _tid\n"
        "    return model._x\n")
    found = list(imported("pptptop.track.control", MODULES["pptptop.track.control"], tree))
    assert {(m, a) for _, m, a in found} == {
        ("pptptop.track.model", "model"), ("pptptop.track.events", "events"), ("pptptop.track.tracker", "Tracker"),
        ("pptptop.pipeline", ""), ("pptptop.track.unknown", "_tid")}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    attrs = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")]
    assert attrs == ["model._x"]
