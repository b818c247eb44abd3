"""The RFC functions against the RFCs' own published vectors and the lab's s1 exchange."""

from __future__ import annotations

from Crypto.Cipher import ARC4

from pptptop.decode import mschap_crypto as mc

H = bytes.fromhex

# RFC 2759 §9.2 (and RFC 3079 §3.5, which reuses it)
USER = b"User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = H("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = H("21402324255E262A28295F2B3A337C7E")
NT_RESPONSE = H("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")


class TestMsChapV2:
    """RFC 2759 §9.2 and §9.3."""

    def test_password_hashes(self) -> None:
        ph = mc.nt_password_hash(PASSWORD)
        assert ph == H("44EBBA8D5312B8D611474411F56989AE")
        assert mc.hash_nt_password_hash(ph) == H("41C00C584BD2D91C4017A2A12FA59F3F")

    def test_challenge_hash_drops_the_domain(self) -> None:
        assert mc.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == H("D02E4386BCE91226")
        assert mc.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, b"DOMAIN\\User") == H("D02E4386BCE91226")

    def test_nt_response(self) -> None:
        ph = mc.nt_password_hash(PASSWORD)
        assert mc.generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, ph) == NT_RESPONSE

    def test_authenticator_response(self) -> None:
        ph = mc.nt_password_hash(PASSWORD)
        got = mc.generate_authenticator_response(ph, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER)
        assert "S=" + got == "S=407A5589115FD0D6209F510FE9C04566932CDA56"

    def test_des_key_expansion(self) -> None:
        """RFC 2759 §9.3: the 7-octet thirds of MyPw's hash as DES keys (parity bits are DES's to ignore)."""
        ph = mc.nt_password_hash("MyPw")
        assert ph == H("FC156AF7EDCD6C0EDDE3337D427F4EAC")
        assert bytes(b & 0xFE for b in mc._des_key(ph[0:7])) == bytes(b & 0xFE for b in H("FD0B5B5E7F6E34D9"))
        assert bytes(b & 0xFE for b in mc._des_key(ph[7:14])) == bytes(b & 0xFE for b in H("0E6E796737EA08FE"))

    def test_lab_s1_exchange(self) -> None:
        """The lab's s1 session: alice/wonderland-42 (tests/data/SOURCES.md), pppd's own S= response."""
        auth = H("78d3e230f1feb3eecb51764835cd1cd8")
        value = H("752e7bf3a2b720227a4a88a6cb9c44020000000000000000936d3fa6ce4d57a8c3bd59ddcd9e54b5e08d86d213f38bac00")
        ph = mc.nt_password_hash("wonderland-42")
        assert mc.generate_nt_response(auth, value[:16], b"alice", ph) == value[24:48]
        got = mc.generate_authenticator_response(ph, value[24:48], value[:16], auth, b"alice")
        assert got == "B871F9F9DC40D52A532426028FB23FCE6EF9FA33"
        assert mc.generate_nt_response(auth, value[:16], b"alice", mc.nt_password_hash("wonderland-43")) != value[24:48]


class TestMsChapV1:
    """RFC 2433 appendix B.2: password MyPw, challenge 10 2D B5 DF 08 5D 30 41."""

    CHALLENGE = H("102DB5DF085D3041")

    def test_nt_response(self) -> None:
        ph = mc.nt_password_hash("MyPw")
        assert mc.challenge_response(self.CHALLENGE, ph) == H("4E9D3C8F9CFD385D5BF4D3246791956CA4C351AB409A3D61")

    def test_lm_response(self) -> None:
        lm = mc.lm_password_hash("MyPw")
        assert lm == H("75BA30198E6D1975AAD3B435B51404EE")
        assert mc.challenge_response(self.CHALLENGE, lm) == H("91881D0152AB0C33C524135EC24A95EE64E23CDC2D33347D")


