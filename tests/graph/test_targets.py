"""Every kind of rollback target, through Python on every saver and through the
CLI on SQLite and PostgreSQL; the world (the files the tools wrote) is checked."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from langgraph_rollback import (
    AmbiguousTargetError,
    BaseRollbackSaver,
    CheckpointNotFoundError,
    InvalidTargetError,
    before_node,
    default_registry,
    plan_rollback,
    rollback,
    run_start,
)
from tests.support import targets_app
from tests.support.targets_app import ALL_FILES

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"configurable": {"thread_id": "t"}}


def keep(*runs: int, but: tuple[str, ...] = ()) -> list[str]:
    """The files of these runs, less `but`: what a rollback must leave."""
    kept = [f for f in ALL_FILES if int(f.split("-")[1][0]) in runs]
    return sorted(f for f in kept if f not in but)


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def app(
    saver: BaseRollbackSaver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Path]:
    world = tmp_path / "app"
    world.mkdir()
    monkeypatch.setenv("TARGETS_APP_DIR", str(world))
    graph = targets_app.builder.compile(checkpointer=saver)
    targets_app.run_twice(graph, "t")
    assert files(world) == ALL_FILES
    return graph, world


def effect_of(saver: BaseRollbackSaver, name: str) -> Any:
    (found,) = [e for e in saver.list_effects(CONFIG) if e.args["name"] == name]
    return found


def checkpoint_before(graph: Any, node: str, run: int) -> str:
    """The id of the checkpoint from which `node` ran in run `run`."""
    for snapshot in graph.get_state_history(CONFIG):
        if snapshot.next == (node,) and snapshot.values.get("run") == run:
            return str(snapshot.config["configurable"]["checkpoint_id"])
    raise AssertionError(f"{node} never ran in run {run}")


TARGETS: dict[str, tuple[Callable[[Any, Any], Any], list[str]]] = {
    "first": (lambda graph, saver: "first", []),
    "First": (lambda graph, saver: "First", []),
    "run_start": (lambda graph, saver: run_start(), keep(1)),
    "RUN-START": (lambda graph, saver: "RUN-START", keep(1)),
    "run_start(r1)": (lambda graph, saver: run_start("r1"), []),
    "run_start:r2": (lambda graph, saver: "run_start:r2", keep(1)),
    "before_node(TOOLS)": (
        lambda graph, saver: before_node("TOOLS"),
        keep(1, 2, but=("tool-2.txt", "echo-2.txt", "finish-2.txt")),
    ),
    "before_node:finish": (
        lambda graph, saver: "before_node:finish",
        keep(1, 2, but=("finish-2.txt",)),
    ),
    "checkpoint id": (
        lambda graph, saver: checkpoint_before(graph, "finish", 1),
        keep(1, but=("finish-1.txt",)),
    ),
    "snapshot": (
        lambda graph, saver: next(
            s for s in graph.get_state_history(CONFIG) if s.next == ("finish",)
        ),
        keep(1, 2, but=("finish-2.txt",)),
    ),
    "effect id": (lambda graph, saver: effect_of(saver, "plan-2.txt").id, keep(1)),
    "Effect": (
        lambda graph, saver: effect_of(saver, "finish-1.txt"),
        keep(1, but=("finish-1.txt",)),
    ),
    "tool_call_id": (
        lambda graph, saver: "call-2",
        keep(1, 2, but=("tool-2.txt", "echo-2.txt", "finish-2.txt")),
    ),
}


@pytest.mark.parametrize("name", list(TARGETS))
def test_each_target_undoes_exactly_what_lies_after_it(
    name: str, saver: BaseRollbackSaver, app: tuple[Any, Path]
) -> None:
    graph, world = app
    make, expected = TARGETS[name]
    to = make(graph, saver)
    plan = plan_rollback(graph, CONFIG, to=to, registry=default_registry)
    undo = {step.effect.args["name"] for step in plan.to_undo}
    assert sorted(set(ALL_FILES) - undo) == expected
    report = rollback(graph, CONFIG, to=to, registry=default_registry)
    assert report.ok, str(report)
    assert files(world) == expected
    # The target a relative name (run_start, before_node) resolved to, once
    # more: nothing is left to undo there.
    target = report.target_checkpoint_id
    again = rollback(graph, CONFIG, to=target, registry=default_registry)
    assert again.status == "nothing_to_undo", str(again)
    assert files(world) == expected


def test_a_tool_call_id_used_twice_is_ambiguous_and_changes_nothing(
    saver: BaseRollbackSaver, app: tuple[Any, Path]
) -> None:
    graph, world = app
    with pytest.raises(AmbiguousTargetError) as info:
        rollback(graph, CONFIG, to="call-same", registry=default_registry)
    echoes = {effect_of(saver, f"echo-{n}.txt").id for n in (1, 2)}
    assert set(info.value.candidates) == echoes
    assert all(e in str(info.value) for e in echoes)
    assert files(world) == ALL_FILES


@pytest.mark.parametrize(
    ("to", "error", "says"),
    [
        ("last", CheckpointNotFoundError, "the word is run_start"),
        ("no-such-id", CheckpointNotFoundError, "no checkpoint, effect or tool call"),
        ("run_start:r9", CheckpointNotFoundError, "run 'r9'"),
        (before_node("nope"), CheckpointNotFoundError, "ran node 'nope'"),
        ("first:x", InvalidTargetError, "takes no value"),
        ("", InvalidTargetError, "is empty"),
    ],
)
def test_a_target_that_names_nothing_is_a_typed_error_and_changes_nothing(
    to: Any, error: type[Exception], says: str, app: tuple[Any, Path]
) -> None:
    graph, world = app
    with pytest.raises(error, match=says) as info:
        rollback(graph, CONFIG, to=to, registry=default_registry)
    assert "Fix: " in str(info.value) and "--to" not in str(info.value)
    assert files(world) == ALL_FILES


# --- the same vocabulary on the command line ---------------------------------------


def cli(*args: str, world: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "langgraph_rollback", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TARGETS_APP_DIR": str(world)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Path, Any]:
    """A database the app ran twice on, its world, and the saver's class."""
    world = tmp_path / "app"
    world.mkdir()
    monkeypatch.setenv("TARGETS_APP_DIR", str(world))
    if request.param == "sqlite":
        from langgraph_rollback import SqliteRollbackSaver

        db = str(tmp_path / "agent.sqlite")
        with SqliteRollbackSaver.from_conn_string(db) as saver:
            targets_app.run_twice(targets_app.builder.compile(checkpointer=saver), "t")
            ids = _ids(saver)
        return db, world, ids
    from langgraph_rollback.postgres import PostgresRollbackSaver

    db = request.getfixturevalue("pg_url")
    with PostgresRollbackSaver.from_conn_string(db) as saver:
        saver.setup()
        targets_app.run_twice(targets_app.builder.compile(checkpointer=saver), "t")
        ids = _ids(saver)
    return db, world, ids


