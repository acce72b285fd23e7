from __future__ import annotations

import asyncio
import inspect
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from langgraph_rollback import (
    AsyncSqliteRollbackSaver,
    BaseRollbackSaver,
    InMemoryRollbackSaver,
    SqliteRollbackSaver,
    ToolRegistry,
)
from tests.support.world import World

T = TypeVar("T")

SAVER_KINDS = ["memory", "sqlite", "aio_sqlite", "postgres", "aio_postgres"]
_PG_KINDS = {"postgres", "aio_postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the PostgreSQL server `postgres`."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if names & {"pg_server", "pg_url"} or _PG_KINDS & {
            str(v) for v in params.values()
        }:
            item.add_marker(pytest.mark.postgres)


class LoopThread:
    """An event loop running in a background thread.

    `AsyncSqliteRollbackSaver` belongs to the loop it was created in; sync
    tests create it here so their sync calls come from another thread, as
    upstream requires.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for the session (see tests/support/pg_server.py).

    Skips PostgreSQL tests when none can be had, except under CI (`CI=true`),
    where they must run.
    """
    from tests.support.pg_server import PostgresUnavailable, server_url

    try:
        with server_url() as url:
            yield url
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL is required under CI: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server."""
    from tests.support.pg_server import create_database, drop_database

    url = create_database(pg_server)
    yield url
    drop_database(pg_server, url)


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "world")


@pytest.fixture(params=SAVER_KINDS)
def saver_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def aio_pg_saver_on_test_loop(
    registry: ToolRegistry, pg_url: str
) -> AsyncIterator[BaseRollbackSaver]:
    from langgraph_rollback.postgres import AsyncPostgresRollbackSaver

    async with AsyncPostgresRollbackSaver.from_conn_string(
        pg_url, registry=registry
    ) as saver:
        await saver.setup()
        yield saver


@pytest_asyncio.fixture
async def aio_saver_on_test_loop(
    registry: ToolRegistry, tmp_path: Path
) -> AsyncIterator[AsyncSqliteRollbackSaver]:
    async with AsyncSqliteRollbackSaver.from_conn_string(
        str(tmp_path / "ledger.sqlite"), registry=registry
    ) as saver:
        yield saver


@pytest.fixture
def saver(
    saver_kind: str,
    registry: ToolRegistry,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[BaseRollbackSaver]:
    """One of every saver, each on a real store (a SQLite file for SQLite)."""
    path = str(tmp_path / "ledger.sqlite")
    if saver_kind == "memory":
        yield InMemoryRollbackSaver(registry=registry)
    elif saver_kind == "sqlite":
        with SqliteRollbackSaver.from_conn_string(path, registry=registry) as s:
            yield s
    elif saver_kind == "aio_sqlite":
        if inspect.iscoroutinefunction(request.function):
            yield request.getfixturevalue("aio_saver_on_test_loop")
            return
        loop = LoopThread()
        manager = AsyncSqliteRollbackSaver.from_conn_string(path, registry=registry)
        try:
            yield loop.run(manager.__aenter__())
        finally:
            loop.run(manager.__aexit__(None, None, None))
            loop.close()
    elif saver_kind == "postgres":
        from langgraph_rollback.postgres import PostgresRollbackSaver

        url = request.getfixturevalue("pg_url")
        with PostgresRollbackSaver.from_conn_string(url, registry=registry) as s:
            s.setup()
            yield s
    elif saver_kind == "aio_postgres":
        if inspect.iscoroutinefunction(request.function):
            yield request.getfixturevalue("aio_pg_saver_on_test_loop")
            return
        from langgraph_rollback.postgres import AsyncPostgresRollbackSaver

        url = request.getfixturevalue("pg_url")
        loop = LoopThread()
        manager = AsyncPostgresRollbackSaver.from_conn_string(url, registry=registry)
        try:
            saver = loop.run(manager.__aenter__())
            loop.run(saver.setup())
            yield saver
        finally:
            loop.run(manager.__aexit__(None, None, None))
            loop.close()
    else:  # pragma: no cover
        raise AssertionError(saver_kind)


@pytest.fixture
def raw_sql(
    saver_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[str, tuple[Any, ...]], None] | None:
    """Run a statement (with `?` placeholders) on the test saver's own store,
    over a separate connection; None for the in-memory saver."""
    if saver_kind in ("sqlite", "aio_sqlite"):

        def run_sqlite(text: str, params: tuple[Any, ...] = ()) -> None:
            with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
                db.execute(text, params)

        return run_sqlite
    if saver_kind in ("postgres", "aio_postgres"):
        url = request.getfixturevalue("pg_url")

        def run_pg(text: str, params: tuple[Any, ...] = ()) -> None:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(text.replace("?", "%s"), params)

        return run_pg
    return None