class TestChapMd5:
    def test_rfc1994_digest(self) -> None:
        """RFC 1994 §4.1: MD5 over Identifier ‖ secret ‖ Challenge, checked against the standard library's MD5."""
        import hashlib

        challenge = H("102DB5DF085D3041")
        assert mc.chap_md5_response(1, b"sepp", challenge) == hashlib.md5(b"\x01sepp" + challenge).digest()
        assert mc.chap_md5_response(1, b"sepp", challenge).hex() == "d39bfaf5d6855a948c8c81a85947502c"


class TestMppeKeys:
    """RFC 3079 §3.5: the sample derivations for 40-, 56- and 128-bit keys."""

    def master(self) -> bytes:
        phh = mc.hash_nt_password_hash(mc.nt_password_hash(PASSWORD))
        return mc.get_master_key(phh, NT_RESPONSE)

    def test_master_key(self) -> None:
        assert self.master() == H("FDECE3717A8C838CB388E527AE3CDD31")

    def test_start_key_is_the_servers_send_key(self) -> None:
        """§3.5's SendStartKey is the server's send key, which is the client's receive key."""
        start = mc.get_asymmetric_start_key(self.master(), 16, is_send=True, is_server=True)
        assert start == H("8B7CDC149B993A1BA118CB153F56DCCB")
        assert mc.get_asymmetric_start_key(self.master(), 16, is_send=False, is_server=False) == start
        assert mc.get_asymmetric_start_key(self.master(), 8, is_send=True, is_server=True) == start[:8]
        client_send = mc.get_asymmetric_start_key(self.master(), 16, is_send=True, is_server=False)
        assert client_send != start
        assert mc.get_asymmetric_start_key(self.master(), 16, is_send=False, is_server=True) == client_send

    def test_session_keys_and_sample_message(self) -> None:
        start = mc.get_asymmetric_start_key(self.master(), 16, is_send=True, is_server=True)
        k128 = mc.initial_session_key(start, 128)
        assert k128 == H("405CB2247A7956E6E211007AE27B22D4")
        assert ARC4.new(k128).encrypt(b"test message") == H("81848317DF68846272FB5ABE")
        k40 = mc.initial_session_key(start[:8], 40)
        assert k40 == H("D1269EC49FA62E3E")
        assert ARC4.new(k40).encrypt(b"test message") == H("929137917E5803D668D75898")
        assert mc.initial_session_key(start[:8], 56) == H("D15C00C49FA62E3E")

    def test_mschapv1_keys(self) -> None:
        """RFC 3079 §2.5 (MS-CHAPv1, clientPass): the LM hash and the 128-bit start and session keys.

        The RFC's step 3 prints the start key with one octet wrong (ac ca); its step 4 and the session key
        follow from ac c1.
        """
        challenge = H("102DB5DF085D3041")
        assert mc.lm_password_hash(PASSWORD) == H("76A152936096D7830E2390227404AFD2")
        phh = mc.hash_nt_password_hash(mc.nt_password_hash(PASSWORD))
        start = mc.mschapv1_start_key(phh, challenge)
        assert start == H("A8947850CFC0ACC1D1789FB62DDCDDB0")
        assert mc.initial_session_key(start, 128) == H("59D159BC09F76F1DA2A86A28FFEC0B1E")
        lm8 = mc.lm_password_hash(PASSWORD)[:8]
        assert mc.get_new_key_from_sha(lm8, lm8, 8) == H("D80801538CEC4A08")

    def test_rekey_changes_the_key_and_reduces_it(self) -> None:
        start = mc.get_asymmetric_start_key(self.master(), 16, is_send=True, is_server=True)
        k = mc.initial_session_key(start, 128)
        interim = mc.get_new_key_from_sha(start, k, 16)
        assert mc.next_session_key(start, k, 128) == ARC4.new(interim).encrypt(interim)
        k40 = mc.next_session_key(start[:8], mc.initial_session_key(start[:8], 40), 40)
        assert k40[:3] == b"\xd1\x26\x9e" and len(k40) == 8
        assert mc.next_session_key(start[:8], k40, 56)[:1] == b"\xd1"
