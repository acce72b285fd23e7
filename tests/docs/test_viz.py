"""The timeline picture, drawn from a real thread after a rollback."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from langgraph_rollback import (
    BaseRollbackSaver,
    InvalidConfigError,
    ToolRegistry,
    rollback,
)
from langgraph_rollback.batteries.files import file_tools
from langgraph_rollback.viz import atimeline, timeline
from tests.batteries.test_files import agent

CFG: Any = {"configurable": {"thread_id": "viz"}}


def run_and_roll_back(
    saver: BaseRollbackSaver, registry: ToolRegistry, root: Path
) -> Any:
    tools = file_tools(root, registry=registry)
    graph = agent(
        saver,
        tools,
        [
            [("write_file", {"path": "a.txt", "content": "1"})],
            [("write_file", {"path": "b.txt", "content": "2"})],
        ],
    )
    graph.invoke({"messages": []}, CFG, durability="sync")
    # Back to just before the second tool step: b.txt is undone, a.txt stays.
    target = next(
        s
        for s in graph.get_state_history(CFG)
        if s.next == ("tools",) and len(s.values["messages"]) == 3
    )
    assert rollback(graph, CFG, to=target).ok
    return target


def test_timeline_after_a_rollback(
    saver: BaseRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    target = run_and_roll_back(saver, registry, tmp_path / "ws")
    picture = timeline(saver, CFG)
    head = picture.checkpoints[-1]
    assert head.checkpoint_id == picture.head_id
    assert head.copy_of == target.config["configurable"]["checkpoint_id"]
    on_path = [c for c in picture.checkpoints if c.on_path]
    # The path runs through the target; what came after it is abandoned.
    assert target.config["configurable"]["checkpoint_id"] in {
        c.checkpoint_id for c in on_path
    }
    effects = {
        e.args["path"]: (c.on_path, e.status.value)
        for c in picture.checkpoints
        for e in c.effects
    }
    assert effects == {"a.txt": (True, "applied"), "b.txt": (True, "compensated")}

    text = str(picture)
    assert "write_file#1: in the world" in text
    assert "write_file#2: undone" in text
    assert f"restored copy of #{picture.index(head.copy_of)}, head" in text

    svg = ET.fromstring(picture._repr_svg_())
    labels = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "write_file #1" in labels and "write_file #2" in labels
    assert any(label.startswith("restored #") for label in labels)
    assert len(list(svg.iter("{http://www.w3.org/2000/svg}polygon"))) == 1


async def test_atimeline(tmp_path: Path, registry: ToolRegistry) -> None:
    from langgraph_rollback import AsyncSqliteRollbackSaver

    async with AsyncSqliteRollbackSaver.from_conn_string(
        str(tmp_path / "a.sqlite"), registry=registry
    ) as saver:
        tools = file_tools(tmp_path / "ws", registry=registry)
        graph = agent(
            saver, tools, [[("write_file", {"path": "a.txt", "content": "1"})]]
        )
        await graph.ainvoke({"messages": []}, CFG, durability="sync")
        picture = await atimeline(saver, CFG)
    assert [e.tool for c in picture.checkpoints for e in c.effects] == ["write_file"]
    assert all(c.on_path for c in picture.checkpoints)


def test_timeline_needs_a_thread(saver: BaseRollbackSaver) -> None:
    with pytest.raises(InvalidConfigError, match="thread_id"):
        timeline(saver, {"configurable": {}})
