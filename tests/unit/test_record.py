"""Recording a tool call (`record_flow`), driven operation by operation."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from langgraph.errors import GraphInterrupt

from langgraph_rollback._errors import (
    EffectOutcomeUnknownError,
    EffectResultUnknownError,
    IrreversibleToolBlockedError,
    ObservationError,
    ReplayMismatchError,
    SerializationError,
)
from langgraph_rollback.core.identity import args_digest
from langgraph_rollback.core.ledger import LedgerRow, changed_row
from langgraph_rollback.core.ops import (
    Ask,
    AwaitCall,
    BeginIfNewKey,
    Observe,
    Outcome,
    Perform,
    Select,
    Update,
)
from langgraph_rollback.core.record import applied_changes, record_flow
from tests.unit.build import SERDE, audited, context, decoded, encoded, tool
from tests.unit.recording import (
    SEND_MAIL,
    begin,
    gone,
    observe_before,
    observe_path,
    outcome_of,
    recorded_pending,
    start,
)
from tests.unit.script import Script

# --- before the intent ---------------------------------------------------------------


def test_unstorable_arguments_fail_before_any_operation() -> None:
    flow = start(args={"lock": threading.Lock()})
    assert flow.raises(SerializationError).field == "argument 'lock'"


def test_intent_row_names_the_task_the_call_and_the_run_start() -> None:
    flow = start(
        tool(), tool_call_id="call-7", run_checkpoint_id="c0", run_id="r", owner="h#1#9"
    )
    intent = flow.expect(BeginIfNewKey).row
    assert (intent.thread_id, intent.task_ns, intent.task_id) == (
        "t",
        "node:task-1",
        "task-1",
    )
    digest = args_digest("write", {"path": "a"})
    assert (intent.call_key, intent.ordinal) == (f"v2:call:call-7:write:{digest}#0", 0)
    assert intent.status == "pending"
    assert intent.attempt == 1
    assert intent.idempotency_key == f"lgrb-{intent.effect_id}"
    assert intent.base_checkpoint_id == "c0"
    assert intent.run_id == "r"
    assert intent.owner == "h#1#9"
    assert decoded(intent.intent_type, intent.intent) == {"args": {"path": "a"}}


def test_the_outcome_clears_the_owner() -> None:
    flow = start(tool(), owner="h#1#9")
    begin(flow)
    flow.reply(Perform, Outcome(value="done"))
    outcome = flow.expect(Update)
    assert outcome.changes["status"] == "applied"
    assert outcome.changes["owner"] is None  # nobody performs it any more


def test_direct_calls_with_the_same_arguments_get_successive_ordinals() -> None:
    ctx = context()
    first = Script(record_flow(ctx, tool(), {"p": 1}, tool_call_id=None, serde=SERDE))
    second = Script(record_flow(ctx, tool(), {"p": 1}, tool_call_id=None, serde=SERDE))
    one, two = first.expect(BeginIfNewKey).row, second.expect(BeginIfNewKey).row
    assert (one.ordinal, two.ordinal) == (0, 1)
    assert one.effect_id != two.effect_id


def test_guard_allow_runs_an_irreversible_tool_without_asking() -> None:
    flow = start(SEND_MAIL, guard="allow")
    begin(flow)
    flow.reply(Perform, Outcome(value="sent"))
    flow.reply(Update, True)
    assert flow.returns() == "sent"


def test_guard_applies_only_to_irreversible_and_undeclared_tools() -> None:
    flow = start(tool(), guard="block")
    assert flow.expect(BeginIfNewKey).row.status == "pending"


def test_guard_ask_yes_records_and_runs_the_call() -> None:
    flow = start(SEND_MAIL, guard="ask")
    ask = flow.expect(Ask)
    assert ask.payload["type"] == "rollback_guard"
    assert ask.payload["tool"] == "send_mail"
    assert ask.payload["kind"] == "irreversible"
    assert ask.payload["args"] == {"path": "a"}
    assert ask.payload["reason"] == "mail is sent"
    assert "Allow the irreversible tool 'send_mail'" in ask.payload["question"]
    flow.send({"approve": True, "by": "ann", "reason": "expected"})
    entry = audited(flow)
    assert (entry.action, entry.by, entry.reason) == ("allow", "ann", "expected")
    assert "guard's 'ask'" in entry.overrode
    assert begin(flow).status == "pending"
    flow.reply(Perform, Outcome(value="sent"))
    flow.reply(Update, True)
    assert flow.returns() == "sent"


def test_guard_ask_no_records_the_call_as_blocked_and_refuses() -> None:
    flow = start(SEND_MAIL, guard="ask")
    flow.reply(Ask, "no")
    entry = audited(flow)
    assert (entry.action, entry.by, entry.reason) == ("refuse", "unknown", None)
    assert begin(flow).status == "blocked"
    error = flow.raises(IrreversibleToolBlockedError)
    assert error.tool == "send_mail"
    assert "a human refused it" in str(error)


def test_guard_block_records_blocked_without_observing_and_refuses() -> None:
    flow = start(replace(SEND_MAIL, observe=observe_path), guard="block")
    assert begin(flow).status == "blocked"
    assert "the guard policy is 'block'" in str(
        flow.raises(IrreversibleToolBlockedError)
    )


# --- observe before ----------------------------------------------------------------


def test_observe_before_goes_into_the_intent_and_the_live_effect() -> None:
    flow = start()
    observe = flow.expect(Observe)
    assert observe.effect is not None and observe.effect.before is None
    flow.send(Outcome(value=("A", 1)))
    intent = begin(flow)
    assert decoded(intent.intent_type, intent.intent)["before"] == ("A", 1)
    perform = flow.expect(Perform)
    assert perform.effect().before == ("A", 1)
    assert perform.effect().args == {"path": "a"}


def test_call_inside_a_container_names_it_in_the_intent_and_the_effect() -> None:
    flow = start(inside="box-effect")
    observe = flow.expect(Observe)
    assert observe.effect is not None and observe.effect.inside == "box-effect"
    flow.send(Outcome(value="A"))
    intent = begin(flow)
    assert decoded(intent.intent_type, intent.intent) == {
        "args": {"path": "a"},
        "before": "A",
        "inside": "box-effect",
    }
    assert flow.expect(Perform).effect().inside == "box-effect"


def test_call_outside_any_container_names_none() -> None:
    flow = start(tool())
    intent = begin(flow)
    assert "inside" not in decoded(intent.intent_type, intent.intent)
    assert flow.expect(Perform).effect().inside is None


def test_observe_before_raising_stops_before_the_intent() -> None:
    flow = start()
    flow.reply(Observe, Outcome(error=OSError("disk")))
    error = flow.raises(ObservationError)
    assert error.phase == "before"
    assert isinstance(error.__cause__, OSError)


def test_observe_before_returning_unstorable_stops_before_the_intent() -> None:
    flow = start()
    flow.reply(Observe, Outcome(value=threading.Lock()))
    assert flow.raises(SerializationError).field == "before"


# --- the forward call ------------------------------------------------------------------


def test_success_records_result_and_after_and_returns_the_result() -> None:
    flow = start()
    observe_before(flow)
    intent = begin(flow)
    flow.reply(Perform, Outcome(value={"ok": True}))
    after = flow.reply(Observe, Outcome(value="B"), kwargs={"path": "a"})
    assert after.effect is not None and after.effect.id == intent.effect_id
    update = flow.expect(Update, effect_id=intent.effect_id, expect=("pending",))
    assert update.expect_attempt == 1
    assert update.changes["status"] == "applied"
    assert update.changes["completed_at"] is not None
    assert outcome_of(update) == {
        "result": {"ok": True},
        "after": "B",
        "observed": True,
    }
    flow.send(True)
    assert flow.returns() == {"ok": True}


def test_success_without_observe_records_no_after() -> None:
    flow = start(tool())
    begin(flow)
    flow.reply(Perform, Outcome(value=1))
    update = flow.expect(Update)
    assert outcome_of(update) == {"result": 1, "after": None, "observed": False}
    flow.send(True)
    assert flow.returns() == 1


def test_observe_after_raising_is_noted_and_the_result_kept() -> None:
    flow = start()
    observe_before(flow)
    begin(flow)
    flow.reply(Perform, Outcome(value=1))
    flow.reply(Observe, Outcome(error=OSError("gone")))
    outcome = outcome_of(flow.expect(Update))
    assert outcome["observed"] is False
    assert outcome["after"] is None
    assert outcome["notes"] == ["observe() raised OSError: gone after the call"]
    flow.send(True)
    assert flow.returns() == 1


def test_exception_is_recorded_as_failed_and_raised() -> None:
    flow = start(tool())
    intent = begin(flow)
    flow.reply(Perform, Outcome(error=ValueError("bad path")))
    update = flow.expect(Update, effect_id=intent.effect_id, expect=("pending",))
    assert update.changes["status"] == "failed"
    assert outcome_of(update) == {"error": "ValueError: bad path"}
    flow.send(True)
    assert str(flow.raises(ValueError)) == "bad path"


def test_graph_interrupt_is_recorded_as_interrupted_and_passes_through() -> None:
    flow = start(tool())
    begin(flow)
    interrupt = GraphInterrupt()
    flow.reply(Perform, Outcome(error=interrupt))
    update = flow.expect(Update, expect=("pending",))
    assert update.changes["status"] == "interrupted"
    assert "outcome" not in update.changes
    flow.send(True)
    assert flow.raises(GraphInterrupt) is interrupt


class Cancelled(BaseException):
    """Stands for a cancellation or a KeyboardInterrupt during the call."""


def test_base_exception_leaves_the_intent_pending_without_owner() -> None:
    flow = start(tool())
    intent = begin(flow)
    flow.reply(Perform, Outcome(error=Cancelled()))
    flow.reply(
        Update,
        True,
        effect_id=intent.effect_id,
        changes={"owner": None},
        expect=("pending",),
        expect_attempt=1,
    )
    flow.raises(Cancelled)


def test_owner_left_when_clearing_it_fails_is_logged_and_passes_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = start(tool())
    intent = begin(flow)
    flow.reply(Perform, Outcome(error=Cancelled()))
    flow.expect(Update, changes={"owner": None})
    flow.throw(OSError("disk full"))
    flow.raises(Cancelled)
    assert f"effect {intent.effect_id}: could not clear the owner" in caplog.text


def test_unrecordable_result_is_recorded_as_applied_then_raised() -> None:
    flow = start()
    observe_before(flow)
    begin(flow)
    flow.reply(Perform, Outcome(value=threading.Lock()))
    flow.reply(Observe, Outcome(value="B"))
    update = flow.expect(Update)
    assert update.changes["status"] == "applied"
    outcome = outcome_of(update)
    assert outcome["result"] is None
    assert "result is a lock" in outcome["unrecordable"]
    assert (outcome["after"], outcome["observed"]) == ("B", True)
    flow.send(True)
    assert flow.raises(SerializationError).field == "result"


def test_unstorable_after_observation_is_not_recorded_as_observed() -> None:
    flow = start()
    observe_before(flow)
    begin(flow)
    flow.reply(Perform, Outcome(value="done"))
    flow.reply(Observe, Outcome(value=threading.Lock()))
    outcome = outcome_of(flow.expect(Update))
    assert outcome == {
        "result": "done",
        "after": None,
        "observed": False,
        "notes": ["observe() returned a value the ledger cannot store"],
    }
    flow.send(True)
    assert flow.returns() == "done"


def test_applied_changes_carry_notes_only_when_there_are_some() -> None:
    changes = applied_changes(SERDE, "write", result=1, after="B")
    assert changes["status"] == "applied"
    assert decoded(changes["outcome_type"], changes["outcome"]) == {
        "result": 1,
        "after": "B",
        "observed": True,
    }


@pytest.mark.parametrize(
    ("tool_call_id", "durability", "with_next_write"),
    [
        (None, None, False),
        (None, "sync", False),
        ("call-1", None, True),
        ("call-1", "async", True),
        ("call-1", "exit", False),
    ],
)
def test_only_a_model_tool_call_outcome_waits_for_the_next_write(
    tool_call_id: str | None, durability: str | None, with_next_write: bool
) -> None:
    flow = start(tool(), tool_call_id=tool_call_id, durability=durability)
    begin(flow)
    flow.reply(Perform, Outcome(value=1))
    assert flow.expect(Update).with_next_write is with_next_write


def test_errors_are_committed_at_once_even_for_a_model_tool_call() -> None:
    flow = start(tool(), tool_call_id="call-1")
    begin(flow)
    flow.reply(Perform, Outcome(error=ValueError("x")))
    assert flow.expect(Update).with_next_write is False


# --- replay: a recorded effect with this identity exists ------------------------------


@pytest.mark.parametrize("status", ["applied", "compensating", "compensation_failed"])
def test_replay_of_a_completed_call_returns_the_recorded_result(status: str) -> None:
    flow = start(tool())
    begin(flow, {"status": status, "outcome": {"result": [1, 2]}})
    assert flow.returns() == [1, 2]


def test_replay_of_an_unrecordable_result_raises() -> None:
    flow = start(tool())
    begin(flow, {"status": "applied", "outcome": {"result": None, "unrecordable": "x"}})
    error = flow.raises(SerializationError)
    assert "could not be recorded: x" in str(error)


def test_replay_with_another_tool_is_a_mismatch() -> None:
    flow = start(tool())
    begin(flow, {"tool": "delete"})
    error = flow.raises(ReplayMismatchError)
    assert (error.recorded_tool, error.called_tool) == ("delete", "write")


@pytest.mark.parametrize("status", ["failed", "interrupted", "blocked"])
def test_replay_of_a_call_that_did_not_act_runs_it_again(status: str) -> None:
    flow = start(tool())
    recorded = begin(flow, {"status": status, "attempt": 2, "outcome": {"error": "x"}})
    if status == "failed":
        flow.reply(Select, [])  # the task made no identical call after it
    restart = flow.expect(Update, expect=(status,), expect_attempt=2)
    assert restart.changes["status"] == "pending"
    assert restart.changes["attempt"] == 3
    assert restart.changes["outcome"] is None
    assert restart.changes["intent"] == recorded.intent
    assert "undo" not in restart.changes
    flow.send(True)
    perform = flow.expect(Perform)
    assert perform.effect().attempt == 3
    flow.send(Outcome(value="again"))
    flow.reply(Update, True, expect=("pending",), expect_attempt=3)
    assert flow.returns() == "again"


def test_replay_of_a_compensated_call_clears_its_undo_and_runs_again() -> None:
    flow = start(tool())
    begin(flow, {"status": "compensated", "undo_attempts": 1, "undo": b"x"})
    restart = flow.expect(Update, expect=("compensated",))
    assert restart.changes["undo"] is None
    assert restart.changes["undo_type"] is None
    assert restart.changes["compensated_at"] is None
    flow.send(True)
    assert flow.expect(Perform).effect().status.value == "pending"


def lost_restart(existing: dict[str, Any]) -> tuple[Script, LedgerRow]:
    """A replay whose restart of a failed call another flow won; its row."""
    flow = start(tool())
    failed = begin(flow, existing)
    flow.reply(Select, [])
    flow.reply(Update, False, starts_call=True, expect_attempt=failed.attempt)
    return flow, failed


def test_restart_lost_to_a_flow_that_completed_it_replays_that_outcome() -> None:
    """Two resumes restart one call; the loser replays the winner's result."""
    flow, failed = lost_restart({"status": "failed"})
    outcome_type, outcome = encoded({"result": "won"})
    done = changed_row(
        failed, status="applied", attempt=2, outcome_type=outcome_type, outcome=outcome
    )
    flow.reply(Select, [done])
    assert flow.returns() == "won"


