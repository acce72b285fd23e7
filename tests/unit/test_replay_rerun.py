"""Replaying calls whose task is new though the call is not (`core.replay`):
a run whose checkpoints were never stored, a subgraph that does not
checkpoint, a node's own retry loop, a key that digested defaulted
arguments, `Send` siblings after an edit, and owners on another host."""

from __future__ import annotations

from typing import Any

import pytest

from langgraph_rollback._errors import EffectInFlightError, EffectResultUnknownError
from langgraph_rollback.core.identity import args_digest, effect_id_for
from langgraph_rollback.core.ledger import changed_row
from langgraph_rollback.core.ops import (
    AwaitCall,
    Begin,
    BeginIfNewKey,
    CheckpointLink,
    ExistingCheckpoints,
    Perform,
    ReadAncestry,
    ReadHead,
    ReadSubtree,
    ReadUpdatedFrom,
    Select,
    Update,
)
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.record import record_flow
from tests.unit.build import SERDE, context, encoded, row, tool
from tests.unit.recording import begin, observe_before, recorded_pending, start
from tests.unit.script import Script

KEY = f"v2:write:{args_digest('write', {'path': 'a'})}#0"
PATH = "__pregel_pull/node"
TASK = {"step": 3, "path": PATH}


def resumed_run(**fields: Any) -> Script:
    """Task "task-2" at step 3, from checkpoint "c9", which is not stored."""
    values: dict[str, Any] = {
        "task_id": "task-2",
        "task_ns": "node:task-2",
        "checkpoint_id": "c9",
        "root_checkpoint_id": "c9",
        "step": 3,
        "task_path": PATH,
    }
    return start(tool(), key_seen=True, **(values | fields))


def lost(effect_id: str = "lost", **fields: Any) -> Any:
    """The same call, recorded by a run that died from checkpoint "c1"."""
    values: dict[str, Any] = {
        "call_key": KEY,
        "task": TASK,
        "root": "c5",
        "base_checkpoint_id": "c1",
        "outcome": {"result": "posted"},
    }
    return row(effect_id, **(values | fields))


def candidates(flow: Script, *rows: Any) -> None:
    query = EffectQuery(
        thread_id="t", checkpoint_ns="", call_key=KEY, rerun_candidates=True
    )
    flow.reply(Select, list(rows), query=query)


def line(flow: Script, *later: CheckpointLink, head: str | None = "c1") -> None:
    """No candidate's root is stored; the head is `head`, its ancestry reaches "c1"."""
    flow.reply(ExistingCheckpoints, set())
    flow.reply(ReadHead, head, thread_id="t")
    flow.reply(ReadAncestry, [CheckpointLink("c1", None)], start=head, stop="c1")
    flow.reply(ReadSubtree, [CheckpointLink("c1", None, step=1), *later], root="c1")


def test_a_call_of_a_run_whose_checkpoints_were_never_stored_replays() -> None:
    flow = resumed_run()
    candidates(flow, lost())
    line(flow)
    assert flow.returns() == "posted"


def test_this_run_s_own_stored_checkpoint_does_not_hide_the_lost_call() -> None:
    flow = resumed_run()
    candidates(flow, lost())
    line(flow, CheckpointLink("c9", "c1", step=2))
    assert flow.returns() == "posted"


def test_a_stored_checkpoint_past_the_step_means_the_run_went_on() -> None:
    flow = resumed_run()
    candidates(flow, lost())
    line(flow, CheckpointLink("c7", "c1", step=2))
    assert begin(flow).task_id == "task-2"


def test_a_lost_call_off_this_run_s_line_is_not_this_call() -> None:
    flow = resumed_run(run_checkpoint_id="c0")
    candidates(flow, lost())
    flow.reply(ExistingCheckpoints, set())
    flow.reply(ReadAncestry, [CheckpointLink("c0", None)], start="c0", stop="c1")
    assert begin(flow).task_id == "task-2"


