"""Command-line options for seeing inside tunnels: ``--secrets``, ``--password``, ``--nt-hash``, ``--decrypted``.

The CLI calls :func:`add_arguments` when it builds its parser,
:func:`usage_error` with the other usage checks, and :func:`load` before
anything is opened, as root: the secrets are read before any privilege drop.
No message here ever contains a secret: argparse shows an option's value only
when its type function raises ``ValueError``, so these raise
``ArgumentTypeError`` with a sentence of their own.
"""

from __future__ import annotations

import argparse
import binascii
from typing import IO, TYPE_CHECKING

from pptptop.inside.secrets import (
    Secret,
    SecretError,
    SecretStore,
    from_nt_hash,
    from_password,
    read_secrets_file,
)

if TYPE_CHECKING:
    from pptptop.inside.inspector import Inspector
    from pptptop.track.tracker import Tracker

__all__ = ["SecretError", "add_arguments", "inspector", "load", "load_or_say", "usage_error"]

NT_HASH_HEX = 32


def _password(text: str) -> Secret:
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("takes USER:PASSWORD (the user name, a colon, the password)")
    return from_password(user, password, "--password")


def _nt_hash(text: str) -> Secret:
    user, sep, hexed = text.rpartition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("takes USER:HASH (the user name, a colon, 32 hex digits)")
    try:
        raw = binascii.unhexlify(hexed.strip())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != NT_HASH_HEX // 2:
        raise argparse.ArgumentTypeError("takes USER:HASH, where HASH is the NT hash in 32 hex digits")
    return from_nt_hash(user, raw, "--nt-hash")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of docs/decryption.md."""
    g = p.add_argument_group("inside the tunnel (your own secrets; docs/decryption.md)")
    g.add_argument("--secrets", action="append", default=[], metavar="FILE",
                   help="pppd chap-secrets/pap-secrets FILE (repeatable): check each user's response and "
                        "decrypt MPPE of the tunnels whose user it names; read before privileges are dropped")
    g.add_argument("--password", action="append", default=[], type=_password, metavar="USER:PASS",
                   help="USER's password (repeatable; other users of this machine can see it in ps: "
                        "prefer --secrets)")
    g.add_argument("--nt-hash", action="append", default=[], type=_nt_hash, metavar="USER:HEX",
                   help="USER's NT password hash, 32 hex digits (MS-CHAP and MPPE only)")
    g.add_argument("--decrypted", action="store_true",
                   help="with -w FILE (or --export-tunnel ... -w FILE): write the decrypted inner IP packets "
                        "instead, as pcapng with one interface per tunnel")


def usage_error(args: argparse.Namespace) -> str | None:
    """A one-sentence complaint about these options, or None."""
    if args.decrypted and not args.write:
        return "--decrypted writes the inner packets to -w FILE: give -w FILE too"
    if args.decrypted and not (args.secrets or args.password or args.nt_hash):
        return "--decrypted needs a secret: --secrets FILE, --password USER:PASS or --nt-hash USER:HEX"
    if args.decrypted and (args.file_size is not None or args.rotate_seconds is not None or args.pcap):
        return "--decrypted writes one pcapng file: -C, -G, -W and --pcap do not apply"
    return None


def load(args: argparse.Namespace) -> tuple[SecretStore, list[str]]:
    """The secrets the options give, and warnings for stderr. Raises :class:`SecretError` (one sentence)."""
    files: list[Secret] = []
    warnings: list[str] = []
    for path in args.secrets:
        entries, warned = read_secrets_file(path)
        files.extend(entries)
        warnings.extend(warned)
        if not entries:
            warnings.append(f"{path} holds no secret (lines are: client server secret [addresses])")
    return SecretStore([*args.password, *args.nt_hash], files), warnings




def load_or_say(args: argparse.Namespace, err: IO[str]) -> SecretStore | None:
    """:func:`load` for the CLI: warnings and the error said on ``err`` (``pptptop: ...``); None on an error."""
    problem = usage_error(args)
    if problem:
        print(f"pptptop: {problem}", file=err)
        return None
    try:
        store, warnings = load(args)
    except SecretError as e:
        print(f"pptptop: {e}", file=err)
        return None
    for w in warnings:
        print(f"pptptop: warning: {w}", file=err)
    return store


def inspector(secrets: SecretStore, tracker: Tracker) -> Inspector | None:
    """The :class:`~pptptop.inside.inspector.Inspector` subscribed to ``tracker`` when secrets were given, else
    None. Subscribe it before the diagnosis, whose rules read what it finds. pycryptodome is loaded only then."""
    if not secrets:
        return None
    from pptptop.inside.inspector import Inspector

    return Inspector(secrets).attach(tracker)
