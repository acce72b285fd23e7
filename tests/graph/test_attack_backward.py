"""Adversarial tests of the backward path: rollback, its lock and its report.

Each test is one probe a hostile or careless user could make; it checks the
world (files, the `World` call log), not only the ledger. Probes that hold are
plain tests; the defects they found are strict xfails.
"""

from __future__ import annotations

import asyncio
import json
import operator
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from langgraph_rollback import (
    BaseRollbackSaver,
    Effect,
    EffectInFlightError,
    EffectStatus,
    InvalidConfigError,
    NotAnAncestorError,
    RollbackError,
    RollbackInProgressError,
    RollbackNode,
    ToolRegistry,
    arollback,
    reversible,
    rollback,
)
from tests.support.backward_worker import CONFIG, build, open_saver
from tests.support.tools import build_tools
from tests.support.waiting import DEADLINE_S, wait_for
from tests.support.world import World

REPO = Path(__file__).resolve().parents[2]


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


class Stop(BaseException):
    """Stands in for the process dying in the middle of an inverse."""


def cfg(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def one_node(saver: BaseRollbackSaver, fn: Any, name: str = "act") -> Any:
    builder = StateGraph(Log)
    builder.add_node(name, fn)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder.compile(checkpointer=saver)


def inverse_counts(world: World) -> Counter[str]:
    return Counter(call["effect"] for call in world.calls("inverse"))


def creator(
    world: World, registry: ToolRegistry, undo: Any, *, observe: bool = False
) -> Any:
    """A declared tool that creates a file, undone by `undo`."""

    def read(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    @reversible(undo=undo, observe=read if observe else None, registry=registry)
    def create(name: str) -> str:
        world.log("forward", "create", name=name)
        world.path(name).write_text("made")
        return name

    return create


def cut_off_inverse(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> Effect:
    """The one effect of a graph whose inverse was cut off: it stays `compensating`."""

    def undo(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        raise Stop

    create = creator(world, registry, undo)
    graph = one_node(saver, lambda s: {"log": [create("f.txt")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    with pytest.raises(Stop):
        rollback(graph, cfg(), to="first")
    (effect,) = saver.list_effects(cfg())
    assert effect.status is EffectStatus.COMPENSATING
    return effect


# --- resolve_effect, then roll back ------------------------------------------------


@pytest.mark.parametrize("value", ["false", "no"])
def test_resolve_compensated_of_the_wrong_type_is_refused(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, value: Any
) -> None:
    effect = cut_off_inverse(saver, world, registry)
    with pytest.raises(InvalidConfigError, match="compensated"):
        saver.resolve_effect(cfg(), effect.id, compensated=value)
    assert saver.get_effect(cfg(), effect.id).status is EffectStatus.COMPENSATING
    assert world.listing() == {"f.txt": "made"}


@pytest.mark.timeout(60)
def test_resolving_a_running_inverse_does_not_start_it_twice(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    release, started = threading.Event(), threading.Event()

    def slow_delete(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        if not started.is_set():
            started.set()
            release.wait(DEADLINE_S)
        world.path(effect.args["name"]).unlink(missing_ok=True)
        return "deleted"

    create = creator(world, registry, slow_delete)
    graph = one_node(saver, lambda s: {"log": [create("f.txt")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    (effect,) = saver.list_effects(cfg())
    try:
        first = rollback(graph, cfg(), to="first", inverse_timeout=0.2)
        assert first.status == "failed", str(first)
        # The rollback stopped waiting; its inverse's thread may not have run
        # yet on a loaded machine: wait until it is inside the inverse.
        assert started.wait(DEADLINE_S), "the abandoned inverse never started"
        # A careless operator answers while the abandoned inverse still runs.
        with pytest.raises(EffectInFlightError, match="Fix: wait for it to end"):
            saver.resolve_effect(cfg(), effect.id, compensated=False)
        assert saver.get_effect(cfg(), effect.id).status is EffectStatus.COMPENSATING
        second = rollback(graph, cfg(), to="first", inverse_timeout=0.2)
        assert not second.ok, str(second)
        assert world.count("inverse") == 1, str(second)
    finally:
        release.set()
    wait_for(
        lambda: (
            saver.get_effect(cfg(), effect.id).status is not EffectStatus.COMPENSATING
        ),
        "the abandoned inverse's outcome to be recorded",
    )


# --- skip= --------------------------------------------------------------------------


def tool_node_graph(saver: BaseRollbackSaver, tools: Any) -> Any:
    """A model node that asks for two files, then a ToolNode that makes them."""

    def model(state: MessagesState) -> dict[str, Any]:
        calls = [
            {"name": "make_file", "args": {"name": "keep.txt"}, "id": "call-keep"},
            {"name": "make_file", "args": {"name": "drop.txt"}, "id": "call-drop"},
        ]
        return {"messages": [AIMessage("", tool_calls=calls, id="ai-1")]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([tools.make_file]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=saver)


def test_skip_by_a_tool_call_id_keeps_that_effect_or_refuses(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = tool_node_graph(saver, build_tools(world, registry))
    graph.invoke({"messages": []}, cfg(), durability="sync")
    assert world.listing() == {"keep.txt": "made", "drop.txt": "made"}
    report = rollback(graph, cfg(), to="first", skip=["call-keep"])
    assert report.ok, str(report)
    assert world.listing() == {"keep.txt": "made"}, str(report)
    assert [(s.effect.tool_call_id, s.reason) for s in report.skipped] == [
        ("call-keep", "skipped (skip=)")
    ]


def test_skip_ids_of_another_thread_touch_nothing_there(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def act(state: Log, config: RunnableConfig) -> Log:
        thread = config["configurable"]["thread_id"]
        tools.write_file(f"{thread}.txt", thread)
        return {"log": [thread]}

    graph = one_node(saver, act)
    for thread in ("t1", "t2"):
        graph.invoke({"log": []}, cfg(thread), durability="sync")
    others = [e.id for e in saver.list_effects(cfg("t2"))]
    # Ids that name nothing on the thread are refused: a mistyped one would
    # let the effect meant to stay be undone.
    with pytest.raises(InvalidConfigError, match="no effect id or tool call id"):
        rollback(graph, cfg("t1"), to="first", skip=others)
    assert world.listing() == {"t1.txt": "t1", "t2.txt": "t2"}
    assert world.count("inverse") == 0
    assert graph.get_state(cfg("t1")).values == {"log": ["t1"]}
    assert [e.status for e in saver.list_effects(cfg("t2"))] == [EffectStatus.APPLIED]
    assert graph.get_state(cfg("t2")).values == {"log": ["t2"]}


def test_skipping_an_effect_inside_a_git_step_keeps_it(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, tmp_path: Any
) -> None:
    from langgraph_rollback.batteries.git import GitWorkspace

    root = tmp_path / "tree"
    root.mkdir()
    (root / "app.py").write_text("v1\n")
    workspace = GitWorkspace(root, registry=registry)

    def read(name: str, **_: Any) -> str | None:
        path = root / name
        return path.read_text() if path.exists() else None

    def remove_note(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        (root / effect.args["name"]).unlink()
        return f"deleted {effect.args['name']}"

    @reversible(undo=remove_note, observe=read, registry=registry)
    def write_note(name: str, content: str) -> str:
        (root / name).write_text(content)
        return name

    @workspace.step
    def edit(state: Log) -> Log:
        (root / "app.py").write_text("v2\n")
        write_note("NOTES.md", "keep me")
        return {"log": ["edit"]}

    graph = one_node(saver, edit, "edit")
    graph.invoke({"log": []}, cfg(), durability="sync")
    note = next(e for e in saver.list_effects(cfg()) if e.tool == "write_note")
    step = next(e for e in saver.list_effects(cfg()) if e.id == note.inside)
    # The step's inverse restores the whole tree, the note included: refused.
    with pytest.raises(InvalidConfigError, match=f"skip the container too.*{step.id}"):
        rollback(graph, cfg(), to="first", skip=[note.id])
    assert (root / "NOTES.md").read_text() == "keep me"
    assert (root / "app.py").read_text() == "v2\n"
    assert world.count("inverse") == 0
    # Skipping the step too keeps all it did.
    report = rollback(graph, cfg(), to="first", skip=[note.id, step.id])
    assert report.ok, str(report)
    assert {s.effect.id for s in report.skipped} == {note.id, step.id}
    assert (root / "NOTES.md").read_text() == "keep me"
    assert (root / "app.py").read_text() == "v2\n"


# --- inverses that fail ------------------------------------------------------------


def test_inverse_that_acted_in_part_then_raised_resumes_on_a_second_rollback(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    def read(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    def restore(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        path = world.path(effect.args["name"])
        if world.flag("half-restore"):
            path.write_text("v1-half")  # acted in part, then the disk filled up
            raise OSError("No space left on device")
        path.write_text(effect.before)
        return f"restored {effect.args['name']}"

    @reversible(undo=restore, observe=read, registry=registry)
    def write(name: str, content: str) -> str:
        world.path(name).write_text(content)
        return name

    world.path("cfg.txt").write_text("v1")
    graph = one_node(saver, lambda s: {"log": [write("cfg.txt", "v2")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    target = next(
        s for s in graph.get_state_history(cfg()) if s.next == ("act",)
    ).config
    first = rollback(graph, cfg(), to=target)
    assert first.status == "failed" and not first.ok, str(first)
    assert world.listing() == {"cfg.txt": "v1-half"}
    # "failed: ... rolling back again continues" (README).
    second = rollback(graph, cfg(), to=target)
    assert second.ok, str(second)
    assert [s.description for s in second.undone] == [
        "restored cfg.txt (undo of write); run again over what an earlier "
        "inverse left ('v1-half')"
    ]
    assert world.listing() == {"cfg.txt": "v1"}
    assert world.count("inverse") == 2


def test_on_failure_continue_with_two_failures_reports_both_and_resumes(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    def delete(effect: Effect) -> str:
        name = effect.args["name"]
        world.log("inverse", effect.tool, effect=effect.id, name=name)
        if name != "b.txt" and world.flag(f"fail-{name}"):
            raise ConnectionError(f"service down for {name}")
        world.path(name).unlink()
        return f"deleted {name}"

    create = creator(world, registry, delete)

    def act(state: Log) -> Log:
        for name in ("a.txt", "b.txt", "c.txt"):
            create(name)
        return {"log": ["act"]}

    graph = one_node(saver, act)
    graph.invoke({"log": []}, cfg(), durability="sync")
    head = graph.get_state(cfg()).config
    first = rollback(graph, cfg(), to="first", on_failure="continue")
    assert first.status == "failed" and not first.ok, str(first)
    assert [f.effect.args["name"] for f in first.failures] == ["c.txt", "a.txt"]
    assert [u.effect.args["name"] for u in first.undone] == ["b.txt"]
    assert world.listing() == {"a.txt": "made", "c.txt": "made"}
    assert graph.get_state(cfg()).config == head  # not restored
    with pytest.raises(RollbackError, match=r"c\.txt"):
        first.raise_for_status()
    statuses = {e.args["name"]: e.status for e in saver.list_effects(cfg())}
    assert statuses == {
        "a.txt": EffectStatus.COMPENSATION_FAILED,
        "b.txt": EffectStatus.COMPENSATED,
        "c.txt": EffectStatus.COMPENSATION_FAILED,
    }
    second = rollback(graph, cfg(), to="first")
    assert second.ok, str(second)
    assert [e.args["name"] for e in second.already_compensated] == ["b.txt"]
    assert world.listing() == {}
    names = Counter(call["name"] for call in world.calls("inverse"))
    assert names == {"a.txt": 2, "b.txt": 1, "c.txt": 2}
    assert graph.get_state(cfg()).values.get("log") in (None, [])


def test_report_lists_match_the_ledger_and_the_world(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def act(state: Log) -> Log:
        tools.write_file("mine.txt", "agent")
        tools.write_file("theirs.txt", "agent")
        tools.send_email.invoke({"to": "boss@example.com", "body": "done"})
        tools.write_file("late.txt", "agent")
        return {"log": ["act"]}

    graph = one_node(saver, act)
    graph.invoke({"log": []}, cfg(), durability="sync")
    world.path("theirs.txt").write_text("edited by a human")
    report = rollback(graph, cfg(), to="first", on_conflict="skip")
    assert report.status == "completed", str(report)
    by_name = {e.args.get("name", e.tool): e for e in saver.list_effects(cfg())}
    undone = {s.effect.id for s in report.undone}
    assert undone == {by_name["mine.txt"].id, by_name["late.txt"].id}
    assert [s.effect.id for s in report.conflicts] == [by_name["theirs.txt"].id]
    assert [s.effect.id for s in report.skipped] == [by_name["send_email"].id]
    for effect in by_name.values():
        expected = EffectStatus.COMPENSATED if effect.id in undone else None
        assert effect.status is (expected or EffectStatus.APPLIED), effect
    assert set(inverse_counts(world)) == undone
    assert world.listing() == {"theirs.txt": "edited by a human"}
    text = str(report)
    assert "theirs.txt" in text and "send_email" in text and "late.txt" in text
    message = report.to_message()
    assert message.additional_kwargs["rollback"]["status"] == "completed"
    assert "theirs.txt" in str(message.content)


# --- other processes ----------------------------------------------------------------

PROCESS_KINDS = ["sqlite", "postgres"]


def store_of(kind: str, tmp_path: Any, request: pytest.FixtureRequest) -> str:
    if kind == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "shared.sqlite")


def worker(store: str, world: World, mode: str, observe: bool) -> Any:
    """A child process running `mode`; its output goes to `out(world, mode)`."""
    args = [sys.executable, "-m", "tests.support.backward_worker"]
    args += [store, str(world.root), mode, "1" if observe else "0"]
    with (world.root / f"{mode}.out").open("w") as fh:
        return subprocess.Popen(args, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)


def out(world: World, mode: str) -> str:
    return (world.root / f"{mode}.out").read_text()


def marker(world: World, name: str) -> bool:
    return (world.root / name).exists()


def kill(proc: Any) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(DEADLINE_S)


def ran_graph(store: str, world: World, *, observe: bool) -> None:
    """Run the worker's graph to its end, in this process."""
    with open_saver(store) as saver:
        build(saver, world, observe=observe).invoke({"log": []}, CONFIG)
    assert world.listing() == {"a.txt": "made", "b.txt": "made"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("kind", "observe"),
    [("sqlite", True), ("sqlite", False), ("postgres", True), ("postgres", False)],
)
def test_a_rollback_in_another_process_refuses_a_second_and_killed_is_continued(
    kind: str,
    observe: bool,
    world: World,
    tmp_path: Any,
    request: pytest.FixtureRequest,
) -> None:
    store = store_of(kind, tmp_path, request)
    ran_graph(store, world, observe=observe)
    other = worker(store, world, "rollback", observe=observe)
    with open_saver(store) as saver:
        graph = build(saver, world, observe=observe)
        try:
            wait_for(
                lambda: marker(world, "inverse-acted") or other.poll() is not None,
                "the other process to be inside b.txt's inverse",
            )
            assert other.poll() is None, out(world, "rollback")
            with pytest.raises(RollbackInProgressError):
                rollback(graph, CONFIG, to="first")
            assert world.count("inverse") == 1
        finally:
            kill(other)  # b.txt's inverse acted; its outcome was never recorded
        assert world.listing() == {"a.txt": "made"}
        report = rollback(graph, CONFIG, to="first")
        if not observe:
            assert report.status == "incomplete", str(report)
            assert world.listing() == {}  # a.txt undone, b.txt left unresolved
            (b,) = [e for e in saver.list_effects(CONFIG) if e.args["name"] == "b.txt"]
            assert b.status is EffectStatus.COMPENSATING
            saver.resolve_effect(CONFIG, b.id, compensated=True)
            report = rollback(graph, CONFIG, to="first")
        assert report.ok, str(report)
        assert graph.get_state(CONFIG).values.get("log") in (None, [])
    assert world.listing() == {}
    assert set(inverse_counts(world).values()) == {1}


@pytest.mark.timeout(120)
def test_the_lock_of_a_killed_unreaped_rollback_is_cleared(
    world: World, tmp_path: Any
) -> None:
    store = str(tmp_path / "shared.sqlite")
    ran_graph(store, world, observe=True)
    other = worker(store, world, "rollback", observe=True)
    try:
        wait_for(
            lambda: marker(world, "inverse-acted") or other.poll() is not None,
            "the other process to be inside an inverse",
        )
        os.kill(other.pid, signal.SIGKILL)  # dead, but its parent has not reaped it
        wait_for(lambda: _state(other.pid) == "Z", "the killed process to be a zombie")
        with open_saver(store) as saver:
            report = rollback(build(saver, world, observe=True), CONFIG, to="first")
        assert report.ok, str(report)
    finally:
        kill(other)
    assert world.listing() == {}


def _state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", PROCESS_KINDS)
def test_a_rollback_while_another_process_is_in_a_call_is_refused(
    kind: str, world: World, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    store = store_of(kind, tmp_path, request)
    run = worker(store, world, "run-hold-call", observe=False)
    try:
        wait_for(
            lambda: marker(world, "call-started") or run.poll() is not None,
            "the run to be inside b.txt's call",
        )
        assert run.poll() is None, out(world, "run-hold-call")
        with open_saver(store) as saver:
            graph = build(saver, world, observe=False)
            with pytest.raises(EffectInFlightError):
                rollback(graph, CONFIG, to="first")
            assert world.count("inverse") == 0
            (world.root / "go").write_text("go")
            run.wait(DEADLINE_S)
            assert run.returncode == 0, out(world, "run-hold-call")
            assert rollback(graph, CONFIG, to="first").ok
    finally:
        kill(run)
    assert world.listing() == {}
    assert set(inverse_counts(world).values()) == {1}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["sqlite"])
def test_a_rollback_while_another_process_runs_the_thread_is_rolled_back_again(
    kind: str, world: World, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """README "Rolling back": a rollback is safe only while no run of the
    thread is active. A run live in another process between its calls is not
    detected; once it has ended, rolling back again undoes what it did since,
    and nothing twice."""
    store = store_of(kind, tmp_path, request)
    run = worker(store, world, "run-hold-between", observe=True)
    try:
        wait_for(
            lambda: marker(world, "second-started") or run.poll() is not None,
            "the run to be between its two calls",
        )
        assert run.poll() is None, out(world, "run-hold-between")
        with open_saver(store) as saver:
            graph = build(saver, world, observe=True)
            report = rollback(graph, CONFIG, to="first")
            assert report.ok, str(report)
            assert world.listing() == {}
            (world.root / "go").write_text("go")
            run.wait(DEADLINE_S)
            assert run.returncode == 0, out(world, "run-hold-between")
            # The run went on acting; its next checkpoint hides the restored head.
            assert world.listing() == {"b.txt": "made"}
            assert graph.get_state(CONFIG).values["log"] == ["a.txt", "b.txt"]
            again = rollback(graph, CONFIG, to="first")
            assert again.ok, str(again)
            assert [s.effect.args["name"] for s in again.undone] == ["b.txt"]
            assert [e.args["name"] for e in again.already_compensated] == ["a.txt"]
            assert graph.get_state(CONFIG).values.get("log") in (None, [])
    finally:
        kill(run)
    assert world.listing() == {}
    assert set(inverse_counts(world).values()) == {1}


# --- RollbackNode ---------------------------------------------------------------------


class Loop(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    log: Annotated[list[str], operator.add]
    rollback_report: dict[str, Any] | None


def node_graph(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, node: Any
) -> Any:
    """work writes two files, then `node` (a RollbackNode) runs."""
    tools = build_tools(world, registry)

    def work(state: Loop) -> Loop:
        tools.write_file("one.txt", "1")
        tools.write_file("two.txt", "2")
        return {"log": ["work"]}

    builder = StateGraph(Loop)
    builder.add_node("work", work)
    builder.add_node("undo", node)
    builder.add_edge(START, "work")
    builder.add_edge("work", "undo")
    return builder.compile(checkpointer=saver)


WRITTEN = {"one.txt": "1", "two.txt": "2"}


@pytest.mark.parametrize("saver_kind", ["memory", "sqlite"])
@pytest.mark.parametrize(
    "answer",
    ["no", "", 1, "approve please", {"approve": "false"}, {"approve": 1}],
    ids=repr,
)
def test_an_approval_answer_that_is_not_yes_undoes_nothing(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, answer: Any
) -> None:
    graph = node_graph(saver, world, registry, RollbackNode(approval=True))
    paused = graph.invoke({"log": []}, cfg(), durability="sync")
    assert paused["__interrupt__"]
    final = graph.invoke(Command(resume=answer), cfg(), durability="sync")
    assert final["rollback_report"]["status"] == "rejected"
    assert world.listing() == WRITTEN
    assert world.count("inverse") == 0
    assert final["log"] == ["work"]


def test_approval_answered_after_an_outside_rollback_runs_no_inverse_twice(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = node_graph(saver, world, registry, RollbackNode(approval=True))
    assert graph.invoke({"log": []}, cfg(), durability="sync")["__interrupt__"]
    outside = rollback(graph, cfg(), to="first")
    assert outside.ok, str(outside)
    assert world.listing() == {}
    old = set(inverse_counts(world))
    # The interrupt is gone with the restored head: the answer starts a new
    # run from the thread's start (LangGraph's semantics), which asks again.
    again = graph.invoke(Command(resume=True), cfg(), durability="sync")
    (question,) = again["__interrupt__"]
    assert not {e["id"] for e in question.value["effects"]} & old
    final = graph.invoke(Command(resume=True), cfg(), durability="sync")
    assert final["rollback_report"]["status"] == "completed"
    assert world.listing() == {}
    assert len(inverse_counts(world)) == 4
    assert set(inverse_counts(world).values()) == {1}


@pytest.mark.parametrize(
    "to",
    [
        lambda state, config: None,
        lambda state, config: 42,
        lambda state, config: "no such checkpoint",
        lambda state, config: {"configurable": {"thread_id": "other"}},
    ],
    ids=["none", "int", "unknown-id", "other-thread-config"],
)
def test_a_target_function_returning_nonsense_is_a_typed_error(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, to: Any
) -> None:
    graph = node_graph(saver, world, registry, RollbackNode(to=to))
    with pytest.raises(RollbackError):
        graph.invoke({"log": []}, cfg(), durability="sync")
    assert world.listing() == WRITTEN
    assert world.count("inverse") == 0


def test_a_goto_function_that_raises_then_a_resume_finishes_without_rerunning(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    class RouteError(Exception):
        pass

    def goto(report: Any) -> str:
        if world.flag("goto-fails"):
            raise RouteError("router bug")
        return END

    graph = node_graph(saver, world, registry, RollbackNode(goto=goto))
    with pytest.raises(RouteError):
        graph.invoke({"log": []}, cfg(), durability="sync")
    assert world.listing() == {}  # the inverses ran before the router failed
    final = graph.invoke(None, cfg(), durability="sync")
    assert final["rollback_report"]["ok"], final["rollback_report"]
    assert final["log"] == []
    assert world.listing() == {}
    assert set(inverse_counts(world).values()) == {1}


# --- targets, twice ------------------------------------------------------------------


def two_runs(saver: BaseRollbackSaver, world: World, registry: ToolRegistry) -> Any:
    tools = build_tools(world, registry)

    def act(state: Log) -> Log:
        n = len(state.get("log") or []) + 1
        tools.write_file(f"run-{n}.txt", str(n))
        return {"log": [f"run {n}"]}

    graph = one_node(saver, act)
    graph.invoke({"log": []}, cfg(), durability="sync")
    graph.invoke({"log": []}, cfg(), durability="sync")
    assert world.listing() == {"run-1.txt": "1", "run-2.txt": "2"}
    return graph


def test_rolling_back_to_run_start_twice_never_undoes_twice(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = two_runs(saver, world, registry)
    first = rollback(graph, cfg(), to="run_start")
    assert first.ok, str(first)
    assert world.listing() == {"run-1.txt": "1"}
    assert graph.get_state(cfg()).values["log"] == ["run 1"]
    second = rollback(graph, cfg(), to="run_start")
    assert second.ok, str(second)
    # Whatever "the latest run" now means, the report and the world agree.
    undone = {s.effect.args["name"] for s in second.undone}
    assert undone <= {"run-1.txt"}
    assert world.listing() == ({} if undone else {"run-1.txt": "1"})
    assert set(inverse_counts(world).values()) == {1}


def test_an_effect_of_an_abandoned_fork_is_not_a_target(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = two_runs(saver, world, registry)
    # Fork: from the end of run 1, run again; run 2 is an abandoned branch.
    end_of_one = next(
        s
        for s in graph.get_state_history(cfg())
        if s.values.get("log") == ["run 1"] and not s.next
    )
    (orphan,) = [e for e in saver.list_effects(cfg()) if e.args["name"] == "run-2.txt"]
    graph.invoke({"log": []}, end_of_one.config, durability="sync")
    head = graph.get_state(cfg()).config
    with pytest.raises(NotAnAncestorError):
        rollback(graph, cfg(), to=orphan.id)
    assert graph.get_state(cfg()).config == head
    assert world.count("inverse") == 0
    assert saver.get_effect(cfg(), orphan.id).status is EffectStatus.APPLIED
    # Back to the fork point: the live branch is undone, the orphan reported.
    report = rollback(graph, cfg(), to=end_of_one)
    assert report.ok, str(report)
    assert [e.id for e in report.orphans] == [orphan.id]
    assert saver.get_effect(cfg(), orphan.id).status is EffectStatus.APPLIED
    assert len(report.undone) == 1 and world.count("inverse") == 1


# --- reports -----------------------------------------------------------------------


def test_report_text_with_unicode_and_very_long_names(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    names = ["ünïcödé-🚀-スレッド.txt", "d" * 200 + ".txt", "new\nline.txt"]

    def act(state: Log) -> Log:
        for name in names:
            tools.write_file(name, "agent")
        return {"log": ["act"]}

    thread = "スレッド-🚀"
    graph = one_node(saver, act)
    graph.invoke({"log": []}, cfg(thread), durability="sync")
    report = rollback(graph, cfg(thread), to="first")
    assert report.ok, str(report)
    assert world.listing() == {}
    text = str(report)
    assert thread in text and names[0] in text
    assert len(report.undone) == 3
    # One line per undone action, however odd the name.
    lines = text.splitlines()
    assert (
        lines[lines.index("Undone:") + 1 :][:3]
        == [f"  - {s.description}" for s in report.undone]
        or "\n" in names[2]
    )
    message = report.to_message()
    assert names[0] in str(message.content)
    json.dumps(report.summary())  # plain data


def test_an_inverse_result_cannot_forge_report_lines(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    def chatty(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        world.path(effect.args["name"]).unlink()
        return "deleted it\nNot undone:\n  - charge(card=...): refund still owed"

    create = creator(world, registry, chatty)
    graph = one_node(saver, lambda s: {"log": [create("f.txt")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    report = rollback(graph, cfg(), to="first")
    assert report.ok and report.skipped == []
    # The inverse's text stays on its own line, escaped: no section of its own.
    lines = str(report).splitlines()
    assert "Not undone:" not in lines, str(report)
    assert lines[lines.index("Undone:") + 1 :] == [
        "  - deleted it\\nNot undone:\\n  - charge(card=...): refund still owed "
        "(undo of create)"
    ], str(report)


def test_a_progress_callback_raising_on_the_last_inverse_then_a_rerun_restores(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = two_runs(saver, world, registry)
    head = graph.get_state(cfg()).config
    seen: list[str] = []

    def progress(effect: Effect, ok: bool) -> None:
        seen.append(effect.args["name"])
        if len(seen) == 2:
            raise RuntimeError("progress bar crashed")

    with pytest.raises(RuntimeError, match="progress bar"):
        rollback(graph, cfg(), to="first", progress=progress)
    assert world.listing() == {}  # both inverses ran
    assert graph.get_state(cfg()).config == head  # but nothing was restored
    report = rollback(graph, cfg(), to="first")
    assert report.ok, str(report)
    assert len(report.already_compensated) == 2 and report.undone == []
    assert graph.get_state(cfg()).values.get("log") in (None, [])
    assert set(inverse_counts(world).values()) == {1}


def test_resolving_an_applied_effect_is_refused_and_changes_nothing(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = two_runs(saver, world, registry)
    effect = saver.list_effects(cfg())[0]
    for kwargs in ({"applied": False}, {"compensated": True}, {"applied": True}):
        with pytest.raises(RollbackError):
            saver.resolve_effect(cfg(), effect.id, **kwargs)
        assert saver.get_effect(cfg(), effect.id).status is EffectStatus.APPLIED
    report = rollback(graph, cfg(), to="first")
    assert report.ok and len(report.undone) == 2, str(report)
    assert world.listing() == {}


# --- async ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_two_concurrent_arollbacks_run_each_inverse_once(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    entered, answered = asyncio.Event(), asyncio.Event()

    async def slow_delete(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        entered.set()
        await asyncio.wait_for(answered.wait(), DEADLINE_S)  # until the second ends
        world.path(effect.args["name"]).unlink()
        return "deleted"

    create = creator(world, registry, slow_delete, observe=True)
    graph = one_node(saver, lambda s: {"log": [create("f.txt")]})
    await graph.ainvoke({"log": []}, cfg(), durability="sync")

    async def second() -> Any:
        await asyncio.wait_for(entered.wait(), DEADLINE_S)
        try:
            return await arollback(graph, cfg(), to="first")
        finally:
            answered.set()

    results = await asyncio.gather(
        arollback(graph, cfg(), to="first"), second(), return_exceptions=True
    )
    assert results[0].ok, results
    assert isinstance(results[1], RollbackInProgressError), results
    assert world.count("inverse") == 1
    assert world.listing() == {}


@pytest.mark.timeout(60)
async def test_an_async_inverse_past_its_timeout_is_not_started_again(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    release = asyncio.Event()

    async def slow_delete(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        await asyncio.wait_for(release.wait(), DEADLINE_S)
        world.path(effect.args["name"]).unlink()
        return "deleted"

    create = creator(world, registry, slow_delete)
    graph = one_node(saver, lambda s: {"log": [create("f.txt")]})
    await graph.ainvoke({"log": []}, cfg(), durability="sync")
    first = await arollback(graph, cfg(), to="first", inverse_timeout=0.1)
    assert first.status == "failed", str(first)
    second = await arollback(graph, cfg(), to="first", inverse_timeout=0.1)
    assert not second.ok, str(second)
    assert world.count("inverse") == 1
    release.set()
    (effect,) = await saver.alist_effects(cfg())
    for _ in range(int(DEADLINE_S / 0.01)):
        effect = await saver.aget_effect(cfg(), effect.id)
        if effect.status is EffectStatus.COMPENSATED:
            break
        await asyncio.sleep(0.01)
    assert effect.status is EffectStatus.COMPENSATED
    third = await arollback(graph, cfg(), to="first")
    assert third.ok, str(third)
    assert world.count("inverse") == 1
    assert world.listing() == {}
