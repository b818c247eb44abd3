"""The user's own secrets: pppd's chap-secrets/pap-secrets files, ``--password`` and ``--nt-hash``.

A secrets file is read the way pppd 2.4.9 reads it (``options.c`` getword,
``auth.c`` scan_authfile): words separated by white space; ``#`` starts a
comment where a word could start; a word may be quoted with ``"`` or ``'``;
a backslash escapes (``\\n``, ``\\t``, ``\\s`` for a space, ``\\ooo`` octal,
``\\xhh`` hex, any other character itself; backslash-newline joins lines).
Each entry is ``client server secret [addresses...]`` up to the end of its
line; ``*`` is a wildcard; a secret ``@FILE`` is the first word of FILE.
Octets are taken as latin-1, one character each, as pppd hashes them.

Nothing here prints or formats a secret: :class:`Secret`'s ``repr`` hides it,
and every message names a file and a line, never what is on it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Secret", "SecretError", "SecretStore", "from_nt_hash", "from_password", "read_secrets_file",
           "readable_by_others"]

WILDCARD = "*"
#: pppd's MAXWORDLEN: longer words are cut
MAX_WORD = 1024
#: a secrets file larger than this is refused (pppd's are a few lines)
MAX_FILE = 4 << 20
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "s": " ", "t": "\t"}
_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"


class SecretError(Exception):
    """A secret that cannot be read or understood; the message is one sentence that shows no secret."""


@dataclass(frozen=True, slots=True)
class Secret:
    """One user's secret: the password when known, always its NT hash (RFC 2759 §8.3).

    ``client``/``server`` are the chap-secrets columns (``*`` a wildcard);
    ``source`` says where it came from (``--password``, ``FILE line N``).
    """

    client: str
    server: str
    source: str
    password: str | None = field(repr=False)
    nt_hash: bytes = field(repr=False)

    def __repr__(self) -> str:
        kind = "password" if self.password is not None else "NT hash"
        return f"Secret(client={self.client!r}, server={self.server!r}, source={self.source!r}, {kind} hidden)"

    __str__ = __repr__


def from_password(client: str, password: str, source: str, server: str = WILDCARD) -> Secret:
    from pptptop.decode.mschap_crypto import nt_password_hash  # pycryptodome: loaded only when secrets are given

    return Secret(client, server, source, password, nt_password_hash(password))


def from_nt_hash(client: str, nt_hash: bytes, source: str) -> Secret:
    return Secret(client, WILDCARD, source, None, nt_hash)


def _wild(word: str) -> bool:
    return word == WILDCARD


class SecretStore:
    """Secrets by user: the command line's first, then each file's entries in order."""

    def __init__(self, command_line: list[Secret] | None = None, files: list[Secret] | None = None) -> None:
        self.command_line = list(command_line or [])
        self.files = list(files or [])

    def __len__(self) -> int:
        return len(self.command_line) + len(self.files)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __repr__(self) -> str:
        return f"SecretStore({len(self)} secrets)"

    def lookup(self, user: str, server: str | None) -> Secret | None:
        """The secret for ``user`` authenticating to ``server`` (its CHAP name; None when unknown, as for PAP).

        As pppd's scan_authfile: an entry naming the client beats one naming the server, which beats a
        wildcard; the first of equals wins. ``DOMAIN\\user`` also finds ``user``. A secret given on the
        command line wins over the files.
        """
        names = [user]
        if "\\" in user:
            names.append(user.rsplit("\\", 1)[-1])
        for name in names:
            for pool in (self.command_line, self.files):
                found = _best(pool, name, server)
                if found is not None:
                    return found
        return None


def _best(pool: list[Secret], user: str, server: str | None) -> Secret | None:
    best: Secret | None = None
    best_flag = -1
    for s in pool:
        if s.client != user and not _wild(s.client):
            continue
        if server is not None and s.server != server and not _wild(s.server):
            continue
        flag = (2 if not _wild(s.client) else 0) + (1 if server is not None and not _wild(s.server) else 0)
        if flag > best_flag:
            best, best_flag = s, flag
    return best


# --- pppd's file syntax --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Word:
    text: str
    line: int
    newline_before: bool


def _words(text: str) -> Iterator[_Word]:
    """pppd's getword() over ``text``: each word, its line, and whether a newline came before it."""
    i, n, line = 0, len(text), 1
    newline = True
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            newline = True
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c == "\\" and i + 1 < n and text[i + 1] == "\n":
            i += 2
            line += 1
            continue
        if c.isspace():
            i += 1
            continue
        start_line = line
        quote = ""
        if c in "\"'":
            quote = c
            i += 1
        out: list[str] = []
        while i < n:
            c = text[i]
            if c == "\\":
                i += 1
                if i >= n:
                    break
                c = text[i]
                if c == "\n":
                    line += 1
                    i += 1
                    continue
                if c in _OCTAL:
                    j = i
                    while j < n and j - i < 3 and text[j] in _OCTAL:
                        j += 1
                    out.append(chr(int(text[i:j], 8) & 0xFF))
                    i = j
                    continue
                if c == "x":
                    j = i + 1
                    while j < n and j - i <= 2 and text[j] in _HEX:
                        j += 1
                    out.append(chr(int(text[i + 1:j], 16)) if j > i + 1 else "\0")
                    i = j
                    continue
                out.append(_ESCAPES.get(c, c))
                i += 1
                continue
            if quote:
                if c == quote:
                    i += 1
                    break
            elif c.isspace() or c == "#":
                break
            if c == "\n":
                line += 1
            out.append(c)
            i += 1
        yield _Word("".join(out)[:MAX_WORD], start_line, newline)
        newline = False