def test_restart_lost_waits_for_the_winning_attempt_then_replays_it() -> None:
    flow, failed = lost_restart({"status": "failed"})
    running = changed_row(failed, status="pending", attempt=2)
    flow.reply(Select, [running])
    flow.reply(AwaitCall, "finished", effect_id=failed.effect_id)
    outcome_type, outcome = encoded({"result": "won"})
    flow.reply(
        Select,
        [
            changed_row(
                running, status="applied", outcome_type=outcome_type, outcome=outcome
            )
        ],
    )
    assert flow.returns() == "won"


def test_restart_lost_to_an_attempt_nobody_performs_is_an_unknown_outcome() -> None:
    flow, failed = lost_restart({"status": "failed"})
    abandoned = changed_row(failed, status="pending", attempt=2)
    flow.reply(Select, [abandoned])
    gone(flow, abandoned)
    flow.raises(EffectOutcomeUnknownError)


def test_restart_lost_to_an_abandoned_attempt_is_reconciled_with_observe() -> None:
    """The winner's restart committed and its flow died before the call (its
    write raised after the commit): with `observe`, the loser reconciles the
    new attempt as any abandoned intent and runs it, instead of calling the
    outcome unknown."""
    flow = start()
    observe_before(flow, "A")
    pending = recorded_pending(flow, "A")
    gone(flow, pending)
    flow.reply(Update, False, starts_call=True, expect_attempt=pending.attempt)
    abandoned = changed_row(pending, attempt=pending.attempt + 1)
    flow.reply(Select, [abandoned])
    gone(flow, abandoned)
    flow.reply(Update, True, starts_call=True, expect_attempt=abandoned.attempt)
    assert flow.expect(Perform).effect().attempt == abandoned.attempt + 1


