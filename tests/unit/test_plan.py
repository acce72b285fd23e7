"""Planning a rollback (`plan_flow`): the walk, which effects, and each decision.

The thread used throughout: c0 <- c1 <- c2 <- c3 (the head), and a fork
c1 <- f2 left behind. The target is c1.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from langgraph_rollback._errors import (
    CheckpointNotFoundError,
    EffectInFlightError,
    NotAnAncestorError,
)
from langgraph_rollback._models import Reversibility
from langgraph_rollback.core.decide import target_key
from langgraph_rollback.core.ledger import LedgerRow
from langgraph_rollback.core.ops import (
    AwaitCall,
    CheckpointLink,
    ExistingCheckpoints,
    FindCheckpoint,
    Observe,
    Outcome,
    ReadAncestry,
    ReadHead,
    ReadSubtree,
    Select,
)
from langgraph_rollback.core.plan import (
    THREAD_START,
    Decision,
    PlannedStep,
    RollbackPlan,
    plan_flow,
)
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.registry import ToolDefinition, ToolRegistry
from tests.unit.build import SERDE, effect, registry, row, tool
from tests.unit.script import Script

C3, C2, C1 = (
    CheckpointLink("c3", "c2"),
    CheckpointLink("c2", "c1"),
    CheckpointLink("c1", "c0"),
)
CHAIN = [C3, C2, C1]
SUBTREE = [C1, C2, C3, CheckpointLink("f2", "c1")]
REGION = ("c1", "c2", "c3", "f2")


def observe_path(path: str, **_: Any) -> Any:
    return None


OBSERVED = tool(observe=observe_path)
UNOBSERVED = object()
APPLIED = {"after": "B", "observed": True}


def start(
    tools: ToolRegistry | None = None,
    head: str | None = None,
    *,
    target: str = "c1",
    in_run: bool = False,
) -> Script:
    tools = registry(tool()) if tools is None else tools
    flow = plan_flow("t", target, registry=tools, serde=SERDE, head=head, in_run=in_run)
    return Script(flow)


def answered(
    flow: Script, observations: Iterable[Outcome] = (), calls: str = "gone"
) -> RollbackPlan:
    """Answer the decisions' operations: each `AwaitCall` with `calls`, each
    observation in turn; the plan."""
    answers = iter(observations)
    while flow.current is not None:
        if isinstance(flow.current, AwaitCall):
            flow.send(calls)
        else:
            flow.reply(Observe, next(answers))
    assert next(answers, None) is None, "an observation was not asked for"
    plan: RollbackPlan = flow.returns()
    return plan


def planned(
    rows: list[LedgerRow],
    tools: ToolRegistry | None = None,
    observations: Iterable[Outcome] = (),
    *,
    persisted: set[str] | None = None,
) -> RollbackPlan:
    """Walk the standard thread, read `rows`, answer each observation in turn
    (calls and inverses of pending and compensating rows are gone)."""
    flow = start(tools)
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, CHAIN)
    flow.reply(ReadSubtree, SUBTREE)
    flow.reply(Select, rows)
    if persisted is not None:
        flow.reply(ExistingCheckpoints, persisted)
    return answered(flow, observations)


def decided(
    the_row: LedgerRow,
    definition: ToolDefinition | None = None,
    current: Any = UNOBSERVED,
) -> PlannedStep:
    """The decision for one effect on the path (`current`: what observe reads)."""
    tools = registry() if definition is None else registry(definition)
    observations = []
    if current is not UNOBSERVED:
        outcome = current if isinstance(current, Outcome) else Outcome(value=current)
        observations.append(outcome)
    [step] = planned([the_row], tools, observations).steps
    return step


# --- the walk ------------------------------------------------------------------------


def test_thread_without_a_head_has_no_such_checkpoint() -> None:
    flow = start()
    flow.reply(ReadHead, None, thread_id="t")
    flow.reply(FindCheckpoint, ["other"], checkpoint_id="c1")
    error = flow.raises(CheckpointNotFoundError)
    assert error.found_in == ["other"]


def test_head_missing_from_storage_says_to_use_durability_sync() -> None:
    flow = start()
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, [], thread_id="t", start="c3", stop="c1")
    error = flow.raises(CheckpointNotFoundError)
    assert error.checkpoint_id == "c3"
    assert "durability='sync'" in str(error)


def test_target_of_this_thread_off_the_path_is_not_an_ancestor() -> None:
    flow = start()
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, [C3, C2, CheckpointLink("c0", None)])
    flow.reply(FindCheckpoint, ["t", "other"])
    error = flow.raises(NotAnAncestorError)
    assert error.head_checkpoint_id == "c3"


def test_target_of_another_thread_names_that_thread() -> None:
    flow = start()
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, [C3, CheckpointLink("c0", None)])
    flow.reply(FindCheckpoint, ["other"])
    error = flow.raises(CheckpointNotFoundError)
    assert not isinstance(error, NotAnAncestorError)
    assert error.found_in == ["other"]


def test_given_head_is_where_the_walk_starts() -> None:
    flow = start(head="c2")
    flow.reply(ReadAncestry, [C2, C1], start="c2")
    flow.reply(ReadSubtree, SUBTREE, root="c1")
    flow.reply(Select, [])
    plan = flow.returns()
    assert (plan.head_checkpoint_id, plan.path) == ("c2", ["c2", "c1"])
    assert plan.reached_copy is None
    assert plan.target_copies == ["c1"]
    assert not plan.at_target


def test_walk_reaching_a_restored_copy_of_the_target_stops_there() -> None:
    copy = CheckpointLink("k2", "c0", copies=("c1", "c-1"))
    flow = start()
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, [CheckpointLink("c3", "k2"), copy])
    flow.reply(ReadSubtree, [copy], root="k2")
    flow.reply(Select, [])
    plan = flow.returns()
    assert (plan.path, plan.reached_copy) == (["c3", "k2"], "k2")
    assert plan.target_copies == ["c1", "c-1"]


def test_head_that_is_a_copy_of_the_target_is_at_the_target() -> None:
    copy = CheckpointLink("k2", "c0", copies=("c1",))
    flow = start(head="k2")
    flow.reply(ReadAncestry, [copy])
    flow.reply(ReadSubtree, [copy])
    flow.reply(Select, [])
    assert flow.returns().at_target


# --- which effects -----------------------------------------------------------------


def test_effects_are_read_by_the_region_of_the_target() -> None:
    flow = start()
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, CHAIN)
    flow.reply(ReadSubtree, SUBTREE)
    query = EffectQuery(thread_id="t", anchors=REGION, unanchored=False)
    flow.reply(Select, [], query=query)
    plan = flow.returns()
    assert (plan.steps, plan.orphans) == ([], [])


def test_effects_on_the_path_are_planned_and_on_a_fork_are_orphans() -> None:
    rows = [
        row("on_c3", root="c3", seq=4),
        row("on_fork", root="f2", seq=3),
        row("undone_on_fork", root="f2", status="compensated", seq=2),
        row("on_target", root="c1", seq=1),
    ]
    plan = planned(rows)
    assert [s.effect.id for s in plan.steps] == ["on_c3", "on_target"]
    assert [e.id for e in plan.orphans] == ["on_fork"]


def test_unpersisted_root_is_placed_by_its_base() -> None:
    rows = [
        row("base_on_path", root="gone1", base_checkpoint_id="c2"),
        row("base_on_fork", root="gone2", base_checkpoint_id="f2"),
        row("persisted_elsewhere", root="c0x", base_checkpoint_id="c2"),
    ]
    plan = planned(rows, persisted={"c0x"})
    assert [s.effect.id for s in plan.steps] == ["base_on_path"]
    assert [e.id for e in plan.orphans] == ["base_on_fork"]


def test_outside_roots_are_checked_for_persistence() -> None:
    flow = start()
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, CHAIN)
    flow.reply(ReadSubtree, SUBTREE)
    flow.reply(Select, [row("a", root="z"), row("b", root="y"), row("c", root="c2")])
    flow.reply(
        ExistingCheckpoints, {"y", "z"}, thread_id="t", checkpoint_ids=["y", "z"]
    )
    assert [s.effect.id for s in flow.returns().steps] == ["c"]


def from_the_first_checkpoint(rows: list[LedgerRow]) -> RollbackPlan:
    """Plan back to c1 when c1 is the thread's first stored checkpoint."""
    first = CheckpointLink("c1", None)
    flow = start()
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, [C3, C2, first])
    query = EffectQuery(thread_id="t", anchors=("c1", "c2", "c3"), unanchored=True)
    flow.reply(ReadSubtree, [first, C2, C3])
    flow.reply(Select, rows, query=query)
    flow.reply(ExistingCheckpoints, set())
    plan: RollbackPlan = flow.returns()
    return plan


