from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
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
from tests.world import World

T = TypeVar("T")

SAVER_KINDS = ["memory", "sqlite", "aio_sqlite"]


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
    else:  # pragma: no cover
        raise AssertionError(saver_kind)
