"""A run that dies after a committed call, under `"async"` or `"exit"` durability.

`python -m tests.support.crash_under_async_durability KIND WHERE WORLD MODE DURABILITY`:
KIND is "sqlite" (WHERE a file) or "postgres" (WHERE a URL), WORLD the
directory of the `World` the tools act on. The graph asks a human
(`interrupt()`), then runs `prepare` and `publish`, whose declared call posts.

- MODE "start" runs up to the question (durability "sync").
- MODE "crash" answers it under DURABILITY and SIGKILLs the process once the
  call in `publish` has landed and its outcome is committed. Under "async"
  the checkpoints written after the resumed step lag behind the run (their
  `put` waits, as on a busy disk, which "async" allows); under "exit"
  LangGraph writes none before the run ends.
- MODE "resume" answers the question again (or continues), under DURABILITY.
"""

from __future__ import annotations

import operator
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from langgraph_rollback import BaseRollbackSaver, ToolRegistry, reversible
from langgraph_rollback.core.store import FaultPoint
from tests.support.stores import open_saver
from tests.support.world import World

THREAD: Any = {"configurable": {"thread_id": "async-crash"}}


class State(TypedDict, total=False):
    done: Annotated[list[str], operator.add]


def build(saver: BaseRollbackSaver, world: World) -> Any:
    def unpublish(effect: Any) -> None:
        world.log("inverse", "post", effect=effect.id)

    @reversible(undo=unpublish, registry=saver.registry)
    def post(text: str) -> str:
        world.log("forward", "post", text=text, pid=os.getpid())
        return f"posted {text}"

    builder = StateGraph(State)
    builder.add_node("ask", lambda state: {"done": [interrupt("publish?")]})
    builder.add_node("prepare", lambda state: {"done": ["prepared"]})
    builder.add_node("publish", lambda state: {"done": [post("hello")]})
    builder.add_edge(START, "ask")
    builder.add_edge("ask", "prepare")
    builder.add_edge("prepare", "publish")
    builder.add_edge("publish", END)
    return builder.compile(checkpointer=saver)


def lag_checkpoints(saver: BaseRollbackSaver) -> None:
    """Hold back every checkpoint this process writes, as a slow disk would."""
    put = saver.put
    never = threading.Event()

    def slow_put(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        never.wait(60)
        return put(config, checkpoint, metadata, versions)

    saver.put = slow_put  # type: ignore[method-assign]


def die_once_the_outcome_is_committed(point: FaultPoint, effect_id: str | None) -> None:
    if point is FaultPoint.AFTER_OUTCOME:
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    kind, where, world_dir, mode, durability = sys.argv[1:6]
    world = World(Path(world_dir))
    with open_saver(kind, where, ToolRegistry()) as saver:
        graph = build(saver, world)
        if mode == "start":
            graph.invoke({"done": []}, THREAD, durability="sync")
            return
        if mode == "crash":
            if durability == "async":
                lag_checkpoints(saver)
            saver.probe = die_once_the_outcome_is_committed
        pending = graph.get_state(THREAD).interrupts
        command = Command(resume="yes") if pending else None
        out = graph.invoke(command, THREAD, durability=durability)
        world.log("result", "resume", done=out["done"])


if __name__ == "__main__":
    main()
