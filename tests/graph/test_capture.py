"""Capturing every tool call with the ToolNode hook or create_agent middleware."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langgraph_rollback import (
    BaseRollbackSaver,
    EffectStatus,
    IrreversibleToolBlockedError,
    Reversibility,
    ToolRegistry,
    arecord_tool_call,
    record_tool_call,
    rollback,
)
from tests.support.tools import build_tools
from tests.support.world import World


class ScriptedModel(FakeMessagesListChatModel):
    """A fake chat model that agents can bind tools to."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self


def ten_tools(world: World) -> list[Any]:
    def make(i: int) -> Any:  # one closure per tool, no `_i=i` parameter
        def run(target: str) -> str:
            world.log("forward", f"tool_{i}", target=target)
            world.path(f"{i}-{target}").write_text("x")
            return f"tool_{i} did {target}"

        return run

    return [
        StructuredTool.from_function(
            make(i), name=f"tool_{i}", description=f"Tool {i}."
        )
        for i in range(10)
    ]


def calls(*names: str) -> AIMessage:
    return AIMessage(
        "",
        tool_calls=[
            {"name": n, "args": {"target": "x"}, "id": f"call-{n}"} for n in names
        ],
    )


def cfg(thread: str = "t") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def test_react_agent_with_ten_undeclared_tools_gets_a_complete_ledger(
    saver: BaseRollbackSaver, world: World
) -> None:
    from langgraph.prebuilt import create_react_agent

    tools = ten_tools(world)
    model = ScriptedModel(
        responses=[
            calls(*(f"tool_{i}" for i in range(5))),
            calls(*(f"tool_{i}" for i in range(5, 10))),
            AIMessage("done"),
        ]
    )
    node = ToolNode(
        tools, wrap_tool_call=record_tool_call, awrap_tool_call=arecord_tool_call
    )
    with pytest.warns(Warning, match="create_agent"):  # deprecated in langgraph 1.x
        agent = create_react_agent(model, node, checkpointer=saver)
    agent.invoke({"messages": [HumanMessage("go")]}, cfg())
    effects = saver.list_effects(cfg())
    assert sorted(e.tool for e in effects) == sorted(f"tool_{i}" for i in range(10))
    assert {e.kind for e in effects} == {Reversibility.UNKNOWN}
    assert all(e.status is EffectStatus.APPLIED for e in effects)
    assert all(e.tool_call_id == f"call-{e.tool}" for e in effects)
    assert world.count() == 10
    # The rollback cannot undo them, and says which.
    first = list(agent.get_state_history(cfg()))[-1]
    report = rollback(agent, cfg(), to=first)
    assert len(report.skipped) == 10
    assert all("undeclared" in s.reason for s in report.skipped)


async def test_create_agent_middleware(saver: BaseRollbackSaver, world: World) -> None:
    from langchain.agents import create_agent

    from langgraph_rollback.middleware import RollbackMiddleware

    tools = ten_tools(world)
    model = ScriptedModel(responses=[calls("tool_1", "tool_2"), AIMessage("done")])
    agent = create_agent(
        model, tools, middleware=[RollbackMiddleware()], checkpointer=saver
    )
    await agent.ainvoke(
        {"messages": [HumanMessage("go")]}, cfg("agent"), durability="sync"
    )
    effects = await saver.alist_effects(cfg("agent"))
    assert sorted(e.tool for e in effects) == ["tool_1", "tool_2"]
    assert world.count() == 2


def test_declared_tools_are_not_recorded_twice_and_replays_hold(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    declared = build_tools(world, registry)
    undeclared = ten_tools(world)[:1]
    model_calls = AIMessage(
        "",
        tool_calls=[
            {"name": "make_file", "args": {"name": "d.txt"}, "id": "c1"},
            {"name": "tool_0", "args": {"target": "x"}, "id": "c2"},
            {"name": "flaky", "args": {"name": "f.txt"}, "id": "c3"},
        ],
    )

    def model(state: MessagesState) -> dict[str, Any]:
        return {} if state["messages"] else {"messages": [model_calls]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node(
        "tools",
        ToolNode(
            [declared.make_file, declared.flaky, *undeclared],
            wrap_tool_call=record_tool_call,
            awrap_tool_call=arecord_tool_call,
        ),
    )
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(ConnectionError):
        graph.invoke({"messages": []}, cfg())
    out = graph.invoke(None, cfg())
    effects = saver.list_effects(cfg())
    assert sorted(e.tool for e in effects) == ["flaky", "make_file", "tool_0"]
    kinds = {e.tool: e.kind for e in effects}
    assert kinds["tool_0"] is Reversibility.UNKNOWN
    assert kinds["make_file"] is Reversibility.REVERSIBLE
    # The resumed step replayed the undeclared call from the ledger.
    assert world.count("forward", "tool_0") == 1
    assert world.count("forward", "make_file") == 1
    replies = {
        m.tool_call_id: m.content for m in out["messages"] if isinstance(m, ToolMessage)
    }
    assert replies["c2"] == "tool_0 did x"


def test_mcp_annotations_decide(saver: BaseRollbackSaver, world: World) -> None:
    def make(name: str, **annotations: Any) -> Any:
        def run(target: str) -> str:
            world.log("forward", name, target=target)
            return name

        return StructuredTool.from_function(
            run, name=name, description=name, metadata=annotations or None
        )

    tools = [
        make("read_page", readOnlyHint=True),
        make("delete_page", destructiveHint=True),
        make("edit_page", destructiveHint=False),
    ]
    model_calls = calls("read_page", "delete_page", "edit_page")

    def model(state: MessagesState) -> dict[str, Any]:
        return {} if state["messages"] else {"messages": [model_calls]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode(tools, wrap_tool_call=record_tool_call))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"messages": []}, cfg())
    kinds = {e.tool: e.kind for e in saver.list_effects(cfg())}
    assert kinds == {
        "delete_page": Reversibility.IRREVERSIBLE,
        "edit_page": Reversibility.UNKNOWN,
    }
    assert world.count() == 3

    blocked = graph.with_config(configurable={"rollback_guard": "block"})
    with pytest.raises(IrreversibleToolBlockedError):
        blocked.invoke({"messages": []}, cfg("blocked"))
    statuses = {e.tool: e.status for e in saver.list_effects(cfg("blocked"))}
    assert EffectStatus.BLOCKED in statuses.values()
    assert world.count("forward", "read_page") == 2  # read-only tools are never guarded
