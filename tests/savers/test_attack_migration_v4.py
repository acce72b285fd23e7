"""Ledger migrations v4 (indexes on (thread_id, call_key) and run_id), v5
(the run index only over rows that name a run) and v6 (the call-key index
only over rows whose root checkpoint may not be stored), attacked: a ledger written
at v3 or v4 with effects in it, opened by this version; two processes
setting it up at once; a read-only v3 file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command

from langgraph_rollback import LedgerUpgradeError, SqliteRollbackSaver, ToolRegistry
from langgraph_rollback.savers import sqlite_sql
from tests.graph.test_forward_guarantees import cfg, draft_then_ask
from tests.support.stores import open_saver
from tests.support.world import World

INDEXES = {"lgrb_effects_thread_key_rerun", "lgrb_effects_run_named"}
"""The indexes v4 to v6 leave."""
KNOWN = {*INDEXES, "lgrb_effects_run", "lgrb_effects_thread_key"}
LATEST = len(sqlite_sql.MIGRATIONS) - 1
_ROOT_INDEX = (
    "DROP INDEX IF EXISTS lgrb_effects_thread_root_key",
    "CREATE INDEX IF NOT EXISTS lgrb_effects_thread_root "
    "ON lgrb_effects (thread_id, root_checkpoint_id)",
)
"""The (thread, root checkpoint) index as v0 to v5 have it."""
DOWNGRADE = (
    *_ROOT_INDEX,
    "DROP INDEX IF EXISTS lgrb_effects_thread_key_rerun",
    "DROP INDEX IF EXISTS lgrb_effects_thread_key",
    "DROP INDEX lgrb_effects_run_named",
    "DELETE FROM lgrb_migrations WHERE v >= 4",
)
AT_V5 = (
    *_ROOT_INDEX,
    "DROP INDEX IF EXISTS lgrb_effects_thread_key_rerun",
    "CREATE INDEX IF NOT EXISTS lgrb_effects_thread_key "
    "ON lgrb_effects (thread_id, call_key)",
    "DELETE FROM lgrb_migrations WHERE v >= 6",
)
"""A ledger as v5 left it (from v5 or later): the call-key index over every
row, the (thread, root checkpoint) index without the key."""
AT_V4 = (
    *AT_V5,
    "DROP INDEX lgrb_effects_run_named",
    "CREATE INDEX lgrb_effects_run ON lgrb_effects (run_id)",
    "DELETE FROM lgrb_migrations WHERE v = 5",
)
"""A ledger as v4 left it: the run index over every row."""


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "ledger.sqlite")
    else:
        yield "postgres", request.getfixturevalue("pg_url")


def run(kind: str, where: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements on the store over a connection of its own; the last one's rows."""
    rows: list[tuple[Any, ...]] = []
    if kind == "sqlite":
        with closing(sqlite3.connect(where)) as db:  # closed: nothing left open
            for text in statements:
                rows = db.execute(text).fetchall()
            db.commit()
        return rows
    import psycopg

    with psycopg.connect(where, autocommit=True) as conn:
        for text in statements:
            cur = conn.execute(text)
            rows = cur.fetchall() if cur.description else []
    return rows


def indexes(kind: str, where: str) -> set[str]:
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'index'"
        if kind == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'lgrb_effects'"
    )
    return {name for (name,) in run(kind, where, query)} & KNOWN


def interrupted_at_v3(kind: str, where: str, world: World) -> None:
    """A thread interrupted after its call, then edited, in a ledger at v3."""
    registry = ToolRegistry()
    with open_saver(kind, where, registry) as saver:
        graph = draft_then_ask(saver, world, registry)
        graph.update_state(cfg(), {"note": "edited"})
    run(kind, where, *DOWNGRADE)
    assert indexes(kind, where) == set()


def test_a_v3_ledger_is_upgraded_and_its_thread_resumes_once(
    store: tuple[str, str], world: World
) -> None:
    kind, where = store
    interrupted_at_v3(kind, where, world)
    registry = ToolRegistry()
    with open_saver(kind, where, registry) as saver:
        rebuilt = _graph(saver, world, registry)
        out = rebuilt.invoke(Command(resume="yes"), cfg(), durability="sync")
        assert out["done"] == ["prep", "wrote draft.txt: yes (edited)"]
        assert len(saver.list_effects(cfg())) == 1
    assert world.count("forward", "write_file") == 1, world.calls()
    assert indexes(kind, where) == INDEXES
    assert run(kind, where, "SELECT max(v) FROM lgrb_migrations") == [(LATEST,)]


