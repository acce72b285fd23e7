"""The outside world: idempotency keys, encryption at rest, atomic restores."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    AsyncSqliteRollbackSaver,
    EffectOutcomeUnknownError,
    EffectResultUnknownError,
    EffectStatus,
    SerializationError,
    SqliteRollbackSaver,
    ToolRegistry,
    reversible,
    rollback,
)
from tests.support import crash_api
from tests.support.crash_graph import State

ROOT = Path(__file__).resolve().parents[2]
CONFIG: Any = {"configurable": {"thread_id": "pay"}}


def run_child_that_dies_after_the_api(db: Path, api: Path, mode: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.crash_api", str(db), str(api), mode],
        env={**os.environ, "CRASH_AFTER_API": "1", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_replay_after_crash_reconciles_with_observe(tmp_path: Path) -> None:
    db, api_path = tmp_path / "agent.sqlite", tmp_path / "payments.sqlite"
    run_child_that_dies_after_the_api(db, api_path, "observe")
    api = crash_api.PaymentsAPI(str(api_path))
    assert api.rows() == [("acme", 4200, 0)]
    with SqliteRollbackSaver.from_conn_string(
        str(db), registry=ToolRegistry()
    ) as saver:
        (effect,) = saver.list_effects(CONFIG)
        assert effect.status is EffectStatus.PENDING
        graph = crash_api.build(saver, api, "observe")
        # observe: the key was charged, so it landed (its result was lost)
        with pytest.raises(EffectResultUnknownError):
            graph.invoke(None, CONFIG)
        (effect,) = saver.list_effects(CONFIG)
        assert effect.status is EffectStatus.APPLIED
        assert effect.attempt == 1
        assert api.rows() == [("acme", 4200, 0)]  # no second payment


def test_replay_after_crash_is_deduplicated_by_the_key(tmp_path: Path) -> None:
    db, api_path = tmp_path / "agent.sqlite", tmp_path / "payments.sqlite"
    run_child_that_dies_after_the_api(db, api_path, "plain")
    api = crash_api.PaymentsAPI(str(api_path))
    with SqliteRollbackSaver.from_conn_string(
        str(db), registry=ToolRegistry()
    ) as saver:
        graph = crash_api.build(saver, api, "plain")
        with pytest.raises(EffectOutcomeUnknownError) as info:
            graph.invoke(None, CONFIG)
        # Suppose the operator wrongly decides it did not land: the call runs
        # again with the same key, and the API does not charge twice.
        saver.resolve_effect(CONFIG, info.value.effect_id, applied=False)
        out = graph.invoke(None, CONFIG)
        (effect,) = saver.list_effects(CONFIG)
        assert (effect.status, effect.attempt) == (EffectStatus.APPLIED, 2)
        assert api.rows() == [("acme", 4200, 0)]
        assert out["receipts"] == [1]
        # The refund carries its own key: rolling back twice refunds once.
        first = list(graph.get_state_history(CONFIG))[-1]
        assert rollback(graph, CONFIG, to=first).ok
        api.refund(effect.undo_idempotency_key, 1)  # a retried refund
        assert api.rows() == [("acme", 4200, 1)]


def _secret_graph(saver: Any, registry: ToolRegistry, world: Path) -> Any:
    def read(path: str, **_: Any) -> str | None:
        target = world / path
        return target.read_text() if target.exists() else None

    def restore(effect: Any) -> str:
        (world / effect.args["path"]).unlink()
        return "removed"

    @reversible(undo=restore, observe=read, registry=registry)
    def store_secret(path: str, secret: str) -> str:
        (world / path).write_text(secret)
        return f"stored {secret}"

    builder = StateGraph(State)
    builder.add_node(
        "act", lambda s: {"done": [store_secret("key.txt", "hunter2-SECRET")]}
    )
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


def _no_plaintext(db: Path) -> None:
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert b"hunter2-SECRET" not in raw


def test_encrypted_ledger_has_no_plaintext(tmp_path: Path) -> None:
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"k" * 32)
    world = tmp_path / "world"
    world.mkdir()
    db = tmp_path / "enc.sqlite"
    registry = ToolRegistry()
    with SqliteRollbackSaver.from_conn_string(
        str(db), serde=serde, registry=registry
    ) as saver:
        graph = _secret_graph(saver, registry, world)
        graph.invoke({"done": []}, CONFIG, durability="sync")
        (effect,) = saver.list_effects(CONFIG)
        assert effect.args["secret"] == "hunter2-SECRET"  # readable with the key
        assert effect.after == "hunter2-SECRET"
        assert rollback(graph, CONFIG, to=list(graph.get_state_history(CONFIG))[-1]).ok
    _no_plaintext(db)
    # Without the key, the payloads cannot be read.
    with (
        SqliteRollbackSaver.from_conn_string(str(db), registry=registry) as saver,
        pytest.raises(SerializationError, match="decode"),
    ):
        saver.list_effects(CONFIG)


async def test_encrypted_ledger_async_saver(tmp_path: Path) -> None:
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"k" * 32)
    world = tmp_path / "world"
    world.mkdir()
    db = tmp_path / "aenc.sqlite"
    registry = ToolRegistry()
    async with AsyncSqliteRollbackSaver.from_conn_string(
        str(db), serde=serde, registry=registry
    ) as saver:
        graph = _secret_graph(saver, registry, world)
        await graph.ainvoke({"done": []}, CONFIG, durability="sync")
        (effect,) = await saver.alist_effects(CONFIG)
        assert effect.result == "stored hunter2-SECRET"
    _no_plaintext(db)


@pytest.mark.parametrize("kind", ["sqlite", "aio_sqlite"])
async def test_restored_head_and_its_record_commit_together(
    tmp_path: Path, kind: str
) -> None:
    """An injected failure between the checkpoint and the record leaves neither."""
    from langgraph_rollback import arollback

    world = tmp_path / "world"
    world.mkdir()
    db = tmp_path / "tx.sqlite"
    registry = ToolRegistry()

    @reversible(undo=lambda e: (world / e.args["name"]).unlink(), registry=registry)
    def make(name: str) -> str:
        (world / name).write_text("x")
        return name

    builder = StateGraph(State)
    builder.add_node("act", lambda s: {"done": [make("a")]})
    builder.add_edge(START, "act")
    builder.add_edge("act", END)

    async def attempt(saver: Any) -> None:
        graph = builder.compile(checkpointer=saver)
        if not await saver.alist_effects(CONFIG):
            await graph.ainvoke({"done": []}, CONFIG, durability="sync")
        target = [s async for s in graph.aget_state_history(CONFIG)][-1]
        head = (await graph.aget_state(CONFIG)).config
        with sqlite3.connect(db) as raw:
            raw.execute(
                "CREATE TRIGGER IF NOT EXISTS fail_record BEFORE UPDATE ON lgrb_rollbacks "
                "WHEN NEW.status = 'restored' BEGIN SELECT RAISE(ABORT, 'injected'); END"
            )
        with pytest.raises(sqlite3.IntegrityError, match="injected"):
            await arollback(graph, CONFIG, to=target)
        assert (await graph.aget_state(CONFIG)).config == head  # no new head
        with sqlite3.connect(db) as raw:
            statuses = [r[0] for r in raw.execute("SELECT status FROM lgrb_rollbacks")]
            assert "restored" not in statuses
            raw.execute("DROP TRIGGER fail_record")
        # The effect was undone before the failure; a rerun only restores.
        report = await arollback(graph, CONFIG, to=target)
        assert report.ok
        assert report.restored_checkpoint_id is not None
        assert (await graph.aget_state(CONFIG)).values == target.values
        assert not (world / "a").exists()

    if kind == "sqlite":
        with SqliteRollbackSaver.from_conn_string(str(db), registry=registry) as saver:
            await attempt(saver)
    else:
        async with AsyncSqliteRollbackSaver.from_conn_string(
            str(db), registry=registry
        ) as saver:
            await attempt(saver)
