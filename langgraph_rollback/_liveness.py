"""Whether a recorded process still runs: the one place that asks the OS.

Lock rows and intents name the process that holds them: its host (hostname,
pid namespace and boot id: pids are comparable only within one), its pid,
and its start time (`/proc/<pid>/stat`, field 22), which a reused pid cannot
fake. A holder on this host is alive while a process with that pid *and that
start time* exists and is not a zombie (killed or exited but not yet reaped
by its parent, state Z); a holder with this process's own pid is alive only while
this process holds its token (a lock), or while the call is still in flight
(an intent). Holders on other hosts are assumed alive, since only their host
can tell: `release_rollback_lock` and `resolve_effect` settle them.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid

from langgraph_rollback.core.locks import LockHolder

__all__ = [
    "HOST",
    "PROCESS",
    "holder_alive",
    "host_id",
    "new_holder",
    "on_this_host",
    "owner_alive",
    "process",
    "process_started",
]


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


def _stat(pid: int) -> list[str] | None:
    """Fields 3 on of `/proc/<pid>/stat` (state first), or None when there is
    no such process or the system does not say."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            data = fh.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return data[data.rfind(")") + 2 :].split()


def process_started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), or None when there
    is no such process or the system does not say."""
    fields = _stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


HOST = host_id()
_STARTED = process_started(os.getpid()) or ""
PROCESS = f"{HOST}#{os.getpid()}#{_STARTED}"
"""This process, as intents record their owner: host, pid and start time.
Recomputed in a forked child (`process()` reads the current value)."""

_DEAD_STATES = frozenset({"Z", "X", "x"})
"""Process states (`/proc/<pid>/stat` field 3) of a process that runs no more:
zombie (exited, not yet reaped: `os.kill(pid, 0)` still succeeds) and dead."""

_LIVE_TOKENS: set[str] = set()
"""Tokens of the rollbacks that hold a lock in this process right now."""
_LIVE_LOCK = threading.Lock()


def process() -> str:
    """This process as an intent's owner (`PROCESS`, current after a fork)."""
    return PROCESS


def _after_fork_in_child() -> None:
    """A forked worker (gunicorn --preload, celery, a fork pool) is another
    process: it gets its own identity, and holds none of its parent's locks."""
    global _STARTED, PROCESS, _LIVE_LOCK
    _STARTED = process_started(os.getpid()) or ""
    PROCESS = f"{HOST}#{os.getpid()}#{_STARTED}"
    _LIVE_LOCK = threading.Lock()
    _LIVE_TOKENS.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def new_holder() -> LockHolder:
    """A holder for a new rollback in this process."""
    return LockHolder(
        token=uuid.uuid4().hex, host=HOST, pid=os.getpid(), started=_STARTED
    )


def mark_held(holder: LockHolder) -> None:
    """Note that this process now holds `holder`'s lock."""
    with _LIVE_LOCK:
        _LIVE_TOKENS.add(holder.token)


def mark_released(holder: LockHolder) -> None:
    """Note that this process no longer holds `holder`'s lock."""
    with _LIVE_LOCK:
        _LIVE_TOKENS.discard(holder.token)


def holder_alive(host: str, pid: int, token: str, started: str | None = None) -> bool:
    """Whether a recorded lock holder may still be running its rollback.

    `started` None (a row written before start times were recorded) trusts
    the pid alone.
    """
    if host != HOST:
        return True
    if pid == os.getpid():
        return token in _LIVE_TOKENS
    return _pid_alive(pid, started)


def on_this_host(owner: str) -> bool:
    """Whether an intent's owner (`PROCESS` of its writer) is on this host."""
    return owner.partition("#")[0] == HOST


def owner_alive(owner: str | None) -> bool:
    """Whether the process an intent names (`PROCESS` of its writer) may still
    be performing the call. Not for this process: the driver knows its own
    calls in flight."""
    if not owner:
        return False
    host, _, rest = owner.partition("#")
    pid_text, _, started = rest.partition("#")
    if host != HOST:
        return True
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return _pid_alive(pid, started or None)


def _pid_alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat(pid)
    if fields and fields[0] in _DEAD_STATES:
        return False  # killed or exited, not yet reaped by its parent
    if started is None:
        return True
    now = fields[19] if fields is not None and len(fields) > 19 else None
    return now is None or now == started
