"""`SqliteRollbackSaver`: LangGraph's `SqliteSaver` plus the side-effect ledger."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite import SqliteSaver

from langgraph_rollback._errors import LedgerUpgradeError
from langgraph_rollback.core.ledger_codec import LedgerCodec
from langgraph_rollback.core.ops import StorageOp, Update
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.task import GuardMode
from langgraph_rollback.savers import sqlite_pipeline as pipeline
from langgraph_rollback.savers import sqlite_sql as sql
from langgraph_rollback.savers.base import mark_restored_copy
from langgraph_rollback.savers.bridges import SyncBackedAsync
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

__all__ = ["SqliteRollbackSaver"]

T = TypeVar("T")

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
    keeps every effect (see `savers.lifecycle.LIFECYCLE`).

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
                saver._commit_kept_now()

    def _commit_kept_now(self) -> None:
        """Commit the outcomes kept for a next write that did not come."""
        if self._kept:
            with self.cursor(transaction=False):
                pass

    def setup(self) -> None:
        """Create LangGraph's tables and migrate the ledger's.

        Called lazily on first use, as upstream does; safe to call again.

        Raises:
            LedgerSchemaError: The ledger was written by a newer version.
            LedgerUpgradeError: The ledger needs an upgrade and the
                connection is read-only.
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
            self.legacy_keys, key = _migrate(self.conn, self.ledger_codec)
        except BaseException:
            self.is_setup = False
            raise
        self._keep_digest_key(key)

    def _load_digest_key(self) -> None:
        self.is_setup = False  # the ledger's part of setup() reads the key
        self.setup()

    def cursor(  # type: ignore[override]
        self, transaction: bool = True
    ) -> AbstractContextManager[sqlite3.Cursor]:
        """Upstream's cursor, but a failed write rolls back instead of committing.

        Tool outcomes kept for the next write (`savers.kept`) run first, in
        the same transaction as a write, or committed on their own before a
        read. Statements queued by `put` for the same transaction (the
        restored head's rollback record) run before the commit, so both or
        neither land. (The transaction's context manager itself: upstream
        enters a cursor for every read and write.)
        """
        return self._transaction(write=transaction)

    def _transaction(
        self, *, write: bool, immediate: bool = False
    ) -> AbstractContextManager[sqlite3.Cursor]:
        """The saver's lock and one transaction around the body (`_Transaction`)."""
        return _Transaction(self, write, immediate)

    def _commit_kept(self, cur: sqlite3.Cursor) -> None:
        """Commit kept tool outcomes before a read (lock held); if that fails,
        the read sees what is on disk and they stay kept for the next write."""
        if not self._kept:
            return
        try:
            with self._kept.carrying(counts=False) as carried:
                for op in carried:
                    self._kept.written(op, _changed(cur, op))
                self.conn.commit()
        except sqlite3.Error as exc:
            if self.conn.in_transaction:
                self.conn.rollback()
            logger.warning(CARRY_READ_FAILED, exc)

    def _run(self, script: pipeline.Script[T]) -> T:
        """Run one script of the shared SQLite pipeline in its transaction."""
        with self._transaction(write=script.write, immediate=script.immediate) as cur:
            steps, rows = script.steps, cast(Any, None)
            while True:
                try:
                    stmt = steps.send(rows)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                rows = cur.execute(stmt.text, stmt.params).fetchall()

    def _execute(self, op: StorageOp[T]) -> T:
        if isinstance(op, Update):
            # The pipeline's `Update` script, one statement, without its
            # generator.
            with self._transaction(write=True) as cur:
                changed = _changed(cur, op)
            return cast(T, changed)
        result: T = self._run(pipeline.script_for(op))
        return result

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

    # --- thread lifecycle (see `savers.lifecycle.LIFECYCLE`) -------------------------

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints and writes of these runs; the ledger stays.

        With `undo_deleted_runs` on, the runs' effects are undone first.
        """
        self._undo_runs(run_ids)
        self._run(pipeline.delete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints and writes; its effects stay with the source."""
        self._run(pipeline.copy_thread(source_thread_id, target_thread_id))

    def prune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Prune checkpoints ("keep_latest" or "delete"); the ledger stays."""
        self._run(pipeline.prune(thread_ids, strategy))


class _Transaction(AbstractContextManager[sqlite3.Cursor]):
    """`SqliteRollbackSaver._transaction`: an object, not a generator, since
    every read and write of the saver enters one.

    With the saver's lock held: set up if needed, open a cursor. A read
    commits the kept tool outcomes first (`_commit_kept`). A write takes them
    (`KeptOutcomes.carrying`), writes them first, then the body's statements,
    then those `put` queued for the same transaction, and commits; if any of
    it raises, it rolls back and they are kept again. Once the lock is
    released, the probe hears of the outcomes committed (`reporting`).
    """

    __slots__ = ("_carrying", "_cur", "_immediate", "_saver", "_write")

    def __init__(
        self, saver: SqliteRollbackSaver, write: bool, immediate: bool
    ) -> None:
        self._saver = saver
        self._write = write
        self._immediate = immediate

    def __enter__(self) -> sqlite3.Cursor:
        saver = self._saver
        saver.lock.acquire()
        try:
            if not saver.is_setup:
                saver.setup()
            cur = self._cur = saver.conn.cursor()
            try:
                if not self._write:
                    saver._commit_kept(cur)
                    return cur
                carrying = self._carrying = saver._kept.carrying()
                carried = carrying.__enter__()
                try:
                    if self._immediate:
                        if saver.conn.in_transaction:
                            saver.conn.rollback()
                        cur.execute("BEGIN IMMEDIATE")
                    for op in carried:
                        saver._kept.written(op, _changed(cur, op))
                except BaseException as exc:
                    self._abandon(type(exc), exc)
                    raise
            except BaseException:
                cur.close()
                raise
        except BaseException:
            self._release()
            raise
        return cur

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        saver = self._saver
        try:
            if self._write:
                if kind is not None:
                    self._abandon(kind, exc)
                    return
                try:
                    for text, params in _SAME_TRANSACTION.get():
                        self._cur.execute(text, params)
                except BaseException as error:
                    self._abandon(type(error), error)
                    raise
                try:
                    saver.conn.commit()
                except BaseException as error:
                    self._carrying.__exit__(type(error), error, error.__traceback__)
                    raise
                self._carrying.__exit__(None, None, None)
        finally:
            self._cur.close()
            self._release()

    def _abandon(self, kind: Any, exc: BaseException | None) -> None:
        """Roll back a write that failed; its kept outcomes are kept again."""
        try:
            if self._saver.conn.in_transaction:
                self._saver.conn.rollback()
        finally:
            self._carrying.__exit__(kind, exc, None)

    def _release(self) -> None:
        try:
            self._saver.lock.release()
        finally:
            self._saver._kept.reporting().__exit__(None, None, None)


def _changed(cur: sqlite3.Cursor, op: Update) -> bool:
    """Write an `Update`; whether it changed its row (sqlite3 counts the
    rows changed, so the statement needs no `RETURNING` result)."""
    return cur.execute(*update_sql(op, returning=False)).rowcount > 0


SETUP_RETRY_DELAYS: tuple[float | None, ...] = (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, None)
"""Waits between attempts at upstream's setup script; `None`: give up."""


