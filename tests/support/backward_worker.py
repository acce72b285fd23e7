"""A graph and a rollback run in another process, held open where the test says.

`python -m tests.support.backward_worker STORE WORLD MODE [OBSERVE]`, where STORE
is a SQLite path or a PostgreSQL URL and MODE one of:

- `run`: run the graph: `first` creates a.txt, `second` creates b.txt;
- `run-hold-between`: the same, but `second` waits for the world's `go` file
  before its call (no call in flight);
- `run-hold-call`: the same, but b.txt's call itself waits for `go` (a call in
  flight);
- `rollback`: roll back to `first`; each inverse deletes its file, writes the
  world's `inverse-acted` marker, then waits for `go`.

Waits end after `DEADLINE_S`, so a child the test forgot never hangs forever.
`OBSERVE` is `1` to declare `observe=` on the tool.
"""

from __future__ import annotations

import operator
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    BaseRollbackSaver,
    Effect,
    SqliteRollbackSaver,
    ToolRegistry,
    reversible,
    rollback,
)
from tests.support.waiting import DEADLINE_S
from tests.support.world import World


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def wait_go(world: World) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not (world.root / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def build(
    saver: BaseRollbackSaver,
    world: World,
    *,
    observe: bool,
    hold_inverse: bool = False,
    hold_call: bool = False,
    hold_between: bool = False,
) -> Any:
    """The graph on `saver`, declaring its tool in `saver.registry`."""
    registry = saver.registry

    def read(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    def delete(effect: Effect) -> str:
        name = effect.args["name"]
        world.log("inverse", "create", effect=effect.id, name=name)
        world.path(name).unlink(missing_ok=True)
        if hold_inverse:
            (world.root / "inverse-acted").write_text(name)
            wait_go(world)
        return f"deleted {name}"

    @reversible(undo=delete, observe=read if observe else None, registry=registry)
    def create(name: str) -> str:
        world.log("forward", "create", name=name)
        if hold_call:
            (world.root / "call-started").write_text(name)
            wait_go(world)
        world.path(name).write_text("made")
        return name

    def first(state: State) -> State:
        return {"log": [create("a.txt")]}

    def second(state: State) -> State:
        if hold_between:
            (world.root / "second-started").write_text("yes")
            wait_go(world)
        return {"log": [create("b.txt")]}

    builder = StateGraph(State)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile(checkpointer=saver)


@contextmanager
def open_saver(store: str) -> Iterator[BaseRollbackSaver]:
    """A sync saver on `store`, with a registry of its own."""
    registry = ToolRegistry()
    if store.startswith("postgres"):
        from langgraph_rollback.postgres import PostgresRollbackSaver

        with PostgresRollbackSaver.from_conn_string(store, registry=registry) as pg:
            pg.setup()
            yield pg
    else:
        with SqliteRollbackSaver.from_conn_string(store, registry=registry) as lite:
            yield lite


CONFIG: Any = {"configurable": {"thread_id": "t1"}}


def main() -> None:
    store, root, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    observe = len(sys.argv) > 4 and sys.argv[4] == "1"
    world = World(root)
    with open_saver(store) as saver:
        if mode.startswith("run"):
            graph = build(
                saver,
                world,
                observe=observe,
                hold_call=mode == "run-hold-call",
                hold_between=mode == "run-hold-between",
            )
            graph.invoke({"log": []}, CONFIG, durability="sync")
            print("ran")
        elif mode == "rollback":
            graph = build(saver, world, observe=observe, hold_inverse=True)
            print(rollback(graph, CONFIG, to="first").status)
        else:  # pragma: no cover
            raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