def _ids(saver: BaseRollbackSaver) -> dict[str, str]:
    found = {e.args["name"]: e.id for e in saver.list_effects(CONFIG)}
    graph = targets_app.builder.compile(checkpointer=saver)
    found["checkpoint before finish 1"] = checkpoint_before(graph, "finish", 1)
    return found


CLI_TARGETS: list[tuple[Callable[[dict[str, str]], str], list[str]]] = [
    (lambda ids: "first", []),
    (lambda ids: "FIRST", []),
    (lambda ids: "run_start", keep(1)),
    (lambda ids: "run_start:r1", []),
    (
        lambda ids: "before_node:Tools",
        keep(1, 2, but=("tool-2.txt", "echo-2.txt", "finish-2.txt")),
    ),
    (lambda ids: ids["checkpoint before finish 1"], keep(1, but=("finish-1.txt",))),
    (lambda ids: ids["plan-2.txt"], keep(1)),
    (
        lambda ids: "call-2",
        keep(1, 2, but=("tool-2.txt", "echo-2.txt", "finish-2.txt")),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(CLI_TARGETS)))
def test_cli_to_takes_the_same_targets(case: int, store: tuple[str, Path, Any]) -> None:
    db, world, ids = store
    make, expected = CLI_TARGETS[case]
    graph = ["--graph", "tests.support.targets_app:builder"]
    to = make(ids)
    done = cli(
        "rollback", db, "--thread", "t", "--to", to, *graph, "--yes", world=world
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert files(world) == expected


@pytest.mark.slow
@pytest.mark.parametrize(
    ("to", "says"),
    [
        ("last", "the word is run_start"),
        ("call-same", "names 2 effects"),
        ("run_start:r9", "run 'r9'"),
        ("before_node:nope", "ran node 'nope'"),
    ],
)
def test_cli_target_errors_name_cli_options_and_change_nothing(
    to: str, says: str, store: tuple[str, Path, Any]
) -> None:
    db, world, _ = store
    graph = ["--graph", "tests.support.targets_app:builder"]
    done = cli(
        "rollback", db, "--thread", "t", "--to", to, *graph, "--yes", world=world
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert "to=" not in done.stderr and "get_state_history" not in done.stderr
    assert files(world) == ALL_FILES
