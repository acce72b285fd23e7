"""What every benchmark section shares: savers by kind, stores, sizes, timing.

A *kind* names a pair of savers: LangGraph's own ("upstream") and the
rollback saver that subclasses it ("ours"). `memory`, `sqlite` and
`postgres` are driven with the sync API (`invoke`, `get_tuple`, `list`);
`aio_sqlite` and `aio_postgres` with the async API (`ainvoke`, `aget_tuple`,
`alist`), inside an event loop created for the run.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from langgraph_rollback import (
    AsyncSqliteRollbackSaver,
    InMemoryRollbackSaver,
    SqliteRollbackSaver,
    ToolRegistry,
)

SYNC_KINDS = ("memory", "sqlite", "postgres")
ASYNC_KINDS = ("aio_sqlite", "aio_postgres")
ALL_KINDS = ("memory", "sqlite", "aio_sqlite", "postgres", "aio_postgres")
PG_KINDS = ("postgres", "aio_postgres")
VARIANTS = ("upstream", "ours")

UPSTREAM_NAMES = {
    "memory": "InMemorySaver",
    "sqlite": "SqliteSaver",
    "aio_sqlite": "AsyncSqliteSaver",
    "postgres": "PostgresSaver",
    "aio_postgres": "AsyncPostgresSaver",
}
OURS_NAMES = {
    "memory": "InMemoryRollbackSaver",
    "sqlite": "SqliteRollbackSaver",
    "aio_sqlite": "AsyncSqliteRollbackSaver",
    "postgres": "PostgresRollbackSaver",
    "aio_postgres": "AsyncPostgresRollbackSaver",
}


def is_async(kind: str) -> bool:
    """Whether the kind is driven with the async API."""
    return kind in ASYNC_KINDS


def median(values: Sequence[float]) -> float:
    """The median (of at least one value)."""
    return float(statistics.median(values))


def paired_ratio(ours: Sequence[float], upstream: Sequence[float]) -> float:
    """The median of the per-repeat ratios ours/upstream of paired runs."""
    return median([o / u for o, u in zip(ours, upstream, strict=True) if u > 0])


def now() -> float:
    """A monotonic clock in seconds."""
    return time.perf_counter()


def alternate(repeat: int) -> tuple[str, str]:
    """The order of a pair in repeat `repeat`: upstream first on even repeats."""
    return ("upstream", "ours") if repeat % 2 == 0 else ("ours", "upstream")


@dataclass
class Env:
    """Where a benchmark run puts its stores, and what it may use."""

    root: Path
    quick: bool
    pg_server: str | None = None
    pg_note: str = ""
    kinds: tuple[str, ...] = field(default=())

    def tmpdir(self, prefix: str) -> Path:
        """A fresh directory under the run's root."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))


# --- PostgreSQL -------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server(wanted: bool) -> Iterator[tuple[str | None, str]]:
    """A PostgreSQL server (URL, note) as the tests start one, or (None, why)."""
    if not wanted:
        yield None, "not requested"
        return
    try:
        from tests.support.pg_server import (
            ENV_URL,
            PostgresUnavailable,
            throwaway_server,
        )
    except ImportError as exc:  # pragma: no cover - run from the repository root
        yield None, f"tests/support/pg_server.py not importable: {exc}"
        return
    url = os.environ.get(ENV_URL)
    if url:
        yield url, f"server from {ENV_URL}"
        return
    try:
        server = throwaway_server(fsync=True)
        started = server.__enter__()
    except PostgresUnavailable as exc:
        yield None, str(exc)
        return
    try:
        yield started, "throwaway PostgreSQL on loopback, fsync on"
    finally:
        server.__exit__(None, None, None)


@contextlib.contextmanager
def pg_database(server: str) -> Iterator[str]:
    """A fresh database on `server`, dropped afterwards."""
    from tests.support.pg_server import create_database, drop_database

    url = create_database(server)
    try:
        yield url
    finally:
        drop_database(server, url)


# --- stores -----------------------------------------------------------------------


