"""An async `observe=` in a sync plan or rollback runs the way an async inverse does."""

from __future__ import annotations

import asyncio
import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    Decision,
    Effect,
    InMemoryRollbackSaver,
    ToolRegistry,
    plan_rollback,
    reversible,
    rollback,
)


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


CONFIG: dict[str, Any] = {"configurable": {"thread_id": "t"}}


def _read(path: str) -> str | None:
    return Path(path).read_text() if Path(path).exists() else None


def test_sync_plan_and_rollback_await_an_async_observe(
    tmp_path: Path, registry: ToolRegistry
) -> None:
    async def read(path: str, **_: Any) -> str | None:
        return await asyncio.to_thread(_read, path)

    def delete(effect: Effect) -> None:
        Path(effect.args["path"]).unlink()

    @reversible(undo=delete, observe=read, registry=registry)
    async def write(path: str, content: str) -> str:
        await asyncio.to_thread(Path(path).write_text, content)
        return path

    target = tmp_path / "a.txt"

    async def act(state: Log) -> Log:
        return {"log": [await write(str(target), "a")]}

    builder = StateGraph(Log)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=InMemoryRollbackSaver(registry=registry))
    asyncio.run(graph.ainvoke({"log": []}, CONFIG, durability="sync"))
    first = list(graph.get_state_history(CONFIG))[-1]

    (step,) = plan_rollback(graph, CONFIG, to=first).steps
    assert step.decision is Decision.UNDO, step.reason
    assert step.current == "a"
    report = rollback(graph, CONFIG, to=first)
    assert report.status == "completed", str(report)
    assert not target.exists()
