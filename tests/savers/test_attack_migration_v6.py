"""Ledger migration v6 (the call-key index only over the rows a later task's
call may be matched to: a subgraph's, and those whose root checkpoint may
never have been stored), attacked: which rows it holds under each
durability and in a subgraph, on SQLite and PostgreSQL; the query plans of
the lookups it serves (the intent's check, a lost run's candidates, a
subgraph rerun's); a v5 ledger with rows of both kinds, upgraded; calls
that share a key across steps, recorded once each; and a node's thousand
calls under one root checkpoint, each checked in the index alone."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import ToolRegistry, reversible
from langgraph_rollback.core.ledger import COLUMNS
from langgraph_rollback.core.ops import Select
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.savers import postgres_sql, sqlite_sql
from langgraph_rollback.savers.sql import (
    earlier_with_key,
    select_sql,
)
from tests.graph.test_forward_guarantees import Files, cfg
from tests.savers.test_attack_migration_v4 import AT_V5, INDEXES, LATEST, indexes, run
from tests.support.stores import open_saver
from tests.support.world import World

INDEX = "lgrb_effects_thread_key_rerun"
CANDIDATE = {
    "sqlite": "(checkpoint_ns <> '' OR base_checkpoint_id IS NOT root_checkpoint_id)",
    "postgres": (
        "(checkpoint_ns <> '' OR base_checkpoint_id IS DISTINCT FROM root_checkpoint_id)"
    ),
}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "ledger.sqlite")
    return "postgres", str(request.getfixturevalue("pg_url"))


def three_steps(saver: Any, world: World, registry: ToolRegistry) -> Any:
    """Three nodes, each making the same call (one key) and one of its own."""
    calls = world.root / "calls.txt"

    def undo(effect: Any) -> None:
        return None

    @reversible(undo=undo, registry=registry)
    def note(text: str) -> str:
        with calls.open("a") as out:
            out.write(text + "\n")
        return text

    def step(name: str) -> Any:
        def node(state: Files) -> Files:
            note("same")
            note(name)
            return {"done": [name]}

        return node

    builder = StateGraph(Files)
    for name in ("a", "b", "c"):
        builder.add_node(name, step(name))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder.compile(checkpointer=saver)


def key_index_rows(kind: str, where: str) -> int:
    """How many rows the partial call-key index holds."""
    if kind == "sqlite":
        text = (
            f"SELECT count(*) FROM lgrb_effects INDEXED BY {INDEX} "
            f"WHERE {CANDIDATE[kind]}"
        )
        return int(run(kind, where, text)[0][0])
    rows = run(
        kind,
        where,
        "VACUUM ANALYZE lgrb_effects",
        f"SELECT reltuples FROM pg_class WHERE relname = '{INDEX}'",
    )
    return int(rows[0][0])


@pytest.mark.parametrize("durability", ["sync", "exit"])
def test_the_key_index_holds_only_rows_whose_root_may_not_be_stored(
    store: tuple[str, str], world: World, durability: str
) -> None:
    kind, where = store
    registry = ToolRegistry()
    with open_saver(kind, where, registry) as saver:
        graph = three_steps(saver, world, registry)
        graph.invoke({"done": []}, cfg(), durability=durability)
        effects = saver.list_effects(cfg())
    assert len(effects) == 6
    assert (world.root / "calls.txt").read_text().split() == [
        "same",
        "a",
        "same",
        "b",
        "same",
        "c",
    ]  # one key in three steps: three calls, none taken for another's replay
    assert indexes(kind, where) == INDEXES
    unstored = [e for e in effects if e.base_checkpoint_id != e.root_checkpoint_id]
    if durability == "sync":
        # Every task's checkpoint was stored before its calls were recorded.
        assert unstored == []
    else:
        # Nothing is stored before the run ends: every row may be a lost call.
        assert len(unstored) == 6
    assert key_index_rows(kind, where) == len(unstored)


def test_a_subgraph_s_rows_are_in_the_key_index_under_any_durability(
    store: tuple[str, str], world: World
) -> None:
    kind, where = store
    registry = ToolRegistry()
    with open_saver(kind, where, registry) as saver:
        inner = three_steps(None, world, registry)
        builder = StateGraph(Files)
        builder.add_node("outer", inner)
        builder.add_edge(START, "outer")
        builder.add_edge("outer", END)
        graph = builder.compile(checkpointer=saver)
        graph.invoke({"done": []}, cfg(), durability="sync")
        effects = saver.list_effects(cfg())
    assert len(effects) == 6 and all(e.checkpoint_ns for e in effects)
    assert key_index_rows(kind, where) == 6


def test_a_node_s_thousand_calls_under_one_root_are_each_checked_alone(
    tmp_path: Path, world: World
) -> None:
    """One task, one root checkpoint, 1,000 calls with their own arguments:
    each intent's check reads the index entries of its own key only (none),
    so recording stays linear (a check by root checkpoint would read every
    earlier call of the task)."""
    where = str(tmp_path / "ledger.sqlite")
    registry = ToolRegistry()

    def undo(effect: Any) -> None:
        return None

    @reversible(undo=undo, registry=registry)
    def note(i: int) -> int:
        return i

    def node(state: Files) -> Files:
        for i in range(1000):
            note(i)
        return {"done": ["many"]}

    builder = StateGraph(Files)
    builder.add_node("many", node)
    builder.add_edge(START, "many")
    builder.add_edge("many", END)
    steps: list[int] = []
    with open_saver("sqlite", where, registry) as saver:
        conn = saver.conn  # type: ignore[attr-defined]
        graph = builder.compile(checkpointer=saver)
        conn.set_progress_handler(lambda: steps.append(1) and 0, 1000)
        graph.invoke({"done": []}, cfg(), durability="sync")
        conn.set_progress_handler(None, 1000)
        assert len(saver.list_effects(cfg())) == 1000
    # SQLite virtual-machine steps, in thousands, for 1,000 recorded calls
    # (about 240 here): a check by root checkpoint visits 500,000 index
    # entries more, several thousand.
    assert len(steps) < 1_000, len(steps)


_MADE = {
    "effect_id": "'fill-' || g",
    "thread_id": "'thread-' || (g % 50)",
    "root_checkpoint_id": "'root-' || (g % 500)",
    "base_checkpoint_id": "CASE WHEN g % 2 = 0 THEN 'root-' || (g % 500) END",
    "call_key": "'key-' || (g % 1000)",
}
FILL = (
    f"INSERT INTO lgrb_effects ({', '.join(c for c in COLUMNS if c != 'seq')}) "
    f"SELECT {', '.join(_MADE.get(c, f'r.{c}') for c in COLUMNS if c != 'seq')} "
    "FROM (SELECT * FROM lgrb_effects LIMIT 1) AS r, generate_series(1, 5000) AS g"
)
"""5,000 more rows over 50 threads and 500 root checkpoints, half of them
rerun candidates (PostgreSQL)."""


def plan(kind: str, where: str, text: str, params: tuple[Any, ...]) -> str:
    """The query plan the store chooses for `text` with `params`."""
    if kind == "sqlite":
        with closing(sqlite3.connect(where)) as db:
            rows = db.execute(f"EXPLAIN QUERY PLAN {text}", params).fetchall()
        return "\n".join(str(r[-1]) for r in rows)
    import psycopg

    with psycopg.connect(where, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # a small table: ask for the index
        found = conn.execute(f"EXPLAIN {text}", params).fetchall()
    return "\n".join(str(r[0]) for r in found)


def test_the_intent_check_and_a_lost_run_s_lookup_use_an_index(
    store: tuple[str, str], world: World
) -> None:
    kind, where = store
    registry = ToolRegistry()
    with open_saver(kind, where, registry) as saver:
        three_steps(saver, world, registry).invoke({"done": []}, cfg())
    if kind == "postgres":
        # PostgreSQL plans by statistics: give it a ledger of some size.
        run(kind, where, FILL, "ANALYZE lgrb_effects")
    thread, root, key = "thread-7", "root-7", "key-7"  # as FILL names them
    check_params = (thread, key, "e")
    if kind == "sqlite":
        # The key check of `INSERT_INTENT_IF_CLEAR`.
        check = f"SELECT {earlier_with_key()}"
        assert earlier_with_key() in sqlite_sql.INSERT_INTENT_IF_CLEAR
        params, mark, dialect = check_params, "?", "sqlite"
    else:  # the `kin` part of `INSERT_INTENT`
        check = f"SELECT %s::boolean AND {earlier_with_key('%s', dialect='postgres')}"
        assert check.split("AND ", 1)[1] in postgres_sql.INSERT_INTENT
        params, mark, dialect = (True, *check_params), "%s", "postgres"
    checked = plan(kind, where, check, params)
    assert INDEX in checked, checked
    lost = EffectQuery(
        thread_id=thread, checkpoint_ns="", call_key=key, rerun_candidates=True
    )
    text, params = select_sql(Select(lost), mark, dialect)  # type: ignore[arg-type]
    looked = plan(kind, where, text, tuple(params))
    assert INDEX in looked, looked
    # A subgraph's rerun is looked for under its root checkpoint, by key.
    rerun = EffectQuery(
        thread_id=thread, checkpoint_id=root, call_key=key, rerun_candidates=True
    )
    text, params = select_sql(Select(rerun), mark, dialect)  # type: ignore[arg-type]
    rooted = plan(kind, where, text, tuple(params))
    assert INDEX in rooted or "lgrb_effects_thread_root_key" in rooted, rooted
    # A resumed task's interrupted one is looked for under its checkpoint by
    # key (`core.replay._continued`): one seek, not every row under it.
    continued = EffectQuery(thread_id=thread, checkpoint_id=root, call_key=key)
    text, params = select_sql(Select(continued), mark, dialect)  # type: ignore[arg-type]
    shown = plan(kind, where, text, tuple(params))
    assert "lgrb_effects_thread_root_key" in shown, shown
    if kind == "sqlite":
        assert "root_checkpoint_id=? AND call_key=?" in shown, shown
    if kind == "sqlite":
        for shown in (checked, looked, rooted):
            assert "SCAN lgrb_effects" not in shown, shown


def test_a_v5_ledger_gets_the_partial_index_and_keeps_every_row(
    store: tuple[str, str], world: World
) -> None:
    kind, where = store
    registry = ToolRegistry()
    with open_saver(kind, where, registry) as saver:
        graph = three_steps(saver, world, registry)
        graph.invoke({"done": []}, cfg("sync"), durability="sync")
        graph.invoke({"done": []}, cfg("exit"), durability="exit")
    run(kind, where, *AT_V5)
    assert indexes(kind, where) == {"lgrb_effects_thread_key", "lgrb_effects_run_named"}
    with open_saver(kind, where, registry) as saver:
        saver.setup()  # type: ignore[attr-defined]
        assert len(saver.list_effects(cfg("sync"))) == 6
        assert len(saver.list_effects(cfg("exit"))) == 6
    assert indexes(kind, where) == INDEXES
    assert run(kind, where, "SELECT max(v) FROM lgrb_migrations") == [(LATEST,)]
    assert key_index_rows(kind, where) == 6  # the exit run's rows only
