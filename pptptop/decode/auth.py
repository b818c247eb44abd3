"""PPP authentication: PAP (RFC 1334), CHAP (RFC 1994) with MS-CHAPv1 (RFC 2433)
and MS-CHAPv2 (RFC 2759), and EAP (RFC 3748).

CHAP's Value is split per algorithm (the Algorithm octet of LCP's
Authentication-Protocol option, or inferred from the packet when unknown),
and the MS-CHAP Success/Failure message grammar is parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from pptptop.decode.errors import DecodeError

__all__ = [
    "EAP_TYPE_NAMES",
    "MSCHAP_ERRORS",
    "ChapAlgorithm",
    "ChapCode",
    "ChapPacket",
    "EapCode",
    "EapPacket",
    "EapType",
    "MsChapFailure",
    "MsChapSuccess",
    "MsChapV1ChangePassword",
    "MsChapV1ChangePasswordV2",
    "MsChapV1Response",
    "MsChapV2ChangePassword",
    "MsChapV2Response",
    "PapCode",
    "PapPacket",
    "decode_chap",
    "decode_eap",
    "decode_pap",
    "eap_type_name",
    "mschap_error_name",
    "parse_mschap_failure",
    "parse_mschap_success",
]


def _text(b: bytes) -> str:
    """A name or message as sent: one character per octet (latin-1), as PPTP's strings are, so no two
    different octet strings read the same (backslashreplace made the octet 0xff and the text ``\\xff`` one)."""
    return b.decode("latin-1")


def _header(info: bytes, what: str) -> tuple[int, int, int]:
    """Code, Identifier, Length of a 4-octet auth header; checks Length against the info."""
    if len(info) < 4:
        raise DecodeError("ppp_truncated", f"{what} header needs 4 octets, got {len(info)}", 0)
    length = (info[2] << 8) | info[3]
    if length < 4:
        raise DecodeError("ppp_bad_length", f"{what} Length {length} is below the 4-octet header", 2)
    if length > len(info):
        raise DecodeError("ppp_truncated", f"{what} Length {length} but only {len(info)} octets captured", 2)
    return info[0], info[1], length


# --- PAP (RFC 1334 §2.2) ---------------------------------------------------


class PapCode(IntEnum):
    """PAP packet codes (RFC 1334 §2.2)."""

    AUTHENTICATE_REQUEST = 1
    AUTHENTICATE_ACK = 2
    AUTHENTICATE_NAK = 3


@dataclass(frozen=True, slots=True)
class PapPacket:
    """A PAP packet: Authenticate-Request carries Peer-ID and Password (in clear);
    Ack/Nak carry a Message (RFC 1334 §2.2)."""

    code: int
    identifier: int
    length: int
    peer_id: str | None
    password: str | None
    message: str | None


def _counted(body: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """One length-prefixed field of PAP; DecodeError if it runs past the packet."""
    if pos >= len(body):
        raise DecodeError("pap_bad_field_length", f"PAP {what}-Length is missing", 4 + pos)
    n = body[pos]
    if pos + 1 + n > len(body):
        raise DecodeError("pap_bad_field_length",
                          f"PAP {what}-Length {n} runs past the packet", 4 + pos)
    return body[pos + 1:pos + 1 + n], pos + 1 + n


def decode_pap(info: bytes) -> PapPacket:
    """Decode a PAP packet (RFC 1334 §2.2)."""
    code, ident, length = _header(info, "PAP")
    body = info[4:length]
    if code == PapCode.AUTHENTICATE_REQUEST:
        peer, pos = _counted(body, 0, "Peer-ID")
        pwd, _ = _counted(body, pos, "Passwd")
        return PapPacket(code, ident, length, _text(peer), _text(pwd), None)
    if code in (PapCode.AUTHENTICATE_ACK, PapCode.AUTHENTICATE_NAK):
        msg, _ = _counted(body, 0, "Msg") if body else (b"", 0)
        return PapPacket(code, ident, length, None, None, _text(msg))
    return PapPacket(code, ident, length, None, None, None)


# --- CHAP (RFC 1994 §4), MS-CHAPv1 (RFC 2433), MS-CHAPv2 (RFC 2759) ---------


class ChapCode(IntEnum):
    """CHAP codes: RFC 1994 §4 (1–4), RFC 2433 §9 (5, 6), RFC 2759 §7 (7)."""

    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4
    CHANGE_PASSWORD_V1 = 5
    CHANGE_PASSWORD_V2 = 6
    CHANGE_PASSWORD = 7


class ChapAlgorithm(IntEnum):
    """CHAP Algorithm octet of LCP's Authentication-Protocol option (RFC 1994 §3, RFC 2433, RFC 2759)."""

    MD5 = 5
    MSCHAP = 0x80
    MSCHAPV2 = 0x81