def _migrate(
    conn: sqlite3.Connection, codec: LedgerCodec
) -> tuple[bool, tuple[bytes, bool] | None]:
    """Apply the ledger migrations this database has not seen, in one
    transaction that takes the write lock before reading the version.

    A ledger already at the latest version (with its digest key, when
    payloads are encrypted) is only read: the write lock is not taken, so
    inspecting a database another process is writing (the CLI) does not wait
    for that process's transaction.

    Returns whether the ledger holds call keys of the format before `v2:`,
    and the digest key (`savers.keys`) when payloads are encrypted.
    """
    if conn.in_transaction:
        conn.rollback()
    if not pending_migrations(sql.MIGRATIONS, ledger_version(conn)):
        legacy = conn.execute(LEGACY_KEYS).fetchone() is not None
        if codec.cipher is None:
            return legacy, None
        if (found := conn.execute(SELECT_KEY).fetchone()) is not None:
            return legacy, read_key(codec, found)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        _refuse_read_only(conn, exc)
        raise
    try:
        conn.execute(sql.VERSION_TABLE)
        (current,) = conn.execute(CURRENT_VERSION).fetchone()
        for text, params in pending_migrations(sql.MIGRATIONS, current):
            conn.execute(text, params)
        legacy = conn.execute(LEGACY_KEYS).fetchone() is not None
        key = None
        if (fresh := new_key(codec)) is not None:
            if keyed_before(current):
                check_key_kept(conn.execute(LOST_KEY).fetchone())
            conn.execute(insert_key_sql("?", postgres=False), fresh)
            key = read_key(codec, conn.execute(SELECT_KEY).fetchone())
    except sqlite3.OperationalError as exc:
        conn.rollback()
        _refuse_read_only(conn, exc)
        raise
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return legacy, key


def _refuse_read_only(conn: sqlite3.Connection, exc: sqlite3.OperationalError) -> None:
    """A ledger that needs an upgrade, on a connection that cannot write it."""
    if is_read_only(exc):
        row = conn.execute("PRAGMA database_list").fetchone()
        raise upgrade_error(ledger_version(conn), row) from exc


def is_read_only(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused a write because the database is read-only."""
    return "readonly" in str(exc) or "read-only" in str(exc)


def upgrade_error(found: int | None, database_row: Any) -> LedgerUpgradeError:
    """The refusal of an upgrade on a read-only connection; `database_row`
    is `PRAGMA database_list`'s first row (its file name), if any."""
    where = (database_row[2] if database_row else "") or "this database"
    return LedgerUpgradeError(
        found=found, supported=len(sql.MIGRATIONS) - 1, database=where
    )


def ledger_version(conn: sqlite3.Connection) -> int | None:
    """The ledger's schema version, read without a write lock (None: none yet)."""
    if conn.execute(sql.HAS_VERSION_TABLE).fetchone() is None:
        return None
    (current,) = conn.execute(CURRENT_VERSION).fetchone()
    return None if current is None else int(current)