def test_unanchored_effect_after_the_first_checkpoint_belongs_to_it() -> None:
    plan = from_the_first_checkpoint([row("late", root="c1z")])
    assert [s.effect.id for s in plan.steps] == ["late"]


def test_unanchored_effect_older_than_the_first_checkpoint_is_left_alone() -> None:
    plan = from_the_first_checkpoint([row("early", root="c0z")])
    assert plan.steps == []
    assert [e.id for e in plan.orphans] == ["early"]


def test_first_plans_back_to_the_thread_s_empty_start() -> None:
    first = CheckpointLink("c1", None)
    flow = start(target=THREAD_START)
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, [C3, C2, first], start="c3", stop=THREAD_START)
    flow.reply(ReadSubtree, [first, C2, C3], root="c1")
    # Every effect of the thread lies after its start: no anchors.
    query = EffectQuery(thread_id="t", anchors=None, unanchored=True)
    rows = [row("late", root="c1z", seq=2), row("early", root="c0z", seq=1)]
    flow.reply(Select, rows, query=query)
    flow.reply(ExistingCheckpoints, set(), checkpoint_ids=["c0z", "c1z"])
    plan = flow.returns()
    # Recorded before any checkpoint was stored: undone too, unlike back to c1.
    assert [s.effect.id for s in plan.steps] == ["late", "early"]
    assert plan.orphans == []
    assert (plan.target_checkpoint_id, plan.path) == ("first", ["c3", "c2", "c1"])
    assert (plan.reached_copy, plan.target_copies) == (None, ["first"])
    assert not plan.at_target


