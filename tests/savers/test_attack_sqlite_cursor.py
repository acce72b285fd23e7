"""SqliteRollbackSaver.cursor() as its transaction's context manager and the
kept outcomes' shared reporting object, attacked: a body that raises with an
outcome kept, an upstream `list()` generator left half read, a probe that
writes through the saver at AFTER_OUTCOME, several threads at once."""

from __future__ import annotations

import contextlib
import operator
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import HumanMessage

from langgraph_rollback import SqliteRollbackSaver, ToolRegistry
from langgraph_rollback.core.store import FaultPoint
from tests.graph.test_attack_refactor import tool_node_graph
from tests.support.tools import build_tools
from tests.support.waiting import DEADLINE_S
from tests.support.world import World


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def cfg(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def rows(db: str, text: str) -> list[Any]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(text).fetchall()


class Boom(Exception):
    pass


def delete_then_raise(saver: SqliteRollbackSaver) -> None:
    with saver.cursor() as cur:
        cur.execute("DELETE FROM checkpoints")
        raise Boom


def test_a_body_that_raises_rolls_back_and_keeps_the_outcome_for_the_next_write(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    from langgraph.graph import END, START, StateGraph

    db = str(tmp_path / "ledger.sqlite")
    tools = build_tools(world, registry)
    seen: dict[str, Any] = {}

    with SqliteRollbackSaver.from_conn_string(db, registry=registry) as saver:

        def act(state: Log) -> Log:
            call = {"name": "make_file", "args": {"name": "m.txt"}, "id": "call-1"}
            tools.make_file.invoke({"type": "tool_call", **call})
            seen["kept"] = rows(db, "SELECT status FROM lgrb_effects")
            seen["before"] = rows(db, "SELECT count(*) FROM checkpoints")
            with pytest.raises(Boom):
                delete_then_raise(saver)
            seen["after"] = rows(db, "SELECT count(*) FROM checkpoints")
            return {"log": ["act"]}

        builder = StateGraph(Log)
        builder.add_node("act", act)
        builder.add_edge(START, "act")
        builder.add_edge("act", END)
        # durability "sync": every checkpoint before the node is on disk when
        # it runs, so no background write lands between the two counts.
        builder.compile(checkpointer=saver).invoke(
            {"log": []}, cfg(), durability="sync"
        )
        (effect,) = saver.list_effects(cfg())
    assert seen["kept"] == [("pending",)]  # kept for the next write
    assert seen["after"] == seen["before"] != [(0,)]  # the DELETE rolled back
    assert effect.status.value == "applied"
    assert rows(db, "SELECT status FROM lgrb_effects") == [("applied",)]
    assert world.count("forward", "make_file") == 1


def test_a_list_generator_left_half_read_releases_the_saver(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    db = str(tmp_path / "ledger.sqlite")
    tools = build_tools(world, registry)
    with SqliteRollbackSaver.from_conn_string(db, registry=registry) as saver:
        graph = tool_node_graph(tools).compile(checkpointer=saver)
        graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
        listing = saver.list(cfg())
        next(listing)
        listing.close()
        other: list[Any] = []
        reader = threading.Thread(target=lambda: other.append(saver.get_tuple(cfg())))
        reader.start()
        reader.join(timeout=DEADLINE_S)
        assert not reader.is_alive(), "a half-read list() kept the saver's lock"
        assert other[0] is not None and saver.get_tuple(cfg()) is not None
        assert not saver.conn.in_transaction
    assert world.count("forward", "make_file") == 1


def test_a_probe_may_write_through_the_saver_at_after_outcome(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    db = str(tmp_path / "ledger.sqlite")
    tools = build_tools(world, registry)
    with SqliteRollbackSaver.from_conn_string(db, registry=registry) as saver:
        reported: list[str] = []

        def probe(point: FaultPoint, effect_id: str | None) -> None:
            if point is FaultPoint.AFTER_OUTCOME and effect_id is not None:
                reported.append(effect_id)
                with saver.cursor() as cur:  # a drill's own bookkeeping row
                    cur.execute("CREATE TABLE IF NOT EXISTS drill (id TEXT)")
                    cur.execute("INSERT INTO drill VALUES (?)", (effect_id,))

        saver.probe = probe
        graph = tool_node_graph(tools).compile(checkpointer=saver)
        run = threading.Thread(
            target=graph.invoke,
            args=({"messages": [HumanMessage("go")]}, cfg()),
            kwargs={"durability": "sync"},
            daemon=True,
        )
        run.start()
        run.join(timeout=DEADLINE_S)
        assert not run.is_alive(), "the run deadlocked inside the probe"
        (effect,) = saver.list_effects(cfg())
    assert reported == [effect.id]
    assert rows(db, "SELECT id FROM drill") == [(effect.id,)]
    assert world.count("forward", "make_file") == 1


def test_threads_sharing_the_reporting_object_hear_each_outcome_once(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    db = str(tmp_path / "ledger.sqlite")
    tools = build_tools(world, registry)
    threads = [f"t{i}" for i in range(6)]
    with SqliteRollbackSaver.from_conn_string(db, registry=registry) as saver:
        heard: Counter[str] = Counter()
        lock = threading.Lock()

        def probe(point: FaultPoint, effect_id: str | None) -> None:
            if point is FaultPoint.AFTER_OUTCOME and effect_id is not None:
                saver.get_tuple(cfg())  # reads re-enter the reporting object
                with lock:
                    heard[effect_id] += 1

        saver.probe = probe
        graph = tool_node_graph(tools).compile(checkpointer=saver)
        errors: list[BaseException] = []

        def one(thread: str) -> None:
            try:
                for _ in range(3):
                    saver.list_effects(cfg(thread))
                graph.invoke(
                    {"messages": [HumanMessage("go")]}, cfg(thread), durability="sync"
                )
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        runs = [threading.Thread(target=one, args=(t,), daemon=True) for t in threads]
        for r in runs:
            r.start()
        for r in runs:
            r.join(timeout=DEADLINE_S)
        assert not any(r.is_alive() for r in runs) and errors == []
        effects = [e for t in threads for e in saver.list_effects(cfg(t))]
    assert len(effects) == len(threads)
    assert heard == Counter({e.id: 1 for e in effects})
    assert rows(db, "SELECT DISTINCT status FROM lgrb_effects") == [("applied",)]
    assert world.count("forward", "make_file") == len(threads)


@pytest.mark.parametrize("write", [True, False])
def test_cursor_is_not_entered_until_used(
    tmp_path: Path, registry: ToolRegistry, write: bool
) -> None:
    db = str(tmp_path / "ledger.sqlite")
    with SqliteRollbackSaver.from_conn_string(db, registry=registry) as saver:
        saver.setup()
        unused = saver.cursor(transaction=write)
        got: list[Any] = []
        other = threading.Thread(target=lambda: got.append(saver.get_tuple(cfg())))
        other.start()
        other.join(timeout=DEADLINE_S)
        assert not other.is_alive() and got == [None]
        with unused as cur:
            cur.execute("SELECT 1")
