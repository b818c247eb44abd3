"""Themes: Textual CSS files shipped in ``pptptop/themes/`` (``themes/`` at the top of the repository).

A theme is a ``.tcss`` file with every colour pptptop uses (phase chips,
severities, ladder arrows, hex highlight). The built-in ones also pick the
Textual base palette they are drawn on. ``--theme`` takes a built-in name or
the path of a user's own ``.tcss`` file, which is drawn on the dark palette
unless its first line says ``/* base: light */`` (or ``contrast``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from textual.theme import Theme

BUILTIN = ("dark", "light", "contrast")

#: the Textual palette each built-in theme is drawn on
BASE_THEME = {"dark": "textual-dark", "light": "textual-light", "contrast": "pptptop-contrast"}

CONTRAST_THEME = Theme(
    name="pptptop-contrast",
    primary="#FFFF00",
    secondary="#00FFFF",
    accent="#FF00FF",
    warning="#FFFF00",
    error="#FF5555",
    success="#00FF00",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#1A1A1A",
    boost="#333333",
    dark=True,
)

_BASE_RE = re.compile(r"/\*\s*base:\s*(\w+)\s*\*/")


class ThemeError(ValueError):
    """A theme that cannot be used; the message is one sentence for the user."""


@dataclass(frozen=True, slots=True)
class ThemeSpec:
    name: str  # "dark" or the file's stem
    path: Path
    css: str
    base: str  # a Textual theme name


def themes_dir() -> Path:
    """Where the built-in ``.tcss`` files are, in the source tree or in an installed package."""
    return Path(str(resources.files("pptptop") / "themes"))


def load_theme(spec: str) -> ThemeSpec:
    """A built-in theme by name, or a ``.tcss`` file by path; raises :class:`ThemeError`."""
    if spec in BUILTIN:
        path = themes_dir() / f"{spec}.tcss"
        base = BASE_THEME[spec]
        name = spec
    else:
        path = Path(spec).expanduser()
        if path.suffix != ".tcss" and not path.exists():
            raise ThemeError(f"no theme {spec!r}: use {', '.join(BUILTIN)} or the path of a .tcss file")
        name = path.stem
        base = BASE_THEME["dark"]
    try:
        css = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ThemeError(f"cannot read theme file {path}: {e.strerror or e}") from None
    m = _BASE_RE.search(css[:200])
    if m is not None and spec not in BUILTIN:
        base = BASE_THEME.get(m.group(1), base)
    return ThemeSpec(name, path, css, base)


def next_theme(current: str, user: ThemeSpec | None = None) -> str:
    """The theme after ``current`` in the cycle: the built-ins, then the user's file if one was given."""
    cycle = [*BUILTIN, *([str(user.path)] if user is not None else [])]
    try:
        i = cycle.index(current)
    except ValueError:
        return cycle[0]
    return cycle[(i + 1) % len(cycle)]
