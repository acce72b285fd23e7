"""`AsyncSqliteRollbackSaver`: LangGraph's `AsyncSqliteSaver` plus the ledger."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, cast

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.checkpoint.sqlite.utils import (
    load_pending_writes,
    pending_writes_sql,
    search_where,
)

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
    SyncOverAsync,
    holder_alive,
    mark_restored_copy,
    prune_args,
    reanchor,
    refuse_delta,
    refuse_if_locked,
)
from langgraph_rollback.backends.sql_common import pending_migrations
from langgraph_rollback.backends.sqlite import SETUP_RETRY_DELAYS

__all__ = ["AsyncSqliteRollbackSaver"]

logger = logging.getLogger(__name__)


class AsyncSqliteRollbackSaver(SyncOverAsync, AsyncSqliteSaver):
    """An `AsyncSqliteSaver` (on `aiosqlite`) that also keeps the ledger.

    For `ainvoke`/`astream` with async tools and async inverses. The ledger
    lives in `lgrb_*` tables of the same database; the restored head of a
    rollback and its rollback record commit in one transaction.

    As upstream, it must be created inside a running event loop, and its sync
    methods (`get_tuple`, `list_effects`, ...) work from *other* threads by
    running on that loop; called on the loop's own thread they raise, naming
    the `a*` method to await instead. A sync declared tool therefore records
    from a sync node (LangGraph runs those in worker threads), not when called
    directly inside an `async def` node: make such tools `async`.

    Args:
        conn: The `aiosqlite` connection. It belongs to the caller.
        serde: Serializer for checkpoints and ledger payloads.
        registry: Where rollbacks through this saver find inverses. Defaults
            to the process-wide `default_registry`.
        guard: What happens when an irreversible tool is called: "allow"
            (the default), "ask" (an `interrupt()` first) or "block".

    Example:
        ```python
        async with AsyncSqliteRollbackSaver.from_conn_string("agent.sqlite") as saver:
            graph = builder.compile(checkpointer=saver)
            await graph.ainvoke(inputs, config)
            print(await saver.alist_effects(config))
        ```
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        serde: SerializerProtocol | None = None,
        registry: ToolRegistry | None = None,
        guard: GuardMode | None = None,
    ) -> None:
        super().__init__(conn, serde=serde)
        self._init_rollback(registry, guard)
        self._ledger_ready = False

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        registry: ToolRegistry | None = None,
        guard: GuardMode | None = None,
    ) -> AsyncIterator[AsyncSqliteRollbackSaver]:
        """Open a database (a path, or `":memory:"`) and close it on exit.

        Example:
            ```python
            async with AsyncSqliteRollbackSaver.from_conn_string("a.sqlite") as saver:
                ...
            ```
        """
        async with aiosqlite.connect(conn_string) as conn:
            saver = cls(conn, serde=serde, registry=registry, guard=guard)
            try:
                yield saver
            finally:
                if saver._carried:
                    async with saver.lock:
                        await saver._commit_before_read()

    async def setup(self) -> None:
        """Create LangGraph's tables and migrate the ledger's.

        Called lazily on first use, as upstream does; safe to call again.

        Raises:
            LedgerSchemaError: The ledger was written by a newer version.
        """
        for delay in SETUP_RETRY_DELAYS:  # see SqliteRollbackSaver.setup
            try:
                await super().setup()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or delay is None:
                    raise
                await asyncio.sleep(delay)
        if self._ledger_ready:
            return
        async with self.lock:
            if self._ledger_ready:
                return
            if self.conn.in_transaction:
                await self.conn.rollback()
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                await self.conn.execute(sql.VERSION_TABLE)
                async with self.conn.execute(
                    "SELECT max(v) FROM lgrb_migrations"
                ) as cur:
                    row = await cur.fetchone()
                current = None if row is None else row[0]
                for text, params in pending_migrations(sql.MIGRATIONS, current):
                    await self.conn.execute(text, params)
            except BaseException:
                await self.conn.rollback()
                raise
            await self.conn.commit()
            self._ledger_ready = True

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Upstream `aput`'s statement; a rollback's restored head is tagged as
        a copy and commits in one transaction with its rollback record.

        Tool outcomes kept for the next write commit in the same transaction.
        """
        tagged = mark_restored_copy(metadata)
        restore = tagged.get("lgrb_restore")
        await self.setup()
        thread_id = str(config["configurable"]["thread_id"])
        checkpoint_ns = config["configurable"]["checkpoint_ns"]
        type_, blob = self.serde.dumps_typed(checkpoint)
        meta = json.dumps(
            get_checkpoint_metadata(config, tagged), ensure_ascii=False
        ).encode("utf-8", "ignore")
        statements: list[tuple[str, Any]] = [
            (
                sql.INSERT_CHECKPOINT,
                (
                    thread_id,
                    checkpoint_ns,
                    checkpoint["id"],
                    config["configurable"].get("checkpoint_id"),
                    type_,
                    blob,
                    meta,
                ),
            )
        ]
        if isinstance(restore, dict):
            statements.append(
                (sql.MARK_RESTORED, (checkpoint["id"], restore["rollback_id"]))
            )
        async with self._writing():
            for text, params in statements:
                await self.conn.execute_fetchall(text, params)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Upstream `aput_writes`'s statement; tool outcomes kept for the next
        write (the task's own, normally) commit in the same transaction."""
        query = (
            sql.UPSERT_WRITES
            if all(w[0] in WRITES_IDX_MAP for w in writes)
            else sql.INSERT_WRITES
        )
        rows = [
            (
                str(config["configurable"]["thread_id"]),
                str(config["configurable"]["checkpoint_ns"]),
                str(config["configurable"]["checkpoint_id"]),
                task_id,
                task_path,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                *self.serde.dumps_typed(value),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        await self.setup()
        async with self._writing():
            await self.conn.executemany(query, rows)

    @asynccontextmanager
    async def _writing(self, *, immediate: bool = False) -> AsyncIterator[None]:
        """Hold the lock for one write transaction (`BEGIN IMMEDIATE` if
        `immediate`): the kept tool outcomes run first, the body next, then
        the commit; on failure it rolls back and keeps the outcomes again."""
        async with self.lock:
            carried = self._take_carried()
            try:
                if immediate:
                    await self._begin_immediate()
                await self._run_carried(carried)
                yield
                await self.conn.commit()
            except BaseException:
                self._put_back_carried(carried)
                await self.conn.rollback()
                raise
            self._carried_committed(carried)

    async def _run_carried(self, carried: list[Update]) -> None:
        """Write kept tool outcomes in the open transaction (lock held)."""
        for op in carried:
            await self.conn.execute_fetchall(*sql.update_sql(op))

    async def _commit_before_read(self) -> None:
        """Commit kept tool outcomes before a read (lock held); if that fails,
        the read sees what is on disk and they stay kept for the next write."""
        carried = self._take_carried()
        if not carried:
            return
        try:
            await self._run_carried(carried)
            await self.conn.commit()
        except BaseException as exc:
            self._put_back_carried(carried, write=False)
            await self.conn.rollback()
            if not isinstance(exc, sqlite3.Error):
                raise
            logger.warning(CARRY_READ_FAILED, exc)
        else:
            self._carried_committed(carried)

    # --- checkpoint reads ------------------------------------------------------------
    #
    # Upstream's statements and results, with fewer trips to aiosqlite's
    # thread: each trip is a hand-off between the event loop and that thread
    # (tens of microseconds, more under load), and upstream's `aget_tuple`
    # makes six (open a cursor, execute, fetch, execute, fetch, close) where
    # `execute_fetchall` makes one per statement; `alist` saves one per
    # checkpoint the same way.

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Upstream `aget_tuple`, in two hand-offs to aiosqlite's thread."""
        await self.setup()
        checkpoint_ns = config["configurable"].get("checkpoint_ns", "")
        thread_id = str(config["configurable"]["thread_id"])
        checkpoint_id = get_checkpoint_id(config)
        async with self.lock:
            await self._commit_before_read()
            if checkpoint_id:
                rows = await self.conn.execute_fetchall(
                    sql.SELECT_CHECKPOINT_BY_ID,
                    (thread_id, checkpoint_ns, checkpoint_id),
                )
            else:
                rows = await self.conn.execute_fetchall(
                    sql.SELECT_LATEST_CHECKPOINT, (thread_id, checkpoint_ns)
                )
            found = next(iter(rows), None)
            if found is None:
                return None
            thread_id, checkpoint_id, parent_id, type_, checkpoint, metadata = found
            if not get_checkpoint_id(config):
                config = {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": checkpoint_ns,
                        "checkpoint_id": checkpoint_id,
                    }
                }
            writes = await self.conn.execute_fetchall(
                pending_writes_sql(self._has_task_path),
                (
                    str(config["configurable"]["thread_id"]),
                    checkpoint_ns,
                    str(config["configurable"]["checkpoint_id"]),
                ),
            )
        return CheckpointTuple(
            config,
            self.serde.loads_typed((type_, checkpoint)),
            cast(
                CheckpointMetadata,
                json.loads(metadata) if metadata is not None else {},
            ),
            _parent(thread_id, checkpoint_ns, parent_id),
            load_pending_writes(writes, self.serde),
        )

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Upstream `alist`, one hand-off fewer per checkpoint.

        As upstream, it holds the saver's lock while it yields: collect the
        results before writing to the saver.
        """
        await self.setup()
        where, params = search_where(config, filter, before)
        query = f"{sql.SELECT_CHECKPOINTS} {where} ORDER BY checkpoint_id DESC"
        if limit is not None:
            query += " LIMIT ?"
            params = [*params, limit]
        writes_sql = pending_writes_sql(self._has_task_path)
        async with self.lock:
            await self._commit_before_read()
        async with self.lock, self.conn.execute(query, params) as cur:
            async for row in cur:
                thread_id, checkpoint_ns, checkpoint_id, parent_id = row[:4]
                type_, checkpoint, metadata = row[4:]
                writes = await self.conn.execute_fetchall(
                    writes_sql, (thread_id, checkpoint_ns, checkpoint_id)
                )
                yield CheckpointTuple(
                    {
                        "configurable": {
                            "thread_id": thread_id,
                            "checkpoint_ns": checkpoint_ns,
                            "checkpoint_id": checkpoint_id,
                        }
                    },
                    self.serde.loads_typed((type_, checkpoint)),
                    cast(
                        CheckpointMetadata,
                        json.loads(metadata) if metadata is not None else {},
                    ),
                    _parent(thread_id, checkpoint_ns, parent_id),
                    load_pending_writes(writes, self.serde),
                )

    # --- thread lifecycle (see `backends.base.LIFECYCLE`) -------------------------

    async def _script(self, statements: Sequence[tuple[str, Any]]) -> list[Any]:
        """Run statements in one transaction; return the last one's rows."""
        await self.setup()
        rows: list[Any] = []
        async with self._writing():
            for text, params in statements:
                async with self.conn.execute(text, params) as cur:
                    rows = list(await cur.fetchall())
        return rows

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints and writes of these runs; the ledger stays."""
        ids = json.dumps([str(r) for r in run_ids])
        await self.setup()
        # Write-lock before reading (see SqliteRollbackSaver).
        async with self._writing(immediate=True):
            async with self.conn.execute(sql.RUN_ROOT_CHECKPOINTS, (ids,)) as cur:
                deleted = {(t, c): p for t, c, p in await cur.fetchall()}
            for thread in {t for t, _ in deleted}:
                gone = json.dumps([c for t, c in deleted if t == thread])
                async with self.conn.execute(
                    sql.EFFECTS_BASED_ON, (thread, gone)
                ) as cur:
                    rows = [tuple(r) for r in await cur.fetchall()]
                for effect_id, base in reanchor(deleted, rows):
                    await self.conn.execute(sql.SET_BASE, (base, effect_id))
            for text in sql.DELETE_FOR_RUNS:
                await self.conn.execute(text, (ids,))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints and writes; its effects stay with the source."""
        params = (str(target_thread_id), str(source_thread_id))
        await self._script([(text, params) for text in sql.COPY_THREAD])

    async def aprune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Prune checkpoints ("keep_latest" or "delete"); the ledger stays."""
        threads = prune_args(thread_ids, strategy)
        if not threads:
            return
        ids = json.dumps(threads)
        if strategy == "delete":
            await self._script([(text, (ids,)) for text in sql.PRUNE_DELETE])
            return
        delta = await self._script([(sql.PRUNE_DELTA_THREADS, (ids,))])
        refuse_delta([str(r[0]) for r in delta])
        await self._script(
            [
                (text, {"thread": thread})
                for thread in threads
                for text in sql.PRUNE_KEEP_LATEST
            ]
        )

    # --- async ledger primitives -------------------------------------------------

    async def _begin_immediate(self) -> None:
        """Open a write-locked transaction (the caller holds `self.lock`).

        A transaction already open here is one a failed upstream write left
        behind (upstream's `adelete_thread` does not roll back on error): it is
        rolled back, not joined, so this transaction commits nothing half-done.
        """
        if self.conn.in_transaction:
            await self.conn.rollback()
        await self.conn.execute_fetchall("BEGIN IMMEDIATE")

    # Statements run with `execute_fetchall`: one hand-off to aiosqlite's
    # thread each, where `async with conn.execute(...) as cur` and a fetch
    # take three (execute, fetch, close).

    async def _write(self, text: str, params: Any) -> int:
        """Run one write and commit; roll back if it fails. Returns rowcount."""
        await self.setup()
        async with self._writing():
            # The rows this statement changed (the lock is held, so no other
            # statement runs on the connection meanwhile).
            before = self.conn.total_changes
            await self.conn.execute_fetchall(text, params)
            count = self.conn.total_changes - before
        return count

    async def _read(self, text: str, params: Any) -> list[Any]:
        await self.setup()
        async with self.lock:
            await self._commit_before_read()
            return list(await self.conn.execute_fetchall(text, params))

    async def _aledger_begin(self, op: Begin) -> tuple[LedgerRow, bool]:
        row = op.row
        params = [getattr(row, c) for c in sql.INSERT_PARAM_COLUMNS]
        params += [row.base_checkpoint_id, row.thread_id]
        await self.setup()
        async with self._writing(immediate=True):
            held = await self.conn.execute_fetchall(sql.LOCK_HOLDER, (row.thread_id,))
            refuse_if_locked(row.thread_id, next(iter(held), None))
            inserted = list(await self.conn.execute_fetchall(sql.INSERT_INTENT, params))
            if not inserted:
                found = next(
                    iter(
                        await self.conn.execute_fetchall(
                            sql.SELECT_BY_ID, (row.effect_id,)
                        )
                    ),
                    None,
                )
        if inserted:
            seq, base = inserted[0]
            return replace(row, seq=seq, base_checkpoint_id=base), True
        assert found is not None
        return row_from_tuple(tuple(found)), False

    async def _aledger_update(self, op: Update) -> bool:
        if self._carry(op):
            return True
        text, params = sql.update_sql(op)
        return await self._write(text, params) > 0

    async def _aledger_select(self, op: Select) -> list[LedgerRow]:
        text, params = sql.select_sql(op)
        return [row_from_tuple(tuple(r)) for r in await self._read(text, params)]

    async def _aledger_head(self, op: ReadHead) -> str | None:
        rows = await self._read(sql.SELECT_HEAD, (op.thread_id,))
        return str(rows[0][0]) if rows else None

    async def _aledger_find_checkpoint(self, op: FindCheckpoint) -> list[str]:
        return [
            str(r[0])
            for r in await self._read(sql.FIND_CHECKPOINT, (op.checkpoint_id,))
        ]

    async def _aledger_ancestry(self, op: ReadAncestry) -> list[CheckpointLink]:
        params = {"thread": op.thread_id, "start": op.start, "stop": op.stop}
        return [
            CheckpointLink.from_row(*r) for r in await self._read(sql.ANCESTRY, params)
        ]

    async def _aledger_subtree(self, op: ReadSubtree) -> list[CheckpointLink]:
        params = {"thread": op.thread_id, "root": op.root}
        return [
            CheckpointLink.from_row(*r) for r in await self._read(sql.SUBTREE, params)
        ]

    async def _aledger_existing(self, op: ExistingCheckpoints) -> set[str]:
        params = (op.thread_id, json.dumps(list(op.checkpoint_ids)))
        return {str(r[0]) for r in await self._read(sql.EXISTING, params)}

    async def _aledger_save_rollback(self, op: SaveRollback) -> None:
        await self._write(sql.SAVE_ROLLBACK, dict(op.record))

    async def _alock_thread(self, thread_id: str, holder: LockHolder) -> None:
        await self.setup()
        # One write transaction from the check to the insert, so two
        # processes sharing the file cannot both see the lock free.
        async with self._writing(immediate=True):
            async with self.conn.execute(sql.LOCK_HOLDER, (thread_id,)) as cur:
                current = await cur.fetchone()
            if current is not None and current[0] != holder.token:
                if holder_alive(current[1], int(current[2]), current[0]):
                    raise RollbackInProgressError(
                        thread_id=thread_id,
                        holder=f"{current[1]}:{current[2]}:{current[0][:8]}",
                    )
                await self.conn.execute(sql.LOCK_RELEASE, (thread_id, current[0]))
            await self.conn.execute(
                sql.LOCK_TAKE,
                (thread_id, holder.token, holder.host, holder.pid, utcnow()),
            )
        holder.held()

    async def _aunlock_thread(self, thread_id: str, holder: LockHolder | None) -> None:
        if holder is None:
            await self._write(sql.LOCK_BREAK, (thread_id,))
            return
        await self._write(sql.LOCK_RELEASE, (thread_id, holder.token))
        holder.released()


def _parent(
    thread_id: str, checkpoint_ns: str, parent_id: str | None
) -> RunnableConfig | None:
    """A checkpoint's parent config, as upstream builds it."""
    if not parent_id:
        return None
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": parent_id,
        }
    }