def test_first_reached_as_an_earlier_rollback_s_copy_is_at_the_target() -> None:
    copy = CheckpointLink("k4", "c3", copies=(THREAD_START,))
    flow = start(head="k4", target=THREAD_START)
    flow.reply(ReadAncestry, [copy])
    flow.reply(ReadSubtree, [copy], root="k4")
    flow.reply(Select, [])
    plan = flow.returns()
    assert (plan.reached_copy, plan.at_target) == ("k4", True)


def test_first_effect_placed_by_a_base_off_the_path_stays_an_orphan() -> None:
    first = CheckpointLink("c1", None)
    flow = start(target=THREAD_START)
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, [C3, C2, first])
    flow.reply(ReadSubtree, [first, C2, C3, CheckpointLink("f2", "c1")])
    flow.reply(Select, [row("on_fork", root="gone", base_checkpoint_id="f2")])
    flow.reply(ExistingCheckpoints, set())
    plan = flow.returns()
    assert (plan.steps, [e.id for e in plan.orphans]) == ([], ["on_fork"])


# --- decisions -----------------------------------------------------------------------


def test_compensated_effect_is_already_compensated() -> None:
    assert decided(row(status="compensated")).decision is Decision.ALREADY_COMPENSATED


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("blocked", "blocked by the guard policy; it never ran"),
        ("interrupted", "interrupted before it acted"),
        ("failed", "the call failed (ValueError: x); nothing was applied"),
    ],
)
def test_calls_that_never_acted_are_skipped_as_not_applied(
    status: str, reason: str
) -> None:
    step = decided(row(status=status, outcome={"error": "ValueError: x"}))
    assert (step.decision, step.skip_kind, step.reason) == (
        Decision.SKIP,
        "not_applied",
        reason,
    )


def test_irreversible_tool_is_skipped_with_its_reason() -> None:
    definition = tool(kind=Reversibility.IRREVERSIBLE, reason="mail is sent")
    step = decided(row(kind="irreversible"), definition)
    assert (step.skip_kind, step.reason) == (
        "irreversible",
        "irreversible: mail is sent",
    )


def test_irreversible_tool_without_a_reason_cannot_be_undone() -> None:
    step = decided(row(kind="irreversible"), tool(kind=Reversibility.IRREVERSIBLE))
    assert step.reason == "irreversible: cannot be undone"


