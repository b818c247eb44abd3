"""What every pppd printer shares: byte access that reads zeros past the end, pppd's string and header output."""

from __future__ import annotations

from collections.abc import Callable

Out = list[str]
Printer = Callable[[bytes, Out, bool], int]


class Buf:
    """Byte access that reads 0 past the end, as pppd's C would read whatever follows."""

    __slots__ = ("b", "n")

    def __init__(self, b: bytes) -> None:
        self.b = b
        self.n = len(b)

    def __getitem__(self, i: int) -> int:
        return self.b[i] if 0 <= i < self.n else 0

    def short(self, i: int) -> int:
        return (self[i] << 8) | self[i + 1]

    def long(self, i: int) -> int:
        return (self[i] << 24) | (self[i + 1] << 16) | (self[i + 2] << 8) | self[i + 3]

    def span(self, i: int, n: int) -> bytes:
        if n <= 0:
            return b""
        chunk = self.b[max(i, 0):max(i + n, 0)] if i < self.n else b""
        return chunk + b"\x00" * (n - len(chunk))


def print_string(b: bytes) -> str:
    """utils.c print_string: quoted, ``\\"`` and ``\\\\`` escaped, \\n \\r \\t, others as \\ooo octal."""
    out = ['"']
    for c in b:
        if 0x20 <= c <= 0x7E:
            if c in (0x22, 0x5C):
                out.append("\\")
            out.append(chr(c))
        elif c == 0x0A:
            out.append("\\n")
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x09:
            out.append("\\t")
        else:
            out.append(f"\\{c:03o}")
    out.append('"')
    return "".join(out)


def visible(b: bytes) -> str:
    """``%s`` of a wire string, but with what is not printable ASCII (and the backslash) as print_string's
    ``\\ooo``: pppd would write the octets raw, a terminal must not receive them."""
    return "".join(chr(c) if 0x20 <= c <= 0x7E and c != 0x5C else f"\\{c:03o}" for c in b)


def hexb(b: bytes) -> str:
    """``%.*B``: hex octets without separators."""
    return b.hex()


def ip(v: int) -> str:
    return f"{(v >> 24) & 0xFF}.{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}"


def header(b: Buf, out: Out, names: dict[int, str]) -> tuple[int, int] | None:
    """Code/id printing shared by every printer; None when pppd would print nothing (returns 0)."""
    if b.n < 4:
        return None
    code = b[0]
    length = b.short(2)
    if length < 4 or length > b.n:
        return None
    name = names.get(code)
    out.append(f" {name}" if name is not None else f" code=0x{code:x}")
    out.append(f" id=0x{b[1]:x}")
    return code, length
