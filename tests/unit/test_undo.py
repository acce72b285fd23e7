"""Undoing one effect (`core.undo.undo_one`): its arguments, the claim, the
drift check, the inverse, its verification, the marks and the progress
notice, driven step by step."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langgraph.errors import GraphInterrupt

from langgraph_rollback._models import Effect, EffectStatus, Reversibility
from langgraph_rollback.core.ops import Notify, Observe, Outcome, Undo, Update
from langgraph_rollback.core.plan import PlannedStep
from langgraph_rollback.core.policies import Policies
from langgraph_rollback.core.registry import ToolDefinition
from langgraph_rollback.core.report import UndoneStep
from langgraph_rollback.core.undo import InverseTimeoutError, Run, mark, undo_one
from tests.unit.build import SERDE, decoded, effect, registry, step, tool
from tests.unit.script import Script

CLAIMABLE = ("applied", "compensation_failed", "compensating", "pending")
COMPENSATING = ("compensating",)
APPLIED = {"after": "B", "observed": True}


def observe_path(path: str) -> Any:
    return None


OBSERVED = tool(observe=observe_path)


def make_run(
    definition: ToolDefinition = OBSERVED,
    nested: dict[str, frozenset[str]] | None = None,
    **policies: Any,
) -> Run:
    return Run(
        Policies(**policies),
        registry(definition),
        SERDE,
        "rb",
        "h#9#s",
        nested=nested or {},
    )


def start(the_step: PlannedStep, run: Run) -> Script:
    return Script(undo_one(the_step, run))


def payload(update: Update) -> Any:
    return decoded(update.changes["undo_type"], update.changes["undo"])


def told(flow: Script, ok: bool) -> Notify:
    return flow.reply(Notify, None, ok=ok)


# --- the inverse's arguments and the claim ---------------------------------------------


def test_undo_args_are_built_before_the_claim_and_passed_to_the_inverse() -> None:
    definition = tool(undo="a tool", undo_args=lambda e: {"p": e.args["path"]})
    run = make_run(definition)
    flow = start(step(effect()), run)
    claim = flow.reply(Update, True, effect_id="e1", expect=CLAIMABLE)
    assert claim.changes["owner"] == "h#9#s"
    flow.reply(Undo, Outcome(value="ok"), fn="a tool", args={"p": "a"})


def no_path(effect: Effect) -> dict[str, Any]:
    raise KeyError("path")


def test_undo_args_that_raise_fail_the_effect_which_is_left_unclaimed() -> None:
    run = make_run(tool(undo="a tool", undo_args=no_path))
    flow = start(step(effect()), run)
    notice = told(flow, ok=False)  # no Update: the ledger is left as it was
    assert notice.effect.id == "e1"
    assert flow.returns() == "failed"
    assert [(f.effect.id, f.error) for f in run.failures] == [
        ("e1", "undo_args raised KeyError: 'path'; the inverse did not run")
    ]


def interrupting(effect: Effect) -> dict[str, Any]:
    raise GraphInterrupt(())


def test_undo_args_that_interrupt_pause_the_graph() -> None:
    run = make_run(tool(undo="a tool", undo_args=interrupting))
    flow = start(step(effect()), run)
    flow.raises(GraphInterrupt)


def test_claim_lost_since_planning_is_skipped_and_not_told() -> None:
    run = make_run(tool())
    flow = start(step(effect()), run)
    flow.reply(Update, False)
    assert flow.returns() == "skipped"
    assert [s.reason for s in run.skipped] == ["its status changed since planning"]


# --- the drift check right before the inverse -----------------------------------------


def drift_of(outcome: Outcome, status: str = "applied") -> tuple[Script, Run]:
    run = make_run()
    flow = start(step(effect(status=status, outcome=APPLIED)), run)
    flow.reply(Update, True, expect=CLAIMABLE)
    flow.reply(Observe, outcome, fn=observe_path, kwargs={"path": "a"})
    return flow, run


def test_target_as_planned_is_undone() -> None:
    flow, run = drift_of(Outcome(value="B"))
    flow.expect(Undo)
    assert run.conflicts == []


def test_changed_target_releases_the_claim_as_it_was() -> None:
    flow, run = drift_of(Outcome(value="X" * 80))
    release = flow.reply(Update, True, expect=COMPENSATING)
    assert release.changes["status"] == "applied"
    assert set(release.changes) == {"status", "updated_at"}
    assert flow.returns() == "drifted"
    assert [s.reason for s in run.conflicts] == [
        f"the target changed since planning (found '{'X' * 56}...)"
    ]
    assert (run.undone, run.failures) == ([], [])


def test_changed_target_of_a_failed_inverse_is_released_to_that_status() -> None:
    flow, _ = drift_of(Outcome(value="X"), status="compensation_failed")
    release = flow.reply(Update, True, expect=COMPENSATING)
    assert release.changes["status"] == "compensation_failed"
    assert flow.returns() == "drifted"


def resumed(status: str = "compensation_failed") -> tuple[Script, Run]:
    """An inverse run again over what an earlier one left part-way ("H")."""
    run = make_run()
    the_effect = effect(status=status, before="A", outcome=APPLIED)
    flow = start(step(the_effect, resumes=True, resumed_at="H"), run)
    flow.reply(Update, True, expect=CLAIMABLE)
    return flow, run


def test_resumed_inverse_runs_when_the_target_still_reads_as_left() -> None:
    flow, run = resumed()
    flow.reply(Observe, Outcome(value="H"), kwargs={"path": "a"})
    flow.reply(Undo, Outcome(value="restored a"))
    flow.reply(Observe, Outcome(value="A"))
    flow.reply(Update, True, expect=COMPENSATING)
    told(flow, ok=True)
    assert flow.returns() == "undone"
    assert [s.description for s in run.undone] == [
        "restored a (undo of write); run again over what an earlier inverse left ('H')"
    ]


def test_resumed_inverse_whose_target_changed_again_is_drift() -> None:
    flow, run = resumed()
    flow.reply(Observe, Outcome(value="B"))
    release = flow.reply(Update, True, expect=COMPENSATING)
    assert release.changes["status"] == "compensation_failed"
    assert flow.returns() == "drifted"
    assert [s.reason for s in run.conflicts] == [
        "the target changed since planning (found 'B')"
    ]


def test_observe_raising_before_the_inverse_is_drift() -> None:
    flow, run = drift_of(Outcome(error=OSError("offline")))
    flow.reply(Update, True, expect=COMPENSATING)
    assert flow.returns() == "drifted"
    assert [s.reason for s in run.conflicts] == [
        "observe() raised OSError('offline'); cannot tell whether the target changed"
    ]


@pytest.mark.parametrize(
    "the_effect",
    [
        effect(status="pending", outcome=APPLIED),
        effect(outcome={"result": 1, "after": None, "observed": False}),
    ],
    ids=["pending", "after_not_observed"],
)
def test_nothing_to_compare_with_leaves_it_to_the_plan(the_effect: Effect) -> None:
    flow = start(step(the_effect), make_run())
    flow.reply(Update, True)
    flow.expect(Undo)


def test_force_runs_the_inverse_without_checking() -> None:
    flow = start(step(effect(outcome=APPLIED)), make_run(on_conflict="force"))
    flow.reply(Update, True)
    flow.expect(Undo)


def undone_step(the_effect: Effect) -> UndoneStep:
    return UndoneStep(effect=the_effect, description="undid it")


BOX = effect("box", seq=1, tool="step")


def inside_box(**fields: Any) -> tuple[Script, Run]:
    """A write recorded inside the container `box`, which this run undid."""
    run = make_run(nested={"box": frozenset({"e1"})})
    run.undone.append(undone_step(BOX))
    the_effect = effect(seq=2, before="A", outcome=APPLIED, inside="box", **fields)
    flow = start(step(the_effect), run)
    flow.reply(Update, True, expect=CLAIMABLE)
    return flow, run


def test_effect_its_container_already_restored_is_marked_without_its_inverse() -> None:
    flow, run = inside_box()
    observe = flow.reply(Observe, Outcome(value="A"), kwargs={"path": "a"})
    assert observe.effect is not None and observe.effect.id == "e1"
    marked = flow.reply(Update, True, expect=COMPENSATING)
    assert marked.changes["status"] == "compensated"
    assert payload(marked) == {
        "result": None,
        "notes": ["restored by the inverse of step (#1)"],
    }
    told(flow, ok=True)
    assert flow.returns() == "undone"
    assert run.undone[-1].description == (
        "undid write(path='a'); restored by the inverse of step (#1)"
    )


@pytest.mark.parametrize(
    "observed",
    [Outcome(value="C"), Outcome(error=OSError("x"))],
    ids=["other", "raised"],
)
def test_effect_its_container_changed_otherwise_is_undone_without_drift(
    observed: Outcome,
) -> None:
    flow, _ = inside_box()
    flow.reply(Observe, observed)
    flow.expect(Undo)  # this rollback's own inverse changed it: no drift


def test_pending_effect_inside_an_undone_container_is_undone() -> None:
    flow, _ = inside_box(status="pending")
    flow.expect(Undo)


def test_container_whose_nested_effects_were_undone_first_is_not_drift() -> None:
    inner = effect("inner", seq=2, inside="e1")
    run = make_run(nested={"e1": frozenset({"inner"})})
    run.undone.append(undone_step(inner))
    flow = start(step(effect(seq=1, outcome=APPLIED)), run)
    flow.reply(Update, True)
    flow.expect(Undo)  # its target changed by this rollback's hand


def test_undid_around_knows_the_container_and_what_ran_inside_it() -> None:
    run = make_run(nested={"box": frozenset({"inner"})})
    box, inner = effect("box"), effect("inner", inside="box")
    assert not run.undid_around(box) and not run.undid_around(inner)
    run.undone.append(undone_step(box))
    assert run.undid_around(inner) and not run.undid_around(box)
    run.undone[:] = [undone_step(inner)]
    assert run.undid_around(box)


# --- the inverse, verified --------------------------------------------------------------


def inverse_ran(
    definition: ToolDefinition, outcome: Outcome, **fields: Any
) -> tuple[Script, Run, Undo]:
    run = make_run(definition)
    flow = start(step(effect(**({"before": "A"} | fields))), run)
    flow.reply(Update, True)
    undo = flow.reply(Undo, outcome)
    return flow, run, undo


def test_reversible_inverse_is_verified_by_observing_again() -> None:
    flow, run, undo = inverse_ran(OBSERVED, Outcome(value="deleted a"))
    assert (undo.effect.status, undo.effect.undo_attempts) == (
        EffectStatus.COMPENSATING,
        1,
    )
    verify = flow.reply(Observe, Outcome(value="A"), kwargs={"path": "a"})
    assert verify.effect is not None and verify.effect.id == "e1"
    marked = flow.reply(Update, True, expect=COMPENSATING)
    assert (marked.changes["status"], payload(marked)) == (
        "compensated",
        {"result": "deleted a"},
    )
    told(flow, ok=True)
    assert flow.returns() == "undone"
    assert [(s.result, s.description) for s in run.undone] == [
        ("deleted a", "deleted a (undo of write)")
    ]
    assert run.undone[0].effect.status is EffectStatus.COMPENSATING


def test_inverse_whose_target_does_not_read_as_before_failed() -> None:
    flow, run, _ = inverse_ran(OBSERVED, Outcome(value="ok"))
    flow.reply(Observe, Outcome(value="X"))
    marked = flow.reply(Update, True, expect=COMPENSATING)
    error = (
        "compensation unverified: after the inverse the target reads 'X', not "
        "'A' as before the call"
    )
    assert marked.changes["status"] == "compensation_failed"
    assert payload(marked) == {"error": error, "unverified": True}
    told(flow, ok=False)
    assert flow.returns() == "failed"
    assert [(f.effect.status, f.error) for f in run.failures] == [
        (EffectStatus.COMPENSATING, error)
    ]


def test_inverse_whose_target_cannot_be_read_after_is_unverified() -> None:
    flow, _, _ = inverse_ran(OBSERVED, Outcome(value="ok"))
    flow.reply(Observe, Outcome(error=OSError("gone")))
    marked = flow.reply(Update, True)
    assert payload(marked)["error"] == (
        "compensation unverified: observe() raised OSError: gone after the "
        "inverse, so it cannot be told the target is back"
    )
    told(flow, ok=False)
    assert flow.returns() == "failed"


def files_of(observation: Any) -> Any:
    return observation["files"]


RESTORES_FILES = tool(observe=observe_path, restores=files_of)


def test_inverse_that_restores_part_of_the_target_is_verified_on_that_part() -> None:
    before = {"files": "A", "head": "h1"}
    flow, run, _ = inverse_ran(RESTORES_FILES, Outcome(value=None), before=before)
    flow.reply(Observe, Outcome(value={"files": "A", "head": "h2"}))
    assert flow.reply(Update, True).changes["status"] == "compensated"
    told(flow, ok=True)
    assert run.failures == []


def test_part_the_inverse_restores_must_read_as_before() -> None:
    before = {"files": "A", "head": "h1"}
    flow, run, _ = inverse_ran(RESTORES_FILES, Outcome(value=None), before=before)
    flow.reply(Observe, Outcome(value={"files": "B", "head": "h1"}))
    assert flow.reply(Update, True).changes["status"] == "compensation_failed"
    assert run.failures[0].error.startswith(
        "compensation unverified: after the inverse the target reads {'files': 'B'"
    )


def test_compensable_inverse_is_not_verified() -> None:
    refund = tool(kind=Reversibility.COMPENSABLE, observe=observe_path)
    flow, run, _ = inverse_ran(refund, Outcome(value="refunded"))
    assert flow.reply(Update, True).changes["status"] == "compensated"
    told(flow, ok=True)
    assert run.undone[0].description == "refunded (undo of write)"


def test_unstorable_inverse_result_is_marked_by_its_repr() -> None:
    lock = threading.Lock()
    flow, run, _ = inverse_ran(tool(), Outcome(value=lock))
    assert payload(flow.reply(Update, True)) == {"result": repr(lock)}
    told(flow, ok=True)
    assert run.undone[0].result is lock


def test_inverse_that_interrupts_releases_its_claim_and_pauses_the_graph() -> None:
    interrupt = GraphInterrupt(())
    flow, run, _ = inverse_ran(tool(), Outcome(error=interrupt), status="applied")
    release = flow.reply(Update, True, expect=COMPENSATING)
    assert (release.changes["status"], set(release.changes)) == (
        "applied",
        {"status", "updated_at"},
    )
    assert flow.raises(GraphInterrupt) is interrupt
    assert (run.failures, run.undone) == ([], [])


def test_inverse_that_raises_is_marked_failed_and_told() -> None:
    flow, run, _ = inverse_ran(OBSERVED, Outcome(error=ValueError("no")))
    marked = flow.reply(Update, True, expect=COMPENSATING)
    assert marked.changes["status"] == "compensation_failed"
    assert "compensated_at" not in marked.changes
    assert payload(marked) == {"error": "ValueError: no"}
    told(flow, ok=False)
    assert flow.returns() == "failed"
    assert [f.error for f in run.failures] == ["ValueError: no"]


# --- an inverse that outlives its timeout ----------------------------------------------


def timed_out() -> tuple[Script, Run, Undo]:
    run = make_run(tool(), inverse_timeout=1.0)
    flow = start(step(effect()), run)
    flow.reply(Update, True)
    undo = flow.reply(Undo, Outcome(error=InverseTimeoutError("not done in 1s")))
    return flow, run, undo


def test_timed_out_inverse_stays_claimed_while_it_may_still_run() -> None:
    flow, run, undo = timed_out()
    assert undo.timeout == 1.0
    marked = flow.reply(Update, True, expect=COMPENSATING)
    assert marked.changes["status"] == "compensating"
    content = payload(marked)
    assert content["timed_out"] is True
    assert content["error"].startswith("not done in 1s; it may still take effect")
    told(flow, ok=False)
    assert flow.returns() == "failed"
    assert "saver.resolve_effect(config, 'e1', compensated=True|False)" in (
        run.failures[0].error
    )


def test_late_outcome_of_a_timed_out_inverse_is_recorded_when_it_ends() -> None:
    _, _, undo = timed_out()
    assert undo.late is not None
    done = undo.late(Outcome(value="deleted a"))
    assert (done.effect_id, done.expect) == ("e1", COMPENSATING)
    assert done.changes["status"] == "compensated"
    assert done.changes["rollback_id"] == "rb"
    assert payload(done) == {"result": "deleted a", "late": True}


def test_late_failure_of_a_timed_out_inverse_is_recorded_as_failed() -> None:
    _, _, undo = timed_out()
    assert undo.late is not None
    failed = undo.late(Outcome(error=ValueError("no")))
    assert failed.changes["status"] == "compensation_failed"
    assert "compensated_at" not in failed.changes
    assert payload(failed) == {
        "error": "ValueError: no (after its timeout)",
        "late": True,
    }


def test_late_result_that_cannot_be_stored_is_recorded_by_its_repr() -> None:
    _, _, undo = timed_out()
    assert undo.late is not None
    lock = threading.Lock()
    assert payload(undo.late(Outcome(value=lock)))["result"] == repr(lock)


# --- the marks ---------------------------------------------------------------------------


def test_mark_expects_the_claim_unless_told_otherwise() -> None:
    run = make_run()
    done = mark(effect(), EffectStatus.COMPENSATED, run, {"result": 1})
    assert done.expect == COMPENSATING
    assert done.changes["compensated_at"] == done.changes["updated_at"]
    settled = mark(
        effect(), EffectStatus.COMPENSATED, run, {}, expect=("compensation_failed",)
    )
    assert settled.expect == ("compensation_failed",)
