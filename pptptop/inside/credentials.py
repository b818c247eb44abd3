"""Checking a captured authentication against the user's known secret.

MS-CHAPv2: the NT-Response (RFC 2759 §8.1) and the server's ``S=``
authenticator response (§8.7); MS-CHAPv1: the NT-Response, or the LM-Response
when the client sent only that (RFC 2433 §A); CHAP with MD5: the digest
(RFC 1994 §4.1); PAP: the password itself (RFC 1334 §2.2.1). Each check says
``match``, ``mismatch`` or ``unverifiable`` (and why): only the NT hash is
known and the method needs the password.
"""

from __future__ import annotations

import hmac

from pptptop.decode import mschap_crypto as mc
from pptptop.inside.secrets import Secret
from pptptop.inside.state import CredentialCheck, Match

__all__ = ["CredentialCheck", "Match", "check_chap_md5", "check_mschapv1", "check_mschapv2",
           "check_mschapv2_authenticator", "check_pap"]

NEEDS_PASSWORD = "only the NT hash is known, and {method} needs the password"


def _same(a: bytes, b: bytes) -> Match:
    return Match.MATCH if hmac.compare_digest(a, b) else Match.MISMATCH


def check_mschapv2(secret: Secret, authenticator_challenge: bytes, peer_challenge: bytes, username: bytes,
                   nt_response: bytes) -> Match:
    """RFC 2759 §8.1 GenerateNTResponse from the known NT hash, compared with the captured one."""
    expected = mc.generate_nt_response(authenticator_challenge, peer_challenge, username, secret.nt_hash)
    return _same(expected, nt_response)


def check_mschapv2_authenticator(secret: Secret, authenticator_challenge: bytes, peer_challenge: bytes,
                                 username: bytes, nt_response: bytes, received: str) -> Match:
    """RFC 2759 §8.7: the ``S=`` value the server must send if it knows the password (hex, any case)."""
    expected = mc.generate_authenticator_response(secret.nt_hash, nt_response, peer_challenge,
                                                  authenticator_challenge, username)
    return _same(expected.encode(), received.upper().encode("ascii", "replace"))


def check_mschapv1(secret: Secret, challenge: bytes, lm_response: bytes, nt_response: bytes,
                   use_nt: bool) -> tuple[Match, str]:
    """RFC 2433 §A.5: the NT-Response from the NT hash, or, when the client sent only the LM-Response
    (Use-Windows-NT 0), that from the LAN Manager hash (which needs the password)."""
    if use_nt:
        return _same(mc.challenge_response(challenge, secret.nt_hash), nt_response), ""
    if secret.password is None:
        return Match.UNVERIFIABLE, "the client sent only the LM-Response, and " + \
            NEEDS_PASSWORD.format(method="it")
    return _same(mc.challenge_response(challenge, mc.lm_password_hash(secret.password)), lm_response), ""


def check_chap_md5(secret: Secret, identifier: int, challenge: bytes, response: bytes) -> tuple[Match, str]:
    """RFC 1994 §4.1: MD5 of the Identifier, the secret's octets and the Challenge."""
    if secret.password is None:
        return Match.UNVERIFIABLE, NEEDS_PASSWORD.format(method="CHAP-MD5")
    data = secret.password.encode("latin-1", "replace")
    return _same(mc.chap_md5_response(identifier, data, challenge), response), ""


def check_pap(secret: Secret, password: str) -> tuple[Match, str]:
    """RFC 1334 §2.2.1: PAP carries the password itself."""
    if secret.password is None:
        return Match.UNVERIFIABLE, NEEDS_PASSWORD.format(method="PAP")
    return _same(secret.password.encode("utf-8", "surrogatepass"), password.encode("utf-8", "surrogatepass")), ""
