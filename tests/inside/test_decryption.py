"""MPPE decryption: the lab's s1 session with its own secret, and stateless/stateful traffic crafted with
pycryptodome the way Linux's ppp_mppe sends it (losses, reordering, flag packets, CCP Reset-Request)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from inside_support import (
    CCP,
    DATA,
    cp,
    ipv4_icmp,
    rfc_senders,
    rfc_session,
    run,
    run_file,
    secrets,
)

from pptptop.inside.inspector import Inspector
from pptptop.inside.mppe import Drop, plaintext_ok
from pptptop.inside.secrets import SecretStore, read_secrets_file
from pptptop.inside.state import DecryptState, inside_of
from pptptop.sources import open_file
from pptptop.track.tracker import Tracker

S1 = DATA / "s1-mschapv2-mppe128-outside.pcap"
CLIENT_IP, SERVER_IP = bytes([192, 0, 2, 10]), bytes([192, 0, 2, 1])


def _csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _valid(ip: bytes) -> bool:
    """IPv4: header and ICMP checksums (RFC 791, 792); IPv6: payload length and ICMPv6 checksum (RFC 4443)."""
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 0x0F) * 4
        if _csum(ip[:ihl]) != 0xFFFF or struct.unpack("!H", ip[2:4])[0] != len(ip):
            return False
        return ip[9] != 1 or _csum(ip[ihl:]) == 0xFFFF
    plen = struct.unpack("!H", ip[4:6])[0]
    if plen + 40 != len(ip):
        return False
    pseudo = ip[8:40] + struct.pack("!IxxxB", plen, ip[6])
    return ip[6] != 58 or _csum(pseudo + ip[40:]) == 0xFFFF


def lab(tmp_path: Path) -> SecretStore:
    path = tmp_path / "chap-secrets"
    shutil.copy(DATA / "lab-chap-secrets", path)
    path.chmod(0o600)
    return SecretStore([], read_secrets_file(str(path))[0])


class TestLab:
    def test_every_s1_mppe_packet_decrypts_to_valid_ip(self, tmp_path: Path) -> None:
        got: list[bytes] = []
        tracker = Tracker()
        inspector = Inspector(lab(tmp_path)).attach(tracker)
        inspector.sinks.append(lambda t, n, ts, ip: got.append(ip))
        for n, f in enumerate(open_file(str(S1)), 1):
            tracker.feed(n, f.ts, f.iface, f.linktype, f.data)
        (t,) = tracker.tunnels.values()
        inside = inside_of(t)
        assert inside is not None and inside.state is DecryptState.DECRYPTING
        assert (inside.bits, inside.stateless) == (128, True)
        mppe_packets = t.traffic[0].data_packets + t.traffic[1].data_packets
        assert mppe_packets == 22 == len(got) == inside.decrypted
        assert not inside.dropped
        assert all(_valid(ip) for ip in got)
        v4 = [ip for ip in got if ip[0] >> 4 == 4]
        assert len(v4) == 16 and {ip[9] for ip in v4} == {1}  # the lab's pings
        assert {ip[20] for ip in v4} == {0, 8}  # echo requests and replies

    def test_both_legs_of_s1_decrypt(self, tmp_path: Path) -> None:
        r = run_file(DATA / "s1-mschapv2-mppe128-both.pcapng", lab(tmp_path))
        insides = [r.inside(t) for t in r.tracker.tunnels.values()]
        assert len(insides) == 2 and all(i.decrypted == 22 and not i.dropped for i in insides)

    def test_batches_decrypt_as_frames_do(self, tmp_path: Path) -> None:
        """A tunnel with a tap leaves the batch counts: fed in batches, every packet still reaches it."""
        tracker = Tracker()
        Inspector(lab(tmp_path)).attach(tracker)
        first = 1
        for batch in open_file(str(DATA / "s1-mschapv2-mppe128-both.pcapng")).batches():
            tracker.feed_batch(batch, first)
            first += len(batch)
        for t in tracker.tunnels.values():
            inside = inside_of(t)
            assert inside is not None and inside.decrypted == 22

    def test_a_tunnel_without_secret_keeps_the_batch_path(self) -> None:
        r = run_file(DATA / "s5-two-clients-same-nat-outside.pcap", secrets(("alice", "wonderland-42")))
        by_user = {t.auth.user: t for t in r.tracker.tunnels.values()}
        assert by_user["alice"].tap is not None and by_user["bob"].tap is None
        assert r.inside(by_user["alice"]).decrypted > 0
        assert r.inside(by_user["bob"]).state is DecryptState.NO_SECRET

    def test_wrong_secret_accepted_by_the_server_is_not_decrypted(self) -> None:
        r = run_file(S1, secrets(("alice", "not-her-password")))
        assert r.only.tap is None
        assert r.inside().state is DecryptState.WRONG_SECRET and r.inside().decrypted == 0


def ping(i: int, reply: bool = False) -> bytes:
    src, dst = (SERVER_IP, CLIENT_IP) if reply else (CLIENT_IP, SERVER_IP)
    return b"\x00\x21" + ipv4_icmp(src, dst, 77, i, 40 + i % 50)


class TestStateless:
    @pytest.mark.parametrize("bits", [40, 56, 128])
    def test_every_strength(self, bits: int) -> None:
        w = rfc_session(bits)
        client, server = rfc_senders(bits, stateless=True)
        for i in range(20):
            w.gre("client", client.packet(ping(i))).gre("server", server.packet(ping(i, reply=True)))
        r = run(w.frames, secrets(("User", "clientPass")))
        inside = r.inside()
        assert (inside.bits, inside.decrypted, dict(inside.dropped)) == (bits, 40, {})

    def test_loss_and_reordering(self) -> None:
        """Lost packets cost one key change each; a late packet is decrypted with the key kept for its count."""
        w = rfc_session()
        client, _ = rfc_senders(128, stateless=True)
        frames = [client.packet(ping(i)) for i in range(300)]
        order = [f for i, f in enumerate(frames) if i not in (5, 6, 7, 100)]  # lost
        order[20], order[21] = order[21], order[20]  # swapped
        late = order.pop(40)
        order.insert(60, late)  # 20 packets late
        for f in order:
            w.gre("client", f)
        w.gre("client", frames[1])  # a repeat from long ago: its key is gone
        r = run(w.frames, secrets(("User", "clientPass")))
        inside = r.inside()
        assert inside.decrypted == 296 and dict(inside.dropped) == {Drop.LATE.value: 1}

    def test_coherency_count_wraps(self) -> None:
        w = rfc_session()
        client, _ = rfc_senders(128, stateless=True)
        for i in range(4200):
            f = client.packet(ping(i))
            if i >= 4090 or i % 500 == 0:  # a capture that missed most of them
                w.gre("client", f)
        r = run(w.frames, secrets(("User", "clientPass")))
        assert r.inside().decrypted == 9 + 110 and not r.inside().dropped

    def test_mppc_and_unencrypted_are_counted(self) -> None:
        w = rfc_session()
        client, _ = rfc_senders(128, stateless=True)
        w.gre("client", client.packet(ping(0)))
        f = bytearray(client.packet(ping(1)))
        f[4] |= 0x20  # C: compressed (MPPC, RFC 2118)
        w.gre("client", bytes(f))
        w.gre("client", b"\xff\x03\x00\xfd\x00\x05" + b"\x00" * 30)  # D clear: MPPC alone
        r = run(w.frames, secrets(("User", "clientPass")))
        assert r.inside().decrypted == 1
        assert dict(r.inside().dropped) == {Drop.COMPRESSED.value: 1, Drop.NOT_ENCRYPTED.value: 1}

    def test_keys_that_do_not_decrypt_are_given_up(self) -> None:
        """A server that accepted the response but whose keys differ (not pppd's derivation): explained."""
        from inside_support import Sender

        from pptptop.inside.mppe import GIVE_UP_AFTER

        w = rfc_session()
        s = Sender(bytes(range(16)), 128, stateless=True)  # not the session's start key
        for i in range(GIVE_UP_AFTER + 4):
            w.gre("client", s.packet(ping(i)))
        r = run(w.frames, secrets(("User", "clientPass")))
        inside = r.inside()
        assert inside.state is DecryptState.FAILING and inside.decrypted == 0
        assert inside.dropped[Drop.INVALID.value] == GIVE_UP_AFTER
        assert inside.dropped[Drop.GAVE_UP.value] == 4


class TestStateful:
    def test_flag_packets_loss_reset_request_and_flush(self) -> None:
        """RFC 3078 §8.2: a new key at every flag packet (count 0x?FF); a lost packet makes the receiver drop
        everything until a flushed packet, which its CCP Reset-Request asks for; then the stream goes on."""
        w = rfc_session(stateless=False)
        client, server = rfc_senders(128, stateless=False)
        sent = replies = 0
        for i in range(800):  # crosses the flag packets 0x0FF, 0x1FF and 0x2FF
            f = client.packet(ping(i))
            if i == 300:
                continue  # lost on the way
            w.gre("client", f)
            sent += 1
            if i == 305:  # the server's pppd noticed at 301 and asks for a reset (RFC 1962 §2.2)
                w.ppp("server", CCP, cp(14, 5))
                client.reset = True
                w.ppp("client", CCP, cp(15, 5))
            if i % 100 == 0:
                w.gre("server", server.packet(ping(i, reply=True)))
                replies += 1
        r = run(w.frames, secrets(("User", "clientPass")))
        inside = r.inside()
        assert (inside.stateless, inside.reset_requests, inside.reset_acks) == (False, 1, 1)
        # 301..305 arrive before the flushed packet (306): dropped while waiting for it
        assert dict(inside.dropped) == {Drop.RESYNC.value: 5}
        assert inside.decrypted == sent - 5 + replies

    def test_missed_flag_packet_in_a_loss(self) -> None:
        """The loss spans a flag packet: one key change per flag packet missed, then the flushed one."""
        w = rfc_session(stateless=False)
        client, _ = rfc_senders(128, stateless=False)
        for i in range(400):
            f = client.packet(ping(i))
            if 250 <= i < 270:  # 0x0FF (255) lost with its neighbours
                continue
            if i == 280:
                client.reset = True  # the Reset-Request is not in the capture either
            w.gre("client", f)
        r = run(w.frames, secrets(("User", "clientPass")))
        inside = r.inside()
        assert dict(inside.dropped) == {Drop.RESYNC.value: 11}  # 270..280 before the flushed 281
        assert inside.decrypted == 250 + 400 - 281

    def test_plaintext_check(self) -> None:
        assert plaintext_ok(ping(3))
        assert plaintext_ok(b"\x21" + ping(3)[2:])  # PFC
        bad = bytearray(ping(3))
        bad[12] ^= 1  # the IPv4 header checksum no longer holds
        assert not plaintext_ok(bytes(bad))
        assert not plaintext_ok(b"\x80\x21" + ping(3)[2:])  # a control protocol is no data


class TestHostile:
    """Whatever a decrypting tunnel carries, nothing raises: it is counted."""

    @settings(max_examples=200, deadline=None)
    @given(st.booleans(), st.lists(st.tuples(st.integers(0, 255), st.integers(0, 4095), st.binary(max_size=64)),
                                   max_size=20))
    def test_receiver_never_raises(self, stateless: bool, packets: list[tuple[int, int, bytes]]) -> None:
        from pptptop.inside.mppe import MppeReceiver

        rx = MppeReceiver(bytes(range(16)), 128, stateless)
        for head, ccount, body in packets:
            out = rx.decrypt(head, ccount, body)
            assert isinstance(out, (bytes, Drop))

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.binary(max_size=80), max_size=12))
    def test_inspector_never_raises(self, payloads: list[bytes]) -> None:
        w = rfc_session()
        client, _ = rfc_senders(128, stateless=True)
        w.gre("client", client.packet(ping(0)))
        for p in payloads:
            w.gre("client", b"\xff\x03\x00\xfd" + p)
            w.gre("server", b"\x21" + p)
        r = run(w.frames, secrets(("User", "clientPass")))
        assert r.inside().decrypted >= 1
