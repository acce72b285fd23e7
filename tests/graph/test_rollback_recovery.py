"""Rollbacks that were cut off, outcomes nobody knows, and rollbacks of rollbacks."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    BaseRollbackSaver,
    Effect,
    EffectResultUnknownError,
    EffectStateError,
    EffectStatus,
    InMemoryRollbackSaver,
    InvalidConfigError,
    RollbackInProgressError,
    ToolRegistry,
    plan_rollback,
    reversible,
    rollback,
)
from langgraph_rollback._liveness import mark_released, new_holder
from langgraph_rollback.core.ops import LockThread
from tests.support.tools import build_tools
from tests.support.waiting import DEADLINE_S, wait_for
from tests.support.world import World


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    note: str | None


def cfg(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def before(graph: Any, node: str, thread: str = "t1") -> Any:
    return next(s for s in graph.get_state_history(cfg(thread)) if s.next == (node,))


def one_node(saver: BaseRollbackSaver, fn: Any, name: str = "act") -> Any:
    builder = StateGraph(Log)
    builder.add_node(name, fn)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder.compile(checkpointer=saver)


class Stop(BaseException):
    """Stands in for Ctrl-C or the process dying in the middle of an inverse."""


def test_failed_step_rolled_back_then_resumed_acts_again(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    fail = {"on": True}

    def ok(state: Log) -> Log:
        tools.write_file("ok.txt", "fine")
        return {"log": ["ok"]}

    def half(state: Log) -> Log:
        tools.write_file("half-1.txt", "1")
        if fail["on"]:
            raise RuntimeError("transient failure after one write")
        tools.write_file("half-2.txt", "2")
        return {"log": ["half"]}

    builder = StateGraph(Log)
    builder.add_node(ok)
    builder.add_node(half)
    builder.add_edge(START, "ok")
    builder.add_edge("ok", "half")
    builder.add_edge("half", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(RuntimeError):
        graph.invoke({"log": []}, cfg(), durability="sync")
    report = rollback(graph, cfg(), to=graph.get_state(cfg()))
    assert report.ok
    assert report.restored_checkpoint_id is not None  # a fresh head, fresh tasks
    assert world.listing() == {"ok.txt": "fine"}
    fail["on"] = False
    out = graph.invoke(None, cfg(), durability="sync")
    assert out["log"] == ["ok", "half"]
    assert world.listing() == {"ok.txt": "fine", "half-1.txt": "1", "half-2.txt": "2"}
    assert world.count("forward", "write_file") == 4  # half-1 written again


def test_rollback_to_a_copy_and_then_to_the_original(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def a(state: Log) -> Log:
        tools.write_file("x.txt", "1")
        return {"log": ["a"]}

    def b(state: Log) -> Log:
        tools.write_file("y.txt", "y")
        return {"log": ["b"]}

    builder = StateGraph(Log)
    builder.add_node(a)
    builder.add_node(b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    x = before(graph, "b")
    first = rollback(graph, cfg(), to=x)
    copy_1 = first.restored_checkpoint_id
    assert copy_1 is not None
    graph.invoke(None, cfg(), durability="sync")
    assert rollback(graph, cfg(), to=copy_1).ok  # roll back to the copy
    graph.invoke(None, cfg(), durability="sync")
    assert world.listing() == {"x.txt": "1", "y.txt": "y"}
    plan = plan_rollback(graph, cfg(), to=x)  # the original still counts
    assert [s.effect.args["name"] for s in plan.to_undo] == ["y.txt"]
    assert rollback(graph, cfg(), to=x).ok
    assert world.listing() == {"x.txt": "1"}


def test_inverse_cut_off_is_incomplete_until_resolved(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    cut = {"on": True}

    def undo(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        world.path(effect.args["name"]).unlink()
        if cut["on"]:
            raise Stop
        return "deleted"

    @reversible(undo=undo, registry=registry)
    def make(name: str) -> str:
        world.path(name).write_text("made")
        return name

    graph = one_node(saver, lambda s: {"log": [make("f1"), make("f2")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    target = before(graph, "act")
    with pytest.raises(Stop):
        rollback(graph, cfg(), to=target)
    f2 = next(e for e in saver.list_effects(cfg()) if e.args["name"] == "f2")
    assert f2.status is EffectStatus.COMPENSATING

    cut["on"] = False
    second = rollback(graph, cfg(), to=target)  # the lock was released
    assert second.status == "incomplete"
    assert not second.ok
    assert [s.effect.args["name"] for s in second.undone] == ["f1"]
    assert "compensated=True|False" in str(second)
    assert world.count("inverse") == 2  # f2's inverse did not run again
    assert graph.get_state(cfg()).next == ()  # not restored

    with pytest.raises(InvalidConfigError, match="compensated="):
        saver.resolve_effect(cfg(), f2.id, applied=True)
    resolved = saver.resolve_effect(cfg(), f2.id, compensated=True)
    assert resolved.status is EffectStatus.COMPENSATED
    third = rollback(graph, cfg(), to=target)
    assert third.ok
    assert graph.get_state(cfg()).values == target.values
    assert world.listing() == {}
    with pytest.raises(EffectStateError):
        saver.resolve_effect(cfg(), f2.id, compensated=True)


def test_timed_out_inverse_never_runs_twice(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    import threading

    release, entered = threading.Event(), threading.Event()

    def slow_refund(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        entered.set()
        release.wait(DEADLINE_S)  # returns once the test says so
        return "refunded"

    @reversible(undo=slow_refund, kind="compensable", registry=registry)
    def charge(cents: int) -> str:
        return f"charged {cents}"

    graph = one_node(saver, lambda s: {"log": [charge(500)]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    target = before(graph, "act")
    try:
        first = rollback(graph, cfg(), to=target, inverse_timeout=0.2)
        assert first.status == "failed"
        assert "may still take effect" in first.failures[0].error
        # Its thread may not have run yet on a loaded machine: wait for it.
        assert entered.wait(DEADLINE_S), "the timed-out inverse never started"
        (effect,) = saver.list_effects(cfg())
        assert effect.status is EffectStatus.COMPENSATING
        # Still running: the next rollback leaves it and says so.
        second = rollback(graph, cfg(), to=target)
        assert second.status == "incomplete"
        assert "still running" in str(second)
        assert world.count("inverse") == 1
    finally:
        release.set()
    # When it ends, its outcome is recorded; the next rollback finds it done.
    wait_for(
        lambda: saver.get_effect(cfg(), effect.id).status is EffectStatus.COMPENSATED,
        "the timed-out inverse's outcome to be recorded",
    )
    third = rollback(graph, cfg(), to=target)
    assert third.ok, str(third)
    assert [e.id for e in third.already_compensated] == [effect.id]
    assert world.count("inverse") == 1


def test_failed_inverse_that_took_effect_is_recognised(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    flaky = {"on": True}

    def read(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    def restore(effect: Effect) -> str:
        world.log("inverse", effect.tool, effect=effect.id)
        world.path(effect.args["name"]).write_text(effect.before)
        if flaky["on"]:
            flaky["on"] = False
            raise TimeoutError("API timed out after applying the change")
        return "restored"

    @reversible(undo=restore, observe=read, registry=registry)
    def write(name: str, content: str) -> str:
        world.path(name).write_text(content)
        return name

    world.path("cfg").write_text("v1")
    graph = one_node(saver, lambda s: {"log": [write("cfg", "v2")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    target = before(graph, "act")
    assert rollback(graph, cfg(), to=target).status == "failed"
    assert world.listing() == {"cfg": "v1"}
    second = rollback(graph, cfg(), to=target)
    assert second.ok, str(second)
    assert len(second.already_compensated) == 1
    assert world.count("inverse") == 1
    assert graph.get_state(cfg()).values == target.values


def test_resolved_as_applied_is_undone_not_a_conflict(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    died = {"on": True}

    def read(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    def restore(effect: Effect) -> str:
        path = world.path(effect.args["name"])
        if effect.before is None:
            path.unlink()
        else:
            path.write_text(effect.before)
        return "restored"

    @reversible(undo=restore, observe=read, registry=registry)
    def write(name: str, content: str) -> str:
        world.path(name).write_text(content)
        if died["on"]:
            died["on"] = False
            raise Stop  # the outcome is never recorded
        return name

    graph = one_node(saver, lambda s: {"log": [write("page", "bad")]})
    with pytest.raises(Stop):
        graph.invoke({"log": []}, cfg(), durability="sync")
    (effect,) = saver.list_effects(cfg())
    resolved = saver.resolve_effect(cfg(), effect.id, applied=True, result="page")
    assert (resolved.after, resolved.after_observed) == ("bad", True)
    report = rollback(graph, cfg(), to=before(graph, "act"))
    assert report.ok, str(report)
    assert world.listing() == {}


def test_pending_effect_is_reconciled_by_observe_on_replay(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    mode = {"die_after": True}

    def count(name: str, **_: Any) -> int:
        return len(world.calls("forward", "append"))

    @reversible(undo=lambda e: None, observe=count, registry=registry)
    def append(name: str) -> str:
        if mode["die_after"] is None:
            raise Stop  # dies before acting
        world.log("forward", "append", name=name)
        if mode["die_after"]:
            mode["die_after"] = False
            raise Stop  # dies after acting, before the outcome is recorded
        return "appended"

    graph = one_node(saver, lambda s: {"log": [append("a")]})
    with pytest.raises(Stop):
        graph.invoke({"log": []}, cfg())
    # The observation shows it landed; its result was lost in the crash, so
    # the replay says so instead of returning None.
    with pytest.raises(EffectResultUnknownError) as lost:
        graph.invoke(None, cfg())
    assert world.count("forward", "append") == 1
    (effect,) = saver.list_effects(cfg())
    assert (effect.status, effect.attempt, effect.result_known) == (
        EffectStatus.APPLIED,
        1,
        False,
    )
    assert lost.value.effect_id == effect.id
    saver.resolve_effect(cfg(), effect.id, result="appended")
    assert graph.invoke(None, cfg())["log"] == ["appended"]
    assert world.count("forward", "append") == 1

    mode["die_after"] = None
    graph2 = one_node(saver, lambda s: {"log": [append("b")]})
    with pytest.raises(Stop):
        graph2.invoke({"log": []}, cfg("t2"))
    mode["die_after"] = False
    out = graph2.invoke(None, cfg("t2"))  # unchanged: it never landed, so it runs
    assert out["log"] == ["appended"]
    (effect,) = saver.list_effects(cfg("t2"))
    assert (effect.status, effect.attempt) == (EffectStatus.APPLIED, 2)


def test_fork_run_with_exit_durability_is_placed_after_its_start(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def a(state: Log) -> Log:
        tools.write_file("x.txt", state.get("note") or "main")
        return {"log": ["a"]}

    def b(state: Log) -> Log:
        tools.write_file("y.txt", state.get("note") or "main")
        return {"log": ["b"]}

    builder = StateGraph(Log)
    builder.add_node(a)
    builder.add_node(b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="exit")
    first_end = graph.get_state(cfg())
    graph.invoke({"log": [], "note": "second"}, cfg(), durability="exit")
    assert world.listing() == {"x.txt": "second", "y.txt": "second"}
    # Fork from the first run's end; the fork's checkpoints are never stored
    # until it ends.
    graph.invoke({"log": [], "note": "fork"}, first_end.config, durability="exit")
    assert world.listing() == {"x.txt": "fork", "y.txt": "fork"}
    # Under "exit" no checkpoint inside a run is stored, so both runs that
    # started from `first_end` (the second run and the fork) are after it, on
    # paths that cannot be told apart: rolling back to it undoes both, newest
    # first, and the world is as it was at `first_end`.
    report = rollback(graph, cfg(), to=first_end)
    assert report.ok, str(report)
    assert [s.effect.args["content"] for s in report.undone] == ["fork"] * 2 + [
        "second"
    ] * 2
    assert world.listing() == {"x.txt": "main", "y.txt": "main"}


def test_stale_lock_of_a_dead_holder_is_cleared(
    saver: BaseRollbackSaver,
    world: World,
    registry: ToolRegistry,
    raw_sql: Any,
    saver_kind: str,
    request: pytest.FixtureRequest,
) -> None:
    tools = build_tools(world, registry)
    graph = one_node(saver, lambda s: {"log": [tools.write_file("a.txt", "1")]})
    graph.invoke({"log": []}, cfg(), durability="sync")
    target = before(graph, "act")
    if saver_kind in ("postgres", "aio_postgres"):
        # An advisory lock lives as long as its holder's session.
        import psycopg

        from langgraph_rollback.savers import postgres_sql as pg

        url = request.getfixturevalue("pg_url")
        other = psycopg.connect(url, autocommit=True)
        key = pg.LOCK_KEY.format(thread_id="t1")
        assert other.execute(pg.LOCK_TRY, (key,)).fetchone() == (True,)
        backend = other.info.backend_pid
        with pytest.raises(RollbackInProgressError, match="backend pid"):
            rollback(graph, cfg(), to=target)
        other.close()  # the holder's process died
        # The server ends the backend (and frees its locks) a moment after
        # the client goes: wait for that, never for luck.
        with psycopg.connect(url, autocommit=True) as watcher:
            wait_for(
                lambda: (
                    watcher.execute(
                        "SELECT count(*) FROM pg_locks WHERE pid = %s", (backend,)
                    ).fetchone()
                    == (0,)
                ),
                "the closed session's backend to release its advisory lock",
            )
        assert rollback(graph, cfg(), to=target).ok
        return
    dead = new_holder()  # same host and pid, but this process no longer holds it
    saver.execute(LockThread("t1", dead))
    mark_released(dead)
    if isinstance(saver, InMemoryRollbackSaver):
        # A per-process lock dies with its process; only the token check applies.
        with pytest.raises(RollbackInProgressError):
            rollback(graph, cfg(), to=target)
        saver.release_rollback_lock(cfg())
    assert rollback(graph, cfg(), to=target).ok
    if raw_sql is not None:
        # A holder on another host is assumed alive until released by hand.
        raw_sql(
            "INSERT INTO lgrb_locks (thread_id, holder, host, pid, acquired_at) "
            "VALUES ('t1', 'tok', 'elsewhere|x|y', 7, 'now')"
        )
        with pytest.raises(RollbackInProgressError):
            rollback(graph, cfg(), to=target)
        saver.release_rollback_lock(cfg())
        assert rollback(graph, cfg(), to=target).ok
