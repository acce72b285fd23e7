"""Kept tool outcomes (`savers.kept`) through a transaction that fails: an
exception, a KeyboardInterrupt, a cancelled async write landing inside the
transaction, nested use and an outcome kept meanwhile by another thread. The
outcome is put back (counted, or not with `counts=False`) and reaches the
file with a later write."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from langgraph_rollback import AsyncSqliteRollbackSaver, SqliteRollbackSaver
from langgraph_rollback.core.ledger import changed_row
from langgraph_rollback.core.ops import Begin, Update
from tests.unit.build import row

THREAD: Any = {"configurable": {"thread_id": "other", "checkpoint_ns": ""}}


def _status(db: Path, effect_id: str) -> str:
    with sqlite3.connect(db) as conn:
        (status,) = conn.execute(
            "SELECT status FROM lgrb_effects WHERE effect_id = ?", (effect_id,)
        ).fetchone()
    return str(status)


def _outcome(effect_id: str) -> Update:
    changes = {"status": "applied"}
    return Update(effect_id, changes, expect=("pending",), with_next_write=True)


def _intent(saver: Any) -> str:
    intent = changed_row(row(str(uuid.uuid4()), status="pending"), thread_id="t")
    saver.execute(Begin(intent))
    return intent.effect_id


def _fail_while_carrying(
    saver: Any, second: str, error: type[BaseException], *, counts: bool
) -> None:
    kept = saver._kept
    with kept.carrying(counts=counts) as carried:
        assert len(carried) == 1
        with kept.carrying() as inner:  # nested: nothing left to take
            assert inner == []
        # Kept by another thread during the transaction.
        other = threading.Thread(target=saver.execute, args=(_outcome(second),))
        other.start()
        other.join()
        raise error


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("counts", [True, False])
def test_a_body_that_raises_puts_the_outcome_back_for_the_next_write(
    tmp_path: Path, error: type[BaseException], counts: bool
) -> None:
    db = tmp_path / "a.sqlite"
    with SqliteRollbackSaver.from_conn_string(str(db)) as saver:
        kept = saver._kept
        first, second = _intent(saver), _intent(saver)
        assert saver.execute(_outcome(first)) is True
        with pytest.raises(error):
            _fail_while_carrying(saver, second, error, counts=counts)
        assert [op.effect_id for op in kept._ops] == [first, second]
        assert kept._failures.get(first, 0) == int(counts)
        assert _status(db, first) == "pending"
        saver.put(THREAD, empty_checkpoint(), {}, {})
        assert (_status(db, first), _status(db, second)) == ("applied", "applied")
        assert not kept and kept._failures == {}


async def test_a_write_cancelled_inside_its_transaction_keeps_the_outcome(
    tmp_path: Path,
) -> None:
    db = tmp_path / "a.sqlite"
    entered, release = threading.Event(), threading.Event()

    def hold() -> int:
        entered.set()
        release.wait(30)
        return 0

    async with AsyncSqliteRollbackSaver.from_conn_string(str(db)) as saver:
        effect_id = await asyncio.to_thread(_intent, saver)
        await saver.conn.create_function("hold", 0, hold)
        await saver.conn.execute(
            "CREATE TEMP TRIGGER slow BEFORE UPDATE ON lgrb_effects "
            "WHEN NEW.status = 'applied' BEGIN SELECT hold(); END"
        )
        assert await saver.aexecute(_outcome(effect_id)) is True
        write = asyncio.create_task(saver.aput(THREAD, empty_checkpoint(), {}, {}))
        while not entered.is_set():
            assert not write.done()
            await asyncio.sleep(0.01)
        write.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await write
        assert [op.effect_id for op in saver._kept._ops] == [effect_id]
        assert _status(db, effect_id) == "pending"
        await saver.conn.execute("DROP TRIGGER slow")
        await saver.aput(THREAD, empty_checkpoint(), {}, {})
        assert _status(db, effect_id) == "applied"
        assert not saver._kept
