"""Deleting, copying and pruning threads never drops an effect from the ledger."""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    BaseRollbackSaver,
    EffectStatus,
    InvalidConfigError,
    ToolRegistry,
    plan_rollback,
    rollback,
)
from tests.support.tools import build_tools
from tests.support.world import World


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def cfg(thread: str, **extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, **extra}


def graph_of(saver: BaseRollbackSaver, world: World, registry: ToolRegistry) -> Any:
    tools = build_tools(world, registry)

    def a(state: Log) -> Log:
        tools.write_file(f"{len(state.get('log', []))}-a.txt", "a")
        return {"log": ["a"]}

    def b(state: Log) -> Log:
        tools.write_file(f"{len(state.get('log', []))}-b.txt", "b")
        return {"log": ["b"]}

    builder = StateGraph(Log)
    builder.add_node(a)
    builder.add_node(b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder.compile(checkpointer=saver)


def test_delete_and_prune_keep_the_ledger(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = graph_of(saver, world, registry)
    run_1, run_2 = str(uuid.uuid4()), str(uuid.uuid4())
    graph.invoke({"log": []}, cfg("t", metadata={"run_id": run_1}), durability="sync")
    after_first = graph.get_state(cfg("t"))
    graph.invoke({"log": []}, cfg("t", metadata={"run_id": run_2}), durability="sync")
    effects = saver.list_effects(cfg("t"))
    assert len(effects) == 4

    saver.delete_for_runs([run_2])
    assert graph.get_state(cfg("t")).config == after_first.config
    kept = saver.list_effects(cfg("t"))
    assert [(e.id, e.status) for e in kept] == [(e.id, e.status) for e in effects]
    # The second run's effects now hang from the checkpoint it started from.
    assert {e.base_checkpoint_id for e in kept[:2]} == {
        after_first.config["configurable"]["checkpoint_id"]
    }
    # The second run's checkpoints are gone; its effects are placed at the
    # checkpoint the run started from, so rolling back to it undoes them.
    report = rollback(graph, cfg("t"), to=after_first)
    assert report.ok, str(report)
    assert len(report.undone) == 2
    assert sorted(world.listing()) == ["0-a.txt", "1-b.txt"]

    saver.prune(["t"], strategy="keep_latest")
    history = list(graph.get_state_history(cfg("t")))
    assert len(history) == 1
    assert history[0].parent_config is None
    assert len(saver.list_effects(cfg("t"))) == 4
    assert rollback(graph, cfg("t"), to=history[0]).status == "nothing_to_undo"

    saver.prune(["t"], strategy="delete")
    assert list(graph.get_state_history(cfg("t"))) == []
    assert len(saver.list_effects(cfg("t"))) == 4
    saver.delete_thread("t")
    statuses = [e.status for e in saver.list_effects(cfg("t"))]
    assert statuses.count(EffectStatus.APPLIED) == 2
    assert statuses.count(EffectStatus.COMPENSATED) == 2


def test_copied_thread_leaves_effects_with_the_source(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = graph_of(saver, world, registry)
    graph.invoke({"log": []}, cfg("src"), durability="sync")
    saver.copy_thread("src", "dst")
    assert graph.get_state(cfg("dst")).values == graph.get_state(cfg("src")).values
    assert saver.list_effects(cfg("dst")) == []
    assert len(saver.list_effects(cfg("src"))) == 2
    first = list(graph.get_state_history(cfg("dst")))[-1]
    # Rolling the copy back restores its state only: the world's effects
    # belong to the source thread.
    assert rollback(graph, cfg("dst"), to=first).status == "nothing_to_undo"
    assert len(world.listing()) == 2
    assert rollback(
        graph, cfg("src"), to=list(graph.get_state_history(cfg("src")))[-1]
    ).ok
    assert world.listing() == {}


def test_bad_prune_arguments(saver: BaseRollbackSaver) -> None:
    with pytest.raises(InvalidConfigError, match="list of thread ids"):
        saver.prune("t")  # type: ignore[attr-defined]
    with pytest.raises(InvalidConfigError, match="keep_latest"):
        saver.prune(["t"], strategy="everything")  # type: ignore[attr-defined]


def test_resuming_a_copy_replays_the_sources_calls(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    """A node records a call, then fails; the thread is copied and the copy
    resumed: the call is replayed from the source's ledger, not made again."""
    tools = build_tools(world, registry)
    failures = [RuntimeError("transient")]

    def act(state: Log) -> Log:
        tools.write_file("order.txt", "charged")
        if failures:
            raise failures.pop()
        return {"log": ["done"]}

    builder = StateGraph(Log)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(RuntimeError, match="transient"):
        graph.invoke({"log": []}, cfg("src"), durability="sync")
    saver.copy_thread("src", "dst")
    assert graph.invoke(None, cfg("dst"), durability="sync") == {"log": ["done"]}
    assert world.count("forward", "write_file") == 1
    (effect,) = saver.list_effects(cfg("src"))
    assert effect.status == EffectStatus.APPLIED
    assert saver.list_effects(cfg("dst")) == []


def as_run(thread: str, run_id: str) -> dict[str, Any]:
    """A run named as the Agent Server names it: the run id in the config
    (effects carry it) and in the checkpoints' metadata (deletion finds them)."""
    return cfg(thread, run_id=run_id, metadata={"run_id": run_id})


def test_deleting_a_run_with_undo_deleted_runs_undoes_its_effects(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = graph_of(saver, world, registry)
    run_1, run_2 = str(uuid.uuid4()), str(uuid.uuid4())
    graph.invoke({"log": []}, as_run("t", run_1), durability="sync")
    after_first = graph.get_state(cfg("t"))
    graph.invoke({"log": []}, as_run("t", run_2), durability="sync")
    assert sorted(world.listing()) == ["0-a.txt", "1-b.txt", "2-a.txt", "3-b.txt"]

    saver.undo_deleted_runs = True
    saver.delete_for_runs([run_2])
    saver.delete_for_runs([run_2])  # the server deletes a run two or three times
    assert sorted(world.listing()) == ["0-a.txt", "1-b.txt"]
    assert world.count("inverse") == 2
    assert graph.get_state(cfg("t")).config == after_first.config
    statuses = {e.run_id: set() for e in saver.list_effects(cfg("t"))}
    for e in saver.list_effects(cfg("t")):
        statuses[e.run_id].add(e.status)
    assert statuses == {
        run_1: {EffectStatus.APPLIED},
        run_2: {EffectStatus.COMPENSATED},
    }


def test_an_irreversible_effect_of_a_deleted_run_stays_undoable_from_its_start(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def act(state: Log) -> Log:
        tools.write_file("kept.txt", "x")
        tools.send_email.invoke({"to": "a@example.com", "body": "hi"})
        return {"log": ["act"]}

    builder = StateGraph(Log)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    run = str(uuid.uuid4())
    graph.invoke({"log": []}, as_run("t", run), durability="sync")
    saver.undo_deleted_runs = True
    saver.delete_for_runs([run])
    assert world.listing() == {}
    assert list(graph.get_state_history(cfg("t"))) == []
    (email, write) = saver.list_effects(cfg("t"))
    assert (email.status, write.status) == (
        EffectStatus.APPLIED,
        EffectStatus.COMPENSATED,
    )
    # The next run on the thread; the e-mail is still the thread's to roll back.
    graph.invoke({"log": []}, as_run("t", str(uuid.uuid4())), durability="sync")
    plan = plan_rollback(graph, cfg("t"), to="first")
    assert email.id in {s.effect.id for s in plan.steps}
    assert plan.orphans == []