def test_restart_lost_but_the_row_unchanged_is_an_unknown_outcome() -> None:
    """A store that refuses the restart yet reads the row as before: the
    restart is not tried again (forever), the outcome is unknown."""
    flow, failed = lost_restart({"status": "failed"})
    flow.reply(Select, [failed])
    flow.raises(EffectOutcomeUnknownError)


def test_restart_lost_and_the_row_gone_is_an_unknown_outcome() -> None:
    flow, _ = lost_restart({"status": "failed"})
    flow.reply(Select, [])
    flow.raises(EffectOutcomeUnknownError)


def test_pending_call_completed_by_another_flow_since_it_was_read_is_replayed() -> None:
    """The intent read as pending; another flow of this process performed and
    recorded it, and ended, before this one asked whether it runs ("gone"):
    the row read again is replayed, not taken for an abandoned call."""
    flow = start()
    observe_before(flow, "A")
    pending = recorded_pending(flow, "A")
    flow.reply(AwaitCall, "gone")
    outcome_type, outcome = encoded({"result": "done", "after": "B"})
    done = changed_row(
        pending, status="applied", outcome_type=outcome_type, outcome=outcome
    )
    flow.reply(Select, [done])
    assert flow.returns() == "done"


def test_replay_under_block_marks_a_failed_call_blocked_and_refuses() -> None:
    flow = start(SEND_MAIL, guard="block")
    begin(flow, {"status": "failed", "attempt": 2})
    flow.reply(Select, [])
    update = flow.reply(Update, True, expect=("failed",), expect_attempt=2)
    assert update.changes["status"] == "blocked"
    flow.raises(IrreversibleToolBlockedError)


