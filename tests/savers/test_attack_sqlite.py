"""Adversarial checks of the SQLite savers: a write the database refuses."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langgraph_rollback import BaseRollbackSaver, ToolRegistry, reversible
from tests.support.world import World

ARM = """
CREATE TABLE IF NOT EXISTS arm (x);
CREATE TRIGGER IF NOT EXISTS refuse_writes BEFORE INSERT ON writes
    WHEN EXISTS (SELECT 1 FROM arm)
    BEGIN SELECT RAISE(ABORT, 'the disk is full (armed by the test)'); END;
"""


@pytest.mark.parametrize("saver_kind", ["sqlite", "aio_sqlite"])
def test_a_refused_task_write_keeps_the_outcome(
    saver: BaseRollbackSaver, registry: ToolRegistry, world: World, tmp_path: Path
) -> None:
    db = tmp_path / "ledger.sqlite"

    def outside(text: str) -> None:
        with sqlite3.connect(db) as conn:
            conn.executescript(text)

    @reversible(undo=lambda effect: None, registry=registry)
    @tool
    def act(name: str) -> str:
        """Act once, then make the task's own write fail."""
        world.log("forward", "act", name=name)
        outside("INSERT INTO arm VALUES (1);")
        return name

    def model(state: MessagesState) -> dict[str, Any]:
        if state["messages"]:
            return {}
        call = {"name": "act", "args": {"name": "a"}, "id": "c1"}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([act]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "t"}}
    saver.list_effects(config)  # creates the tables
    outside(ARM)
    with pytest.raises(sqlite3.IntegrityError, match="disk is full"):
        graph.invoke({"messages": []}, config, durability="sync")
    outside("DELETE FROM arm;")
    assert [e.status.value for e in saver.list_effects(config)] == ["applied"]
    graph.invoke(None, config, durability="sync")
    assert world.count("forward", "act") == 1