def test_recorded_kind_decides_when_the_tool_is_not_in_the_registry() -> None:
    step = decided(row(kind="irreversible"))
    assert (step.skip_kind, step.reason) == (
        "irreversible",
        "irreversible: cannot be undone",
    )


@pytest.mark.parametrize("kind", ["irreversible", "unknown"])
def test_recorded_kind_decides_over_a_reversible_declaration_made_since(
    kind: str,
) -> None:
    # The call was recorded as irreversible (or undeclared): a tool declared
    # later under that name is not how that call is undone.
    step = decided(row(kind=kind), tool())
    assert (step.decision, step.skip_kind) == (Decision.SKIP, kind)


def test_declaration_made_irreversible_since_is_believed() -> None:
    definition = tool(kind=Reversibility.IRREVERSIBLE, reason="now sends mail")
    step = decided(row(kind="reversible"), definition)
    assert (step.skip_kind, step.reason) == (
        "irreversible",
        "irreversible: now sends mail",
    )


def test_undeclared_tool_is_skipped_as_unknown() -> None:
    step = decided(row(kind="unknown"), tool(kind=Reversibility.UNKNOWN))
    assert (step.decision, step.skip_kind) == (Decision.SKIP, "unknown")


@pytest.mark.parametrize(
    "definition", [None, tool(undo=None)], ids=["absent", "no_undo"]
)
def test_reversible_effect_without_an_inverse_here_is_a_missing_inverse(
    definition: ToolDefinition | None,
) -> None:
    step = decided(row(), definition)
    assert step.decision is Decision.MISSING_INVERSE
    assert "not declared in this registry" in step.reason


@pytest.mark.parametrize("status", ["applied", "compensation_failed"])
def test_unobserved_completed_effect_is_undone(status: str) -> None:
    step = decided(row(status=status), tool())
    assert (step.decision, step.reason) == (
        Decision.UNDO,
        "reversible; undo with undo_write",
    )


@pytest.mark.parametrize(
    ("status", "fix"),
    [("pending", "applied=True"), ("compensating", "compensated=True")],
)
def test_unobserved_unknown_outcome_is_unresolved(status: str, fix: str) -> None:
    step = decided(row(status=status), tool())
    assert (step.decision, step.skip_kind) == (Decision.SKIP, "unresolved")
    assert fix in step.reason


def test_observe_raising_is_a_conflict() -> None:
    step = decided(row(), OBSERVED, Outcome(error=OSError("offline")))
    assert step.decision is Decision.CONFLICT
    assert step.reason.startswith("observe() raised OSError: offline")


def test_observe_is_called_with_the_effect_arguments() -> None:
    flow = start(registry(OBSERVED))
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, CHAIN)
    flow.reply(ReadSubtree, SUBTREE)
    flow.reply(Select, [row(args={"path": "p"})])
    observe = flow.expect(Observe, fn=observe_path, kwargs={"path": "p"})
    assert observe.effect is not None and observe.effect.id == "e1"


def test_applied_effect_whose_target_is_as_left_is_undone() -> None:
    # What observe returns now is compared as it reads back from the ledger.
    step = decided(row(outcome={"after": ("B",), "observed": True}), OBSERVED, ("B",))
    assert (step.decision, step.current) == (Decision.UNDO, ("B",))


def test_a_tuple_observed_now_matches_the_list_an_older_row_holds() -> None:
    step = decided(row(outcome={"after": ["B"], "observed": True}), OBSERVED, ("B",))
    assert step.decision is Decision.UNDO


def test_an_observation_holding_nan_matches_itself() -> None:
    nan = float("nan")
    step = decided(row(outcome={"after": [nan], "observed": True}), OBSERVED, [nan])
    assert step.decision is Decision.UNDO


def test_applied_effect_whose_target_changed_is_a_conflict() -> None:
    step = decided(row(outcome={"after": "B", "observed": True}), OBSERVED, "X")
    assert (step.decision, step.current) == (Decision.CONFLICT, "X")
    assert "(expected 'B', found 'X')" in step.reason


def test_conflict_reason_shortens_long_values() -> None:
    step = decided(row(outcome={"after": "B", "observed": True}), OBSERVED, "x" * 100)
    assert "found 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...)" in step.reason


