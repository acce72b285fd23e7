"""One pipeline for both SQLite savers: what each storage operation runs.

`sqlite3` and `aiosqlite` cannot be converted into each other mechanically,
so the two SQLite savers share everything above the connection instead: for
each operation, a *script* yields the statements to run (`Stmt`), receives
each one's rows, and returns the operation's result. `SqliteRollbackSaver`
runs a script on a `sqlite3` cursor, `AsyncSqliteRollbackSaver` on an
`aiosqlite` connection; each opens the transaction the script asks for
(`write`, `immediate`), writes the kept tool outcomes first
(`savers.kept`), and commits.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from langgraph_rollback.core.ledger import (
    INSERT_COLUMNS,
    LedgerRow,
    changed_row,
    insert_values,
    row_from_tuple,
    utcnow,
)
from langgraph_rollback.core.ops import (
    AuditRow,
    Begin,
    BeginIfNewKey,
    CheckpointLink,
    ExistingCheckpoints,
    FindCheckpoint,
    FindEffect,
    FindNamespace,
    FindRun,
    LockThread,
    ReadAncestry,
    ReadAudit,
    ReadHead,
    ReadNamespaceStates,
    ReadSubtree,
    ReadUpdatedFrom,
    SaveRollback,
    Select,
    StorageOp,
    UnlockThread,
    Update,
    WriteAudit,
)
from langgraph_rollback.core.restore import namespace_states
from langgraph_rollback.savers import sqlite_sql as sql
from langgraph_rollback.savers.lifecycle import (
    prune_args,
    reanchor,
    refuse_delta,
    updated_from,
)
from langgraph_rollback.savers.locking import may_take, refuse_if_locked
from langgraph_rollback.savers.sql import select_sql, update_sql

__all__ = ["Script", "Stmt", "copy_thread", "delete_for_runs", "prune", "script_for"]

T = TypeVar("T")
Rows = list[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Stmt:
    """One statement with its parameters; the runner sends back its rows."""

    text: str
    params: Any = ()


Steps = Generator[Stmt, Rows, T]


@dataclass(frozen=True, slots=True)
class Script(Generic[T]):
    """The statements of one operation, and the transaction they need.

    Attributes:
        steps: Yields each statement, receives its rows, returns the result.
        write: Runs in a write transaction, committed at the end (kept tool
            outcomes are written first); else a read, after committing them.
        immediate: The transaction takes the write lock before its first
            read (`BEGIN IMMEDIATE`), so nothing lands between what it reads
            and what it writes.
    """

    steps: Steps[T]
    write: bool = False
    immediate: bool = False


def script_for(op: StorageOp[Any]) -> Script[Any]:
    """The script that performs `op`."""
    match op:
        case Begin():
            return Script(_begin(op.row), write=True, immediate=True)
        case BeginIfNewKey():
            return Script(_begin(op.row, if_new_key=True), write=True, immediate=True)
        case Update():
            return Script(_changed(update_sql(op)), write=True)
        case Select():
            return Script(_select(op))
        case SaveRollback():
            return Script(_none(Stmt(sql.SAVE_ROLLBACK, dict(op.record))), write=True)
        case LockThread():
            return Script(_lock(op), write=True, immediate=True)
        case UnlockThread():
            return Script(_unlock(op), write=True)
        case ReadHead():
            return Script(_first_text(Stmt(sql.SELECT_HEAD, (op.thread_id,))))
        case FindCheckpoint():
            return Script(_texts(Stmt(sql.FIND_CHECKPOINT, (op.checkpoint_id,))))
        case FindNamespace():
            where = (op.thread_id, op.checkpoint_id)
            return Script(_texts(Stmt(sql.FIND_NAMESPACE, where)))
        case FindEffect():
            return Script(_first_text(Stmt(sql.FIND_EFFECT, (op.effect_id,))))
        case FindRun():
            return Script(_texts(Stmt(sql.FIND_RUN, (op.run_id,))))
        case ReadAncestry():
            params = {"thread": op.thread_id, "start": op.start, "stop": op.stop}
            return Script(_links(Stmt(sql.ANCESTRY, params)))
        case ReadSubtree():
            params = {"thread": op.thread_id, "root": op.root}
            return Script(_links(Stmt(sql.SUBTREE, params)))
        case ReadUpdatedFrom():
            params = {"thread": op.thread_id, "start": op.checkpoint_id}
            return Script(_updated_from(Stmt(sql.UPDATED_FROM, params)))
        case ExistingCheckpoints():
            ids = json.dumps(list(op.checkpoint_ids))
            return Script(_existing(Stmt(sql.EXISTING, (op.thread_id, ids))))
        case ReadNamespaceStates():
            stmt = Stmt(sql.NAMESPACE_STATES, (op.thread_id,))
            return Script(_namespace_states(stmt, op.before))
        case WriteAudit():
            row = op.row
            values = (row.audit_id, row.thread_id, row.at, row.entry)
            return Script(_none(Stmt(sql.INSERT_AUDIT, values)), write=True)
        case ReadAudit():
            limit = -1 if op.limit is None else op.limit
            return Script(_audit(Stmt(sql.SELECT_AUDIT, (op.thread_id, limit))))
    raise TypeError(f"the SQLite savers cannot perform {op!r}")


def _begin(
    row: LedgerRow, *, if_new_key: bool = False
) -> Steps[tuple[LedgerRow, bool] | None]:
    # The checks and the insert share one write transaction, so a rollback
    # that takes the thread cannot miss this intent. One statement when
    # nothing stands in the way; else each check on its own, to say which.
    key = (row.thread_id, row.call_key, row.effect_id)
    values = (*insert_values(row), row.base_checkpoint_id, row.thread_id)
    clear = (row.thread_id, if_new_key, *key, row.effect_id)
    at = _EFFECT_ID_AT
    inserted = yield Stmt(
        sql.INSERT_INTENT_IF_CLEAR, (*values[:at], *clear, *values[at + 1 :])
    )
    if not inserted:
        held = yield Stmt(sql.LOCK_HOLDER, (row.thread_id,))
        refuse_if_locked(row.thread_id, held[0] if held else None)
        if if_new_key and (yield Stmt(sql.OTHER_WITH_KEY, key)):
            return None
        # Nothing stands in the way (or only the lock row of a holder that is
        # gone): the plain insert, which raises a constraint a value breaks
        # and inserts nothing when the effect id is recorded already.
        inserted = yield Stmt(sql.INSERT_INTENT, values)
    if inserted:
        seq, base = inserted[0]
        return changed_row(row, seq=seq, base_checkpoint_id=base), True
    found = yield Stmt(sql.SELECT_BY_ID, (row.effect_id,))
    return row_from_tuple(tuple(found[0])), False


_EFFECT_ID_AT = INSERT_COLUMNS.index("effect_id")


def _lock(op: LockThread) -> Steps[None]:
    # One write transaction from the check to the insert, so two processes
    # sharing the file cannot both see the lock free.
    holder = op.holder
    current = yield Stmt(sql.LOCK_HOLDER, (op.thread_id,))
    if may_take(op.thread_id, current[0] if current else None, holder):
        # The holder's process is gone: its rollback can be resumed.
        yield Stmt(sql.LOCK_RELEASE, (op.thread_id, current[0][0]))
    values = (
        op.thread_id,
        holder.token,
        holder.host,
        holder.pid,
        utcnow(),
        holder.started,
    )
    yield Stmt(sql.LOCK_TAKE, values)


def _unlock(op: UnlockThread) -> Steps[None]:
    if op.holder is None:
        yield Stmt(sql.LOCK_BREAK, (op.thread_id,))
    else:
        yield Stmt(sql.LOCK_RELEASE, (op.thread_id, op.holder.token))


def _select(op: Select) -> Steps[list[LedgerRow]]:
    rows = yield Stmt(*select_sql(op))
    return [row_from_tuple(tuple(r)) for r in rows]


def _changed(statement: tuple[str, list[Any]]) -> Steps[bool]:
    rows = yield Stmt(*statement)
    return bool(rows)


def _none(stmt: Stmt) -> Steps[None]:
    yield stmt


def _first_text(stmt: Stmt) -> Steps[str | None]:
    rows = yield stmt
    return str(rows[0][0]) if rows else None


def _texts(stmt: Stmt) -> Steps[list[str]]:
    rows = yield stmt
    return [str(r[0]) for r in rows]


def _namespace_states(
    stmt: Stmt, before: Sequence[str]
) -> Steps[list[tuple[str, str, str | None]]]:
    rows = yield stmt
    return namespace_states(((str(a), str(b), c) for a, b, c in rows), before)


def _audit(stmt: Stmt) -> Steps[list[AuditRow]]:
    rows = yield stmt
    return [AuditRow(str(a), str(t), str(at), str(e)) for a, t, at, e in rows]


def _existing(stmt: Stmt) -> Steps[set[str]]:
    rows = yield stmt
    return {str(r[0]) for r in rows}


def _updated_from(stmt: Stmt) -> Steps[str | None]:
    rows = yield stmt
    return updated_from(rows)


def _links(stmt: Stmt) -> Steps[list[CheckpointLink]]:
    rows = yield stmt
    return [CheckpointLink.from_row(*r) for r in rows]


# --- thread lifecycle (see `savers.lifecycle.LIFECYCLE`) ---------------------------


def delete_for_runs(run_ids: Sequence[str]) -> Script[None]:
    """Delete the checkpoints and writes of these runs; move effects' anchors."""
    return Script(_delete_for_runs(json.dumps([str(r) for r in run_ids])), True, True)


