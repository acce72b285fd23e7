"""Adversarial checks: thread ids and tool call ids with odd characters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from langgraph_rollback import BaseRollbackSaver, default_registry, rollback
from tests.support import targets_app
from tests.support.targets_app import ALL_FILES

ODD = [
    'it\'s "quoted" %s %(x)s _% \\ {0} ;--',
    "ünïcödé 🚀 スレッド",
    "x" * 2000,
    "  padded  ",
    "first",
    "run_start:r1",
]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "app"
    directory.mkdir()
    monkeypatch.setenv("TARGETS_APP_DIR", str(directory))
    return directory


@pytest.mark.parametrize("thread", ODD, ids=range(len(ODD)))
def test_odd_thread_ids_roll_back_like_any_other(
    saver: BaseRollbackSaver, world: Path, thread: str
) -> None:
    graph = targets_app.builder.compile(checkpointer=saver)
    targets_app.run_twice(graph, thread)
    config: Any = {"configurable": {"thread_id": thread}}
    assert len(saver.list_effects(config)) == 8
    report = rollback(graph, config, to="run_start:r2", registry=default_registry)
    assert report.ok, str(report)
    assert sorted(p.name for p in world.iterdir()) == [
        f for f in ALL_FILES if f.endswith("-1.txt")
    ]
    again = rollback(graph, config, to="first", registry=default_registry)
    assert again.ok and sorted(world.iterdir()) == []


@pytest.mark.parametrize(
    "call_id",
    [
        "functions.target_write:0",
        "run_start:x",
        "First",
        " call-1",
    ],
)
def test_odd_tool_call_ids_name_their_effect(
    saver: BaseRollbackSaver, world: Path, call_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model tool call ids come in many shapes (Kimi's `functions.name:0`); one
    that names exactly one effect is a target (README), whatever it looks like."""
    from langchain_core.messages import AIMessage

    def model(state: Any) -> dict[str, Any]:
        n = state["run"]
        calls = [
            {"name": "target_write", "args": {"name": f"tool-{n}.txt"}, "id": f"c{n}"},
            {"name": "target_write", "args": {"name": f"echo-{n}.txt"}, "id": f"e{n}"},
        ]
        if n == 2:
            calls[0]["id"] = call_id
        return {"messages": [AIMessage("", tool_calls=calls, id=f"ai-{n}")]}

    monkeypatch.setattr(targets_app, "_model", model)
    builder = targets_app.StateGraph(targets_app.State)
    for name, node in (
        ("plan", targets_app._plan),
        ("model", model),
        ("tools", targets_app.ToolNode([targets_app.target_write])),
        ("finish", targets_app._finish),
    ):
        builder.add_node(name, node)
    builder.add_edge(targets_app.START, "plan")
    builder.add_edge("plan", "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", "finish")
    graph = builder.compile(checkpointer=saver)
    targets_app.run_twice(graph, "t")
    config: Any = {"configurable": {"thread_id": "t"}}
    report = rollback(graph, config, to=call_id, registry=default_registry)
    assert report.ok, str(report)
    left = sorted(p.name for p in world.iterdir())
    assert left == sorted(
        [*(f for f in ALL_FILES if f.endswith("-1.txt")), "plan-2.txt"]
    )
