"""SQLite-only behaviour: durability, crashes, migrations, the sync API."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    EffectOutcomeUnknownError,
    EffectStatus,
    LedgerSchemaError,
    SqliteRollbackSaver,
    ToolRegistry,
)
from langgraph_rollback.savers import sqlite_sql as sqlite_schema
from tests.support import crash_graph
from tests.support.tools import build_tools
from tests.support.waiting import DEADLINE_S
from tests.support.world import World

ROOT = Path(__file__).resolve().parents[2]


def cfg(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def test_ledger_survives_close_and_reopen(tmp_path: Path, world: World) -> None:
    db = str(tmp_path / "agent.sqlite")
    registry = ToolRegistry()
    tools = build_tools(world, registry)
    builder = StateGraph(crash_graph.State)
    builder.add_node("act", lambda s: {"done": [tools.write_file("a.txt", "x")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    with SqliteRollbackSaver.from_conn_string(db, registry=registry) as saver:
        builder.compile(checkpointer=saver).invoke({"done": []}, cfg())
        before = saver.list_effects(cfg())
    with SqliteRollbackSaver.from_conn_string(db, registry=registry) as saver:
        after = saver.list_effects(cfg())
        assert after == before
        assert after[0].status is EffectStatus.APPLIED
        assert after[0].result == "wrote a.txt"
        assert saver.get_tuple(cfg()) is not None


def test_crash_between_intent_and_outcome_is_reported(tmp_path: Path) -> None:
    db = str(tmp_path / "crash.sqlite")
    root = tmp_path / "world"
    env = {**os.environ, "CRASH_DURING_CHARGE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.crash_graph", db, str(root)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    world = World(root)
    assert [c["tool"] for c in world.calls()] == ["prepare", "charge"]

    with SqliteRollbackSaver.from_conn_string(db) as saver:
        charge, prepare = saver.list_effects({"configurable": {"thread_id": "crash"}})
        assert (prepare.tool, prepare.status) == ("prepare", EffectStatus.APPLIED)
        assert (charge.tool, charge.status) == ("charge", EffectStatus.PENDING)
        assert charge.args == {"order": "o-1", "cents": 4200}
        assert charge.completed_at is None

        graph = crash_graph.build(saver, world, ToolRegistry())
        config = {"configurable": {"thread_id": "crash"}}
        with pytest.raises(EffectOutcomeUnknownError) as info:
            graph.invoke(None, config)
        assert info.value.effect_id == charge.id
        assert info.value.thread_id == "crash"
        assert charge.idempotency_key in str(info.value)
        # Neither call ran again: prepare came from the ledger, charge is unknown.
        assert [c["tool"] for c in world.calls()] == ["prepare", "charge"]

        saver.resolve_effect(
            config, charge.id, applied=True, result="charged (verified)"
        )
        out = graph.invoke(None, config)
        assert out["done"] == ["prepared o-1", "charged (verified)"]
        assert [c["tool"] for c in world.calls()] == ["prepare", "charge"]


def test_tables_are_prefixed_and_versioned(tmp_path: Path) -> None:
    db = tmp_path / "v.sqlite"
    with SqliteRollbackSaver.from_conn_string(str(db)) as saver:
        saver.setup()
        saver.setup()  # idempotent
    conn = sqlite3.connect(db)
    tables = {
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    ours = {t for t in tables if t not in {"checkpoints", "writes", "sqlite_sequence"}}
    assert ours == {
        "lgrb_audit",
        "lgrb_effects",
        "lgrb_keys",
        "lgrb_locks",
        "lgrb_migrations",
        "lgrb_rollbacks",
    }
    versions = [r[0] for r in conn.execute("SELECT v FROM lgrb_migrations ORDER BY v")]
    assert versions == list(range(len(sqlite_schema.MIGRATIONS)))
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "future.sqlite"
    with SqliteRollbackSaver.from_conn_string(str(db)) as saver:
        saver.setup()
    conn = sqlite3.connect(db)
    future = len(sqlite_schema.MIGRATIONS) + 3
    conn.execute("INSERT INTO lgrb_migrations (v) VALUES (?)", (future,))
    conn.commit()
    conn.close()
    with SqliteRollbackSaver.from_conn_string(str(db)) as saver:
        with pytest.raises(LedgerSchemaError) as info:
            saver.list_effects(cfg())
        assert info.value.found == future
        assert "upgrade" in str(info.value)


def test_sync_checkpoint_api(tmp_path: Path) -> None:
    with SqliteRollbackSaver.from_conn_string(str(tmp_path / "s.sqlite")) as saver:
        config = {"configurable": {"thread_id": "s", "checkpoint_ns": ""}}
        saved = []
        for i in range(3):
            checkpoint = empty_checkpoint()
            parent = saved[-1] if saved else config
            saved.append(
                saver.put(parent, checkpoint, {"source": "loop", "step": i}, {})
            )
        saver.put_writes(saved[-1], [("ch", "v")], task_id="task-1")
        latest = saver.get_tuple(cfg("s"))
        assert latest is not None
        assert (
            latest.config["configurable"]["checkpoint_id"]
            == saved[-1]["configurable"]["checkpoint_id"]
        )
        assert latest.pending_writes == [("task-1", "ch", "v")]
        assert latest.parent_config is not None
        listed = list(saver.list(cfg("s")))
        assert [t.metadata["step"] for t in listed] == [2, 1, 0]
        assert [t.metadata["step"] for t in saver.list(cfg("s"), limit=1)] == [2]
        saver.delete_thread("s")
        assert saver.get_tuple(cfg("s")) is None


async def test_async_api_streams_in_batches(tmp_path: Path) -> None:
    with SqliteRollbackSaver.from_conn_string(str(tmp_path / "a.sqlite")) as saver:
        parent: Any = {"configurable": {"thread_id": "a", "checkpoint_ns": ""}}
        for i in range(150):
            parent = await saver.aput(parent, empty_checkpoint(), {"step": i}, {})
        steps = [t.metadata["step"] async for t in saver.alist(cfg("a"))]
        assert steps == list(range(149, -1, -1))
        limited = [t async for t in saver.alist(cfg("a"), limit=70)]
        assert len(limited) == 70
        # Leaving the iteration early releases the saver's lock.
        async for _ in saver.alist(cfg("a")):
            break
        await asyncio.wait_for(
            saver.aput(parent, empty_checkpoint(), {"step": 150}, {}), DEADLINE_S
        )
        assert (await saver.aget_tuple(cfg("a"))).metadata["step"] == 150  # type: ignore[union-attr]
        await saver.adelete_thread("a")
        assert await saver.aget_tuple(cfg("a")) is None


def test_ledger_rows_are_indexed_by_thread(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite"
    with SqliteRollbackSaver.from_conn_string(str(db)) as saver:
        saver.setup()
    conn = sqlite3.connect(db)
    plan = " ".join(
        str(r)
        for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM lgrb_effects WHERE thread_id = ? ORDER BY seq DESC",
            ("x",),
        )
    )
    conn.close()
    assert "lgrb_effects_thread_seq" in plan


def _set_up(path: str, start: Any, out: Any) -> None:
    start.wait()
    try:
        with SqliteRollbackSaver.from_conn_string(path) as saver:
            saver.setup()
        out.put("ok")
    except BaseException as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_setup_of_a_new_file(tmp_path: Path) -> None:
    """Six processes open one new file at once: each migration runs once, and
    upstream's `PRAGMA journal_mode=WAL` racing is retried, not raised."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for trial in range(5):
        path = str(tmp_path / f"new-{trial}.sqlite")
        start, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_set_up, args=(path, start, out)) for _ in range(6)]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(60)
        assert [out.get(timeout=5) for _ in procs] == ["ok"] * 6
        with sqlite3.connect(path) as conn:
            versions = [v for (v,) in conn.execute("SELECT v FROM lgrb_migrations")]
        assert versions == list(range(len(versions))) and versions


