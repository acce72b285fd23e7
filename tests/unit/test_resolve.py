"""An operator's decision on an unknown outcome (`resolve_flow`)."""

from __future__ import annotations

from typing import Any

import pytest

from langgraph_rollback._errors import (
    EffectInFlightError,
    EffectNotFoundError,
    EffectStateError,
    InvalidConfigError,
)
from langgraph_rollback.core.ops import AwaitCall, Observe, Outcome, Select, Update
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.resolve import UNSET, resolve_flow
from tests.unit.build import SERDE, audited, decoded, registry, row, tool
from tests.unit.script import Script


def observe_path(path: str) -> str:
    return path


def start(
    applied: bool | None = None,
    compensated: bool | None = None,
    result: Any = UNSET,
    tools: ToolRegistry | None = None,
    by: str | None = None,
    reason: str | None = None,
    claimed_by: str | None = None,
) -> Script:
    flow = resolve_flow(
        "t",
        "e1",
        applied=applied,
        compensated=compensated,
        result=result,
        registry=tools or registry(),
        serde=SERDE,
        by=by,
        reason=reason,
        claimed_by=claimed_by,
    )
    return Script(flow)


def found(flow: Script, status: str, **fields: Any) -> None:
    """The effect's row; a call or inverse it asks about is not running."""
    query = EffectQuery(thread_id="t", effect_id="e1")
    flow.reply(Select, [row(status=status, **fields)], query=query)
    if isinstance(flow.current, AwaitCall):
        flow.reply(AwaitCall, "gone", timeout=0)


def reread(flow: Script, status: str, **fields: Any) -> None:
    flow.reply(Select, [row(status=status, **fields)])


def test_unknown_effect_is_not_found() -> None:
    flow = start(applied=True)
    flow.reply(Select, [])
    error = flow.raises(EffectNotFoundError)
    assert (error.effect_id, error.thread_id) == ("e1", "t")


def test_applied_takes_the_after_observation() -> None:
    flow = start(applied=True, result="r", tools=registry(tool(observe=observe_path)))
    found(flow, "pending", attempt=2)
    observe = flow.reply(Observe, Outcome(value=("B",)), kwargs={"path": "a"})
    assert observe.effect is not None and observe.effect.id == "e1"
    update = flow.expect(Update, expect=("pending",), expect_attempt=2)
    assert update.changes["status"] == "applied"
    outcome = decoded(update.changes["outcome_type"], update.changes["outcome"])
    assert outcome == {
        "result": "r",
        "after": ("B",),
        "observed": True,
        "notes": ["outcome resolved by an operator: applied"],
    }
    flow.send(True)
    reread(flow, "applied", outcome=outcome)
    entry = audited(flow)
    assert (entry.action, entry.by, entry.effect_ids) == ("resolve", "unknown", ["e1"])
    assert entry.overrode == "status pending"
    assert entry.details == {"applied": True, "result_given": True, "status": "applied"}
    resolved = flow.returns()
    assert (resolved.status.value, resolved.after) == ("applied", ("B",))


@pytest.mark.parametrize(
    "tools", [registry(), registry(tool())], ids=["undeclared", "no_observe"]
)
def test_applied_without_observe_records_no_after(tools: ToolRegistry) -> None:
    flow = start(applied=True, tools=tools)
    found(flow, "pending")
    update = flow.expect(Update)
    outcome = decoded(update.changes["outcome_type"], update.changes["outcome"])
    assert (outcome["after"], outcome["observed"]) == (None, False)


def test_applied_without_a_result_records_none() -> None:
    flow = start(applied=True)
    found(flow, "pending")
    update = flow.expect(Update)
    outcome = decoded(update.changes["outcome_type"], update.changes["outcome"])
    assert outcome["result"] is None


def test_applied_with_observe_raising_notes_it() -> None:
    flow = start(applied=True, tools=registry(tool(observe=observe_path)))
    found(flow, "pending")
    flow.reply(Observe, Outcome(error=OSError("gone")))
    update = flow.expect(Update)
    outcome = decoded(update.changes["outcome_type"], update.changes["outcome"])
    assert outcome["observed"] is False
    assert outcome["notes"][1] == "observe() raised OSError('gone')"


def test_not_applied_records_a_failed_call() -> None:
    flow = start(applied=False)
    found(flow, "pending")
    update = flow.expect(Update, expect=("pending",))
    assert update.changes["status"] == "failed"
    outcome = decoded(update.changes["outcome_type"], update.changes["outcome"])
    assert outcome["error"] == "resolved by an operator: not applied"


def test_compensated_records_the_inverse_as_taken_effect() -> None:
    flow = start(compensated=True, result="ok", by="op", reason="refund seen")
    found(flow, "compensating")
    update = flow.expect(Update, expect=("compensating",))
    assert update.changes["status"] == "compensated"
    assert update.changes["compensated_at"] == update.changes["updated_at"]
    undo = decoded(update.changes["undo_type"], update.changes["undo"])
    assert undo == {
        "result": "ok",
        "notes": ["inverse outcome resolved by op (refund seen): took effect"],
    }
    flow.send(True)
    reread(flow, "compensated")
    entry = audited(flow)
    assert (entry.by, entry.reason) == ("op", "refund seen")
    assert entry.details == {
        "compensated": True,
        "result_given": True,
        "status": "compensated",
    }
    assert flow.returns().status.value == "compensated"


def test_compensated_without_a_result_records_none() -> None:
    flow = start(compensated=True)
    found(flow, "compensating")
    update = flow.expect(Update)
    assert (
        decoded(update.changes["undo_type"], update.changes["undo"])["result"] is None
    )


