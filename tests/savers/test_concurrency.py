"""Rollbacks racing each other and racing runs, on every saver."""

from __future__ import annotations

import operator
import threading
from collections import Counter
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    BaseRollbackSaver,
    Effect,
    EffectStatus,
    RollbackInProgressError,
    ToolRegistry,
    reversible,
    rollback,
)
from tests.support.world import World


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def build(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, n: int
) -> Any:
    def undo(effect: Effect) -> str:
        world.log("inverse", "put", effect=effect.id)
        world.path(effect.args["name"]).unlink()
        return "removed"

    @reversible(undo=undo, registry=registry)
    def put(name: str) -> str:
        world.log("forward", "put", name=name)
        world.path(name).write_text(name)
        return name

    def act(state: Log, config: RunnableConfig) -> Log:
        thread = config["configurable"]["thread_id"]
        return {"log": [put(f"{thread}-{i}") for i in range(n)]}

    builder = StateGraph(Log)
    builder.add_node("act", act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


def test_many_rollbacks_of_one_thread_from_threads(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = build(saver, world, registry, 20)
    graph.invoke({"log": []}, cfg("t"), durability="sync")
    first = list(graph.get_state_history(cfg("t")))[-1]
    reports: list[Any] = []
    contended = Counter[str]()
    barrier = threading.Barrier(8)

    def attempt() -> None:
        barrier.wait()
        while True:
            try:
                reports.append(rollback(graph, cfg("t"), to=first))
                return
            except RollbackInProgressError:
                contended["refused"] += 1

    workers = [threading.Thread(target=attempt) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert len(reports) == 8
    assert all(r.ok for r in reports), [str(r) for r in reports if not r.ok]
    assert sum(len(r.undone) for r in reports) == 20
    counts = Counter(c["effect"] for c in world.calls("inverse"))
    assert len(counts) == 20
    assert set(counts.values()) == {1}
    assert world.listing() == {}


def test_threads_never_see_each_others_effects(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = build(saver, world, registry, 5)
    errors: list[BaseException] = []

    def run(thread: str) -> None:
        try:
            graph.invoke({"log": []}, cfg(thread), durability="sync")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == []
    for i in range(4):
        effects = saver.list_effects(cfg(f"t{i}"))
        assert sorted(e.args["name"] for e in effects) == [
            f"t{i}-{j}" for j in range(5)
        ]
        assert {e.thread_id for e in effects} == {f"t{i}"}
    first = list(graph.get_state_history(cfg("t2")))[-1]
    assert len(rollback(graph, cfg("t2"), to=first).undone) == 5
    assert sorted(world.listing()) == sorted(
        f"t{i}-{j}" for i in (0, 1, 3) for j in range(5)
    )


def test_a_run_racing_a_rollback_of_its_thread_stops_before_acting(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    """While a rollback holds a thread, a run on it fails at its next declared
    tool call, before the call acts; resumed afterwards, it goes on."""
    graph = build(saver, world, registry, 2)
    graph.invoke({"log": []}, cfg("t"), durability="sync")
    first = list(graph.get_state_history(cfg("t")))[-1]
    inside = threading.Event()
    release = threading.Event()

    def slow_undo(effect: Effect) -> str:
        inside.set()
        release.wait(30)
        world.path(effect.args["name"]).unlink()
        return "removed"

    definition = registry.require("put")
    slowed = ToolRegistry()
    slowed.register(
        type(definition)(
            **{**definition.__dict__, "undo": slow_undo}
        )  # same tool, slow inverse
    )
    result: list[Any] = []
    roller = threading.Thread(
        target=lambda: result.append(
            rollback(graph, cfg("t"), to=first, registry=slowed)
        )
    )
    roller.start()
    assert inside.wait(30)
    with pytest.raises(RollbackInProgressError, match="being rolled back"):
        graph.invoke({"log": []}, cfg("t"), durability="sync")
    release.set()
    roller.join(60)
    assert result[0].ok
    forward = world.count("forward", "put")
    assert forward == 2  # the racing run acted on nothing
    # The refused run left no intent behind; a new run on the thread works.
    assert all(
        e.status is EffectStatus.COMPENSATED for e in saver.list_effects(cfg("t"))
    )
    graph.invoke({"log": []}, cfg("t"), durability="sync")
    assert world.count("forward", "put") == 4