def _toolnode_graph(
    tools: Any, saver: Any, calls: list[tuple[str, dict[str, Any], str]]
) -> Any:
    from langchain_core.messages import AIMessage
    from langgraph.graph import MessagesState
    from langgraph.prebuilt import ToolNode

    def model(state: MessagesState) -> dict[str, Any]:
        if state["messages"]:
            return {}
        tool_calls = [{"name": n, "args": a, "id": i} for n, a, i in calls]
        return {"messages": [AIMessage("", tool_calls=tool_calls)]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([tools.make_file, tools.flaky]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=saver)


def _statuses_on_disk(db: Path) -> dict[str, str]:
    """The ledger as another process would read it now."""
    with closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT tool, status FROM lgrb_effects").fetchall())


def test_tool_outcome_commits_with_the_task_writes(
    tmp_path: Path, world: World
) -> None:
    """The outcome costs no commit of its own: it is written in the transaction
    that saves the ToolNode task's writes, and is on disk when the run ends."""
    db = tmp_path / "agent.sqlite"
    registry = ToolRegistry()
    tools = build_tools(world, registry)
    statements: list[str] = []
    with SqliteRollbackSaver.from_conn_string(str(db), registry=registry) as saver:
        saver.setup()
        saver.conn.set_trace_callback(statements.append)
        graph = _toolnode_graph(tools, saver, [("make_file", {"name": "a"}, "c1")])
        graph.invoke({"messages": []}, cfg(), durability="sync")
        saver.conn.set_trace_callback(None)
        assert _statuses_on_disk(db) == {"make_file": "applied"}

    outcome = next(
        i
        for i, s in enumerate(statements)
        if s.startswith("UPDATE lgrb_effects") and "outcome" in s
    )
    commit = next(
        i for i in range(outcome, len(statements)) if statements[i] == "COMMIT"
    )
    between = statements[outcome:commit]
    assert any("INTO writes" in s for s in between), between
    intent = next(
        i
        for i, s in enumerate(statements)
        if s.lstrip().startswith("INSERT") and "INTO lgrb_effects" in s
    )
    assert "COMMIT" in statements[intent:outcome]  # the intent committed before
    assert world.count("forward", "make_file") == 1


def test_half_failed_step_outcome_is_on_disk_for_a_new_process(
    tmp_path: Path, world: World
) -> None:
    """One call of a ToolNode step succeeds, the other raises: the success's
    outcome is committed with the task's ERROR write, so a resume by a fresh
    saver (another process) replays it instead of calling it again."""
    db = tmp_path / "agent.sqlite"
    registry = ToolRegistry()
    tools = build_tools(world, registry)
    calls = [
        ("make_file", {"name": "ok.txt"}, "c-ok"),
        ("flaky", {"name": "flaky.txt"}, "c-flaky"),
    ]
    conn = sqlite3.connect(db, check_same_thread=False)
    saver = SqliteRollbackSaver(conn, registry=registry)
    with pytest.raises(ConnectionError):
        _toolnode_graph(tools, saver, calls).invoke({"messages": []}, cfg())
    assert _statuses_on_disk(db) == {"make_file": "applied", "flaky": "failed"}
    conn.close()  # no later write or read on this saver

    with SqliteRollbackSaver.from_conn_string(str(db), registry=registry) as fresh:
        _toolnode_graph(tools, fresh, calls).invoke(None, cfg())
    assert world.count("forward", "make_file") == 1
    assert world.count("forward", "flaky") == 2
    assert _statuses_on_disk(db) == {"make_file": "applied", "flaky": "applied"}


def test_direct_call_outcome_commits_before_the_node_goes_on(
    tmp_path: Path, world: World
) -> None:
    """A call made directly in a node (no tool_call_id) commits its outcome at
    once: the node may run on for a long time after it."""
    db = tmp_path / "agent.sqlite"
    registry = ToolRegistry()
    tools = build_tools(world, registry)
    seen: list[dict[str, str]] = []

    def act(state: crash_graph.State) -> crash_graph.State:
        tools.write_file("a.txt", "x")
        seen.append(_statuses_on_disk(db))  # e.g. a model call would run here
        return {"done": ["act"]}

    builder = StateGraph(crash_graph.State)
    builder.add_node("act", act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    with SqliteRollbackSaver.from_conn_string(str(db), registry=registry) as saver:
        builder.compile(checkpointer=saver).invoke({"done": []}, cfg())
    assert seen == [{"write_file": "applied"}]


def test_toolnode_outcome_under_durability_exit_commits_at_once(
    tmp_path: Path, world: World
) -> None:
    """Under durability "exit" LangGraph saves the task's writes only at the end
    of the run, so the outcome does not wait for them."""
    from langchain_core.messages import AIMessage
    from langgraph.graph import MessagesState
    from langgraph.prebuilt import ToolNode

    db = tmp_path / "agent.sqlite"
    registry = ToolRegistry()
    tools = build_tools(world, registry)
    seen: list[dict[str, str]] = []

    def model(state: MessagesState) -> dict[str, Any]:
        call = {"name": "make_file", "args": {"name": "a"}, "id": "c1"}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    def after(state: MessagesState) -> dict[str, Any]:
        seen.append(_statuses_on_disk(db))
        return {}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([tools.make_file]))
    builder.add_node("after", after)
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", "after")
    builder.add_edge("after", END)
    with SqliteRollbackSaver.from_conn_string(str(db), registry=registry) as saver:
        saver.setup()
        graph = builder.compile(checkpointer=saver)
        graph.invoke({"messages": []}, cfg(), durability="exit")
    assert seen == [{"make_file": "applied"}]


def test_an_outcome_that_cannot_be_written_is_dropped_after_three_writes(
    tmp_path: Path, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A kept outcome whose write always fails fails the writes carrying it,
    then is dropped (logged), so later writes go through; its intent stays
    pending, as after a crash."""
    from langchain_core.messages import AIMessage
    from langgraph.graph import MessagesState
    from langgraph.prebuilt import ToolNode

    from langgraph_rollback.savers.kept import CARRY_ATTEMPTS

    db = tmp_path / "agent.sqlite"
    registry = ToolRegistry()
    tools = build_tools(world, registry)

    def model(state: MessagesState) -> dict[str, Any]:
        if state["messages"]:
            return {}
        call = {"name": "make_file", "args": {"name": "a"}, "id": "c1"}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([tools.make_file]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    with SqliteRollbackSaver.from_conn_string(str(db), registry=registry) as saver:
        saver.setup()
        saver.conn.execute(
            "CREATE TRIGGER stuck BEFORE UPDATE ON lgrb_effects "
            "WHEN NEW.status = 'applied' BEGIN SELECT RAISE(ABORT, 'stuck'); END"
        )
        graph = builder.compile(checkpointer=saver)
        with pytest.raises(sqlite3.IntegrityError, match="stuck"):
            graph.invoke({"messages": []}, cfg(), durability="sync")
        thread = {"configurable": {"thread_id": "other", "checkpoint_ns": ""}}
        for _ in range(CARRY_ATTEMPTS):  # each write fails until it is dropped
            try:
                saver.put(thread, empty_checkpoint(), {}, {})
                break
            except sqlite3.IntegrityError:
                pass
        saver.put(thread, empty_checkpoint(), {}, {})  # later writes go through
        assert f"after {CARRY_ATTEMPTS} failed writes" in caplog.text
        assert "saver.resolve_effect(config, " in caplog.text  # names the fix
        assert _statuses_on_disk(db) == {"make_file": "pending"}
        assert world.count("forward", "make_file") == 1
