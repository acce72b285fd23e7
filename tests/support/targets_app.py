"""A two-run agent for the targets tests; the CLI loads it with
`--graph tests.support.targets_app:builder`.

Each run `n` (input `{"run": n}`) writes `plan-n.txt` in node `plan`, has a
model ask for two tool calls (`tool-n.txt` as `call-n`, `echo-n.txt` as
`call-same`, an id the model reuses every run) run by a `ToolNode`, then
writes `finish-n.txt` in node `finish`. Files go to the directory named by
`TARGETS_APP_DIR`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode

from langgraph_rollback import Effect, reversible

ALL_FILES = sorted(
    f"{kind}-{n}.txt" for n in (1, 2) for kind in ("echo", "finish", "plan", "tool")
)


def _dir() -> Path:
    return Path(os.environ["TARGETS_APP_DIR"])


class State(TypedDict, total=False):
    run: int
    messages: Annotated[list[Any], add_messages]


def _remove(effect: Effect) -> str:
    (_dir() / effect.args["name"]).unlink()
    return f"deleted {effect.args['name']}"


@reversible(undo=_remove)
@tool
def target_write(name: str) -> str:
    """Write the file `name`."""
    (_dir() / name).write_text(name)
    return name


@reversible(undo=_remove)
def target_note(name: str) -> str:
    (_dir() / name).write_text(name)
    return name


def _plan(state: State) -> dict[str, Any]:
    target_note(f"plan-{state['run']}.txt")
    return {}


def _model(state: State) -> dict[str, Any]:
    n = state["run"]
    calls = [
        {"name": "target_write", "args": {"name": f"tool-{n}.txt"}, "id": f"call-{n}"},
        {"name": "target_write", "args": {"name": f"echo-{n}.txt"}, "id": "call-same"},
    ]
    return {"messages": [AIMessage("", tool_calls=calls, id=f"ai-{n}")]}


def _finish(state: State) -> dict[str, Any]:
    target_note(f"finish-{state['run']}.txt")
    return {}


builder = StateGraph(State)
builder.add_node("plan", _plan)
builder.add_node("model", _model)
builder.add_node("tools", ToolNode([target_write]))
builder.add_node("finish", _finish)
builder.add_edge(START, "plan")
builder.add_edge("plan", "model")
builder.add_edge("model", "tools")
builder.add_edge("tools", "finish")
builder.add_edge("finish", END)


def run_twice(graph: Any, thread: str) -> None:
    """Run 1 and run 2 on `thread`, named `r1` and `r2`, every step stored."""
    for n in (1, 2):
        config = {"configurable": {"thread_id": thread, "run_id": f"r{n}"}}
        graph.invoke({"run": n, "messages": []}, config, durability="sync")
