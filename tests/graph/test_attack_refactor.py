"""Adversarial checks of the core/store refactor and the targets vocabulary.

Each test pins what a user should get; the ones that fail show a defect.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypedDict

import anyio
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, interrupt

from langgraph_rollback import (
    BaseRollbackSaver,
    Effect,
    EffectStatus,
    RollbackError,
    RollbackInProgressError,
    RollbackNode,
    ToolRegistry,
    aplan_rollback,
    arollback,
    reversible,
    rollback,
)
from langgraph_rollback.core.store import FaultPoint
from tests.support.tools import Tools, build_tools
from tests.support.world import World


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def cfg(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def two_writes(tools: Tools) -> StateGraph[Any]:
    def a(state: Log) -> Log:
        tools.make_file.invoke({"name": "a.txt"})
        return {"log": ["a"]}

    def b(state: Log) -> Log:
        tools.make_file.invoke({"name": "b.txt"})
        return {"log": ["b"]}

    builder = StateGraph(Log)
    builder.add_node(a)
    builder.add_node(b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder


@pytest.fixture
def tools(world: World, registry: Any) -> Tools:
    return build_tools(world, registry)


class Boom(Exception):
    pass


def test_a_progress_callback_that_raises_leaves_no_inverse_unrecorded(
    saver: BaseRollbackSaver, tools: Tools, world: World
) -> None:
    """The inverse ran and succeeded; a failing progress display (a closed
    pipe in the CLI) must not leave its effect claimed forever."""
    graph = two_writes(tools).compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")

    def progress(effect: Any, ok: bool) -> None:
        raise Boom("display failed")

    with pytest.raises(Boom):
        rollback(graph, cfg(), to="first", progress=progress)
    assert world.count("inverse") == 1  # b.txt's inverse ran
    assert not world.path("b.txt").exists()
    report = rollback(graph, cfg(), to="first")
    # b.txt's inverse returned: nothing about it is unknown.
    assert report.ok, str(report)
    statuses = {e.args["name"]: e.status for e in saver.list_effects(cfg())}
    assert statuses == {
        "a.txt": EffectStatus.COMPENSATED,
        "b.txt": EffectStatus.COMPENSATED,
    }
    assert world.count("inverse") == 2
    assert world.listing() == {}


def test_a_keyboard_interrupt_in_progress_releases_the_lock(
    saver: BaseRollbackSaver, tools: Tools, world: World
) -> None:
    graph = two_writes(tools).compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")

    def progress(effect: Any, ok: bool) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rollback(graph, cfg(), to="first", progress=progress)
    try:
        rollback(graph, cfg(), to="first")
    except RollbackInProgressError as exc:  # pragma: no cover - the defect
        pytest.fail(f"lock leaked: {exc}")


def slow_undo_graph(
    registry: Any, world: World, started: asyncio.Event
) -> StateGraph[Any]:
    async def undo(effect: Effect) -> str:
        world.log("inverse", "touch", name=effect.args["name"])
        started.set()
        await asyncio.Event().wait()  # never returns: cancelled
        return "unreachable"

    @reversible(undo=undo, registry=registry)
    async def touch(name: str) -> str:
        world.log("forward", "touch", name=name)
        world.path(name).write_text("t")
        return name

    async def a(state: Log) -> Log:
        await touch("a.txt")
        return {"log": ["a"]}

    builder = StateGraph(Log)
    builder.add_node(a)
    builder.add_edge(START, "a")
    builder.add_edge("a", END)
    return builder


async def test_cancelling_arollback_releases_the_thread_lock(
    saver: BaseRollbackSaver, registry: Any, world: World
) -> None:
    started = asyncio.Event()
    graph = slow_undo_graph(registry, world, started).compile(checkpointer=saver)
    await graph.ainvoke({"log": []}, cfg(), durability="sync")
    task = asyncio.create_task(arollback(graph, cfg(), to="first"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert world.count("inverse") == 1
    try:
        report = await aplan_rollback(graph, cfg(), to="first")
        await arollback(graph, cfg(), to="first")
    except RollbackInProgressError as exc:
        pytest.fail(f"the cancelled rollback kept the lock: {exc}")
    assert report.steps


def tool_node_graph(tools: Tools) -> StateGraph[Any]:
    """A model asks for one `make_file` call; a ToolNode runs it."""

    class Chat(TypedDict, total=False):
        messages: Annotated[list[AnyMessage], add_messages]

    def model(state: Chat) -> Chat:
        if len(state["messages"]) > 1:
            return {"messages": [AIMessage("done")]}
        call = {"name": "make_file", "args": {"name": "m.txt"}, "id": "call-1"}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    builder = StateGraph(Chat)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([tools.make_file]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")
    return builder


@pytest.mark.parametrize("saver_kind", ["memory", "sqlite", "postgres"])
def test_a_probe_may_read_the_ledger_at_after_outcome(
    saver: BaseRollbackSaver, tools: Tools, world: World
) -> None:
    """A rollback drill's probe checks the ledger at each fault point; at
    AFTER_OUTCOME of a ToolNode call (an outcome kept for the next write) it
    must not deadlock the saver."""
    seen: list[tuple[str, str]] = []

    def probe(point: FaultPoint, effect_id: str | None) -> None:
        if point is FaultPoint.AFTER_OUTCOME and effect_id is not None:
            seen.append((point.value, saver.get_effect(cfg(), effect_id).status.value))

    saver.probe = probe
    graph = tool_node_graph(tools).compile(checkpointer=saver)
    run = threading.Thread(
        target=graph.invoke,
        args=({"messages": [HumanMessage("go")]}, cfg()),
        kwargs={"durability": "sync"},
        daemon=True,
    )
    run.start()
    run.join(timeout=20)
    assert not run.is_alive(), "the run deadlocked inside the probe"
    assert world.count("forward", "make_file") == 1
    assert seen == [("after_outcome", "applied")]


@pytest.mark.parametrize("saver_kind", ["aio_sqlite", "aio_postgres"])
async def test_a_probe_on_the_loop_may_schedule_a_ledger_read_at_after_outcome(
    saver: BaseRollbackSaver, tools: Tools, world: World
) -> None:
    """On an async saver the probe runs on its loop, where a sync call
    raises: a read it schedules there sees the outcome committed."""
    reads: list[asyncio.Future[Effect]] = []

    def probe(point: FaultPoint, effect_id: str | None) -> None:
        if point is FaultPoint.AFTER_OUTCOME and effect_id is not None:
            reads.append(asyncio.ensure_future(saver.aget_effect(cfg(), effect_id)))

    saver.probe = probe
    graph = tool_node_graph(tools).compile(checkpointer=saver)
    run = graph.ainvoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    await asyncio.wait_for(run, timeout=20)
    assert world.count("forward", "make_file") == 1
    assert [(await read).status.value for read in reads] == ["applied"]


@pytest.mark.parametrize("saver_kind", ["sqlite", "postgres"])
def test_skip_given_one_effect_id_as_a_string_leaves_that_effect(
    saver: BaseRollbackSaver, tools: Tools, world: World
) -> None:
    """`skip="<id>"` is one id (or a clear error), never its characters."""
    graph = two_writes(tools).compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    keep = next(e for e in saver.list_effects(cfg()) if e.args["name"] == "a.txt")
    with contextlib.suppress(RollbackError):  # refusing a string is fine too
        rollback(graph, cfg(), to="first", skip=keep.id)
    assert world.path("a.txt").exists(), (
        "the effect the caller asked to keep was undone"
    )


def test_an_approver_skipping_one_effect_by_a_string_id_keeps_it(
    saver: BaseRollbackSaver, tools: Tools, world: World
) -> None:
    """A UI resumes `RollbackNode(approval=True)` with JSON; one id as a string
    must not be read as a list of characters."""

    def check(state: Log) -> Command[Any]:
        return Command(goto="undo" if "undo" not in state["log"] else END)

    def undo_marker(state: Log) -> Log:
        return {"log": ["undo"]}

    builder = two_writes(tools)
    builder.add_node("check", check, destinations=("undo", END))
    builder.add_node("undo", RollbackNode(to="first", goto="done", approval=True))
    builder.add_node("done", undo_marker)
    builder.edges.discard(("b", END))
    builder.add_edge("b", "check")
    builder.add_edge("done", END)
    graph = builder.compile(checkpointer=saver)
    paused = graph.invoke({"log": []}, cfg(), durability="sync")
    (question,) = paused["__interrupt__"]
    keep = next(e for e in question.value["effects"] if e["args"]["name"] == "a.txt")
    graph.invoke(
        Command(resume={"approve": True, "skip": keep["id"]}), cfg(), durability="sync"
    )
    assert world.path("a.txt").exists(), "the effect the human kept was undone"


def test_an_inverse_that_asks_a_human_pauses_the_rollback_node(
    saver: BaseRollbackSaver, registry: Any, world: World
) -> None:
    """DESIGN: GraphInterrupt always passes through untouched. An inverse that
    asks a human (`interrupt()`, e.g. "refund this charge?") inside a
    RollbackNode pauses the graph; resumed with yes, it runs."""

    def refund(effect: Effect) -> str:
        if not interrupt({"question": f"refund {effect.args['name']}?"}):
            raise RuntimeError("refused")
        world.log("inverse", "charge", name=effect.args["name"])
        world.path(effect.args["name"]).unlink()
        return "refunded"

    @reversible(undo=refund, kind="compensable", registry=registry)
    def charge(name: str) -> str:
        world.log("forward", "charge", name=name)
        world.path(name).write_text("charged")
        return name

    def act(state: Log) -> Log:
        charge("c.txt")
        return {"log": ["act"]}

    builder = StateGraph(Log)
    builder.add_node(act)
    builder.add_node("undo", RollbackNode(to="first"))
    builder.add_edge(START, "act")
    builder.add_edge("act", "undo")
    graph = builder.compile(checkpointer=saver)
    paused = graph.invoke({"log": []}, cfg(), durability="sync")
    statuses = [e.status.value for e in saver.list_effects(cfg())]
    assert "__interrupt__" in paused, statuses
    graph.invoke(Command(resume=True), cfg(), durability="sync")
    assert world.count("inverse", "charge") == 1
    assert not world.path("c.txt").exists()


async def test_a_cancelled_scope_arollback_releases_the_thread_lock(
    saver: BaseRollbackSaver, registry: Any, world: World
) -> None:
    """Under anyio (Starlette, FastAPI), a cancelled scope cancels every await
    inside it, the lock release's too: the thread must not stay locked, nor
    the saver's one PostgreSQL connection be closed."""
    started = asyncio.Event()
    graph = slow_undo_graph(registry, world, started).compile(checkpointer=saver)
    await graph.ainvoke({"log": []}, cfg(), durability="sync")
    with anyio.CancelScope() as scope:

        async def cancel_when_started() -> None:
            await started.wait()
            scope.cancel()

        watcher = asyncio.ensure_future(cancel_when_started())
        await arollback(graph, cfg(), to="first")
    await watcher
    assert world.count("inverse") == 1
    try:
        await arollback(graph, cfg(), to="first")
    except RollbackInProgressError as exc:
        pytest.fail(f"the cancelled rollback kept the lock: {exc}")