def test_replay_under_block_of_a_blocked_call_only_refuses() -> None:
    flow = start(SEND_MAIL, guard="block")
    begin(flow, {"status": "blocked"})
    flow.raises(IrreversibleToolBlockedError)


def test_blocked_call_approved_on_resume_runs() -> None:
    flow = start(SEND_MAIL, guard="ask")
    flow.reply(Ask, "yes")
    audited(flow)
    begin(flow, {"status": "blocked"})
    flow.reply(Update, True, expect=("blocked",))
    flow.reply(Perform, Outcome(value="sent"))
    flow.reply(Update, True)
    assert flow.returns() == "sent"


# --- replay of a pending intent: did the call land? -----------------------------------


def test_pending_without_observe_is_an_unknown_outcome() -> None:
    flow = start(tool())
    gone(flow, begin(flow, {"status": "pending"}))
    error = flow.raises(EffectOutcomeUnknownError)
    assert error.idempotency_key.startswith("lgrb-")


def test_pending_under_block_is_an_unknown_outcome_even_with_observe() -> None:
    flow = start(replace(SEND_MAIL, observe=observe_path), guard="block")
    gone(flow, begin(flow, {"status": "pending"}))
    flow.raises(EffectOutcomeUnknownError)


def test_pending_whose_target_changed_landed_with_its_result_unknown() -> None:
    flow = start()
    observe_before(flow, "B")
    recorded = recorded_pending(flow, "A")
    gone(flow, recorded)
    update = flow.expect(
        Update, effect_id=recorded.effect_id, expect=("pending",), expect_attempt=1
    )
    assert update.changes["status"] == "applied"
    outcome = outcome_of(update)
    assert (outcome["result"], outcome["after"], outcome["observed"]) == (
        None,
        "B",
        True,
    )
    assert outcome["result_known"] is False
    assert "so the call landed" in outcome["notes"][0]
    flow.send(True)
    error = flow.raises(EffectResultUnknownError)
    assert (error.effect_id, error.tool, error.thread_id) == (
        recorded.effect_id,
        "write",
        "t",
    )


