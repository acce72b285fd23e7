"""A small graph run in a child process that kills itself mid-tool-call.

`python -m tests.support.crash_graph DB WORLD` runs the graph on a SQLite file; the
`charge` tool logs its call to the world, then SIGKILLs its own process: the
intent is committed, the outcome never is.
"""

from __future__ import annotations

import operator
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from langgraph_rollback import (
    BaseRollbackSaver,
    SqliteRollbackSaver,
    ToolRegistry,
    reversible,
)
from tests.support.world import World


class State(TypedDict, total=False):
    done: Annotated[list[str], operator.add]


def build(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> CompiledStateGraph[Any, Any, Any, Any]:
    @reversible(undo=lambda effect: None, registry=registry)
    def prepare(order: str) -> str:
        world.log("forward", "prepare", order=order)
        return f"prepared {order}"

    @reversible(undo=lambda effect: None, registry=registry)
    def charge(order: str, cents: int) -> str:
        world.log("forward", "charge", order=order)
        if os.environ.get("CRASH_DURING_CHARGE") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return f"charged {cents} for {order}"

    def act(state: State) -> State:
        return {"done": [prepare("o-1"), charge("o-1", 4200)]}

    builder = StateGraph(State)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


def main() -> None:
    db, root = sys.argv[1], Path(sys.argv[2])
    with SqliteRollbackSaver.from_conn_string(db) as saver:
        graph = build(saver, World(root), ToolRegistry())
        graph.invoke({"done": []}, {"configurable": {"thread_id": "crash"}})


if __name__ == "__main__":
    main()
