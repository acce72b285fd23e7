"""`AsyncPostgresRollbackSaver`: LangGraph's `AsyncPostgresSaver` plus the ledger.

This file is the source of both PostgreSQL savers: `savers/postgres.py` is
generated from it by `scripts/unasync.py` (`make lint` checks it is current).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, TypeVar, cast

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres import _ainternal
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncConnection, AsyncCursor
from psycopg.errors import LockNotAvailable
from psycopg.rows import DictRow, TupleRow, dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool

from langgraph_rollback._errors import RollbackInProgressError
from langgraph_rollback._redact import redacted_error
from langgraph_rollback.core.ledger import LedgerRow, changed_row, row_from_tuple
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
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.restore import namespace_states
from langgraph_rollback.core.task import GuardMode
from langgraph_rollback.savers import keys
from langgraph_rollback.savers import postgres_sql as sql
from langgraph_rollback.savers.base import mark_restored_copy
from langgraph_rollback.savers.bridges import SyncOverAsync
from langgraph_rollback.savers.kept import CARRY_READ_FAILED
from langgraph_rollback.savers.lifecycle import prune_args, reanchor, updated_from
from langgraph_rollback.savers.sql import (
    CURRENT_VERSION,
    LEGACY_KEYS,
    ancestry_walk,
    pending_migrations,
    select_sql,
    update_sql,
)

__all__ = ["AsyncPostgresRollbackSaver"]

logger = logging.getLogger(__name__)

R = TypeVar("R")

_SAME_TRANSACTION: ContextVar[tuple[tuple[str, tuple[Any, ...]], ...]] = ContextVar(
    "langgraph_rollback_apg_same_transaction", default=()
)


class AsyncPostgresRollbackSaver(SyncOverAsync, AsyncPostgresSaver):
    """LangGraph's `AsyncPostgresSaver` that also keeps the ledger of tool side effects.

    For deployments with many workers: every worker records into the same
    database, and rollbacks of one thread from several processes are
    serialised by a session-level advisory lock (a loser gets
    `RollbackInProgressError`; a lock dies with its holder's connection).
    Its other API flavour is bridged as `savers.bridges.SyncOverAsync`
    describes.

    Accepts a connection or a pool, like upstream; connections need
    `autocommit=True` and `row_factory=dict_row` (as upstream). With a pool,
    a rollback holds one extra connection of its own for its lock. Call
    `setup()` once before first use: it runs LangGraph's migrations, then
    the ledger's (`lgrb_migrations`).

    `release_rollback_lock` does nothing here: PostgreSQL releases a dead
    holder's advisory lock itself.

    Args:
        conn: A `psycopg.AsyncConnection` or `psycopg_pool.AsyncConnectionPool`.
        pipe: An optional pipeline, as upstream (single connections only).
        serde: Serializer for checkpoints; when it encrypts, the ledger's
            payloads are encrypted with its cipher too.
        registry: Where rollbacks through this saver find inverses.
        guard: The guard policy for irreversible tools.

    Example:
        ```python
        from langgraph_rollback.postgres import AsyncPostgresRollbackSaver

        async with AsyncPostgresRollbackSaver.from_conn_string(DB_URI) as saver:
            await saver.setup()
            graph = builder.compile(checkpointer=saver)
        ```
    """

    def __init__(
        self,
        conn: _ainternal.Conn,
        pipe: Any = None,
        serde: SerializerProtocol | None = None,
        *,
        registry: ToolRegistry | None = None,
        guard: GuardMode | None = None,
    ) -> None:
        super().__init__(conn, pipe, serde)
        self._init_rollback(registry, guard)
        self._lock_conns: dict[str, AsyncConnection[DictRow]] = {}
        self._held: dict[str, str] = {}
        """Threads whose rollback lock this saver holds -> the holder's token."""
        self._held_lock = threading.Lock()

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        pipeline: bool = False,
        serde: SerializerProtocol | None = None,
        registry: ToolRegistry | None = None,
        guard: GuardMode | None = None,
    ) -> AsyncIterator[AsyncPostgresRollbackSaver]:
        """Connect to `conn_string` and close the connection on exit.

        Example:
            ```python
            async with AsyncPostgresRollbackSaver.from_conn_string(url) as saver:
                await saver.setup()
            ```
        """
        async with await _connect(conn_string) as conn:
            if pipeline:
                async with conn.pipeline() as pipe:
                    saver = cls(conn, pipe, serde, registry=registry, guard=guard)
                    async with saver._committing_kept():
                        yield saver
            else:
                saver = cls(conn, None, serde, registry=registry, guard=guard)
                async with saver._committing_kept():
                    yield saver

    @asynccontextmanager
    async def _committing_kept(self) -> AsyncIterator[None]:
        """On exit, commit tool outcomes kept for a next write that did not come
        (logged, not raised, when the body is already raising)."""
        failed = True
        try:
            yield
            failed = False
        finally:
            if self._kept:
                try:
                    async with self._tx():
                        pass
                except Exception as exc:
                    if not failed:
                        raise
                    logger.warning(CARRY_READ_FAILED, exc)

    async def setup(self) -> None:
        """Run LangGraph's migrations, then the ledger's (each once).

        Safe to call from several workers at once: the whole of it runs under
        a session-level advisory lock.

        Raises:
            LedgerSchemaError: The ledger was written by a newer version.
        """
        conn = await self._lock_connection()
        try:
            delay = 0.01
            while not (await self._on(conn, sql.MIGRATION_LOCK, ()))[0][0]:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
            try:
                await super().setup()
                async with self._tx() as cur:
                    await cur.execute(sql.VERSION_TABLE)
                    await cur.execute(CURRENT_VERSION)
                    current = (await cur.fetchone() or (None,))[0]
                    for step in pending_migrations(sql.MIGRATIONS, current, "%s"):
                        await cur.execute(*step)
                    await cur.execute(LEGACY_KEYS)
                    self.legacy_keys = bool(await cur.fetchall())
                    if (fresh := keys.new_key(self.ledger_codec)) is not None:
                        if keys.keyed_before(current):
                            await cur.execute(keys.LOST_KEY)
                            keys.check_key_kept(await cur.fetchone())
                        insert = keys.insert_key_sql("%s", postgres=True)
                        await cur.execute(insert, fresh)
                        await cur.execute(keys.SELECT_KEY)
                        key = keys.read_key(self.ledger_codec, await cur.fetchone())
                        self._keep_digest_key(key)
            finally:
                await self._on(conn, sql.MIGRATION_UNLOCK, ())
        finally:
            await self._release_connection(conn)

    # --- checkpoint writes that carry a ledger write ---------------------------------

    @asynccontextmanager
    async def _cursor(
        self, *, pipeline: bool = False
    ) -> AsyncIterator[AsyncCursor[DictRow]]:
        """Upstream's cursor; one transaction when `aput` queued ledger statements
        or tool outcomes are kept for the next write (they run first)."""
        extra = _SAME_TRANSACTION.get()
        if not pipeline and self._kept:
            # Upstream reads use a plain cursor, writes a pipelined one: a
            # read commits the kept outcomes first, in a transaction of their
            # own, rather than holding one open while it yields.
            async with self._tx():
                pass
        if not extra and not (pipeline and self._kept):
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        with self._kept.reporting():
            async with self.lock, _ainternal.get_connection(self.conn) as conn:
                # Pipelined as upstream's writes are, when the connection can:
                # BEGIN, the kept outcomes, the writes and COMMIT go out together
                # rather than each waiting for the previous one's answer.
                piped = pipeline and not self.pipe and self.supports_pipeline
                with self._kept.carrying() as carried:
                    # Each kept outcome on a cursor of its own, read once the
                    # transaction has committed: reading it at once would cost a
                    # round trip in the pipeline.
                    checks = [
                        (op, conn.cursor(row_factory=tuple_row)) for op in carried
                    ]
                    async with (
                        conn.pipeline() if piped else nullcontext(),
                        conn.transaction(),
                        conn.cursor(binary=True, row_factory=dict_row) as cur,
                    ):
                        for op, check in checks:
                            await check.execute(*update_sql(op, "%s"))
                        yield cur
                        for text, params in extra:
                            await cur.execute(text, params)
                    for op, check in checks:
                        self._kept.written(op, bool(await check.fetchall()))
                        await check.close()

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Upstream `aput`; a rollback's restored head is tagged as a copy, and
        it commits in one transaction with its rollback record."""
        tagged = mark_restored_copy(metadata)
        restore = tagged.get("lgrb_restore")
        if not isinstance(restore, dict):
            return await super().aput(config, checkpoint, tagged, new_versions)
        token = _SAME_TRANSACTION.set(
            ((sql.MARK_RESTORED, (checkpoint["id"], restore["rollback_id"])),)
        )
        try:
            return await super().aput(config, checkpoint, tagged, new_versions)
        finally:
            _SAME_TRANSACTION.reset(token)

    # --- thread lifecycle (see `savers.lifecycle.LIFECYCLE`) -------------------------

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints and writes of these runs; the ledger stays.

        With `undo_deleted_runs` on, the runs' effects are undone first.
        """
        runs = [str(r) for r in run_ids]
        if not runs:
            return
        await self._aundo_runs(runs)
        async with self._tx() as cur:
            await cur.execute(sql.RUN_ROOT_CHECKPOINTS, (runs,))
            deleted = {(t, c): p for t, c, p in await cur.fetchall()}
            for thread in {t for t, _ in deleted}:
                gone = [c for t, c in deleted if t == thread]
                await cur.execute(sql.EFFECTS_BASED_ON, (thread, gone))
                for effect_id, base in reanchor(deleted, await cur.fetchall()):
                    await cur.execute(sql.SET_BASE, (base, effect_id))
            for text in sql.DELETE_FOR_RUNS:
                await cur.execute(text, (runs,))

    async def aprune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Upstream `aprune` (refuses DeltaChannel threads); the ledger stays."""
        await super().aprune(prune_args(thread_ids, strategy), strategy=strategy)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints, blobs and writes; its effects stay with
        the source."""
        async with self._tx() as cur:
            for text in sql.COPY_THREAD:
                await cur.execute(text, (str(target_thread_id), str(source_thread_id)))

    # --- the one door to storage ---------------------------------------------------

    async def _aexecute(self, op: StorageOp[R]) -> R:
        return cast(R, await self._dispatch(op))

    async def _dispatch(self, op: StorageOp[Any]) -> object:
        match op:
            case Begin() | BeginIfNewKey():
                return await self._begin(op.row, isinstance(op, BeginIfNewKey))
            case Update():
                return await self._update(op)
            case Select():
                text, params = select_sql(op, "%s", dialect="postgres")
                return [row_from_tuple(r) for r in await self._read(text, params)]
            case SaveRollback():
                await self._write(sql.SAVE_ROLLBACK, dict(op.record))
            case LockThread():
                await self._lock(op)
            case UnlockThread():
                await self._unlock(op)
            case ReadHead():
                rows = await self._read(sql.SELECT_HEAD, (op.thread_id,))
                return str(rows[0][0]) if rows else None
            case FindCheckpoint():
                rows = await self._read(sql.FIND_CHECKPOINT, (op.checkpoint_id,))
                return [str(r[0]) for r in rows]
            case FindNamespace():
                where = (op.thread_id, op.checkpoint_id)
                return [str(r[0]) for r in await self._read(sql.FIND_NAMESPACE, where)]
            case FindEffect():
                found = await self._read(sql.FIND_EFFECT, (op.effect_id,))
                return str(found[0][0]) if found else None
            case FindRun():
                return [str(r[0]) for r in await self._read(sql.FIND_RUN, (op.run_id,))]
            case ReadAncestry():
                return await self._ancestry(op)
            case ReadSubtree():
                root = {"thread": op.thread_id, "root": op.root}
                rows = await self._read(sql.SUBTREE, root)
                return [CheckpointLink.from_row(*r) for r in rows]
            case ReadUpdatedFrom():
                start = {"thread": op.thread_id, "start": op.checkpoint_id}
                return updated_from(await self._read(sql.UPDATED_FROM, start))
            case ExistingCheckpoints():
                ids = list(op.checkpoint_ids)
                rows = await self._read(sql.EXISTING, (op.thread_id, ids))
                return {str(r[0]) for r in rows}
            case ReadNamespaceStates():
                rows = await self._read(sql.NAMESPACE_STATES, (op.thread_id,))
                return namespace_states(
                    ((str(a), str(b), c) for a, b, c in rows), op.before
                )
            case WriteAudit():
                row = op.row
                values = (row.audit_id, row.thread_id, row.at, row.entry)
                await self._write(sql.INSERT_AUDIT, values)
            case ReadAudit():
                found = await self._read(sql.SELECT_AUDIT, (op.thread_id, op.limit))
                return [
                    AuditRow(str(a), str(t), str(w), str(e)) for a, t, w, e in found
                ]
            case _:
                raise TypeError(f"{type(self).__name__} cannot perform {op!r}")
        return None  # the writes above answer nothing

    @asynccontextmanager
    async def _tx(
        self, *, statements: bool = True
    ) -> AsyncIterator[AsyncCursor[TupleRow]]:
        """One transaction on a (pooled) connection, rows as tuples.

        `statements=False`: the caller runs statements that each stand alone,
        so on an autocommit connection (as upstream requires) with no tool
        outcomes kept, no BEGIN and COMMIT round trips are spent on them. Not
        on a saver in pipeline mode (`pipe`), where a statement commits only at
        the pipeline's next sync; a transaction block syncs on exit.
        """
        with self._kept.reporting():
            async with self.lock, _ainternal.get_connection(self.conn) as conn:
                with self._kept.carrying() as carried:
                    alone = not statements and not carried and self.pipe is None
                    if alone and conn.autocommit:
                        async with conn.cursor(row_factory=tuple_row) as cur:
                            yield cur
                    else:
                        async with (
                            conn.transaction(),
                            conn.cursor(row_factory=tuple_row) as cur,
                        ):
                            # Tool outcomes kept for the next write run first.
                            for op in carried:
                                await cur.execute(*update_sql(op, "%s"))
                                self._kept.written(op, bool(await cur.fetchall()))
                            yield cur

    async def _ancestry(self, op: ReadAncestry) -> list[CheckpointLink]:
        """Walk up from `op.start` through pages of the thread's checkpoints
        (`sql.ANCESTRY_PAGE`; the walk itself is `savers.sql.ancestry_walk`)."""
        walk = ancestry_walk(op)
        try:
            page = next(walk)
            while True:
                page = walk.send(await self._read(sql.ANCESTRY_PAGE, page))
        except StopIteration as done:
            links: list[CheckpointLink] = done.value
            return links

    async def _write(self, text: str, params: Any) -> None:
        async with self._tx() as cur:
            await cur.execute(text, params)

    async def _read(self, text: str, params: Any) -> list[tuple[Any, ...]]:
        async with self._tx() as cur:
            await cur.execute(text, params)
            return list(await cur.fetchall())

    async def _begin(
        self, row: LedgerRow, if_new_key: bool
    ) -> tuple[LedgerRow, bool] | None:
        self._refuse_if_held(row.thread_id)
        async with self._tx(statements=False) as cur:
            # One statement: the shared lock, then the insert if it was had.
            await cur.execute(sql.INSERT_INTENT, sql.intent_params(row, if_new_key))
            result = await cur.fetchone()
            assert result is not None
            held, seq, base, kin = result
            if not held:
                raise RollbackInProgressError(
                    thread_id=row.thread_id, holder="another PostgreSQL session"
                )
            if kin:  # an effect that may be an earlier record of the call
                return None
            if seq is not None:
                return changed_row(row, seq=int(seq), base_checkpoint_id=base), True
            # It exists: a replay (a row read outside the lock is fine, it is
            # committed, and its status changes only under `expect` guards).
            await cur.execute(sql.SELECT_BY_ID, (row.effect_id,))
            found = await cur.fetchone()
        assert found is not None
        return row_from_tuple(tuple(found)), False

    async def _update(self, op: Update) -> bool:
        async with self._tx() as cur:
            # RETURNING, not rowcount: in pipeline mode rowcount is read
            # before the server has answered.
            await cur.execute(*update_sql(op, "%s"))
            return bool(await cur.fetchall())

    # --- the per-thread rollback lock ---------------------------------------------

    async def _lock(self, op: LockThread) -> None:
        thread_id, holder = op.thread_id, op.holder
        key = sql.LOCK_KEY.format(thread_id=thread_id)
        with self._held_lock:
            if thread_id in self._held:
                raise RollbackInProgressError(
                    thread_id=thread_id, holder=f"this process ({holder.host})"
                )
            self._held[thread_id] = holder.token
        try:
            conn = await self._lock_connection()
            try:
                await self._acquire(conn, thread_id, key)
            except BaseException:
                await self._release_connection(conn)
                raise
            self._lock_conns[holder.token] = conn
        except BaseException:
            with self._held_lock:
                self._held.pop(thread_id, None)
            raise

    async def _unlock(self, op: UnlockThread) -> None:
        thread_id, holder = op.thread_id, op.holder
        if holder is None:
            return  # PostgreSQL releases a dead session's advisory locks itself.
        conn = self._lock_conns.pop(holder.token, None)
        try:
            if conn is not None:
                key = sql.LOCK_KEY.format(thread_id=thread_id)
                await self._on(conn, sql.LOCK_UNLOCK, (key,))
        finally:
            if conn is not None:
                await self._release_connection(conn)
            with self._held_lock:
                if self._held.get(thread_id) == holder.token:
                    del self._held[thread_id]

    def _refuse_if_held(self, thread_id: str) -> None:
        with self._held_lock:
            if thread_id in self._held:
                raise RollbackInProgressError(
                    thread_id=thread_id, holder="this process"
                )

    async def _acquire(
        self, conn: AsyncConnection[DictRow], thread_id: str, key: str
    ) -> None:
        """Take the thread's lock on `conn`, or raise `RollbackInProgressError`.

        Another rollback holding it refuses at once; intents holding it
        (shared, for milliseconds) are waited for, up to five seconds.
        """
        if (await self._on(conn, sql.LOCK_TRY, (key,)))[0][0]:
            return
        who = await self._on(conn, sql.LOCK_HOLDER, (key,))
        if not who:
            try:
                async with self._shared(conn), conn.transaction():
                    await conn.execute(sql.LOCK_WAIT_TIMEOUT)
                    await conn.execute(sql.LOCK_WAIT, (key,))
                return
            except LockNotAvailable:
                who = await self._on(conn, sql.LOCK_HOLDER, (key,))
        raise RollbackInProgressError(
            thread_id=thread_id,
            holder=f"PostgreSQL backend pid {who[0][0]}"
            if who
            else "intents still being written after 5 s",
        )

    async def _lock_connection(self) -> AsyncConnection[DictRow]:
        """The connection a session-level lock is held on.

        With a pool, a connection of its own, outside the pool (closing it
        releases whatever it holds, and holding it takes nothing from the
        pool); with a single connection, that connection.
        """
        if not isinstance(self.conn, AsyncConnectionPool):
            return self.conn
        pool = self.conn
        conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
        if inspect.isawaitable(conninfo):  # unasync: drop 2
            conninfo = await conninfo
        kwargs = pool.kwargs() if callable(pool.kwargs) else pool.kwargs
        if inspect.isawaitable(kwargs):  # unasync: drop 2
            kwargs = await kwargs
        return await AsyncConnection.connect(
            conninfo, **{**(kwargs or {}), "autocommit": True}
        )

    async def _release_connection(self, conn: AsyncConnection[DictRow]) -> None:
        """Close a pool's lock connection (releasing anything it still holds)."""
        if conn is not self.conn:
            await conn.close()

    @asynccontextmanager
    async def _shared(self, conn: AsyncConnection[DictRow]) -> AsyncIterator[None]:
        """The saver's lock, when `conn` is the connection it guards."""
        if conn is self.conn:
            async with self.lock:
                yield
        else:
            yield

    async def _on(
        self, conn: AsyncConnection[DictRow], text: str, params: Any
    ) -> list[tuple[Any, ...]]:
        """Run one statement on `conn` (taking the saver's lock if it is shared)."""
        async with self._shared(conn), conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(text, params)
            return list(await cur.fetchall())


async def _connect(conn_string: str) -> AsyncConnection[DictRow]:
    """Connect as upstream's `from_conn_string` does; a failure's message
    never holds the URL's password (libpq echoes a URL it cannot parse)."""
    try:
        return await AsyncConnection.connect(
            conn_string, autocommit=True, prepare_threshold=0, row_factory=dict_row
        )
    except psycopg.Error as exc:
        raise redacted_error(exc, conn_string) from None
