"""The one exception every decoder raises for bytes it cannot parse.

Codes are stable names in the style of Zeek's "weirds" (``truncated_gre``,
``pptp_bad_magic``): scripts and tests match on them, people read the detail.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """Bytes that do not parse as the protocol claims.

    ``code`` is a stable snake_case name; ``detail`` is one human sentence;
    ``offset`` is where in the buffer the problem was found, when known.
    """

    def __init__(self, code: str, detail: str, offset: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.offset = offset