def _graph(saver: Any, world: World, registry: ToolRegistry) -> Any:
    """`draft_then_ask`'s graph, without its first run."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    from tests.graph.test_forward_guarantees import Files
    from tests.support.tools import build_tools

    tools = build_tools(world, registry)

    def prep(state: Files) -> Files:
        return {"done": ["prep"]}

    def act(state: Files) -> Files:
        result = tools.write_file("draft.txt", "v1")
        answer = interrupt({"question": "publish the draft?"})
        return {"done": [f"{result}: {answer} ({state.get('note')})"]}

    builder = StateGraph(Files)
    builder.add_node(prep)
    builder.add_node(act)
    builder.add_edge(START, "prep")
    builder.add_edge("prep", "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


_SETUP = """
import sys
from langgraph_rollback import ToolRegistry
from tests.support.stores import open_saver

with open_saver(sys.argv[1], sys.argv[2], ToolRegistry()) as saver:
    saver.list_effects({"configurable": {"thread_id": "t1"}})
"""


@pytest.mark.timeout(120)
def test_two_processes_upgrade_a_v3_ledger_at_once(
    store: tuple[str, str], world: World
) -> None:
    kind, where = store
    interrupted_at_v3(kind, where, world)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _SETUP, kind, where],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for child in children:
        _, err = child.communicate(timeout=100)
        assert child.returncode == 0, err
    assert indexes(kind, where) == INDEXES
    versions = run(kind, where, "SELECT v FROM lgrb_migrations ORDER BY v")
    assert versions == [(v,) for v in range(LATEST + 1)]


def read_only(where: str) -> sqlite3.Connection:
    """A connection that cannot write (file permissions do not bind root)."""
    return sqlite3.connect(f"file:{where}?mode=ro", uri=True, check_same_thread=False)


def test_a_read_only_v4_ledger_can_be_read(tmp_path: Path, world: World) -> None:
    where = str(tmp_path / "ledger.sqlite")
    registry = ToolRegistry()
    with open_saver("sqlite", where, registry) as saver:
        draft_then_ask(saver, world, registry)
    with closing(read_only(where)) as conn:
        (effect,) = SqliteRollbackSaver(conn, registry=registry).list_effects(cfg())
    assert effect.tool == "write_file" and world.count("forward") == 1


def test_a_read_only_v3_ledger_names_the_upgrade_it_needs(
    tmp_path: Path, world: World
) -> None:
    where = str(tmp_path / "ledger.sqlite")
    interrupted_at_v3("sqlite", where, world)
    with (
        closing(read_only(where)) as conn,
        pytest.raises(LedgerUpgradeError, match=r"version 3.*Fix: open it once"),
    ):
        SqliteRollbackSaver(conn).list_effects(cfg())
    # Nothing was lost: opened with write access, the upgrade runs and the
    # effect reads as recorded.
    registry = ToolRegistry()
    with open_saver("sqlite", where, registry) as saver:
        (effect,) = saver.list_effects(cfg())
    assert effect.tool == "write_file" and world.count("forward") == 1


def test_a_v4_ledger_gets_the_run_index_over_named_runs_only(
    store: tuple[str, str], world: World
) -> None:
    kind, where = store
    registry = ToolRegistry()
    with open_saver(kind, where, registry) as saver:
        draft_then_ask(saver, world, registry)
    run(kind, where, *AT_V4)
    assert indexes(kind, where) == {"lgrb_effects_thread_key", "lgrb_effects_run"}
    with open_saver(kind, where, registry) as saver:
        (effect,) = saver.list_effects(cfg())
    assert effect.tool == "write_file"
    assert indexes(kind, where) == INDEXES
    assert run(kind, where, "SELECT max(v) FROM lgrb_migrations") == [(LATEST,)]


def test_a_run_s_effects_are_found_through_the_run_index(
    store: tuple[str, str],
) -> None:
    from langgraph_rollback.savers import postgres_sql, sqlite_sql

    kind, where = store
    with open_saver(kind, where, ToolRegistry()) as saver:
        saver.list_effects(cfg())
    if kind == "sqlite":
        with closing(sqlite3.connect(where)) as db:
            plan = db.execute("EXPLAIN QUERY PLAN " + sqlite_sql.FIND_RUN, ("r1",))
            text = str(plan.fetchall())
    else:
        # The generic plan of the prepared statement, as a pool reuses it:
        # `run_id = $1` implies the index's `run_id IS NOT NULL`.
        query = postgres_sql.FIND_RUN.replace("%s", "$1")
        rows = run(
            kind,
            where,
            "SET enable_seqscan = off",
            "SET plan_cache_mode = force_generic_plan",
            f"PREPARE find_run(text) AS {query}",
            "EXPLAIN EXECUTE find_run('r1')",
        )
        text = str(rows)
    assert "lgrb_effects_run_named" in text, text
