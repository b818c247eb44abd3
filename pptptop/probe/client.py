"""The probe's PPTP client (PNS): one step at a time, stopping at the first that fails.

Steps (docs/probe.md): ``tcp`` (connect to 1723), ``control`` (Start-Control-
Connection, RFC 2637 §2.1-2.2), ``call`` (Outgoing-Call, §2.7-2.8), ``gre``
(LCP over enhanced GRE both ways, §4), ``lcp`` (RFC 1661), ``auth`` (MS-CHAPv2
RFC 2759, MS-CHAPv1 RFC 2433, CHAP-MD5 RFC 1994, PAP RFC 1334; with credentials only), ``ccp``
(MPPE, RFC 3078) and ``ipcp`` (RFC 1332, RFC 1877), then ``teardown``. A
failed step carries the diagnosis code the passive engine gives the same
failure (docs/diagnosis.md), seen from the client's side.

The raw sockets (GRE and ICMP) are opened by :meth:`ProbeSockets.open` before
the caller drops privileges; everything here runs in one thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from pptptop.decode import pptp as P
from pptptop.decode.mschap_crypto import (
    challenge_response,
    chap_md5_response,
    generate_authenticator_response,
    generate_nt_response,
)
from pptptop.diagnose.text import printable
from pptptop.probe import craft as C


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


STEPS = ("tcp", "control", "call", "gre", "lcp", "auth", "ccp", "ipcp", "teardown")


@dataclass(slots=True)
class Step:
    """One step's outcome: ``details`` holds what the server said (wire strings already escaped)."""

    name: str
    status: Status
    seconds: float | None
    summary: str
    details: dict[str, object] = field(default_factory=dict)
    code: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status.value, "ok": self.status is Status.OK,
                "seconds": None if self.seconds is None else round(self.seconds, 6),
                "summary": self.summary, "code": self.code, "details": self.details}


@dataclass(slots=True)
class ProbeResult:
    host: str
    address: str
    started: float  # wall clock
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> Step | None:
        return next((s for s in self.steps if s.status is Status.FAILED and s.name != "teardown"), None)

    def as_dict(self) -> dict[str, object]:
        bad = self.failed
        return {"host": printable(self.host), "address": self.address, "started": self.started,
                "ok": bad is None, "failed_step": bad.name if bad else None, "code": bad.code if bad else None,
                "steps": [s.as_dict() for s in self.steps]}


@dataclass(frozen=True, slots=True)
class Credentials:
    """Whom to authenticate as. Neither secret is ever shown (``repr`` hides them)."""

    user: str
    password: str | None = field(repr=False, default=None)
    nt_hash: bytes | None = field(repr=False, default=None)

    def can(self, name: str) -> bool:
        """Whether these credentials can answer the method ``name`` (PAP and CHAP-MD5 need the password;
        both MS-CHAPs need only the NT hash, which a password gives too)."""
        if name in ("MS-CHAPv2", "MS-CHAPv1"):
            return self.nt_hash is not None
        return name in ("CHAP-MD5", "PAP") and self.password is not None

    def why_not(self, name: str) -> str:
        """Why the probe Naks the method ``name``, in a few words."""
        if name == "EAP":
            return "the probe does not speak EAP"
        if name in ("CHAP-MD5", "PAP"):
            return f"{name} needs the password, not an NT hash"
        if name.startswith("MS-CHAP"):
            return f"{name} needs the password or the NT hash"
        return "the probe does not speak it"


@dataclass(slots=True)
class ProbeSockets:
    """The raw sockets the GRE step needs (CAP_NET_RAW), opened before privileges are dropped."""

    gre: socket.socket | None
    icmp: socket.socket | None
    why_not: str | None = None

    @classmethod
    def open(cls) -> ProbeSockets:
        try:
            g = socket.socket(socket.AF_INET, socket.SOCK_RAW, C.IPPROTO_GRE)
        except PermissionError:
            return cls(None, None, "raw GRE needs root or CAP_NET_RAW (try sudo)")
        try:
            i: socket.socket | None = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        except OSError:
            i = None
        return cls(g, i)

    def close(self) -> None:
        for s in (self.gre, self.icmp):
            if s is not None:
                s.close()


class _Stop(Exception):
    """The current step failed: the probe goes to the teardown."""


POLL_MAX = 0.25  # seconds one select() waits at most, so that a stop (the UI quitting) is seen soon
MAX_CONFIGURE = 10  # RFC 1661 §4.6 Max-Configure / Max-Failure
AUTH_ACCOUNT = {646, 647, 648, 649, 709}


