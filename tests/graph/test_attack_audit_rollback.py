"""The rollback decision in the audit trail, attacked: a refused rollback, a
stopped one resumed, nothing to undo, a graph's own RollbackNode, `arollback`,
an encrypted ledger, hostile `--by`/`--reason` in the CLI's table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from langgraph_rollback import (
    AuditAction,
    BaseRollbackSaver,
    Effect,
    RollbackNode,
    SqliteRollbackSaver,
    ToolRegistry,
    arollback,
    rollback,
    run_start,
)
from tests.docs.test_cli import cli, populate
from tests.graph.test_backward_guarantees import before, one_node, three_writes
from tests.graph.test_node import cfg, email_graph, loop_graph
from tests.support.tools import build_tools
from tests.support.world import World


def asked(saver: BaseRollbackSaver) -> list[Any]:
    return [e for e in saver.list_audit(cfg()) if e.action is AuditAction.ROLLBACK]


def test_a_rollback_refused_for_an_irreversible_effect_keeps_no_entry(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = email_graph(saver, world, registry)
    graph.invoke({"log": []}, cfg(), durability="sync")
    head = graph.get_state(cfg()).config
    report = rollback(
        graph, cfg(), to="first", on_irreversible="abort", by="alice", reason="oops"
    )
    assert report.status == "aborted"
    assert saver.list_audit(cfg()) == []
    assert world.listing() == {"draft.txt": "hello"}
    assert graph.get_state(cfg()).config == head


def test_a_rollback_refused_for_a_conflict_keeps_no_entry(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = three_writes(saver, world, registry)
    graph.invoke({"log": []}, cfg(), durability="sync")
    world.path("b.txt").write_text("edited by a human")
    report = rollback(graph, cfg(), to=before(graph, "act"), by="alice")
    assert report.status == "aborted"
    assert saver.list_audit(cfg()) == []
    assert world.listing() == {"a.txt": "agent", "b.txt": "edited by a human"} | {
        "c.txt": "agent"
    }
    assert world.count("inverse") == 0


def test_a_stopped_rollback_resumed_keeps_each_decision_once(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = three_writes(saver, world, registry)
    graph.invoke({"log": []}, cfg(), durability="sync")
    ids = {e.args["name"]: e.id for e in saver.list_effects(cfg())}
    target = before(graph, "act")

    def a_human_edits_b(effect: Effect, ok: bool) -> None:
        if effect.args["name"] == "c.txt":
            world.path("b.txt").write_text("edited by a human")

    first = rollback(graph, cfg(), to=target, by="alice", progress=a_human_edits_b)
    assert first.status == "stopped"
    second = rollback(graph, cfg(), to=target, on_conflict="force", by="alice")
    assert second.ok, str(second)
    assert world.listing() == {}
    entries = {e.rollback_id: e for e in asked(saver)}
    assert set(entries) == {first.rollback_id, second.rollback_id}
    # What each set out to undo: the stopped one all three; the resumed one
    # what was left (c was undone already), b only as forced.
    assert entries[first.rollback_id].effect_ids == [
        ids["c.txt"],
        ids["b.txt"],
        ids["a.txt"],
    ]
    assert entries[second.rollback_id].effect_ids == [ids["b.txt"], ids["a.txt"]]
    forced = [e for e in saver.list_audit(cfg()) if e.action is AuditAction.FORCE]
    assert [f.effect_ids for f in forced] == [[ids["b.txt"]]]


def test_a_rollback_with_nothing_to_undo_is_kept_with_no_effects(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = three_writes(saver, world, registry)
    graph.invoke({"log": []}, cfg(), durability="sync")
    target = before(graph, "act")
    rollback(graph, cfg(), to=target, by="alice")
    again = rollback(graph, cfg(), to=target, by="bob", reason="make sure")
    assert again.status == "nothing_to_undo", str(again)
    (entry,) = [e for e in asked(saver) if e.by == "bob"]
    assert entry.effect_ids == [] and entry.rollback_id == again.rollback_id
    assert world.listing() == {}
    assert world.count("inverse") == 3


def test_a_graphs_own_rollback_node_keeps_no_rollback_entry(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(saver, world, registry, RollbackNode(to=run_start()))
    server = {"configurable": {"thread_id": "t1", "langgraph_auth_user_id": "dana"}}
    out = graph.invoke({"messages": [HumanMessage("go")]}, server, durability="sync")
    assert out["rollback_report"]["status"] == "completed"
    assert saver.list_audit(cfg()) == []
    assert world.listing() == {}


async def test_arollback_keeps_the_decision(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(saver, world, registry, RollbackNode(to=run_start()))
    await asyncio.to_thread(
        graph.invoke, {"messages": [HumanMessage("go")]}, cfg(), durability="sync"
    )
    undone = [e.id for e in await saver.alist_effects(cfg(), status="applied")]
    report = await arollback(graph, cfg(), to="first", by="erin", reason="async")
    assert report.ok, str(report)
    (entry,) = await saver.alist_audit(cfg())
    assert (entry.action, entry.by, entry.reason) == (
        AuditAction.ROLLBACK,
        "erin",
        "async",
    )
    assert entry.effect_ids == undone and entry.rollback_id == report.rollback_id
    assert world.listing() == {}


def test_the_rollback_entry_of_an_encrypted_ledger_holds_no_payload(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    db = str(tmp_path / "enc.sqlite")
    secret = "Zq7-payload-wX4"
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"0123456789abcdef")
    tools = build_tools(world, registry)
    world.path("b.txt").write_text("before-" + secret)

    def act(state: Any) -> Any:
        tools.write_file("a.txt", secret)
        tools.write_file("b.txt", "agent-" + secret)
        return {"log": ["act"]}

    with SqliteRollbackSaver.from_conn_string(
        db, serde=serde, registry=registry
    ) as saver:
        graph = one_node(saver, act)
        graph.invoke({"log": []}, cfg(), durability="sync")
        world.path("b.txt").write_text("human-" + secret)
        report = rollback(
            graph, cfg(), to="first", on_conflict="force", by="alice", reason="why"
        )
        assert report.ok, str(report)
        kept = {e.action for e in saver.list_audit(cfg())}
    assert kept == {AuditAction.ROLLBACK, AuditAction.FORCE}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = [json.loads(r) for (r,) in conn.execute("SELECT entry FROM lgrb_audit")]
    assert rows and all(secret not in json.dumps(r) for r in rows)
    rolled = next(r for r in rows if r["action"] == "rollback")
    assert set(rolled["details"]) == {"target"}
    assert world.listing() == {"b.txt": "before-" + secret}


def test_hostile_by_and_reason_cannot_forge_rows_in_the_cli_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    db = str(tmp_path / "agent.sqlite")
    populate(db, app_dir, monkeypatch)
    env = {"CLI_APP_DIR": str(app_dir)}
    by = "mallory\n2026-01-01 00:00:00  alice  rollback"
    reason = "\x1b[2J\x1b[31mcleared\r\x07"
    args = ["--graph", "tests.support.cli_app:builder", "--yes"]
    done = cli(
        "rollback", db, "--thread", "t", "--to", "first", *args,
        "--by", by, "--reason", reason, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in app_dir.iterdir()) == []
    table = cli("effects", db, "--thread", "t", "--audit", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 2, table.stdout  # the header and one decision
    assert not any(c in table.stdout for c in "\x1b\r\x07")
    assert "mallory\\n2026-01-01" in lines[1]
    (entry,) = json.loads(
        cli("effects", db, "--thread", "t", "--audit", "--json", env=env).stdout
    )
    assert (entry["by"], entry["reason"]) == (by, reason)
