"""The SQLite intent (`INSERT_INTENT_IF_CLEAR`, else each check), attacked:
each thing that may stand in its way (a dead holder's lock row, a live one,
the same effect id, another effect with the call key), the base checkpoint
named or read, and processes racing intents against a rollback lock on one
file. Every answer is checked against the file itself."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from langgraph_rollback import (
    AsyncSqliteRollbackSaver,
    BaseRollbackSaver,
    RollbackInProgressError,
    SqliteRollbackSaver,
)
from langgraph_rollback._liveness import HOST, new_holder, process_started
from langgraph_rollback.core.ledger import LedgerRow, changed_row
from langgraph_rollback.core.ops import (
    Begin,
    BeginIfNewKey,
    LockThread,
    Select,
    UnlockThread,
)
from langgraph_rollback.core.query import EffectQuery
from tests.support.waiting import wait_for
from tests.unit.build import row

Sql = Callable[[str, tuple[Any, ...]], None]


@pytest.fixture(params=["sqlite", "aio_sqlite"])
def saver_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def intent(thread: str, key: str = "v2:write:aa#0", **fields: Any) -> LedgerRow:
    values: dict[str, Any] = {"thread_id": thread, "seq": 0, "base_checkpoint_id": None}
    return changed_row(
        row(str(uuid.uuid4()), status="pending", call_key=key), **(values | fields)
    )


def effects(path: Path, thread: str) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(path) as db:
        found = db.execute(
            "SELECT effect_id, call_key, base_checkpoint_id FROM lgrb_effects "
            "WHERE thread_id = ? ORDER BY seq",
            (thread,),
        ).fetchall()
    return [tuple(r) for r in found]


def ready(saver: BaseRollbackSaver) -> None:
    """The ledger's tables exist (a first operation made them)."""
    saver.execute(Select(EffectQuery(thread_id="none")))


def dead_pid() -> tuple[int, str]:
    """A process of this host that ran and is gone, and its start time."""
    child = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    started = process_started(child.pid)
    assert started is not None
    child.communicate(b"\n")
    return child.pid, started


def lock_row(raw_sql: Sql, thread: str, pid: int, started: str) -> None:
    raw_sql(
        "INSERT INTO lgrb_locks (thread_id, holder, host, pid, acquired_at, started) "
        "VALUES (?, ?, ?, ?, '2025-01-01T00:00:00+00:00', ?)",
        (thread, uuid.uuid4().hex, HOST, pid, started),
    )


@pytest.mark.parametrize("op", [Begin, BeginIfNewKey])
def test_a_dead_holder_s_lock_row_lets_the_intent_in(
    saver: BaseRollbackSaver, raw_sql: Sql, tmp_path: Path, op: type[Begin]
) -> None:
    ready(saver)
    thread = f"t-{uuid.uuid4()}"
    lock_row(raw_sql, thread, *dead_pid())
    first = intent(thread)
    written, inserted = saver.execute(op(first))
    assert inserted and written.seq > 0
    assert effects(tmp_path / "ledger.sqlite", thread) == [
        (first.effect_id, first.call_key, None)
    ]
    # Under the same dead lock, the same id: the stored row; its key: no kin.
    again, inserted = saver.execute(op(first))
    assert (again.seq, inserted) == (written.seq, False)
    kin = intent(thread)
    if op is BeginIfNewKey:
        assert saver.execute(BeginIfNewKey(kin)) is None
        assert len(effects(tmp_path / "ledger.sqlite", thread)) == 1


@pytest.mark.parametrize("op", [Begin, BeginIfNewKey])
@pytest.mark.parametrize("dead_lock", [False, True])
@pytest.mark.parametrize("recorded", [False, True])
def test_a_value_that_breaks_a_constraint_raises_and_writes_nothing(
    saver: BaseRollbackSaver,
    raw_sql: Sql,
    tmp_path: Path,
    op: type[Begin],
    dead_lock: bool,
    recorded: bool,
) -> None:
    """`INSERT OR IGNORE` skips a row that breaks any constraint: the skip is
    never taken for "recorded already" (the intent would look replayed),
    even when its effect id is (as the plain insert, which checks NOT NULL
    before the conflict)."""
    ready(saver)
    thread = f"t-{uuid.uuid4()}"
    if dead_lock:
        lock_row(raw_sql, thread, *dead_pid())
    good = intent(thread)
    if recorded:
        saver.execute(Begin(good))
    broken = changed_row(good, tool=None)  # tool is NOT NULL
    with pytest.raises(sqlite3.IntegrityError, match="tool"):
        saver.execute(op(broken))
    stored = [(good.effect_id, good.call_key, None)] if recorded else []
    assert effects(tmp_path / "ledger.sqlite", thread) == stored
    _, inserted = saver.execute(op(intent(thread, "v2:write:other#0")))
    assert inserted


@pytest.mark.parametrize("op", [Begin, BeginIfNewKey])
def test_a_live_holder_refuses_every_intent_and_nothing_is_written(
    saver: BaseRollbackSaver, tmp_path: Path, op: type[Begin]
) -> None:
    thread = f"t-{uuid.uuid4()}"
    stored, _ = saver.execute(Begin(intent(thread)))
    holder = new_holder()
    saver.execute(LockThread(thread, holder))
    try:
        for attempt in (intent(thread, "v2:write:new#0"), intent(thread), stored):
            with pytest.raises(RollbackInProgressError):
                saver.execute(op(attempt))
    finally:
        saver.execute(UnlockThread(thread, holder))
    assert [e[0] for e in effects(tmp_path / "ledger.sqlite", thread)] == [
        stored.effect_id
    ]
    _, inserted = saver.execute(op(intent(thread, "v2:write:new#0")))
    assert inserted


