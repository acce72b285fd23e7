"""Issue 16: inverses at most once, the right set undone, and an honest report.

Each test pins one bullet of the issue and checks the world (the targets'
state, how many times each inverse ran), on every saver.

Races are made deterministic, never left to luck: the window is held open
with events the test controls, inside an inverse or (for the lock race) in
`LockHolder.held`. Every wait has a deadline.
"""

from __future__ import annotations

import operator
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import StructuredTool, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

import langgraph_rollback
import langgraph_rollback.savers.base as saver_base
from langgraph_rollback import (
    AsyncSqliteRollbackSaver,
    BaseRollbackSaver,
    DuplicateToolError,
    Effect,
    EffectStatus,
    InvalidConfigError,
    Reversibility,
    RollbackError,
    SqliteRollbackSaver,
    ToolRegistry,
    arecord_tool_call,
    record_tool_call,
    reversible,
    rollback,
)
from langgraph_rollback.batteries.git import GitWorkspace
from tests.conftest import LoopThread
from tests.support.tools import build_tools
from tests.support.waiting import DEADLINE_S, wait_for
from tests.support.world import World


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


class Sub(TypedDict, total=False):
    seen: Annotated[list[str], operator.add]


class Stop(BaseException):
    """Stands in for the process dying in the middle of a call."""


