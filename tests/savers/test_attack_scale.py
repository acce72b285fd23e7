"""Adversarial checks at scale: targets on a long thread stay fast."""

from __future__ import annotations

import time
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    BaseRollbackSaver,
    ToolRegistry,
    plan_rollback,
    reversible,
)
from tests.support.world import World

STEPS = 5000


class Count(TypedDict):
    n: int


def long_thread(saver: BaseRollbackSaver, registry: ToolRegistry, world: World) -> Any:
    def undo(effect: Any) -> None:
        world.path(f"{effect.args['i']}.txt").unlink()

    @reversible(undo=undo, registry=registry)
    def mark(i: int) -> int:
        world.path(f"{i}.txt").write_text("x")
        return i

    def step(state: Count) -> Count:
        if state["n"] % 100 == 0:
            mark(state["n"])
        return {"n": state["n"] + 1}

    builder = StateGraph(Count)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if s["n"] < STEPS else END)
    graph = builder.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "long"}, "recursion_limit": STEPS + 5}
    graph.invoke({"n": 0}, config, durability="sync")
    assert len(list(world.files.iterdir())) == STEPS // 100
    return graph


@pytest.mark.slow
@pytest.mark.parametrize("saver_kind", ["sqlite", "postgres"])  # aio: the same SQL
def test_planning_back_to_the_start_of_a_long_thread_is_fast(
    saver: BaseRollbackSaver, registry: ToolRegistry, world: World
) -> None:
    """Each walk of the thread's ancestry reads each checkpoint once, also on
    a PostgreSQL table that has no statistics yet (autovacuum not yet run),
    where a recursive join was planned as a scan of the thread per step."""
    graph = long_thread(saver, registry, world)
    for to in ("first", "run_start"):
        started = time.monotonic()
        plan = plan_rollback(graph, {"configurable": {"thread_id": "long"}}, to=to)
        took = time.monotonic() - started
        assert len(plan.to_undo) == STEPS // 100
        assert took < 3.0, f"planning to={to} took {took:.1f} s over {STEPS} steps"
    assert len(list(world.files.iterdir())) == STEPS // 100  # planning undoes nothing