def test_applied_effect_without_an_after_observation_is_undone() -> None:
    step = decided(row(outcome={"after": None, "observed": False}), OBSERVED, "X")
    assert step.decision is Decision.UNDO


def test_pending_effect_whose_target_is_unchanged_did_not_land() -> None:
    step = decided(row(status="pending", before="A"), OBSERVED, "A")
    assert (step.decision, step.skip_kind, step.current) == (
        Decision.SKIP,
        "not_applied",
        "A",
    )


def test_pending_effect_whose_target_changed_landed_and_is_undone() -> None:
    step = decided(row(status="pending", before="A"), OBSERVED, "B")
    assert step.decision is Decision.UNDO
    assert step.reason.endswith(
        "(its outcome was never recorded, but the target changed: it landed)"
    )


@pytest.mark.parametrize("status", ["compensating", "compensation_failed"])
def test_inverse_that_already_took_effect_is_already_compensated(status: str) -> None:
    the_row = row(status=status, before="A", outcome={"after": "B", "observed": True})
    step = decided(the_row, OBSERVED, "A")
    assert (step.decision, step.current) == (Decision.ALREADY_COMPENSATED, "A")


def test_inverse_that_did_not_take_effect_is_undone_again() -> None:
    the_row = row(
        status="compensating", before="A", outcome={"after": "B", "observed": True}
    )
    assert decided(the_row, OBSERVED, "B").decision is Decision.UNDO


def test_inverse_of_an_effect_that_changed_nothing_is_undone_again() -> None:
    the_row = row(
        status="compensating", before="A", outcome={"after": "A", "observed": True}
    )
    assert decided(the_row, OBSERVED, "A").decision is Decision.UNDO


@pytest.mark.parametrize("status", ["compensating", "compensation_failed"])
def test_inverse_that_acted_in_part_is_run_again_over_what_it_left(
    status: str,
) -> None:
    the_row = row(status=status, before="A", outcome={"after": "B", "observed": True})
    step = decided(the_row, OBSERVED, "H")
    assert (step.decision, step.current) == (Decision.UNDO, "H")
    assert (step.resumes, step.resumed_at) == (True, "H")
    assert step.reason == (
        "reversible; undo with undo_write again: an earlier inverse left the "
        "target part-way (found 'H', neither 'A' as before nor 'B' as after the call)"
    )


def test_applied_effect_whose_target_changed_does_not_resume() -> None:
    step = decided(row(outcome={"after": "B", "observed": True}), OBSERVED, "H")
    assert (step.decision, step.resumes) == (Decision.CONFLICT, False)


def test_resumed_inverse_predicts_the_older_write_on_its_target() -> None:
    rows = [
        row(
            "second",
            seq=2,
            status="compensation_failed",
            before="B",
            outcome={"after": "C", "observed": True},
        ),
        row("first", seq=1, before="A", outcome={"after": "B", "observed": True}),
    ]
    plan = planned(rows, registry(OBSERVED), [Outcome(value="H"), Outcome(value="H")])
    assert [(s.decision, s.resumes) for s in plan.steps] == [
        (Decision.UNDO, True),
        (Decision.UNDO, False),
    ]


def test_writes_to_one_target_chain_newest_first() -> None:
    rows = [
        row("second", seq=2, before="B", outcome={"after": "C", "observed": True}),
        row("first", seq=1, before="A", outcome={"after": "B", "observed": True}),
    ]
    plan = planned(rows, registry(OBSERVED), [Outcome(value="C"), Outcome(value="C")])
    assert [s.decision for s in plan.steps] == [Decision.UNDO, Decision.UNDO]


def test_restored_inverse_predicts_the_older_write_on_its_target() -> None:
    rows = [
        row(
            "second",
            seq=2,
            status="compensating",
            before="B",
            outcome={"after": "C", "observed": True},
        ),
        row("first", seq=1, before="A", outcome={"after": "B", "observed": True}),
    ]
    plan = planned(rows, registry(OBSERVED), [Outcome(value="B"), Outcome(value="B")])
    assert [s.decision for s in plan.steps] == [
        Decision.ALREADY_COMPENSATED,
        Decision.UNDO,
    ]


