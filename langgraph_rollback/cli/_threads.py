"""`langgraph-rollback threads`: every thread of a database, with its effects.

One query per database over LangGraph's `checkpoints` table and the ledger;
the last activity is the later of the newest checkpoint (its id is a
time-ordered uuid6) and the latest change to one of the thread's effects.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from langgraph_rollback.savers.base import BaseRollbackSaver

__all__ = ["thread_rows"]


# Per thread: root checkpoints (and the newest id, a time-ordered uuid6), and
# effects (how many, how many are in the world now, the latest change).
_THREADS_SQL = """
SELECT thread_id, SUM(checkpoints) AS checkpoints, MAX(last_checkpoint) AS
    last_checkpoint, SUM(effects) AS effects, SUM(applied) AS applied,
    MAX(last_effect) AS last_effect
FROM (
    SELECT thread_id, COUNT(*) AS checkpoints, MAX(checkpoint_id) AS
        last_checkpoint, 0 AS effects, 0 AS applied, NULL AS last_effect
    FROM checkpoints WHERE checkpoint_ns = '' GROUP BY thread_id
    UNION ALL
    SELECT thread_id, 0, NULL, COUNT(*),
        SUM(CASE WHEN status = 'applied' THEN 1 ELSE 0 END), MAX(updated_at)
    FROM lgrb_effects GROUP BY thread_id
) AS per_thread
GROUP BY thread_id
"""


def thread_rows(saver: BaseRollbackSaver, limit: int | None) -> list[dict[str, Any]]:
    """Every thread of the database, the latest activity first."""
    fields = "thread_id checkpoints last_checkpoint effects applied last_effect"
    if hasattr(saver, "_cursor"):  # PostgreSQL: rows are dicts
        with saver._cursor() as cur:
            cur.execute(_THREADS_SQL)
            raw = [tuple(row[f] for f in fields.split()) for row in cur.fetchall()]
    else:
        sqlite_saver = cast(Any, saver)
        with sqlite_saver.lock:
            raw = list(sqlite_saver.conn.execute(_THREADS_SQL).fetchall())
    rows = []
    for thread_id, checkpoints, last_cp, effects, applied, last_effect in raw:
        times = [t for t in (_uuid6_time(last_cp), last_effect) if t is not None]
        rows.append(
            {
                "thread_id": thread_id,
                "checkpoints": int(checkpoints or 0),
                "effects": int(effects or 0),
                "applied": int(applied or 0),
                "last_activity": max(times) if times else None,
                "last_checkpoint_id": last_cp,
            }
        )
    rows.sort(key=lambda r: r["last_activity"] or "", reverse=True)
    return rows if limit is None else rows[:limit]


def _uuid6_time(checkpoint_id: str | None) -> str | None:
    """When a LangGraph checkpoint id (a uuid6) was made, as ISO 8601 UTC."""
    if checkpoint_id is None:
        return None
    try:
        value = uuid.UUID(checkpoint_id)
    except ValueError:
        return None
    if value.version != 6:
        return None
    ticks = ((value.int >> 80) << 12) | ((value.int >> 64) & 0x0FFF)
    moment = _GREGORIAN + timedelta(microseconds=ticks // 10)
    return moment.isoformat()


_GREGORIAN = datetime(1582, 10, 15, tzinfo=UTC)
