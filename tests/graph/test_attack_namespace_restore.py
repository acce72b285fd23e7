"""Persistent subgraph namespaces (`checkpointer=True`) set back by a rollback,
on every saver: namespaces that appear only after the target, a target inside
a run, the thread's start, rollbacks one after another, and a graph's own
`RollbackNode`. After each rollback the subgraph must see the state it had at
the target (told by how many earlier runs it remembers)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    BaseRollbackSaver,
    RollbackNode,
    ToolRegistry,
    rollback,
    run_start,
)
from tests.support.tools import build_tools
from tests.support.world import World


class Root(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    sub: bool
    undo: bool
    rollback_report: dict[str, Any] | None


class Sub(TypedDict, total=False):
    seen: Annotated[list[str], operator.add]


def cfg() -> dict[str, Any]:
    return {"configurable": {"thread_id": "t1"}}


def build(
    saver: BaseRollbackSaver,
    world: World,
    registry: ToolRegistry,
    node: Any = None,
) -> Any:
    """`call` runs the persistent subgraph when `sub` is set (else writes a
    root file); with `node`, a run with `undo` set goes on to it."""
    tools = build_tools(world, registry)

    def inner(state: Sub) -> Sub:
        tools.write_file("inner.txt", f"run {len(state.get('seen', []))}")
        return {"seen": ["inner"]}

    sub_builder = StateGraph(Sub)
    sub_builder.add_node(inner)
    sub_builder.add_edge(START, "inner")
    sub_builder.add_edge("inner", END)
    sub = sub_builder.compile(checkpointer=True)

    def call(state: Root) -> Root:
        if state.get("sub"):
            out = sub.invoke({"seen": []})
            return {"log": [f"sub saw {len(out['seen'])}"]}
        tools.write_file("root.txt", "root")
        return {"log": ["no sub"]}

    builder = StateGraph(Root)
    builder.add_node("call", call)
    builder.add_edge(START, "call")
    if node is None:
        builder.add_edge("call", END)
    else:
        builder.add_node("undo", node)
        builder.add_conditional_edges(
            "call", lambda s: "undo" if s.get("undo") else END, ["undo", END]
        )
    return builder.compile(checkpointer=saver)


def run(graph: Any, sub: bool = True, undo: bool = False) -> Any:
    return graph.invoke({"log": [], "sub": sub, "undo": undo}, cfg(), durability="sync")


def last_saw(graph: Any) -> str:
    return str(run(graph)["log"][-1])


def back_to(graph: Any, to: Any) -> None:
    report = rollback(graph, cfg(), to=to)
    assert report.ok, str(report)


def test_a_namespace_that_first_appears_after_the_target_is_emptied(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = build(saver, world, registry)
    run(graph, sub=False)
    target = graph.get_state(cfg())
    run(graph)
    run(graph)
    assert world.listing() == {"inner.txt": "run 1", "root.txt": "root"}
    back_to(graph, target)
    assert world.listing() == {"root.txt": "root"}
    assert last_saw(graph) == "sub saw 1"
    assert world.listing() == {"inner.txt": "run 0", "root.txt": "root"}


def test_a_target_inside_the_run_whose_subgraph_ran_first_empties_it(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = build(saver, world, registry)
    run(graph, sub=False)
    run(graph)  # the subgraph's first checkpoints come from this run's `call`
    target = next(
        s
        for s in graph.get_state_history(cfg())
        if s.next == ("call",) and s.values.get("sub")
    )
    run(graph)
    back_to(graph, target)
    assert world.listing() == {"root.txt": "root"}
    assert last_saw(graph) == "sub saw 1"


def test_a_target_inside_a_later_run_keeps_the_earlier_runs_subgraph_state(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = build(saver, world, registry)
    run(graph)
    run(graph)
    history = [s for s in graph.get_state_history(cfg()) if s.next == ("call",)]
    target = history[0]  # before the second run's `call`
    run(graph)
    back_to(graph, target)
    assert world.listing() == {"inner.txt": "run 0"}
    assert last_saw(graph) == "sub saw 2"


def test_back_to_the_thread_s_start_empties_every_namespace(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = build(saver, world, registry)
    run(graph)
    run(graph)
    back_to(graph, "first")
    assert world.listing() == {}
    assert last_saw(graph) == "sub saw 1"


def test_two_rollbacks_in_a_row_each_set_the_subgraph_back(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = build(saver, world, registry)
    run(graph)
    after_one = graph.get_state(cfg())
    run(graph)
    after_two = graph.get_state(cfg())
    run(graph)
    back_to(graph, after_two)
    assert world.listing() == {"inner.txt": "run 1"}
    back_to(graph, after_one)
    assert world.listing() == {"inner.txt": "run 0"}
    back_to(graph, after_one)  # again: nothing left to do
    assert last_saw(graph) == "sub saw 2"


def test_a_rollback_to_the_restored_head_finds_the_restored_subgraph_state(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = build(saver, world, registry)
    run(graph)
    after_one = graph.get_state(cfg())
    run(graph)
    back_to(graph, after_one)
    restored = graph.get_state(cfg())
    assert last_saw(graph) == "sub saw 2"
    assert last_saw(graph) == "sub saw 3"
    back_to(graph, restored)
    assert world.listing() == {"inner.txt": "run 0"}
    assert last_saw(graph) == "sub saw 2"
    back_to(graph, "first")
    assert world.listing() == {}
    assert last_saw(graph) == "sub saw 1"


def test_a_graph_s_own_rollback_node_sets_the_subgraph_back(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = build(saver, world, registry, RollbackNode(to=run_start()))
    assert run(graph)["log"] == ["sub saw 1"]
    final = run(graph, undo=True)  # the subgraph runs, then it is undone
    assert final["rollback_report"]["ok"], final["rollback_report"]
    assert world.listing() == {"inner.txt": "run 0"}
    assert last_saw(graph) == "sub saw 2"


def test_a_rollback_node_back_to_the_thread_s_start_empties_the_subgraph(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = build(saver, world, registry, RollbackNode(to="first"))
    run(graph)
    final = run(graph, undo=True)
    assert final["rollback_report"]["ok"], final["rollback_report"]
    assert world.listing() == {}
    assert last_saw(graph) == "sub saw 1"


def test_a_rollback_node_with_no_subgraph_yet_leaves_it_empty(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = build(saver, world, registry, RollbackNode(to=run_start()))
    run(graph, sub=False)
    final = run(graph, undo=True)
    assert final["rollback_report"]["ok"], final["rollback_report"]
    assert world.listing() == {"root.txt": "root"}
    assert last_saw(graph) == "sub saw 1"
