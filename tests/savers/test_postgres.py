"""PostgreSQL-only behaviour: many worker processes, the optional dependency."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from langgraph_rollback import arollback, rollback
from tests.support import pg_workers
from tests.support.waiting import DEADLINE_S, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.pg_workers", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(procs: list[subprocess.Popen[str]]) -> None:
    failures = []
    for proc in procs:
        _out, err = proc.communicate(timeout=240)
        if proc.returncode != 0:
            failures.append(err[-3000:])
    assert failures == []


@pytest.mark.slow
def test_many_workers_record_and_roll_back_exactly_once(
    pg_url: str, tmp_path: Path
) -> None:
    from langgraph_rollback.postgres import PostgresRollbackSaver

    with PostgresRollbackSaver.from_conn_string(pg_url) as saver:
        saver.setup()
    pg_workers.world_setup(pg_url)
    threads = [f"w{i}" for i in range(4)]
    # 4 worker processes record 200 effects concurrently, 50 per thread.
    _wait([_spawn("record", pg_url, thread, "50") for thread in threads])
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM world_items").fetchone() == (200,)
        assert conn.execute("SELECT count(*) FROM lgrb_effects").fetchone() == (200,)

    # 8 processes roll back all four threads at once, in different orders:
    # each waits, set up, until all are ready.
    rollers = []
    for seed in range(8):
        order = threads[:]
        random.Random(seed).shuffle(order)
        rollers.append(_spawn("rollback", pg_url, str(tmp_path), *order))
    wait_for(
        lambda: (
            len(list(tmp_path.glob("ready-*"))) == len(rollers)
            or any(roller.poll() is not None for roller in rollers)
        ),
        "every rollback worker to be ready",
        DEADLINE_S * 4,
    )
    (tmp_path / "go").write_text("")
    _wait(rollers)

    with psycopg.connect(pg_url) as conn:
        forward = conn.execute(
            "SELECT effect_id FROM world_log WHERE kind = 'forward'"
        ).fetchall()
        inverse = conn.execute(
            "SELECT effect_id FROM world_log WHERE kind = 'inverse'"
        ).fetchall()
        reports = conn.execute(
            "SELECT name, detail FROM world_log WHERE kind = 'report'"
        ).fetchall()
        contended = conn.execute(
            "SELECT count(*) FROM world_log WHERE kind = 'contended'"
        ).fetchone()
        left = conn.execute("SELECT count(*) FROM world_items").fetchone()
        statuses = Counter(
            r[0] for r in conn.execute("SELECT status FROM lgrb_effects").fetchall()
        )
    assert len(forward) == 200
    counts = Counter(r[0] for r in inverse)
    assert set(counts) == {r[0] for r in forward}
    assert set(counts.values()) == {1}, "an inverse ran more than once"
    assert left == (0,)
    assert statuses == {"compensated": 200}
    assert len(reports) == 32  # 8 processes x 4 threads, each got a report
    undone = Counter()
    for thread, detail in reports:
        undone[thread] += int(detail.split(":")[1])
    assert undone == {thread: 50 for thread in threads}
    print(
        f"\n[many workers] 200 effects, 32 rollbacks, {contended[0]} contended attempts"
    )


def test_import_without_psycopg_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "try:\n"
        "    import langgraph_rollback.postgres\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert "pip install 'langgraph-rollback[postgres]'" in out.stdout
    # The rest of the package does not need it.
    code = "import sys; sys.modules['psycopg'] = None\nimport langgraph_rollback; print('ok')"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.stdout.strip() == "ok", out.stderr


def _two_files(tmp_path: Path) -> tuple[Any, Any, Any]:
    """A registry, a world, and a one-node graph that makes files a and b."""
    from langgraph.graph import END, START, StateGraph

    from langgraph_rollback import ToolRegistry, reversible
    from tests.support.crash_graph import State
    from tests.support.world import World

    world = World(tmp_path / "world")
    registry = ToolRegistry()

    @reversible(undo=lambda e: world.path(e.args["name"]).unlink(), registry=registry)
    def make(name: str) -> str:
        world.path(name).write_text("x")
        return name

    builder = StateGraph(State)
    builder.add_node("act", lambda s: {"done": [make("a"), make("b")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return registry, world, builder


def _undo_both(saver: Any, builder: Any, world: Any, thread: str) -> None:
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": thread}}
    graph.invoke({"done": []}, config, durability="sync")
    assert sorted(world.listing()) == ["a", "b"]
    report = rollback(graph, config, to=list(graph.get_state_history(config))[-1])
    assert report.status == "completed" and len(report.undone) == 2, str(report)
    assert world.listing() == {}
    assert graph.get_state(config).values == {"done": []}


async def _aundo_both(saver: Any, builder: Any, world: Any, thread: str) -> None:
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": thread}}
    await graph.ainvoke({"done": []}, config, durability="sync")
    assert sorted(world.listing()) == ["a", "b"]
    first = [s async for s in graph.aget_state_history(config)][-1]
    report = await arollback(graph, config, to=first)
    assert report.status == "completed" and len(report.undone) == 2, str(report)
    assert world.listing() == {}


def test_connection_pools(pg_url: str, tmp_path: Path) -> None:
    import asyncio

    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    from langgraph_rollback.postgres import (
        AsyncPostgresRollbackSaver,
        PostgresRollbackSaver,
    )

    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    registry, world, builder = _two_files(tmp_path)
    with ConnectionPool(
        pg_url, min_size=1, max_size=3, kwargs=kwargs, open=True
    ) as pool:
        saver = PostgresRollbackSaver(pool, registry=registry)
        saver.setup()
        _undo_both(saver, builder, world, "pool")

    async def run_async() -> None:
        async with AsyncConnectionPool(
            pg_url, min_size=1, max_size=3, kwargs=kwargs, open=False
        ) as pool:
            saver = AsyncPostgresRollbackSaver(pool, registry=registry)
            await saver.setup()
            await _aundo_both(saver, builder, world, "apool")

    asyncio.run(run_async())


def test_pipeline_mode(pg_url: str, tmp_path: Path) -> None:
    """Claims are read from RETURNING rows, which pipeline mode delivers late."""
    import asyncio

    from langgraph_rollback.postgres import (
        AsyncPostgresRollbackSaver,
        PostgresRollbackSaver,
    )

    registry, world, builder = _two_files(tmp_path)
    with PostgresRollbackSaver.from_conn_string(pg_url, registry=registry) as saver:
        saver.setup()
    with PostgresRollbackSaver.from_conn_string(
        pg_url, registry=registry, pipeline=True
    ) as saver:
        _undo_both(saver, builder, world, "pipe")

    async def run_async() -> None:
        async with AsyncPostgresRollbackSaver.from_conn_string(
            pg_url, registry=registry, pipeline=True
        ) as saver:
            await _aundo_both(saver, builder, world, "apipe")

    asyncio.run(run_async())


def test_concurrent_setup_on_a_fresh_database(pg_url: str) -> None:
    """Six workers call setup() at once: LangGraph's migrations and the ledger's
    run once, under one session-level lock."""
    import threading

    from langgraph_rollback.postgres import PostgresRollbackSaver

    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        try:
            with PostgresRollbackSaver.from_conn_string(pg_url) as saver:
                barrier.wait()
                saver.setup()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        versions = conn.execute("SELECT v FROM lgrb_migrations ORDER BY v").fetchall()
    assert [v for (v,) in versions] == list(range(len(versions)))


def test_rollback_locks_take_no_pool_connection(pg_url: str) -> None:
    """Two rollbacks at once on a pool of two: each holds its lock on a
    connection of its own, so neither starves the pool."""
    import threading

    from langgraph.graph import END, START, StateGraph
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    from langgraph_rollback import ToolRegistry, reversible
    from langgraph_rollback.postgres import PostgresRollbackSaver
    from tests.support.crash_graph import State

    both_inside = threading.Barrier(2)
    registry = ToolRegistry()

    def undo(effect: Any) -> None:
        both_inside.wait(timeout=DEADLINE_S)  # both rollbacks hold their locks here

    @reversible(undo=undo, registry=registry)
    def make(name: str) -> str:
        return name

    builder = StateGraph(State)
    builder.add_node("act", lambda s: {"done": [make("a")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    results: dict[str, str] = {}
    with ConnectionPool(
        pg_url, min_size=1, max_size=2, kwargs=kwargs, timeout=DEADLINE_S, open=True
    ) as pool:
        saver = PostgresRollbackSaver(pool, registry=registry)
        saver.setup()
        graph = builder.compile(checkpointer=saver)
        configs = [{"configurable": {"thread_id": t}} for t in ("t1", "t2")]
        for config in configs:
            graph.invoke({"done": []}, config, durability="sync")

        def roll(config: Any) -> None:
            first = list(graph.get_state_history(config))[-1]
            try:
                results[config["configurable"]["thread_id"]] = rollback(
                    graph, config, to=first
                ).status
            except Exception as exc:
                results[config["configurable"]["thread_id"]] = repr(exc)

        threads = [threading.Thread(target=roll, args=(c,)) for c in configs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == {"t1": "completed", "t2": "completed"}


WAITING = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted
  AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0)
"""
"""How many sessions wait for the thread's lock (key as `pg.LOCK_KEY` makes it)."""


