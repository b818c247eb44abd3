"""Findings from the user's own secrets (``--secrets``, ``--password``, ``--nt-hash``; docs/decryption.md).

With the secret of a tunnel's user, :mod:`pptptop.inside` checks the captured
response (RFC 1334, 1994, 2433, 2759) and, for MS-CHAPv2, the server's
authenticator response (RFC 2759 §5); these rules turn the last attempt's
check into a cause: the password, the account, or the server.
"""

from __future__ import annotations

from pptptop.decode.auth import mschap_error_name
from pptptop.diagnose.finding import Severity
from pptptop.diagnose.rules.base import Case, Hit, rule, wire
from pptptop.inside.state import CredentialCheck, Match, inside_of


def _last(c: Case) -> CredentialCheck | None:
    inside = inside_of(c.tunnel)
    return inside.last_check if inside is not None else None


def _evidence(check: CredentialCheck, *more: int | None) -> list[int]:
    return sorted({f for f in (check.response_frame, check.server_frame, *more) if f is not None})


def _failure(check: CredentialCheck) -> str:
    if check.error_code is not None:
        return f"Failure E={check.error_code} {mschap_error_name(check.error_code)}"
    return "Authenticate-Nak" if check.method == "PAP" else "Failure"


@rule("auth-wrong-password", Severity.ERROR, windows_error=691, on=("auth",))
def auth_wrong_password(c: Case) -> Hit | None:
    """The response does not follow from the known secret of its user, and the server refused it."""
    check = _last(c)
    if check is None or check.response is not Match.MISMATCH or check.server != "failure":
        return None
    return Hit(f"Wrong password for user {wire(check.user, 64)}",
               f"The {check.method} response in frame {check.response_frame} does not follow from the secret known "
               f"for {wire(check.user, 64)} ({check.secret_from}), and the server answered {_failure(check)} in "
               f"frame {check.server_frame}: the user typed another password than the one on file.",
               _evidence(check),
               "Have the user type the password again (Caps Lock, keyboard layout); if the password was changed, "
               "update the secret given to pptptop too.")


@rule("auth-server-rejected-good-password", Severity.ERROR, on=("auth",), unless=("auth-account",))
def auth_server_rejected_good_password(c: Case) -> Hit | None:
    """The response follows from the known secret, yet the server refused it: the account or the server."""
    check = _last(c)
    if check is None or check.response is not Match.MATCH or check.server != "failure":
        return None
    return Hit(f"Right password refused for user {wire(check.user, 64)}",
               f"The {check.method} response in frame {check.response_frame} follows from the secret known for "
               f"{wire(check.user, 64)} ({check.secret_from}), yet the server answered {_failure(check)} in frame "
               f"{check.server_frame}: the password is right, so the account or the server's policy refuses it "
               "(account disabled, locked or expired, no dial-in permission, logon hours, or a server whose copy "
               "of the password is another one).",
               _evidence(check),
               "Check the account on the server (RRAS/NPS: dial-in permission, network policy; pppd: the "
               "chap-secrets line of this user and the server name) and the server's log for this attempt.",
               windows_error=check.error_code)


@rule("server-authenticator-invalid", Severity.ERROR, on=("auth",))
def server_authenticator_invalid(c: Case) -> Hit | None:
    """MS-CHAPv2: the server's S= does not follow from the password (RFC 2759 §5, §8.7)."""
    check = _last(c)
    if check is None or check.authenticator is not Match.MISMATCH:
        return None
    return Hit("Server not authenticated: invalid MS-CHAPv2 authenticator response (security)",
               f"The server's Success in frame {check.authenticator_frame} carries an S= authenticator response "
               f"that does not follow from the password of {wire(check.user, 64)}, which the client's response "
               f"(frame {check.response_frame}) proves right: the server does not know the password, or a "
               "man in the middle answered in its place. A client that checks S= (Windows does) hangs up.",
               _evidence(check, check.authenticator_frame),
               "Treat it as an attack until explained: check the path to the VPN server (ARP/DNS spoofing, a rogue "
               "PPTP server) and the server's own configuration; move to a VPN that authenticates the server by "
               "certificate.")