@contextlib.contextmanager
def fresh_store(kind: str, env: Env, prefix: str = "store-") -> Iterator[str]:
    """A new, empty store for `kind`: a SQLite path, a PostgreSQL URL, or ""."""
    if kind in PG_KINDS:
        assert env.pg_server is not None
        with pg_database(env.pg_server) as url:
            yield url
        return
    directory = env.tmpdir(prefix)
    try:
        yield str(directory / "bench.sqlite") if kind != "memory" else ""
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def sqlite_sizes(path: str) -> dict[str, int]:
    """Bytes of a closed SQLite file, and of the ledger's table and its indexes
    (`dbstat` pages)."""
    total = os.path.getsize(path)
    wal = Path(path + "-wal")
    if wal.exists():
        total += wal.stat().st_size
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (ledger,) = conn.execute(
            "SELECT coalesce(sum(d.pgsize), 0) FROM dbstat AS d "
            "JOIN sqlite_master AS m ON m.name = d.name "
            "WHERE m.tbl_name = 'lgrb_effects'"
        ).fetchone()
    return {"db_bytes": total, "ledger_bytes": int(ledger)}


def pg_sizes(url: str) -> dict[str, int]:
    """Bytes of the tables (with indexes and TOAST) in a PostgreSQL database."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM")
        (total,) = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchone()  # type: ignore[misc]
        (ledger,) = conn.execute(
            "SELECT coalesce(pg_total_relation_size(to_regclass('lgrb_effects')), 0)"
        ).fetchone()  # type: ignore[misc]
    return {"db_bytes": int(total), "ledger_bytes": int(ledger)}


def store_sizes(kind: str, where: str) -> dict[str, int | None]:
    """Database and ledger bytes of a store (None for the in-memory savers)."""
    if kind == "memory":
        return {"db_bytes": None, "ledger_bytes": None}
    if kind in PG_KINDS:
        return dict(pg_sizes(where))
    return dict(sqlite_sizes(where))


# --- savers -----------------------------------------------------------------------


@contextlib.contextmanager
def open_sync_saver(
    kind: str, variant: str, where: str, registry: ToolRegistry
) -> Iterator[Any]:
    """A sync saver of `kind` on `where`, set up; closed on exit."""
    ours = variant == "ours"
    if kind == "memory":
        yield InMemoryRollbackSaver(registry=registry) if ours else InMemorySaver()
    elif kind == "sqlite":
        with contextlib.closing(
            sqlite3.connect(where, check_same_thread=False)
        ) as conn:
            saver = (
                SqliteRollbackSaver(conn, registry=registry)
                if ours
                else SqliteSaver(conn)
            )
            saver.setup()
            yield saver
    elif kind == "postgres":
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg import Connection
        from psycopg.rows import dict_row

        from langgraph_rollback.postgres import PostgresRollbackSaver

        with Connection.connect(
            where, autocommit=True, prepare_threshold=0, row_factory=dict_row
        ) as conn:
            saver = (
                PostgresRollbackSaver(conn, registry=registry)
                if ours
                else PostgresSaver(conn)  # type: ignore[arg-type]
            )
            saver.setup()
            yield saver
    else:
        raise ValueError(kind)


@contextlib.asynccontextmanager
async def open_async_saver(
    kind: str, variant: str, where: str, registry: ToolRegistry
) -> AsyncIterator[Any]:
    """An async saver of `kind` on `where`, set up; closed on exit."""
    ours = variant == "ours"
    if kind == "aio_sqlite":
        import aiosqlite

        async with aiosqlite.connect(where) as conn:
            saver = (
                AsyncSqliteRollbackSaver(conn, registry=registry)
                if ours
                else AsyncSqliteSaver(conn)
            )
            await saver.setup()
            yield saver
    elif kind == "aio_postgres":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg import AsyncConnection
        from psycopg.rows import dict_row

        from langgraph_rollback.postgres import AsyncPostgresRollbackSaver

        async with await AsyncConnection.connect(
            where, autocommit=True, prepare_threshold=0, row_factory=dict_row
        ) as conn:
            saver = (
                AsyncPostgresRollbackSaver(conn, registry=registry)
                if ours
                else AsyncPostgresSaver(conn)  # type: ignore[arg-type]
            )
            await saver.setup()
            yield saver
    else:
        raise ValueError(kind)


# --- the machine ------------------------------------------------------------------


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Cores, Python, SQLite and the LangGraph package versions."""
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {
            name: _version(name)
            for name in (
                "langgraph",
                "langgraph-checkpoint",
                "langgraph-checkpoint-sqlite",
                "langgraph-checkpoint-postgres",
                "langgraph-prebuilt",
                "langchain-core",
                "aiosqlite",
                "psycopg",
                "langgraph-rollback",
            )
        },
    }


def new_thread_id() -> str:
    """A fresh thread id."""
    return f"bench-{uuid.uuid4().hex[:12]}"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run `fn`; return (seconds, result)."""
    start = now()
    result = fn()
    return now() - start, result