MSCHAP_RESPONSE_SIZE = 49

#: Windows error codes of the MS-CHAP Failure packet (RFC 2433 §6, RFC 2759 §6).
MSCHAP_ERRORS: dict[int, str] = {
    646: "ERROR_RESTRICTED_LOGON_HOURS",
    647: "ERROR_ACCT_DISABLED",
    648: "ERROR_PASSWD_EXPIRED",
    649: "ERROR_NO_DIALIN_PERMISSION",
    691: "ERROR_AUTHENTICATION_FAILURE",
    709: "ERROR_CHANGING_PASSWORD",
}


def mschap_error_name(code: int) -> str:
    """The Windows name of an MS-CHAP ``E=`` code ("ERROR_AUTHENTICATION_FAILURE" for 691)."""
    return MSCHAP_ERRORS.get(code, f"ERROR_{code}")


@dataclass(frozen=True, slots=True)
class MsChapV2Response:
    """MS-CHAPv2 Response Value (RFC 2759 §4): 16 + 8 + 24 + 1 octets."""

    peer_challenge: bytes
    reserved: bytes
    nt_response: bytes
    flags: int


@dataclass(frozen=True, slots=True)
class MsChapV1Response:
    """MS-CHAPv1 Response Value (RFC 2433 §5): LM-Response, NT-Response, Use-Windows-NT flag."""

    lm_response: bytes
    nt_response: bytes
    use_nt: int


@dataclass(frozen=True, slots=True)
class MsChapSuccess:
    """MS-CHAPv2 Success message ``S=<40 hex> M=<msg>`` (RFC 2759 §5)."""

    authenticator: str
    message: str


@dataclass(frozen=True, slots=True)
class MsChapFailure:
    """MS-CHAP Failure message ``E=691 R=1 C=<hex> V=3 M=<msg>`` (RFC 2433 §6, RFC 2759 §6)."""

    error: int
    retry: bool
    challenge: bytes
    version: int | None
    message: str

    @property
    def error_name(self) -> str:
        return mschap_error_name(self.error)


@dataclass(frozen=True, slots=True)
class MsChapV2ChangePassword:
    """MS-CHAPv2 Change-Password packet body, code 7 (RFC 2759 §7): 582 octets."""

    encrypted_password: bytes
    encrypted_hash: bytes
    peer_challenge: bytes
    reserved: bytes
    nt_response: bytes
    flags: int


@dataclass(frozen=True, slots=True)
class MsChapV1ChangePassword:
    """MS-CHAPv1 Change Password (version 1) body, code 5 (RFC 2433 §9.1): 68 octets."""

    encrypted_lm_old_hash: bytes
    encrypted_lm_new_hash: bytes
    encrypted_nt_old_hash: bytes
    encrypted_nt_new_hash: bytes
    password_length: int
    flags: int


@dataclass(frozen=True, slots=True)
class MsChapV1ChangePasswordV2:
    """MS-CHAPv1 Change Password (version 2) body, code 6 (RFC 2433 §9.2): 598 octets."""

    encrypted_password: bytes
    encrypted_hash: bytes
    encrypted_lm_hash: bytes
    lm_response: bytes
    nt_response: bytes
    flags: int


@dataclass(frozen=True, slots=True)
class ChapPacket:
    """A CHAP packet (RFC 1994 §4).

    Challenge/Response: ``value`` and ``name``; the Response value is split
    into ``mschapv2_response`` or ``mschapv1_response``. Success/Failure:
    ``message`` and, for MS-CHAP, ``success``/``failure``. Change-Password
    (5, 6, 7): the body is in ``value`` and split into ``change_password``
    (code 7) or ``mschapv1_change_password`` (5, 6).
    """

    code: int
    identifier: int
    length: int
    value: bytes
    name: str
    message: str
    mschapv2_response: MsChapV2Response | None
    mschapv1_response: MsChapV1Response | None
    success: MsChapSuccess | None
    failure: MsChapFailure | None
    change_password: MsChapV2ChangePassword | None
    mschapv1_change_password: MsChapV1ChangePassword | MsChapV1ChangePasswordV2 | None = None


