"""LangGraph's own checkpointer conformance suite, on every saver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)
from langgraph.checkpoint.conformance.initializer import RegisteredCheckpointer

from langgraph_rollback import (
    AsyncSqliteRollbackSaver,
    InMemoryRollbackSaver,
    SqliteRollbackSaver,
)


@checkpointer_test(name="InMemoryRollbackSaver")
async def memory_saver() -> AsyncIterator[InMemoryRollbackSaver]:
    yield InMemoryRollbackSaver()


@checkpointer_test(name="SqliteRollbackSaver")
async def sqlite_saver() -> AsyncIterator[SqliteRollbackSaver]:
    with SqliteRollbackSaver.from_conn_string(":memory:") as saver:
        yield saver


@checkpointer_test(name="AsyncSqliteRollbackSaver")
async def aio_sqlite_saver() -> AsyncIterator[AsyncSqliteRollbackSaver]:
    async with AsyncSqliteRollbackSaver.from_conn_string(":memory:") as saver:
        yield saver


@pytest.mark.parametrize(
    "registered",
    [memory_saver, sqlite_saver, aio_sqlite_saver],
    ids=lambda r: r.name,
)
async def test_base_conformance(
    registered: RegisteredCheckpointer, capsys: pytest.CaptureFixture[str]
) -> None:
    await _check(registered, capsys)


@pytest.mark.parametrize(
    "kind", ["PostgresRollbackSaver", "AsyncPostgresRollbackSaver"]
)
async def test_base_conformance_postgres(
    kind: str, pg_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from langgraph_rollback.postgres import (
        AsyncPostgresRollbackSaver,
        PostgresRollbackSaver,
    )
    from tests.support.pg_server import create_database, drop_database

    async def saver() -> AsyncIterator[Any]:
        url = create_database(pg_server)
        try:
            if kind == "PostgresRollbackSaver":
                with PostgresRollbackSaver.from_conn_string(url) as sync_saver:
                    sync_saver.setup()
                    yield sync_saver
            else:
                async with AsyncPostgresRollbackSaver.from_conn_string(
                    url
                ) as async_saver:
                    await async_saver.setup()
                    yield async_saver
        finally:
            drop_database(pg_server, url)

    await _check(checkpointer_test(name=kind)(saver), capsys)


async def _check(
    registered: RegisteredCheckpointer, capsys: pytest.CaptureFixture[str]
) -> None:
    report = await validate(registered)
    counts = {}
    for group, caps in (
        ("base", BASE_CAPABILITIES),
        ("extended", EXTENDED_CAPABILITIES),
    ):
        results = [report.results[cap.value] for cap in caps]
        assert all(r.detected for r in results), f"{group}: not all detected"
        failures = [f for r in results for f in (r.failures or [])]
        assert failures == []
        counts[group] = (
            sum(r.tests_passed for r in results),
            sum(r.tests_passed + r.tests_failed for r in results),
        )
    with capsys.disabled():
        print(
            f"\n[conformance] {registered.name}: base {counts['base'][0]}/"
            f"{counts['base'][1]}, extended {counts['extended'][0]}/"
            f"{counts['extended'][1]} (delete_for_runs, copy_thread, prune)"
        )
    assert counts["base"] == (58, 58)
