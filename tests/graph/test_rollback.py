"""Rolling back out of the graph, on every saver; the world is checked itself."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import StateSnapshot

from langgraph_rollback import (
    BaseRollbackSaver,
    CheckpointNotFoundError,
    Decision,
    Effect,
    EffectStatus,
    InvalidConfigError,
    NotAnAncestorError,
    Reversibility,
    RollbackFailedError,
    RollbackInProgressError,
    ToolRegistry,
    UnregisteredToolError,
    arollback,
    plan_rollback,
    reversible,
    rollback,
)
from langgraph_rollback._declare import _declare
from langgraph_rollback._liveness import new_holder
from langgraph_rollback.core.ops import LockThread, UnlockThread
from tests.support.tools import Tools, build_tools
from tests.support.waiting import wait_for
from tests.support.world import World


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    note: str | None


def cfg(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def three_steps(tools: Tools) -> StateGraph[Any]:
    """a writes x=1; b writes x=2, y; sends an e-mail; c writes z."""

    def a(state: Log) -> Log:
        tools.write_file("x.txt", "1")
        return {"log": ["a"]}

    def b(state: Log) -> Log:
        tools.write_file("x.txt", "2")
        tools.write_file("y.txt", "y")
        tools.send_email.invoke({"to": "ops@example.com", "body": "b ran"})
        return {"log": ["b"], "note": "from b"}

    def c(state: Log) -> Log:
        tools.write_file("z.txt", "z")
        return {"log": ["c"]}

    builder = StateGraph(Log)
    for fn in (a, b, c):
        builder.add_node(fn)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder


def snapshot_before(graph: Any, node: str, thread: str = "t1") -> StateSnapshot:
    return next(s for s in graph.get_state_history(cfg(thread)) if s.next == (node,))


def inverse_counts(world: World) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in world.calls("inverse"):
        counts[call["effect"]] = counts.get(call["effect"], 0) + 1
    return counts


def test_linear_rollback_restores_world_and_state(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    graph = three_steps(tools).compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    assert world.listing() == {"x.txt": "2", "y.txt": "y", "z.txt": "z"}
    target = snapshot_before(graph, "b")

    plan = plan_rollback(graph, cfg(), to=target)
    assert [(s.effect.tool, s.decision) for s in plan.steps] == [
        ("write_file", Decision.UNDO),
        ("send_email", Decision.SKIP),
        ("write_file", Decision.UNDO),
        ("write_file", Decision.UNDO),
    ]
    assert plan.orphans == []
    assert world.listing() == {
        "x.txt": "2",
        "y.txt": "y",
        "z.txt": "z",
    }  # no side effects

    report = rollback(graph, cfg(), to=target)
    assert report.status == "completed"
    assert report.ok
    assert world.listing() == {"x.txt": "1"}
    assert [s.description for s in report.undone] == [
        "deleted z.txt (undo of write_file)",
        "deleted y.txt (undo of write_file)",
        "restored x.txt (undo of write_file)",
    ]
    assert [s.effect.tool for s in report.skipped] == ["send_email"]
    assert "irreversible: e-mail cannot be unsent" in report.skipped[0].reason
    text = str(report)
    assert "deleted z.txt (undo of write_file)" in text
    assert "send_email(to='ops@example.com'" in text
    message = report.to_message()
    assert isinstance(message, HumanMessage)
    assert "deleted y.txt" in str(message.content)

    # The state is a new head that copies the target.
    head = graph.get_state(cfg())
    assert head.values == target.values
    assert head.next == ("b",)
    assert head.config["configurable"]["checkpoint_id"] == report.restored_checkpoint_id
    assert head.parent_config == target.parent_config
    assert (
        head.metadata["lgrb_restore"]["copy_of"]
        == target.config["configurable"]["checkpoint_id"]
    )

    # Ledger: newest first, each undone effect compensated exactly once.
    statuses = [(e.tool, e.status) for e in saver.list_effects(cfg())]
    assert statuses == [
        ("write_file", EffectStatus.COMPENSATED),
        ("send_email", EffectStatus.APPLIED),
        ("write_file", EffectStatus.COMPENSATED),
        ("write_file", EffectStatus.COMPENSATED),
        ("write_file", EffectStatus.APPLIED),
    ]
    compensated = [
        e for e in saver.list_effects(cfg()) if e.status is EffectStatus.COMPENSATED
    ]
    assert all(
        e.undo_attempts == 1 and e.rollback_id == report.rollback_id
        for e in compensated
    )
    assert compensated[0].undo_result == "deleted z.txt"
    assert set(inverse_counts(world).values()) == {1}

    # A second rollback to the same target finds nothing left, and says so.
    again = rollback(graph, cfg(), to=target)
    assert again.status == "nothing_to_undo"
    assert "already at the target" in again.message
    assert again.undone == []
    assert again.restored_checkpoint_id is None
    assert world.listing() == {"x.txt": "1"}
    assert set(inverse_counts(world).values()) == {1}

    # Running on from the restored head records new effects; rolling back to
    # the same target again undoes only those.
    graph.invoke(None, cfg(), durability="sync")
    assert world.listing() == {"x.txt": "2", "y.txt": "y", "z.txt": "z"}
    third = rollback(graph, cfg(), to=target)
    assert third.status == "completed"
    assert len(third.undone) == 3
    assert world.listing() == {"x.txt": "1"}


def test_rollback_to_the_first_checkpoint_undoes_everything(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    graph = three_steps(tools).compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    first = list(graph.get_state_history(cfg()))[-1]
    report = rollback(graph, cfg(), to=first)
    assert report.ok
    assert world.listing() == {}
    assert len(report.undone) == 4


def test_fork_leaves_the_abandoned_branch_alone(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    graph = three_steps(tools).compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    before_b = snapshot_before(graph, "b")
    abandoned_c = saver.list_effects(cfg())[0]
    assert abandoned_c.args["name"] == "z.txt"
    # Fork before b and run b and c again on the new branch: the first run's
    # c started from a checkpoint that is now on an abandoned branch.
    fork = graph.update_state(before_b.config, {"note": "forked"})
    graph.invoke(None, fork, durability="sync")
    assert world.count("forward", "write_file") == 7

    report = rollback(graph, cfg(), to=before_b)
    assert report.ok, str(report)
    assert [e.id for e in report.orphans] == [abandoned_c.id]
    assert abandoned_c.id not in {s.effect.id for s in report.undone}
    assert saver.get_effect(cfg(), abandoned_c.id).status is EffectStatus.APPLIED
    assert "Left alone on abandoned branches" in str(report)
    # Both b runs and the new c are undone; the abandoned c's file stays.
    assert len(report.undone) == 5
    assert world.listing() == {"x.txt": "1", "z.txt": "z"}


def test_non_ancestor_unknown_and_foreign_targets_change_nothing(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    graph = three_steps(tools).compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    graph.invoke({"log": []}, cfg("other"), durability="sync")
    before_c = snapshot_before(graph, "c")
    graph.invoke(
        None, graph.update_state(before_c.config, {"note": "fork"}), durability="sync"
    )
    abandoned = next(
        s
        for s in graph.get_state_history(cfg())
        if s.config["configurable"]["checkpoint_id"] not in _path(graph, cfg())
    )
    listing, head = world.listing(), graph.get_state(cfg()).config
    ledger = saver.list_effects(cfg())

    with pytest.raises(NotAnAncestorError) as not_ancestor:
        rollback(graph, cfg(), to=abandoned)
    assert "not an ancestor" in str(not_ancestor.value)
    with pytest.raises(CheckpointNotFoundError) as missing:
        rollback(graph, cfg(), to="1f000000-0000-6000-8000-000000000000")
    assert "no thread has" in str(missing.value)
    other_cp = graph.get_state(cfg("other")).config["configurable"]["checkpoint_id"]
    with pytest.raises(CheckpointNotFoundError) as foreign:
        rollback(graph, cfg(), to=other_cp)
    assert foreign.value.found_in == ["other"]
    assert "belongs to thread 'other'" in str(foreign.value)
    with pytest.raises(CheckpointNotFoundError):
        rollback(graph, cfg(), to=graph.get_state(cfg("other")))
    with pytest.raises(InvalidConfigError, match="checkpoint_id"):
        rollback(graph, cfg(), to={"configurable": {"thread_id": "t1"}})

    assert world.listing() == listing
    assert graph.get_state(cfg()).config == head
    assert saver.list_effects(cfg()) == ledger


def _path(graph: Any, config: dict[str, Any]) -> set[str]:
    ids, current = set(), graph.get_state(config)
    while current is not None:
        ids.add(current.config["configurable"]["checkpoint_id"])
        current = (
            graph.get_state(current.parent_config) if current.parent_config else None
        )
    return ids


def test_subgraph_effects_are_undone(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def inner(state: Log) -> Log:
        tools.write_file("inner.txt", "sub")
        return {"log": ["inner"]}

    sub = StateGraph(Log)
    sub.add_node(inner)
    sub.add_edge(START, "inner")
    sub.add_edge("inner", END)

    def outer(state: Log) -> Log:
        tools.write_file("outer.txt", "top")
        return {"log": ["outer"]}

    builder = StateGraph(Log)
    builder.add_node(outer)
    builder.add_node("sub", sub.compile())
    builder.add_edge(START, "outer")
    builder.add_edge("outer", "sub")
    builder.add_edge("sub", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    assert world.listing() == {"inner.txt": "sub", "outer.txt": "top"}

    report = rollback(graph, cfg(), to=snapshot_before(graph, "sub"))
    assert [s.description for s in report.undone] == [
        "deleted inner.txt (undo of write_file)"
    ]
    assert world.listing() == {"outer.txt": "top"}


def test_failed_step_partial_effects_undone_by_rolling_back_to_head(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def ok(state: Log) -> Log:
        tools.write_file("ok.txt", "fine")
        return {"log": ["ok"]}

    def half(state: Log) -> Log:
        tools.write_file("half-1.txt", "1")
        tools.write_file("half-2.txt", "2")
        raise RuntimeError("validation failed after two writes")

    builder = StateGraph(Log)
    builder.add_node(ok)
    builder.add_node(half)
    builder.add_edge(START, "ok")
    builder.add_edge("ok", "half")
    builder.add_edge("half", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(RuntimeError):
        graph.invoke({"log": []}, cfg(), durability="sync")
    head = graph.get_state(cfg())
    assert head.next == ("half",)

    report = rollback(graph, cfg(), to=head)
    assert report.ok
    assert world.listing() == {"ok.txt": "fine"}
    assert sorted(s.effect.args["name"] for s in report.undone) == [
        "half-1.txt",
        "half-2.txt",
    ]


def test_irreversible_abort_and_unregistered_tools_refuse_before_anything(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    graph = three_steps(tools).compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    target = snapshot_before(graph, "b")
    listing = world.listing()

    report = rollback(graph, cfg(), to=target, on_irreversible="abort")
    assert report.status == "aborted"
    assert "send_email" in report.message
    assert report.undone == []
    assert world.listing() == listing
    with pytest.raises(RollbackFailedError) as raised:
        report.raise_for_status()
    assert raised.value.report is report

    with pytest.raises(UnregisteredToolError) as unregistered:
        rollback(graph, cfg(), to=target, registry=ToolRegistry())
    assert unregistered.value.tool == "write_file"
    assert world.listing() == listing
    assert all(e.status is EffectStatus.APPLIED for e in saver.list_effects(cfg()))


def test_unknown_reversibility_is_skipped_and_reported(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    def poke(target: str) -> str:
        world.log("forward", "poke", target=target)
        return "poked"

    poke = _declare(
        poke,
        kind=Reversibility.UNKNOWN,
        undo=None,
        undo_args=None,
        observe=None,
        reason=None,
        registry=registry,
    )
    builder = StateGraph(Log)
    builder.add_node("act", lambda state: {"log": [poke("svc")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    first = list(graph.get_state_history(cfg()))[-1]
    report = rollback(graph, cfg(), to=first)
    assert report.status == "nothing_to_undo"
    (skipped,) = report.skipped
    assert skipped.effect.kind is Reversibility.UNKNOWN
    assert "undeclared" in skipped.reason
    assert rollback(graph, cfg(), to=first, on_irreversible="abort").status in (
        "aborted",
        "nothing_to_undo",
    )


@pytest.mark.parametrize("policy", ["abort", "skip", "force"])
def test_conflicts_detected_by_observe(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, policy: Any
) -> None:
    tools = build_tools(world, registry)
    graph = three_steps(tools).compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    target = snapshot_before(graph, "b")
    world.path("y.txt").write_text("edited by a human")  # drift after the agent

    plan = plan_rollback(graph, cfg(), to=target)
    (conflict,) = plan.conflicts
    assert conflict.effect.args["name"] == "y.txt"
    assert "edited by a human" in conflict.reason

    report = rollback(graph, cfg(), to=target, on_conflict=policy)
    if policy == "abort":
        assert report.status == "aborted"
        assert "on_conflict='abort'" in report.message
        assert world.listing() == {
            "x.txt": "2",
            "y.txt": "edited by a human",
            "z.txt": "z",
        }
        assert graph.get_state(cfg()).next == ()
    elif policy == "skip":
        assert report.status == "completed"
        assert [c.effect.args["name"] for c in report.conflicts] == ["y.txt"]
        assert world.listing() == {"x.txt": "1", "y.txt": "edited by a human"}
        assert "changed by someone else" in str(report)
        assert graph.get_state(cfg()).next == ("b",)
    else:
        assert report.status == "completed"
        assert "deleted y.txt (undo of write_file)" in [
            s.description for s in report.undone
        ]
        assert world.listing() == {"x.txt": "1"}


def test_chained_writes_to_one_target_are_not_conflicts(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def edits(state: Log) -> Log:
        for version in ("v1", "v2", "v3"):
            tools.write_file("doc.txt", version)
        return {"log": ["edits"]}

    builder = StateGraph(Log)
    builder.add_node(edits)
    builder.add_edge(START, "edits")
    builder.add_edge("edits", END)
    graph = builder.compile(checkpointer=saver)
    world.path("doc.txt").write_text("v0")
    graph.invoke({"log": []}, cfg(), durability="sync")
    report = rollback(graph, cfg(), to=snapshot_before(graph, "edits"))
    assert report.status == "completed"
    assert report.conflicts == []
    assert world.listing() == {"doc.txt": "v0"}


def test_inverse_failure_stops_then_a_rerun_continues(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    def undo_flaky(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        if world.flag(f"undo-{effect.args['name']}"):
            raise ConnectionError("storage API down")
        world.path(effect.args["name"]).unlink()
        return f"deleted {effect.args['name']}"

    @reversible(undo=undo_flaky, registry=registry)
    def put(name: str) -> str:
        world.path(name).write_text(name)
        return name

    def act(state: Log) -> Log:
        put("old.txt")
        put("mid.txt")
        put("new.txt")
        return {"log": ["act"]}

    builder = StateGraph(Log)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    world.flag("undo-new.txt")  # only mid.txt's inverse fails, once
    world.flag("undo-old.txt")
    head_before = graph.get_state(cfg()).config
    target = snapshot_before(graph, "act")

    first = rollback(graph, cfg(), to=target)
    assert first.status == "failed"
    assert [s.description for s in first.undone] == ["deleted new.txt (undo of put)"]
    assert [f.effect.args["name"] for f in first.failures] == ["mid.txt"]
    assert "storage API down" in first.failures[0].error
    assert [s.effect.args["name"] for s in first.skipped] == ["old.txt"]
    assert graph.get_state(cfg()).config == head_before  # state not restored
    assert world.listing() == {"old.txt": "old.txt", "mid.txt": "mid.txt"}
    by_name = {e.args["name"]: e for e in saver.list_effects(cfg())}
    assert by_name["mid.txt"].status is EffectStatus.COMPENSATION_FAILED
    assert by_name["mid.txt"].undo_error == "ConnectionError: storage API down"
    assert "again resumes" in str(first)

    second = rollback(graph, cfg(), to=target)
    assert second.status == "completed"
    assert [s.effect.args["name"] for s in second.undone] == ["mid.txt", "old.txt"]
    assert [e.args["name"] for e in second.already_compensated] == ["new.txt"]
    assert world.listing() == {}
    assert graph.get_state(cfg()).values == target.values
    counts = inverse_counts(world)
    assert counts[by_name["new.txt"].id] == 1
    assert counts[by_name["mid.txt"].id] == 2  # failed once, then succeeded
    assert counts[by_name["old.txt"].id] == 1
    assert saver.get_effect(cfg(), by_name["mid.txt"].id).undo_attempts == 2


def test_on_failure_continue_runs_the_other_inverses(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    def undo(effect: Effect) -> str:
        if effect.args["name"] == "bad.txt":
            raise PermissionError("read-only")
        world.path(effect.args["name"]).unlink()
        return "ok"

    @reversible(undo=undo, registry=registry)
    def put(name: str) -> str:
        world.path(name).write_text(name)
        return name

    builder = StateGraph(Log)
    builder.add_node(
        "act", lambda s: {"log": [put("a.txt"), put("bad.txt"), put("c.txt")]}
    )
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    report = rollback(
        graph, cfg(), to=snapshot_before(graph, "act"), on_failure="continue"
    )
    assert report.status == "failed"
    assert world.listing() == {"bad.txt": "bad.txt"}
    assert len(report.undone) == 2


def test_inverse_timeout(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    import threading

    release = threading.Event()

    def slow_undo(effect: Effect) -> None:
        release.wait(10)

    @reversible(undo=slow_undo, registry=registry)
    def put(name: str) -> str:
        return name

    builder = StateGraph(Log)
    builder.add_node("act", lambda s: {"log": [put("a")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    try:
        report = rollback(
            graph, cfg(), to=snapshot_before(graph, "act"), inverse_timeout=0.2
        )
    finally:
        release.set()
    assert report.status == "failed"
    assert "did not finish in 0.2s" in report.failures[0].error
    # The abandoned inverse records its outcome when it ends (before the
    # saver closes).
    (effect,) = saver.list_effects(cfg())
    wait_for(
        lambda: saver.get_effect(cfg(), effect.id).status is EffectStatus.COMPENSATED,
        "the timed-out inverse's outcome to be recorded",
    )


def test_one_rollback_per_thread(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    graph = three_steps(tools).compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    holder = new_holder()
    saver.execute(LockThread("t1", holder))
    try:
        with pytest.raises(RollbackInProgressError) as info:
            rollback(graph, cfg(), to=snapshot_before(graph, "b"))
        assert info.value.thread_id == "t1"
        # Other threads are not held (the two threads share the world's files,
        # hence on_conflict="force").
        graph.invoke({"log": []}, cfg("t2"), durability="sync")
        other = rollback(
            graph, cfg("t2"), to=snapshot_before(graph, "b", "t2"), on_conflict="force"
        )
        assert other.ok
    finally:
        saver.execute(UnlockThread("t1", holder))
    assert rollback(
        graph, cfg(), to=snapshot_before(graph, "b"), on_conflict="force"
    ).ok


async def test_async_tools_and_inverses(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    async def aundo(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        world.path(effect.args["name"]).unlink()
        return f"deleted {effect.args['name']} (async)"

    @reversible(undo=aundo, registry=registry)
    async def acreate(name: str) -> str:
        world.path(name).write_text("async")
        return name

    tools = build_tools(world, registry)

    async def act(state: Log) -> Log:
        await acreate("async.txt")
        await tools.awrite_file("awrite.txt", "a")
        # A sync tool from an async node: off the loop (required by the async
        # SQLite saver, whose sync calls must come from another thread).
        await asyncio.to_thread(tools.write_file, "sync.txt", "s")
        return {"log": ["act"]}

    builder = StateGraph(Log)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    await graph.ainvoke({"log": []}, cfg(), durability="sync")
    assert len(world.listing()) == 3
    target = [s async for s in graph.aget_state_history(cfg())][-1]
    report = await arollback(graph, cfg(), to=target)
    assert report.ok
    assert world.listing() == {}
    assert "deleted async.txt (async) (undo of acreate)" in [
        s.description for s in report.undone
    ]
    state = await graph.aget_state(cfg())
    assert state.values == target.values


def test_async_inverse_from_sync_rollback(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    async def aundo(effect: Effect) -> str:
        world.path(effect.args["name"]).unlink()
        return "gone"

    @reversible(undo=aundo, registry=registry)
    def create(name: str) -> str:
        world.path(name).write_text("x")
        return name

    builder = StateGraph(Log)
    builder.add_node("act", lambda s: {"log": [create("f.txt")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    assert rollback(graph, cfg(), to=snapshot_before(graph, "act")).ok
    assert world.listing() == {}


def test_langchain_tool_as_inverse(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    from langchain_core.tools import tool

    @tool
    def delete_file(name: str) -> str:
        """Delete a file."""
        world.path(name).unlink()
        return f"deleted {name}"

    @reversible(
        undo=delete_file,
        undo_args=lambda e: {"name": e.args["name"]},
        registry=registry,
    )
    def create(name: str) -> str:
        world.path(name).write_text("x")
        return name

    builder = StateGraph(Log)
    builder.add_node("act", lambda s: {"log": [create("t.txt")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    report = rollback(graph, cfg(), to=snapshot_before(graph, "act"))
    assert [s.description for s in report.undone] == ["deleted t.txt (undo of create)"]
    assert world.listing() == {}


def test_durability_async_and_exit(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    graph = three_steps(tools).compile(checkpointer=saver)
    # async (the default): every checkpoint drains before invoke returns.
    graph.invoke({"log": []}, cfg("async"), durability="async")
    assert rollback(graph, cfg("async"), to=snapshot_before(graph, "b", "async")).ok
    assert world.listing() == {"x.txt": "1"}

    # exit: only each run's last checkpoint is stored; a whole run rolls back
    # to the checkpoint it started from.
    for f in list(world.files.iterdir()):
        f.unlink()
    graph.invoke({"log": []}, cfg("exit"), durability="exit")
    first_run_end = graph.get_state(cfg("exit"))
    (world.path("x.txt")).write_text("between runs")
    graph.invoke({"log": []}, cfg("exit"), durability="exit")
    history = list(graph.get_state_history(cfg("exit")))
    assert len(history) == 2
    assert history[0].parent_config == first_run_end.config
    report = rollback(graph, cfg("exit"), to=first_run_end)
    assert report.ok, str(report)
    assert len(report.undone) == 4  # the second run's writes, not the first run's
    assert world.listing() == {"x.txt": "between runs", "y.txt": "y", "z.txt": "z"}


async def test_sync_tool_on_the_loop_of_the_async_saver_says_what_to_do(
    world: World, registry: ToolRegistry, tmp_path: Any
) -> None:
    from langgraph_rollback import AsyncSqliteRollbackSaver

    tools = build_tools(world, registry)

    async def act(state: Log) -> Log:
        tools.write_file("blocked.txt", "s")
        return {"log": ["act"]}

    builder = StateGraph(Log)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    async with AsyncSqliteRollbackSaver.from_conn_string(
        str(tmp_path / "a.sqlite"), registry=registry
    ) as saver:
        graph = builder.compile(checkpointer=saver)
        with pytest.raises(asyncio.InvalidStateError, match="async def"):
            await graph.ainvoke({"log": []}, cfg())
    assert world.count() == 0


async def test_langchain_tool_inverse_async_and_current_effect(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    from langchain_core.tools import tool

    from langgraph_rollback import current_effect

    seen: list[Any] = []

    @tool
    async def adelete(name: str) -> str:
        """Delete a file."""
        effect = current_effect()
        seen.append((effect.status, effect.undo_idempotency_key) if effect else None)
        world.path(name).unlink()
        return f"deleted {name}"

    @reversible(
        undo=adelete, undo_args=lambda e: {"name": e.args["name"]}, registry=registry
    )
    async def acreate(name: str) -> str:
        world.path(name).write_text("x")
        return name

    async def act(state: Log) -> Log:
        return {"log": [await acreate("t.txt")]}

    builder = StateGraph(Log)
    builder.add_node("act", act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    await graph.ainvoke({"log": []}, cfg(), durability="sync")
    target = [s async for s in graph.aget_state_history(cfg())][-1]
    report = await arollback(graph, cfg(), to=target)
    assert [s.description for s in report.undone] == ["deleted t.txt (undo of acreate)"]
    (effect,) = await saver.alist_effects(cfg())
    assert seen == [(EffectStatus.COMPENSATING, f"{effect.idempotency_key}:undo")]
    assert world.listing() == {}
