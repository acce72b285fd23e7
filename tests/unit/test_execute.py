"""Carrying out a plan (`execute_flow`), and the lock around a whole rollback.

How one effect is undone (claim, drift, inverse, verification) is pinned in
test_undo.py; restoring the state in test_restore.py. Here: which steps run,
in what order, what the policies refuse or stop, and the report.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from langgraph_rollback._errors import (
    CheckpointNotFoundError,
    RollbackInProgressError,
    UnregisteredToolError,
)
from langgraph_rollback.core.config import checkpoint_config
from langgraph_rollback.core.execute import (
    InverseTimeoutError,
    Policies,
    execute_flow,
    holding_lock,
    rejected_report,
    rollback_flow,
)
from langgraph_rollback.core.locks import LockHolder
from langgraph_rollback.core.ops import (
    CheckpointLink,
    FindCheckpoint,
    LockThread,
    Notify,
    Observe,
    Outcome,
    ReadAncestry,
    ReadHead,
    ReadNamespaceStates,
    ReadSubtree,
    Restore,
    SaveRollback,
    Select,
    Undo,
    UnlockThread,
    Update,
    do,
)
from langgraph_rollback.core.plan import Decision, RollbackPlan
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.report import RollbackReport
from langgraph_rollback.core.targets import TargetSelector
from langgraph_rollback.core.voice import Voice
from tests.unit.build import (
    SERDE,
    audited,
    decoded,
    effect,
    plan,
    registry,
    row,
    step,
    tool,
    undo_write,
)
from tests.unit.script import Script

STARTED = datetime(2025, 1, 1, tzinfo=UTC)
RESTORE = checkpoint_config("t", "c1")
NEW_HEAD = checkpoint_config("t", "k4")
HOLDER = LockHolder(token="tok", host="h", pid=1, started="s")
OWNER = "h#9#s"
CLAIMABLE = ("applied", "compensation_failed", "compensating", "pending")
TO_FIRST = [CheckpointLink("c1", "c0"), CheckpointLink("c0", None)]


def observe_path(path: str) -> Any:
    return None


OBSERVED = tool(observe=observe_path)
APPLIED = {"after": "B", "observed": True}


def start(
    the_plan: RollbackPlan,
    tools: ToolRegistry | None = None,
    *,
    restore: Any = RESTORE,
    **policies: Any,
) -> Script:
    flow = execute_flow(
        the_plan,
        policies=Policies(**policies),
        registry=registry(tool()) if tools is None else tools,
        serde=SERDE,
        rollback_id="rb",
        restore=restore,
        started_at=STARTED,
        owner=OWNER,
    )
    return Script(flow)


def running(flow: Script) -> None:
    record = flow.reply(SaveRollback).record
    assert (record["status"], record["rollback_id"]) == ("running", "rb")
    assert record["started_at"] == STARTED.isoformat()
    assert (record["finished_at"], record["report"]) == (None, None)


def told(flow: Script, effect_id: str, ok: bool) -> None:
    """Answer the progress notice for `effect_id`."""
    notice = flow.reply(Notify, None, ok=ok)
    assert notice.effect.id == effect_id


def undone(flow: Script, effect_id: str = "e1", result: Any = "restored a") -> Undo:
    """Claim, run and mark one inverse that succeeds (no `observe`), told."""
    flow.reply(Update, True, effect_id=effect_id, expect=CLAIMABLE)
    undo = flow.reply(Undo, Outcome(value=result))
    flow.reply(Update, True, effect_id=effect_id, expect=("compensating",))
    told(flow, effect_id, ok=True)
    return undo


def fails(
    flow: Script, effect_id: str = "e1", error: BaseException | None = None
) -> Update:
    """Claim and run one inverse that raises; the update that marks it."""
    flow.reply(Update, True, effect_id=effect_id)
    flow.reply(Undo, Outcome(error=error or ValueError("no")))
    mark = flow.reply(Update, True, effect_id=effect_id)
    told(flow, effect_id, ok=False)
    return mark


def saved(flow: Script) -> RollbackReport:
    """Answer the final `SaveRollback`; the report returned."""
    record = flow.reply(SaveRollback).record
    report: RollbackReport = flow.returns()
    assert record["status"] == report.status
    return report


def restored(flow: Script) -> RollbackReport:
    """Answer the restore of target c1 (no persistent subgraphs); the report."""
    flow.reply(ReadNamespaceStates, [], thread_id="t", before=())
    flow.reply(Restore, NEW_HEAD, config=RESTORE)
    return saved(flow)


# --- refusals before anything runs ---------------------------------------------------


def test_missing_inverse_raises_before_anything() -> None:
    the_plan = plan(
        step(effect("ok")), step(effect("x", tool="gone"), Decision.MISSING_INVERSE)
    )
    error = start(the_plan).raises(UnregisteredToolError)
    assert (error.tool, error.effect_id) == ("gone", "x")
    assert "registry=" in str(error)


def test_missing_inverse_in_the_cli_names_the_graph_option() -> None:
    the_plan = plan(step(effect("x", tool="gone"), Decision.MISSING_INVERSE))
    flow = execute_flow(
        the_plan,
        policies=Policies(),
        registry=registry(tool()),
        serde=SERDE,
        rollback_id="rb",
        restore=RESTORE,
        started_at=STARTED,
        voice=Voice.CLI,
    )
    error = Script(flow).raises(UnregisteredToolError)
    assert "--graph" in str(error) and "registry=" not in str(error)


@pytest.mark.parametrize("skip_kind", ["irreversible", "unknown"])
def test_on_irreversible_abort_refuses_an_effect_that_cannot_be_undone(
    skip_kind: str,
) -> None:
    the_step = step(effect(seq=3), Decision.SKIP, reason="no", skip_kind=skip_kind)
    report = saved(start(plan(the_step), on_irreversible="abort"))
    assert report.status == "aborted"
    assert report.message == (
        "Refused: write(path='a') (#3) cannot be undone and "
        "on_irreversible='abort'. Nothing was undone."
    )
    assert [(s.effect.id, s.reason) for s in report.skipped] == [("e1", "no")]


def test_on_irreversible_abort_ignores_calls_that_never_acted() -> None:
    the_plan = plan(step(effect(), Decision.SKIP, skip_kind="not_applied"))
    flow = start(the_plan, on_irreversible="abort")
    running(flow)
    assert restored(flow).status == "nothing_to_undo"


def test_conflict_aborts_by_default_naming_the_conflict() -> None:
    the_plan = plan(step(effect(seq=2), Decision.CONFLICT, reason="target changed"))
    report = saved(start(the_plan))
    assert report.status == "aborted"
    assert report.message == (
        "Refused: write(path='a') (#2): target changed; on_conflict='abort'. "
        "Roll back with on_conflict='skip' to leave them, or "
        "on_conflict='force' to undo them anyway. Nothing was undone."
    )
    assert [(s.effect.id, s.reason) for s in report.conflicts] == [
        ("e1", "target changed")
    ]


def test_refusal_lists_every_conflict_and_every_irreversible_effect() -> None:
    the_plan = plan(
        step(effect("c2", seq=4), Decision.CONFLICT, reason="x changed"),
        step(effect("i2", seq=3, tool="mail"), Decision.SKIP, skip_kind="unknown"),
        step(effect("c1", seq=2), Decision.CONFLICT, reason="y changed"),
        step(effect("i1", seq=1, tool="pay"), Decision.SKIP, skip_kind="irreversible"),
    )
    report = saved(start(the_plan, on_irreversible="abort"))
    assert report.message == (
        "Refused: mail(path='a') (#3), pay(path='a') (#1) cannot be undone and "
        "on_irreversible='abort'. write(path='a') (#4): x changed; "
        "write(path='a') (#2): y changed; on_conflict='abort'. Roll back with "
        "on_conflict='skip' to leave them, or on_conflict='force' to undo them "
        "anyway. Nothing was undone."
    )
    assert [s.effect.id for s in report.skipped] == ["i2", "i1"]
    assert [s.effect.id for s in report.conflicts] == ["c2", "c1"]
    assert report.undone == []


def test_refusals_leave_out_the_effects_the_approver_skipped() -> None:
    the_plan = plan(
        step(effect("i"), Decision.SKIP, skip_kind="irreversible"),
        step(effect("c"), Decision.CONFLICT),
        step(effect("m", tool="gone"), Decision.MISSING_INVERSE),
    )
    flow = start(the_plan, on_irreversible="abort", skip=frozenset({"i", "c", "m"}))
    running(flow)
    entry = audited(flow)
    assert (entry.action, entry.by, entry.rollback_id) == ("skip", "unknown", "rb")
    assert entry.effect_ids == ["i", "c", "m"]
    assert entry.overrode == "the plan: conflict, missing_inverse, skip"
    report = restored(flow)
    assert [(s.effect.id, s.reason) for s in report.skipped] == [
        ("i", "skipped (skip=)"),
        ("c", "skipped (skip=)"),
        ("m", "skipped (skip=)"),
    ]


def test_a_rollback_a_person_asked_for_is_kept_before_its_overrides() -> None:
    the_plan = plan(
        step(effect("a")),
        step(effect("c"), Decision.CONFLICT),
        step(effect("s")),
        step(effect("i"), Decision.SKIP, skip_kind="irreversible"),
    )
    flow = start(
        the_plan,
        on_conflict="force",
        skip=frozenset({"s"}),
        requested_by="srv",
        claimed_by="ann",
        reason="wrong plan",
    )
    running(flow)
    asked = audited(flow)
    assert (asked.action, asked.by, asked.reason) == ("rollback", "srv", "wrong plan")
    assert asked.effect_ids == ["a", "c"]  # what it sets out to undo
    assert asked.details == {
        "target": the_plan.target_checkpoint_id,
        "claimed_by": "ann",
    }
    assert the_plan.head_checkpoint_id in asked.overrode
    assert audited(flow).action == "skip"
    assert audited(flow).action == "force"


# --- the steps, newest first -------------------------------------------------------------


def test_inverse_is_claimed_run_marked_and_told_then_the_state_restored() -> None:
    flow = start(plan(step(effect())))
    running(flow)
    claim = flow.reply(Update, True, effect_id="e1", expect=CLAIMABLE)
    assert claim.changes["status"] == "compensating"
    assert (claim.changes["undo_attempts"], claim.changes["rollback_id"]) == (1, "rb")
    assert claim.changes["owner"] == OWNER
    undo = flow.reply(Undo, Outcome(value="restored a"), fn=undo_write, args=None)
    assert undo.timeout is None and callable(undo.late)
    assert undo.effect.status.value == "compensating"
    assert (undo.effect.undo_attempts, undo.effect.rollback_id) == (1, "rb")
    mark = flow.reply(Update, True, expect=("compensating",))
    assert mark.changes["status"] == "compensated"
    assert mark.changes["compensated_at"] == mark.changes["updated_at"]
    assert decoded(mark.changes["undo_type"], mark.changes["undo"]) == {
        "result": "restored a"
    }
    told(flow, "e1", ok=True)
    flow.reply(ReadNamespaceStates, [])
    restore = flow.reply(Restore, NEW_HEAD, config=RESTORE)
    assert restore.mark == {"copy_of": "c1", "copies": ["c1"], "rollback_id": "rb"}
    report = saved(flow)
    assert (report.status, report.restored_checkpoint_id) == ("completed", "k4")
    assert [s.description for s in report.undone] == ["restored a (undo of write)"]
    assert report.undone[0].effect.status.value == "compensating"


def test_inverses_run_newest_first_as_planned() -> None:
    flow = start(plan(step(effect("new", seq=2)), step(effect("old", seq=1))))
    running(flow)
    undone(flow, "new")
    undone(flow, "old")
    assert [s.effect.id for s in restored(flow).undone] == ["new", "old"]


def test_skipped_by_approver_is_not_claimed() -> None:
    the_plan = plan(step(effect("a")), step(effect("b")))
    flow = start(the_plan, skip=frozenset({"a"}), approved=frozenset({"a"}))
    running(flow)
    assert audited(flow).details == {"planned": {"a": "undo"}}
    undone(flow, "b")
    report = restored(flow)
    assert [(s.effect.id, s.reason) for s in report.skipped] == [
        ("a", "skipped by approver")
    ]


def test_skipped_by_the_caller_by_tool_call_id_says_skip() -> None:
    kept = effect("a", tool_call_id="call-1")
    flow = start(plan(step(kept), step(effect("b"))), skip=frozenset({"call-1"}))
    running(flow)
    assert audited(flow).details == {"planned": {"a": "undo"}}
    undone(flow, "b")
    report = restored(flow)
    assert [(s.effect.id, s.reason) for s in report.skipped] == [
        ("a", "skipped (skip=)")
    ]


def test_already_compensated_is_only_reported() -> None:
    flow = start(plan(step(effect(status="compensated"), Decision.ALREADY_COMPENSATED)))
    running(flow)
    report = restored(flow)
    assert [e.id for e in report.already_compensated] == ["e1"]
    assert report.status == "nothing_to_undo"


def test_inverse_that_already_took_effect_is_marked_compensated() -> None:
    the_step = step(
        effect(status="compensating"),
        Decision.ALREADY_COMPENSATED,
        reason="an earlier rollback's inverse already restored it",
        current="A",
    )
    flow = start(plan(the_step))
    running(flow)
    mark = flow.reply(Update, True, effect_id="e1", expect=("compensating",))
    assert mark.changes["status"] == "compensated"
    assert decoded(mark.changes["undo_type"], mark.changes["undo"]) == {
        "current": "A",
        "notes": ["an earlier rollback's inverse already restored it"],
    }
    assert [e.id for e in restored(flow).already_compensated] == ["e1"]


def test_failed_inverse_that_already_took_effect_is_marked_from_its_status() -> None:
    the_step = step(effect(status="compensation_failed"), Decision.ALREADY_COMPENSATED)
    flow = start(plan(the_step))
    running(flow)
    flow.reply(Update, True, expect=("compensation_failed",))
    assert restored(flow).status == "nothing_to_undo"


def test_skip_decisions_are_reported_with_their_reason() -> None:
    the_plan = plan(step(effect(), Decision.SKIP, reason="irreversible: mail"))
    flow = start(the_plan)
    running(flow)
    assert [s.reason for s in restored(flow).skipped] == ["irreversible: mail"]


def test_conflict_skip_leaves_it_and_undoes_the_rest() -> None:
    the_plan = plan(
        step(effect("c"), Decision.CONFLICT, reason="changed"), step(effect("u"))
    )
    flow = start(the_plan, on_conflict="skip")
    running(flow)
    undone(flow, "u")
    report = restored(flow)
    assert [(s.effect.id, s.reason) for s in report.conflicts] == [("c", "changed")]
    assert report.status == "completed"


def test_conflict_force_undoes_it_without_checking_for_drift() -> None:
    the_plan = plan(step(effect(outcome=APPLIED), Decision.CONFLICT))
    flow = start(the_plan, registry(OBSERVED), on_conflict="force")
    running(flow)
    entry = audited(flow)
    assert (entry.action, entry.effect_ids) == ("force", ["e1"])
    assert "changed" in entry.overrode
    flow.reply(Update, True, expect=CLAIMABLE)
    flow.reply(Undo, Outcome(value="ok"))
    # The one observation is the verification after the inverse.
    flow.reply(Observe, Outcome(value=None), fn=observe_path)
    flow.reply(Update, True, expect=("compensating",))
    told(flow, "e1", ok=True)
    assert restored(flow).status == "completed"


def test_claim_lost_since_planning_is_skipped_untold() -> None:
    flow = start(plan(step(effect("a")), step(effect("b"))))
    running(flow)
    flow.reply(Update, False, effect_id="a")
    undone(flow, "b")
    report = restored(flow)
    assert [(s.effect.id, s.reason) for s in report.skipped] == [
        ("a", "its status changed since planning")
    ]


def test_inverse_timeout_is_passed_to_the_inverse() -> None:
    flow = start(plan(step(effect())), inverse_timeout=2.5)
    running(flow)
    flow.reply(Update, True)
    flow.expect(Undo, timeout=2.5)


# --- drift found while undoing ------------------------------------------------------------


def drifting(**policies: Any) -> Script:
    """Two effects; the newer is undone, the older's target drifted."""
    the_plan = plan(
        step(effect("new", seq=3, outcome=APPLIED)),
        step(effect("mid", seq=2, outcome=APPLIED)),
        step(effect("old", seq=1)),
    )
    flow = start(the_plan, registry(OBSERVED), **policies)
    running(flow)
    flow.reply(Update, True, effect_id="new")
    flow.reply(Observe, Outcome(value="B"))  # as the plan saw it
    flow.reply(Undo, Outcome(value="ok"))
    flow.reply(Observe, Outcome(value=None))  # verified: as before
    flow.reply(Update, True, effect_id="new")
    told(flow, "new", ok=True)
    flow.reply(Update, True, effect_id="mid", expect=CLAIMABLE)
    flow.reply(Observe, Outcome(value="X"))
    release = flow.reply(Update, True, effect_id="mid", expect=("compensating",))
    assert release.changes["status"] == "applied"
    return flow


