"""`RollbackNode` inside running graphs, and the guard policy, on every saver."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command

from langgraph_rollback import (
    BaseRollbackSaver,
    DurabilityError,
    EffectStatus,
    InMemoryRollbackSaver,
    IrreversibleToolBlockedError,
    RollbackNode,
    ToolRegistry,
    before_node,
    run_start,
)
from tests.support.tools import build_tools
from tests.support.world import World


class Loop(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    log: Annotated[list[str], operator.add]
    round: int
    status: str | None
    rollback_report: dict[str, Any] | None


def cfg(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def test_replan_after_failure_example(tmp_path: Path) -> None:
    from examples.replan_after_failure import run

    final, tickets, files = run(tmp_path)
    assert tickets == [
        (1, "Scale service to 0 replicas", "cancelled"),
        (2, "Scale service to 3 replicas", "open"),
    ]
    assert files == {"service.toml": "replicas = 3\n"}
    report = final["rollback_report"]
    assert report["status"] == "completed"
    assert report["undone"] == [
        "deleted CHANGELOG.md (undo of write_file)",
        "restored service.toml (undo of write_file)",
        "cancelled ticket #1 (undo of open_ticket)",
    ]
    # The planner's second call saw the report as a message.
    texts = [str(m.content) for m in final["messages"]]
    assert texts[0] == "Scale the service down for the weekend."
    assert texts[1].startswith("[rollback report]")
    assert texts[-1] == "Check passed."


def loop_graph(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, node: RollbackNode
) -> Any:
    """act writes round-N.txt each round; check sends round 3 to undo, then ends."""
    tools = build_tools(world, registry)

    def prepare(state: Loop) -> Loop:
        tools.write_file("prepared.txt", "yes")
        return {"round": 0, "status": "prepared"}

    def act(state: Loop) -> Loop:
        n = state["round"] + 1
        tools.write_file(f"round-{n}.txt", str(n))
        return {"round": n, "log": [f"act {n}"]}

    def check(state: Loop) -> Command[Any]:
        if state.get("rollback_report"):
            return Command(goto=END)
        if state["round"] < 3:
            return Command(goto="act")
        return Command(goto="undo")

    builder = StateGraph(Loop)
    builder.add_node(prepare)
    builder.add_node(act)
    builder.add_node("check", check, destinations=("act", "undo", END))
    builder.add_node("undo", node)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "act")
    builder.add_edge("act", "check")
    return builder.compile(checkpointer=saver)


def test_before_node_picks_the_latest_run_of_the_node(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(
        saver, world, registry, RollbackNode(to=before_node("act"), goto="check")
    )
    final = graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    # Only the third round was undone; the state is as act's third run found it.
    assert world.listing() == {
        "prepared.txt": "yes",
        "round-1.txt": "1",
        "round-2.txt": "2",
    }
    assert final["round"] == 2
    assert final["log"] == ["act 1", "act 2"]
    report = final["rollback_report"]
    assert report["undone"] == ["deleted round-3.txt (undo of write_file)"]
    assert final["messages"][-1].name == "rollback"
    assert "round-3.txt" in str(final["messages"][-1].content)


def test_run_start_undoes_the_whole_run(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(
        saver, world, registry, RollbackNode(to=run_start(), goto="check")
    )
    final = graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    assert world.listing() == {}
    assert len(final["rollback_report"]["undone"]) == 4
    # Values at the run's start: the input is there, nothing a node wrote is.
    assert final["log"] == []
    assert final["round"] is None  # was empty at the target: set to None
    assert final["messages"][0].content == "go"


def test_custom_target_function(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    def after_round_one(state: Loop, config: Any) -> Any:
        history = list(saver.list(config))  # collect before other saver calls
        return next(
            t for t in history if t.checkpoint["channel_values"].get("round") == 1
        ).config

    graph = loop_graph(
        saver, world, registry, RollbackNode(to=after_round_one, goto="check")
    )
    final = graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    assert world.listing() == {"prepared.txt": "yes", "round-1.txt": "1"}
    assert final["round"] == 1


@pytest.mark.parametrize("answer", ["approve-some", "reject"])
def test_human_approval(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, answer: str
) -> None:
    graph = loop_graph(
        saver,
        world,
        registry,
        RollbackNode(to=run_start(), goto="check", approval=True),
    )
    paused = graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    (question,) = paused["__interrupt__"]
    assert question.value["type"] == "rollback_approval"
    assert "round-3.txt" in question.value["plan"]
    assert len(world.listing()) == 4  # nothing undone before the answer
    keep = next(
        e for e in question.value["effects"] if e["args"]["name"] == "round-1.txt"
    )
    if answer == "reject":
        final = graph.invoke(Command(resume=False), cfg(), durability="sync")
        assert final["rollback_report"]["status"] == "rejected"
        assert len(world.listing()) == 4
        assert final["round"] == 3  # the state is left as it was
    else:
        resume = {"approve": True, "skip": [keep["id"]]}
        final = graph.invoke(Command(resume=resume), cfg(), durability="sync")
        assert world.listing() == {"round-1.txt": "1"}
        assert final["rollback_report"]["status"] == "completed"
        assert saver.get_effect(cfg(), keep["id"]).status is EffectStatus.APPLIED


def test_rollback_node_requires_sync_durability(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(saver, world, registry, RollbackNode(goto="check"))
    with pytest.raises(DurabilityError, match="durability='sync'"):
        graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="async")
    # Nothing was undone.
    assert len(world.listing()) == 4


async def test_rollback_node_async(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(
        saver, world, registry, RollbackNode(to=before_node("act"), goto="check")
    )
    final = await graph.ainvoke(
        {"messages": [HumanMessage("go")]}, cfg(), durability="sync"
    )
    assert world.listing() == {
        "prepared.txt": "yes",
        "round-1.txt": "1",
        "round-2.txt": "2",
    }
    assert final["rollback_report"]["status"] == "completed"


# --- the guard policy for irreversible tools ------------------------------------


def email_graph(saver: BaseRollbackSaver, world: World, registry: ToolRegistry) -> Any:
    tools = build_tools(world, registry)

    def act(state: Loop) -> Loop:
        tools.write_file("draft.txt", "hello")
        result = tools.send_email.invoke({"to": "ceo@example.com", "body": "hello"})
        return {"log": [result]}

    builder = StateGraph(Loop)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


def test_guard_block_records_and_refuses(world: World, registry: ToolRegistry) -> None:
    saver = InMemoryRollbackSaver(registry=registry, guard="block")
    graph = email_graph(saver, world, registry)
    with pytest.raises(IrreversibleToolBlockedError) as info:
        graph.invoke({"log": []}, cfg())
    assert info.value.tool == "send_email"
    assert world.count("forward", "send_email") == 0
    blocked = saver.get_effect(cfg(), info.value.effect_id)
    assert blocked.status is EffectStatus.BLOCKED
    assert blocked.args == {"to": "ceo@example.com", "body": "hello"}
    # Allowing it for this graph (per-run config) lets the resume go through.
    graph.invoke(None, {"configurable": {"thread_id": "t1", "rollback_guard": "allow"}})
    assert world.count("forward", "send_email") == 1
    assert saver.get_effect(cfg(), info.value.effect_id).status is EffectStatus.APPLIED


@pytest.mark.parametrize("approve", [True, False])
def test_guard_ask_interrupts_before_the_call(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, approve: bool
) -> None:
    graph = email_graph(saver, world, registry).with_config(
        configurable={"rollback_guard": "ask"}
    )
    paused = graph.invoke({"log": []}, cfg())
    (question,) = paused["__interrupt__"]
    assert question.value["tool"] == "send_email"
    assert question.value["kind"] == "irreversible"
    assert world.count("forward", "send_email") == 0
    assert world.count("forward", "write_file") == 1
    if approve:
        final = graph.invoke(Command(resume=True), cfg())
        assert final["log"] == ["sent to ceo@example.com"]
        assert world.count("forward", "send_email") == 1
    else:
        with pytest.raises(IrreversibleToolBlockedError):
            graph.invoke(Command(resume=False), cfg())
        assert world.count("forward", "send_email") == 0
    assert (
        world.count("forward", "write_file") == 1
    )  # reversible calls are not asked about


def test_bad_guard_values_are_refused(registry: ToolRegistry) -> None:
    from langgraph_rollback import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="guard"):
        InMemoryRollbackSaver(guard="sometimes")  # type: ignore[arg-type]
