"""`PostgresRollbackSaver`: LangGraph's `PostgresSaver` plus the ledger."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres import PostgresSaver, _internal
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import Connection, Cursor
from psycopg.errors import LockNotAvailable
from psycopg.rows import DictRow, TupleRow, dict_row, tuple_row
from psycopg_pool import ConnectionPool

from langgraph_rollback._errors import RollbackInProgressError
from langgraph_rollback._ledger import LedgerRow, row_from_tuple
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
from langgraph_rollback.backends import postgres_schema as sql
from langgraph_rollback.backends.base import (
    CARRY_READ_FAILED,
    LockHolder,
    SyncBackedAsync,
    mark_restored_copy,
    prune_args,
    reanchor,
)
from langgraph_rollback.backends.sql_common import (
    pending_migrations,
    select_sql,
    update_sql,
)

__all__ = ["PostgresRollbackSaver"]

logger = logging.getLogger(__name__)

_SAME_TRANSACTION: ContextVar[tuple[tuple[str, tuple[Any, ...]], ...]] = ContextVar(
    "langgraph_rollback_pg_same_transaction", default=()
)


class PostgresRollbackSaver(SyncBackedAsync, PostgresSaver):
    """A `PostgresSaver` that also keeps the ledger of tool side effects.

    Like `SqliteRollbackSaver`, its async API runs the sync methods in a
    worker thread; for a natively async saver use `AsyncPostgresRollbackSaver`.

    For deployments with many workers: every worker records into the same
    database, and rollbacks of one thread from several processes are
    serialised by a session-level advisory lock (a loser gets
    `RollbackInProgressError`; a lock dies with its holder's connection).

    Accepts a connection or a `ConnectionPool`, like upstream; connections
    need `autocommit=True` and `row_factory=dict_row` (as upstream). With a
    pool, a rollback holds one extra connection for its lock, so give the
    pool at least two. Call `setup()` once before first use: it runs
    LangGraph's migrations, then the ledger's (`lgrb_migrations`).

    `release_rollback_lock` does nothing here: PostgreSQL releases a dead
    holder's advisory lock itself.

    Args:
        conn: A `psycopg.Connection` or `psycopg_pool.ConnectionPool`.
        pipe: An optional pipeline, as upstream (single connections only).
        serde: Serializer for checkpoints and ledger payloads.
        registry: Where rollbacks through this saver find inverses.
        guard: The guard policy for irreversible tools.

    Example:
        ```python
        from langgraph_rollback.postgres import PostgresRollbackSaver

        with PostgresRollbackSaver.from_conn_string(DB_URI) as saver:
            saver.setup()
            graph = builder.compile(checkpointer=saver)
        ```
    """

    def __init__(
        self,
        conn: _internal.Conn,
        pipe: Any = None,
        serde: SerializerProtocol | None = None,
        *,
        registry: ToolRegistry | None = None,
        guard: GuardMode | None = None,
    ) -> None:
        super().__init__(conn, pipe, serde)
        self._init_rollback(registry, guard)
        self._lock_conns: dict[str, Connection[DictRow]] = {}
        self._held: dict[str, str] = {}
        self._held_lock = threading.Lock()

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        pipeline: bool = False,
        serde: SerializerProtocol | None = None,
        registry: ToolRegistry | None = None,
        guard: GuardMode | None = None,
    ) -> Iterator[PostgresRollbackSaver]:
        """Connect to `conn_string` and close the connection on exit.

        Example:
            ```python
            with PostgresRollbackSaver.from_conn_string("postgresql://...") as saver:
                saver.setup()
            ```
        """
        with Connection.connect(
            conn_string, autocommit=True, prepare_threshold=0, row_factory=dict_row
        ) as conn:
            if pipeline:
                with conn.pipeline() as pipe:
                    saver = cls(conn, pipe, serde, registry=registry, guard=guard)
                    with saver._committing_carried():
                        yield saver
            else:
                saver = cls(conn, None, serde, registry=registry, guard=guard)
                with saver._committing_carried():
                    yield saver

    @contextmanager
    def _committing_carried(self) -> Iterator[None]:
        """On exit, commit tool outcomes kept for a next write that did not come
        (logged, not raised, when the body is already raising)."""
        failed = True
        try:
            yield
            failed = False
        finally:
            if self._carried:
                try:
                    with self._tx():
                        pass
                except Exception as exc:
                    if not failed:
                        raise
                    logger.warning(CARRY_READ_FAILED, exc)

    def setup(self) -> None:
        """Run LangGraph's migrations, then the ledger's (each once).

        Safe to call from several workers at once: the whole of it runs under
        a session-level advisory lock.

        Raises:
            LedgerSchemaError: The ledger was written by a newer version.
        """
        conn = self._lock_connection()
        try:
            delay = 0.01
            while not (self._on(conn, sql.MIGRATION_LOCK, ()))[0][0]:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            try:
                super().setup()
                with self._tx() as cur:
                    cur.execute(sql.VERSION_TABLE)
                    cur.execute("SELECT max(v) FROM lgrb_migrations")
                    found = cur.fetchone()
                    current = None if found is None else found[0]
                    for text, params in pending_migrations(
                        sql.MIGRATIONS, current, "%s"
                    ):
                        cur.execute(text, params)
            finally:
                self._on(conn, sql.MIGRATION_UNLOCK, ())
        finally:
            self._release_connection(conn)

    # --- checkpoint writes that carry a ledger write ---------------------------------

    @contextmanager
    def _cursor(self, *, pipeline: bool = False) -> Iterator[Cursor[DictRow]]:
        """Upstream's cursor; one transaction when `put` queued ledger statements
        or tool outcomes are kept for the next write (they run first)."""
        extra = _SAME_TRANSACTION.get()
        if not pipeline and self._carried:
            # Upstream reads use a plain cursor, writes a pipelined one: a
            # read commits the kept outcomes first, in a transaction of their
            # own, rather than holding one open while it yields.
            with self._tx():
                pass
        if not extra and not (pipeline and self._carried):
            with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        with self.lock, _internal.get_connection(self.conn) as conn:
            carried = self._take_carried()
            # Pipelined as upstream's writes are, when the connection can:
            # BEGIN, the kept outcomes, the writes and COMMIT go out together
            # rather than each waiting for the previous one's answer.
            piped = pipeline and not self.pipe and self.supports_pipeline
            try:
                with (
                    conn.pipeline() if piped else nullcontext(),
                    conn.transaction(),
                    conn.cursor(binary=True, row_factory=dict_row) as cur,
                ):
                    for op in carried:
                        cur.execute(*update_sql(op, "%s"))
                    yield cur
                    for text, params in extra:
                        cur.execute(text, params)
            except BaseException:
                self._put_back_carried(carried)
                raise
        self._carried_committed(carried)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Upstream `put`; a rollback's restored head is tagged as a copy, and it
        commits in one transaction with its rollback record."""
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
        runs = [str(r) for r in run_ids]
        if not runs:
            return
        with self._tx() as cur:
            cur.execute(sql.RUN_ROOT_CHECKPOINTS, (runs,))
            deleted = {(t, c): p for t, c, p in cur.fetchall()}
            for thread in {t for t, _ in deleted}:
                gone = [c for t, c in deleted if t == thread]
                cur.execute(sql.EFFECTS_BASED_ON, (thread, gone))
                for effect_id, base in reanchor(deleted, list(cur.fetchall())):
                    cur.execute(sql.SET_BASE, (base, effect_id))
            for text in sql.DELETE_FOR_RUNS:
                cur.execute(text, (runs,))

    def prune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Upstream `prune` (refuses DeltaChannel threads); the ledger stays."""
        super().prune(prune_args(thread_ids, strategy), strategy=strategy)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints, blobs and writes; its effects stay with
        the source."""
        with self._tx() as cur:
            for text in sql.COPY_THREAD:
                cur.execute(text, (str(target_thread_id), str(source_thread_id)))

    # --- ledger primitives --------------------------------------------------------

    @contextmanager
    def _tx(self, *, statements: bool = True) -> Iterator[Cursor[TupleRow]]:
        """One transaction on a (pooled) connection, rows as tuples.

        `statements=False`: the caller runs statements that each stand alone,
        so on an autocommit connection (as upstream requires) with no tool
        outcomes kept, no BEGIN and COMMIT round trips are spent on them. Not
        on a saver in pipeline mode (`pipe`), where a statement commits only at
        the pipeline's next sync; a transaction block syncs on exit.
        """
        with self.lock, _internal.get_connection(self.conn) as conn:
            carried = self._take_carried()
            try:
                alone = not statements and not carried and self.pipe is None
                if alone and conn.autocommit:
                    with conn.cursor(row_factory=tuple_row) as cur:
                        yield cur
                else:
                    with (
                        conn.transaction(),
                        conn.cursor(row_factory=tuple_row) as cur,
                    ):
                        # Tool outcomes kept for the next write run first.
                        for op in carried:
                            cur.execute(*update_sql(op, "%s"))
                        yield cur
            except BaseException:
                self._put_back_carried(carried)
                raise
        self._carried_committed(carried)

    def _read(self, text: str, params: Any) -> list[tuple[Any, ...]]:
        with self._tx() as cur:
            cur.execute(text, params)
            return list(cur.fetchall())

    def _ledger_begin(self, op: Begin) -> tuple[LedgerRow, bool]:
        row = op.row
        params = [getattr(row, c) for c in sql.INSERT_PARAM_COLUMNS]
        params += [row.base_checkpoint_id, row.thread_id]
        self._refuse_if_held(row.thread_id)
        key = sql.LOCK_KEY.format(thread_id=row.thread_id)
        with self._tx(statements=False) as cur:
            # One statement: the shared lock, then the insert if it was had.
            cur.execute(sql.INSERT_INTENT, [key, *params])
            result = cur.fetchone()
            assert result is not None
            held, seq, base = result
            if not held:
                raise RollbackInProgressError(
                    thread_id=row.thread_id, holder="another PostgreSQL session"
                )
            if seq is not None:
                return replace(row, seq=int(seq), base_checkpoint_id=base), True
            # It exists: a replay (a row read outside the lock is fine, it is
            # committed, and its status changes only under `expect` guards).
            cur.execute(sql.SELECT_BY_ID, (row.effect_id,))
            found = cur.fetchone()
        assert found is not None
        return row_from_tuple(tuple(found)), False

    def _ledger_update(self, op: Update) -> bool:
        if self._carry(op):
            return True
        text, params = update_sql(op, "%s")
        with self._tx() as cur:
            # RETURNING, not rowcount: in pipeline mode rowcount is read
            # before the server has answered.
            cur.execute(text + " RETURNING effect_id", params)
            return bool(cur.fetchall())

    def _ledger_select(self, op: Select) -> list[LedgerRow]:
        text, params = select_sql(op, "%s", dialect="postgres")
        return [row_from_tuple(r) for r in self._read(text, params)]

    def _ledger_head(self, op: ReadHead) -> str | None:
        rows = self._read(sql.SELECT_HEAD, (op.thread_id,))
        return str(rows[0][0]) if rows else None

    def _ledger_find_checkpoint(self, op: FindCheckpoint) -> list[str]:
        return [str(r[0]) for r in self._read(sql.FIND_CHECKPOINT, (op.checkpoint_id,))]

    def _ledger_ancestry(self, op: ReadAncestry) -> list[CheckpointLink]:
        params = {"thread": op.thread_id, "start": op.start, "stop": op.stop}
        return [CheckpointLink.from_row(*r) for r in self._read(sql.ANCESTRY, params)]

    def _ledger_subtree(self, op: ReadSubtree) -> list[CheckpointLink]:
        params = {"thread": op.thread_id, "root": op.root}
        return [CheckpointLink.from_row(*r) for r in self._read(sql.SUBTREE, params)]

    def _ledger_existing(self, op: ExistingCheckpoints) -> set[str]:
        rows = self._read(sql.EXISTING, (op.thread_id, list(op.checkpoint_ids)))
        return {str(r[0]) for r in rows}

    def _ledger_save_rollback(self, op: SaveRollback) -> None:
        with self._tx() as cur:
            cur.execute(sql.SAVE_ROLLBACK, dict(op.record))

    # --- the per-thread rollback lock ---------------------------------------------

    def _lock_thread(self, thread_id: str, holder: LockHolder) -> None:
        key = sql.LOCK_KEY.format(thread_id=thread_id)
        with self._held_lock:
            if thread_id in self._held:
                raise RollbackInProgressError(
                    thread_id=thread_id, holder=f"this process ({holder.host})"
                )
            self._held[thread_id] = holder.token
        try:
            conn = self._lock_connection()
            try:
                self._acquire(conn, thread_id, key)
            except BaseException:
                self._release_connection(conn)
                raise
            self._lock_conns[holder.token] = conn
            holder.held()
        except BaseException:
            with self._held_lock:
                self._held.pop(thread_id, None)
            raise

    def _unlock_thread(self, thread_id: str, holder: LockHolder | None) -> None:
        if holder is None:
            return  # PostgreSQL releases a dead session's advisory locks itself.
        conn = self._lock_conns.pop(holder.token, None)
        try:
            if conn is not None:
                key = sql.LOCK_KEY.format(thread_id=thread_id)
                self._on(conn, sql.LOCK_UNLOCK, (key,))
        finally:
            if conn is not None:
                self._release_connection(conn)
            with self._held_lock:
                if self._held.get(thread_id) == holder.token:
                    del self._held[thread_id]
            holder.released()

    def _refuse_if_held(self, thread_id: str) -> None:
        with self._held_lock:
            if thread_id in self._held:
                raise RollbackInProgressError(
                    thread_id=thread_id, holder="this process"
                )

    def _acquire(self, conn: Connection[DictRow], thread_id: str, key: str) -> None:
        """Take the thread's lock on `conn`, or raise `RollbackInProgressError`.

        Another rollback holding it refuses at once; intents holding it
        (shared, for milliseconds) are waited for, up to five seconds.
        """
        if self._on(conn, sql.LOCK_TRY, (key,))[0][0]:
            return
        who = self._on(conn, sql.LOCK_HOLDER, (key,))
        if not who:
            try:
                with self._shared(conn), conn.transaction():
                    conn.execute(sql.LOCK_WAIT_TIMEOUT)
                    conn.execute(sql.LOCK_WAIT, (key,))
                return
            except LockNotAvailable:
                who = self._on(conn, sql.LOCK_HOLDER, (key,))
        raise RollbackInProgressError(
            thread_id=thread_id,
            holder=f"PostgreSQL backend pid {who[0][0]}"
            if who
            else "intents still being written after 5 s",
        )

    def _lock_connection(self) -> Connection[DictRow]:
        """The connection a session-level lock is held on.

        With a pool, a connection of its own, outside the pool (closing it
        releases whatever it holds, and holding it takes nothing from the
        pool); with a single connection, that connection.
        """
        if isinstance(self.conn, ConnectionPool):
            pool = self.conn
            conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
            kwargs = pool.kwargs() if callable(pool.kwargs) else pool.kwargs
            return Connection.connect(
                conninfo, **{**(kwargs or {}), "autocommit": True}
            )
        return self.conn

    def _release_connection(self, conn: Connection[DictRow]) -> None:
        """Close a pool's lock connection (releasing anything it still holds)."""
        if conn is not self.conn:
            conn.close()

    @contextmanager
    def _shared(self, conn: Connection[DictRow]) -> Iterator[None]:
        """The saver's lock, when `conn` is the connection it guards."""
        if conn is self.conn:
            with self.lock:
                yield
        else:
            yield

    def _on(
        self, conn: Connection[DictRow], text: str, params: Any
    ) -> list[tuple[Any, ...]]:
        """Run one statement on `conn` (taking the saver's lock if it is shared)."""
        with self._shared(conn), conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(text, params)
            return list(cur.fetchall())