def test_drift_while_undoing_stops_the_rollback_under_abort() -> None:
    flow = drifting()
    report = saved(flow)  # not restored
    assert (report.status, report.restored_checkpoint_id) == ("stopped", None)
    assert report.message == (
        "Stopped before undoing write(path='a') (#2): the target changed since "
        "planning (found 'X'), and on_conflict='abort'. The newer effects were "
        "undone; the state was not restored. Check the target, then roll back "
        "again (on_conflict='skip' to leave it, on_conflict='force' to undo it "
        "anyway)."
    )
    assert [s.effect.id for s in report.undone] == ["new"]
    assert [s.effect.id for s in report.conflicts] == ["mid"]
    assert [(s.effect.id, s.reason) for s in report.skipped] == [
        ("old", "not attempted: the rollback stopped at a target that changed")
    ]
    assert "Rolling back to the same checkpoint again resumes from here." in str(report)


def test_drift_while_undoing_under_skip_leaves_it_and_goes_on() -> None:
    flow = drifting(on_conflict="skip")
    flow.reply(Update, True, effect_id="old")
    flow.reply(Undo, Outcome(value="ok"))
    flow.reply(Observe, Outcome(value=None))
    flow.reply(Update, True, effect_id="old")
    told(flow, "old", ok=True)
    report = restored(flow)
    assert report.status == "completed"
    assert [s.effect.id for s in report.undone] == ["new", "old"]
    assert [(s.effect.id, s.reason) for s in report.conflicts] == [
        ("mid", "the target changed since planning (found 'X')")
    ]


