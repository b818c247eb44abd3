"""The published MS-CHAP, CHAP and MPPE key functions, as pure functions over bytes.

Each function is the RFC's pseudo-code of the same name: MS-CHAPv2 (RFC 2759
§8), MS-CHAPv1 (RFC 2433 §A), CHAP with MD5 (RFC 1994 §4.1) and the MPPE key
derivation (RFC 3079 §2-3, RFC 3078 §7). The primitives are pycryptodome's
(MD4, MD5, SHA-1, DES, ARC4); none is written here.

Nothing here knows a tunnel or keeps state: :mod:`pptptop.inside` feeds
these with what a capture shows and a secret the user gave.
"""

from __future__ import annotations

from Crypto.Cipher import ARC4, DES
from Crypto.Hash import MD4, MD5, SHA1

__all__ = [
    "MPPE_KEY_LENGTH",
    "challenge_hash",
    "challenge_response",
    "chap_md5_response",
    "generate_authenticator_response",
    "generate_nt_response",
    "get_asymmetric_start_key",
    "get_master_key",
    "get_new_key_from_sha",
    "hash_nt_password_hash",
    "initial_session_key",
    "lm_password_hash",
    "mschapv1_start_key",
    "next_session_key",
    "nt_password_hash",
    "reduce_session_key",
]

#: RFC 2759 §8.7 GenerateAuthenticatorResponse
MAGIC1 = b"Magic server to client signing constant"
MAGIC2 = b"Pad to make it do more than one iteration"
#: RFC 3079 §3.4 GetMasterKey, GetAsymmetricStartKey
MASTER_MAGIC = b"This is the MPPE Master Key"
SEND_MAGIC = b"On the client side, this is the send key; on the server side, it is the receive key."
RECEIVE_MAGIC = b"On the client side, this is the receive key; on the server side, it is the send key."
SHS_PAD1 = bytes(40)
SHS_PAD2 = b"\xf2" * 40
#: RFC 2433 §A.3 LmPasswordHash: the constant DES encrypts
LM_MAGIC = b"KGS!@#$%"
#: octets of an MPPE session key per strength in bits (RFC 3079 §3.3: 40- and 56-bit keys are 8 octets)
MPPE_KEY_LENGTH = {40: 8, 56: 8, 128: 16}
#: RFC 3078 §7.4 (RFC 3079 §2.1-2.2): the fixed first octets of a reduced key
SALT_40 = b"\xd1\x26\x9e"
SALT_56 = b"\xd1"


def _sha1(*parts: bytes) -> bytes:
    return SHA1.new(b"".join(parts)).digest()


def nt_password_hash(password: str) -> bytes:
    """RFC 2759 §8.3 NtPasswordHash: MD4 of the password in UTF-16 little-endian (16 octets)."""
    return MD4.new(password.encode("utf-16-le")).digest()


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """RFC 2759 §8.4 HashNtPasswordHash: MD4 of the NT hash."""
    return MD4.new(password_hash).digest()


def _des_key(key7: bytes) -> bytes:
    """RFC 2759 §8.6 DesEncrypt: 56 key bits spread over 8 octets, 7 bits each (the parity bit is ignored)."""
    bits = int.from_bytes(key7, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def _des(key7: bytes, clear: bytes) -> bytes:
    return DES.new(_des_key(key7), DES.MODE_ECB).encrypt(clear)


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """RFC 2759 §8.5 ChallengeResponse (RFC 2433 §A.5): DES of the 8-octet challenge under the three 7-octet
    thirds of the 16-octet hash padded with five zeros (24 octets)."""
    z = password_hash + bytes(5)
    return _des(z[0:7], challenge) + _des(z[7:14], challenge) + _des(z[14:21], challenge)


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: bytes) -> bytes:
    """RFC 2759 §8.2 ChallengeHash: SHA-1 of both challenges and the user name (without a ``DOMAIN\\``
    prefix, §4), first 8 octets."""
    user = username.rsplit(b"\\", 1)[-1]
    return _sha1(peer_challenge, authenticator_challenge, user)[:8]


