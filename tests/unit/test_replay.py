"""Replaying a recorded call (`core.replay`): rows recorded under an earlier
key, calls still in flight, results lost to a crash, copied threads, and
outcomes of attempts another one replaced."""

from __future__ import annotations

import logging

import pytest

from langgraph_rollback._errors import (
    EffectInFlightError,
    EffectOutcomeUnknownError,
    EffectResultUnknownError,
    IrreversibleToolBlockedError,
)
from langgraph_rollback.core.identity import args_digest, effect_id_for, legacy_call_key
from langgraph_rollback.core.ops import (
    AwaitCall,
    Begin,
    Outcome,
    Perform,
    ReadUpdatedFrom,
    Select,
    Update,
)
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.replay import node_path
from tests.unit.build import row, tool
from tests.unit.recording import (
    SEND_MAIL,
    begin,
    gone,
    observe_before,
    recorded_pending,
    start,
)
from tests.unit.script import Script

KEY = f"v2:write:{args_digest('write', {'path': 'a'})}#0"
"""The call key of `start(tool())`: `write(path="a")`, the task's first."""


def own_id() -> str:
    """The id of thread "t"'s own effect for this call (a copied thread's call)."""
    return effect_id_for("node:task-1", "task-1", KEY, thread_id="t")


# --- a row recorded under a key of the format before v2 -----------------------------


def legacy_id(tool_call_id: str | None = None) -> str:
    old_key = legacy_call_key("write", {"path": "a"}, tool_call_id, 0)
    return effect_id_for("node:task-1", "task-1", old_key)


def test_a_call_recorded_under_a_legacy_key_replays_its_result() -> None:
    flow = start(tool(), legacy_keys=True)
    query = EffectQuery(thread_id="t", effect_id=legacy_id())
    flow.reply(Select, [row(legacy_id(), outcome={"result": "old"})], query=query)
    assert flow.returns() == "old"


def test_a_model_tool_call_s_legacy_key_is_its_id() -> None:
    flow = start(tool(), tool_call_id="call-7", legacy_keys=True)
    flow.expect(Select, query=EffectQuery(thread_id="t", effect_id=legacy_id("call-7")))


def test_a_failed_call_under_a_legacy_key_runs_again_under_that_key() -> None:
    flow = start(tool(), legacy_keys=True)
    failed = row(legacy_id(), status="failed", call_key="write:old#0")
    flow.reply(Select, [failed])
    flow.reply(Update, True, effect_id=legacy_id(), expect=("failed",))
    assert flow.expect(Perform).effect().id == legacy_id()


def test_without_a_legacy_row_the_intent_takes_the_v2_key() -> None:
    flow = start(tool(), legacy_keys=True)
    flow.reply(Select, [])
    assert begin(flow).call_key == KEY


def test_without_legacy_keys_the_ledger_is_not_searched_for_them() -> None:
    flow = start(tool())
    assert begin(flow).call_key == KEY


# --- a row recorded before the database had a digest key -------------------------

SECRET = b"k" * 32


def unkeyed_id() -> str:
    return effect_id_for("node:task-1", "task-1", KEY)


def test_a_keyed_call_finds_its_row_recorded_before_the_key() -> None:
    flow = start(tool(), digest_key=SECRET, unkeyed_keys=True, legacy_keys=True)
    query = EffectQuery(thread_id="t", effect_id=unkeyed_id())
    flow.reply(Select, [row(unkeyed_id(), outcome={"result": "old"})], query=query)
    assert flow.returns() == "old"


def test_a_keyed_call_looks_up_its_unkeyed_then_its_legacy_key() -> None:
    flow = start(tool(), digest_key=SECRET, unkeyed_keys=True, legacy_keys=True)
    flow.reply(Select, [], query=EffectQuery(thread_id="t", effect_id=unkeyed_id()))
    flow.reply(Select, [], query=EffectQuery(thread_id="t", effect_id=legacy_id()))
    keyed = f"v2:write:{args_digest('write', {'path': 'a'}, key=SECRET)}#0"
    assert begin(flow).call_key == keyed


