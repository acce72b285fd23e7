"""LangGraph's own checkpointer conformance suite, on every saver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES
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
    report = await validate(registered)
    base = {cap.value for cap in BASE_CAPABILITIES}
    results = {name: r for name, r in report.results.items() if name in base}
    passed = sum(r.tests_passed for r in results.values())
    failed = sum(r.tests_failed for r in results.values())
    failures = [f for r in results.values() for f in (r.failures or [])]
    with capsys.disabled():
        print(f"\n[conformance] {registered.name}: base {passed}/{passed + failed}")
    assert failures == []
    assert (passed, failed) == (58, 0)
