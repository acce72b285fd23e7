"""Whether a rollback-lock holder still runs: the one place that asks the OS.

A lock row records the holder's host, pid and token (`core.locks.LockHolder`).
A holder on this host is alive while its process exists; a holder with this
process's own pid is alive only while this process holds its token (a
restarted process can reuse a pid, e.g. PID 1 in a container). Holders on
other hosts are assumed alive, since only their host can tell:
`release_rollback_lock` clears one that died.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid

from langgraph_rollback.core.locks import LockHolder

__all__ = ["HOST", "holder_alive", "host_id", "new_holder"]


def host_id() -> str:
    """This process's host, as far as process ids are comparable.

    Hostname plus the pid namespace and boot id: two containers sharing a
    hostname (host networking) but not a pid namespace count as two hosts.
    """
    parts = [socket.gethostname()]
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("")
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            parts.append(fh.read().strip()[:8])
    except OSError:
        parts.append("")
    return "|".join(parts)


HOST = host_id()

_LIVE_TOKENS: set[str] = set()
"""Tokens of the rollbacks that hold a lock in this process right now."""
_LIVE_LOCK = threading.Lock()


def new_holder() -> LockHolder:
    """A holder for a new rollback in this process."""
    return LockHolder(token=uuid.uuid4().hex, host=HOST, pid=os.getpid())


def mark_held(holder: LockHolder) -> None:
    """Note that this process now holds `holder`'s lock."""
    with _LIVE_LOCK:
        _LIVE_TOKENS.add(holder.token)


def mark_released(holder: LockHolder) -> None:
    """Note that this process no longer holds `holder`'s lock."""
    with _LIVE_LOCK:
        _LIVE_TOKENS.discard(holder.token)


def holder_alive(host: str, pid: int, token: str) -> bool:
    """Whether a recorded lock holder may still be running its rollback."""
    if host != HOST:
        return True
    if pid == os.getpid():
        return token in _LIVE_TOKENS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
