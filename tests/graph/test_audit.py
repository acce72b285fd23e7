"""The audit trail: every human decision is kept in the ledger with who, when,
why and what it overrode, on every saver."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from langgraph_rollback import (
    AuditAction,
    BaseRollbackSaver,
    EffectStatus,
    InvalidConfigError,
    IrreversibleToolBlockedError,
    RollbackNode,
    SqliteRollbackSaver,
    ToolRegistry,
    reversible,
    rollback,
    run_start,
)
from tests.graph.test_node import cfg, email_graph, loop_graph
from tests.graph.test_recording import Files
from tests.support.tools import build_tools
from tests.support.world import World


class ProcessDied(BaseException):
    """Stands in for the process dying mid-call: not an Exception."""


def pending_charge(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> Any:
    """A graph whose one call was cut off: its effect is `pending`."""

    @reversible(undo=lambda effect: None, registry=registry)
    def charge(customer: str, cents: int) -> str:
        world.log("forward", "charge", customer=customer)
        raise ProcessDied

    def act(state: Files) -> Files:
        return {"done": [charge("acme", 500)]}

    builder = StateGraph(Files)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(ProcessDied):
        graph.invoke({"done": []}, cfg())
    return graph


def test_resolve_keeps_who_why_and_what_it_overrode(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    pending_charge(saver, world, registry)
    (effect,) = saver.list_effects(cfg())
    assert saver.list_audit(cfg()) == []
    saver.resolve_effect(
        cfg(), effect.id, applied=False, by="alice", reason="no charge in Stripe"
    )
    (entry,) = saver.list_audit(cfg())
    assert entry.action is AuditAction.RESOLVE
    assert (entry.by, entry.reason) == ("alice", "no charge in Stripe")
    assert entry.effect_ids == [effect.id]
    assert entry.overrode == "status pending"
    assert entry.details["applied"] is False
    assert entry.details["status"] == "failed"
    assert world.count("forward", "charge") == 1  # a resolution runs nothing


def test_resolve_without_by_is_kept_as_unknown(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    pending_charge(saver, world, registry)
    (effect,) = saver.list_effects(cfg())
    saver.resolve_effect(cfg(), effect.id, applied=True, result="charged")
    (entry,) = saver.list_audit(cfg())
    assert entry.by == "unknown"
    assert entry.reason is None


@pytest.mark.parametrize("bad", [{"by": ""}, {"by": 3}, {"reason": "  "}])
def test_a_bad_by_or_reason_is_refused_and_changes_nothing(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, bad: Any
) -> None:
    pending_charge(saver, world, registry)
    (effect,) = saver.list_effects(cfg())
    with pytest.raises(InvalidConfigError, match=r"by=|reason="):
        saver.resolve_effect(cfg(), effect.id, applied=True, **bad)
    assert saver.get_effect(cfg(), effect.id).status is EffectStatus.PENDING
    assert saver.list_audit(cfg()) == []


def test_skip_and_force_are_kept_with_the_rollback(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    tools = build_tools(world, registry)

    def act(state: Files) -> Files:
        tools.write_file("a.txt", "1")
        tools.write_file("b.txt", "2")
        return {"done": ["a", "b"]}

    builder = StateGraph(Files)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=saver)
    graph.invoke({"done": []}, cfg(), durability="sync")
    a, b = sorted(saver.list_effects(cfg()), key=lambda e: e.args["name"])
    world.path("b.txt").write_text("edited by a person")  # a conflict
    report = rollback(
        graph,
        cfg(),
        to="first",
        skip=[a.id],
        on_conflict="force",
        by="bob",
        reason="incident 42",
    )
    assert report.ok
    assert world.listing() == {"a.txt": "1"}  # a skipped, b forced
    entries = {e.action: e for e in saver.list_audit(cfg())}
    assert set(entries) == {AuditAction.ROLLBACK, AuditAction.SKIP, AuditAction.FORCE}
    skip, force = entries[AuditAction.SKIP], entries[AuditAction.FORCE]
    asked = entries[AuditAction.ROLLBACK]
    assert (asked.by, asked.reason, asked.effect_ids) == ("bob", "incident 42", [b.id])
    assert asked.rollback_id == report.rollback_id
    assert skip.effect_ids == [a.id] and force.effect_ids == [b.id]
    assert {skip.by, force.by} == {"bob"}
    assert {skip.reason, force.reason} == {"incident 42"}
    assert skip.rollback_id == force.rollback_id == report.rollback_id
    assert "changed" in force.overrode
    assert skip.overrode == "the plan: undo"


def test_a_rollback_a_person_asks_for_is_kept(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(saver, world, registry, RollbackNode(to=run_start()))
    graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    undone = [e.id for e in saver.list_effects(cfg(), status="applied")]
    head = graph.get_state(cfg()).config["configurable"]["checkpoint_id"]
    report = rollback(graph, cfg(), to="first", by="carol", reason="wrong plan")
    (entry,) = saver.list_audit(cfg())
    assert entry.action is AuditAction.ROLLBACK
    assert (entry.by, entry.reason, entry.rollback_id) == (
        "carol",
        "wrong plan",
        report.rollback_id,
    )
    assert entry.effect_ids == undone and head in entry.overrode
    assert world.listing() == {}


def test_a_rollback_without_by_keeps_no_entry(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(saver, world, registry, RollbackNode(to=run_start()))
    graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    rollback(graph, cfg(), to="first")
    assert saver.list_audit(cfg()) == []
    assert world.listing() == {}


def test_the_servers_user_decides_when_no_by_is_given(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(saver, world, registry, RollbackNode(to=run_start()))
    graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    (first, *_) = saver.list_effects(cfg())
    server = {"configurable": {"thread_id": "t1", "langgraph_auth_user_id": "dana"}}
    rollback(graph, server, to="first", skip=[first.id])
    entries = saver.list_audit(cfg())
    assert {e.action for e in entries} == {AuditAction.ROLLBACK, AuditAction.SKIP}
    assert {e.by for e in entries} == {"dana"}


def test_a_by_under_the_servers_user_is_kept_as_claimed(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(saver, world, registry, RollbackNode(to=run_start()))
    graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    (first, *_) = saver.list_effects(cfg())
    server = {"configurable": {"thread_id": "t1", "langgraph_auth_user_id": "dana"}}
    report = rollback(graph, server, to="first", skip=[first.id], by="mallory")
    assert report.ok
    entries = saver.list_audit(cfg())
    assert len(entries) == 2  # the rollback, and its skip
    assert {(e.by, e.details["claimed_by"]) for e in entries} == {("dana", "mallory")}
    assert world.listing() == {}


def test_resolve_under_the_servers_user_keeps_that_user(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    pending_charge(saver, world, registry)
    (effect,) = saver.list_effects(cfg())
    server = {"configurable": {"thread_id": "t1", "langgraph_auth_user_id": "dana"}}
    saver.resolve_effect(server, effect.id, applied=False, by="dana")
    (entry,) = saver.list_audit(cfg())
    assert entry.by == "dana" and "claimed_by" not in entry.details
    assert world.count("forward", "charge") == 1


@pytest.mark.parametrize("answer", ["approve", "reject"])
def test_rollback_node_answers_are_kept_once(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, answer: str
) -> None:
    graph = loop_graph(
        saver,
        world,
        registry,
        RollbackNode(to=run_start(), goto="check", approval=True),
    )
    paused = graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    (question,) = paused["__interrupt__"]
    resume = {
        "approve": answer == "approve",
        "by": "erin",
        "reason": "bad plan" if answer == "reject" else "ok",
    }
    graph.invoke(Command(resume=resume), cfg(), durability="sync")
    (entry,) = saver.list_audit(cfg())
    assert entry.action is AuditAction(answer)
    assert (entry.by, entry.reason) == ("erin", resume["reason"])
    assert set(entry.effect_ids) == {e["id"] for e in question.value["effects"]}
    expected = {} if answer == "approve" else {"prepared.txt", "round-1.txt"}
    if answer == "approve":
        assert world.listing() == expected
    else:
        assert len(world.listing()) == 4


def test_an_approvers_skips_are_kept_as_theirs(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(
        saver,
        world,
        registry,
        RollbackNode(to=run_start(), goto="check", approval=True),
    )
    paused = graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    (question,) = paused["__interrupt__"]
    keep = next(
        e for e in question.value["effects"] if e["args"]["name"] == "round-1.txt"
    )
    resume = {"approve": True, "skip": [keep["id"]], "by": "frank"}
    graph.invoke(Command(resume=resume), cfg(), durability="sync")
    assert world.listing() == {"round-1.txt": "1"}
    entries = {e.action: e for e in saver.list_audit(cfg())}
    assert set(entries) == {AuditAction.APPROVE, AuditAction.SKIP}
    assert entries[AuditAction.SKIP].effect_ids == [keep["id"]]
    assert entries[AuditAction.SKIP].by == "frank"
    assert entries[AuditAction.APPROVE].details == {"skip": [keep["id"]]}


@pytest.mark.parametrize("approve", [True, False])
def test_the_guards_asked_calls_are_kept(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, approve: bool
) -> None:
    graph = email_graph(saver, world, registry).with_config(
        configurable={"rollback_guard": "ask", "langgraph_auth_user_id": "gina"}
    )
    graph.invoke({"log": []}, cfg())
    assert saver.list_audit(cfg()) == []  # asked, not yet answered
    if approve:
        graph.invoke(Command(resume=True), cfg())
        assert world.count("forward", "send_email") == 1
    else:
        with pytest.raises(IrreversibleToolBlockedError):
            graph.invoke(
                Command(resume={"approve": False, "reason": "not today"}), cfg()
            )
        assert world.count("forward", "send_email") == 0
    (entry,) = saver.list_audit(cfg())
    assert entry.action is (AuditAction.ALLOW if approve else AuditAction.REFUSE)
    assert entry.by == "gina"
    assert entry.reason == (None if approve else "not today")
    (email,) = saver.list_effects(cfg(), tool="send_email")
    assert entry.effect_ids == [email.id]


def test_the_trail_outlives_the_process_and_pages(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    db = str(tmp_path / "audit.sqlite")
    with SqliteRollbackSaver.from_conn_string(db, registry=registry) as saver:
        pending_charge(saver, world, registry)
        (effect,) = saver.list_effects(cfg())
        saver.resolve_effect(cfg(), effect.id, applied=True, result="x", by="hana")
    with SqliteRollbackSaver.from_conn_string(db) as saver:
        (entry,) = saver.list_audit(cfg(), limit=1)
        assert entry.by == "hana"
        assert saver.list_audit(cfg(), limit=0) == []
        assert saver.list_audit({"configurable": {"thread_id": "other"}}) == []
        with pytest.raises(InvalidConfigError, match="limit"):
            saver.list_audit(cfg(), limit=-1)


async def test_alist_audit_reads_the_same(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    await asyncio.to_thread(pending_charge, saver, world, registry)
    (effect,) = await saver.alist_effects(cfg())
    await saver.aresolve_effect(cfg(), effect.id, applied=False, by="ivan")
    assert [e.by for e in await saver.alist_audit(cfg())] == ["ivan"]