class Probe:
    """One run of the probe against ``address``; :meth:`run` returns every step's outcome."""

    def __init__(self, host: str, address: str, sockets: ProbeSockets, *, timeout: float = 10.0,
                 credentials: Credentials | None = None, on_step: Callable[[Step], None] | None = None,
                 stop: threading.Event | None = None) -> None:
        self.host, self.address, self.socks = host, address, sockets
        self.stop = stop or threading.Event()  # set: every wait ends now, and the teardown runs without waiting
        self.timeout = timeout
        self.restart = min(3.0, timeout / 3)
        self.creds = credentials
        self.on_step = on_step
        self.result = ProbeResult(host, address, time.time())
        self.tcp: socket.socket | None = None
        self.tcp_buf = b""
        self.hangup: str | None = None
        self.clearing = False  # our Call-Clear-Request went out: its Call-Disconnect-Notify is no hang-up
        rnd = int.from_bytes(os.urandom(8), "big")
        self.call_id = (rnd & 0xFFFF) or 1
        self.serial = (rnd >> 16) & 0xFFFF
        self.magic = (rnd >> 32) or 1
        self.peer_call_id: int | None = None
        self.tx_seq = 0
        self.rx_seq: int | None = None
        self.ident = 0
        # what came back over GRE
        self.gre_in = 0
        self.early: list[bytes] = []  # GRE that came before the Outgoing-Call-Reply was read
        self.wrong_keys: set[int] = set()
        self.icmp: list[tuple[int, int]] = []
        # LCP
        self.lcp_ours: list[C.Option] = [(C.OPT_MAGIC, C.u32(self.magic))]
        self.lcp_req_id = -1
        self.lcp_answered = False  # any reply to our Configure-Request: our GRE reached the server
        self.lcp_acked = False
        self.lcp_peer_acked = False
        self.peer_lcp: list[C.Option] = []
        self.peer_lcp_raw: bytes | None = None
        self.refused_peer = False  # we Nak'd or Rejected the server's Configure-Request
        self.auth_asked: list[str] = []
        self.auth_naked = 0
        self.auth_refused: dict[str, str] = {}  # method the probe Nak'd -> why
        self.auth_agreed: str | None = None
        self.terminated: str | None = None
        self.proto_rejected: list[int] = []
        self.lcp_term_acked = False
        # authentication and NCPs
        self.auth_inbox: list[tuple[int, C.Control]] = []
        self.ncp = {C.IPCP: _Ncp(), C.CCP: _Ncp()}

    # --- steps ----------------------------------------------------------------------------------------

    def run(self) -> ProbeResult:
        try:
            self._step("tcp", self._tcp)
            self._step("control", self._control)
            self._step("call", self._call)
            if self.socks.gre is None:
                self._add(Step("gre", Status.SKIPPED, None, f"not tried: {self.socks.why_not}"))
            else:
                self._step("gre", self._gre)
                self._step("lcp", self._lcp)
                if self.creds is None:
                    self._add(Step("auth", Status.SKIPPED, None,
                                   "not tried: no credentials (--password USER:PASS or --nt-hash USER:HEX)"))
                else:
                    self._step("auth", self._auth)
                    self._step("ccp", self._ccp)
                    self._step("ipcp", self._ipcp)
        except _Stop:
            pass  # a step failed and said so in its result: the walk ends there, the teardown still runs
        self._teardown()
        return self.result

    def _add(self, step: Step) -> None:
        self.result.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    def _step(self, name: str, body: Callable[[dict[str, object]], tuple[str, str | None]]) -> None:
        """Run ``body``; it returns (summary, None) on success or (summary, code) on failure."""
        details: dict[str, object] = {}
        t0 = time.monotonic()
        summary, code = body(details)
        step = Step(name, Status.FAILED if code else Status.OK, time.monotonic() - t0, summary, details, code)
        self._add(step)
        if code:
            raise _Stop

    def _tcp(self, d: dict[str, object]) -> tuple[str, str | None]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        t0 = time.monotonic()
        try:
            s.connect((self.address, C.PPTP_PORT))
        except ConnectionRefusedError:
            s.close()
            d["answer"] = "RST"
            return f"{self.address}:1723 refused the connection (RST): nothing listens there", "server-refused"
        except TimeoutError:
            d["answer"] = "none"
            d["syn_retries"] = _syn_retries(s)
            s.close()
            return (f"no answer to the SYNs to {self.address}:1723 in {self.timeout:g} s (dropped on the way, "
                    "or the host is down)"), "server-unreachable"
        except OSError as e:
            d["syn_retries"] = _syn_retries(s)
            s.close()
            d["answer"] = "ICMP" if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) else "error"
            d["error"] = e.strerror or str(e)
            return f"cannot reach {self.address}:1723: {e.strerror or e}", "server-unreachable"
        d["connect_ms"] = round((time.monotonic() - t0) * 1000, 3)
        local = s.getsockname()
        d["local"] = f"{local[0]}:{local[1]}"
        self.tcp = s
        return f"connected to {self.address}:1723 in {d['connect_ms']} ms", None

    def _control(self, d: dict[str, object]) -> tuple[str, str | None]:
        self._send_tcp(C.sccrq())
        msg = self._wait_control(P.ControlMessageType.START_CONTROL_CONNECTION_REPLY)
        if not isinstance(msg, P.StartControlConnectionReply):
            return self._no_reply("Start-Control-Connection-Reply"), "control-refused"
        d.update({
            "result_code": msg.result_code,
            "result": P.result_name(msg.message_type, msg.result_code),
            "error_code": msg.error_code,
            "error": P.error_name(msg.error_code),
            "protocol_version": f"{msg.protocol_version >> 8}.{msg.protocol_version & 0xFF}",
            "vendor": printable(msg.vendor_string, 64),
            "host_name": printable(msg.host_name, 64),
            "firmware_revision": msg.firmware_revision,
            "framing_capabilities": P.framing_name(msg.framing_capabilities),
            "bearer_capabilities": P.bearer_name(msg.bearer_capabilities),
            "maximum_channels": msg.maximum_channels,
        })
        if msg.result_code != 1:
            return (f"Start-Control-Connection-Reply refused: {d['result']} ({msg.result_code}), "
                    f"error {d['error']}"), "control-refused"
        return f"control connection up: {d['vendor']!s} {d['host_name']!s}, firmware {msg.firmware_revision}", None

    def _call(self, d: dict[str, object]) -> tuple[str, str | None]:
        self._send_tcp(C.ocrq(self.call_id, self.serial))
        d["call_id"] = self.call_id
        msg = self._wait_control(P.ControlMessageType.OUTGOING_CALL_REPLY)
        if not isinstance(msg, P.OutgoingCallReply):
            return self._no_reply("Outgoing-Call-Reply"), "call-refused"
        d.update({
            "result_code": msg.result_code,
            "result": P.result_name(msg.message_type, msg.result_code),
            "error_code": msg.error_code,
            "error": P.error_name(msg.error_code),
            "cause_code": msg.cause_code,
            "server_call_id": msg.call_id,
            "peer_call_id": msg.peer_call_id,
            "connect_speed": msg.connect_speed,
            "packet_recv_window_size": msg.packet_recv_window_size,
        })
        if msg.result_code != 1:
            return (f"Outgoing-Call-Reply refused: {d['result']} ({msg.result_code}), error {d['error']}, "
                    f"cause {msg.cause_code}"), "call-refused"
        self.peer_call_id = msg.call_id
        early, self.early = self.early, []
        for datagram in early:
            self._read_gre(datagram)
        return f"call up: server call ID {msg.call_id}, ours {self.call_id}", None

    def _gre(self, d: dict[str, object]) -> tuple[str, str | None]:
        self._send_lcp_request()
        ok = self._pump(lambda: self.lcp_answered, self._send_lcp_request)
        d.update({"sent": self.tx_seq, "received": self.gre_in, "server_call_id": self.peer_call_id,
                  "our_call_id": self.call_id})
        if ok:
            return "GRE passes both ways: the server answered our LCP Configure-Request", None
        if self.icmp:
            d["icmp"] = [{"type": t, "code": c} for t, c in self.icmp]
            what = "protocol unreachable" if self.icmp[0][1] == 2 else f"code {self.icmp[0][1]}"
            return f"our GRE was answered with ICMP destination unreachable ({what})", "gre-icmp-unreachable"
        if self.wrong_keys and not self.gre_in:
            d["wrong_call_ids"] = sorted(self.wrong_keys)
            return (f"GRE came back to call ID {sorted(self.wrong_keys)}, not ours ({self.call_id}): a NAT on our "
                    "side without a PPTP helper"), "gre-wrong-call-id"
        hung = f"; the server then hung up ({self.hangup})" if self.hangup else ""
        if self.gre_in > 1:  # the server went on sending and never answered: it does not hear us
            return (f"one-way GRE: {self.gre_in} packets came from the server but our {self.tx_seq} "
                    f"Configure-Requests were never answered (our GRE does not reach it){hung}"), "gre-one-way"
        if self.gre_in:
            # its first packet and then nothing: the way back may have closed after it (a Linux NAT's PPTP helper
            # was seen to drop the server's GRE after its first packet when both ends' first GRE crossed it at
            # once: docs/probe.md)
            return (f"one-way GRE: 1 packet came from the server, then none, and our {self.tx_seq} "
                    "Configure-Requests were never answered: either our GRE does not reach the server or its GRE "
                    f"after the first packet does not reach us; from this side the two cannot be told apart{hung}"), \
                "gre-one-way"
        return (f"no GRE came back for {self.tx_seq} LCP Configure-Requests (GRE blocked one way or both; "
                f"from this side the two cannot be told apart){hung}"), "gre-blocked"

    def _lcp(self, d: dict[str, object]) -> tuple[str, str | None]:
        ok = self._pump(lambda: self.lcp_acked and self.lcp_peer_acked, self._send_lcp_request,
                        resend_now=not self.lcp_acked)
        d.update(self._lcp_details())
        if self.auth_refused:
            d["auth_refused"] = dict(self.auth_refused)
        if ok:
            asked = ", ".join(self.auth_asked) or "none"
            return f"LCP open: the server asks for {asked}", None
        if self.auth_naked and (self.terminated is not None or not self.lcp_peer_acked):
            return self._mismatch(), "auth-method-mismatch"
        return "LCP did not open" + (self._why_term() or f" in {self.timeout:g} s"), "lcp-failed"

    def _auth(self, d: dict[str, object]) -> tuple[str, str | None]:
        creds = self.creds
        assert creds is not None
        method = self.auth_agreed
        d["method"] = method
        d["user"] = printable(creds.user, 64)
        if method is None:
            got = self._pump(lambda: bool(self.auth_inbox) or self.ncp[C.IPCP].peer_req, None)
            if self.terminated is not None and self.auth_naked:
                return self._mismatch(), "auth-method-mismatch"
            if self.terminated is not None:
                return "the server ended the link before authentication" + self._why_term(), "lcp-failed"
            return ("the server asks for no authentication" if got else "nothing after LCP opened"), None
        if method == "PAP":
            return self._pap(d, creds)
        return self._chap(d, creds, method)

    def _pap(self, d: dict[str, object], creds: Credentials) -> tuple[str, str | None]:
        assert creds.password is not None
        user, pw = creds.user.encode(), creds.password.encode()
        ident = self._next_ident()

        def send() -> None:
            self._send_ppp(C.control(C.PAP, 1, ident, bytes((len(user),)) + user + bytes((len(pw),)) + pw))

        send()
        reply = self._wait_auth(C.PAP, send, (2, 3))
        if reply is None:
            return self._auth_silence(), "auth-failed"
        text = printable(reply.data[1:1 + reply.data[0]].decode("latin-1") if reply.data else "", 128)
        d["message"] = text
        if reply.code == 2:
            return "PAP: authenticated (the password went in clear)", None
        return f"PAP: Authenticate-Nak {text!r}", "auth-failed"

    def _chap(self, d: dict[str, object], creds: Credentials, method: str) -> tuple[str, str | None]:
        ch = self._wait_auth(C.CHAP, None, (1,))
        if ch is None:
            return self._auth_silence("no Challenge"), "auth-failed"
        vlen = ch.data[0] if ch.data else 0
        challenge = ch.data[1:1 + vlen]
        d["server_name"] = printable(ch.data[1 + vlen:].decode("latin-1"), 64)
        user = creds.user.encode()
        if method == "MS-CHAPv2":
            assert creds.nt_hash is not None
            if len(challenge) != 16:
                return f"MS-CHAPv2 Challenge of {len(challenge)} octets, not 16", "auth-failed"
            peer = os.urandom(16)
            nt = generate_nt_response(challenge, peer, user, creds.nt_hash)
            value = peer + bytes(8) + nt + b"\x00"
        elif method == "MS-CHAPv1":
            assert creds.nt_hash is not None
            if len(challenge) != 8:
                return f"MS-CHAPv1 Challenge of {len(challenge)} octets, not 8", "auth-failed"
            # RFC 2433 §3: no LAN Manager response (24 zeros), the NT response, UseNT = 1
            value = bytes(24) + challenge_response(challenge, creds.nt_hash) + b"\x01"
            d["response"] = "NT response only (UseNT=1, no LAN Manager response)"
        else:
            assert creds.password is not None
            value = chap_md5_response(ch.ident, creds.password.encode(), challenge)
        self._send_ppp(C.control(C.CHAP, 2, ch.ident, bytes((len(value),)) + value + user))
        reply = self._wait_auth(C.CHAP, None, (3, 4))
        if reply is None:
            return self._auth_silence("no Success or Failure"), "auth-failed"
        text = reply.data.decode("latin-1")
        d["message"] = printable(text, 256)
        if reply.code == 4:
            m = re.search(r"E=(\d{1,10})", text)
            e = int(m.group(1)) if m else None
            d["error"] = e
            code = "auth-account" if e in AUTH_ACCOUNT else "auth-failed"
            return f"{method} Failure" + (f" E={e}" if e is not None else ""), code
        if method == "MS-CHAPv2":
            assert creds.nt_hash is not None
            m = re.search(r"S=([0-9A-Fa-f]{40})", text)
            want = generate_authenticator_response(creds.nt_hash, nt, peer, challenge, user)
            d["authenticator_valid"] = bool(m and m.group(1).upper() == want)
            if not d["authenticator_valid"]:
                return ("MS-CHAPv2 Success, but its S= authenticator is wrong: the server does not know the "
                        "password (or something in between answers for it)"), "server-authenticator-invalid"
        return f"{method}: authenticated", None

    def _ccp(self, d: dict[str, object]) -> tuple[str, str | None]:
        ccp = self.ncp[C.CCP]
        ccp.ours = [(C.CCP_MPPE, C.u32(C.MPPE_H | C.MPPE_S | C.MPPE_M | C.MPPE_L))]
        self._send_ncp(C.CCP)
        ok = self._pump(lambda: ccp.opened or ccp.rejected or C.CCP in self.proto_rejected,
                        lambda: self._send_ncp(C.CCP))
        d["server_offers"] = _mppe_names(ccp.peer_bits) if ccp.peer_bits is not None else None
        agreed = _bits(ccp.ours)
        d["agreed"] = _mppe_names(agreed) if ccp.opened and agreed is not None else None
        if ccp.opened:
            return f"MPPE: {', '.join(d['agreed'] or [])}" if d["agreed"] else "CCP open", None  # type: ignore[arg-type]
        if ok:
            return "the server refused MPPE (CCP rejected)", "encryption-mismatch"
        return "CCP did not open" + (self._why_term() or f" in {self.timeout:g} s"), (
            "encryption-mismatch" if self.terminated is not None else "ncp-failed")

    def _ipcp(self, d: dict[str, object]) -> tuple[str, str | None]:
        ipcp = self.ncp[C.IPCP]
        zero = bytes(4)
        ipcp.ours = [(C.IPCP_ADDRESS, zero), (C.IPCP_DNS1, zero), (C.IPCP_DNS2, zero)]
        self._send_ncp(C.IPCP)
        ok = self._pump(lambda: ipcp.opened, lambda: self._send_ncp(C.IPCP))
        got = dict(ipcp.ours)
        d["address"] = socket.inet_ntoa(got[C.IPCP_ADDRESS]) if C.IPCP_ADDRESS in got else None
        d["dns"] = [socket.inet_ntoa(got[k]) for k in (C.IPCP_DNS1, C.IPCP_DNS2) if k in got]
        peer = dict(ipcp.peer_opts)
        d["server_address"] = socket.inet_ntoa(peer[C.IPCP_ADDRESS]) if len(peer.get(C.IPCP_ADDRESS, b"")) == 4 \
            else None
        if ok:
            return f"IPCP open: address {d['address']}, DNS {', '.join(d['dns']) or 'none'}", None  # type: ignore[arg-type]
        return "IPCP did not open" + (self._why_term() or f" in {self.timeout:g} s"), "ncp-failed"

    def _teardown(self) -> None:
        t0 = time.monotonic()
        d: dict[str, object] = {}
        wait = min(1.0, self.timeout)
        if self.tcp is None:
            return
        before = self.hangup
        last = ""
        if self.peer_call_id is not None and self.socks.gre is not None and self.terminated is None \
                and self.hangup is None:
            self._send_ppp(C.control(C.LCP, C.TERM_REQ, self._next_ident(), b"pptptop probe done"))
            last = "LCP Terminate-Request"
            self._pump(lambda: self.lcp_term_acked, None, limit=wait)
            d["lcp_terminate_ack"] = self.lcp_term_acked
        if self.peer_call_id is not None and self.hangup is None:
            self.clearing = True
            self._send_tcp(C.ccrq(self.call_id))
            last = "Call-Clear-Request"
            msg = self._wait_control(P.ControlMessageType.CALL_DISCONNECT_NOTIFY, limit=wait)
            d["call_disconnect_notify"] = msg is not None
        if self.hangup is None:
            self._send_tcp(C.stopccrq())
            last = "Stop-Control-Connection-Request"
            msg = self._wait_control(P.ControlMessageType.STOP_CONTROL_CONNECTION_REPLY, limit=wait)
            d["stop_control_reply"] = msg is not None
        with contextlib.suppress(OSError):
            self.tcp.shutdown(socket.SHUT_WR)
        self.tcp.close()
        d["fin"] = True
        if before:
            d["server_hung_up"] = before
        elif self.hangup and last:
            d["server_closed"] = f"{self.hangup} after our {last}"
        self._add(Step("teardown", Status.OK, time.monotonic() - t0, "closed: " + ", ".join(
            k for k, v in d.items() if v is True) if any(v is True for v in d.values()) else "closed", d))

    # --- helpers --------------------------------------------------------------------------------------

    def _no_reply(self, what: str) -> str:
        return f"no {what}" + (f": the server {self.hangup}" if self.hangup else f" in {self.timeout:g} s")

    def _why_term(self) -> str:
        if self.terminated is None:
            return ""
        return f"; the server sent LCP Terminate-Request {printable(self.terminated, 128)!r}"

    def _mismatch(self) -> str:
        """``auth-method-mismatch`` in words: what the server asked for and why the probe refused it."""
        refused = [f"{n}, {why}" for n, why in self.auth_refused.items()]
        if list(self.auth_refused) == ["EAP"]:
            head = "no authentication method in common: the server asks for EAP, which the probe does not speak"
        else:
            head = f"no authentication method in common: the server asked for {', '.join(self.auth_asked)}"
            if refused:
                head += f" ({'; '.join(refused)})"
        return head + self._why_term()

    def _auth_silence(self, what: str = "no answer") -> str:
        return what + (self._why_term() or f" in {self.timeout:g} s")

    def _lcp_details(self) -> dict[str, object]:
        opts = dict(self.peer_lcp)
        mru = opts.get(C.OPT_MRU)
        magic = opts.get(C.OPT_MAGIC)
        return {"auth_asked": list(self.auth_asked), "auth_agreed": self.auth_agreed,
                "mru": struct.unpack("!H", mru)[0] if mru and len(mru) == 2 else None,
                "magic": f"0x{struct.unpack('!I', magic)[0]:08x}" if magic and len(magic) == 4 else None,
                "pfc": C.OPT_PFC in opts, "acfc": C.OPT_ACFC in opts,
                "options": [k for k, _ in self.peer_lcp]}

    def _next_ident(self) -> int:
        self.ident = (self.ident + 1) & 0xFF
        return self.ident

    def _send_tcp(self, data: bytes) -> None:
        assert self.tcp is not None
        try:
            self.tcp.sendall(data)
        except OSError as e:
            self.hangup = self.hangup or f"closed the connection ({e.strerror or e})"

    def _read_tcp(self) -> None:
        assert self.tcp is not None
        try:
            chunk = self.tcp.recv(65536)
        except OSError as e:
            self.hangup = self.hangup or f"reset the connection ({e.strerror or e})"
            return
        if not chunk:
            self.hangup = self.hangup or "closed the connection (FIN)"
        self.tcp_buf += chunk

    def _control_messages(self) -> list[P.ControlMessage]:
        out: list[P.ControlMessage] = []
        while len(self.tcp_buf) >= 2:
            n = struct.unpack_from("!H", self.tcp_buf)[0]
            if n < P.HEADER_LENGTH:
                self.hangup = self.hangup or "sent a malformed control message"
                self.tcp_buf = b""
                break
            if len(self.tcp_buf) < n:
                break
            raw, self.tcp_buf = self.tcp_buf[:n], self.tcp_buf[n:]
            try:
                msg = P.decode_control(raw)
            except P.ControlDecodeError:
                continue
            if isinstance(msg, P.EchoRequest):
                self._send_tcp(C.echo_reply(msg.identifier))
                continue
            if isinstance(msg, P.CallDisconnectNotify) and not self.clearing:
                self.hangup = self.hangup or "sent Call-Disconnect-Notify"
            elif isinstance(msg, P.StopControlConnectionRequest):
                self.hangup = self.hangup or "sent Stop-Control-Connection-Request"
            out.append(msg)
        return out

    def _wait_control(self, want: int, limit: float | None = None) -> P.ControlMessage | None:
        """The first control message of type ``want`` within the step's timeout (GRE is read meanwhile)."""
        end = time.monotonic() + (self.timeout if limit is None else limit)
        while True:
            for msg in self._control_messages():
                if msg.message_type == want:
                    return msg
            if (self.hangup and not self.tcp_buf) or self.stop.is_set():
                return None
            left = end - time.monotonic()
            if left <= 0:
                return None
            self._poll(left)

    def _poll(self, wait: float) -> None:
        """Wait up to ``wait`` seconds for the control connection, GRE or ICMP, and take in what came."""
        socks = [s for s in (self.tcp, self.socks.gre, self.socks.icmp) if s is not None and s.fileno() >= 0]
        if self.hangup and self.tcp in socks:
            socks.remove(self.tcp)  # type: ignore[arg-type]
        if not socks:
            time.sleep(wait)
            return
        ready, _, _ = select.select(socks, [], [], min(max(0.0, wait), POLL_MAX))
        for s in ready:
            if s is self.tcp:
                self._read_tcp()
            elif s is self.socks.gre:
                self._read_gre(s.recv(65535))
            else:
                got = C.parse_icmp_gre(s.recv(65535), self.address)
                if got is not None:
                    self.icmp.append(got)

    def _pump(self, until: Callable[[], bool], resend: Callable[[], None] | None, *, limit: float | None = None,
              resend_now: bool = False) -> bool:
        """Take in packets until ``until()``, resending every restart interval; False on the timeout,
        an LCP Terminate-Request, an ICMP error for our GRE, or the server's hang-up."""
        end = time.monotonic() + (self.timeout if limit is None else limit)
        if resend_now and resend is not None:
            resend()
        next_send = time.monotonic() + self.restart
        while not until():
            now = time.monotonic()
            if now >= end or self.terminated is not None or self.icmp or self.hangup or self.stop.is_set():
                return until()
            if resend is not None and now >= next_send:
                resend()
                next_send = now + self.restart
            self._poll(min(end, next_send if resend else end) - now)
            self._control_messages()
        return True

    # --- PPP ------------------------------------------------------------------------------------------

    def _send_ppp(self, frame: bytes) -> None:
        assert self.socks.gre is not None and self.peer_call_id is not None
        self.tx_seq += 1
        with contextlib.suppress(OSError):
            self.socks.gre.sendto(C.gre(self.peer_call_id, self.tx_seq, self.rx_seq, frame), (self.address, 0))

    def _send_lcp_request(self) -> None:
        self.lcp_req_id = self._next_ident()
        self._send_ppp(C.control(C.LCP, C.CONF_REQ, self.lcp_req_id, C.options(self.lcp_ours)))

    def _send_ncp(self, proto: int) -> None:
        n = self.ncp[proto]
        n.req_id = self._next_ident()
        self._send_ppp(C.control(proto, C.CONF_REQ, n.req_id, C.options(n.ours)))

    def _read_gre(self, datagram: bytes) -> None:
        pkt = C.parse_gre(datagram)
        if pkt is None or pkt.source != self.address:
            return
        if pkt.call_id != self.call_id:
            self.wrong_keys.add(pkt.call_id)
            return
        if self.peer_call_id is None:
            if len(self.early) < 64:
                self.early.append(datagram)
            return
        self.gre_in += 1
        if pkt.seq is not None:
            self.rx_seq = pkt.seq
        if pkt.protocol is None:
            return
        cp = C.parse_control(pkt.payload)
        if cp is None:
            return
        if pkt.protocol == C.LCP:
            self._on_lcp(cp, pkt.payload)
        elif pkt.protocol in (C.CHAP, C.PAP):
            self.auth_inbox.append((pkt.protocol, cp))
        elif pkt.protocol in self.ncp:
            self._on_ncp(pkt.protocol, cp)
        else:
            self._send_ppp(C.control(C.LCP, C.PROTO_REJ, self._next_ident(),
                                     C.u16(pkt.protocol) + pkt.payload[:1400]))

    def _wait_auth(self, proto: int, resend: Callable[[], None] | None, codes: tuple[int, ...]) -> C.Control | None:
        """The first packet of ``proto`` with one of ``codes`` the server sent (taken from the inbox)."""
        found: list[C.Control] = []

        def take() -> bool:
            for i, (p, cp) in enumerate(self.auth_inbox):
                if p == proto and cp.code in codes:
                    found.append(cp)
                    del self.auth_inbox[i]
                    return True
            return False

        self._pump(take, resend)
        return found[0] if found else None

    def _acceptable_auth(self, value: bytes) -> str | None:
        """The auth method an option asks for, if we agree to it; None to Nak it."""
        proto = struct.unpack_from("!H", value)[0] if len(value) >= 2 else 0
        name = C.auth_name(proto, value[2] if len(value) >= 3 else None)
        if name not in self.auth_asked:
            self.auth_asked.append(name)
        if self.creds is None:
            return name  # no credentials: we never authenticate, so any method is agreed to see the rest
        if self.creds.can(name):
            return name
        self.auth_refused[name] = self.creds.why_not(name)
        return None

    def _on_lcp(self, cp: C.Control, raw: bytes) -> None:
        if cp.code == C.CONF_REQ:
            opts = C.parse_options(cp.data)
            if opts is None:
                return
            if self.refused_peer and cp.data != self.peer_lcp_raw:
                self.lcp_answered = True  # a new request after our Nak/Reject: the server got it
            self.peer_lcp, self.peer_lcp_raw = opts, cp.data
            rej = [(k, v) for k, v in opts if k not in (C.OPT_MRU, C.OPT_ACCM, C.OPT_AUTH, C.OPT_MAGIC,
                                                         C.OPT_PFC, C.OPT_ACFC)]
            nak: list[C.Option] = []
            agreed = None
            for k, v in opts:
                if k == C.OPT_AUTH:
                    agreed = self._acceptable_auth(v)
                    if agreed is None:
                        nak.append((C.OPT_AUTH, C.u16(C.CHAP) + bytes((C.MSCHAP_V2,))))
            self.refused_peer = bool(rej or nak)
            if rej:
                self._send_ppp(C.control(C.LCP, C.CONF_REJ, cp.ident, C.options(rej)))
            elif nak:
                self.auth_naked += 1
                self._send_ppp(C.control(C.LCP, C.CONF_NAK, cp.ident, C.options(nak)))
            else:
                self.auth_agreed = agreed
                self.lcp_peer_acked = True
                self._send_ppp(C.control(C.LCP, C.CONF_ACK, cp.ident, cp.data))
        elif cp.code in (C.CONF_ACK, C.CONF_NAK, C.CONF_REJ) and cp.ident == self.lcp_req_id:
            self.lcp_answered = True
            if cp.code == C.CONF_ACK:
                self.lcp_acked = True
                return
            opts = C.parse_options(cp.data) or []
            if cp.code == C.CONF_REJ:
                gone = {k for k, _ in opts}
                self.lcp_ours = [(k, v) for k, v in self.lcp_ours if k not in gone]
            else:
                suggested = dict(opts)
                self.lcp_ours = [(k, suggested.get(k, v) if k != C.OPT_MAGIC else C.u32(self._new_magic()))
                                 for k, v in self.lcp_ours]
            self._send_lcp_request()
        elif cp.code == C.TERM_REQ:
            self.terminated = cp.data.decode("latin-1")
            self.lcp_answered = self.lcp_answered or self.refused_peer  # the answer to our Nak/Reject
            self._send_ppp(C.control(C.LCP, C.TERM_ACK, cp.ident, b""))
        elif cp.code == C.TERM_ACK:
            self.lcp_term_acked = True
        elif cp.code == C.ECHO_REQ:
            self._send_ppp(C.control(C.LCP, C.ECHO_REP, cp.ident, C.u32(self.magic) + cp.data[4:]))
        elif cp.code == C.PROTO_REJ and len(cp.data) >= 2:
            self.proto_rejected.append(struct.unpack_from("!H", cp.data)[0])

    def _new_magic(self) -> int:
        self.magic = int.from_bytes(os.urandom(4), "big") or 1
        return self.magic

    def _on_ncp(self, proto: int, cp: C.Control) -> None:
        n = self.ncp[proto]
        if cp.code == C.CONF_REQ:
            opts = C.parse_options(cp.data)
            if opts is None:
                return
            n.peer_req = True
            n.peer_opts = opts
            if proto == C.CCP:
                mppe = dict(opts).get(C.CCP_MPPE)
                if mppe is not None and len(mppe) == 4:
                    n.peer_bits = (n.peer_bits or 0) | struct.unpack("!I", mppe)[0]
                rej = [(k, v) for k, v in opts if k != C.CCP_MPPE]
            else:
                rej = [(k, v) for k, v in opts if k != C.IPCP_ADDRESS]
            if rej:
                self._send_ppp(C.control(proto, C.CONF_REJ, cp.ident, C.options(rej)))
            else:
                n.peer_acked = True
                self._send_ppp(C.control(proto, C.CONF_ACK, cp.ident, cp.data))
        elif cp.code in (C.CONF_ACK, C.CONF_NAK, C.CONF_REJ) and cp.ident == n.req_id:
            opts = C.parse_options(cp.data) or []
            if cp.code == C.CONF_ACK:
                n.acked = True
                return
            n.rounds += 1
            if cp.code == C.CONF_REJ:
                gone = {k for k, _ in opts}
                if (proto == C.CCP and C.CCP_MPPE in gone) or (proto == C.IPCP and C.IPCP_ADDRESS in gone):
                    n.rejected = True
                    return
                n.ours = [(k, v) for k, v in n.ours if k not in gone]
            else:
                got = dict(opts)
                n.ours = [(k, got.get(k, v)) for k, v in n.ours]
                if proto == C.CCP:
                    n.peer_bits = (n.peer_bits or 0) | (_bits(n.ours) or 0)
            if n.rounds < MAX_CONFIGURE:
                self._send_ncp(proto)
        elif cp.code == C.TERM_REQ:
            self._send_ppp(C.control(proto, C.TERM_ACK, cp.ident, b""))
            n.rejected = True