def test_an_empty_ancestry_is_off_the_line() -> None:
    flow = resumed_run(run_checkpoint_id="c0")
    candidates(flow, lost())
    flow.reply(ExistingCheckpoints, set())
    flow.reply(ReadAncestry, [])
    assert begin(flow).task_id == "task-2"


def test_without_a_stored_head_nothing_is_matched() -> None:
    flow = resumed_run()
    candidates(flow, lost())
    flow.reply(ExistingCheckpoints, set())
    flow.reply(ReadHead, None)
    assert begin(flow).task_id == "task-2"


def test_a_call_whose_checkpoint_was_stored_or_that_has_no_base_is_not_lost() -> None:
    flow = resumed_run()
    candidates(flow, lost("stored"), lost("unbased", base_checkpoint_id=None))
    flow.reply(ExistingCheckpoints, {"c5"}, checkpoint_ids=["c5", "c5"])
    flow.reply(ReadHead, "c1")
    assert begin(flow).task_id == "task-2"


@pytest.mark.parametrize(
    "fields",
    [
        {"task": {"step": 2, "path": PATH}},
        {"task": {"step": 3, "path": "__pregel_push/1"}},
        {"task_ns": "other:task-1"},
        {"task_id": "task-2"},
        {"checkpoint_ns": "sub:x", "task_ns": "sub:x|node:task-1"},
        {"task": None},
    ],
    ids=["step", "path", "node", "same-task", "namespace", "old-row"],
)
def test_only_the_same_call_at_the_same_place_is_a_candidate(
    fields: dict[str, Any],
) -> None:
    flow = resumed_run()
    candidates(flow, lost(**fields))
    assert begin(flow).task_id == "task-2"


def test_a_task_of_unknown_step_looks_for_no_lost_run() -> None:
    flow = start(tool())
    assert begin(flow).call_key == KEY


def test_a_key_the_thread_has_not_seen_is_written_in_one_operation() -> None:
    flow = start(tool(), step=3, task_path=PATH)
    intent = flow.expect(BeginIfNewKey).row
    assert intent.call_key == KEY
    flow.send((intent, True))
    flow.expect(Perform)


def test_a_key_another_effect_has_is_looked_up_before_the_intent() -> None:
    flow = start(tool(), step=3, task_path=PATH)
    flow.reply(BeginIfNewKey, None)
    candidates(flow)
    flow.reply(Begin, (flow.expect(Begin).row, True))
    flow.expect(Perform)


# --- a subgraph that does not checkpoint -------------------------------------------


def subgraph_task() -> Script:
    return start(
        tool(),
        key_seen=True,
        checkpoint_ns="outer:p1",
        task_ns="outer:p1|inner:t2",
        task_id="t2",
        checkpoint_id="s2",
        step=1,
        task_path="__pregel_pull/inner",
    )


def earlier_run(**fields: Any) -> Any:
    values: dict[str, Any] = {
        "checkpoint_ns": "outer:p1",
        "task_ns": "outer:p1|inner:t1",
        "task_id": "t1",
        "call_key": KEY,
        "task": {"step": 1, "path": "__pregel_pull/inner"},
        "outcome": {"result": "sub"},
    }
    return row("earlier", **(values | fields))


def test_a_subgraph_s_earlier_run_in_the_same_parent_task_replays() -> None:
    flow = subgraph_task()
    query = EffectQuery(
        thread_id="t", checkpoint_id="c1", call_key=KEY, rerun_candidates=True
    )
    flow.reply(
        Select, [earlier_run(checkpoint_ns="outer:p1|1"), earlier_run()], query=query
    )
    assert flow.returns() == "sub"


def test_a_subgraph_call_without_an_earlier_run_is_recorded() -> None:
    flow = subgraph_task()
    flow.reply(Select, [])
    assert begin(flow).task_id == "t2"


# --- a node's own retry loop --------------------------------------------------------


