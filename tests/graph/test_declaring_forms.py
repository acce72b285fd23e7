"""The forms a declaration may take: a bare `@reversible` is refused with the
fix; `@tool` above `@reversible` records and rolls back."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langgraph_rollback import (
    DeclarationError,
    Effect,
    ToolRegistry,
    reversible,
    rollback,
)
from tests.support.world import World


def test_a_bare_reversible_is_refused_with_the_fix(registry: ToolRegistry) -> None:
    with pytest.raises(DeclarationError) as bare:

        @reversible  # type: ignore[arg-type]
        def send(to: str) -> str:
            return to

    assert "without parentheses" in str(bare.value)
    assert "Fix: write @reversible(undo=fn)" in str(bare.value)
    assert bare.value.tool == "send"
    with pytest.raises(DeclarationError) as no_undo:
        reversible(registry=registry)  # type: ignore[call-overload]
    assert str(no_undo.value).startswith("@reversible(...) is given no undo=: ")
    assert registry.get("send") is None


def test_tool_above_reversible_records_and_rolls_back(
    saver: Any, registry: ToolRegistry, world: World
) -> None:
    def remove(effect: Effect) -> str:
        world.path(effect.args["name"]).unlink()
        world.log("inverse", "make")
        return "removed"

    @tool
    @reversible(undo=remove, registry=registry)
    def make(name: str) -> str:
        """Make a file."""
        world.path(name).write_text("x")
        world.log("forward", "make")
        return name

    assert isinstance(make, BaseTool) and make.name == "make"
    graph = agent_graph(make).compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "t"}}
    graph.invoke({"messages": [("user", "go")]}, config, durability="sync")
    assert world.path("a.txt").exists() and world.count("forward") == 1
    (effect,) = saver.list_effects(config)
    assert effect.tool == "make" and effect.args == {"name": "a.txt"}
    report = rollback(graph, config, to="first", registry=registry)
    assert report.ok
    assert not world.path("a.txt").exists() and world.count("inverse") == 1


def agent_graph(make: BaseTool) -> StateGraph[Any]:
    def model(state: MessagesState) -> dict[str, Any]:
        if len(state["messages"]) > 1:
            return {"messages": [AIMessage("done")]}
        call = {"name": "make", "args": {"name": "a.txt"}, "id": "c1"}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    def route(state: MessagesState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([make]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route, ["tools", END])
    builder.add_edge("tools", "model")
    return builder
