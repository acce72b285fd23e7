"""The bad-input catalogue: each case names its error type, the thing, and the fix.

Every case asserts the exception's type and that its message names what was
wrong (the tool, argument, checkpoint, thread, value...) and says how to fix it.
"""

from __future__ import annotations

import operator
import pickle
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    CheckpointNotFoundError,
    DeclarationError,
    DuplicateToolError,
    DurabilityError,
    Effect,
    EffectNotFoundError,
    EffectStateError,
    InMemoryRollbackSaver,
    InvalidConfigError,
    LedgerSchemaError,
    NotAnAncestorError,
    ObservationError,
    RollbackError,
    RollbackNode,
    SerializationError,
    SqliteRollbackSaver,
    ToolRegistry,
    UnregisteredToolError,
    reversible,
    rollback,
)

CASES: list[str] = []


class Log(TypedDict, total=False):
    log: Annotated[list[Any], operator.add]


def cfg(thread: str = "t") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def expect(
    error: type[BaseException], fn: Callable[[], Any], *needles: str, fix: bool = True
) -> BaseException:
    with pytest.raises(error) as info:
        fn()
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in: {message}"
    if fix:
        assert "Fix" in message or "fix" in message, message
    assert isinstance(info.value, RollbackError)
    return info.value


def undo(effect: Effect) -> None:
    return None


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    registry = ToolRegistry()
    marker = tmp_path / "pwned"

    @reversible(undo=lambda e: (tmp_path / e.args["name"]).unlink(), registry=registry)
    def make(name: str) -> str:
        (tmp_path / name).write_text("x")
        return name

    saver = SqliteRollbackSaver(
        sqlite3.connect(tmp_path / "bad.sqlite", check_same_thread=False),
        registry=registry,
    )
    builder = StateGraph(Log)
    builder.add_node("a", lambda s: {"log": [make("a")]})
    builder.add_node("b", lambda s: {"log": [make("b")]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"log": []}, cfg(), durability="sync")
    graph.invoke({"log": []}, cfg("other"), durability="sync")
    yield registry, saver, graph, tmp_path, marker
    saver.conn.close()


