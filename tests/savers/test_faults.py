"""Real storage faults while recording, and faults in user code while rolling back."""

from __future__ import annotations

import operator
import sqlite3
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langgraph_rollback import (
    BaseRollbackSaver,
    Decision,
    Effect,
    EffectResultUnknownError,
    EffectStatus,
    SqliteRollbackSaver,
    ToolRegistry,
    plan_rollback,
    reversible,
    rollback,
)
from tests.support.world import World


class Log(TypedDict, total=False):
    log: Annotated[list[Any], operator.add]


CFG: Any = {"configurable": {"thread_id": "f"}}


def tools_for(world: World, registry: ToolRegistry) -> tuple[Any, Any]:
    def read(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    def restore(effect: Effect) -> str:
        world.log("inverse", "store", effect=effect.id)
        world.path(effect.args["name"]).unlink()
        return "removed"

    @reversible(undo=restore, observe=read, registry=registry)
    def store(name: str, blob: str, reply: str = "") -> str:
        world.log("forward", "store", name=name)
        world.path(name).write_text(blob[:16])
        return reply or name

    return store, read


def one_node(saver: BaseRollbackSaver, fn: Any) -> Any:
    builder = StateGraph(Log)
    builder.add_node("act", fn)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


def open_saver(
    path: Path, registry: ToolRegistry, **connect: Any
) -> SqliteRollbackSaver:
    conn = sqlite3.connect(str(path), check_same_thread=False, **connect)
    return SqliteRollbackSaver(conn, registry=registry)


def test_database_locked_refuses_the_call_before_it_acts(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    store, _ = tools_for(world, registry)
    db = tmp_path / "locked.sqlite"
    saver = open_saver(db, registry, timeout=0.2)
    saver.setup()
    graph = one_node(saver, lambda s: {"log": [store("a.txt", "A")]})
    blocker = sqlite3.connect(db)
    blocker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        graph.invoke({"log": []}, CFG)
    assert world.count() == 0  # nothing acted without its intent
    blocker.rollback()
    blocker.close()
    graph.invoke({"log": []}, CFG)
    assert world.count() == 1
    (effect,) = saver.list_effects(CFG)
    assert effect.status is EffectStatus.APPLIED
    saver.conn.close()


def test_read_only_database_acts_on_nothing(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    store, _ = tools_for(world, registry)
    db = tmp_path / "ro.sqlite"
    saver = open_saver(db, registry)
    saver.setup()
    saver.conn.close()
    ro = open_saver(Path(f"file:{db}?mode=ro"), registry, uri=True)
    graph = one_node(ro, lambda s: {"log": [store("a.txt", "A")]})
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        graph.invoke({"log": []}, CFG)
    assert world.count() == 0
    ro.conn.close()


def _cap(db_conn: sqlite3.Connection, extra_pages: int) -> None:
    """Let the database grow by `extra_pages` pages at most."""
    db_conn.execute("VACUUM")  # no free pages left to reuse
    pages = db_conn.execute("PRAGMA page_count").fetchone()[0]
    db_conn.execute(f"PRAGMA max_page_count = {pages + extra_pages}")


def test_disk_full_while_writing_the_intent(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    store, _ = tools_for(world, registry)
    saver = open_saver(tmp_path / "full.sqlite", registry)
    big = "x" * 300_000
    graph = one_node(saver, lambda s: {"log": [store("a.txt", big)]})
    saver.setup()
    graph.invoke({"log": []}, {"configurable": {"thread_id": "warm"}})  # tables sized
    world.log_path.unlink()
    for name in list(world.files.iterdir()):
        name.unlink()
    _cap(saver.conn, 8)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        graph.invoke({"log": []}, CFG, durability="sync")
    assert world.count() == 0
    assert saver.list_effects(CFG) == []
    saver.conn.execute("PRAGMA max_page_count = 1073741823")
    graph.invoke(None, CFG, durability="sync")
    assert world.count() == 1


def _fail_outcome_writes(saver: SqliteRollbackSaver) -> None:
    """A trigger stands in for a full disk at exactly the outcome's write."""
    saver.setup()
    saver.conn.execute(
        "CREATE TRIGGER full BEFORE UPDATE ON lgrb_effects WHEN NEW.status = 'applied' "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )


def test_write_failure_of_the_outcome_keeps_it_for_the_next_write(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    """A model's tool call acted, then the write carrying its outcome (the
    ToolNode task's own writes) failed: the run stops there, readers see the
    intent pending, and the outcome lands with the next write, so the resume
    replays it with its result."""

    def read(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    def remove(effect: Effect) -> None:
        world.path(effect.args["name"]).unlink()

    @reversible(undo=remove, observe=read, registry=registry)
    @tool
    def put_file(name: str, blob: str) -> str:
        """Write a file."""
        world.log("forward", "put_file", name=name)
        world.path(name).write_text(blob)
        return name

    saver = open_saver(tmp_path / "outcome.sqlite", registry)

    def model(state: MessagesState) -> dict[str, Any]:
        if state["messages"]:
            return {}
        args = {"name": "a.txt", "blob": "small"}
        call = {"name": "put_file", "args": args, "id": "c"}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([put_file]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=saver)
    _fail_outcome_writes(saver)
    with pytest.raises(sqlite3.IntegrityError, match="full"):
        graph.invoke({"messages": []}, CFG, durability="sync")
    assert world.count() == 1  # the call acted; its outcome could not be written
    (effect,) = saver.list_effects(CFG)
    assert effect.status is EffectStatus.PENDING
    assert graph.get_state(CFG).next == ("tools",)  # the step did not move on
    saver.conn.execute("DROP TRIGGER full")
    graph.invoke(None, CFG, durability="sync")
    assert world.count() == 1
    (effect,) = saver.list_effects(CFG)
    assert effect.status is EffectStatus.APPLIED
    assert effect.result == "a.txt"
    first = list(graph.get_state_history(CFG))[-1]
    assert rollback(graph, CFG, to=first).ok
    assert world.listing() == {}


def test_write_failure_of_the_outcome_then_exit_is_reconciled(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    """A direct call's outcome write failed (it is committed at once, so the
    call raises): the intent stays pending, and a new process's observation
    settles it without a second call."""
    store, _ = tools_for(world, registry)
    db = tmp_path / "outcome.sqlite"
    saver = open_saver(db, registry)
    _fail_outcome_writes(saver)
    with pytest.raises(sqlite3.IntegrityError, match="full"):
        one_node(saver, lambda s: {"log": [store("a.txt", "small")]}).invoke(
            {"log": []}, CFG, durability="sync"
        )
    saver.conn.execute("DROP TRIGGER full")
    saver.conn.close()  # the kept outcome is lost with the process
    fresh = open_saver(db, registry)
    graph = one_node(fresh, lambda s: {"log": [store("a.txt", "small")]})
    (effect,) = fresh.list_effects(CFG)
    assert effect.status is EffectStatus.PENDING
    # observe: it landed, so no second call; its result was lost
    with pytest.raises(EffectResultUnknownError):
        graph.invoke(None, CFG, durability="sync")
    assert world.count() == 1
    (effect,) = fresh.list_effects(CFG)
    assert effect.status is EffectStatus.APPLIED
    assert (effect.result, effect.result_known) == (None, False)  # reconciled
    first = list(graph.get_state_history(CFG))[-1]
    assert rollback(graph, CFG, to=first).ok
    assert world.listing() == {}


def test_observe_that_raises_at_planning_is_an_honest_conflict(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    broken = {"on": False}

    def observe(name: str) -> str | None:
        if broken["on"]:
            raise PermissionError("cannot read the target")
        path = world.path(name)
        return path.read_text() if path.exists() else None

    @reversible(
        undo=lambda e: world.path(e.args["name"]).unlink(),
        observe=observe,
        registry=registry,
    )
    def make(name: str) -> str:
        world.path(name).write_text("x")
        return name

    graph = one_node(saver, lambda s: {"log": [make("a")]})
    graph.invoke({"log": []}, CFG, durability="sync")
    first = list(graph.get_state_history(CFG))[-1]
    broken["on"] = True
    (step,) = plan_rollback(graph, CFG, to=first).steps
    assert step.decision is Decision.CONFLICT
    assert "PermissionError" in step.reason
    report = rollback(graph, CFG, to=first)
    assert report.status == "aborted"
    assert world.listing() == {"a": "x"}
    forced = rollback(graph, CFG, to=first, on_conflict="force")
    # The inverse ran, but with observe broken nobody can tell the target is
    # back: not ok, and said so.
    assert world.listing() == {}
    assert forced.status == "failed"
    assert "compensation unverified" in forced.failures[0].error
    broken["on"] = False
    again = rollback(graph, CFG, to=first)
    assert again.ok
    assert [e.tool for e in again.already_compensated] == ["make"]
    assert world.listing() == {}