def test_writes_to_other_targets_do_not_chain() -> None:
    rows = [
        row(
            "other",
            seq=2,
            args={"path": "b"},
            before="B",
            outcome={"after": "C", "observed": True},
        ),
        row(
            "mine",
            seq=1,
            args={"path": "a"},
            before="A",
            outcome={"after": "B", "observed": True},
        ),
    ]
    plan = planned(rows, registry(OBSERVED), [Outcome(value="C"), Outcome(value="C")])
    assert [s.decision for s in plan.steps] == [Decision.UNDO, Decision.CONFLICT]


# --- calls and inverses that may still be running ------------------------------------


def one_row(the_row: LedgerRow, tools: ToolRegistry | None = None, **kw: Any) -> Script:
    """Plan the standard thread with one row, up to its decision."""
    flow = start(tools, **kw)
    flow.reply(ReadHead, "c3")
    flow.reply(ReadAncestry, CHAIN)
    flow.reply(ReadSubtree, SUBTREE)
    flow.reply(Select, [the_row])
    return flow


OWNER = "h#7#2025-01-01"


def test_pending_call_is_asked_whether_it_still_runs_without_waiting() -> None:
    flow = one_row(row(status="pending", owner=OWNER))
    flow.reply(AwaitCall, "gone", effect_id="e1", owner=OWNER, timeout=0)
    [the_step] = flow.returns().steps
    assert (the_step.decision, the_step.skip_kind) == (Decision.SKIP, "unresolved")


def test_pending_call_still_running_refuses_the_plan() -> None:
    flow = one_row(row(status="pending", owner=OWNER), registry(OBSERVED))
    flow.reply(AwaitCall, "running")
    error = flow.raises(EffectInFlightError)
    assert (error.effect_id, error.tool, error.thread_id, error.owner) == (
        "e1",
        "write",
        "t",
        OWNER,
    )
    assert "by process 7 on host h" in str(error)


def test_pending_call_that_finished_here_is_decided_by_its_target() -> None:
    flow = one_row(row(status="pending", before="A"), registry(OBSERVED))
    flow.reply(AwaitCall, "finished")
    flow.reply(Observe, Outcome(value="B"), kwargs={"path": "a"})
    [the_step] = flow.returns().steps
    assert the_step.decision is Decision.UNDO


def test_plan_inside_its_own_run_does_not_ask_about_its_pending_calls() -> None:
    flow = one_row(row(status="pending"), in_run=True)
    [the_step] = flow.returns().steps
    assert (the_step.decision, the_step.skip_kind) == (Decision.SKIP, "unresolved")


def test_inverse_still_running_is_unresolved_without_observing() -> None:
    compensating = row(status="compensating", owner=OWNER, outcome=APPLIED)
    flow = one_row(compensating, registry(OBSERVED))
    flow.reply(AwaitCall, "running", effect_id="undo:e1", owner=OWNER, timeout=0)
    plan = flow.returns()
    [the_step] = plan.unresolved
    assert the_step.decision is Decision.SKIP
    assert the_step.reason.startswith(
        "its inverse, started by an earlier rollback that gave up waiting for "
        "it, is still running"
    )


def test_inverse_still_running_is_asked_about_inside_the_run_too() -> None:
    flow = one_row(row(status="compensating"), in_run=True)
    flow.reply(AwaitCall, "running", effect_id="undo:e1")
    assert flow.returns().steps[0].skip_kind == "unresolved"


# --- containers and the effects recorded inside them ----------------------------------


def test_container_comes_before_the_effects_recorded_inside_it() -> None:
    rows = [
        row("other", seq=5),
        row("inner", seq=4, inside="nested"),
        row("nested", seq=3, inside="box"),
        row("sibling", seq=2, inside="box"),
        row("box", seq=1),
    ]
    plan = planned(rows)
    assert [s.effect.id for s in plan.steps] == [
        "other",
        "box",
        "nested",
        "inner",
        "sibling",
    ]
    assert plan.nested == {
        "box": frozenset({"nested", "sibling"}),
        "nested": frozenset({"inner"}),
    }