_SUCCESS_RE = re.compile(r"S=([0-9A-Fa-f]{40})(?:\s+M=(.*))?\s*\Z", re.DOTALL)
# ASCII digits only, and few enough for int() (which refuses over 4300 digits, and \d's other scripts' digits
# are no Windows error code)
_E_RE = re.compile(r"(?:^|\s)E=([0-9]{1,10})(?![0-9])")
_VERSION_RE = re.compile(r"[0-9]{1,10}\Z")


def parse_mschap_success(text: str) -> MsChapSuccess | None:
    """Parse ``S=<40 hex> M=<message>`` (RFC 2759 §5); None if the text is not that grammar.

    The message part is optional (some servers send only ``S=``).
    """
    m = _SUCCESS_RE.match(text)
    if m is None:
        return None
    return MsChapSuccess(m.group(1), m.group(2) or "")


def parse_mschap_failure(text: str) -> MsChapFailure | None:
    """Parse ``E=eeee R=r C=cccc V=vvvv M=msg`` (RFC 2433 §6, RFC 2759 §6); None without ``E=``.

    Lenient: fields may come in any order or be missing; ``M=`` takes the rest
    of the text; a C= that is not even-length hex gives an empty challenge;
    real pppd sends ``V=0``. E= and V= are ASCII decimal numbers of at most
    ten digits: anything else is no error code (None) or no version.
    """
    head, msg = text, ""
    m_at = re.search(r"(?:^|\s)M=", text)
    if m_at is not None:
        head = text[:m_at.start()]
        msg = text[m_at.end():]
    e = _E_RE.search(head)
    if e is None:
        return None
    fields: dict[str, str] = {}
    for token in head.split():
        key, sep, val = token.partition("=")
        if sep and key in ("E", "R", "C", "V") and key not in fields:
            fields[key] = val
    try:
        challenge = bytes.fromhex(fields.get("C", ""))
    except ValueError:
        challenge = b""
    version_text = fields.get("V", "")
    version = int(version_text) if _VERSION_RE.match(version_text) else None
    return MsChapFailure(
        error=int(e.group(1)),
        retry=fields.get("R", "0").strip() == "1",
        challenge=challenge,
        version=version,
        message=msg,
    )


def _split_response(value: bytes, algorithm: int | None) -> tuple[MsChapV2Response | None,
                                                                   MsChapV1Response | None]:
    if len(value) != MSCHAP_RESPONSE_SIZE or algorithm == ChapAlgorithm.MD5:
        return None, None
    if algorithm is None:
        # RFC 2759 §4: bytes 16..24 are Reserved (zero) after a random Peer-Challenge;
        # an MS-CHAPv1 client that omits the LM response zeroes all of bytes 0..24.
        v2 = not any(value[16:24]) and any(value[0:16])
        algorithm = ChapAlgorithm.MSCHAPV2 if v2 else ChapAlgorithm.MSCHAP
    if algorithm == ChapAlgorithm.MSCHAPV2:
        return MsChapV2Response(value[0:16], value[16:24], value[24:48], value[48]), None
    if algorithm == ChapAlgorithm.MSCHAP:
        return None, MsChapV1Response(value[0:24], value[24:48], value[48])
    return None, None


def _u(b: bytes) -> int:
    return int.from_bytes(b, "big")