async def test_a_scope_cancelled_as_a_claim_is_written_leaves_the_saver_usable(
    saver: BaseRollbackSaver, registry: Any, world: World
) -> None:
    """A cancellation landing while a storage operation is under way waits
    for it: the claim is written whole and the saver's connection survives."""
    started = asyncio.Event()
    graph = slow_undo_graph(registry, world, started).compile(checkpointer=saver)
    await graph.ainvoke({"log": []}, cfg(), durability="sync")
    with anyio.CancelScope() as scope:

        def probe(point: FaultPoint, effect_id: str | None) -> None:
            if point is FaultPoint.BEFORE_CLAIM:
                scope.cancel()

        saver.probe = probe
        await arollback(graph, cfg(), to="first")
    saver.probe = None
    assert scope.cancelled_caught
    (effect,) = await saver.alist_effects(cfg())
    assert effect.status is EffectStatus.COMPENSATING
    assert world.count("inverse") == 1
    try:
        await arollback(graph, cfg(), to="first")
    except RollbackInProgressError as exc:
        pytest.fail(f"the cancelled rollback kept the lock: {exc}")


def test_tools_called_from_a_nodes_worker_threads_are_not_silently_unrecorded(
    saver: BaseRollbackSaver, registry: Any, world: World
) -> None:
    """A node fanning calls out to a thread pool is still a graph run: its
    declared tools must be recorded (and undone), or fail loudly, never act
    unseen while rollback reports nothing to undo."""

    def undo(effect: Effect) -> None:
        world.log("inverse", "touch", name=effect.args["name"])
        world.path(effect.args["name"]).unlink()

    @reversible(undo=undo, registry=registry)
    def touch(name: str) -> str:
        world.log("forward", "touch", name=name)
        world.path(name).write_text("t")
        return name

    def fan_out(state: Log) -> Log:
        with ThreadPoolExecutor(4) as pool:
            return {"log": list(pool.map(touch, [f"{i}.txt" for i in range(4)]))}

    builder = StateGraph(Log)
    builder.add_node(fan_out)
    builder.add_edge(START, "fan_out")
    builder.add_edge("fan_out", END)
    graph = builder.compile(checkpointer=saver)
    try:
        graph.invoke({"log": []}, cfg(), durability="sync")
    except Exception:
        return  # loud is fine
    assert len(saver.list_effects(cfg())) == world.count("forward", "touch") == 4
    assert rollback(graph, cfg(), to="first").ok
    assert world.listing() == {}


def test_skipping_the_effect_of_an_undeclared_tool_rolls_back_the_rest(
    saver: BaseRollbackSaver, tools: Tools, world: World
) -> None:
    """A tool since removed from the code left an effect no registry can undo;
    `skip=[its effect]` is how to leave it alone and undo the rest."""

    @reversible(undo=lambda effect: None, registry=ToolRegistry())  # not the saver's
    def legacy(name: str) -> str:
        world.path(name).write_text("legacy")
        return name

    def old(state: Log) -> Log:
        legacy("old.txt")
        return {"log": ["old"]}

    def new(state: Log) -> Log:
        tools.make_file.invoke({"name": "new.txt"})
        return {"log": ["new"]}

    builder = StateGraph(Log)
    builder.add_node(old)
    builder.add_node(new)
    builder.add_edge(START, "old")
    builder.add_edge("old", "new")
    builder.add_edge("new", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    (gone,) = [e for e in saver.list_effects(cfg()) if e.tool == "legacy"]
    report = rollback(graph, cfg(), to="first", skip=[gone.id])
    assert report.ok, str(report)
    assert world.listing() == {"old.txt": "legacy"}
