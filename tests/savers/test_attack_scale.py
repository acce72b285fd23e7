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


def marker(registry: ToolRegistry, world: World) -> Any:
    """A declared tool that writes `<i>.txt`."""

    def undo(effect: Any) -> None:
        world.path(f"{effect.args['i']}.txt").unlink()

    @reversible(undo=undo, registry=registry)
    def mark(i: int) -> int:
        world.path(f"{i}.txt").write_text("x")
        return i

    return mark


def long_thread(saver: BaseRollbackSaver, mark: Any, thread: str, steps: int) -> Any:
    """A thread of `steps` checkpoints, one effect every hundred."""

    def step(state: Count) -> Count:
        if state["n"] % 100 == 0:
            mark(state["n"] + (steps if thread == "short" else 0) * 10)
        return {"n": state["n"] + 1}

    builder = StateGraph(Count)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if s["n"] < steps else END)
    graph = builder.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": thread}, "recursion_limit": steps + 5}
    graph.invoke({"n": 0}, config, durability="sync")
    return graph


def timed_plan(graph: Any, thread: str, to: str, expected: int) -> float:
    """One plan's seconds."""
    started = time.monotonic()
    plan = plan_rollback(graph, {"configurable": {"thread_id": thread}}, to=to)
    took = time.monotonic() - started
    assert len(plan.to_undo) == expected
    return took


def fastest_plans(short: Any, long: Any, to: str) -> tuple[float, float]:
    """The fastest of three plans on each thread (seconds), taken in turn so
    that a change in the machine's load falls on both sides alike."""
    small, large = float("inf"), float("inf")
    for _ in range(3):
        small = min(small, timed_plan(short, "short", to, STEPS // 1000))
        large = min(large, timed_plan(long, "long", to, STEPS // 100))
    return small, large


@pytest.mark.slow
@pytest.mark.timeout(300)  # 5 s idle, 35 s beside two busy processes
@pytest.mark.parametrize("saver_kind", ["sqlite", "postgres"])  # aio: the same SQL
def test_planning_back_to_the_start_of_a_long_thread_is_fast(
    saver: BaseRollbackSaver, registry: ToolRegistry, world: World
) -> None:
    """Each walk of the thread's ancestry reads each checkpoint once, also on
    a PostgreSQL table that has no statistics yet (autovacuum not yet run),
    where a recursive join was planned as a scan of the thread per step.

    Measured against itself, so a loaded machine slows both sides alike: a
    thread ten times longer plans in about ten times the time when the walk
    is linear, a hundred times when it is quadratic."""
    mark = marker(registry, world)
    short = long_thread(saver, mark, "short", STEPS // 10)
    graph = long_thread(saver, mark, "long", STEPS)
    assert len(list(world.files.iterdir())) == STEPS // 100 + STEPS // 1000
    for to in ("first", "run_start"):
        small, large = fastest_plans(short, graph, to)
        ratio = large / max(small, 1e-3)
        assert ratio < 35, (
            f"to={to}: {large:.2f} s for {STEPS} steps, {small:.2f} s for {STEPS // 10}"
        )
    # planning undoes nothing
    assert len(list(world.files.iterdir())) == STEPS // 100 + STEPS // 1000