def test_the_base_is_the_one_named_else_the_newest_root_checkpoint(
    saver: BaseRollbackSaver, raw_sql: Sql, tmp_path: Path
) -> None:
    ready(saver)
    thread = f"t-{uuid.uuid4()}"
    path = tmp_path / "ledger.sqlite"
    saver.execute(BeginIfNewKey(intent(thread, "v2:a#0")))
    for ns, checkpoint in [("", "c-1"), ("", "c-2"), ("sub:1", "c-9")]:
        raw_sql(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id) "
            "VALUES (?, ?, ?)",
            (thread, ns, checkpoint),
        )
    named, _ = saver.execute(
        BeginIfNewKey(intent(thread, "v2:b#0", base_checkpoint_id="c-1"))
    )
    newest, _ = saver.execute(BeginIfNewKey(intent(thread, "v2:c#0")))
    lock_row(raw_sql, thread, *dead_pid())  # the statement-by-statement path
    fallback, _ = saver.execute(Begin(intent(thread, "v2:d#0")))
    fallback_named, _ = saver.execute(
        Begin(intent(thread, "v2:e#0", base_checkpoint_id="c-1"))
    )
    assert (named.base_checkpoint_id, newest.base_checkpoint_id) == ("c-1", "c-2")
    assert fallback.base_checkpoint_id == "c-2"
    assert fallback_named.base_checkpoint_id == "c-1"
    assert [e[1:] for e in effects(path, thread)] == [
        ("v2:a#0", None),
        ("v2:b#0", "c-1"),
        ("v2:c#0", "c-2"),
        ("v2:d#0", "c-2"),
        ("v2:e#0", "c-1"),
    ]


# --- processes racing intents and a rollback lock -----------------------------------


async def _race_async(path: str, thread: str, stop: Any) -> list[Any]:
    async with AsyncSqliteRollbackSaver.from_conn_string(path) as saver:
        answers: list[Any] = []
        for effect_id in _ids(stop):
            try:
                found = await saver.aexecute(_begin(thread, effect_id))
            except RollbackInProgressError:
                found = "refused"
            answers.append(_answer(effect_id, found))
        return answers


def _ids(stop: Any) -> Any:
    """The same ids in every racer, each tried twice: racers meet on each."""
    n = 0
    while not stop.is_set():
        yield f"e-{n // 2}"
        n += 1


def _begin(thread: str, effect_id: str) -> BeginIfNewKey:
    return BeginIfNewKey(
        changed_row(intent(thread, f"k-{effect_id}"), effect_id=effect_id)
    )


def _answer(effect_id: str, found: Any) -> tuple[str, Any]:
    if isinstance(found, str):
        return effect_id, found
    return effect_id, "kin" if found is None else found[1]


def racer(kind: str, path: str, thread: str, stop: Any, out: Any) -> None:
    if kind == "aio_sqlite":
        out.put(asyncio.run(_race_async(path, thread, stop)))
        return
    answers: list[Any] = []
    with SqliteRollbackSaver.from_conn_string(path) as saver:
        for effect_id in _ids(stop):
            try:
                found = saver.execute(_begin(thread, effect_id))
            except RollbackInProgressError:
                found = "refused"
            answers.append(_answer(effect_id, found))
    out.put(answers)


def locker(path: str, thread: str, rounds: int, out: Any) -> None:
    """Take and release the thread's lock; while held, no intent may appear."""
    seen: list[tuple[int, int]] = []

    def newest() -> int:
        with sqlite3.connect(path, timeout=30) as db:
            top = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM lgrb_effects WHERE thread_id = ?",
                (thread,),
            ).fetchone()
        return int(top[0])

    wait_for(lambda: newest() > 0, "the racers to start")
    with SqliteRollbackSaver.from_conn_string(path) as saver:
        for _ in range(rounds):
            holder = new_holder()
            saver.execute(LockThread(thread, holder))
            at_lock = newest()
            held_until = time.monotonic() + 0.01
            while time.monotonic() < held_until:
                at_unlock = newest()
            seen.append((at_lock, at_unlock))
            saver.execute(UnlockThread(thread, holder))
            newest()
    out.put(seen)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "aio_sqlite"])
def test_processes_racing_intents_and_a_lock_write_each_once_and_none_while_held(
    tmp_path: Path, kind: str
) -> None:
    path = str(tmp_path / "race.sqlite")
    with SqliteRollbackSaver.from_conn_string(path) as saver:
        ready(saver)
    thread = "t-race"
    ctx = multiprocessing.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    racers = [
        ctx.Process(target=racer, args=(kind, path, thread, stop, out))
        for _ in range(2)
    ]
    lock = ctx.Process(target=locker, args=(path, thread, 40, out))
    for p in [*racers, lock]:
        p.start()
    results = [out.get(timeout=120)]
    stop.set()
    results += [out.get(timeout=120) for _ in racers]
    for p in [*racers, lock]:
        p.join(timeout=60)
        assert p.exitcode == 0
    held = next(r for r in results if r and isinstance(r[0][0], int))
    answers = [a for r in results if r is not held for a in r]
    assert all(at_lock == at_unlock for at_lock, at_unlock in held), held
    stored = {e[0] for e in effects(Path(path), thread)}
    inserted = [a[0] for a in answers if a[1] is True]
    assert sorted(inserted) == sorted(stored)  # each written once, by one racer
    assert {a[1] for a in answers} == {True, False, "refused"}, len(answers)