def test_unkeyed_keys_are_not_searched_without_a_digest_key() -> None:
    flow = start(tool(), unkeyed_keys=True)
    assert begin(flow).call_key == KEY


# --- a resumed task after update_state on the interrupted head ----------------------


def resumed() -> Script:
    """A task of checkpoint "c2" resuming an `interrupt()`."""
    return start(
        tool(),
        key_seen=True,
        resumed=True,
        task_id="task-2",
        task_ns="node:task-2",
        checkpoint_id="c2",
        root_checkpoint_id="c2",
    )


def test_node_path_drops_the_task_ids() -> None:
    assert node_path("outer:1|inner:2") == "outer|inner"
    assert node_path("node") == "node"


def test_a_task_resumed_after_an_edit_replays_the_interrupted_task_s_call() -> None:
    flow = resumed()
    flow.reply(ReadUpdatedFrom, "c1", thread_id="t", checkpoint_id="c2")
    query = EffectQuery(thread_id="t", checkpoint_id="c1", call_key=KEY)
    rows = [
        row("in-subgraph", checkpoint_ns="sub:x", outcome={"result": "sub"}),
        row("other-node", task_ns="other:task-1", outcome={"result": "other"}),
        row("interrupted", task_ns="node:task-1", outcome={"result": "first"}),
    ]
    flow.reply(Select, rows, query=query)
    assert flow.returns() == "first"


def test_a_resumed_task_that_continues_no_edit_records_its_own_call() -> None:
    flow = resumed()
    flow.reply(ReadUpdatedFrom, None)
    assert begin(flow).task_id == "task-2"


def test_a_resumed_task_records_a_call_the_interrupted_task_did_not_make() -> None:
    flow = resumed()
    flow.reply(ReadUpdatedFrom, "c1")
    flow.reply(Select, [row("other-node", task_ns="other:task-1")])
    assert begin(flow).task_id == "task-2"


def test_a_resumed_task_without_an_edit_still_finds_legacy_keys() -> None:
    flow = start(tool(), resumed=True, legacy_keys=True)
    flow.reply(ReadUpdatedFrom, None)
    flow.reply(Select, [], query=EffectQuery(thread_id="t", effect_id=legacy_id()))
    begin(flow)


# --- a pending intent whose earlier attempt may still be running --------------------


def test_replay_waits_for_the_earlier_attempt_of_a_pending_call() -> None:
    flow = start(tool(), in_flight_wait=2.5)
    recorded = begin(flow, {"status": "pending", "owner": "h#2#7"})
    flow.expect(AwaitCall, effect_id=recorded.effect_id, owner="h#2#7", timeout=2.5)


def test_a_call_still_running_in_another_process_is_not_restarted() -> None:
    flow = start(tool(), owner="h#1#7")
    recorded = begin(flow, {"status": "pending", "owner": "h#2#7"})
    flow.reply(AwaitCall, "running")
    error = flow.raises(EffectInFlightError)
    assert (error.effect_id, error.tool, error.thread_id, error.owner) == (
        recorded.effect_id,
        "write",
        "t",
        "h#2#7",
    )
    assert "by process 2 on host h" in str(error)


def test_a_call_still_running_in_this_process_is_not_restarted() -> None:
    flow = start(tool(), owner="h#1#7")
    begin(flow, {"status": "pending", "owner": "h#1#7"})
    flow.reply(AwaitCall, "running")
    error = flow.raises(EffectInFlightError)
    assert error.owner is None
    assert "in this process" in str(error)


def test_an_attempt_that_finished_meanwhile_replays_its_outcome() -> None:
    flow = start(tool())
    recorded = begin(flow, {"status": "pending"})
    flow.reply(AwaitCall, "finished")
    query = EffectQuery(thread_id="t", effect_id=recorded.effect_id)
    done = row(recorded.effect_id, outcome={"result": "landed"})
    flow.reply(Select, [done], query=query)
    assert flow.returns() == "landed"


