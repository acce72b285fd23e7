"""Worker processes for the many-workers PostgreSQL test.

`python -m tests.support.pg_workers record URL THREAD COUNT`: run a graph on THREAD
that records COUNT effects (rows inserted in a shared `world_items` table).
`python -m tests.support.pg_workers rollback URL START_DIR THREAD...`: once set
up, create `ready-<pid>` in START_DIR and wait for START_DIR/go (the test
creates it when every worker is ready), then roll each THREAD back to its
first checkpoint, retrying while another process holds it. Every forward call and every inverse
is logged in `world_log`, in the same database, by the world itself.
"""

from __future__ import annotations

import operator
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from langgraph_rollback import (
    Effect,
    RollbackInProgressError,
    ToolRegistry,
    reversible,
    rollback,
)
from langgraph_rollback.postgres import PostgresRollbackSaver

PER_STEP = 10


class State(TypedDict, total=False):
    done: Annotated[list[str], operator.add]
    step: int


def world_setup(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS world_items (name TEXT PRIMARY KEY, thread TEXT)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS world_log (id BIGSERIAL PRIMARY KEY, "
            "kind TEXT, effect_id TEXT, name TEXT, detail TEXT, pid INTEGER)"
        )


def log(url: str, kind: str, effect_id: str, name: str, detail: str = "") -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO world_log (kind, effect_id, name, detail, pid) VALUES (%s, %s, %s, %s, %s)",
            (kind, effect_id, name, detail, os.getpid()),
        )


def build(saver: PostgresRollbackSaver, url: str, count: int) -> Any:
    def remove(effect: Effect) -> str:
        time.sleep(0.005)  # a real API call takes a while
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM world_items WHERE name = %s", (effect.args["name"],)
            )
        log(url, "inverse", effect.id, effect.args["name"])
        return f"removed {effect.args['name']}"

    @reversible(undo=remove, registry=saver.registry)
    def put_item(name: str, thread: str) -> str:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO world_items VALUES (%s, %s)", (name, thread))
        from langgraph_rollback import current_effect

        effect = current_effect()
        log(url, "forward", effect.id if effect else "", name)
        return name

    def act(state: State, config: RunnableConfig) -> Command[Any]:
        thread = config["configurable"]["thread_id"]
        step = state.get("step", 0)
        names = [
            put_item(f"{thread}-{i}", thread)
            for i in range(step * PER_STEP, min((step + 1) * PER_STEP, count))
        ]
        done = (step + 1) * PER_STEP >= count
        return Command(
            update={"done": names, "step": step + 1}, goto=END if done else "act"
        )

    builder = StateGraph(State)
    builder.add_node("act", act, destinations=("act", END))
    builder.add_edge(START, "act")
    return builder.compile(checkpointer=saver)


def main() -> None:
    role, url = sys.argv[1], sys.argv[2]
    with PostgresRollbackSaver.from_conn_string(url, registry=ToolRegistry()) as saver:
        if role == "record":
            thread, count = sys.argv[3], int(sys.argv[4])
            graph = build(saver, url, count)
            graph.invoke(
                {"done": []}, {"configurable": {"thread_id": thread}}, durability="sync"
            )
            return
        start_dir, threads = Path(sys.argv[3]), sys.argv[4:]
        graph = build(saver, url, 0)
        (start_dir / f"ready-{os.getpid()}").write_text("")
        wait_until = time.monotonic() + 120
        while not (start_dir / "go").exists():
            if time.monotonic() > wait_until:
                raise SystemExit("never told to start")
            time.sleep(0.005)
        for thread in threads:
            config: Any = {"configurable": {"thread_id": thread}}
            first = list(graph.get_state_history(config))[-1]
            deadline = time.time() + 60
            while True:
                try:
                    report = rollback(graph, config, to=first)
                except RollbackInProgressError:
                    log(url, "contended", "", thread)
                    if time.time() > deadline:
                        raise
                    time.sleep(0.02)
                    continue
                log(
                    url,
                    "report",
                    report.rollback_id,
                    thread,
                    f"{report.status}:{len(report.undone)}",
                )
                break


if __name__ == "__main__":
    main()
