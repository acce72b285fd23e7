"""The file battery, on a real directory, on every saver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langgraph_rollback import (
    BaseRollbackSaver,
    DuplicateToolError,
    ObservationError,
    ToolRegistry,
    plan_rollback,
    rollback,
)
from langgraph_rollback.batteries.files import BeforeImageTooLargeError, file_tools


def agent(
    saver: BaseRollbackSaver,
    tools: list[Any],
    turns: list[list[tuple[str, dict[str, Any]]]],
) -> Any:
    def model(state: MessagesState) -> dict[str, Any]:
        turn = sum(1 for m in state["messages"] if isinstance(m, AIMessage))
        if turn >= len(turns):
            return {"messages": [AIMessage("done")]}
        calls = [
            {"name": n, "args": a, "id": f"c{turn}-{i}"}
            for i, (n, a) in enumerate(turns[turn])
        ]
        return {"messages": [AIMessage("", tool_calls=calls)]}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route, ["tools", END])
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=saver)


def snapshot(root: Path) -> dict[str, Any]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else "dir")
        for p in sorted(root.rglob("*"))
    }


CFG: Any = {"configurable": {"thread_id": "files"}}


def test_every_file_tool_is_undone(
    saver: BaseRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "keep.txt").write_text("original")
    (root / "gone.txt").write_bytes(b"\x00binary\xff")
    (root / "old.txt").write_text("to move")
    (root / "target.txt").write_text("will be replaced")
    before = snapshot(root)
    tools = file_tools(root, registry=registry)
    graph = agent(
        saver,
        tools,
        [
            [
                ("write_file", {"path": "keep.txt", "content": "changed"}),
                ("write_file", {"path": "sub/new.txt", "content": "new"}),
                ("delete_file", {"path": "gone.txt"}),
            ],
            [
                ("append_file", {"path": "keep.txt", "content": "+more"}),
                ("move_file", {"source": "old.txt", "destination": "target.txt"}),
                ("make_directory", {"path": "made/deeper"}),
            ],
        ],
    )
    graph.invoke({"messages": []}, CFG, durability="sync")
    assert (root / "keep.txt").read_text() == "changedmore" or (
        root / "keep.txt"
    ).read_text() == "changed+more"
    assert not (root / "gone.txt").exists()
    assert (root / "target.txt").read_text() == "to move"
    effect = next(e for e in saver.list_effects(CFG) if e.tool == "delete_file")
    assert effect.before["kind"] == "file"
    assert effect.before["content"] == b"\x00binary\xff"
    assert len(effect.before["sha256"]) == 64

    first = list(graph.get_state_history(CFG))[-1]
    report = rollback(graph, CFG, to=first)
    assert report.ok, str(report)
    # Six calls; a move is one effect for the call and one per path it
    # touches, and each directory a call creates is one more (sub, made).
    assert len(report.undone) == 10
    assert snapshot(root) == before  # directories the calls created are gone too


def test_drift_is_a_conflict(
    saver: BaseRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    tools = file_tools(root, registry=registry)
    graph = agent(
        saver, tools, [[("write_file", {"path": "a.txt", "content": "agent"})]]
    )
    graph.invoke({"messages": []}, CFG, durability="sync")
    (root / "a.txt").write_text("a human edited this")
    first = list(graph.get_state_history(CFG))[-1]
    (step,) = plan_rollback(graph, CFG, to=first).conflicts
    assert step.effect.args["path"] == "a.txt"
    assert rollback(graph, CFG, to=first).status == "aborted"
    assert (root / "a.txt").read_text() == "a human edited this"


def test_size_cap_and_escape(
    saver: BaseRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "big.bin").write_bytes(b"x" * 2048)
    tools = file_tools(root, max_image_bytes=1024, registry=registry)
    graph = agent(
        saver, tools, [[("write_file", {"path": "big.bin", "content": "small"})]]
    )
    with pytest.raises(ObservationError) as info:
        graph.invoke({"messages": []}, CFG, durability="sync")
    assert isinstance(info.value.__cause__, BeforeImageTooLargeError)
    assert "max_image_bytes" in str(info.value.__cause__)
    assert (root / "big.bin").read_bytes() == b"x" * 2048  # untouched
    escape = agent(
        saver, tools, [[("write_file", {"path": "../outside.txt", "content": "x"})]]
    )
    with pytest.raises(ObservationError, match="leaves the workspace"):
        escape.invoke({"messages": []}, {"configurable": {"thread_id": "escape"}})
    assert not (tmp_path / "outside.txt").exists()


def test_one_workspace_per_registry(tmp_path: Path) -> None:
    registry = ToolRegistry()
    file_tools(tmp_path / "a", registry=registry)
    file_tools(tmp_path / "a", registry=registry)  # the same workspace again
    with pytest.raises(DuplicateToolError):
        file_tools(tmp_path / "b", registry=registry)