def test_an_attempt_that_finished_without_an_outcome_is_settled_once_gone() -> None:
    flow = start(tool())
    recorded = begin(flow, {"status": "pending"})
    flow.reply(AwaitCall, "finished")
    again = row(recorded.effect_id, status="pending")
    flow.reply(Select, [again])
    gone(flow, again)
    flow.raises(EffectOutcomeUnknownError)


def test_an_attempt_that_finished_and_whose_row_is_gone_is_settled_as_read() -> None:
    flow = start(tool())
    begin(flow, {"status": "pending"})
    flow.reply(AwaitCall, "finished")
    flow.reply(Select, [])
    flow.raises(EffectOutcomeUnknownError)


# --- a result lost to a crash ----------------------------------------------------------


def test_replay_of_a_call_whose_result_was_lost_raises() -> None:
    flow = start(tool())
    outcome = {"result": None, "after": "B", "observed": True, "result_known": False}
    recorded = begin(flow, {"status": "applied", "outcome": outcome})
    error = flow.raises(EffectResultUnknownError)
    assert error.effect_id == recorded.effect_id
    assert "resolve_effect" in str(error)


# --- a copied thread (copy_thread), run on the copy --------------------------------------


def test_a_copy_replays_what_its_source_applied() -> None:
    flow = start(tool())
    begin(
        flow,
        {"thread_id": "src", "status": "applied", "outcome": {"result": "from source"}},
    )
    assert flow.returns() == "from source"


def test_a_copy_s_retry_of_a_failed_source_call_is_its_own_effect() -> None:
    flow = start(tool())
    begin(flow, {"thread_id": "src", "status": "failed", "attempt": 2})
    own = flow.expect(Begin).row
    assert (own.effect_id, own.thread_id, own.status, own.attempt) == (
        own_id(),
        "t",
        "pending",
        1,
    )
    assert own.idempotency_key == f"lgrb-{own_id()}"
    flow.send((own, True))
    assert flow.expect(Perform).effect().id == own_id()
    flow.send(Outcome(value="copy's"))
    flow.reply(Update, True, effect_id=own_id(), expect=("pending",))
    assert flow.returns() == "copy's"


def test_a_copy_s_own_call_already_recorded_replays_on_the_copy() -> None:
    flow = start(tool())
    begin(flow, {"thread_id": "src", "status": "failed"})
    own = flow.expect(Begin).row
    flow.send((row(own.effect_id, outcome={"result": "copy's"}), False))
    assert flow.returns() == "copy's"


def test_a_copy_s_own_call_under_block_is_recorded_blocked_on_the_copy() -> None:
    flow = start(SEND_MAIL, guard="block")
    begin(flow, {"thread_id": "src", "status": "failed"})
    own = flow.expect(Begin).row
    assert own.status == "blocked"
    flow.send((own, True))
    error = flow.raises(IrreversibleToolBlockedError)
    assert (error.effect_id, error.thread_id) == (own.effect_id, "t")


def test_a_copy_s_retry_of_a_source_call_that_never_landed_is_its_own() -> None:
    flow = start()
    observe_before(flow, "A")
    gone(flow, recorded_pending(flow, "A", thread_id="src"))
    # observe() shows the target unchanged: the source's call never landed.
    assert flow.expect(Begin).row.effect_id == own_id()


# --- an outcome that arrives after another attempt replaced this one -----------------


def test_a_superseded_outcome_is_logged_and_returned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = start(tool())
    intent = begin(flow)
    flow.reply(Perform, Outcome(value="late"))
    with caplog.at_level(logging.ERROR, logger="langgraph_rollback.core.call"):
        flow.reply(Update, False, expect=("pending",), expect_attempt=1)
    assert flow.returns() == "late"
    (record,) = caplog.records
    message = record.getMessage()
    assert intent.effect_id in message
    assert "attempt 1 of the call finished (result 'late')" in message
    assert "undo one by hand" in message