def test_rollback_waits_for_intents_not_for_rollbacks(pg_url: str) -> None:
    """An intent holds the thread's lock shared for milliseconds: a rollback
    waits for it. Another rollback holds it exclusively: refused at once."""
    import threading
    import time

    from langgraph_rollback import RollbackInProgressError
    from langgraph_rollback._liveness import new_holder
    from langgraph_rollback.core.ops import LockThread, UnlockThread
    from langgraph_rollback.postgres import PostgresRollbackSaver
    from langgraph_rollback.savers import postgres_sql as pg

    key = pg.LOCK_KEY.format(thread_id="t")
    with PostgresRollbackSaver.from_conn_string(pg_url) as saver:
        saver.setup()
        intent = psycopg.connect(pg_url)  # a transaction, as an intent's
        assert intent.execute(pg.LOCK_SHARED, (key,)).fetchone() == (True,)
        committing = threading.Event()
        errors: list[BaseException] = []

        def commit_once_waited_for() -> None:
            try:
                with psycopg.connect(pg_url, autocommit=True) as watch:
                    wait_for(
                        lambda: watch.execute(WAITING, (key,)).fetchone() == (1,),
                        "the rollback to wait for the intent's lock",
                    )
                committing.set()
                intent.commit()
            except BaseException as exc:  # reported below
                errors.append(exc)

        committer = threading.Thread(target=commit_once_waited_for)
        committer.start()
        holder = new_holder()
        saver.execute(LockThread("t", holder))
        # It waited for the intent (seen waiting, and let in by its commit).
        assert committing.is_set()
        saver.execute(UnlockThread("t", holder))
        # The server lets the lock go before the commit's reply reaches the
        # committing thread: close the connection only once that thread is done.
        committer.join(DEADLINE_S)
        assert errors == [] and not committer.is_alive()
        intent.close()

        other = psycopg.connect(pg_url, autocommit=True)
        assert other.execute(pg.LOCK_TRY, (key,)).fetchone() == (True,)
        t0 = time.monotonic()
        with pytest.raises(RollbackInProgressError, match="backend pid"):
            saver.execute(LockThread("t", new_holder()))
        # Refused without waiting: a wait would last the lock's 5 s timeout
        # (pg.LOCK_WAIT_TIMEOUT) before it was refused.
        assert time.monotonic() - t0 < 5
        other.close()