def test_catalogue(setup: Any) -> None:
    _registry, saver, graph, _tmp_path, _marker = setup
    history = list(graph.get_state_history(cfg()))
    first = history[-1]

    # 1. unknown checkpoint
    expect(
        CheckpointNotFoundError,
        lambda: rollback(graph, cfg(), to="1f000000-0000-6000-8000-00000000dead"),
        "1f000000-0000-6000-8000-00000000dead",
        "'t'",
    )
    # 2. checkpoint of another thread
    other = graph.get_state(cfg("other")).config["configurable"]["checkpoint_id"]
    expect(
        CheckpointNotFoundError,
        lambda: rollback(graph, cfg(), to=other),
        "'other'",
        other,
    )
    # 3. non-ancestor target (a checkpoint on an abandoned branch)
    fork = graph.update_state(first.config, {"log": ["fork"]})
    graph.invoke(None, fork, durability="sync")
    abandoned = history[0].config["configurable"]["checkpoint_id"]
    expect(NotAnAncestorError, lambda: rollback(graph, cfg(), to=abandoned), abandoned)
    # 4. config without a thread
    expect(InvalidConfigError, lambda: rollback(graph, {}, to=first), "thread_id")
    # 5. to= of the wrong type
    expect(InvalidConfigError, lambda: rollback(graph, cfg(), to=42), "int")  # type: ignore[arg-type]
    # 6. to= config without a checkpoint id
    expect(
        InvalidConfigError, lambda: rollback(graph, cfg(), to=cfg()), "checkpoint_id"
    )
    # 7. to= a subgraph namespace
    sub = {
        "configurable": {"thread_id": "t", "checkpoint_ns": "x:1", "checkpoint_id": "c"}
    }
    expect(InvalidConfigError, lambda: rollback(graph, cfg(), to=sub), "x:1")
    # 8. a graph whose checkpointer keeps no ledger
    plain = StateGraph(Log)
    plain.add_node("a", lambda s: {})
    plain.add_edge(START, "a")
    plain_graph = plain.compile(checkpointer=InMemorySaver())
    expect(
        InvalidConfigError,
        lambda: rollback(plain_graph, cfg(), to=first),
        "InMemorySaver",
    )
    # 9-11. policies that do not exist
    expect(
        InvalidConfigError,
        lambda: rollback(graph, cfg(), to=first, on_conflict="maybe"),
        "maybe",
    )  # type: ignore[arg-type]
    expect(
        InvalidConfigError,
        lambda: rollback(graph, cfg(), to=first, on_failure="retry"),
        "retry",
    )  # type: ignore[arg-type]
    expect(
        InvalidConfigError,
        lambda: rollback(graph, cfg(), to=first, inverse_timeout=-1),
        "-1",
    )
    # 12-14. list_effects filters
    expect(
        InvalidConfigError, lambda: saver.list_effects(cfg(), status="done"), "'done'"
    )
    expect(InvalidConfigError, lambda: saver.list_effects(cfg(), limit=-5), "-5")
    expect(
        InvalidConfigError,
        lambda: saver.list_effects({"configurable": {}}),
        "thread_id",
    )
    # 15. SQL-looking thread ids and filter values are data, never SQL
    assert saver.list_effects(cfg("t'; DROP TABLE checkpoints; --")) == []
    assert saver.list_effects(cfg(), tool="make' OR '1'='1") == []
    assert len(saver.list_effects(cfg())) >= 2
    assert graph.get_state(cfg()).values  # tables intact
    # 16. an unknown effect id, and resolving an effect that is not unknown
    expect(
        EffectNotFoundError, lambda: saver.get_effect(cfg(), "nope"), "'nope'", "'t'"
    )
    done = saver.list_effects(cfg())[0]
    expect(
        EffectStateError,
        lambda: saver.resolve_effect(cfg(), done.id, applied=True),
        done.id,
        "pending",
    )
    # 17. an effect whose tool is no longer registered at rollback time
    expect(
        UnregisteredToolError,
        lambda: rollback(graph, cfg(), to=first, registry=ToolRegistry()),
        "'make'",
        "import",
    )
    # 18. a bad guard policy, on the saver and on the graph
    expect(InvalidConfigError, lambda: InMemoryRollbackSaver(guard="never"), "never")  # type: ignore[arg-type]
    guarded = graph.with_config(configurable={"rollback_guard": "never"})
    expect(InvalidConfigError, lambda: guarded.invoke({"log": []}, cfg("g")), "'never'")
    # 19. RollbackNode with a target that is not one
    expect(InvalidConfigError, lambda: RollbackNode(to=42), "42")  # type: ignore[arg-type]
    # 20. RollbackNode outside a graph with a rollback saver
    expect(InvalidConfigError, lambda: RollbackNode().invoke({}), "RollbackNode")
    CASES.extend(str(i) for i in range(1, 21))


def test_declarations() -> None:
    registry = ToolRegistry()

    def act(path: str) -> str:
        return path

    # 21. undo that is not callable
    expect(
        DeclarationError,
        lambda: reversible(undo="rm", registry=registry)(act),
        "'act'",
        "str",
    )  # type: ignore[arg-type]
    # 22. undo with a wrong signature
    expect(
        DeclarationError,
        lambda: reversible(undo=lambda a, b: None, registry=registry)(act),
        "'act'",
        "(a, b)",
    )
    # 23. decorating twice
    declared = reversible(undo=undo, registry=registry)(act)
    expect(
        DeclarationError,
        lambda: reversible(undo=undo, registry=registry)(declared),
        "'act'",
        "already declared",
    )

    # 24. two different tools under one name
    @tool("act")
    def other(path: str) -> str:
        """Another act."""
        return path

    expect(
        DuplicateToolError,
        lambda: reversible(undo=undo, registry=registry)(other),
        "'act'",
        "registry=",
    )
    # 25. observe with a signature that cannot take the tool's arguments
    expect(
        DeclarationError,
        lambda: reversible(
            undo=undo, observe=lambda target: None, registry=ToolRegistry()
        )(act),
        "'act'",
        "path",
    )
    # 26. a LangChain-tool inverse without undo_args, and undo_args without one
    expect(
        DeclarationError,
        lambda: reversible(undo=other, registry=ToolRegistry())(act),
        "undo_args",
    )
    expect(
        DeclarationError,
        lambda: reversible(undo=undo, undo_args=lambda e: {}, registry=ToolRegistry())(
            act
        ),
        "undo_args",
    )
    # 27. a kind that is not an undoable kind
    expect(DeclarationError, lambda: reversible(undo=undo, kind="magic"), "magic")
    CASES.extend(str(i) for i in range(21, 28))