# --- failures ----------------------------------------------------------------------------


def test_failed_inverse_is_marked_and_stops_the_rollback() -> None:
    flow = start(plan(step(effect("a")), step(effect("b"))))
    running(flow)
    mark = fails(flow, "a")
    assert mark.changes["status"] == "compensation_failed"
    assert "compensated_at" not in mark.changes
    undo = decoded(mark.changes["undo_type"], mark.changes["undo"])
    assert undo == {"error": "ValueError: no"}
    report = saved(flow)
    assert report.status == "failed"
    assert report.message == (
        "The inverse of write (#1) failed: ValueError: no. The state was not restored."
    )
    assert [(f.effect.id, f.error) for f in report.failures] == [
        ("a", "ValueError: no")
    ]
    assert [(s.effect.id, s.reason) for s in report.skipped] == [
        ("b", "not attempted: an earlier inverse failed")
    ]


def test_steps_after_a_failure_are_still_reported_as_planned() -> None:
    the_plan = plan(
        step(effect("a")),
        step(effect("s"), Decision.SKIP, reason="irreversible: mail"),
        step(effect("k", status="compensating"), Decision.ALREADY_COMPENSATED),
    )
    flow = start(the_plan)
    running(flow)
    fails(flow, "a")
    # An inverse that took effect is recorded so, even after a failure.
    flow.reply(Update, True, effect_id="k", expect=("compensating",))
    report = saved(flow)
    assert [(s.effect.id, s.reason) for s in report.skipped] == [
        ("s", "irreversible: mail")
    ]
    assert [e.id for e in report.already_compensated] == ["k"]


