"""Planning reads the thread's head once: every kind of target on a thread
with no checkpoints, and a head that moved between `plan_rollback` and
`rollback`, with the files the tools wrote and the lock table checked."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from langgraph_rollback import (
    CheckpointNotFoundError,
    SqliteRollbackSaver,
    before_node,
    default_registry,
    plan_rollback,
    rollback,
    run_start,
)
from tests.support import targets_app
from tests.support.targets_app import ALL_FILES

EMPTY = {"configurable": {"thread_id": "empty"}}
FULL = {"configurable": {"thread_id": "t"}}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    world = tmp_path / "app"
    world.mkdir()
    monkeypatch.setenv("TARGETS_APP_DIR", str(world))
    db = tmp_path / "agent.sqlite"
    with SqliteRollbackSaver.from_conn_string(str(db)) as saver:
        graph = targets_app.builder.compile(checkpointer=saver)
        targets_app.run_twice(graph, "t")
        yield graph, saver, world, db


def _files(world: Path) -> list[str]:
    return sorted(p.name for p in world.iterdir())


def _locks(db: Path) -> list[Any]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT thread_id FROM lgrb_locks").fetchall()


def _checkpoint(graph: Any, saver: Any) -> str:
    return str(graph.get_state(FULL).config["configurable"]["checkpoint_id"])


TARGETS: dict[str, Callable[[Any, Any], Any]] = {
    "checkpoint id": _checkpoint,
    "first": lambda graph, saver: "first",
    "run_start": lambda graph, saver: run_start(),
    "run_start(r1)": lambda graph, saver: run_start("r1"),
    "before_node": lambda graph, saver: before_node("finish"),
    "effect id": lambda graph, saver: saver.list_effects(FULL)[0].id,
    "tool_call_id": lambda graph, saver: "call-2",
}


@pytest.mark.parametrize("name", list(TARGETS))
def test_a_thread_with_no_checkpoints_has_no_target_of_any_kind(
    name: str, app: Any
) -> None:
    graph, saver, world, db = app
    to = TARGETS[name](graph, saver)
    with pytest.raises(CheckpointNotFoundError):
        plan_rollback(graph, EMPTY, to=to, registry=default_registry)
    with pytest.raises(CheckpointNotFoundError):
        rollback(graph, EMPTY, to=to, registry=default_registry)
    assert _files(world) == ALL_FILES
    assert _locks(db) == []


def test_a_rollback_walks_from_the_head_it_finds_not_the_one_planned(
    app: Any,
) -> None:
    """A third run after the plan: the rollback undoes it too."""
    graph, _, world, db = app
    plan = plan_rollback(graph, FULL, to=run_start("r2"), registry=default_registry)
    planned = sorted(step.effect.args["name"] for step in plan.to_undo)
    assert planned == [f for f in ALL_FILES if f.endswith("-2.txt")]
    config = {"configurable": {"thread_id": "t", "run_id": "r3"}}
    graph.invoke({"run": 3, "messages": []}, config, durability="sync")
    assert len(_files(world)) == len(ALL_FILES) + 4
    report = rollback(graph, FULL, to=run_start("r2"), registry=default_registry)
    assert report.ok, str(report)
    assert _files(world) == [f for f in ALL_FILES if f.endswith("-1.txt")]
    assert _locks(db) == []