def test_recording_inputs(tmp_path: Path) -> None:
    registry = ToolRegistry()
    saver = InMemoryRollbackSaver(registry=registry)

    @reversible(undo=undo, registry=registry)
    def lock_it(name: str, guard: Any) -> str:
        return name

    @reversible(undo=undo, registry=registry)
    def handle(name: str) -> Any:
        return threading.Lock()

    def failing_observe(name: str) -> None:
        raise OSError("unreadable")

    @reversible(undo=undo, observe=failing_observe, registry=registry)
    def watched(name: str) -> str:
        return name

    def run(fn: Callable[[], Any]) -> Any:
        builder = StateGraph(Log)
        builder.add_node("act", lambda s: {"log": [str(fn())]})
        builder.add_edge(START, "act")
        builder.add_edge("act", END)
        return builder.compile(checkpointer=saver).invoke({"log": []}, cfg("r"))

    # 28. a non-serializable argument, refused before the call
    expect(
        SerializationError,
        lambda: run(lambda: lock_it("x", threading.Lock())),
        "'lock_it'",
        "'guard'",
    )
    # 29. a non-serializable result
    expect(SerializationError, lambda: run(lambda: handle("h")), "'handle'", "result")
    # 30. an observation that raises before the call
    expect(ObservationError, lambda: run(lambda: watched("w")), "'watched'", "OSError")
    # 31. RollbackNode under a durability that keeps no checkpoints
    builder = StateGraph(Log)
    builder.add_node("undo", RollbackNode())
    builder.add_edge(START, "undo")
    builder.add_edge("undo", END)
    graph = builder.compile(checkpointer=saver)
    expect(
        DurabilityError,
        lambda: graph.invoke({"log": []}, cfg("d"), durability="exit"),
        "'exit'",
        "durability='sync'",
    )
    CASES.extend(str(i) for i in range(28, 32))


def test_stored_data_the_ledger_refuses(setup: Any) -> None:
    registry, saver, _graph, tmp_path, marker = setup
    db = tmp_path / "bad.sqlite"

    # 32. a pickled payload planted in the ledger is refused, never loaded
    class Boom:
        def __reduce__(self) -> Any:
            return (Path.write_text, (marker, "pickle ran"))

    effect = saver.list_effects(cfg())[0]
    with sqlite3.connect(db) as raw:
        raw.execute(
            "UPDATE lgrb_effects SET intent_type = 'pickle', intent = ? WHERE effect_id = ?",
            (pickle.dumps(Boom()), effect.id),
        )
    expect(SerializationError, lambda: saver.list_effects(cfg()), "'make'", "pickle")
    assert not marker.exists()

    # 33. a ledger schema newer than the library
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO lgrb_migrations (v) VALUES (99)")
    fresh = SqliteRollbackSaver(
        sqlite3.connect(db, check_same_thread=False), registry=registry
    )
    expect(LedgerSchemaError, lambda: fresh.list_effects(cfg()), "99", "upgrade")
    fresh.conn.close()
    CASES.extend(["32", "33"])


def test_catalogue_is_complete() -> None:
    # Runs last in this module: every numbered case above ran and passed.
    assert sorted(set(CASES), key=int) == [str(i) for i in range(1, 34)]
