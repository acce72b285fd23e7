"""`AsyncSqliteRollbackSaver`: LangGraph's `AsyncSqliteSaver` plus the ledger."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

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

from langgraph_rollback.core.ops import StorageOp
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.task import GuardMode
from langgraph_rollback.savers import sqlite_pipeline as pipeline
from langgraph_rollback.savers import sqlite_sql as sql
from langgraph_rollback.savers.base import mark_restored_copy
from langgraph_rollback.savers.bridges import SyncOverAsync
from langgraph_rollback.savers.kept import CARRY_READ_FAILED
from langgraph_rollback.savers.keys import (
    LOST_KEY,
    SELECT_KEY,
    check_key_kept,
    insert_key_sql,
    keyed_before,
    new_key,
    read_key,
)
from langgraph_rollback.savers.sql import (
    CURRENT_VERSION,
    LEGACY_KEYS,
    pending_migrations,
    update_sql,
)
from langgraph_rollback.savers.sqlite import (
    SETUP_RETRY_DELAYS,
    is_read_only,
    upgrade_error,
)

__all__ = ["AsyncSqliteRollbackSaver"]

T = TypeVar("T")

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
        serde: Serializer for checkpoints; when it encrypts, the ledger's
            payloads are encrypted with its cipher too.
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
                if saver._kept:
                    async with saver._reading():
                        pass

    async def setup(self) -> None:
        """Create LangGraph's tables and migrate the ledger's.

        Called lazily on first use, as upstream does; safe to call again.

        Raises:
            LedgerSchemaError: The ledger was written by a newer version.
            LedgerUpgradeError: The ledger needs an upgrade and the
                connection is read-only.
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
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                await self._refuse_read_only(exc)
                raise
            try:
                await self.conn.execute(sql.VERSION_TABLE)
                async with self.conn.execute(CURRENT_VERSION) as cur:
                    row = await cur.fetchone()
                current = None if row is None else row[0]
                for text, params in pending_migrations(sql.MIGRATIONS, current):
                    await self.conn.execute(text, params)
                legacy = await self.conn.execute_fetchall(LEGACY_KEYS)
                self.legacy_keys = bool(list(legacy))
                if (fresh := new_key(self.ledger_codec)) is not None:
                    if keyed_before(current):
                        lost = list(await self.conn.execute_fetchall(LOST_KEY))
                        check_key_kept(lost[0] if lost else None)
                    await self.conn.execute(insert_key_sql("?", postgres=False), fresh)
                    found = list(await self.conn.execute_fetchall(SELECT_KEY))
                    key = read_key(self.ledger_codec, found[0] if found else None)
                    self._keep_digest_key(key)
            except sqlite3.OperationalError as exc:
                await self.conn.rollback()
                await self._refuse_read_only(exc)
                raise
            except BaseException:
                await self.conn.rollback()
                raise
            await self.conn.commit()
            self._ledger_ready = True

    async def _refuse_read_only(self, exc: sqlite3.OperationalError) -> None:
        """A ledger that needs an upgrade, on a connection that cannot write
        it (as `SqliteRollbackSaver.setup`)."""
        if not is_read_only(exc):
            return
        found: int | None = None
        if list(await self.conn.execute_fetchall(sql.HAS_VERSION_TABLE)):
            rows = list(await self.conn.execute_fetchall(CURRENT_VERSION))
            found = None if not rows or rows[0][0] is None else int(rows[0][0])
        rows = list(await self.conn.execute_fetchall("PRAGMA database_list"))
        raise upgrade_error(found, rows[0] if rows else None) from exc

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
        with self._kept.reporting():
            async with self.lock:
                with self._kept.carrying() as carried:
                    try:
                        if immediate:
                            await self._begin_immediate()
                        for op in carried:
                            rows = await self.conn.execute_fetchall(*update_sql(op))
                            self._kept.written(op, bool(rows))
                        yield
                        await self.conn.commit()
                    except BaseException:
                        await self.conn.rollback()
                        raise

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[None]:
        """Hold the lock for a read, the kept tool outcomes committed first."""
        with self._kept.reporting():
            async with self.lock:
                await self._commit_before_read()
                yield

    async def _commit_before_read(self) -> None:
        """Commit kept tool outcomes before a read (lock held); if that fails,
        the read sees what is on disk and they stay kept for the next write."""
        if not self._kept:
            return
        try:
            with self._kept.carrying(counts=False) as carried:
                try:
                    for op in carried:
                        rows = await self.conn.execute_fetchall(*update_sql(op))
                        self._kept.written(op, bool(rows))
                    await self.conn.commit()
                except BaseException:
                    await self.conn.rollback()
                    raise
        except sqlite3.Error as exc:
            logger.warning(CARRY_READ_FAILED, exc)

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
        async with self._reading():
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
        async with self._reading():
            pass
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

    # --- the one door to storage, through the shared SQLite pipeline -------------

    async def _run(self, script: pipeline.Script[T]) -> T:
        """Run one script of the shared SQLite pipeline in its transaction.

        Each statement is one `execute_fetchall`: one hand-off to aiosqlite's
        thread, where `async with conn.execute(...) as cur` and a fetch take
        three (execute, fetch, close).
        """
        await self.setup()
        if script.write:
            async with self._writing(immediate=script.immediate):
                return await self._steps(script)
        async with self._reading():
            return await self._steps(script)

    async def _steps(self, script: pipeline.Script[T]) -> T:
        rows: Any = None
        while True:
            try:
                stmt = script.steps.send(rows)
            except StopIteration as stop:
                result: T = stop.value
                return result
            rows = list(await self.conn.execute_fetchall(stmt.text, stmt.params))

    async def _aexecute(self, op: StorageOp[T]) -> T:
        result: T = await self._run(pipeline.script_for(op))
        return result

    async def _begin_immediate(self) -> None:
        """Open a write-locked transaction (the caller holds `self.lock`).

        A transaction already open here is one a failed upstream write left
        behind (upstream's `adelete_thread` does not roll back on error): it is
        rolled back, not joined, so this transaction commits nothing half-done.
        """
        if self.conn.in_transaction:
            await self.conn.rollback()
        await self.conn.execute_fetchall("BEGIN IMMEDIATE")

    # --- thread lifecycle (see `savers.lifecycle.LIFECYCLE`) -------------------------

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints and writes of these runs; the ledger stays.

        With `undo_deleted_runs` on, the runs' effects are undone first.
        """
        await self._aundo_runs(run_ids)
        await self._run(pipeline.delete_for_runs(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints and writes; its effects stay with the source."""
        await self._run(pipeline.copy_thread(source_thread_id, target_thread_id))

    async def aprune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Prune checkpoints ("keep_latest" or "delete"); the ledger stays."""
        await self._run(pipeline.prune(thread_ids, strategy))


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
