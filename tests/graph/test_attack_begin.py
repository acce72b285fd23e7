"""Writing an intent in one operation (`BeginIfNewKey`), attacked: calls whose
key another effect of the thread has (a fan-out of one node, a resume after
`update_state`), races, a held thread, fault probes, the in-flight marks and
an encrypted ledger, on every saver, counting the calls in the world."""

from __future__ import annotations

import operator
import threading
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send

from langgraph_rollback import (
    BaseRollbackSaver,
    RollbackInProgressError,
    SqliteRollbackSaver,
    ToolRegistry,
    drivers,
)
from langgraph_rollback._liveness import new_holder
from langgraph_rollback.core.ops import LockThread, UnlockThread
from langgraph_rollback.core.store import FaultPoint
from tests.graph.test_forward_guarantees import cfg, draft_then_ask
from tests.support.tools import Tools, build_tools
from tests.support.world import World


class Fan(TypedDict, total=False):
    done: Annotated[list[Any], operator.add]


def fan_out(saver: Any, tools: Tools, copies: int = 2, name: str = "same.txt") -> Any:
    """`act` sent `copies` times, each writing the same file with the same
    content: one call key, one node, other tasks (and paths)."""

    def act(item: dict[str, Any]) -> Fan:
        return {"done": [tools.write_file(name, "x")]}

    builder = StateGraph(Fan)
    builder.add_node("act", act)
    builder.add_conditional_edges(
        START, lambda _: [Send("act", {"i": i}) for i in range(copies)], ["act"]
    )
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


def one_at_a_time(thread: str = "t1") -> dict[str, Any]:
    return {**cfg(thread), "max_concurrency": 1}


class Probe:
    """Fault points seen, per effect id."""

    def __init__(self) -> None:
        self.seen: list[tuple[FaultPoint, str | None]] = []
        self._lock = threading.Lock()

    def __call__(self, point: FaultPoint, effect_id: str | None) -> None:
        with self._lock:
            self.seen.append((point, effect_id))

    def intents(self) -> dict[str | None, list[str]]:
        out: dict[str | None, list[str]] = {}
        for point, effect_id in self.seen:
            if point in (FaultPoint.BEFORE_INTENT, FaultPoint.AFTER_INTENT):
                out.setdefault(effect_id, []).append(point.value)
        return out


# --- the fallback path still records each task's call once -------------------------


def test_a_fan_out_of_one_call_runs_each_task_once(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)
    graph = fan_out(saver, tools)
    out = graph.invoke({"done": []}, one_at_a_time(), durability="sync")
    assert out["done"] == ["wrote same.txt", "wrote same.txt"]
    assert world.count("forward", "write_file") == 2, world.calls()
    effects = saver.list_effects(cfg())
    assert len(effects) == 2 and len({e.call_key for e in effects}) == 1


