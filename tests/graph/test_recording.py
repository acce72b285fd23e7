"""Recording and replay, on every saver; counts come from the world's own log."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, RetryPolicy, interrupt

from langgraph_rollback import (
    BaseRollbackSaver,
    EffectOutcomeUnknownError,
    EffectStatus,
    ObservationError,
    ReplayMismatchError,
    Reversibility,
    SerializationError,
    ToolRegistry,
    UnrecordedCallWarning,
    current_effect,
    reversible,
    rollback,
)
from langgraph_rollback.core.ledger import changed_row
from tests.support.tools import build_tools
from tests.support.world import World


class Files(TypedDict, total=False):
    done: Annotated[list[str], operator.add]


def cfg(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def tool_calls_message(*calls: tuple[str, dict[str, Any], str]) -> AIMessage:
    return AIMessage(
        "",
        tool_calls=[{"name": n, "args": a, "id": i} for n, a, i in calls],
    )


def test_direct_calls_recorded_in_order_with_identity(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def writer(state: Files) -> Files:
        tools.write_file("a.txt", "one")
        tools.write_file("b.txt", "two")
        tools.write_file("a.txt", "one")  # identical call: second ordinal
        return {"done": ["writer"]}

    def second(state: Files) -> Files:
        tools.write_file("c.txt", "three")
        return {"done": ["second"]}

    builder = StateGraph(Files)
    builder.add_node(writer)
    builder.add_node(second)
    builder.add_edge(START, "writer")
    builder.add_edge("writer", "second")
    builder.add_edge("second", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"done": []}, cfg(), durability="sync")

    effects = saver.list_effects(cfg())
    assert [(e.tool, e.args["name"]) for e in effects] == [
        ("write_file", "c.txt"),
        ("write_file", "a.txt"),
        ("write_file", "b.txt"),
        ("write_file", "a.txt"),
    ]
    assert [e.seq for e in effects] == sorted((e.seq for e in effects), reverse=True)
    assert all(e.status is EffectStatus.APPLIED for e in effects)
    assert all(e.kind is Reversibility.REVERSIBLE for e in effects)
    assert [e.ordinal for e in effects] == [0, 1, 0, 0]
    assert effects[1].call_key != effects[3].call_key
    assert effects[0].result == "wrote c.txt"
    assert effects[3].before is None and effects[3].after == "one"
    assert effects[1].before == "one"  # the second write saw the first one's file
    assert len({e.id for e in effects}) == 4
    assert len({e.idempotency_key for e in effects}) == 4
    assert world.count() == 4

    # Identity: each effect names the task that made it, and that task is listed
    # on the checkpoint the effect says it started from.
    history = {
        s.config["configurable"]["checkpoint_id"]: s
        for s in graph.get_state_history(cfg())
    }
    for effect in effects:
        assert effect.thread_id == "t1"
        assert effect.checkpoint_ns == ""
        assert effect.task_ns == f"{effect.node}:{effect.task_id}"
        assert effect.root_checkpoint_id == effect.checkpoint_id
        snapshot = history[effect.checkpoint_id]
        assert (effect.task_id, effect.node) in {(t.id, t.name) for t in snapshot.tasks}
        assert effect.base_checkpoint_id == effect.checkpoint_id  # durability="sync"
    assert {e.node for e in effects} == {"writer", "second"}


def test_toolnode_concurrent_calls_keyed_by_tool_call_id(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    names = [f"f{i}.txt" for i in range(6)]

    def model(state: MessagesState) -> dict[str, Any]:
        if state["messages"]:
            return {}
        return {
            "messages": [
                tool_calls_message(
                    *[("make_file", {"name": n}, f"call-{n}") for n in names]
                )
            ]
        }

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([tools.make_file]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=saver)
    out = graph.invoke({"messages": []}, cfg())

    replies = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert sorted(m.content for m in replies) == sorted(f"made {n}" for n in names)
    effects = saver.list_effects(cfg())
    assert sorted(e.tool_call_id or "" for e in effects) == sorted(
        f"call-{n}" for n in names
    )
    assert all(
        e.call_key.startswith(f"v2:call:{e.tool_call_id}:make_file:") for e in effects
    )
    assert all(e.ordinal == 0 for e in effects)
    assert len({e.task_id for e in effects}) == 1  # one ToolNode step, one task
    assert {e.args["name"] for e in effects} == set(names)
    assert world.count("forward", "make_file") == 6


async def test_async_tools_under_ainvoke(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    async def writer(state: MessagesState) -> dict[str, Any]:
        await tools.awrite_file("a.txt", "async")
        return {
            "messages": [
                tool_calls_message(
                    ("amake_file", {"name": "b.txt"}, "c1"),
                    ("make_file", {"name": "c.txt"}, "c2"),
                )
            ]
        }

    builder = StateGraph(MessagesState)
    builder.add_node("writer", writer)
    builder.add_node("tools", ToolNode([tools.amake_file, tools.make_file]))
    builder.add_edge(START, "writer")
    builder.add_edge("writer", "tools")
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=saver)
    await graph.ainvoke({"messages": []}, cfg())

    effects = await saver.alist_effects(cfg())
    assert {(e.tool, e.args["name"], e.status) for e in effects} == {
        ("awrite_file", "a.txt", EffectStatus.APPLIED),
        ("amake_file", "b.txt", EffectStatus.APPLIED),
        ("make_file", "c.txt", EffectStatus.APPLIED),
    }
    assert world.listing() == {"a.txt": "async", "b.txt": "made", "c.txt": "made"}
    assert world.count() == 3


def test_interrupt_resume_does_not_repeat(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def act(state: Files) -> Files:
        result = tools.write_file("report.txt", "draft")
        approved = interrupt({"question": "publish?", "result": result})
        if approved:
            tools.write_file("published.txt", "yes")
        return {"done": [result]}

    builder = StateGraph(Files)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)

    first = graph.invoke({"done": []}, cfg())
    assert "__interrupt__" in first
    assert world.count() == 1
    out = graph.invoke(Command(resume=True), cfg())
    assert out["done"] == ["wrote report.txt"]
    assert world.count("forward", "write_file") == 2  # report once, published once
    assert [c["name"] for c in world.calls("forward")] == [
        "report.txt",
        "published.txt",
    ]
    effects = saver.list_effects(cfg())
    assert [e.args["name"] for e in effects] == ["published.txt", "report.txt"]
    assert effects[1].attempt == 1


def test_failure_then_resume_does_not_repeat(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def act(state: Files) -> Files:
        tools.write_file("a.txt", "1")
        if world.flag("act-fails"):
            raise RuntimeError("downstream check failed")
        tools.write_file("b.txt", "2")
        return {"done": ["act"]}

    builder = StateGraph(Files)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)

    with pytest.raises(RuntimeError, match="downstream check failed"):
        graph.invoke({"done": []}, cfg())
    assert world.count() == 1
    graph.invoke(None, cfg())
    assert [c["name"] for c in world.calls("forward")] == ["a.txt", "b.txt"]
    assert [e.args["name"] for e in saver.list_effects(cfg())] == ["b.txt", "a.txt"]


def test_retry_policy_does_not_repeat(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    attempts: list[int] = []

    def act(state: Files) -> Files:
        attempts.append(1)
        tools.write_file("a.txt", "1")
        tools.write_file("a.txt", "1")  # identical call: must keep its own ordinal
        if len(attempts) < 3:
            raise ConnectionError("transient")
        return {"done": ["act"]}

    builder = StateGraph(Files)
    builder.add_node(
        act,
        retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.001, jitter=False),
    )
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"done": []}, cfg())

    assert len(attempts) == 3
    assert world.count() == 2
    assert sorted(e.ordinal or 0 for e in saver.list_effects(cfg())) == [0, 1]


def test_half_failed_toolnode_step(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def model(state: MessagesState) -> dict[str, Any]:
        if state["messages"]:
            return {}
        return {
            "messages": [
                tool_calls_message(
                    ("make_file", {"name": "ok.txt"}, "c-ok"),
                    ("flaky", {"name": "flaky.txt"}, "c-flaky"),
                )
            ]
        }

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([tools.make_file, tools.flaky]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=saver)

    with pytest.raises(ConnectionError):
        graph.invoke({"messages": []}, cfg())
    by_tool = {e.tool: e for e in saver.list_effects(cfg())}
    assert by_tool["make_file"].status is EffectStatus.APPLIED
    assert by_tool["flaky"].status is EffectStatus.FAILED
    assert (
        by_tool["flaky"].error == "ConnectionError: flaky service failed for flaky.txt"
    )

    out = graph.invoke(None, cfg())
    assert world.count("forward", "make_file") == 1
    assert world.count("forward", "flaky") == 2
    by_tool = {e.tool: e for e in saver.list_effects(cfg())}
    assert by_tool["flaky"].status is EffectStatus.APPLIED
    assert by_tool["flaky"].attempt == 2
    assert by_tool["flaky"].error is None
    contents = sorted(m.content for m in out["messages"] if isinstance(m, ToolMessage))
    assert contents == ["flaky made flaky.txt", "made ok.txt"]


def test_tool_raising_interrupt_runs_again_on_resume(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    def undo(effect: Any) -> None:
        return None

    @reversible(undo=undo, registry=registry)
    def guarded_write(name: str) -> str:
        ok = interrupt(f"write {name}?")
        world.log("forward", "guarded_write", name=name, ok=ok)
        world.path(name).write_text("ok")
        return "written"

    def act(state: Files) -> Files:
        return {"done": [guarded_write("g.txt")]}

    builder = StateGraph(Files)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"done": []}, cfg())
    (effect,) = saver.list_effects(cfg())
    assert effect.status is EffectStatus.INTERRUPTED
    assert world.count() == 0
    out = graph.invoke(Command(resume="yes"), cfg())
    assert out["done"] == ["written"]
    (effect,) = saver.list_effects(cfg())
    assert effect.status is EffectStatus.APPLIED
    assert effect.attempt == 2
    assert world.calls() == [
        {"kind": "forward", "tool": "guarded_write", "name": "g.txt", "ok": "yes"}
    ]


def test_unknown_outcome_is_surfaced_then_resolved(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    class ProcessDied(BaseException):
        """Stands in for the process dying mid-call: not an Exception."""

    def undo(effect: Any) -> None:
        return None

    @reversible(undo=undo, registry=registry)
    def charge(customer: str, cents: int) -> str:
        world.log("forward", "charge", customer=customer)
        if world.flag("die-during-charge"):
            raise ProcessDied
        return f"charged {cents}"

    def act(state: Files) -> Files:
        return {"done": [charge("acme", 500)]}

    builder = StateGraph(Files)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(ProcessDied):
        graph.invoke({"done": []}, cfg())
    (effect,) = saver.list_effects(cfg())
    assert effect.status is EffectStatus.PENDING

    with pytest.raises(EffectOutcomeUnknownError) as info:
        graph.invoke(None, cfg())
    assert info.value.effect_id == effect.id
    assert info.value.tool == "charge"
    assert "resolve_effect" in str(info.value)
    assert world.count() == 1  # surfaced, not guessed: the charge did not run again

    saver.resolve_effect(cfg(), effect.id, applied=True, result="charged 500 (checked)")
    out = graph.invoke(None, cfg())
    assert out["done"] == ["charged 500 (checked)"]
    assert world.count() == 1
    assert saver.get_effect(cfg(), effect.id).status is EffectStatus.APPLIED


def test_resolved_as_not_applied_runs_again(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    class ProcessDied(BaseException):
        pass

    @reversible(undo=lambda effect: None, registry=registry)
    def post(text: str) -> str:
        world.log("forward", "post", text=text)
        if world.flag("die"):
            raise ProcessDied
        return "posted"

    builder = StateGraph(Files)
    builder.add_node("act", lambda state: {"done": [post("hi")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(ProcessDied):
        graph.invoke({"done": []}, cfg())
    (effect,) = saver.list_effects(cfg())
    saver.resolve_effect(cfg(), effect.id, applied=False)
    assert graph.invoke(None, cfg())["done"] == ["posted"]
    assert world.count() == 2
    (effect,) = saver.list_effects(cfg())
    assert (effect.status, effect.attempt) == (EffectStatus.APPLIED, 2)


def test_non_serializable_argument_refused_before_the_call(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    import threading

    @reversible(undo=lambda effect: None, registry=registry)
    def lock_file(name: str, guard: Any) -> str:
        world.log("forward", "lock_file", name=name)
        return "locked"

    builder = StateGraph(Files)
    builder.add_node("act", lambda state: {"done": [lock_file("x", threading.Lock())]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(SerializationError) as info:
        graph.invoke({"done": []}, cfg())
    assert info.value.tool == "lock_file"
    assert info.value.field == "argument 'guard'"
    assert "lock_file" in str(info.value) and "'guard'" in str(info.value)
    assert "Fix:" in str(info.value)
    assert world.count() == 0
    assert saver.list_effects(cfg()) == []


def test_non_serializable_result_is_recorded_as_applied_and_raised(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    import threading

    @reversible(undo=lambda effect: None, registry=registry)
    def open_handle(name: str) -> Any:
        world.log("forward", "open_handle", name=name)
        return threading.Lock()

    builder = StateGraph(Files)
    builder.add_node("act", lambda state: {"done": [str(open_handle("h"))]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    for _ in range(2):
        with pytest.raises(SerializationError, match="result"):
            graph.invoke({"done": []} if _ == 0 else None, cfg())
    assert world.count() == 1  # the action happened once and is in the ledger
    (effect,) = saver.list_effects(cfg())
    assert effect.status is EffectStatus.APPLIED


def test_replay_with_another_tool_at_the_same_spot_is_refused(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, raw_sql: Any
) -> None:
    @reversible(undo=lambda effect: None, registry=registry)
    def step(name: str) -> str:
        world.log("forward", "step", name=name)
        return name

    # Two tools sharing one call key would need the same name and arguments, so
    # simulate a node whose code changed between the crash and the resume by
    # re-registering `step` under the other function's identity.
    @reversible(undo=lambda effect: None, registry=ToolRegistry())
    def other(name: str) -> str:
        return name

    calls = {"n": 0}

    def act(state: Files) -> Files:
        calls["n"] += 1
        step("x")
        if calls["n"] == 1:
            raise RuntimeError("crash")
        return {"done": ["ok"]}

    builder = StateGraph(Files)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(RuntimeError):
        graph.invoke({"done": []}, cfg())
    (_effect,) = saver.list_effects(cfg())
    # Rewrite the recorded tool name as a different one would have written it.
    from langgraph_rollback.core.ops import Select
    from langgraph_rollback.core.query import EffectQuery

    (row,) = saver.execute(Select(EffectQuery(thread_id="t1")))
    if raw_sql is None:
        saver._effects[row.effect_id] = changed_row(row, tool="other")  # type: ignore[attr-defined]
    else:
        raw_sql(
            "UPDATE lgrb_effects SET tool = 'other' WHERE effect_id = ?",
            (row.effect_id,),
        )
    with pytest.raises(ReplayMismatchError) as info:
        graph.invoke(None, cfg())
    assert (info.value.recorded_tool, info.value.called_tool) == ("other", "step")
    assert world.count() == 1


def test_nested_declared_call_is_owned_by_the_outer_effect(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    @reversible(undo=lambda effect: None, registry=registry)
    def publish(name: str) -> str:
        tools.write_file(name, "inner")
        return "published"

    builder = StateGraph(Files)
    builder.add_node("act", lambda state: {"done": [publish("p.txt")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"done": []}, cfg())
    assert [e.tool for e in saver.list_effects(cfg())] == ["publish"]
    assert world.count() == 1


def test_observe_failure_before_the_call_stops_it(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    def observe(name: str) -> str:
        raise PermissionError("cannot read target")

    @reversible(undo=lambda effect: None, observe=observe, registry=registry)
    def touch(name: str) -> str:
        world.log("forward", "touch", name=name)
        return "touched"

    builder = StateGraph(Files)
    builder.add_node("act", lambda state: {"done": [touch("t")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(ObservationError, match="PermissionError"):
        graph.invoke({"done": []}, cfg())
    assert world.count() == 0
    assert saver.list_effects(cfg()) == []


def test_subgraph_effects_carry_root_checkpoint(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def inner(state: Files) -> Files:
        tools.write_file("inner.txt", "sub")
        return {"done": ["inner"]}

    sub = StateGraph(Files)
    sub.add_node(inner)
    sub.add_edge(START, "inner")
    sub.add_edge("inner", END)

    builder = StateGraph(Files)
    builder.add_node("sub", sub.compile())
    builder.add_edge(START, "sub")
    builder.add_edge("sub", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"done": []}, cfg(), durability="sync")

    (effect,) = saver.list_effects(cfg())
    assert effect.checkpoint_ns.startswith("sub:")
    assert effect.task_ns.startswith(effect.checkpoint_ns + "|inner:")
    assert effect.checkpoint_id != effect.root_checkpoint_id
    root_ids = [
        s.config["configurable"]["checkpoint_id"]
        for s in graph.get_state_history(cfg())
    ]
    assert effect.root_checkpoint_id in root_ids
    assert effect.checkpoint_id not in root_ids
    # Filtering by the root checkpoint finds the subgraph's effect.
    by_root = saver.list_effects(
        {
            "configurable": {
                "thread_id": "t1",
                "checkpoint_id": effect.root_checkpoint_id,
            }
        }
    )
    assert [e.id for e in by_root] == [effect.id]


def test_list_effects_filters(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def act(state: Files) -> Files:
        for i in range(5):
            tools.write_file(f"{i}.txt", str(i))
        tools.send_email.invoke({"to": "a@example.com", "body": "hi"})
        return {"done": ["act"]}

    builder = StateGraph(Files)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"done": []}, cfg("a"))
    graph.invoke({"done": []}, cfg("b"))

    everything = saver.list_effects(cfg("a"))
    assert len(everything) == 6
    assert {e.thread_id for e in everything} == {"a"}
    assert [e.tool for e in saver.list_effects(cfg("a"), tool="send_email")] == [
        "send_email"
    ]
    (email,) = saver.list_effects(cfg("a"), tool="send_email")
    assert email.kind is Reversibility.IRREVERSIBLE
    assert len(saver.list_effects(cfg("a"), status="applied")) == 6
    assert saver.list_effects(cfg("a"), status=[EffectStatus.FAILED]) == []
    page = saver.list_effects(cfg("a"), limit=2)
    assert [e.seq for e in page] == [e.seq for e in everything[:2]]
    rest = saver.list_effects(cfg("a"), before=page[-1].seq)
    assert [e.seq for e in rest] == [e.seq for e in everything[2:]]
    by_checkpoint = saver.list_effects(
        {
            "configurable": {
                "thread_id": "a",
                "checkpoint_id": everything[0].root_checkpoint_id,
            }
        }
    )
    assert len(by_checkpoint) == 6
    assert saver.list_effects(cfg("nobody")) == []


def test_unrecorded_outside_a_graph_and_under_a_foreign_checkpointer(
    world: World, registry: ToolRegistry
) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    tools = build_tools(world, registry)
    assert tools.write_file("plain.txt", "x") == "wrote plain.txt"
    assert tools.make_file.invoke({"name": "tool.txt"}) == "made tool.txt"

    builder = StateGraph(Files)
    builder.add_node("act", lambda state: {"done": [tools.write_file("g.txt", "y")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    with pytest.warns(UnrecordedCallWarning, match="'write_file' runs in a graph"):
        graph.invoke({"done": []}, cfg())
    graph.invoke({"done": []}, cfg())  # said once per tool: no second warning
    assert world.count() == 4  # nothing recorded, so nothing deduplicated


def test_plain_function_in_toolnode_keyed_by_arguments(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    lc_tool = tool(tools.write_file)  # ToolNode converts plain functions the same way

    def model(state: MessagesState) -> dict[str, Any]:
        if state["messages"]:
            return {}
        return {
            "messages": [
                tool_calls_message(
                    ("write_file", {"name": "x.txt", "content": "1"}, "a"),
                    ("write_file", {"name": "y.txt", "content": "2"}, "b"),
                    ("flaky", {"name": "z.txt"}, "c"),
                )
            ]
        }

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([lc_tool, tools.flaky]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(ConnectionError):
        graph.invoke({"messages": []}, cfg())
    graph.invoke(None, cfg())
    effects = saver.list_effects(cfg(), tool="write_file")
    assert sorted(e.args["name"] for e in effects) == ["x.txt", "y.txt"]
    assert all(e.ordinal == 0 and e.tool_call_id is None for e in effects)
    # The resumed step ran the plain-function calls from the ledger, not again.
    assert world.count("forward", "write_file") == 2
    assert world.count("forward", "flaky") == 2


def test_the_owner_is_named_while_a_call_runs_and_cleared_once_it_ended(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    owners: list[str | None] = []

    def undo_mark(effect: Any) -> None:
        owners.append(effect.owner)

    def current_effect_owner() -> str | None:
        effect = current_effect()
        return effect.owner if effect is not None else "no effect"

    @reversible(undo=undo_mark, registry=registry)
    def mark(name: str) -> str:
        owners.append(current_effect_owner())
        return name

    def writer(state: Files) -> Files:
        tools.write_file("a.txt", "one")
        mark("m")
        return {"done": ["writer"]}

    builder = StateGraph(Files)
    builder.add_node(writer)
    builder.add_edge(START, "writer")
    builder.add_edge("writer", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"done": []}, cfg(), durability="sync")

    running = owners[0]
    assert running is not None and running != "no effect"  # host#pid#started
    assert [e.owner for e in saver.list_effects(cfg())] == [None, None]

    first = list(graph.get_state_history(cfg()))[-1]
    report = rollback(graph, cfg(), to=first)
    assert report.status == "completed", report
    assert owners[1] is not None  # the inverse runs under the rollback's process
    assert [e.status for e in saver.list_effects(cfg())] == [
        EffectStatus.COMPENSATED,
        EffectStatus.COMPENSATED,
    ]
    assert [e.owner for e in saver.list_effects(cfg())] == [None, None]
