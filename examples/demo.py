"""Demo: an agent-like graph acts on real files; the ledger records every action.

Run with `make demo`. No LLM and no network: a scripted "model" node emits
tool calls, a `ToolNode` runs declared tools that write real files in a
temporary directory, and a `SqliteRollbackSaver` stores the checkpoints and
the ledger in one SQLite file there. The demo then prints the ledger, and
shows that resuming a failed step does not repeat the actions that already
happened.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langgraph_rollback import (
    Effect,
    SqliteRollbackSaver,
    ToolRegistry,
    irreversible,
    reversible,
)


def build_graph(workdir: Path, registry: ToolRegistry) -> StateGraph[Any]:
    """Two planned steps: write notes and a config file, then notify someone."""
    outbox = workdir / "outbox.txt"
    attempts = {"notify": 0}

    def read_file(path: str, **_: Any) -> str | None:
        target = workdir / path
        return target.read_text() if target.exists() else None

    def restore_file(effect: Effect) -> str:
        target = workdir / effect.args["path"]
        if effect.before is None:
            target.unlink(missing_ok=True)
            return f"deleted {effect.args['path']}"
        target.write_text(effect.before)
        return f"restored {effect.args['path']}"

    @reversible(undo=restore_file, observe=read_file, registry=registry)
    @tool
    def write_file(path: str, content: str) -> str:
        """Write a text file in the workspace."""
        (workdir / path).write_text(content)
        return f"wrote {len(content)} bytes to {path}"

    @irreversible(reason="a sent message cannot be unsent", registry=registry)
    @tool
    def notify(to: str, text: str) -> str:
        """Send a message (appends to the outbox)."""
        attempts["notify"] += 1
        if attempts["notify"] == 1:
            raise ConnectionError("mail server unavailable")
        with outbox.open("a") as fh:
            fh.write(f"to {to}: {text}\n")
        return f"sent to {to}"

    script = [
        [
            ("write_file", {"path": "notes.md", "content": "# Notes\nship v2"}),
            ("write_file", {"path": "config.toml", "content": "version = 2\n"}),
        ],
        [("notify", {"to": "team@example.com", "text": "v2 config is live"})],
    ]

    def model(state: MessagesState) -> dict[str, Any]:
        turn = sum(1 for m in state["messages"] if isinstance(m, AIMessage))
        if turn >= len(script):
            return {"messages": [AIMessage("All done.")]}
        calls = [
            {"name": name, "args": args, "id": f"call-{turn}-{i}"}
            for i, (name, args) in enumerate(script[turn])
        ]
        return {"messages": [AIMessage("", tool_calls=calls)]}

    def route(state: MessagesState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([write_file, notify]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route, ["tools", END])
    builder.add_edge("tools", "model")
    return builder


def print_ledger(effects: list[Effect]) -> None:
    print(f"{'seq':>3}  {'tool':<10} {'kind':<12} {'status':<9} {'att':>3}  args")
    for effect in reversed(effects):
        args = ", ".join(f"{k}={v!r}" for k, v in effect.args.items())
        print(
            f"{effect.seq:>3}  {effect.tool:<10} {effect.kind.value:<12} "
            f"{effect.status.value:<9} {effect.attempt:>3}  {args[:60]}"
        )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lgrb-demo-") as tmp:
        workdir = Path(tmp)
        registry = ToolRegistry()
        db = workdir / "agent.sqlite"
        config: Any = {"configurable": {"thread_id": "demo"}}
        with SqliteRollbackSaver.from_conn_string(str(db), registry=registry) as saver:
            graph = build_graph(workdir, registry).compile(checkpointer=saver)
            print("== run 1: the agent writes two files, then notify fails")
            try:
                graph.invoke({"messages": []}, config)
            except ConnectionError as exc:
                print(f"   run failed: {exc}")
            print_ledger(saver.list_effects(config))

            print("\n== run 2: resume; done steps come from the ledger, not again")
            graph.invoke(None, config)
            effects = saver.list_effects(config)
            print_ledger(effects)

        files = sorted(p.name for p in workdir.iterdir() if p.suffix != ".sqlite")
        print(f"\nworkspace: {', '.join(f for f in files if 'sqlite' not in f)}")
        print(f"outbox:    {(workdir / 'outbox.txt').read_text().strip()}")
        writes = [e for e in effects if e.tool == "write_file"]
        assert len(writes) == 2 and all(e.attempt == 1 for e in writes)
        assert (workdir / "outbox.txt").read_text().count("\n") == 1
        print("\nOK: each action ran exactly once and is in the ledger.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
