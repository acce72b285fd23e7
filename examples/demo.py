"""Demo: an agent finishes "successfully" and leaves the world wrong; roll it back.

Run with `make demo`. No LLM and no network: a scripted "model" node emits
tool calls, a `ToolNode` runs declared tools that change real files in a
workspace directory (`.demo/`, or `$DEMO_WORKSPACE`), and a
`SqliteRollbackSaver` keeps the checkpoints and the ledger of side effects in
`agent.sqlite` there. After the run, a check finds the config broken; the demo
prints the ledger, plans a rollback to before the agent acted, runs it, and
prints the report and the workspace. Then the agent runs once more, on thread
`oncall`, and is left as it left the world: the demo prints the command-line
session that finds and undoes it, and keeps the database for it.

The command line imports this module's graph: `--graph examples.demo:builder`
(importing it declares the tools; the demo itself runs only as a script).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langgraph_rollback import (
    Effect,
    SqliteRollbackSaver,
    irreversible,
    plan_rollback,
    reversible,
    rollback,
)


def workspace() -> Path:
    """The directory the tools change: `$DEMO_WORKSPACE`, else `.demo`."""
    return Path(os.environ.get("DEMO_WORKSPACE", ".demo")).resolve()


def read_file(path: str, **_: Any) -> str | None:
    target = workspace() / path
    return target.read_text() if target.exists() else None


def restore_file(effect: Effect) -> str:
    target = workspace() / effect.args["path"]
    if effect.before is None:
        target.unlink(missing_ok=True)
        return f"deleted {effect.args['path']}"
    target.write_text(effect.before)
    return f"restored {effect.args['path']}"


@reversible(undo=restore_file, observe=read_file)
@tool
def write_file(path: str, content: str) -> str:
    """Write a text file in the workspace."""
    (workspace() / path).write_text(content)
    return f"wrote {len(content)} bytes to {path}"


@irreversible(reason="a sent message cannot be unsent")
@tool
def notify(to: str, text: str) -> str:
    """Send a message (appends to the outbox)."""
    with (workspace() / "outbox.txt").open("a") as fh:
        fh.write(f"to {to}: {text}\n")
    return f"sent to {to}"


SCRIPT = [
    [
        ("write_file", {"path": "notes.md", "content": "# Release\nport moved"}),
        ("write_file", {"path": "service.toml", "content": "port = 0\n"}),
    ],
    [("notify", {"to": "team@example.com", "text": "service.toml updated"})],
]


def model(state: MessagesState) -> dict[str, Any]:
    """A scripted model: one turn of tool calls per step, then done."""
    turn = sum(1 for m in state["messages"] if isinstance(m, AIMessage))
    if turn >= len(SCRIPT):
        return {"messages": [AIMessage("All done.")]}
    calls = [
        {"name": name, "args": args, "id": f"call-{turn}-{i}"}
        for i, (name, args) in enumerate(SCRIPT[turn])
    ]
    return {"messages": [AIMessage("", tool_calls=calls)]}


def route(state: MessagesState) -> str:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else END


# An agent that writes notes, edits the service config, then notifies.
builder = StateGraph(MessagesState)
builder.add_node("model", model)
builder.add_node("tools", ToolNode([write_file, notify]))
builder.add_edge(START, "model")
builder.add_conditional_edges("model", route, ["tools", END])
builder.add_edge("tools", "model")


def print_ledger(effects: list[Effect]) -> None:
    print(f"  {'seq':>3}  {'tool':<10} {'kind':<12} {'status':<11} args")
    for effect in reversed(effects):
        args = ", ".join(f"{k}={v!r}" for k, v in effect.args.items())
        print(
            f"  {effect.seq:>3}  {effect.tool:<10} {effect.kind.value:<12} "
            f"{effect.status.value:<11} {args[:56]}"
        )


def show_workspace(workdir: Path) -> dict[str, str]:
    files = {
        p.name: p.read_text()
        for p in sorted(workdir.iterdir())
        if p.is_file() and "sqlite" not in p.name
    }
    for name, content in files.items():
        print(f"  {name:<13} {content.strip()!r}")
    return files


FILES = ("notes.md", "service.toml", "outbox.txt")
ASK = {"messages": [HumanMessage("Move the service to the new port.")]}


def main() -> int:
    workdir = workspace()
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("agent.sqlite", "agent.sqlite-wal", "agent.sqlite-shm", *FILES):
        (workdir / name).unlink(missing_ok=True)  # each demo starts afresh
    (workdir / "service.toml").write_text("port = 8080\n")
    db = workdir / "agent.sqlite"
    config: Any = {"configurable": {"thread_id": "demo"}}
    with SqliteRollbackSaver.from_conn_string(str(db)) as saver:
        graph = builder.compile(checkpointer=saver)

        print("== The agent runs, and reports success")
        result = graph.invoke(ASK, config, durability="sync")
        print(f"  agent: {result['messages'][-1].content}")
        print("\n== But the world is wrong: port = 0 takes the service down")
        show_workspace(workdir)

        print("\n== The ledger: every side effect, recorded before it happened")
        print_ledger(saver.list_effects(config))

        history = list(graph.get_state_history(config))
        start = history[-2]  # the input applied, before the agent's first step
        print("\n== Plan (no side effects)")
        print(plan_rollback(graph, config, to=start))

        print("\n== Roll back")
        report = rollback(graph, config, to=start)
        print(report)

        print("\n== The world after the rollback")
        files = show_workspace(workdir)
        state = graph.get_state(config)
        print(f"  graph state: {[m.content for m in state.values['messages']]}")

        assert report.ok
        assert files["service.toml"] == "port = 8080\n"
        assert "notes.md" not in files
        assert files["outbox.txt"].count("\n") == 1  # sent, and reported as such
        print("\nOK: undone what could be undone; the report names what could not.")

        oncall: Any = {"configurable": {"thread_id": "oncall"}}
        graph.invoke(ASK, oncall, durability="sync")
    print_cli_session(db)
    return 0


def print_cli_session(db: Path) -> None:
    """The commands that find and undo the `oncall` run, ready to paste."""
    cli = Path(sys.executable).parent / "langgraph-rollback"
    prefix = ""
    if "DEMO_WORKSPACE" in os.environ:
        prefix = f"DEMO_WORKSPACE={shlex.quote(os.environ['DEMO_WORKSPACE'])} "
    here = Path.cwd()
    where = db.relative_to(here) if db.is_relative_to(here) else db
    command = shlex.quote(
        str(cli.relative_to(here) if cli.is_relative_to(here) else cli)
    )
    name = shlex.quote(str(where))
    graph = "--graph examples.demo:builder"
    print(
        f"\n== The agent ran again on thread 'oncall', and its work is left in place."
        f"\n   The database is kept: {db}"
        f"\n   Find and undo that run from the command line (from {here}):\n"
    )
    for line in (
        f"{command} threads {name}",
        f"{command} effects {name} --thread oncall",
        f"{command} checkpoints {name} --thread oncall",
        f"{prefix}{command} plan {name} --thread oncall --to first {graph}",
        f"{prefix}{command} rollback {name} --thread oncall --to first {graph} --yes",
    ):
        print(f"  {line}")


if __name__ == "__main__":
    sys.exit(main())
