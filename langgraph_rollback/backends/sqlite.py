"""`SqliteRollbackSaver`: LangGraph's `SqliteSaver` plus the side-effect ledger."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite import SqliteSaver

from langgraph_rollback._errors import RollbackInProgressError
from langgraph_rollback._ledger import LedgerRow, row_from_tuple, utcnow
from langgraph_rollback._ops import (
    Begin,
    CheckpointLink,
    ExistingCheckpoints,
    FindCheckpoint,
    ReadAncestry,
    ReadHead,
    ReadSubtree,
    SaveRollback,
    Select,
    Update,
)
from langgraph_rollback._record import GuardMode
from langgraph_rollback._registry import ToolRegistry
from langgraph_rollback.backends import sqlite_schema as sql
from langgraph_rollback.backends.base import (
    CARRY_READ_FAILED,
    LockHolder,
    SyncBackedAsync,
    holder_alive,
    mark_restored_copy,
    prune_args,
    reanchor,
    refuse_delta,
    refuse_if_locked,
)
from langgraph_rollback.backends.sql_common import pending_migrations

__all__ = ["SqliteRollbackSaver"]

logger = logging.getLogger(__name__)

_SAME_TRANSACTION: ContextVar[tuple[tuple[str, tuple[Any, ...]], ...]] = ContextVar(
    "langgraph_rollback_sqlite_same_transaction", default=()
)


class SqliteRollbackSaver(SyncBackedAsync, SqliteSaver):
    """A `SqliteSaver` that also keeps the ledger of tool side effects.

    Checkpoints are stored exactly as upstream stores them; the ledger lives in
    `lgrb_*` tables of the same database. It is a drop-in for
    `builder.compile(checkpointer=...)` with `invoke`/`stream` from scripts and
    notebooks.

    Unlike upstream `SqliteSaver`, the async API works too: each `a*` method
    runs its sync twin in a worker thread (`asyncio.to_thread`), serialised by
    the saver's lock, so `ainvoke`/`astream` work with this saver. For a
    natively async saver, use `AsyncSqliteRollbackSaver`.

    As upstream, `list()` holds the saver's lock while it yields (and `alist()`
    between its batches): collect the results before writing to the saver.

    `delete_thread`, `delete_for_runs`, `copy_thread` and `prune` (which
    upstream `SqliteSaver` lacks) work on checkpoints and writes; the ledger
    keeps every effect (see `backends.base.LIFECYCLE`).

    Args:
        conn: The SQLite connection. It belongs to the caller; open it with
            `check_same_thread=False` to use the saver from several threads.
        serde: Serializer for checkpoints *and* ledger payloads (args,
            results, observations). Defaults to LangGraph's `JsonPlusSerializer`.
        registry: Where rollbacks through this saver find inverses. Defaults
            to the process-wide `default_registry`.
        guard: What happens when an irreversible tool is called: "allow"
            (the default), "ask" (an `interrupt()` first) or "block".

    Example:
        ```python
        from langgraph_rollback import SqliteRollbackSaver

        with SqliteRollbackSaver.from_conn_string("agent.sqlite") as saver:
            graph = builder.compile(checkpointer=saver)
            graph.invoke(inputs, {"configurable": {"thread_id": "1"}})
            print(saver.list_effects({"configurable": {"thread_id": "1"}}))
        ```
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        serde: SerializerProtocol | None = None,
        registry: ToolRegistry | None = None,
        guard: GuardMode | None = None,
    ) -> None:
        super().__init__(conn, serde=serde)
        self._init_rollback(registry, guard)

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        registry: ToolRegistry | None = None,
        guard: GuardMode | None = None,
    ) -> Iterator[SqliteRollbackSaver]:
        """Open a database (a path, or `":memory:"`) and close it on exit.

        Example:
            ```python
            with SqliteRollbackSaver.from_conn_string("agent.sqlite") as saver:
                ...
            ```
        """
        with closing(sqlite3.connect(conn_string, check_same_thread=False)) as conn:
            saver = cls(conn, serde=serde, registry=registry, guard=guard)
            try:
                yield saver
            finally:
                saver._commit_carried()

    def _commit_before_read(self, cur: sqlite3.Cursor, carried: list[Update]) -> None:
        """Commit kept tool outcomes before a read (lock held); if that fails,
        the read sees what is on disk and they stay kept for the next write."""
        try:
            for op in carried:
                cur.execute(*sql.update_sql(op))
            self.conn.commit()
        except sqlite3.Error as exc:
            if self.conn.in_transaction:
                self.conn.rollback()
            self._put_back_carried(carried, write=False)
            logger.warning(CARRY_READ_FAILED, exc)
        else:
            self._carried_committed(carried)

    def _commit_carried(self) -> None:
        """Commit the outcomes kept for a next write that did not come."""
        if self._carried:
            with self.cursor(transaction=False):
                pass

    def setup(self) -> None:
        """Create LangGraph's tables and migrate the ledger's.

        Called lazily on first use, as upstream does; safe to call again.

        Raises:
            LedgerSchemaError: The ledger was written by a newer version.
        """
        if self.is_setup:
            return
        # Upstream's script starts with `PRAGMA journal_mode=WAL`, which fails
        # at once ("database is locked") while another process sets up the
        # same new file; the script is idempotent, so it is tried again.
        for delay in SETUP_RETRY_DELAYS:
            try:
                super().setup()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or delay is None:
                    raise
                time.sleep(delay)
        try:
            _migrate(self.conn)
        except BaseException:
            self.is_setup = False
            raise

    @contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        """Upstream's cursor, but a failed write rolls back instead of committing.

        Tool outcomes kept for the next write (`BaseRollbackSaver._carry`) run
        first, in the same transaction as a write, or committed on their own
        before a read. Statements queued by `put` for the same transaction
        (the restored head's rollback record) run before the commit, so both
        or neither land.
        """
        with self.lock:
            self.setup()
            cur = self.conn.cursor()
            carried = self._take_carried()
            if carried and not transaction:
                self._commit_before_read(cur, carried)
                carried = []
            try:
                for op in carried:
                    cur.execute(*sql.update_sql(op))
                yield cur
                if transaction:
                    for text, params in _SAME_TRANSACTION.get():
                        cur.execute(text, params)
            except BaseException:
                if transaction and self.conn.in_transaction:
                    self.conn.rollback()
                self._put_back_carried(carried)
                raise
            else:
                if transaction:
                    self.conn.commit()
                    self._carried_committed(carried)
            finally:
                cur.close()

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Upstream `put`; a rollback's restored head is tagged as a copy.

        The restored head and its rollback record commit in one transaction.
        """
        tagged = mark_restored_copy(metadata)
        restore = tagged.get("lgrb_restore")
        if not isinstance(restore, dict):
            return super().put(config, checkpoint, tagged, new_versions)
        token = _SAME_TRANSACTION.set(
            ((sql.MARK_RESTORED, (checkpoint["id"], restore["rollback_id"])),)
        )
        try:
            return super().put(config, checkpoint, tagged, new_versions)
        finally:
            _SAME_TRANSACTION.reset(token)

    # --- thread lifecycle (see `backends.base.LIFECYCLE`) -------------------------

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints and writes of these runs; the ledger stays."""
        ids = json.dumps([str(r) for r in run_ids])
        with self.cursor() as cur:
            # Write-lock before reading, so no intent or checkpoint lands
            # between the reads and the deletes.
            if not self.conn.in_transaction:
                cur.execute("BEGIN IMMEDIATE")
            cur.execute(sql.RUN_ROOT_CHECKPOINTS, (ids,))
            deleted = {(t, c): p for t, c, p in cur.fetchall()}
            for thread in {t for t, _ in deleted}:
                gone = json.dumps([c for t, c in deleted if t == thread])
                cur.execute(sql.EFFECTS_BASED_ON, (thread, gone))
                for effect_id, base in reanchor(deleted, cur.fetchall()):
                    cur.execute(sql.SET_BASE, (base, effect_id))
            for text in sql.DELETE_FOR_RUNS:
                cur.execute(text, (ids,))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints and writes; its effects stay with the source."""
        with self.cursor() as cur:
            for text in sql.COPY_THREAD:
                cur.execute(text, (str(target_thread_id), str(source_thread_id)))

    def prune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Prune checkpoints ("keep_latest" or "delete"); the ledger stays."""
        threads = prune_args(thread_ids, strategy)
        if not threads:
            return
        ids = json.dumps(threads)
        with self.cursor() as cur:
            if strategy == "delete":
                for text in sql.PRUNE_DELETE:
                    cur.execute(text, (ids,))
                return
            cur.execute(sql.PRUNE_DELTA_THREADS, (ids,))
            refuse_delta([str(r[0]) for r in cur.fetchall()])
            for thread in threads:
                for text in sql.PRUNE_KEEP_LATEST:
                    cur.execute(text, {"thread": thread})

    # --- ledger primitives ----------------------------------------------------

    def _ledger_begin(self, op: Begin) -> tuple[LedgerRow, bool]:
        row = op.row
        params = [getattr(row, c) for c in sql.INSERT_PARAM_COLUMNS]
        params += [row.base_checkpoint_id, row.thread_id]
        with self.cursor() as cur:
            # The lock check and the insert share one write transaction, so a
            # rollback that takes the thread cannot miss this intent.
            if not self.conn.in_transaction:
                cur.execute("BEGIN IMMEDIATE")
            cur.execute(sql.LOCK_HOLDER, (row.thread_id,))
            refuse_if_locked(row.thread_id, cur.fetchone())
            cur.execute(sql.INSERT_INTENT, params)
            inserted = cur.fetchall()
            if inserted:
                seq, base = inserted[0]
                return replace(row, seq=seq, base_checkpoint_id=base), True
            cur.execute(sql.SELECT_BY_ID, (row.effect_id,))
            return row_from_tuple(cur.fetchone()), False

    def _ledger_update(self, op: Update) -> bool:
        if self._carry(op):
            return True
        text, params = sql.update_sql(op)
        with self.cursor() as cur:
            cur.execute(text, params)
            return cur.rowcount > 0

    def _ledger_select(self, op: Select) -> list[LedgerRow]:
        text, params = sql.select_sql(op)
        with self.cursor(transaction=False) as cur:
            cur.execute(text, params)
            return [row_from_tuple(r) for r in cur.fetchall()]

    def _ledger_head(self, op: ReadHead) -> str | None:
        with self.cursor(transaction=False) as cur:
            cur.execute(sql.SELECT_HEAD, (op.thread_id,))
            found = cur.fetchone()
        return None if found is None else str(found[0])

    def _ledger_find_checkpoint(self, op: FindCheckpoint) -> list[str]:
        with self.cursor(transaction=False) as cur:
            cur.execute(sql.FIND_CHECKPOINT, (op.checkpoint_id,))
            return [str(r[0]) for r in cur.fetchall()]

    def _ledger_ancestry(self, op: ReadAncestry) -> list[CheckpointLink]:
        params = {"thread": op.thread_id, "start": op.start, "stop": op.stop}
        with self.cursor(transaction=False) as cur:
            cur.execute(sql.ANCESTRY, params)
            return [CheckpointLink.from_row(*r) for r in cur.fetchall()]

    def _ledger_subtree(self, op: ReadSubtree) -> list[CheckpointLink]:
        with self.cursor(transaction=False) as cur:
            cur.execute(sql.SUBTREE, {"thread": op.thread_id, "root": op.root})
            return [CheckpointLink.from_row(*r) for r in cur.fetchall()]

    def _ledger_existing(self, op: ExistingCheckpoints) -> set[str]:
        ids = json.dumps(list(op.checkpoint_ids))
        with self.cursor(transaction=False) as cur:
            cur.execute(sql.EXISTING, (op.thread_id, ids))
            return {str(r[0]) for r in cur.fetchall()}

    def _ledger_save_rollback(self, op: SaveRollback) -> None:
        with self.cursor() as cur:
            cur.execute(sql.SAVE_ROLLBACK, dict(op.record))

    def _lock_thread(self, thread_id: str, holder: LockHolder) -> None:
        # One write transaction from the check to the insert, so two processes
        # sharing the file cannot both see the lock free.
        with self.cursor() as cur:
            if not self.conn.in_transaction:
                cur.execute("BEGIN IMMEDIATE")
            cur.execute(sql.LOCK_HOLDER, (thread_id,))
            current = cur.fetchone()
            if current is not None and current[0] != holder.token:
                if holder_alive(current[1], int(current[2]), current[0]):
                    raise RollbackInProgressError(
                        thread_id=thread_id,
                        holder=f"{current[1]}:{current[2]}:{current[0][:8]}",
                    )
                # The holder's process is gone: its rollback can be resumed.
                cur.execute(sql.LOCK_RELEASE, (thread_id, current[0]))
            cur.execute(
                sql.LOCK_TAKE,
                (thread_id, holder.token, holder.host, holder.pid, utcnow()),
            )
        holder.held()

    def _unlock_thread(self, thread_id: str, holder: LockHolder | None) -> None:
        with self.cursor() as cur:
            if holder is None:
                cur.execute(sql.LOCK_BREAK, (thread_id,))
            else:
                cur.execute(sql.LOCK_RELEASE, (thread_id, holder.token))
        if holder is not None:
            holder.released()


SETUP_RETRY_DELAYS: tuple[float | None, ...] = (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, None)
"""Waits between attempts at upstream's setup script; `None`: give up."""


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the ledger migrations this database has not seen, in one
    transaction that takes the write lock before reading the version."""
    if conn.in_transaction:
        conn.rollback()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(sql.VERSION_TABLE)
        (current,) = conn.execute("SELECT max(v) FROM lgrb_migrations").fetchone()
        for text, params in pending_migrations(sql.MIGRATIONS, current):
            conn.execute(text, params)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
