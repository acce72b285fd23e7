"""Adversarial checks of the targets vocabulary; the world (files) is checked."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from langgraph_rollback import (
    BaseRollbackSaver,
    CheckpointNotFoundError,
    RollbackError,
    before_node,
    default_registry,
    rollback,
    run_start,
)
from langgraph_rollback.core.voice import Voice
from tests.support import targets_app
from tests.support.targets_app import ALL_FILES

CONFIG = {"configurable": {"thread_id": "t"}}


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "app"
    directory.mkdir()
    monkeypatch.setenv("TARGETS_APP_DIR", str(directory))
    return directory


def run_twice(graph: Any, durability: str) -> None:
    for n in (1, 2):
        config = {"configurable": {"thread_id": "t", "run_id": f"r{n}"}}
        graph.invoke({"run": n, "messages": []}, config, durability=durability)


def test_first_under_durability_exit_undoes_everything(
    saver: BaseRollbackSaver, world: Path
) -> None:
    """README: 'first' goes back to the thread's start: everything is undone."""
    graph = targets_app.builder.compile(checkpointer=saver)
    run_twice(graph, "exit")
    assert files(world) == ALL_FILES
    report = rollback(graph, CONFIG, to="first", registry=default_registry)
    assert report.ok, str(report)
    assert files(world) == [], str(report)


def test_the_fix_for_an_exit_run_start_error_works(
    saver: BaseRollbackSaver, world: Path
) -> None:
    """run_start('r1') under "exit" says: Fix: roll back to='first'. Doing
    what the fix says must undo run r1."""
    graph = targets_app.builder.compile(checkpointer=saver)
    run_twice(graph, "exit")
    with pytest.raises(CheckpointNotFoundError, match="to='first'"):
        rollback(graph, CONFIG, to="run_start:r1", registry=default_registry)
    rollback(graph, CONFIG, to="first", registry=default_registry)
    run1 = [f for f in ALL_FILES if f.endswith("-1.txt")]
    assert not set(run1) & set(files(world))


def test_run_start_after_a_command_input_undoes_only_that_run(
    saver: BaseRollbackSaver, world: Path
) -> None:
    """A turn started with `Command(update=..., goto=...)` (how a run resumes a
    thread at a chosen node, e.g. the Agent Server's `command` runs) is a run
    of its own: rolling back to its start leaves the run before it alone."""
    graph = targets_app.builder.compile(checkpointer=saver)
    first = {"configurable": {"thread_id": "t", "run_id": "r1"}}
    graph.invoke({"run": 1, "messages": []}, first, durability="sync")
    second = {"configurable": {"thread_id": "t", "run_id": "r2"}}
    graph.invoke(Command(update={"run": 2}, goto="plan"), second, durability="sync")
    assert files(world) == ALL_FILES
    report = rollback(graph, CONFIG, to=run_start(), registry=default_registry)
    assert report.ok, str(report)
    assert files(world) == [f for f in ALL_FILES if f.endswith("-1.txt")]


def test_first_after_pruning_does_not_claim_nothing_is_left(
    saver: BaseRollbackSaver, world: Path
) -> None:
    """After `prune(keep_latest)` the thread can only go back to its head, but
    its eight effects are still out in the world: the report must not say
    there was nothing left to undo without naming them."""
    graph = targets_app.builder.compile(checkpointer=saver)
    run_twice(graph, "sync")
    saver.prune(["t"], strategy="keep_latest")
    report = rollback(graph, CONFIG, to="first", registry=default_registry)
    assert files(world) == ALL_FILES
    text = str(report)
    named = [f for f in ALL_FILES if f in text]
    assert named == ALL_FILES, text


class Notes(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def graph_with_subgraph(saver: BaseRollbackSaver) -> Any:
    def inner(state: Notes) -> Notes:
        targets_app.target_note("inner.txt")
        return {"log": ["inner"]}

    sub = StateGraph(Notes)
    sub.add_node("inner", inner)
    sub.add_edge(START, "inner")
    sub.add_edge("inner", END)
    builder = StateGraph(Notes)
    builder.add_node("sub", sub.compile())
    builder.add_edge(START, "sub")
    builder.add_edge("sub", END)
    return builder.compile(checkpointer=saver)


def test_a_subgraph_checkpoint_id_is_not_called_unknown(
    saver: BaseRollbackSaver, world: Path
) -> None:
    """A subgraph's checkpoint id, given as text (as the CLI takes it), exists
    in the thread: the error must not say no thread has it."""
    graph = graph_with_subgraph(saver)
    graph.invoke({"log": []}, CONFIG, durability="sync")
    effect = saver.list_effects(CONFIG)[0]
    assert effect.checkpoint_ns.startswith("sub:")
    with pytest.raises(RollbackError) as info:
        rollback(graph, CONFIG, to=effect.checkpoint_id, registry=default_registry)
    assert "no thread has" not in str(info.value), str(info.value)
    assert "subgraph" in str(info.value), str(info.value)
    assert files(world) == ["inner.txt"]


def test_before_node_of_a_subgraph_node_says_it_is_in_a_subgraph(
    saver: BaseRollbackSaver, world: Path
) -> None:
    graph = graph_with_subgraph(saver)
    graph.invoke({"log": []}, CONFIG, durability="sync")
    with pytest.raises(RollbackError) as info:
        rollback(graph, CONFIG, to=before_node("inner"), registry=default_registry)
    assert "subgraph" in str(info.value) or "'sub'" in str(info.value), str(info.value)
    assert files(world) == ["inner.txt"]


def test_an_effect_id_of_another_thread_names_that_thread(
    saver: BaseRollbackSaver, world: Path
) -> None:
    graph = targets_app.builder.compile(checkpointer=saver)
    run_twice(graph, "sync")
    other = {"configurable": {"thread_id": "u", "run_id": "r9"}}
    graph.invoke({"run": 9, "messages": []}, other, durability="sync")
    (elsewhere,) = [
        e for e in saver.list_effects(other) if e.args["name"] == "plan-9.txt"
    ]
    with pytest.raises(CheckpointNotFoundError) as info:
        rollback(graph, CONFIG, to=elsewhere.id, registry=default_registry)
    assert "'u'" in str(info.value), str(info.value)
    assert len(files(world)) == 12


@pytest.mark.parametrize("to", ["before_node:", "run_start:r9", "first:x"])
def test_errors_for_the_http_voice_do_not_name_cli_options(
    saver: BaseRollbackSaver, world: Path, to: str
) -> None:
    """`voice=Voice.HTTP` (for the server's routes) must speak JSON fields,
    not `--to` options of the command line."""
    graph = targets_app.builder.compile(checkpointer=saver)
    run_twice(graph, "exit")
    with pytest.raises(RollbackError) as info:
        rollback(graph, CONFIG, to=to, registry=default_registry, voice=Voice.HTTP)
    text = str(info.value)
    assert "--to" not in text and "langgraph-rollback" not in text, text
    assert "to=" not in text, text
