"""The SQL battery, on real SQLite files and real PostgreSQL databases."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langgraph_rollback import (
    InvalidConfigError,
    SqliteRollbackSaver,
    ToolRegistry,
    rollback,
)
from langgraph_rollback.batteries.sql import SqlDatabase, sql_tools
from tests.batteries.test_files import agent

CFG: Any = {"configurable": {"thread_id": "sql"}}
ID = {"sqlite": "INTEGER PRIMARY KEY", "postgres": "SERIAL PRIMARY KEY"}
SEED = [
    "INSERT INTO tickets (title, status) VALUES ('login broken', 'open')",
    "INSERT INTO tickets (title, status) VALUES ('slow search', 'open')",
    "INSERT INTO tickets (title, status) VALUES ('typo on home', 'open')",
]


class Target:
    """The database the agent changes, and a way to read it back."""

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def run(self, sql: str) -> None:
        with self.db.transaction() as cur:
            cur.execute(sql)

    def rows(self) -> list[tuple[Any, ...]]:
        with self.db.transaction() as cur:
            cur.execute("SELECT id, title, status FROM tickets ORDER BY id")
            return [tuple(r) for r in cur.fetchall()]


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "sqlite":
        db = SqlDatabase.sqlite(str(tmp_path / "app.sqlite"), name="app")
    else:
        db = SqlDatabase.postgres(request.getfixturevalue("pg_url"), name="app")
    t = Target(db)
    t.run(
        f"CREATE TABLE tickets (id {ID[db.dialect]}, title TEXT NOT NULL, status TEXT NOT NULL)"
    )
    for statement in SEED:
        t.run(statement)
    return t


@pytest.fixture
def saver(registry: ToolRegistry, tmp_path: Path) -> Iterator[SqliteRollbackSaver]:
    with SqliteRollbackSaver.from_conn_string(
        str(tmp_path / "ledger.sqlite"), registry=registry
    ) as s:
        yield s


TURNS = [
    [("insert_rows", {"table": "tickets", "rows": [{"title": "dup", "status": "open"}]})],
    [("update_rows", {"table": "tickets", "where": {"status": "open"}, "values": {"status": "closed"}})],
    [("delete_rows", {"table": "tickets", "where": {"id": 2}})],
]  # fmt: skip


def test_insert_update_delete_are_undone(
    target: Target, saver: SqliteRollbackSaver, registry: ToolRegistry
) -> None:
    before = target.rows()
    graph = agent(saver, sql_tools(target.db, registry=registry), TURNS)
    graph.invoke({"messages": []}, CFG, durability="sync")
    after = target.rows()
    assert [r[0] for r in after] == [1, 3, 4]
    assert {r[2] for r in after} == {"closed"}

    update = next(e for e in saver.list_effects(CFG) if e.tool == "update_rows")
    images = update.result[1]
    assert images["table"] == "tickets" and images["before"]

    first = list(graph.get_state_history(CFG))[-1]
    report = rollback(graph, CFG, to=first)
    assert report.ok, str(report)
    assert len(report.undone) == 3
    assert target.rows() == before


def test_drift_fails_the_inverse_and_overwrites_nothing(
    target: Target, saver: SqliteRollbackSaver, registry: ToolRegistry
) -> None:
    graph = agent(
        saver,
        sql_tools(target.db, registry=registry),
        [[("update_rows", {"table": "tickets", "where": {"id": 1}, "values": {"status": "closed"}})]],
    )  # fmt: skip
    graph.invoke({"messages": []}, CFG, durability="sync")
    target.run("UPDATE tickets SET title = 'edited by a human' WHERE id = 1")
    first = list(graph.get_state_history(CFG))[-1]
    report = rollback(graph, CFG, to=first)
    assert report.status == "failed"
    (failure,) = report.failures
    assert "RowDriftError" in failure.error and "on_drift" in failure.error
    assert target.rows()[0] == (1, "edited by a human", "closed")

    # Declared with on_drift="overwrite", a later rollback restores the row.
    target.db.on_drift = "overwrite"
    assert rollback(graph, CFG, to=first).ok
    assert target.rows()[0] == (1, "login broken", "open")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"table": "nope", "where": {"id": 1}}, "has no table 'nope'"),
        ({"table": "tickets", "where": {"colour": "red"}}, "no column"),
        ({"table": "tickets", "where": {}}, "empty `where`"),
        ({"table": "tickets; DROP TABLE tickets", "where": {"id": 1}}, "has no table"),
    ],
)
def test_bad_tables_and_columns_are_refused(
    target: Target, registry: ToolRegistry, call: dict[str, Any], message: str
) -> None:
    _insert, _update, delete = sql_tools(target.db, registry=registry)
    with pytest.raises(InvalidConfigError, match=message):
        delete.func(**call)  # type: ignore[attr-defined]
    assert len(target.rows()) == 3


def test_primary_keys_are_not_updated(target: Target, registry: ToolRegistry) -> None:
    _insert, update, _delete = sql_tools(target.db, registry=registry)
    with pytest.raises(InvalidConfigError, match="primary-key"):
        update.func(table="tickets", where={"id": 1}, values={"id": 9})  # type: ignore[attr-defined]
    assert target.rows()[0][0] == 1


def test_table_without_primary_key(tmp_path: Path, registry: ToolRegistry) -> None:
    path = tmp_path / "nopk.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE log (line TEXT)")
    (insert, *_) = sql_tools(
        SqlDatabase.sqlite(str(path), name="nopk"), registry=registry
    )
    with pytest.raises(InvalidConfigError, match="no primary key"):
        insert.func(table="log", rows=[{"line": "x"}])  # type: ignore[attr-defined]