def test_on_failure_continue_runs_the_other_inverses_but_does_not_restore() -> None:
    flow = start(plan(step(effect("a")), step(effect("b"))), on_failure="continue")
    running(flow)
    fails(flow, "a")
    undone(flow, "b")
    report = saved(flow)
    assert report.status == "failed"
    assert [s.effect.id for s in report.undone] == ["b"]


def test_timed_out_inverse_keeps_its_claim() -> None:
    flow = start(plan(step(effect())))
    running(flow)
    mark = fails(flow, error=InverseTimeoutError("inverse did not finish in 1s"))
    assert mark.changes["status"] == "compensating"
    undo = decoded(mark.changes["undo_type"], mark.changes["undo"])
    assert undo["timed_out"] is True
    report = saved(flow)
    assert report.status == "failed"
    assert "stays 'compensating'" in report.failures[0].error
    assert "compensated=True|False" in report.failures[0].error


def test_unresolved_effects_leave_the_rollback_incomplete() -> None:
    the_plan = plan(
        step(effect("p", status="pending"), Decision.SKIP, skip_kind="unresolved"),
        step(effect("u")),
    )
    flow = start(the_plan)
    running(flow)
    undone(flow, "u")
    report = saved(flow)
    assert report.status == "incomplete"
    assert report.message == (
        "1 effect(s) have an unknown outcome, so the world may not be back at "
        "the target and the state was not restored. Resolve them (see their "
        "reasons), then roll back again."
    )


