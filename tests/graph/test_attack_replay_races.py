"""Replays of one call raced in one process: restarts claimed before they
commit (drivers `_claim`), and the replay of a restart lost to another flow
(`core.replay._after_lost_restart`).

Several resumes of one thread run at once (threads; asyncio tasks on the async
savers). Each test counts the calls in the world, and checks what every
resume returned or raised.
"""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    BaseRollbackSaver,
    EffectOutcomeUnknownError,
    ToolRegistry,
    reversible,
)
from langgraph_rollback.core.ops import Update
from langgraph_rollback.core.store import FaultPoint
from langgraph_rollback.drivers import IN_FLIGHT
from tests.graph.test_forward_guarantees import await_until
from tests.support.tools import Tools, build_tools
from tests.support.world import World

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

DURABILITIES = ["sync", "async", "exit"]


class Files(TypedDict, total=False):
    done: Annotated[list[Any], operator.add]


class Crash(BaseException):
    """The flow dies between its intent and its call (a thread killed)."""


def cfg() -> dict[str, Any]:
    return {"configurable": {"thread_id": "t1"}}


def one_node(saver: Any, fn: Any) -> Any:
    builder = StateGraph(Files)
    builder.add_node("act", fn)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


def wait_until(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def somebody_waits() -> bool:
    """Whether a flow of this process waits on a call in flight."""
    return any(entry[0] is not None for entry in list(IN_FLIGHT._calls.values()))


def hold_first(point: FaultPoint) -> Callable[[FaultPoint, str | None], None]:
    """A probe holding the first flow at `point` until another waits on it
    (a bounded window: the race then goes either way)."""
    held: list[str] = []
    lock = threading.Lock()

    def probe(seen: FaultPoint, effect_id: str | None) -> None:
        with lock:
            first = seen is point and not held
            if first:
                held.append(threading.current_thread().name)
        if first:
            wait_until(somebody_waits, within=2)

    return probe


def crash_after_intent(saver: BaseRollbackSaver, graph: Any, mode: str) -> None:
    """The first run dies after its intent commits: a pending intent owned
    by this process, performed by nobody."""

    def probe(point: FaultPoint, effect_id: str | None) -> None:
        if point is FaultPoint.AFTER_INTENT:
            raise Crash

    saver.probe = probe
    with pytest.raises(Crash):
        graph.invoke({"done": []}, cfg(), durability=mode)
    saver.probe = None


def resume_at_once(graph: Any, mode: str, n: int = 3) -> list[Any]:
    """`n` resumes of the thread at once; what each returned or raised."""
    outs: list[Any] = []
    start = threading.Barrier(n)

    def resume() -> None:
        start.wait(10)
        try:
            outs.append(graph.invoke(None, cfg(), durability=mode))
        except Exception as exc:
            outs.append(exc)

    threads = [threading.Thread(target=resume) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a resume hangs"
    return outs


def writes_once(tools: Tools, world: World) -> Callable[[Files], Files]:
    def act(state: Files) -> Files:
        if world.flag("first-run-fails"):
            raise RuntimeError("failed before the call")
        return {"done": [tools.write_file("once.txt", "x")]}

    return act


# --- an intent left pending by a dead flow, replayed three times at once ----------


@pytest.mark.parametrize("mode", DURABILITIES)
def test_three_resumes_after_a_dead_intent_with_observe_perform_it_once(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, mode: str
) -> None:
    """Each resume finds the pending intent gone, observes the file unchanged
    and restarts the call; one restart wins, the others wait for it and
    replay its result."""
    tools = build_tools(world, registry)
    graph = one_node(saver, lambda s: {"done": [tools.write_file("a.txt", "x")]})
    crash_after_intent(saver, graph, mode)
    saver.probe = hold_first(FaultPoint.AFTER_FORWARD)
    outs = resume_at_once(graph, mode)
    assert world.count("forward", "write_file") == 1, (world.calls(), outs)
    assert all(isinstance(out, dict) for out in outs), outs
    assert world.listing() == {"a.txt": "x"}


@pytest.mark.parametrize("mode", DURABILITIES)
def test_three_resumes_after_a_dead_intent_without_observe_perform_nothing(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, mode: str
) -> None:
    """Without `observe` nobody can tell whether the call landed: every
    resume says so, none runs it."""
    tools = build_tools(world, registry)
    graph = one_node(saver, lambda s: {"done": [tools.make_file.invoke("b.txt")]})
    crash_after_intent(saver, graph, mode)
    outs = resume_at_once(graph, mode)
    assert world.count("forward", "make_file") == 0, world.calls()
    assert all(isinstance(out, EffectOutcomeUnknownError) for out in outs), outs


# --- a failed call, restarted by three resumes at once ----------------------------


@pytest.mark.parametrize("mode", DURABILITIES)
def test_three_resumes_of_a_failed_call_restart_it_once(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, mode: str
) -> None:
    """The call failed; three resumes restart it at once. One restart
    commits; the others lose it, wait for that attempt and replay it."""
    tools = build_tools(world, registry)
    graph = one_node(saver, lambda s: {"done": [tools.flaky.invoke("c.txt")]})
    with pytest.raises(ConnectionError):
        graph.invoke({"done": []}, cfg(), durability=mode)
    saver.probe = hold_first(FaultPoint.AFTER_FORWARD)
    outs = resume_at_once(graph, mode)
    assert world.count("forward", "flaky") == 2, (world.calls(), outs)
    assert all(isinstance(out, dict) for out in outs), outs


@pytest.mark.parametrize("mode", DURABILITIES)
def test_resumes_racing_a_first_run_that_failed_before_the_call(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, mode: str
) -> None:
    """Three resumes of a run that failed before its call: one intent is
    written, the others find it and wait for it."""
    tools = build_tools(world, registry)
    graph = one_node(saver, writes_once(tools, world))
    with pytest.raises(RuntimeError, match="failed before the call"):
        graph.invoke({"done": []}, cfg(), durability=mode)
    saver.probe = hold_first(FaultPoint.AFTER_INTENT)
    outs = resume_at_once(graph, mode)
    assert world.count("forward", "write_file") == 1, (world.calls(), outs)
    assert all(isinstance(out, dict) for out in outs), outs


# --- a flow that catches its own error and calls again ----------------------------


@pytest.mark.parametrize("mode", DURABILITIES)
def test_resumes_of_a_node_retrying_its_own_failed_call(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, mode: str
) -> None:
    """The node catches the call's error and calls again (a second effect of
    the task); then fails. Three resumes at once replay both calls: the
    retry's result, no third call."""
    tools = build_tools(world, registry)

    def act(state: Files) -> Files:
        try:
            result = tools.flaky.invoke("d.txt")
        except ConnectionError:
            result = tools.flaky.invoke("d.txt")
        if world.flag("after-retry-fails"):
            raise RuntimeError("failed after the retry")
        return {"done": [result]}

    graph = one_node(saver, act)
    with pytest.raises(RuntimeError, match="failed after the retry"):
        graph.invoke({"done": []}, cfg(), durability=mode)
    saver.probe = hold_first(FaultPoint.AFTER_FORWARD)
    outs = resume_at_once(graph, mode)
    assert world.count("forward", "flaky") == 2, (world.calls(), outs)
    assert all(isinstance(out, dict) for out in outs), outs


# --- async resumes on the async savers --------------------------------------------


def aio_only(saver: BaseRollbackSaver) -> None:
    if "Async" not in type(saver).__name__:
        pytest.skip("asyncio tasks on the async savers")


async def aresume_at_once(graph: Any, mode: str, n: int = 3) -> list[Any]:
    return list(
        await asyncio.gather(
            *(graph.ainvoke(None, cfg(), durability=mode) for _ in range(n)),
            return_exceptions=True,
        )
    )


@pytest.mark.parametrize("mode", DURABILITIES)
async def test_async_resumes_after_a_dead_intent_perform_it_once(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, mode: str
) -> None:
    aio_only(saver)
    tools = build_tools(world, registry)
    graph = one_node(saver, lambda s: {"done": [tools.write_file("e.txt", "x")]})

    def probe(point: FaultPoint, effect_id: str | None) -> None:
        if point is FaultPoint.AFTER_INTENT:
            raise Crash

    saver.probe = probe
    with pytest.raises(Crash):
        await graph.ainvoke({"done": []}, cfg(), durability=mode)
    saver.probe = None
    outs = await aresume_at_once(graph, mode)
    assert world.count("forward", "write_file") == 1, (world.calls(), outs)
    assert all(isinstance(out, dict) for out in outs), outs


@pytest.mark.parametrize("mode", DURABILITIES)
async def test_async_resumes_of_a_failed_call_restart_it_once(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, mode: str
) -> None:
    aio_only(saver)
    tools = build_tools(world, registry)

    async def act(state: Files) -> Files:
        return {"done": [await tools.flaky.ainvoke("f.txt")]}

    graph = one_node(saver, act)
    with pytest.raises(ConnectionError):
        await graph.ainvoke({"done": []}, cfg(), durability=mode)
    outs = await aresume_at_once(graph, mode)
    assert world.count("forward", "flaky") == 2, (world.calls(), outs)
    assert all(isinstance(out, dict) for out in outs), outs


async def test_an_async_resume_cancelled_while_it_waits_leaves_the_call_to_the_other(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    """A resume waits on the call another resume performs; it is cancelled
    meanwhile. The other records its outcome; a later resume replays it."""
    aio_only(saver)
    release = asyncio.Event()

    def read(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    @reversible(undo=lambda effect: None, observe=read, registry=registry)
    async def slow_write(name: str) -> str:
        world.log("forward", "slow_write", name=name)
        await asyncio.wait_for(release.wait(), 20)
        world.path(name).write_text("x")
        return f"wrote {name}"

    async def act(state: Files) -> Files:
        if world.flag("first-run-fails"):
            raise RuntimeError("failed before the call")
        return {"done": [await slow_write("g.txt")]}

    graph = one_node(saver, act)
    with pytest.raises(RuntimeError, match="failed before the call"):
        await graph.ainvoke({"done": []}, cfg())
    performer = asyncio.ensure_future(graph.ainvoke(None, cfg()))
    assert await await_until(lambda: world.count("forward", "slow_write") == 1)
    waiter = asyncio.ensure_future(graph.ainvoke(None, cfg()))
    assert await await_until(somebody_waits)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    assert (await asyncio.wait_for(performer, 20))["done"] == ["wrote g.txt"]
    again = await asyncio.wait_for(graph.ainvoke(None, cfg()), 20)
    assert again["done"] == ["wrote g.txt"]
    assert world.count("forward", "slow_write") == 1, world.calls()


# --- a node retrying its call, raced ----------------------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="a failed row's task may still be running in this process and retry "
    "the call under the next ordinal; another resume restarts the failed call "
    "meanwhile (the claim ends with the call's flow, not with its task)",
)
@pytest.mark.parametrize("mode", ["sync"])
def test_a_lost_restart_of_a_call_its_node_retries_does_not_call_again(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, mode: str
) -> None:
    """The node retries a failed call itself (a second call of the task).
    Two resumes at once: the winner's restart fails again and its node
    retries; the loser, told the restart failed, must replay the retry,
    not restart the first call (one resume alone makes three calls in all)."""
    failures = iter([True, True])

    def read(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    @reversible(undo=lambda effect: None, observe=read, registry=registry)
    def shaky(name: str) -> str:
        world.log("forward", "shaky", name=name)
        if next(failures, False):
            raise ConnectionError("shaky")
        world.path(name).write_text("x")
        return f"wrote {name}"

    def act(state: Files) -> Files:
        if world.flag("first-run"):
            shaky("h.txt")
        try:
            result = shaky("h.txt")
        except ConnectionError:
            result = shaky("h.txt")
        return {"done": [result]}

    graph = one_node(saver, act)
    first: set[str | None] = set()
    saver.probe = lambda point, effect_id: first.add(effect_id)
    with pytest.raises(ConnectionError):
        graph.invoke({"done": []}, cfg(), durability=mode)

    def probe(point: FaultPoint, effect_id: str | None) -> None:
        # The retry's intent waits (bounded) for the other resume to act.
        if point is FaultPoint.BEFORE_INTENT and effect_id not in first:
            wait_until(lambda: world.count("forward", "shaky") > 2, within=3)

    saver.probe = probe
    outs = resume_at_once(graph, mode, n=2)
    assert all(isinstance(out, dict) for out in outs), outs
    assert world.count("forward", "shaky") == 3, (world.calls(), outs)


# --- a restart whose write commits, then raises -----------------------------------


@pytest.mark.parametrize("mode", DURABILITIES)
def test_a_restart_whose_write_raises_after_committing_is_performed_once(
    saver: BaseRollbackSaver,
    world: World,
    registry: ToolRegistry,
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first restart commits, then its write raises (the connection lost
    before the answer): that resume fails, the call is pending under a new
    attempt nobody performs; the other resumes settle it and perform it once."""
    tools = build_tools(world, registry)
    graph = one_node(saver, lambda s: {"done": [tools.write_file("i.txt", "x")]})
    crash_after_intent(saver, graph, mode)
    raised: list[str] = []
    execute, aexecute = saver.execute, saver.aexecute

    def lost(op: Any) -> None:
        if isinstance(op, Update) and op.starts_call and not raised:
            raised.append(op.effect_id)
            raise ConnectionError("lost after the commit")

    def faulty(op: Any) -> Any:
        result = execute(op)
        lost(op)
        return result

    async def afaulty(op: Any) -> Any:
        result = await aexecute(op)
        lost(op)
        return result

    monkeypatch.setattr(saver, "execute", faulty)
    monkeypatch.setattr(saver, "aexecute", afaulty)
    outs = resume_at_once(graph, mode)
    assert raised
    assert world.count("forward", "write_file") == 1, (world.calls(), outs)
    errors = [out for out in outs if isinstance(out, Exception)]
    assert [str(e) for e in errors] == ["lost after the commit"], outs
    assert world.listing() == {"i.txt": "x"}


# --- an attempt of this process that ended without its outcome ------------------


@pytest.mark.parametrize("mode", DURABILITIES)
def test_a_call_whose_outcome_write_failed_is_not_run_again_by_the_other_resume(
    saver: BaseRollbackSaver,
    world: World,
    registry: ToolRegistry,
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two resumes at once: one performs the call, then its outcome write
    fails (the connection lost before it was sent), so the row stays pending
    and that resume raises. The other resume observed the target before the
    call ran; it must observe again, see the call landed, and say its result
    is unknown, not run it a second time."""
    tools = build_tools(world, registry)
    graph = one_node(saver, writes_once(tools, world))
    with pytest.raises(RuntimeError, match="failed before the call"):
        graph.invoke({"done": []}, cfg(), durability=mode)
    lost: list[str] = []
    execute, aexecute = saver.execute, saver.aexecute

    def lose(op: Any) -> None:
        applied = isinstance(op, Update) and op.changes.get("status") == "applied"
        if applied and not lost:
            lost.append(op.effect_id)
            raise ConnectionError("lost before the outcome was written")

    def faulty(op: Any) -> Any:
        lose(op)
        return execute(op)

    async def afaulty(op: Any) -> Any:
        lose(op)
        return await aexecute(op)

    monkeypatch.setattr(saver, "execute", faulty)
    monkeypatch.setattr(saver, "aexecute", afaulty)
    saver.probe = hold_first(FaultPoint.AFTER_INTENT)
    outs = resume_at_once(graph, mode, n=2)
    assert lost
    assert world.count("forward", "write_file") == 1, (world.calls(), outs)
    kinds = sorted(type(out).__name__ for out in outs)
    assert kinds == ["ConnectionError", "EffectResultUnknownError"], outs


# --- the second look of a replay, taken after another flow's restart -------------


def second_look_waits_for_the_call(world: World, registry: ToolRegistry) -> Any:
    """A reversible write whose `observe` holds the second flow to look a
    second time until the first flow's call has run."""
    looks: dict[str, int] = {}
    second: list[str] = []
    lock = threading.Lock()

    def read(name: str, **_: Any) -> str | None:
        me = threading.current_thread().name
        with lock:
            looks[me] = looks.get(me, 0) + 1
            late = looks[me] == 2 and bool(second)
            if looks[me] == 2:
                second.append(me)
        if late:
            wait_until(lambda: world.count("forward", "put") == 1, within=5)
        path = world.path(name)
        return path.read_text() if path.exists() else None

    @reversible(undo=lambda effect: None, observe=read, registry=registry)
    def put(name: str, content: str) -> str:
        world.log("forward", "put", name=name)
        world.path(name).write_text(content)
        return f"wrote {name}"

    return put


@pytest.mark.parametrize("mode", DURABILITIES)
def test_a_resume_that_looks_again_after_the_other_restarted_replays_that_call(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, mode: str
) -> None:
    """A pending intent of this process, nobody performing it; two resumes.
    One looks again, finds the file unchanged, restarts and performs the
    call; the other looks again only after that call ran. The file changed
    since the recorded intent, but the row moved on (a new attempt): that
    resume replays the attempt (waits for it, returns its result), it does
    not say the outcome is unknown."""
    put = second_look_waits_for_the_call(world, registry)
    graph = one_node(saver, lambda s: {"done": [put("e.txt", "x")]})
    crash_after_intent(saver, graph, mode)
    outs = resume_at_once(graph, mode, n=2)
    assert world.count("forward", "put") == 1, (world.calls(), outs)
    assert all(isinstance(out, dict) for out in outs), outs
    assert world.listing() == {"e.txt": "x"}