def test_not_compensated_lets_a_rollback_run_the_inverse_again() -> None:
    flow = start(compensated=False)
    found(flow, "compensating")
    update = flow.expect(Update)
    assert update.changes["status"] == "compensation_failed"
    assert "compensated_at" not in update.changes


@pytest.mark.parametrize(
    ("status", "applied", "compensated"),
    [
        ("pending", None, None),
        ("pending", True, True),
        ("compensating", None, None),
        ("compensating", True, True),
    ],
)
def test_the_wrong_keyword_for_the_status_is_refused(
    status: str, applied: bool | None, compensated: bool | None
) -> None:
    flow = start(applied=applied, compensated=compensated)
    found(flow, status)
    error = flow.raises(InvalidConfigError)
    assert f"is {status!r}" in str(error)


@pytest.mark.parametrize("status", ["applied", "failed", "compensated"])
def test_an_effect_with_a_known_outcome_cannot_be_resolved(status: str) -> None:
    flow = start(applied=True)
    found(flow, status)
    error = flow.raises(EffectStateError)
    assert (error.status, error.expected) == (
        status,
        "pending, compensating, or applied with its result lost",
    )


LOST = {
    "result": None,
    "after": "B",
    "observed": True,
    "result_known": False,
    "notes": ["reconciled: the call landed"],
}


def test_a_lost_result_is_recorded_and_known_again() -> None:
    flow = start(result={"id": 7})
    found(flow, "applied", attempt=2, outcome=LOST)
    update = flow.expect(Update, expect=("applied",), expect_attempt=2)
    assert update.changes["status"] == "applied"
    outcome = decoded(update.changes["outcome_type"], update.changes["outcome"])
    assert outcome == {
        "result": {"id": 7},
        "after": "B",
        "observed": True,
        "notes": ["reconciled: the call landed", "result resolved by an operator"],
    }
    flow.send(True)
    reread(flow, "applied", outcome=outcome)
    assert audited(flow).overrode == "status applied, result unknown"
    resolved = flow.returns()
    assert (resolved.result, resolved.result_known) == ({"id": 7}, True)


def test_a_lost_result_resolved_with_applied_true_is_recorded() -> None:
    flow = start(applied=True, result=None)
    found(flow, "applied", outcome=LOST)
    update = flow.expect(Update, expect=("applied",))
    outcome = decoded(update.changes["outcome_type"], update.changes["outcome"])
    assert (outcome["result"], "result_known" in outcome) == (None, False)


@pytest.mark.parametrize(
    ("applied", "compensated", "result"),
    [(None, None, UNSET), (True, None, UNSET), (False, None, 1), (None, True, 1)],
)
def test_a_lost_result_needs_the_result_and_nothing_else(
    applied: bool | None, compensated: bool | None, result: Any
) -> None:
    flow = start(applied=applied, compensated=compensated, result=result)
    found(flow, "applied", outcome=LOST)
    error = flow.raises(InvalidConfigError)
    assert "its result was lost" in str(error)
    assert "result=<what the call returned>" in str(error)


@pytest.mark.parametrize("value", ["false", "no", 0, 1, "True"])
@pytest.mark.parametrize("name", ["applied", "compensated"])
def test_a_flag_that_is_not_a_bool_is_refused_before_reading(
    name: str, value: Any
) -> None:
    error = start(**{name: value}).raises(InvalidConfigError)
    assert str(error).startswith(f"{name}={value!r} is not True or False. Fix:")


@pytest.mark.parametrize(
    ("status", "kwargs", "call_id", "resolving"),
    [
        ("pending", {"applied": True}, "e1", "Effect e1"),
        ("compensating", {"compensated": False}, "undo:e1", "The inverse of effect e1"),
    ],
)
def test_a_call_or_inverse_still_running_is_not_resolved(
    status: str, kwargs: dict[str, Any], call_id: str, resolving: str
) -> None:
    flow = start(**kwargs)
    query = EffectQuery(thread_id="t", effect_id="e1")
    flow.reply(Select, [row(status=status, owner="h#1#2")], query=query)
    flow.reply(AwaitCall, "running", effect_id=call_id, owner="h#1#2", timeout=0)
    error = flow.raises(EffectInFlightError)
    assert (error.effect_id, error.owner) == ("e1", "h#1#2")
    assert str(error).startswith(resolving)
    assert "Fix: wait for it to end" in str(error)


def test_unset_reads_as_unset() -> None:
    assert repr(UNSET) == "UNSET"


def test_update_lost_names_the_status_found_instead() -> None:
    flow = start(applied=False)
    found(flow, "pending")
    flow.reply(Update, False)
    reread(flow, "applied")
    error = flow.raises(EffectStateError)
    assert (error.status, error.expected) == ("applied", "pending")


def test_who_decided_and_why_go_into_the_notes() -> None:
    flow = Script(
        resolve_flow(
            "t",
            "e1",
            applied=False,
            compensated=None,
            result=UNSET,
            registry=registry(),
            serde=SERDE,
            by=" alice ",
            reason="checked the bucket",
        )
    )
    found(flow, "pending")
    update = flow.expect(Update, expect=("pending",))
    outcome = decoded(update.changes["outcome_type"], update.changes["outcome"])
    assert outcome["notes"] == [
        "outcome resolved by alice (checked the bucket): not applied"
    ]


def test_a_name_claimed_beside_the_authenticated_user_is_kept_in_details() -> None:
    flow = start(applied=False, by="srv", claimed_by="ann")
    found(flow, "pending")
    flow.reply(Update, True)
    reread(flow, "failed")
    entry = audited(flow)
    assert entry.by == "srv"
    assert entry.details == {
        "applied": False,
        "result_given": False,
        "claimed_by": "ann",
        "status": "failed",
    }