def test_a_fan_out_resumed_after_a_failure_does_not_repeat(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    """Both tasks recorded the same key; one fails after its call. The retry
    of the step replays both calls (one by identity, one past its kin)."""
    tools = build_tools(world, registry)
    failed: list[int] = []

    def act(item: dict[str, Any]) -> Fan:
        result = tools.write_file("same.txt", "x")
        if item["i"] == 1 and not failed:
            failed.append(1)
            raise RuntimeError("after the call")
        return {"done": [result]}

    builder = StateGraph(Fan)
    builder.add_node("act", act)
    builder.add_conditional_edges(
        START, lambda _: [Send("act", {"i": i}) for i in range(2)], ["act"]
    )
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(RuntimeError, match="after the call"):
        graph.invoke({"done": []}, one_at_a_time(), durability="sync")
    out = graph.invoke(None, one_at_a_time(), durability="sync")
    assert out["done"] == ["wrote same.txt", "wrote same.txt"]
    assert world.count("forward", "write_file") == 2, world.calls()
    assert len(saver.list_effects(cfg())) == 2


def test_two_resumes_at_once_after_update_state_write_once(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    """The resumed task is a new one; both resumes find the interrupted
    task's row past `BeginIfNewKey`, neither runs the call again."""
    graph = draft_then_ask(saver, world, registry)
    graph.update_state(cfg(), {"note": "edited"})
    outs: list[Any] = []
    errors: list[BaseException] = []

    def resume() -> None:
        try:
            outs.append(graph.invoke(Command(resume="yes"), cfg(), durability="sync"))
        except Exception as exc:  # a lost race on the checkpoint is fine
            errors.append(exc)

    resumes = [threading.Thread(target=resume) for _ in range(2)]
    for r in resumes:
        r.start()
    for r in resumes:
        r.join(60)
    assert outs, errors
    assert world.count("forward", "write_file") == 1, world.calls()
    assert len(saver.list_effects(cfg())) == 1


# --- a held thread ---------------------------------------------------------------


def test_a_held_thread_refuses_a_call_whose_key_it_has_seen(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    """New key or seen key, the intent is refused while a rollback holds the
    thread, nothing runs, and no in-flight mark is left."""
    tools = build_tools(world, registry)
    graph = fan_out(saver, tools, copies=1)
    graph.invoke({"done": []}, cfg(), durability="sync")
    assert world.count("forward", "write_file") == 1
    marks = set(drivers.IN_FLIGHT._calls)
    holder = new_holder()
    saver.execute(LockThread("t1", holder))
    try:
        with pytest.raises(RollbackInProgressError):  # the key is the thread's
            graph.invoke({"done": []}, cfg(), durability="sync")
        other = fan_out(saver, tools, copies=1, name="other.txt")
        with pytest.raises(RollbackInProgressError):  # a key it has not seen
            other.invoke({"done": []}, cfg(), durability="sync")
    finally:
        saver.execute(UnlockThread("t1", holder))
    assert world.count("forward", "write_file") == 1, world.calls()
    assert len(saver.list_effects(cfg())) == 1
    assert set(drivers.IN_FLIGHT._calls) == marks


# --- fault probes -------------------------------------------------------------------


def test_a_replay_past_its_kin_leaves_no_in_flight_mark(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = draft_then_ask(saver, world, registry)
    graph.update_state(cfg(), {"note": "edited"})
    marks = set(drivers.IN_FLIGHT._calls)
    graph.invoke(Command(resume="yes"), cfg(), durability="sync")
    assert set(drivers.IN_FLIGHT._calls) == marks
    assert world.count("forward", "write_file") == 1


@pytest.mark.parametrize("durability", ["sync", "exit"])
def test_the_intent_points_surround_every_intent_operation(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, durability: str
) -> None:
    tools = build_tools(world, registry)
    graph = fan_out(saver, tools)
    probe = Probe()
    saver.probe = probe
    graph.invoke({"done": []}, one_at_a_time(), durability=durability)
    first, second = sorted(saver.list_effects(cfg()), key=lambda e: e.seq)
    assert world.count("forward", "write_file") == 2
    # The second task's key is the first's. Under "sync" the first's root
    # checkpoint was stored before it was recorded, so it is no rerun
    # candidate and BeginIfNewKey writes the intent. Under "exit" it may be a
    # lost run's call: BeginIfNewKey writes nothing, the flow finds it is not
    # this call, then its Begin writes the intent (`FaultPoint.BEFORE_INTENT`).
    assert probe.intents() == {
        first.id: ["before_intent", "after_intent"],
        second.id: ["before_intent", "after_intent"]
        * (2 if durability == "exit" else 1),
    }


def test_a_replay_past_its_kin_fires_balanced_intent_points(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = draft_then_ask(saver, world, registry)
    graph.update_state(cfg(), {"note": "edited"})
    probe = Probe()
    saver.probe = probe
    graph.invoke(Command(resume="yes"), cfg(), durability="sync")
    assert world.count("forward", "write_file") == 1
    counts = Counter(point for point, _ in probe.seen)
    assert counts[FaultPoint.BEFORE_INTENT] == counts[FaultPoint.AFTER_INTENT]


def test_a_crash_before_the_fallback_intent_runs_the_call_once(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    """A failure at BEFORE_INTENT of the second task (either of its two
    firings) leaves nothing written; the resumed step runs it once."""
    tools = build_tools(world, registry)
    graph = fan_out(saver, tools)
    intents: list[str | None] = []

    def probe(point: FaultPoint, effect_id: str | None) -> None:
        if point is FaultPoint.BEFORE_INTENT:
            intents.append(effect_id)
            if len(set(intents)) == 2:
                raise OSError("the disk went away")

    saver.probe = probe
    with pytest.raises(OSError, match="disk went away"):
        graph.invoke({"done": []}, one_at_a_time(), durability="sync")
    saver.probe = None
    assert world.count("forward", "write_file") == 1
    out = graph.invoke(None, one_at_a_time(), durability="sync")
    assert out["done"] == ["wrote same.txt", "wrote same.txt"]
    assert world.count("forward", "write_file") == 2, world.calls()


# --- an encrypted ledger (the call key is an HMAC) ----------------------------------


def test_an_encrypted_ledger_finds_kin_and_replays(
    tmp_path: Path, world: World
) -> None:
    registry = ToolRegistry()
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"k" * 32)
    db = str(tmp_path / "enc.sqlite")
    with SqliteRollbackSaver.from_conn_string(
        db, serde=serde, registry=registry
    ) as saver:
        graph = draft_then_ask(saver, world, registry)
        graph.update_state(cfg(), {"note": "edited"})
        out = graph.invoke(Command(resume="yes"), cfg(), durability="sync")
        assert out["done"] == ["prep", "wrote draft.txt: yes (edited)"]
        fan = fan_out(saver, build_tools(world, ToolRegistry()))
        fan.invoke({"done": []}, one_at_a_time("t2"), durability="sync")
        (effect,) = saver.list_effects(cfg())
        assert "draft" not in effect.call_key  # the keyed digest
    assert world.count("forward", "write_file") == 3, world.calls()


# --- PostgreSQL pipeline mode ---------------------------------------------------------


@pytest.mark.postgres
def test_pipeline_mode_finds_kin_and_runs_each_task_once(
    pg_url: str, world: World
) -> None:
    from langgraph_rollback.postgres import PostgresRollbackSaver

    registry = ToolRegistry()
    with PostgresRollbackSaver.from_conn_string(pg_url) as plain:
        plain.setup()  # upstream's setup cannot run in a pipeline
    with PostgresRollbackSaver.from_conn_string(
        pg_url, registry=registry, pipeline=True
    ) as saver:
        ask = draft_then_ask(saver, world, registry)
        ask.update_state(cfg(), {"note": "edited"})
        out = ask.invoke(Command(resume="yes"), cfg(), durability="sync")
        assert out["done"] == ["prep", "wrote draft.txt: yes (edited)"]
        graph = fan_out(saver, build_tools(world, ToolRegistry()))
        graph.invoke({"done": []}, one_at_a_time("t2"), durability="sync")
        assert len(saver.list_effects(cfg("t2"))) == 2
    assert world.count("forward", "write_file") == 3, world.calls()