@dataclass(slots=True)
class _Ncp:
    """One NCP's negotiation (IPCP or CCP), from the client's side."""

    ours: list[C.Option] = field(default_factory=list)
    req_id: int = -1
    acked: bool = False
    peer_acked: bool = False
    peer_req: bool = False
    peer_opts: list[C.Option] = field(default_factory=list)
    peer_bits: int | None = None
    rejected: bool = False
    rounds: int = 0

    @property
    def opened(self) -> bool:
        return self.acked and self.peer_acked


def _syn_retries(s: socket.socket) -> int | None:
    """How many times the kernel resent our SYN: ``tcpi_retransmits`` of TCP_INFO (linux/tcp.h), None where
    the platform has no TCP_INFO."""
    try:
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except (OSError, AttributeError):
        return None
    return info[2] if len(info) > 2 else None


def _bits(opts: list[C.Option]) -> int | None:
    v = dict(opts).get(C.CCP_MPPE)
    return struct.unpack("!I", v)[0] if v is not None and len(v) == 4 else None


def _mppe_names(bits: int | None) -> list[str]:
    """MPPE supported bits as names (RFC 3078 §2.1, RFC 3079)."""
    if bits is None:
        return []
    names = [n for b, n in ((C.MPPE_S, "128-bit"), (C.MPPE_M, "56-bit"), (C.MPPE_L, "40-bit")) if bits & b]
    if bits & C.MPPE_H:
        names.append("stateless")
    return names
