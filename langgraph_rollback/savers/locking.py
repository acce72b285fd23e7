"""The rollback lock as a row (SQLite, in memory): who holds it, and when it is free.

PostgreSQL uses advisory locks instead (`savers.aio_postgres`). Here the lock
is a row `(thread_id, holder token, host, pid)`; a row whose holder no longer
runs (`_liveness.holder_alive`) is taken over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph_rollback._errors import RollbackInProgressError
from langgraph_rollback._liveness import holder_alive
from langgraph_rollback.core.locks import LockHolder, describe_holder

__all__ = ["may_take", "refuse_if_locked"]


def _alive(row: Sequence[Any]) -> bool:
    token, host, pid = row[0], row[1], int(row[2])
    started = row[3] if len(row) > 3 else None
    return holder_alive(host, pid, token, started)


def refuse_if_locked(thread_id: str, row: Sequence[Any] | None) -> None:
    """Refuse an intent while a live rollback holds its thread.

    A run that races a rollback of its own thread fails at its next declared
    tool call, before acting: the rollback's plan could not include the call.

    Args:
        row: `(holder, host, pid, started)` from the lock table, or None.
    """
    if row is not None and _alive(row):
        raise RollbackInProgressError(
            thread_id=thread_id, holder=describe_holder(row[1], int(row[2]), row[0])
        )


def may_take(thread_id: str, row: Sequence[Any] | None, holder: LockHolder) -> bool:
    """Whether `holder` may take the lock given the current row.

    Returns True when the row must be cleared first (its holder is gone),
    False when the lock is free or already `holder`'s.

    Raises:
        RollbackInProgressError: A live rollback holds it.
    """
    if row is None or row[0] == holder.token:
        return False
    refuse_if_locked(thread_id, row)
    return True
