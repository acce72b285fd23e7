"""Restoring the graph's state once the world is back at the target
(`core.restore`): the root head, the thread's empty start, and persistent
subgraph namespaces."""

from __future__ import annotations

from typing import Any

import pytest

from langgraph_rollback.core.config import checkpoint_config
from langgraph_rollback.core.ops import (
    CheckpointLink,
    CopyCheckpoint,
    ReadAncestry,
    ReadNamespaceStates,
    Restore,
)
from langgraph_rollback.core.plan import THREAD_START, RollbackPlan
from langgraph_rollback.core.restore import (
    is_persistent_namespace,
    namespace_states,
    restore_state,
)
from tests.unit.build import plan
from tests.unit.script import Script

RESTORE = checkpoint_config("t", "c1")
MARK = {"copy_of": "c1", "copies": ["c1"], "rollback_id": "rb"}
TO_FIRST = [
    CheckpointLink("c1", "c0"),
    CheckpointLink("c0", "c-1"),
    CheckpointLink("c-1", None),
]


def start(
    the_plan: RollbackPlan, restore: Any = RESTORE, changed: bool = True
) -> Script:
    return Script(restore_state(the_plan, "rb", restore, changed))


def test_head_already_a_copy_of_the_target_writes_nothing() -> None:
    flow = start(plan(head="k2", reached_copy="k2"))
    assert flow.returns() is None


def test_head_at_the_target_with_nothing_changed_writes_nothing() -> None:
    assert start(plan(head="c1"), changed=False).returns() is None


def test_head_at_the_target_is_written_again_when_something_changed() -> None:
    flow = start(plan(head="c1"))
    flow.reply(ReadNamespaceStates, [])
    flow.reply(Restore, checkpoint_config("t", "k2"), config=RESTORE, mark=MARK)
    assert flow.returns() == "k2"


def test_without_persistent_namespaces_the_target_s_ancestry_is_not_read() -> None:
    # The ancestry runs back to the thread's start: a long history would be
    # read for nothing.
    flow = start(plan(head="c3"))
    flow.reply(ReadNamespaceStates, [], thread_id="t", before=())
    flow.reply(Restore, checkpoint_config("t", "k4"), config=RESTORE)
    assert flow.returns() == "k4"


def test_subgraph_namespaces_are_set_back_before_the_root_head() -> None:
    flow = start(plan(head="c3"))
    heads = [("changed", "s5", None), ("unchanged", "u2", None)]
    flow.reply(ReadNamespaceStates, heads, thread_id="t", before=())
    flow.reply(ReadAncestry, TO_FIRST, thread_id="t", start="c1", stop="first")
    # The target's own tasks ran after it: only its ancestors count.
    states = [
        ("changed", "s5", "s3"),
        ("unchanged", "u2", "u2"),
        ("started_after", "n1", None),
    ]
    flow.reply(ReadNamespaceStates, states, thread_id="t", before=["c0", "c-1"])
    copies = [
        flow.reply(CopyCheckpoint, checkpoint_config("t", f"x{i}")) for i in (1, 2)
    ]
    assert copies == [
        CopyCheckpoint("t", "changed", "s3", "s5", "c3", MARK),
        CopyCheckpoint("t", "started_after", None, "n1", "c3", MARK),
    ]
    flow.reply(Restore, checkpoint_config("t", "k4"), config=RESTORE)
    assert flow.returns() == "k4"


def test_a_node_that_restores_the_root_itself_gets_only_the_namespaces() -> None:
    flow = start(plan(head="c3"), restore=None)
    flow.reply(ReadNamespaceStates, [("sub", "s5", None)])
    flow.reply(ReadAncestry, TO_FIRST)
    flow.reply(ReadNamespaceStates, [("sub", "s5", "s3")])
    flow.reply(CopyCheckpoint, checkpoint_config("t", "x1"), source_id="s3")
    assert flow.returns() is None


def test_the_thread_s_empty_start_is_written_as_an_empty_head() -> None:
    the_plan = plan(head="c3", target=THREAD_START)
    mark = {"copy_of": "first", "copies": ["first"], "rollback_id": "rb"}
    flow = start(the_plan)
    # No checkpoint is before the empty start: every namespace starts empty.
    flow.reply(ReadNamespaceStates, [("sub", "s5", None)], before=())
    flow.reply(CopyCheckpoint, checkpoint_config("t", "x1"), checkpoint_ns="sub")
    empty = flow.reply(CopyCheckpoint, checkpoint_config("t", "k4"))
    assert empty == CopyCheckpoint("t", "", None, "c3", "", mark)
    assert flow.returns() == "k4"


# --- reading the namespaces' states ---------------------------------------------------


@pytest.mark.parametrize(
    ("checkpoint_ns", "persistent"),
    [("", False), ("sub", True), ("outer|inner", True), ("sub:task-1", False)],
)
def test_persistent_namespaces_have_no_task_id(
    checkpoint_ns: str, persistent: bool
) -> None:
    assert is_persistent_namespace(checkpoint_ns) is persistent


def test_namespace_states_are_each_namespace_s_head_and_state_before() -> None:
    rows = [
        ("sub", "s2", "c1"),
        ("sub", "s3", "c2"),
        ("sub", "s1", "c0"),
        ("", "c2", None),
        ("sub:task-1", "t1", "c0"),
        ("late", "l1", "c3"),
        ("early", "e1", "c0"),
    ]
    assert namespace_states(rows, ["c0", "c1"]) == [
        ("early", "e1", "e1"),
        ("late", "l1", None),
        ("sub", "s3", "s2"),
    ]


def test_namespace_states_of_no_rows_are_none() -> None:
    assert namespace_states([], ["c0"]) == []