def test_unresolved_effects_the_approver_skipped_do_not_count() -> None:
    the_step = step(effect("p"), Decision.SKIP, skip_kind="unresolved")
    flow = start(plan(the_step), skip=frozenset({"p"}))
    running(flow)
    audited(flow)
    assert restored(flow).status == "nothing_to_undo"


# --- restoring the state -----------------------------------------------------------------


def test_head_already_a_copy_of_the_target_is_not_restored_again() -> None:
    flow = start(plan(head="k2", reached_copy="k2"))
    running(flow)
    report = saved(flow)
    assert (report.status, report.restored_checkpoint_id) == ("nothing_to_undo", None)
    assert report.message == (
        "The thread is already at the target; there was nothing left to undo."
    )


def test_head_at_the_target_with_nothing_undone_is_left_untouched() -> None:
    flow = start(plan(head="c1"))
    running(flow)
    report = saved(flow)
    assert report.restored_checkpoint_id is None
    assert "already at the target" in report.message


def test_head_at_the_target_is_restored_when_something_was_undone() -> None:
    flow = start(plan(step(effect()), head="c1"))
    running(flow)
    undone(flow)
    report = restored(flow)
    assert (report.status, report.message) == ("completed", "")


def test_head_at_the_target_is_restored_when_an_inverse_is_marked_done() -> None:
    the_step = step(effect(status="compensated"), Decision.ALREADY_COMPENSATED)
    flow = start(plan(the_step, head="c1"))
    running(flow)
    assert restored(flow).restored_checkpoint_id == "k4"