def test_pending_landed_but_update_lost_is_an_unknown_outcome() -> None:
    flow = start()
    observe_before(flow, "B")
    pending = recorded_pending(flow, "A")
    gone(flow, pending)
    flow.reply(Update, False)
    flow.reply(Select, [pending])
    flow.raises(EffectOutcomeUnknownError)


def test_pending_changed_by_another_flows_restart_replays_that_attempt() -> None:
    """The target changed, but not by the recorded attempt: another flow
    restarted the call since and performed it. Its outcome is replayed."""
    flow = start()
    observe_before(flow, "B")
    pending = recorded_pending(flow, "A")
    gone(flow, pending)
    flow.reply(Update, False, expect=("pending",), expect_attempt=1)
    outcome_type, outcome = encoded({"result": "won", "after": "B"})
    done = changed_row(
        pending, status="applied", attempt=2, outcome_type=outcome_type, outcome=outcome
    )
    flow.reply(Select, [done])
    assert flow.returns() == "won"


def test_pending_whose_target_is_unchanged_never_landed_and_runs_again() -> None:
    flow = start()
    observe_before(flow, "A")
    gone(flow, recorded_pending(flow, "A"))
    restart = flow.expect(Update, expect=("pending",), expect_attempt=1)
    assert restart.changes["attempt"] == 2
    flow.send(True)
    flow.reply(Perform, Outcome(value="done"))
    flow.reply(Observe, Outcome(value="B"))
    flow.reply(Update, True, expect=("pending",), expect_attempt=2)
    assert flow.returns() == "done"


