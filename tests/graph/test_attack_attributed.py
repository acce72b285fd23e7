"""`by=` under the Agent Server's authenticated user (`core.audit.attributed`),
attacked: blank and padded names, a non-text user, `by` equal to the user,
and a `RollbackNode` approver's skips, on every saver."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.types import Command

from langgraph_rollback import (
    AuditAction,
    BaseRollbackSaver,
    InvalidConfigError,
    RollbackNode,
    ToolRegistry,
    rollback,
    run_start,
)
from tests.graph.test_audit import pending_charge
from tests.graph.test_node import cfg, loop_graph
from tests.support.world import World


def served(user: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": "t1", "langgraph_auth_user_id": user}}


@pytest.mark.parametrize(
    ("user", "by", "kept", "claimed"),
    [
        ("dana", " dana ", "dana", None),  # padded: the same name
        (" dana ", "dana", "dana", None),
        ("dana", "mallory", "dana", "mallory"),
        ("   ", "bob", "bob", None),  # a blank user is no user
        (42, "bob", "bob", None),  # nor is one that is not text
        ("dana", None, "dana", None),
    ],
)
def test_resolve_keeps_the_user_and_the_claim(
    saver: BaseRollbackSaver,
    world: World,
    registry: ToolRegistry,
    user: Any,
    by: str | None,
    kept: str,
    claimed: str | None,
) -> None:
    pending_charge(saver, world, registry)
    (effect,) = saver.list_effects(cfg())
    saver.resolve_effect(served(user), effect.id, applied=False, by=by)
    (entry,) = saver.list_audit(cfg())
    assert (entry.by, entry.details.get("claimed_by")) == (kept, claimed)
    assert world.count("forward", "charge") == 1


@pytest.mark.parametrize("by", ["", "   ", 7])
def test_a_blank_by_is_refused_under_a_user_too(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, by: Any
) -> None:
    pending_charge(saver, world, registry)
    (effect,) = saver.list_effects(cfg())
    with pytest.raises(InvalidConfigError):
        saver.resolve_effect(served("dana"), effect.id, applied=False, by=by)
    assert saver.list_audit(cfg()) == []
    assert saver.list_effects(cfg())[0].status is effect.status


def test_rollback_by_the_user_itself_claims_nothing(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    graph = loop_graph(saver, world, registry, RollbackNode(to=run_start()))
    graph.invoke({"messages": [HumanMessage("go")]}, cfg(), durability="sync")
    (first, *_) = saver.list_effects(cfg())
    report = rollback(graph, served("dana"), to="first", skip=[first.id], by="dana ")
    assert report.ok
    entries = saver.list_audit(cfg())
    assert sorted(e.action.value for e in entries) == ["rollback", "skip"]
    assert all(e.by == "dana" and "claimed_by" not in e.details for e in entries)
    assert world.listing() == {}


def test_an_approvers_claimed_name_is_kept_with_its_skips(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry
) -> None:
    """Under a user, an approval answer's other `by` is claimed_by on the
    APPROVE entry, and on the SKIP entry its skips make, too."""
    node = RollbackNode(to=run_start(), goto="check", approval=True)
    graph = loop_graph(saver, world, registry, node)
    paused = graph.invoke(
        {"messages": [HumanMessage("go")]}, served("dana"), durability="sync"
    )
    (question,) = paused["__interrupt__"]
    keep = next(
        e for e in question.value["effects"] if e["args"]["name"] == "round-1.txt"
    )
    resume = {"approve": True, "skip": [keep["id"]], "by": "mallory"}
    graph.invoke(Command(resume=resume), served("dana"), durability="sync")
    assert world.listing() == {"round-1.txt": "1"}
    entries = {e.action: e for e in saver.list_audit(cfg())}
    assert set(entries) == {AuditAction.APPROVE, AuditAction.SKIP}
    assert entries[AuditAction.APPROVE].by == "dana"
    assert entries[AuditAction.APPROVE].details["claimed_by"] == "mallory"
    assert entries[AuditAction.SKIP].by == "dana"
    assert entries[AuditAction.SKIP].details.get("claimed_by") == "mallory"