def generate_nt_response(authenticator_challenge: bytes, peer_challenge: bytes, username: bytes,
                         password_hash: bytes) -> bytes:
    """RFC 2759 §8.1 GenerateNTResponse, from the NT hash rather than the password (24 octets)."""
    return challenge_response(challenge_hash(peer_challenge, authenticator_challenge, username), password_hash)


def generate_authenticator_response(password_hash: bytes, nt_response: bytes, peer_challenge: bytes,
                                    authenticator_challenge: bytes, username: bytes) -> str:
    """RFC 2759 §8.7 GenerateAuthenticatorResponse: the 40 upper-case hex digits after ``S=``."""
    digest = _sha1(hash_nt_password_hash(password_hash), nt_response, MAGIC1)
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return _sha1(digest, challenge, MAGIC2).hex().upper()


def lm_password_hash(password: str) -> bytes:
    """RFC 2433 §A.2-A.3 LmPasswordHash: the upper-cased password (at most 14 octets, zero-padded) as two
    DES keys over ``KGS!@#$%`` (16 octets). The OEM code page is taken as latin-1."""
    pw = password.upper().encode("latin-1", "replace")[:14].ljust(14, b"\0")
    return _des(pw[:7], LM_MAGIC) + _des(pw[7:], LM_MAGIC)


def chap_md5_response(identifier: int, secret: bytes, challenge: bytes) -> bytes:
    """RFC 1994 §4.1: MD5 of the Identifier, the secret and the Challenge Value (16 octets)."""
    return MD5.new(bytes((identifier & 0xFF,)) + secret + challenge).digest()


# --- MPPE keys (RFC 3079, RFC 3078 §7) --------------------------------------------------------------


def get_master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """RFC 3079 §3.4 GetMasterKey: SHA-1 of the NT hash's hash, the NT-Response and a constant (16 octets)."""
    return _sha1(password_hash_hash, nt_response, MASTER_MAGIC)[:16]


def get_asymmetric_start_key(master_key: bytes, length: int, is_send: bool, is_server: bool) -> bytes:
    """RFC 3079 §3.4 GetAsymmetricStartKey: the start key of one direction.

    The client's send key is the server's receive key (:data:`SEND_MAGIC`), and the other way round.
    """
    magic = (RECEIVE_MAGIC if is_server else SEND_MAGIC) if is_send else (SEND_MAGIC if is_server else RECEIVE_MAGIC)
    return _sha1(master_key, SHS_PAD1, magic, SHS_PAD2)[:length]


def mschapv1_start_key(password_hash_hash: bytes, challenge: bytes) -> bytes:
    """RFC 3079 §2.4 (128-bit keys from MS-CHAPv1): SHA-1 of the NT hash's hash twice and the 8-octet
    challenge (16 octets; both directions use it). pppd takes its first 8 octets for 40- and 56-bit keys."""
    return _sha1(password_hash_hash, password_hash_hash, challenge)[:16]


def get_new_key_from_sha(start_key: bytes, session_key: bytes, length: int) -> bytes:
    """RFC 3078 §7.3 GetNewKeyFromSHA: SHA-1 of the start key, pad, the current session key and pad."""
    return _sha1(start_key[:length], SHS_PAD1, session_key[:length], SHS_PAD2)[:length]


def reduce_session_key(key: bytes, bits: int) -> bytes:
    """RFC 3078 §7.4: a 40-bit key's first three octets are 0xD1 0x26 0x9E, a 56-bit key's first 0xD1."""
    if bits == 40:
        return SALT_40 + key[3:8]
    if bits == 56:
        return SALT_56 + key[1:8]
    return key


def initial_session_key(start_key: bytes, bits: int) -> bytes:
    """RFC 3079 §3.5: the first session key of a direction, GetNewKeyFromSHA(start, start), reduced."""
    n = MPPE_KEY_LENGTH[bits]
    return reduce_session_key(get_new_key_from_sha(start_key, start_key, n), bits)


def next_session_key(start_key: bytes, session_key: bytes, bits: int) -> bytes:
    """RFC 3078 §7.3: the next session key: GetNewKeyFromSHA(start, current) encrypted with RC4 under
    itself, reduced."""
    n = MPPE_KEY_LENGTH[bits]
    interim = get_new_key_from_sha(start_key, session_key, n)
    return reduce_session_key(ARC4.new(interim).encrypt(interim), bits)