def test_a_failed_call_the_node_retried_replays_the_retry() -> None:
    definition = tool()
    ctx = context()
    flow = Script(
        record_flow(ctx, definition, {"path": "a"}, tool_call_id=None, serde=SERDE)
    )
    begin(flow, {"status": "failed", "call_key": KEY})
    retry_id = effect_id_for("node:task-1", "task-1", KEY[:-1] + "1")
    retried = row("retry", call_key=KEY[:-1] + "1", outcome={"result": "charged"})
    flow.reply(Select, [retried], query=EffectQuery(thread_id="t", effect_id=retry_id))
    assert flow.returns() == "charged"
    assert ctx.next_ordinal(KEY[:-2]) == 2


@pytest.mark.parametrize("key", ["write:old#0", "v2:write:x#n"])
def test_a_failed_call_under_another_key_form_runs_again(key: str) -> None:
    flow = start(tool())
    begin(flow, {"status": "failed", "call_key": key})
    flow.reply(Update, True, expect=("failed",))
    flow.expect(Perform)


# --- a key that digested defaulted arguments ---------------------------------------


def defaulted_call() -> Script:
    args = {"path": "a", "urgent": False}
    flow = record_flow(
        context(),
        tool(),
        args,
        tool_call_id=None,
        serde=SERDE,
        defaulted=frozenset({"urgent"}),
    )
    return Script(flow)


def old_id() -> str:
    digest = args_digest("write", {"path": "a", "urgent": False})
    return effect_id_for("node:task-1", "task-1", f"v2:write:{digest}#0")


def test_a_call_recorded_with_its_defaults_in_the_key_replays() -> None:
    flow = defaulted_call()
    query = EffectQuery(thread_id="t", effect_id=old_id())
    flow.reply(Select, [row("old", outcome={"result": "old"})], query=query)
    assert flow.returns() == "old"


def test_a_parameter_left_at_its_default_is_recorded_but_not_in_the_key() -> None:
    flow = defaulted_call()
    flow.reply(Select, [])
    intent = flow.expect(Begin).row
    assert intent.call_key == KEY


# --- Send siblings after an edit ----------------------------------------------------


def test_after_an_edit_a_sibling_s_call_is_not_this_task_s() -> None:
    flow = start(
        tool(),
        key_seen=True,
        resumed=True,
        task_id="task-2",
        task_ns="node:task-2",
        root_checkpoint_id="c2",
        task_path="__pregel_push/1",
    )
    flow.reply(ReadUpdatedFrom, "c1")
    sibling = row("sibling", task={"step": 1, "path": "__pregel_push/0"})
    flow.reply(Select, [sibling])
    assert begin(flow).task_id == "task-2"


# --- an owner on another host --------------------------------------------------------


def test_an_owner_elsewhere_whose_call_landed_is_settled_by_observe() -> None:
    flow = start()
    observe_before(flow, "B")
    recorded_pending(flow, "A", owner="other-host#7#1")
    flow.reply(AwaitCall, "elsewhere")
    flow.reply(Update, True, expect=("pending",))
    flow.raises(EffectResultUnknownError)


def test_an_owner_elsewhere_whose_call_another_flow_restarted_replays_it() -> None:
    flow = start()
    observe_before(flow, "B")
    pending = recorded_pending(flow, "A", owner="other-host#7#1")
    flow.reply(AwaitCall, "elsewhere")
    flow.reply(Update, False, expect=("pending",))
    outcome_type, outcome = encoded({"result": "won", "after": "B"})
    done = changed_row(
        pending, status="applied", attempt=2, outcome_type=outcome_type, outcome=outcome
    )
    flow.reply(Select, [done])
    assert flow.returns() == "won"


def test_an_owner_elsewhere_whose_target_is_unchanged_may_still_act() -> None:
    flow = start()
    observe_before(flow, "A")
    recorded_pending(flow, "A", owner="other-host#7#1")
    flow.reply(AwaitCall, "elsewhere")
    flow.raises(EffectInFlightError)


def test_an_owner_elsewhere_without_observe_is_in_flight() -> None:
    flow = start(tool())
    begin(flow, {"status": "pending", "owner": "other-host#7#1"})
    flow.reply(AwaitCall, "elsewhere")
    flow.raises(EffectInFlightError)
