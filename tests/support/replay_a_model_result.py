"""A declared tool returns a pydantic model; the node interrupts, then resumes.

`python -m tests.support.replay_a_model_result WHERE WORLD`: a SQLite file
and the `World`'s directory. Run by the parent with
`LANGGRAPH_STRICT_MSGPACK=true` (LangGraph's announced default), which
LangGraph reads at import. The node uses the result's attributes after the
`interrupt()`, so the resume needs the replayed result to be the model.
"""

from __future__ import annotations

import operator
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from pydantic import BaseModel

from langgraph_rollback import SqliteRollbackSaver, ToolRegistry, reversible
from tests.support.world import World

THREAD: Any = {"configurable": {"thread_id": "ticket"}}


class Ticket(BaseModel):
    number: int
    url: str


class State(TypedDict, total=False):
    done: Annotated[list[str], operator.add]


def main() -> None:
    where, world_dir = sys.argv[1:3]
    world = World(Path(world_dir))
    registry = ToolRegistry()

    @reversible(undo=lambda effect: None, registry=registry)
    def open_ticket(title: str) -> Ticket:
        world.log("forward", "open_ticket", title=title)
        return Ticket(number=7, url="https://tickets.example/7")

    def file_it(state: State) -> State:
        ticket = open_ticket("disk full")
        interrupt("notify the owner?")
        return {"done": [ticket.url]}

    builder = StateGraph(State)
    builder.add_node("file_it", file_it)
    builder.add_edge(START, "file_it")
    builder.add_edge("file_it", END)
    with SqliteRollbackSaver.from_conn_string(where, registry=registry) as saver:
        graph = builder.compile(checkpointer=saver)
        graph.invoke({"done": []}, THREAD, durability="sync")
        out = graph.invoke(Command(resume=True), THREAD, durability="sync")
        world.log("result", "resume", done=out["done"])


if __name__ == "__main__":
    main()
