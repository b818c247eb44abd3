"""Credential checks and their findings: lab captures with the lab's secrets, and the RFCs' sample exchanges."""

from __future__ import annotations

import shutil
import struct

import pytest
from inside_support import (
    CHAP,
    DATA,
    PAP,
    Wire,
    cp,
    rfc_mschapv2,
    run,
    run_file,
    secrets,
)

from pptptop.inside.credentials import Match
from pptptop.inside.secrets import SecretStore, read_secrets_file
from pptptop.inside.state import DecryptState

H = bytes.fromhex
NEW = ("auth-wrong-password", "auth-server-rejected-good-password", "server-authenticator-invalid")


def lab_secrets(tmp_path, name: str = "lab-chap-secrets") -> SecretStore:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    shutil.copy(DATA / name, path)
    path.chmod(0o600)
    return SecretStore([], read_secrets_file(str(path))[0])


class TestLabCaptures:
    def test_s1_alice_right_password_and_genuine_server(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        r = run_file(DATA / "s1-mschapv2-mppe128-outside.pcap", lab_secrets(tmp_path))
        (check,) = r.inside().checks
        assert (check.method, check.user, check.response, check.server, check.authenticator) == \
            ("MS-CHAPv2", "alice", Match.MATCH, "success", Match.MATCH)
        assert (check.response_frame, check.server_frame) == (24, 25)
        assert not set(NEW) & set(r.codes())

    def test_s2_bob_wrong_password(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        r = run_file(DATA / "s2-mschapv2-wrong-password-outside.pcap", lab_secrets(tmp_path))
        (check,) = r.inside().checks
        assert (check.user, check.response, check.server, check.error_code) == ("bob", Match.MISMATCH, "failure", 691)
        assert "auth-wrong-password" in r.codes()
        assert "auth-failed" not in r.codes()  # the precise cause replaces the generic one
        f = next(f for f in r.only.findings if f.code == "auth-wrong-password")
        assert f.evidence == [24, 25] and f.windows_error == 691 and "'bob'" in f.title

    def test_s2_without_a_secret_keeps_the_generic_finding(self) -> None:
        r = run_file(DATA / "s2-mschapv2-wrong-password-outside.pcap", secrets(("alice", "x")))
        assert "auth-failed" in r.codes() and not set(NEW) & set(r.codes())
        assert r.inside().state is DecryptState.NO_SECRET

    def test_s6_pap_checked(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        r = run_file(DATA / "s6-pap-no-encryption-outside.pcap", lab_secrets(tmp_path, "lab-pap-secrets"))
        (check,) = r.inside().checks
        assert (check.method, check.user, check.response, check.server) == ("PAP", "carol", Match.MATCH, "success")
        stale = run_file(DATA / "s6-pap-no-encryption-outside.pcap", secrets(("carol", "old-password")))
        assert stale.inside().checks[0].response is Match.MISMATCH
        assert stale.inside().state is DecryptState.WRONG_SECRET  # accepted: the secret given is not the user's
        assert not set(NEW) & set(stale.codes())


class TestRfcExchanges:
    """RFC 2759 §9.2's exchange (User/clientPass) with each server answer."""

    def session(self, **kw: object) -> Wire:
        return rfc_mschapv2(Wire().setup().lcp_up(), **kw)  # type: ignore[arg-type]

    def test_right_password_rejected_by_the_server(self) -> None:
        r = run(self.session(result=None).frames, secrets(("User", "clientPass")))
        assert "auth-server-rejected-good-password" in r.codes()
        assert "auth-failed" not in r.codes() and "auth-wrong-password" not in r.codes()
        f = next(f for f in r.only.findings if f.code == "auth-server-rejected-good-password")
        assert f.windows_error == 691

    def test_account_error_explains_it_already(self) -> None:
        failure = b"E=647 R=0 C=" + b"00" * 16 + b" V=3 M=disabled"
        r = run(self.session(result=None, failure=failure).frames, secrets(("User", "clientPass")))
        assert "auth-account" in r.codes() and "auth-server-rejected-good-password" not in r.codes()

    def test_wrong_password(self) -> None:
        r = run(self.session(result=None).frames, secrets(("User", "clientPasS")))
        assert "auth-wrong-password" in r.codes()

    def test_genuine_authenticator(self) -> None:
        r = run(self.session().frames, secrets(("User", "clientPass")))
        assert r.inside().checks[0].authenticator is Match.MATCH
        assert not set(NEW) & set(r.codes())

    def test_forged_authenticator(self) -> None:
        r = run(self.session(result=b"S=407A5589115FD0D6209F510FE9C04566932CDA57").frames,
                secrets(("User", "clientPass")))
        assert r.inside().checks[0].authenticator is Match.MISMATCH
        assert "server-authenticator-invalid" in r.codes()
        f = next(f for f in r.only.findings if f.code == "server-authenticator-invalid")
        assert f.severity.value == "error"

    def test_nt_hash_alone_checks_mschapv2(self) -> None:
        from pptptop.inside.options import _nt_hash

        store = SecretStore([_nt_hash("User:44EBBA8D5312B8D611474411F56989AE")])
        r = run(self.session(result=None).frames, store)
        assert "auth-server-rejected-good-password" in r.codes()

    def test_retry_after_failure_is_decided_by_the_last_attempt(self) -> None:
        w = rfc_mschapv2(self.session(result=None).at(1))
        r = run(w.frames, secrets(("User", "clientPass")))
        assert [c.server for c in r.inside().checks] == ["failure", "success"]
        assert not set(NEW) & set(r.codes())


class TestOtherMethods:
    def test_mschapv1_rfc2433(self) -> None:
        """RFC 2433 B.2: MyPw, challenge 10 2D B5 DF 08 5D 30 41."""
        w = Wire().setup().lcp_up(auth=b"\xc2\x23\x80")
        w.ppp("server", CHAP, cp(1, 3, b"\x08" + H("102DB5DF085D3041") + b"srv"))
        value = H("91881D0152AB0C33C524135EC24A95EE64E23CDC2D33347D") + \
            H("4E9D3C8F9CFD385D5BF4D3246791956CA4C351AB409A3D61") + b"\x01"
        w.ppp("client", CHAP, cp(2, 3, b"\x31" + value + b"bob"))
        w.ppp("server", CHAP, cp(4, 3, b"E=691 R=0 C=0011223344556677 V=2"))
        r = run(w.frames, secrets(("bob", "MyPw")))
        assert r.inside().checks[0].method == "MS-CHAP"
        assert "auth-server-rejected-good-password" in r.codes()
        assert "auth-wrong-password" in run(w.frames, secrets(("bob", "MyPW"))).codes()

    def test_mschapv1_lm_only_needs_the_password(self) -> None:
        from pptptop.inside.options import _nt_hash

        w = Wire().setup().lcp_up(auth=b"\xc2\x23\x80")
        w.ppp("server", CHAP, cp(1, 3, b"\x08" + H("102DB5DF085D3041") + b"srv"))
        value = H("91881D0152AB0C33C524135EC24A95EE64E23CDC2D33347D") + bytes(24) + b"\x00"
        w.ppp("client", CHAP, cp(2, 3, b"\x31" + value + b"bob"))
        assert run(w.frames, secrets(("bob", "MyPw"))).inside().checks[0].response is Match.MATCH
        only_hash = run(w.frames, SecretStore([_nt_hash("bob:" + "FC156AF7EDCD6C0EDDE3337D427F4EAC")]))
        assert only_hash.inside().checks[0].response is Match.UNVERIFIABLE

    @pytest.mark.parametrize(("password", "code"), [("sepp", "auth-server-rejected-good-password"),
                                                    ("Sepp", "auth-wrong-password")])
    def test_chap_md5(self, password: str, code: str) -> None:
        """RFC 1994 §4.1, Identifier 1, secret "sepp" (the PEAR Crypt_CHAP sample)."""
        w = Wire().setup().lcp_up(auth=b"\xc2\x23\x05")
        w.ppp("server", CHAP, cp(1, 1, b"\x08" + H("102DB5DF085D3041") + b"srv"))
        w.ppp("client", CHAP, cp(2, 1, b"\x10" + H("d39bfaf5d6855a948c8c81a85947502c") + b"carl"))
        w.ppp("server", CHAP, cp(4, 1, b"Access denied"))
        r = run(w.frames, secrets(("carl", password)))
        assert r.inside().checks[0].method == "CHAP-MD5"
        assert code in r.codes()

    def test_pap_wrong_password_nakked(self) -> None:
        w = Wire().setup().lcp_up(auth=b"\xc0\x23")
        w.ppp("client", PAP, cp(1, 1, b"\x04dave\x05guess"))
        w.ppp("server", PAP, cp(3, 1, struct.pack("!B", 4) + b"nope"))
        r = run(w.frames, secrets(("dave", "secret")))
        assert "auth-wrong-password" in r.codes()
