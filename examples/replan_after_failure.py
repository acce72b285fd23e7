"""Replan after failure: undo the failed attempt, tell the planner, try again.

A plan-and-execute graph deploys a config change. The planner (a fake chat
model, so this runs offline) proposes steps; the executor performs them for
real: it writes files in a workspace and opens a ticket in a local SQLite
tracker. A checker validates the result. The first plan is wrong, the check
fails, and a `RollbackNode` undoes everything the run did (newest first),
restores the state to the start of the run, and hands its report to the
planner as a message. The second plan passes. Afterwards the world holds only
the second attempt's effects.

Run: `.venv/bin/python examples/replan_after_failure.py`
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command

from langgraph_rollback import (
    Effect,
    RollbackNode,
    SqliteRollbackSaver,
    ToolRegistry,
    reversible,
    run_start,
)


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    plan: list[dict[str, Any]]
    rollback_report: dict[str, Any] | None


def build(workdir: Path, registry: ToolRegistry, model: Any) -> StateGraph[Any]:
    """The plan-and-execute graph, acting on files and tickets under `workdir`."""
    tracker = workdir / "tracker.sqlite"
    with sqlite3.connect(tracker) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS tickets (id INTEGER PRIMARY KEY, "
            "title TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open')"
        )

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
    def write_file(path: str, content: str) -> str:
        """Write a file in the workspace."""
        (workdir / path).write_text(content)
        return f"wrote {path}"

    def close_ticket(effect: Effect) -> str:
        with sqlite3.connect(tracker) as db:
            db.execute(
                "UPDATE tickets SET status = 'cancelled' WHERE id = ?", (effect.result,)
            )
        return f"cancelled ticket #{effect.result}"

    @reversible(undo=close_ticket, kind="compensable", registry=registry)
    def open_ticket(title: str) -> int:
        """Open a ticket in the tracker; returns its id."""
        with sqlite3.connect(tracker) as db:
            cursor = db.execute("INSERT INTO tickets (title) VALUES (?)", (title,))
            return int(cursor.lastrowid or 0)

    tools = {"write_file": write_file, "open_ticket": open_ticket}

    def planner(state: State) -> State:
        reply = model.invoke(state["messages"])
        return {"messages": [reply], "plan": json.loads(reply.content)}

    def executor(state: State) -> State:
        for step in state["plan"]:
            tools[step["tool"]](**step["args"])
        return {}

    def checker(state: State) -> Command[Any]:
        config = read_file("service.toml") or ""
        if "replicas = 0" in config:
            return Command(
                update={
                    "messages": [
                        AIMessage("Check failed: replicas = 0 takes the service down.")
                    ]
                },
                goto="undo",
            )
        return Command(update={"messages": [AIMessage("Check passed.")]}, goto=END)

    builder = StateGraph(State)
    builder.add_node("planner", planner)
    builder.add_node("executor", executor)
    builder.add_node("checker", checker, destinations=("undo", END))
    builder.add_node(
        "undo", RollbackNode(to=run_start(), goto="planner", registry=registry)
    )
    builder.add_edge(START, "planner")
    builder.add_edge("planner", "executor")
    builder.add_edge("executor", "checker")
    return builder


def scripted_model() -> FakeMessagesListChatModel:
    """A planner that gets it wrong once, then right."""
    wrong = [
        {"tool": "open_ticket", "args": {"title": "Scale service to 0 replicas"}},
        {
            "tool": "write_file",
            "args": {"path": "service.toml", "content": "replicas = 0\n"},
        },
        {
            "tool": "write_file",
            "args": {"path": "CHANGELOG.md", "content": "- scaled to 0\n"},
        },
    ]
    right = [
        {"tool": "open_ticket", "args": {"title": "Scale service to 3 replicas"}},
        {
            "tool": "write_file",
            "args": {"path": "service.toml", "content": "replicas = 3\n"},
        },
    ]
    return FakeMessagesListChatModel(
        responses=[AIMessage(json.dumps(wrong)), AIMessage(json.dumps(right))]
    )


def run(
    workdir: Path,
) -> tuple[dict[str, Any], list[tuple[int, str, str]], dict[str, str]]:
    """Run the example in `workdir`; return the final state, tickets and files."""
    registry = ToolRegistry()
    (workdir / "service.toml").write_text("replicas = 2\n")
    model = scripted_model()
    with SqliteRollbackSaver.from_conn_string(
        str(workdir / "agent.sqlite"), registry=registry
    ) as saver:
        graph = build(workdir, registry, model).compile(checkpointer=saver)
        config: Any = {"configurable": {"thread_id": "deploy-1"}}
        final = graph.invoke(
            {"messages": [HumanMessage("Scale the service down for the weekend.")]},
            config,
            durability="sync",
        )
    with sqlite3.connect(workdir / "tracker.sqlite") as db:
        tickets = db.execute(
            "SELECT id, title, status FROM tickets ORDER BY id"
        ).fetchall()
    files = {
        p.name: p.read_text()
        for p in sorted(workdir.iterdir())
        if p.suffix in (".toml", ".md")
    }
    return final, tickets, files


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lgrb-replan-") as tmp:
        final, tickets, files = run(Path(tmp))
    print("Report the planner saw:\n")
    print(final["rollback_report"]["text"])
    print("\nTickets:", tickets)
    print("Files:  ", files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