def test_effect_inside_a_container_an_earlier_rollback_undid_is_no_conflict() -> None:
    rows = [
        row("inner", seq=2, inside="box", before="A", outcome=APPLIED),
        row("box", seq=1, tool="step", status="compensated"),
    ]
    tools = registry(OBSERVED, tool("step"))
    plan = planned(rows, tools, [Outcome(value="A")])
    assert [s.effect.id for s in plan.steps] == ["box", "inner"]
    assert plan.conflicts == []


def test_effect_whose_container_is_not_on_the_plan_keeps_its_place() -> None:
    rows = [row("new", seq=3), row("inner", seq=2, inside="gone"), row("old", seq=1)]
    plan = planned(rows)
    assert [s.effect.id for s in plan.steps] == ["new", "inner", "old"]
    assert plan.nested == {"gone": frozenset({"inner"})}


# --- the target of an observation --------------------------------------------------


def test_target_is_named_by_the_parameters_observe_takes() -> None:
    key = target_key(OBSERVED, {"path": "a", "content": "x"})
    assert key == (id(observe_path), (("path", "'a'"),))


def test_target_is_every_argument_when_observe_takes_only_kwargs() -> None:
    def observe(**kwargs: Any) -> None:
        return None

    key = target_key(tool(observe=observe), {"b": 2, "a": 1})
    assert key[1] == (("a", "1"), ("b", "2"))


def test_target_is_every_argument_when_observe_has_no_signature() -> None:
    key = target_key(tool(observe=max), {"b": 2, "a": 1})
    assert key == (id(max), (("a", "1"), ("b", "2")))


# --- the plan as data and text -------------------------------------------------------


def test_plan_lists_steps_by_decision() -> None:
    steps = [
        PlannedStep(effect=effect("u"), decision=Decision.UNDO, reason="r"),
        PlannedStep(effect=effect("c"), decision=Decision.CONFLICT, reason="r"),
        PlannedStep(
            effect=effect("s"),
            decision=Decision.SKIP,
            reason="r",
            skip_kind="unresolved",
        ),
        PlannedStep(
            effect=effect("a"), decision=Decision.ALREADY_COMPENSATED, reason="r"
        ),
    ]
    plan = planned([]).model_copy(update={"steps": steps})
    assert [s.effect.id for s in plan.to_undo] == ["u"]
    assert [s.effect.id for s in plan.conflicts] == ["c"]
    assert [s.effect.id for s in plan.skipped] == ["s"]
    assert [s.effect.id for s in plan.unresolved] == ["s"]
    assert [s.effect.id for s in plan.already_compensated] == ["a"]


def test_plan_text_names_each_effect_and_orphan() -> None:
    rows = [row("x", root="c2", seq=7, args={"path": "p"}), row("o", root="f2", seq=5)]
    text = str(planned(rows))
    assert text.splitlines() == [
        "Rollback plan for thread 't': back to checkpoint c1 (3 checkpoint(s) on "
        "the path, 1 effect(s) after it).",
        "  undo                #7 write(path='p'): reversible; undo with undo_write",
        "  orphan              #5 write(path='a'): on an abandoned branch, left as it is",
    ]


def test_plan_text_says_nothing_to_undo_and_names_a_reached_copy() -> None:
    plan = planned([]).model_copy(update={"reached_copy": "k2"})
    lines = str(plan).splitlines()
    assert lines[1:] == [
        "  (the path reaches k2, an earlier rollback's copy of the target)",
        "  nothing to undo",
    ]


def test_first_after_pruning_names_effects_whose_checkpoints_are_gone() -> None:
    head = CheckpointLink("k9", None)
    flow = start(target=THREAD_START)
    flow.reply(ReadHead, "k9")
    flow.reply(ReadAncestry, [head])
    flow.reply(ReadSubtree, [head])
    rows = [
        row("pruned", root="gone1", base_checkpoint_id="gone0", seq=2),
        row("undone", root="gone1", base_checkpoint_id="gone0", status="compensated"),
    ]
    flow.reply(Select, rows, query=EffectQuery(thread_id="t", unanchored=True))
    flow.reply(ExistingCheckpoints, set(), checkpoint_ids=["gone0", "gone1"])
    plan = flow.returns()
    assert (plan.steps, plan.orphans) == ([], [])
    assert [e.id for e in plan.unplaced] == ["pruned"]
    assert "unplaced" in str(plan) and "pruned" in str(plan)