@pytest.mark.parametrize("pipeline", [False, True], ids=["connection", "pipeline"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_intent_is_committed_before_the_call_runs(
    pg_url: str, pipeline: bool, flavour: str
) -> None:
    """Write-ahead on PostgreSQL, pipeline mode included: while the tool runs,
    another session sees its intent, and the intent holds no lock (a rollback
    from another worker is not kept waiting by a long call)."""
    import asyncio

    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    from langgraph_rollback import ToolRegistry, current_effect, reversible
    from langgraph_rollback.postgres import (
        AsyncPostgresRollbackSaver,
        PostgresRollbackSaver,
    )

    registry = ToolRegistry()
    seen: list[tuple[Any, ...]] = []

    @reversible(undo=lambda effect: None, registry=registry)
    @tool
    def slow_call(name: str) -> str:
        """A call that looks at the ledger from another session."""
        effect = current_effect()
        assert effect is not None
        with psycopg.connect(pg_url, autocommit=True) as other:
            (status,) = other.execute(
                "SELECT status FROM lgrb_effects WHERE effect_id = %s", (effect.id,)
            ).fetchone() or (None,)
            (locks,) = other.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            ).fetchone() or (None,)
        seen.append((status, locks))
        return name

    def model(state: MessagesState) -> dict[str, Any]:
        if state["messages"]:
            return {}
        call = {"name": "slow_call", "args": {"name": "a"}, "id": "c1"}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([slow_call]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    thread = f"pipe-{flavour}-{pipeline}-{random.random()}"
    config: Any = {"configurable": {"thread_id": thread}}
    with PostgresRollbackSaver.from_conn_string(pg_url) as plain:
        plain.setup()  # as upstream: migrations cannot run in a pipeline
    if flavour == "sync":
        with PostgresRollbackSaver.from_conn_string(
            pg_url, pipeline=pipeline, registry=registry
        ) as saver:
            builder.compile(checkpointer=saver).invoke(
                {"messages": []}, config, durability="sync"
            )
            effects = saver.list_effects(config)
    else:

        async def run() -> Any:
            async with AsyncPostgresRollbackSaver.from_conn_string(
                pg_url, pipeline=pipeline, registry=registry
            ) as saver:
                await builder.compile(checkpointer=saver).ainvoke(
                    {"messages": []}, config, durability="sync"
                )
                return await saver.alist_effects(config)

        effects = asyncio.run(run())
    assert seen == [("pending", 0)]
    assert [e.status.value for e in effects] == ["applied"]


def test_intent_casts_match_the_ledger_columns(pg_url: str) -> None:
    """`INSERT_INTENT` casts each parameter to its column's type; a column of
    another type than TEXT must be listed in `COLUMN_TYPES`."""
    from langgraph_rollback.core.ledger import INSERT_COLUMNS
    from langgraph_rollback.postgres import PostgresRollbackSaver
    from langgraph_rollback.savers import postgres_sql as pg

    with PostgresRollbackSaver.from_conn_string(pg_url) as saver:
        saver.setup()
    with psycopg.connect(pg_url) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'lgrb_effects'"
            ).fetchall()
        )
    expected = {"integer": "integer", "bytea": "bytea", "text": "text"}
    for column in INSERT_COLUMNS:
        assert expected[types[column]] == pg.COLUMN_TYPES.get(column, "text"), column
