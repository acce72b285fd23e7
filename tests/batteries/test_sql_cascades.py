"""The SQL battery images every row a statement changes, cascades included, or
refuses the call before it runs (issue 18), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from langgraph_rollback import SqliteRollbackSaver, ToolRegistry, rollback
from langgraph_rollback.batteries.sql import HiddenEffectsError, SqlDatabase, sql_tools
from tests.batteries.test_files import agent

CFG: Any = {"configurable": {"thread_id": "sql"}}
SCHEMA = [
    "CREATE TABLE tickets (id INTEGER PRIMARY KEY, title TEXT NOT NULL)",
    "CREATE TABLE comments (id INTEGER PRIMARY KEY, "
    "ticket_id INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE, body TEXT)",
    "CREATE TABLE reactions (id INTEGER PRIMARY KEY, "
    "comment_id INTEGER REFERENCES comments(id) ON DELETE CASCADE, emoji TEXT)",
    "CREATE TABLE assignments (id INTEGER PRIMARY KEY, "
    "ticket_id INTEGER REFERENCES tickets(id) ON DELETE SET NULL, who TEXT)",
    "CREATE TABLE tasks (id INTEGER PRIMARY KEY, "
    "parent_id INTEGER REFERENCES tasks(id) ON DELETE CASCADE, ticket_id INTEGER "
    "REFERENCES tickets(id) ON DELETE CASCADE, name TEXT)",
]
SEED = [
    "INSERT INTO tickets VALUES (1, 'login broken'), (2, 'slow search')",
    "INSERT INTO comments VALUES (10, 1, 'seen it'), (11, 1, 'me too'), (12, 2, 'x')",
    "INSERT INTO reactions VALUES (100, 10, '+1'), (101, 12, 'eyes')",
    "INSERT INTO assignments VALUES (20, 1, 'ann'), (21, 2, 'bob')",
    "INSERT INTO tasks VALUES (30, NULL, 1, 'root'), (31, 30, NULL, 'child'), "
    "(32, 31, NULL, 'grandchild'), (33, NULL, 2, 'other')",
]
TABLES = ["tickets", "comments", "reactions", "assignments", "tasks"]


class Database:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def run(self, *statements: str) -> None:
        with self.db.transaction() as cur:
            for statement in statements:
                cur.execute(statement)

    def world(self) -> dict[str, list[tuple[Any, ...]]]:
        with self.db.transaction() as cur:
            found = {}
            for table in TABLES:
                cur.execute(f"SELECT * FROM {table} ORDER BY id")
                found[table] = [tuple(r) for r in cur.fetchall()]
            return found


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        db = SqlDatabase.sqlite(
            str(tmp_path / "app.sqlite"), name="app", foreign_keys=True
        )
    else:
        db = SqlDatabase.postgres(request.getfixturevalue("pg_url"), name="app")
    database = Database(db)
    database.run(*SCHEMA)
    database.run(*SEED)
    return database


def roll_back_after(
    saver: SqliteRollbackSaver,
    registry: ToolRegistry,
    database: Database,
    calls: list[Any],
) -> Any:
    graph = agent(
        saver, sql_tools(database.db, registry=registry), [[c] for c in calls]
    )
    graph.invoke({"messages": []}, CFG, durability="sync")
    first = list(graph.get_state_history(CFG))[-1]
    return rollback(graph, CFG, to=first)


def test_delete_rows_keeps_what_the_cascades_removed(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, database: Database
) -> None:
    before = database.world()
    report = roll_back_after(
        ledger,
        registry,
        database,
        [("delete_rows", {"table": "tickets", "where": {"id": 1}})],
    )
    assert report.ok, str(report)
    assert database.world() == before


def test_the_forward_delete_did_cascade(
    registry: ToolRegistry, database: Database
) -> None:
    _insert, _update, delete = sql_tools(database.db, registry=registry)
    text, images = delete.func(table="tickets", where={"id": 1})  # type: ignore[attr-defined]
    world = database.world()
    assert [r[0] for r in world["comments"]] == [12]
    assert world["assignments"][0] == (20, None, "ann")
    assert [r[0] for r in world["tasks"]] == [33]
    assert {c["table"] for c in images["cascaded"]} == {
        "comments",
        "reactions",
        "assignments",
        "tasks",
    }
    assert "referencing row(s)" in text


def test_update_rows_restores_a_parent_without_firing_its_cascades(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, database: Database
) -> None:
    before = database.world()
    call = (
        "update_rows",
        {"table": "tickets", "where": {"id": 1}, "values": {"title": "x"}},
    )
    report = roll_back_after(ledger, registry, database, [call])
    assert report.ok, str(report)
    assert database.world() == before


def test_a_trigger_refuses_the_call_before_it_runs(
    registry: ToolRegistry, database: Database
) -> None:
    if database.db.dialect == "sqlite":
        database.run(
            "CREATE TABLE audit (line TEXT)",
            "CREATE TRIGGER audit_reactions AFTER DELETE ON reactions "
            "BEGIN INSERT INTO audit VALUES ('gone'); END",
        )
    else:
        database.run(
            "CREATE TABLE audit (line TEXT)",
            "CREATE FUNCTION log_gone() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO audit VALUES ('gone'); RETURN OLD; END $$",
            "CREATE TRIGGER audit_reactions AFTER DELETE ON reactions "
            "FOR EACH ROW EXECUTE FUNCTION log_gone()",
        )
    before = database.world()
    _insert, _update, delete = sql_tools(database.db, registry=registry)
    with pytest.raises(HiddenEffectsError, match="audit_reactions") as info:
        delete.func(table="tickets", where={"id": 1})  # type: ignore[attr-defined]
    assert "DROP TRIGGER" in str(info.value) and "before it ran" in str(info.value)
    assert info.value.effects[0][0] == "reactions"
    assert database.world() == before


def test_rows_that_reference_an_inserted_row_stop_its_removal(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, database: Database
) -> None:
    graph = agent(
        ledger,
        sql_tools(database.db, registry=registry),
        [[("insert_rows", {"table": "tickets", "rows": [{"id": 3, "title": "new"}]})]],
    )
    graph.invoke({"messages": []}, CFG, durability="sync")
    database.run("INSERT INTO comments VALUES (13, 3, 'a human replied')")
    first = list(graph.get_state_history(CFG))[-1]
    report = rollback(graph, CFG, to=first)
    assert report.status == "failed"
    assert "reference rows the agent inserted" in report.failures[0].error
    assert (13, 3, "a human replied") in database.world()["comments"]


GENERATED = {
    "sqlite": "CREATE TABLE prices (id INTEGER PRIMARY KEY, net INTEGER, "
    "gross INTEGER GENERATED ALWAYS AS (net * 2) STORED)",
    "postgres": "CREATE TABLE prices (id INTEGER GENERATED ALWAYS AS IDENTITY "
    "PRIMARY KEY, net INTEGER, gross INTEGER GENERATED ALWAYS AS (net * 2) STORED)",
}


def test_generated_columns_are_restored_by_the_database(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, database: Database
) -> None:
    # Found in the adversarial pass: generated values cannot be written back.
    database.run(GENERATED[database.db.dialect], "INSERT INTO prices (net) VALUES (5)")
    with database.db.transaction() as cur:
        cur.execute("SELECT * FROM prices")
        before = [tuple(r) for r in cur.fetchall()]
    calls = [
        ("update_rows", {"table": "prices", "where": {"id": 1}, "values": {"net": 7}}),
        ("delete_rows", {"table": "prices", "where": {"id": 1}}),
    ]
    report = roll_back_after(ledger, registry, database, calls)
    assert report.ok, str(report)
    with database.db.transaction() as cur:
        cur.execute("SELECT * FROM prices")
        assert [tuple(r) for r in cur.fetchall()] == before