def test_caller_that_restores_itself_gets_only_the_subgraphs_restored() -> None:
    flow = start(plan(step(effect())), restore=None)
    running(flow)
    undone(flow)
    flow.reply(ReadNamespaceStates, [])
    report = saved(flow)
    assert (report.status, report.restored_checkpoint_id) == ("completed", None)


def test_nothing_to_undo_behind_the_head_still_restores_the_target() -> None:
    flow = start(plan())
    running(flow)
    report = restored(flow)
    assert (report.status, report.message) == ("nothing_to_undo", "")


# --- the saved record --------------------------------------------------------------------


def test_final_record_carries_the_report() -> None:
    flow = start(plan(step(effect())))
    running(flow)
    undone(flow)
    flow.reply(ReadNamespaceStates, [])
    flow.reply(Restore, NEW_HEAD)
    record = flow.reply(SaveRollback).record
    assert record["restored_checkpoint_id"] == "k4"
    assert record["finished_at"] is not None
    content = decoded(record["report_type"], record["report"])
    assert content["status"] == "completed"
    assert content["undone"][0]["description"] == "restored a (undo of write)"


def test_report_the_serde_cannot_store_is_saved_as_its_text() -> None:
    flow = start(plan(step(effect())), restore=None)
    running(flow)
    undone(flow, result=threading.Lock())
    flow.reply(ReadNamespaceStates, [])
    record = flow.reply(SaveRollback).record
    report = flow.returns()
    assert decoded(record["report_type"], record["report"]) == {"text": str(report)}