def test_an_attempt_of_this_process_that_ended_without_an_outcome_is_observed_again() -> (
    None
):
    """Another flow of this process performed the call and ended without its
    outcome (its write failed): this flow's `before` was taken before that
    call ran, so it observes again; the target changed, so the call landed."""
    flow = start(owner="me")
    observe_before(flow, "A")
    pending = recorded_pending(flow, "A", owner="me")
    flow.reply(AwaitCall, "finished")
    flow.reply(Select, [pending])
    observe_before(flow, "B")
    update = flow.expect(Update, expect=("pending",), expect_attempt=1)
    assert outcome_of(update)["after"] == "B"
    flow.send(True)
    flow.raises(EffectResultUnknownError)


def test_an_attempt_of_this_process_that_never_acted_runs_once_observed_again() -> None:
    """The same, the target unchanged on the second look: the call runs
    again, its intent holding the new observation."""
    flow = start(owner="me")
    observe_before(flow, "A")
    gone(flow, recorded_pending(flow, "A", owner="me"))
    observe_before(flow, "A")
    restart = flow.reply(Update, True, starts_call=True)
    assert (
        decoded(restart.changes["intent_type"], restart.changes["intent"])["before"]
        == "A"
    )
    flow.expect(Perform)


def test_an_attempt_of_another_process_is_settled_by_the_first_look() -> None:
    flow = start(owner="me")
    observe_before(flow, "A")
    gone(flow, recorded_pending(flow, "A", owner="gone-process"))
    flow.reply(Update, True, starts_call=True)
    flow.expect(Perform)