def cfg(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def one_node(saver: BaseRollbackSaver, fn: Any, name: str = "act") -> Any:
    builder = StateGraph(Log)
    builder.add_node(name, fn)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder.compile(checkpointer=saver)


def before(graph: Any, node: str, thread: str = "t1") -> Any:
    return next(s for s in graph.get_state_history(cfg(thread)) if s.next == (node,))


def inverse_counts(world: World) -> Counter[str]:
    return Counter(call["effect"] for call in world.calls("inverse"))


def reader(world: World) -> Callable[..., str | None]:
    def read(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    return read


def refused_errors() -> tuple[type[BaseException], ...]:
    """The errors a rollback refused for a call in flight may raise."""
    names = ("EffectInFlightError", "RollbackInProgressError")
    return tuple(
        getattr(langgraph_rollback, n) for n in names if hasattr(langgraph_rollback, n)
    )


def three_writes(saver: BaseRollbackSaver, world: World, registry: ToolRegistry) -> Any:
    tools = build_tools(world, registry)

    def act(state: Log) -> Log:
        for name in ("a.txt", "b.txt", "c.txt"):
            tools.write_file(name, "agent")
        return {"log": ["act"]}

    return one_node(saver, act)


# --- the rule: never silently ok ----------------------------------------------------


def test_drift_found_while_undoing_stops_the_rollback(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = three_writes(saver, world, registry)
    graph.invoke({"log": []}, cfg(), durability="sync")
    target = before(graph, "act")
    head = graph.get_state(cfg()).config

    def a_human_edits_b(effect: Effect, ok: bool) -> None:
        # After planning, after c's inverse: not the rollback's own doing.
        if effect.args["name"] == "c.txt":
            world.path("b.txt").write_text("edited by a human")

    report = rollback(graph, cfg(), to=target, progress=a_human_edits_b)
    assert report.status == "stopped", str(report)
    assert not report.ok
    assert [c.effect.args["name"] for c in report.conflicts] == ["b.txt"]
    # Stopped before b's inverse: nothing older was undone either.
    assert world.listing() == {"a.txt": "agent", "b.txt": "edited by a human"}
    assert graph.get_state(cfg()).config == head  # not restored

    resumed = rollback(graph, cfg(), to=target, on_conflict="force")
    assert resumed.ok, str(resumed)
    assert world.listing() == {}
    assert set(inverse_counts(world).values()) == {1}


def test_declared_tool_inside_a_git_step_is_not_drift(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, tmp_path: Path
) -> None:
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
        write_note("NOTES.md", "written by a declared tool inside the step")
        return {"log": ["edit"]}

    graph = one_node(saver, edit, "edit")
    graph.invoke({"log": []}, cfg(), durability="sync")
    assert (root / "app.py").read_text() == "v2\n"

    report = rollback(graph, cfg(), to=before(graph, "edit"))
    assert report.conflicts == [], str(report)
    assert report.ok, str(report)
    assert (root / "app.py").read_text() == "v1\n"
    assert not (root / "NOTES.md").exists()


def test_reversible_inverse_is_verified_by_observing_again(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    def claims_to_restore(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        return "restored"  # but does nothing

    @reversible(undo=claims_to_restore, observe=reader(world), registry=registry)
    def write(name: str, content: str) -> str:
        world.path(name).write_text(content)
        return name

    world.path("cfg.txt").write_text("v1")
    graph = one_node(saver, lambda s: {"log": [write("cfg.txt", "v2")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    head = graph.get_state(cfg()).config

    report = rollback(graph, cfg(), to=before(graph, "act"))
    assert world.listing() == {"cfg.txt": "v2"}  # the world was not restored
    assert world.count("inverse") == 1
    assert not report.ok, str(report)
    assert report.undone == []
    (effect,) = saver.list_effects(cfg())
    assert effect.status is not EffectStatus.COMPENSATED
    assert graph.get_state(cfg()).config == head


def test_refused_rollback_lists_every_conflict(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = three_writes(saver, world, registry)
    graph.invoke({"log": []}, cfg(), durability="sync")
    world.path("a.txt").write_text("edited by a human")
    world.path("c.txt").write_text("edited by another human")

    report = rollback(graph, cfg(), to=before(graph, "act"))
    assert report.status == "aborted"
    assert world.count("inverse") == 0
    assert world.listing() == {
        "a.txt": "edited by a human",
        "b.txt": "agent",
        "c.txt": "edited by another human",
    }
    assert sorted(c.effect.args["name"] for c in report.conflicts) == ["a.txt", "c.txt"]
    text = str(report)
    assert "a.txt" in text and "c.txt" in text, text


# --- inverses run twice ------------------------------------------------------------


@contextmanager
def two_savers(
    kind: str, path: Path, registry: ToolRegistry, request: pytest.FixtureRequest
) -> Iterator[tuple[BaseRollbackSaver, BaseRollbackSaver]]:
    """Two savers of one kind, each with its own connection, on one store."""
    if kind == "sqlite":
        with (
            SqliteRollbackSaver.from_conn_string(str(path), registry=registry) as a,
            SqliteRollbackSaver.from_conn_string(str(path), registry=registry) as b,
        ):
            yield a, b
        return
    if kind == "aio_sqlite":
        loops = [LoopThread(), LoopThread()]
        managers = [
            AsyncSqliteRollbackSaver.from_conn_string(str(path), registry=registry)
            for _ in loops
        ]
        try:
            a, b = (
                loop.run(m.__aenter__())
                for loop, m in zip(loops, managers, strict=True)
            )
            yield a, b
        finally:
            for loop, manager in zip(loops, managers, strict=True):
                loop.run(manager.__aexit__(None, None, None))
                loop.close()
        return
    from langgraph_rollback.postgres import PostgresRollbackSaver

    url = request.getfixturevalue("pg_url")
    with (
        PostgresRollbackSaver.from_conn_string(url, registry=registry) as a,
        PostgresRollbackSaver.from_conn_string(url, registry=registry) as b,
    ):
        a.setup()
        yield a, b


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "kind",
    [
        "sqlite",
        "aio_sqlite",
        "postgres",  # the control: session advisory locks have no such window
    ],
)
def test_two_savers_on_one_store_never_run_an_inverse_twice(
    kind: str,
    world: World,
    registry: ToolRegistry,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entered: list[str] = []
    inverse_entered, inverse_open = threading.Event(), threading.Event()
    held_entered, held_open = threading.Event(), threading.Event()

    def slow_delete(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        entered.append(threading.current_thread().name)
        if len(entered) == 1:
            inverse_entered.set()
            inverse_open.wait(DEADLINE_S)
        world.path(effect.args["name"]).unlink(missing_ok=True)
        return "deleted"

    @reversible(undo=slow_delete, observe=reader(world), registry=registry)
    def create(name: str) -> str:
        world.path(name).write_text("made")
        return name

    builder = StateGraph(Log)
    builder.add_node("act", lambda s: {"log": [create("f.txt")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    with two_savers(kind, tmp_path / "shared.sqlite", registry, request) as (a, b):
        graph_a, graph_b = (
            builder.compile(checkpointer=a),
            builder.compile(checkpointer=b),
        )
        graph_a.invoke({"log": []}, cfg(), durability="sync")
        first = list(graph_a.get_state_history(cfg()))[-1]
        target = first.config["configurable"]["checkpoint_id"]

        # reaches into savers.base.mark_held: update if it moves. The first
        # rollback to take the lock waits here, between the moment its token
        # counts as live and its lock row's commit, until the test lets it go.
        original_held = saver_base.mark_held
        first_holder: list[str] = []

        def held(holder: Any) -> None:
            original_held(holder)
            if not first_holder:
                first_holder.append(holder.token)
                held_entered.set()
                held_open.wait(DEADLINE_S)

        monkeypatch.setattr(saver_base, "mark_held", held)
        results: dict[str, Any] = {}

        def run(name: str, graph: Any) -> None:
            try:
                results[name] = rollback(graph, cfg(), to=target)
            except Exception as exc:  # the loser may be refused
                results[name] = exc

        one = threading.Thread(target=run, args=("a", graph_a), name="rollback-a")
        two = threading.Thread(target=run, args=("b", graph_b), name="rollback-b")
        try:
            one.start()
            wait_for(
                lambda: (
                    held_entered.is_set()
                    or inverse_entered.is_set()
                    or not one.is_alive()
                ),
                "the first rollback to hold the lock",
            )
            two.start()
            wait_for(
                lambda: inverse_entered.is_set() or not two.is_alive(),
                "the second rollback to start an inverse or give up",
            )
            held_open.set()
            wait_for(
                lambda: not one.is_alive() or entered[:1] == ["rollback-a"],
                "the first rollback to finish or reach its inverse",
            )
        finally:
            held_open.set()
            inverse_open.set()
            one.join(DEADLINE_S)
            two.join(DEADLINE_S)
        assert not one.is_alive() and not two.is_alive()

    reports = [r for r in results.values() if not isinstance(r, BaseException)]
    assert any(r.ok for r in reports), results
    assert world.count("inverse") == 1, entered
    assert world.listing() == {}


@pytest.mark.timeout(60)
def test_timed_out_inverse_is_not_started_again_while_it_runs(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    release = threading.Event()
    entered = threading.Event()
    finished = threading.Event()
    started: list[str] = []

    def slow_delete(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        started.append(effect.id)
        if len(started) == 1:
            entered.set()
            release.wait(DEADLINE_S)  # lands only once the test says so
        world.path(effect.args["name"]).unlink(missing_ok=True)
        if len(started) == 1:
            finished.set()
        return "deleted"

    @reversible(undo=slow_delete, observe=reader(world), registry=registry)
    def create(name: str) -> str:
        world.path(name).write_text("made")
        return name

    graph = one_node(saver, lambda s: {"log": [create("f.txt")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    target = before(graph, "act")
    try:
        first = rollback(graph, cfg(), to=target, inverse_timeout=0.2)
        assert first.status == "failed", str(first)
        # Its thread may not have run yet on a loaded machine: wait for it.
        assert entered.wait(DEADLINE_S), "the abandoned inverse never started"
        # The abandoned inverse still runs; observe shows "not landed yet".
        second: Any = None
        try:
            second = rollback(graph, cfg(), to=target)
        except refused_errors():
            pass  # refusing while it runs is fine too
        assert world.count("inverse") == 1, str(second)
        assert second is None or not second.ok
    finally:
        release.set()
    wait_for(finished.is_set, "the abandoned inverse to finish")
    wait_for(
        lambda: saver.list_effects(cfg())[0].status is EffectStatus.COMPENSATED,
        "the abandoned inverse's outcome to be recorded",
    )
    third = rollback(graph, cfg(), to=target)
    assert third.ok, str(third)
    assert world.listing() == {}
    assert world.count("inverse") == 1


_TAKE_LOCK = """
import sys
from langgraph_rollback import SqliteRollbackSaver
from langgraph_rollback._liveness import new_holder
from langgraph_rollback.core.ops import LockThread

with SqliteRollbackSaver.from_conn_string(sys.argv[1]) as saver:
    saver.execute(LockThread("t1", new_holder()))
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("saver_kind", ["sqlite", "aio_sqlite"])
def test_lock_of_a_dead_holder_whose_pid_was_reused_is_cleared(
    saver: BaseRollbackSaver,
    world: World,
    registry: ToolRegistry,
    raw_sql: Any,
    tmp_path: Path,
) -> None:
    tools = build_tools(world, registry)
    graph = one_node(saver, lambda s: {"log": [tools.write_file("a.txt", "1")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    # A real process takes the lock (writing whatever the saver records about
    # its holder) and dies without releasing it.
    subprocess.run(
        [sys.executable, "-c", _TAKE_LOCK, str(tmp_path / "ledger.sqlite")],
        check=True,
        timeout=DEADLINE_S,
    )
    # Its pid is then reused by an unrelated live process, started at another
    # time than the holder (as /proc/<pid>/stat shows).
    unrelated = subprocess.Popen(["sleep", "120"])
    try:
        raw_sql(
            "UPDATE lgrb_locks SET pid = ? WHERE thread_id = 't1'", (unrelated.pid,)
        )
        report = rollback(graph, cfg(), to=before(graph, "act"))
        assert report.ok, str(report)
        assert world.listing() == {}
        assert unrelated.poll() is None  # the unrelated process was left alone
    finally:
        unrelated.kill()
        unrelated.wait(DEADLINE_S)


# --- the wrong set undone, or a false "done" -----------------------------------------


def test_undeclared_tool_is_not_undone_by_a_declared_namesake(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    build_tools(world, registry)  # declares make_file, undone by deleting the file

    def make_file(name: str) -> str:
        """Another tool that happens to be called make_file."""
        world.log("forward", "undeclared make_file", name=name)
        world.path(name).write_text("made by the undeclared tool")
        return "made"

    undeclared = StructuredTool.from_function(make_file, name="make_file")
    call = AIMessage(
        "",
        tool_calls=[{"name": "make_file", "args": {"name": "keep.txt"}, "id": "c1"}],
    )
    builder = StateGraph(MessagesState)
    builder.add_node("model", lambda s: {"messages": [call]})
    builder.add_node(
        "tools",
        ToolNode(
            [undeclared],
            wrap_tool_call=record_tool_call,
            awrap_tool_call=arecord_tool_call,
        ),
    )
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    (effect,) = saver.list_effects(cfg())
    assert effect.kind is Reversibility.UNKNOWN

    report = rollback(graph, cfg(), to=list(graph.get_state_history(cfg()))[-1])
    assert world.count("inverse") == 0
    assert world.listing() == {"keep.txt": "made by the undeclared tool"}
    assert [s.effect.id for s in report.skipped] == [effect.id]


def test_two_closures_of_one_factory_under_one_name_are_refused(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    def note_tool(folder: str) -> Any:
        (world.files / folder).mkdir(exist_ok=True)

        def remove(effect: Effect) -> str:
            world.log("inverse", "write_note", folder=folder, effect=effect.id)
            (world.files / folder / effect.args["name"]).unlink()
            return f"deleted {folder}/{effect.args['name']}"

        @reversible(undo=remove, registry=registry)
        def write_note(name: str) -> str:
            (world.files / folder / name).write_text(folder)
            return name

        return write_note

    notes_a = note_tool("a")
    with pytest.raises(DuplicateToolError) as info:
        note_tool("b")
    assert info.value.tool == "write_note"

    graph = one_node(saver, lambda s: {"log": [notes_a("n.txt")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    assert rollback(graph, cfg(), to=before(graph, "act")).ok
    assert [c["folder"] for c in world.calls("inverse")] == ["a"]
    assert world.listing() == {}


@pytest.mark.timeout(60)
def test_rollback_while_a_call_is_in_flight_is_refused(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    in_flight, land = threading.Event(), threading.Event()

    def delete(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        world.path(effect.args["name"]).unlink()
        return "deleted"

    @reversible(undo=delete, observe=reader(world), registry=registry)
    def slow_write(name: str, content: str) -> str:
        in_flight.set()
        land.wait(DEADLINE_S)
        world.log("forward", "slow_write", name=name)
        world.path(name).write_text(content)
        return name

    graph = one_node(saver, lambda s: {"log": [slow_write("late.txt", "landed")]})
    errors: list[BaseException] = []

    def run() -> None:
        try:
            graph.invoke({"log": []}, cfg(), durability="sync")
        except BaseException as exc:  # pragma: no cover - asserted below
            errors.append(exc)

    runner = threading.Thread(target=run, name="graph-run")
    runner.start()
    try:
        assert in_flight.wait(DEADLINE_S)
        first = list(graph.get_state_history(cfg()))[-1]
        with pytest.raises(refused_errors()):
            rollback(graph, cfg(), to=first)
    finally:
        land.set()
        runner.join(DEADLINE_S)
    assert not runner.is_alive()
    assert errors == []
    assert world.listing() == {"late.txt": "landed"}
    assert world.count("inverse") == 0
    # Once the run has ended, the same rollback undoes the call.
    assert rollback(graph, cfg(), to=first).ok
    assert world.listing() == {}


def test_persistent_subgraph_state_is_restored(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def inner(state: Sub) -> Sub:
        tools.write_file("inner.txt", f"run {len(state.get('seen', []))}")
        return {"seen": ["inner"]}

    sub_builder = StateGraph(Sub)
    sub_builder.add_node(inner)
    sub_builder.add_edge(START, "inner")
    sub_builder.add_edge("inner", END)
    sub = sub_builder.compile(checkpointer=True)  # its state persists across runs

    def call(state: Log) -> Log:
        out = sub.invoke({"seen": []})
        return {"log": [f"sub saw {len(out['seen'])}"]}

    graph = one_node(saver, call, "call")
    graph.invoke({"log": []}, cfg(), durability="sync")
    after_first_run = graph.get_state(cfg())
    graph.invoke({"log": []}, cfg(), durability="sync")
    assert world.listing() == {"inner.txt": "run 1"}

    report = rollback(graph, cfg(), to=after_first_run)
    assert report.ok, str(report)
    assert world.listing() == {"inner.txt": "run 0"}
    # Run again: the subgraph must see its state as it was at the target
    # (one earlier run), as the second run did.
    out = graph.invoke({"log": []}, cfg(), durability="sync")
    assert world.listing() == {"inner.txt": "run 1"}
    assert out["log"] == ["sub saw 1", "sub saw 2"]


def test_first_run_with_exit_durability_rolls_back_to_first(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = three_writes(saver, world, registry)
    graph.invoke({"log": []}, cfg(), durability="exit")
    assert len(list(graph.get_state_history(cfg()))) == 1
    assert len(world.listing()) == 3

    report = rollback(graph, cfg(), to="first")
    assert report.ok, str(report)
    assert report.orphans == []
    assert world.listing() == {}
    assert len(inverse_counts(world)) == 3
    assert set(inverse_counts(world).values()) == {1}
    assert graph.get_state(cfg()).values.get("log") in (None, [])


# --- input ------------------------------------------------------------------------


def test_undo_args_raising_is_a_failure_not_a_claim(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    @tool
    def delete_file(name: str) -> str:
        """Delete a file."""
        world.log("inverse", "delete_file", name=name)
        world.path(name).unlink()
        return f"deleted {name}"

    def broken_args(effect: Effect) -> dict[str, Any]:
        raise TypeError("undo_args has a bug")

    @reversible(undo=delete_file, undo_args=broken_args, registry=registry)
    def create(name: str) -> str:
        world.path(name).write_text("made")
        return name

    graph = one_node(saver, lambda s: {"log": [create("f.txt")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    outcome: Any
    try:
        outcome = rollback(graph, cfg(), to=before(graph, "act"))
    except RollbackError as exc:  # a typed error is fine, a raw one is not
        outcome = exc
    if isinstance(outcome, RollbackError):
        assert "undo_args" in str(outcome), str(outcome)
    else:
        assert outcome.status == "failed", str(outcome)
        assert "undo_args" in outcome.failures[0].error
    (effect,) = saver.list_effects(cfg())
    assert effect.status in (EffectStatus.APPLIED, EffectStatus.COMPENSATION_FAILED)
    assert world.count("inverse") == 0
    assert world.listing() == {"f.txt": "made"}


def _one_effect(saver: BaseRollbackSaver, world: World, registry: ToolRegistry) -> Any:
    tools = build_tools(world, registry)
    graph = one_node(saver, lambda s: {"log": [tools.write_file("f.txt", "1")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    return graph


def test_skip_given_one_string_is_refused(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = _one_effect(saver, world, registry)
    (effect,) = saver.list_effects(cfg())
    with pytest.raises(InvalidConfigError, match="skip"):
        rollback(graph, cfg(), to=before(graph, "act"), skip=effect.id)
    assert world.listing() == {"f.txt": "1"}
    assert world.count("inverse") == 0


def test_inverse_timeout_of_the_wrong_type_is_refused(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = _one_effect(saver, world, registry)
    with pytest.raises(InvalidConfigError, match="inverse_timeout"):
        rollback(graph, cfg(), to=before(graph, "act"), inverse_timeout="5")  # type: ignore[arg-type]
    assert world.listing() == {"f.txt": "1"}
    assert world.count("inverse") == 0


def test_get_effect_without_an_id_is_refused(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    _one_effect(saver, world, registry)
    with pytest.raises(InvalidConfigError, match="effect_id"):
        saver.get_effect(cfg(), None)  # type: ignore[arg-type]


def test_resolve_effect_without_an_id_is_refused(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    @reversible(undo=lambda e: None, registry=registry)
    def write(name: str) -> str:
        world.path(name).write_text("half")
        raise Stop  # the outcome is never recorded: the effect stays pending

    graph = one_node(saver, lambda s: {"log": [write("f.txt")]})
    with pytest.raises(Stop):
        graph.invoke({"log": []}, cfg(), durability="sync")
    (effect,) = saver.list_effects(cfg())
    assert effect.status is EffectStatus.PENDING
    try:
        with pytest.raises(InvalidConfigError, match="effect_id"):
            saver.resolve_effect(cfg(), None, applied=True)  # type: ignore[arg-type]
    finally:
        assert saver.get_effect(cfg(), effect.id).status is EffectStatus.PENDING


@pytest.mark.parametrize(
    ("param", "value"), [("limit", True), ("before", "x"), ("tool", 123)]
)
def test_list_effects_refuses_arguments_of_the_wrong_type(
    saver: BaseRollbackSaver,
    world: World,
    registry: ToolRegistry,
    param: str,
    value: Any,
) -> None:
    _one_effect(saver, world, registry)
    with pytest.raises(InvalidConfigError, match=param):
        saver.list_effects(cfg(), **{param: value})
    assert len(saver.list_effects(cfg())) == 1
    assert world.listing() == {"f.txt": "1"}
