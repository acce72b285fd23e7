"""Who holds a thread's rollback lock: the holder's identity, as data.

Taking and releasing the lock is a storage operation (`ops.LockThread`,
`ops.UnlockThread`); telling whether a recorded holder still runs reads the
operating system, so it lives outside the core (`langgraph_rollback._liveness`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LockHolder"]


@dataclass(frozen=True)
class LockHolder:
    """One rollback's claim on a thread: its process and a token of its own.

    Attributes:
        token: Unique per rollback.
        host: The host and pid namespace the process runs in
            (`_liveness.host_id()`): pids are comparable only within one.
        pid: The holder's process id.
        started: When that process started (`/proc/<pid>/stat`), so a
            process that reuses the pid is not taken for the holder.
    """

    token: str
    host: str
    pid: int
    started: str | None = None

    @property
    def owner(self) -> str:
        """The holder's process as effects' `owner` names it (`host#pid#started`)."""
        return f"{self.host}#{self.pid}#{self.started or ''}"

    def __str__(self) -> str:
        return describe_holder(self.host, self.pid, self.token)


def describe_holder(host: str, pid: int, token: str) -> str:
    """`host:pid:token` as error messages name a holder."""
    return f"{host.split('|')[0]}:{pid}:{token[:8]}"