def decode_chap(info: bytes, algorithm: int | None = None) -> ChapPacket:
    """Decode a CHAP packet (RFC 1994 §4) with MS-CHAP value splits.

    ``algorithm`` is the one LCP negotiated (5 MD5, 0x80 MS-CHAPv1, 0x81
    MS-CHAPv2). When None it is inferred: a 49-octet Response whose octets
    16..24 are zero (and 0..16 not) is MS-CHAPv2, any other 49-octet
    Response MS-CHAPv1; a Success text of the ``S=`` grammar is MS-CHAPv2;
    a Failure text with ``E=`` is parsed.
    """
    code, ident, length = _header(info, "CHAP")
    body = info[4:length]
    value = b""
    name = ""
    message = ""
    v2 = v1 = None
    success = None
    failure = None
    change = None
    change_v1: MsChapV1ChangePassword | MsChapV1ChangePasswordV2 | None = None
    ms = algorithm in (None, ChapAlgorithm.MSCHAP, ChapAlgorithm.MSCHAPV2)
    if code in (ChapCode.CHALLENGE, ChapCode.RESPONSE):
        if not body:
            raise DecodeError("chap_bad_value_size", "CHAP Value-Size is missing", 4)
        size = body[0]
        if 1 + size > len(body):
            raise DecodeError("chap_bad_value_size", f"CHAP Value-Size {size} runs past the packet", 4)
        value = body[1:1 + size]
        name = _text(body[1 + size:])
        if code == ChapCode.RESPONSE:
            v2, v1 = _split_response(value, algorithm)
    elif code in (ChapCode.SUCCESS, ChapCode.FAILURE):
        message = _text(body)
        if code == ChapCode.SUCCESS and algorithm in (None, ChapAlgorithm.MSCHAPV2):
            success = parse_mschap_success(message)
        elif code == ChapCode.FAILURE and ms:
            failure = parse_mschap_failure(message)
    else:
        value = body
        if code == ChapCode.CHANGE_PASSWORD and len(body) == 582:
            change = MsChapV2ChangePassword(body[0:516], body[516:532], body[532:548],
                                            body[548:556], body[556:580], _u(body[580:582]))
        elif code == ChapCode.CHANGE_PASSWORD_V1 and len(body) == 68:
            change_v1 = MsChapV1ChangePassword(body[0:16], body[16:32], body[32:48], body[48:64],
                                               _u(body[64:66]), _u(body[66:68]))
        elif code == ChapCode.CHANGE_PASSWORD_V2 and len(body) == 598:
            change_v1 = MsChapV1ChangePasswordV2(body[0:516], body[516:532], body[532:548],
                                                 body[548:572], body[572:596], _u(body[596:598]))
    return ChapPacket(code, ident, length, value, name, message, v2, v1, success, failure, change,
                      change_v1)


# --- EAP (RFC 3748 §4) -------------------------------------------------------


class EapCode(IntEnum):
    """EAP codes (RFC 3748 §4; 5 and 6 from RFC 6696)."""

    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4
    INITIATE = 5
    FINISH = 6


class EapType(IntEnum):
    """EAP method types (RFC 3748 §5 and IANA "Method Types")."""

    IDENTITY = 1
    NOTIFICATION = 2
    NAK = 3
    MD5_CHALLENGE = 4
    OTP = 5
    GTC = 6
    TLS = 13
    LEAP = 17
    SIM = 18
    TTLS = 21
    AKA = 23
    PEAP = 25
    MSCHAPV2 = 26
    FAST = 43
    PSK = 47
    IKEV2 = 49
    AKA_PRIME = 50
    PWD = 52
    TEAP = 55
    EXPANDED = 254
    EXPERIMENTAL = 255


EAP_TYPE_NAMES: dict[int, str] = {
    1: "Identity",
    2: "Notification",
    3: "Nak",
    4: "MD5-Challenge",
    5: "One-Time Password",
    6: "Generic Token Card",
    13: "TLS",
    17: "LEAP",
    18: "SIM",
    21: "TTLS",
    23: "AKA",
    25: "PEAP",
    26: "MS-CHAPv2",
    43: "FAST",
    47: "PSK",
    49: "IKEv2",
    50: "AKA'",
    52: "pwd",
    55: "TEAP",
    254: "Expanded",
    255: "Experimental",
}


def eap_type_name(t: int) -> str:
    """Name of an EAP method type ("Identity", "MD5-Challenge", "PEAP", …)."""
    return EAP_TYPE_NAMES.get(t, f"Unknown ({t})")


@dataclass(frozen=True, slots=True)
class EapPacket:
    """An EAP packet (RFC 3748 §4). Request/Response carry a Type and its data;
    ``identity`` is the Identity type's text (RFC 3748 §5.1)."""

    code: int
    identifier: int
    length: int
    type: int | None
    type_name: str
    identity: str | None
    data: bytes


def decode_eap(info: bytes) -> EapPacket:
    """Decode an EAP packet (RFC 3748 §4); a Request/Response without a Type is ``eap_missing_type``."""
    code, ident, length = _header(info, "EAP")
    body = info[4:length]
    if code in (EapCode.REQUEST, EapCode.RESPONSE):
        if not body:
            raise DecodeError("eap_missing_type", "EAP Request/Response without a Type octet", 4)
        etype = body[0]
        data = body[1:]
        identity = _text(data) if etype == EapType.IDENTITY else None
        return EapPacket(code, ident, length, etype, eap_type_name(etype), identity, data)
    return EapPacket(code, ident, length, None, "", None, body)
