"""A node that calls a declared tool with a `set` argument, then interrupts.

`python -m tests.support.tag_with_a_set_then_interrupt KIND WHERE WORLD MODE`:
KIND is "sqlite" (WHERE a file) or "postgres" (WHERE a URL), WORLD the
directory of the `World` the tool acts on. MODE "start" runs the graph up to
the `interrupt()`; "resume" resumes it with `Command(resume=True)`. The parent
runs each mode in its own process with its own `PYTHONHASHSEED`, so the two
processes iterate the set in different orders; each logs the order it saw.
"""

from __future__ import annotations

import operator
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from langgraph_rollback import BaseRollbackSaver, ToolRegistry, reversible
from tests.support.stores import open_saver
from tests.support.world import World

THREAD: Any = {"configurable": {"thread_id": "tagged"}}
LABELS = frozenset(
    {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
)


class State(TypedDict, total=False):
    done: Annotated[list[str], operator.add]


def build(saver: BaseRollbackSaver, world: World) -> Any:
    def untag(effect: Any) -> None:
        world.log("inverse", "tag_files", effect=effect.id)

    @reversible(undo=untag, registry=saver.registry)
    def tag_files(labels: set[str]) -> str:
        world.log("forward", "tag_files", order=list(labels))
        return f"tagged {len(labels)}"

    def label(state: State) -> State:
        result = tag_files(set(LABELS))
        interrupt("labels ok?")
        return {"done": [result]}

    builder = StateGraph(State)
    builder.add_node(label)
    builder.add_edge(START, "label")
    builder.add_edge("label", END)
    return builder.compile(checkpointer=saver)


def main() -> None:
    kind, where, world_dir, mode = sys.argv[1:5]
    world = World(Path(world_dir))
    world.log("probe", "set_order", mode=mode, order=list(set(LABELS)))
    with open_saver(kind, where, ToolRegistry()) as saver:
        graph = build(saver, world)
        if mode == "start":
            graph.invoke({"done": []}, THREAD, durability="sync")
        else:
            graph.invoke(Command(resume=True), THREAD, durability="sync")


if __name__ == "__main__":
    main()