def _delete_for_runs(ids: str) -> Steps[None]:
    # Write-locked before reading, so no intent or checkpoint lands between
    # the reads and the deletes.
    found = yield Stmt(sql.RUN_ROOT_CHECKPOINTS, (ids,))
    deleted = {(str(t), str(c)): p for t, c, p in found}
    for thread in {t for t, _ in deleted}:
        gone = json.dumps([c for t, c in deleted if t == thread])
        based = yield Stmt(sql.EFFECTS_BASED_ON, (thread, gone))
        for effect_id, base in reanchor(deleted, based):
            yield Stmt(sql.SET_BASE, (base, effect_id))
    for text in sql.DELETE_FOR_RUNS:
        yield Stmt(text, (ids,))


def copy_thread(source_thread_id: str, target_thread_id: str) -> Script[None]:
    """Copy a thread's checkpoints and writes; its effects stay with the source."""
    params = (str(target_thread_id), str(source_thread_id))
    return Script(_each(Stmt(text, params) for text in sql.COPY_THREAD), write=True)


def prune(thread_ids: Sequence[str], strategy: str) -> Script[None]:
    """Prune checkpoints ("keep_latest" or "delete"); the ledger stays."""
    return Script(_prune(prune_args(thread_ids, strategy), strategy), write=True)


def _prune(threads: list[str], strategy: str) -> Steps[None]:
    if not threads:
        return
    ids = json.dumps(threads)
    if strategy == "delete":
        for text in sql.PRUNE_DELETE:
            yield Stmt(text, (ids,))
        return
    delta = yield Stmt(sql.PRUNE_DELTA_THREADS, (ids,))
    refuse_delta([str(r[0]) for r in delta])
    for thread in threads:
        for text in sql.PRUNE_KEEP_LATEST:
            yield Stmt(text, {"thread": thread})


def _each(statements: Any) -> Steps[None]:
    # Not `yield from`: the runner sends each statement's rows back.
    for stmt in statements:  # noqa: UP028
        yield stmt
