"""Run a graph compiled with the Agent Server's own checkpointer adapter, no server.

`python -m tests.support.adapter_run DB WORLD` prints, as JSON, the adapter's
type, the ledger after two runs of a declared call (the second resumes the
first's interrupt), and the rollback report. Run in a subprocess: importing
`langgraph_api` reads the server's environment at import.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, TypedDict

os.environ.setdefault("REDIS_URI", "fake")
os.environ.setdefault("DATABASE_URI", ":memory:")
os.environ.setdefault("MIGRATIONS_PATH", "__inmem")

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from langgraph_api._checkpointer._adapter import (
    CheckpointerCapabilities,
    _CustomCheckpointerAdapter,
)

from langgraph_rollback import (
    AsyncSqliteRollbackSaver,
    Effect,
    arollback,
    reversible,
)


class State(TypedDict, total=False):
    answer: str


async def main(db: str, world: Path) -> dict[str, Any]:
    def delete(effect: Effect) -> None:
        Path(effect.args["path"]).unlink()

    @reversible(undo=delete)
    async def write_file(path: str) -> str:
        with (world / "calls.log").open("a") as fh:
            fh.write(path + "\n")
        await asyncio.to_thread(Path(path).write_text, "x")
        return path

    async def act(state: State) -> State:
        await write_file(str(world / "a.txt"))
        return {"answer": interrupt("go on?")}

    builder = StateGraph(State)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    config: Any = {"configurable": {"thread_id": "t"}}
    async with AsyncSqliteRollbackSaver.from_conn_string(db) as saver:
        caps = CheckpointerCapabilities.from_type(type(saver))
        adapter = _CustomCheckpointerAdapter(saver, caps)
        graph = builder.compile(checkpointer=adapter)
        await graph.ainvoke({}, config, durability="sync")
        await graph.ainvoke(Command(resume="yes"), config, durability="sync")
        effects = await saver.alist_effects(config)
        report = await arollback(graph, config, to="first")
    return {
        "adapter": f"{type(adapter).__module__}.{type(adapter).__qualname__}",
        "effects": [(e.tool, e.status.value) for e in effects],
        "report": report.status,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], Path(sys.argv[2])))))
