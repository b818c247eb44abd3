"""Privilege drop, like tcpdump's ``-Z``: capture as root, decode as nobody.

Parsing bytes an attacker sent is the riskiest thing pptptop does, so it
should not be done as root. The order, as in tcpdump:

1. as root, open the capture sockets (``open_live``) and every output file
   (``-w``, ``--export-tunnel``'s target; ``--record-failed``'s directory is
   created if missing);
2. hand those files (and a directory we created) to the target user with
   ``fchown``, so the user can open them later;
3. switch for good to the target user — ``-Z USER``, by default the user who
   ran ``sudo`` (``SUDO_USER``), else ``nobody`` — before the first packet is
   decoded: supplementary groups (``initgroups``), then ``setresgid`` and
   ``setresuid`` (real, effective and saved IDs, so there is no way back);
4. harden: the capability bounding set is emptied (``PR_CAPBSET_DROP``),
   ambient capabilities cleared, ``PR_SET_NO_NEW_PRIVS`` set (no set-uid
   binary can give anything back), and the drop is verified: ``setuid(0)``
   must fail.

Files opened *after* the drop — rotated ``-w`` files, ``--record-failed``
files — are created as the target user, so their directory must be writable
by that user (tcpdump has the same rule).

``--no-drop-privileges`` keeps UID 0 for setups that need it — reading the
kernel's conntrack table over netlink needs ``CAP_NET_ADMIN`` — but even then
every capability except ``CAP_NET_ADMIN`` and ``CAP_NET_RAW`` (to reopen an
interface that went away and came back) is dropped, from the effective,
permitted, inheritable and bounding sets. The same capability sets can be
kept across a switch to another user (``keep=``): ``PR_SET_KEEPCAPS`` before
``setresuid``, then ``capset(2)``.

Capabilities are per thread: call this while the process has one thread.
``prctl(2)`` and ``capset(2)`` are called through ctypes (glibc's wrappers);
no extra dependency.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import pwd
import sys
import sysconfig
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

DEFAULT_USER: Final = "nobody"

PR_SET_KEEPCAPS: Final = 8
PR_CAPBSET_READ: Final = 23
PR_CAPBSET_DROP: Final = 24
PR_SET_NO_NEW_PRIVS: Final = 38
PR_CAP_AMBIENT: Final = 47
PR_CAP_AMBIENT_CLEAR_ALL: Final = 4
LINUX_CAPABILITY_VERSION_3: Final = 0x20080522


class Cap(IntEnum):
    """Capability numbers from ``linux/capability.h`` (the ones pptptop cares about)."""

    CAP_CHOWN = 0
    CAP_DAC_OVERRIDE = 1
    CAP_DAC_READ_SEARCH = 2
    CAP_FOWNER = 3
    CAP_KILL = 5
    CAP_SETGID = 6
    CAP_SETUID = 7
    CAP_SETPCAP = 8
    CAP_NET_BIND_SERVICE = 10
    CAP_NET_ADMIN = 12
    CAP_NET_RAW = 13
    CAP_SYS_ADMIN = 21


#: What ``--no-drop-privileges`` keeps: conntrack netlink reads, reopening capture sockets.
ROOT_KEEP: Final = (Cap.CAP_NET_ADMIN, Cap.CAP_NET_RAW)


class PrivDropError(Exception):
    """The privilege drop cannot be done; the message says what to do."""


@dataclass(frozen=True, slots=True)
class DropResult:
    """What the process runs as after :func:`drop_privileges` or :func:`limit_capabilities`."""

    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    kept: tuple[str, ...]  # capability names still effective

    def as_dict(self) -> dict[str, object]:
        return {"user": self.user, "uid": self.uid, "gid": self.gid, "capabilities": list(self.kept)}


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    fn = _c().prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    r = int(fn(option, arg2, arg3, 0, 0))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl({option}): {os.strerror(e)}")
    return r


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 40


def cap_name(n: int) -> str:
    try:
        return Cap(n).name
    except ValueError:
        return f"CAP_{n}"


def get_capabilities() -> tuple[int, int, int]:
    """``(effective, permitted, inheritable)`` of the calling thread, as 64-bit masks (capget(2))."""
    hdr = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _c().capget(ctypes.byref(hdr), data) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"capget: {os.strerror(e)}")
    def join(a: int, b: int) -> int:
        return a | (b << 32)
    return (join(data[0].effective, data[1].effective), join(data[0].permitted, data[1].permitted),
            join(data[0].inheritable, data[1].inheritable))


def set_capabilities(effective: int, permitted: int, inheritable: int = 0) -> None:
    """capset(2) for the calling thread (masks may only shrink the permitted set)."""
    hdr = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
    if _c().capset(ctypes.byref(hdr), data) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"capset: {os.strerror(e)}")


def _mask(caps: Iterable[int]) -> int:
    m = 0
    for c in caps:
        m |= 1 << int(c)
    return m


def _names(mask: int) -> tuple[str, ...]:
    return tuple(cap_name(i) for i in range(64) if mask >> i & 1)


def default_user(env: Mapping[str, str] | None = None) -> str:
    """``SUDO_USER`` (the person who ran sudo) unless it is empty or root, else ``nobody``."""
    e = os.environ if env is None else env
    user = e.get("SUDO_USER", "").strip()
    return user if user and user != "root" else DEFAULT_USER


def resolve_user(user: str) -> pwd.struct_passwd:
    """The password entry of a user name or numeric UID; :class:`PrivDropError` if unknown."""
    try:
        return pwd.getpwnam(user)
    except KeyError:
        pass
    if user.isdigit():
        try:
            return pwd.getpwuid(int(user))
        except KeyError:
            pass
    raise PrivDropError(f"no such user {user!r} for -Z (name an existing user, or use --no-drop-privileges)")


def _may(st: os.stat_result, pw: pwd.struct_passwd, groups: set[int], bits: int) -> bool:
    """Whether ``pw`` has all of ``bits`` (4 read, 2 write, 1 search) on a file, by its mode (ACLs aside)."""
    if pw.pw_uid == 0:
        return True
    if st.st_uid == pw.pw_uid:
        return (st.st_mode >> 6) & bits == bits
    if st.st_gid in groups:
        return (st.st_mode >> 3) & bits == bits
    return st.st_mode & bits == bits


def unreadable_for(user: str, paths: Iterable[str]) -> list[str]:
    """The directories in ``paths`` that ``user`` could not read after the drop.

    Python imports modules lazily: after the switch the target user must be
    able to reach and read the Python installation (a pyenv under ``/root``
    is not, for ``nobody``).
    """
    pw = resolve_user(user)
    groups = set(os.getgrouplist(pw.pw_name, pw.pw_gid))
    bad = []
    for path in paths:
        p = os.path.abspath(path)
        parts = p.split(os.sep)
        ok = True
        for i in range(1, len(parts) + 1):
            d = os.sep.join(parts[:i]) or os.sep
            try:
                st = os.stat(d)
            except OSError:
                ok = False
                break
            need = 5 if d == p else 1
            if not _may(st, pw, groups, need):
                ok = False
                break
        if not ok:
            bad.append(p)
    return bad


def installation_paths() -> list[str]:
    """The directories Python reads after a drop: the interpreter's, the standard library, site-packages
    and the pptptop package itself (wherever it is installed, an editable checkout included)."""
    paths = sysconfig.get_paths()
    here = os.path.dirname(os.path.abspath(__file__))
    found = {os.path.dirname(os.path.abspath(sys.executable)), here}
    found.update(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)
    return sorted(found)


def unreadable_installation(user: str) -> list[str]:
    """The directories of :func:`installation_paths` that ``user`` could not read after the drop."""
    return unreadable_for(user, installation_paths())


def _drop_bounding(keep_mask: int) -> None:
    """Empty the bounding set but for ``keep_mask`` (needs CAP_SETPCAP; best effort without it)."""
    for cap in range(last_cap() + 1):
        if keep_mask >> cap & 1:
            continue
        try:
            _prctl(PR_CAPBSET_DROP, cap)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM):
                raise


def _harden() -> None:
    with contextlib.suppress(OSError):
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def drop_privileges(user: str, *, keep: Iterable[Cap] = (), chown: Iterable[int] = ()) -> DropResult:
    """Become ``user`` for good, keeping only the capabilities in ``keep``.

    ``chown`` descriptors (output files opened as root) are given to the
    user first. Raises :class:`PrivDropError` when not root, when the user
    is unknown, or when the drop could not be verified.
    """
    if os.geteuid() != 0:
        raise PrivDropError("dropping privileges needs root")
    if threading.active_count() > 1:
        raise PrivDropError("privileges must be dropped before any thread starts")
    pw = resolve_user(user)
    uid, gid = pw.pw_uid, pw.pw_gid
    keep_mask = _mask(keep)
    for fd in chown:
        os.fchown(fd, uid, gid)
    _drop_bounding(keep_mask)
    try:
        os.initgroups(pw.pw_name, gid)
    except OSError:
        os.setgroups([gid])
    if keep_mask:
        _prctl(PR_SET_KEEPCAPS, 1)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if keep_mask:
        _, permitted, _ = get_capabilities()
        kept = keep_mask & permitted
        set_capabilities(kept, kept, 0)
        _prctl(PR_SET_KEEPCAPS, 0)
    _harden()
    _verify(uid, gid)
    effective, _, _ = get_capabilities()
    return DropResult(pw.pw_name, uid, gid, tuple(os.getgroups()), _names(effective))


def limit_capabilities(keep: Iterable[Cap] = ROOT_KEEP) -> DropResult:
    """Stay the same user (root for ``--no-drop-privileges``) but keep only ``keep`` capabilities."""
    keep_mask = _mask(keep)
    _drop_bounding(keep_mask)
    _, permitted, _ = get_capabilities()
    kept = keep_mask & permitted
    set_capabilities(kept, kept, 0)
    _harden()
    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return DropResult(name, uid, gid, tuple(os.getgroups()), _names(get_capabilities()[0]))


def _verify(uid: int, gid: int) -> None:
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise PrivDropError("privilege drop failed: user or group IDs did not all change")
    if uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise PrivDropError("privilege drop failed: root could be regained")


def proc_ids(pid: int | str = "self") -> dict[str, tuple[int, ...]]:
    """``Uid``, ``Gid``, ``CapEff``… lines of ``/proc/<pid>/status`` (what tests and admins check)."""
    out: dict[str, tuple[int, ...]] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid"):
                out[key] = tuple(int(x) for x in value.split())
            elif key in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
                out[key] = (int(value.strip(), 16),)
            elif key == "NoNewPrivs":
                out[key] = (int(value.strip()),)
    return out
