"""A graph whose declared tool (with `observe`) acts, then its process dies.

`python -m tests.support.die_after_the_call_lands KIND WHERE WORLD`: KIND is
"sqlite" (WHERE a file) or "postgres" (WHERE a URL). The `publish` tool writes
its file into the `World` at WORLD, then, when `DIE_AFTER_CALL=1`, SIGKILLs
its own process: the call took effect, its outcome (the result) was never
saved. The parent resumes the thread with `build()` in its own process.
"""

from __future__ import annotations

import operator
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from langgraph_rollback import BaseRollbackSaver, Effect, ToolRegistry, reversible
from tests.support.stores import open_saver
from tests.support.world import World

THREAD: Any = {"configurable": {"thread_id": "published"}}


class State(TypedDict, total=False):
    done: Annotated[list[Any], operator.add]


def build(saver: BaseRollbackSaver, world: World) -> Any:
    def read(name: str) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    def unpublish(effect: Effect) -> str:
        world.log("inverse", "publish", effect=effect.id)
        world.path(effect.args["name"]).unlink()
        return f"unpublished {effect.args['name']}"

    @reversible(undo=unpublish, observe=read, registry=saver.registry)
    def publish(name: str) -> str:
        world.log("forward", "publish", name=name, pid=os.getpid())
        world.path(name).write_text("published")
        if os.environ.get("DIE_AFTER_CALL") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return f"published {name} as #7"

    builder = StateGraph(State)
    builder.add_node("act", lambda state: {"done": [publish("post.txt")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


def main() -> None:
    kind, where, world_dir = sys.argv[1:4]
    with open_saver(kind, where, ToolRegistry()) as saver:
        graph = build(saver, World(Path(world_dir)))
        graph.invoke({"done": []}, THREAD, durability="sync")


if __name__ == "__main__":
    main()
