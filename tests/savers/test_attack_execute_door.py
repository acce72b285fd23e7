"""The one door to storage (`BaseRollbackSaver.execute`/`aexecute`) with fault
points looked up only under a probe and lock liveness only around lock
operations: a probe set after construction, a LockThread that is refused,
an UnlockThread without a holder; the lock table and intents checked."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from langgraph_rollback import RollbackInProgressError, SqliteRollbackSaver
from langgraph_rollback._liveness import _LIVE_TOKENS, new_holder
from langgraph_rollback.core.ledger import changed_row
from langgraph_rollback.core.ops import Begin, LockThread, UnlockThread
from langgraph_rollback.core.store import FaultPoint
from tests.unit.build import row


def _intent(thread: str) -> Any:
    return Begin(
        changed_row(row(str(uuid.uuid4()), status="pending"), thread_id=thread)
    )


def _holders(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT holder FROM lgrb_locks")]


def test_a_probe_set_after_construction_sees_the_intent_points(tmp_path: Path) -> None:
    seen: list[tuple[FaultPoint, str | None]] = []
    with SqliteRollbackSaver.from_conn_string(str(tmp_path / "a.sqlite")) as saver:
        saver.execute(_intent("t"))
        saver.probe = lambda point, effect_id: seen.append((point, effect_id))
        op = _intent("t")
        saver.execute(op)
        saver.probe = None
        saver.execute(_intent("t"))
    points = [FaultPoint.BEFORE_INTENT, FaultPoint.AFTER_INTENT]
    assert seen == [(p, op.row.effect_id) for p in points]


async def test_a_refused_lock_leaves_the_live_holder_live_on_both_doors(
    tmp_path: Path,
) -> None:
    db = tmp_path / "a.sqlite"
    with (
        SqliteRollbackSaver.from_conn_string(str(db)) as first,
        SqliteRollbackSaver.from_conn_string(str(db)) as second,
    ):
        held, refused = new_holder(), new_holder()
        first.execute(LockThread("t", held))
        with pytest.raises(RollbackInProgressError):
            second.execute(LockThread("t", refused))
        with pytest.raises(RollbackInProgressError):
            await second.aexecute(LockThread("t", refused))
        assert held.token in _LIVE_TOKENS and refused.token not in _LIVE_TOKENS
        assert _holders(db) == [held.token]
        with pytest.raises(RollbackInProgressError):
            second.execute(_intent("t"))
        # Broken without a holder: the row goes, the intent goes in.
        second.execute(UnlockThread("t", None))
        assert _holders(db) == []
        assert second.execute(_intent("t"))[1]
        first.execute(UnlockThread("t", held))
        assert held.token not in _LIVE_TOKENS