def readable_by_others(path: str) -> int | None:
    """The file's mode when its group or other users may read it (pppd wants 0600), else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return stat.S_IMODE(mode) if mode & (stat.S_IRGRP | stat.S_IROTH) else None


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        raise SecretError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise SecretError(f"cannot read {path}: it is a directory, not a secrets file") from None
    except PermissionError:
        raise SecretError(f"cannot read {path}: permission denied (run as root, or give --password)") from None
    except OSError as e:
        raise SecretError(f"cannot read {path}: {e.strerror or 'I/O error'}") from None
    if len(data) > MAX_FILE:
        raise SecretError(f"cannot read {path}: larger than {MAX_FILE >> 20} MiB, not a secrets file")
    return data.decode("latin-1")


def read_secrets_file(path: str) -> tuple[list[Secret], list[str]]:
    """The entries of a chap-secrets/pap-secrets file, and warnings (one sentence each, no secret in them).

    Raises :class:`SecretError` when the file cannot be read.
    """
    entries: list[Secret] = []
    warnings: list[str] = []
    mode = readable_by_others(path)
    if mode is not None:
        warnings.append(f"{path} is readable by other users (mode {mode:04o}): chmod 600 {path}")
    line_words: list[list[_Word]] = []
    for w in _words(_read(path)):
        if w.newline_before or not line_words:
            line_words.append([])
        line_words[-1].append(w)
    for words in line_words:
        if len(words) < 3:
            if len(words) == 2:
                warnings.append(f"{path} line {words[0].line}: an entry without a secret is ignored")
            continue
        client, server, secret = words[0].text, words[1].text, words[2].text
        where = f"{path} line {words[0].line}"
        if secret.startswith("@"):
            try:
                inner = next(_words(_read(secret[1:])), None)
            except SecretError:
                warnings.append(f"{where}: the secret's file (@FILE) cannot be read; entry ignored")
                continue
            if inner is None:
                warnings.append(f"{where}: the secret's file (@FILE) is empty; entry ignored")
                continue
            secret = inner.text
        entries.append(from_password(client, secret, where, server))
    return entries, warnings