def test_a_report_too_large_to_store_is_saved_as_its_text_cut() -> None:
    flow = start(plan(step(effect())), restore=None)
    running(flow)
    undone(flow, result="x" * 20_000_000)  # over the ledger's 16 MiB
    flow.reply(ReadNamespaceStates, [])
    record = flow.reply(SaveRollback).record
    report = flow.returns()
    text = decoded(record["report_type"], record["report"])["text"]
    assert len(text) < len(str(report)) and text.endswith(" more characters)")
    assert report.status == "completed"


def test_rejected_report_does_nothing() -> None:
    orphan = effect("o", root="f2")
    the_plan = plan(step(effect()), orphans=[orphan])
    report = rejected_report(the_plan, "rb", STARTED, "no thanks")
    assert (report.status, report.message, report.undone) == (
        "rejected",
        "no thanks",
        [],
    )
    assert [e.id for e in report.orphans] == ["o"]


# --- the lock around a rollback ---------------------------------------------------------


def rollback(tools: ToolRegistry | None = None) -> Script:
    flow = rollback_flow(
        "t",
        TargetSelector("checkpoint", "c1"),
        holder=HOLDER,
        policies=Policies(),
        registry=registry(tool()) if tools is None else tools,
        serde=SERDE,
    )
    return Script(flow)


def test_rollback_locks_plans_executes_restores_and_unlocks() -> None:
    flow = rollback()
    flow.reply(LockThread, None, thread_id="t", holder=HOLDER)
    flow.reply(ReadHead, "c2")
    flow.reply(ReadAncestry, [CheckpointLink("c2", "c1"), CheckpointLink("c1", None)])
    flow.reply(ReadSubtree, [CheckpointLink("c1", None), CheckpointLink("c2", "c1")])
    flow.reply(Select, [row(root="c2")])
    record = flow.reply(SaveRollback).record
    assert record["status"] == "running"
    claim = flow.reply(Update, True, expect=CLAIMABLE)
    assert claim.changes["owner"] == "h#1#s" == HOLDER.owner
    flow.reply(Undo, Outcome(value="restored a"))
    flow.reply(Update, True)
    told(flow, "e1", ok=True)
    flow.reply(ReadNamespaceStates, [], before=())
    flow.reply(Restore, NEW_HEAD, config=RESTORE)
    flow.reply(SaveRollback)
    flow.reply(UnlockThread, None, thread_id="t", holder=HOLDER)
    report = flow.returns()
    assert (report.status, report.head_checkpoint_id) == ("completed", "c2")
    assert report.rollback_id == record["rollback_id"]


def test_unlock_runs_when_the_plan_raises() -> None:
    flow = rollback()
    flow.reply(LockThread)
    flow.reply(ReadHead, None)  # the target's
    flow.reply(ReadHead, None)  # the walk reads it again when there was none
    flow.reply(FindCheckpoint, [])
    flow.reply(UnlockThread, None, holder=HOLDER)
    flow.raises(CheckpointNotFoundError)


def test_unlock_runs_when_a_storage_operation_fails() -> None:
    flow = rollback()
    flow.reply(LockThread)
    flow.expect(ReadHead)
    flow.throw(OSError("disk full"))
    flow.reply(UnlockThread)
    assert str(flow.raises(OSError)) == "disk full"


def test_unlock_runs_when_execution_refuses() -> None:
    flow = rollback(registry())
    flow.reply(LockThread)
    flow.reply(ReadHead, "c1")
    flow.reply(ReadAncestry, [CheckpointLink("c1", "c0")])
    flow.reply(ReadSubtree, [CheckpointLink("c1", "c0")])
    flow.reply(Select, [row()])
    flow.reply(UnlockThread)
    flow.raises(UnregisteredToolError)


def test_lock_refused_is_not_unlocked() -> None:
    flow = rollback()
    flow.expect(LockThread)
    flow.throw(RollbackInProgressError(thread_id="t", holder="h:2:other"))
    flow.raises(RollbackInProgressError)


def test_holding_lock_returns_what_its_body_returns() -> None:
    def body() -> Any:
        head = yield from do(ReadHead("t"))
        return head

    flow = Script(holding_lock("t", HOLDER, body()))
    flow.reply(LockThread)
    flow.reply(ReadHead, "c9")
    flow.reply(UnlockThread)
    assert flow.returns() == "c9"
