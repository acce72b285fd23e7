"""`SqliteRollbackSaver`: LangGraph's `SqliteSaver` plus the side-effect ledger."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import replace
from itertools import islice
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite import SqliteSaver

from langgraph_rollback._errors import LedgerSchemaError
from langgraph_rollback._ledger import (
    EffectQuery,
    LedgerRow,
    Update,
    row_from_tuple,
)
from langgraph_rollback._registry import ToolRegistry
from langgraph_rollback.backends import sqlite_schema as sql
from langgraph_rollback.backends.base import BaseRollbackSaver

__all__ = ["SqliteRollbackSaver"]

_LIST_BATCH = 64
"""Checkpoints fetched per thread hop by `alist`."""


class SqliteRollbackSaver(BaseRollbackSaver, SqliteSaver):
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

    `delete_thread` removes the thread's checkpoints and writes but keeps its
    ledger: effects the agent made are still in the world and may still need
    undoing.

    Args:
        conn: The SQLite connection. It belongs to the caller; open it with
            `check_same_thread=False` to use the saver from several threads.
        serde: Serializer for checkpoints *and* ledger payloads (args,
            results, observations). Defaults to LangGraph's `JsonPlusSerializer`.
        registry: Where rollbacks through this saver find inverses. Defaults
            to the process-wide `default_registry`.

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
    ) -> None:
        super().__init__(conn, serde=serde)
        if registry is not None:
            self.registry = registry

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        registry: ToolRegistry | None = None,
    ) -> Iterator[SqliteRollbackSaver]:
        """Open a database (a path, or `":memory:"`) and close it on exit.

        Example:
            ```python
            with SqliteRollbackSaver.from_conn_string("agent.sqlite") as saver:
                ...
            ```
        """
        with closing(sqlite3.connect(conn_string, check_same_thread=False)) as conn:
            yield cls(conn, serde=serde, registry=registry)

    def setup(self) -> None:
        """Create LangGraph's tables and migrate the ledger's.

        Called lazily on first use, as upstream does; safe to call again.

        Raises:
            LedgerSchemaError: The ledger was written by a newer version.
        """
        if self.is_setup:
            return
        super().setup()
        try:
            _migrate(self.conn)
        except BaseException:
            self.is_setup = False
            raise

    # --- ledger primitives ----------------------------------------------------

    def _ledger_begin(self, row: LedgerRow) -> tuple[LedgerRow, bool]:
        params = [getattr(row, c) for c in sql.INSERT_PARAM_COLUMNS]
        params.append(row.thread_id)
        with self.cursor() as cur:
            cur.execute(sql.INSERT_INTENT, params)
            inserted = cur.fetchall()
            if inserted:
                seq, base = inserted[0]
                return replace(row, seq=seq, base_checkpoint_id=base), True
            cur.execute(sql.SELECT_BY_ID, (row.effect_id,))
            return row_from_tuple(cur.fetchone()), False

    def _ledger_update(self, update: Update) -> bool:
        text, params = _update_sql(update)
        with self.cursor() as cur:
            cur.execute(text, params)
            return cur.rowcount > 0

    def _ledger_select(self, query: EffectQuery) -> list[LedgerRow]:
        where, params = query.sql_where("?")
        text = f"SELECT {sql.SELECT_COLUMNS} FROM lgrb_effects WHERE {where} ORDER BY seq DESC"
        if query.limit is not None:
            text += " LIMIT ?"
            params.append(query.limit)
        with self.cursor(transaction=False) as cur:
            cur.execute(text, params)
            return [row_from_tuple(r) for r in cur.fetchall()]

    async def _aledger_begin(self, row: LedgerRow) -> tuple[LedgerRow, bool]:
        return await asyncio.to_thread(self._ledger_begin, row)

    async def _aledger_update(self, update: Update) -> bool:
        return await asyncio.to_thread(self._ledger_update, update)

    async def _aledger_select(self, query: EffectQuery) -> list[LedgerRow]:
        return await asyncio.to_thread(self._ledger_select, query)

    # --- async checkpoint API, served by the sync methods off the loop -------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async `get_tuple`, run in a worker thread."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async `list`: streams from a worker thread, a batch per hop."""
        iterator = cast(
            Generator[CheckpointTuple, None, None],
            self.list(config, filter=filter, before=before, limit=limit),
        )
        try:
            while True:
                batch = await asyncio.to_thread(_take, iterator, _LIST_BATCH)
                for item in batch:
                    yield item
                if len(batch) < _LIST_BATCH:
                    return
        finally:
            await asyncio.to_thread(iterator.close)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async `put`, run in a worker thread."""
        return await asyncio.to_thread(
            self.put, config, checkpoint, metadata, new_versions
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async `put_writes`, run in a worker thread."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """Async `delete_thread`, run in a worker thread."""
        await asyncio.to_thread(self.delete_thread, thread_id)


def _take(iterator: Iterator[CheckpointTuple], n: int) -> list[CheckpointTuple]:
    return list(islice(iterator, n))


def _update_sql(update: Update, mark: str = "?") -> tuple[str, list[Any]]:
    # Column names come from `Update`, which admits only `_ledger.UPDATABLE`.
    sets = ", ".join(f"{column} = {mark}" for column in update.changes)
    params: list[Any] = list(update.changes.values())
    text = f"UPDATE lgrb_effects SET {sets} WHERE effect_id = {mark}"
    params.append(update.effect_id)
    if update.expect:
        text += f" AND status IN ({', '.join([mark] * len(update.expect))})"
        params.extend(update.expect)
    return text, params


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the ledger migrations this database has not seen, each atomically."""
    conn.executescript(sql.VERSION_TABLE)
    row = conn.execute("SELECT max(v) FROM lgrb_migrations").fetchone()
    current = -1 if row[0] is None else int(row[0])
    latest = len(sql.MIGRATIONS) - 1
    if current > latest:
        raise LedgerSchemaError(found=current, supported=latest)
    for version in range(current + 1, latest + 1):
        conn.executescript(
            "BEGIN;\n"
            + sql.MIGRATIONS[version]
            + f"\nINSERT INTO lgrb_migrations (v) VALUES ({int(version)});\nCOMMIT;"
        )
