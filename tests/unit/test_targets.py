"""Picking a rollback target by walking back from a checkpoint (`select_target`)."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import CheckpointTuple

from langgraph_rollback._errors import CheckpointNotFoundError
from langgraph_rollback.core.execute import checkpoint_config
from langgraph_rollback.core.ops import ReadCheckpoint
from langgraph_rollback.core.targets import before_node, run_start, select_target
from tests.unit.script import Script


def checkpoint(
    checkpoint_id: str,
    parent: str | None,
    *,
    source: str = "loop",
    seen: dict[str, Any] | None = None,
) -> CheckpointTuple:
    return CheckpointTuple(
        config=checkpoint_config("t", checkpoint_id),
        checkpoint={"versions_seen": seen or {}},  # type: ignore[typeddict-item]
        metadata={"source": source},  # type: ignore[typeddict-item]
        parent_config=checkpoint_config("t", parent) if parent else None,
    )


def test_run_start_is_the_checkpoint_after_the_latest_input() -> None:
    flow = Script(select_target(run_start(), "t", "c3"))
    flow.reply(
        ReadCheckpoint, checkpoint("c3", "c2"), config=checkpoint_config("t", "c3")
    )
    flow.reply(
        ReadCheckpoint, checkpoint("c2", "c1"), config=checkpoint_config("t", "c2")
    )
    flow.reply(ReadCheckpoint, checkpoint("c1", None, source="input"))
    assert flow.returns() == "c2"


def test_run_start_looks_past_a_head_that_is_itself_an_input() -> None:
    flow = Script(select_target(run_start(), "t", "c1"))
    flow.reply(ReadCheckpoint, checkpoint("c1", None, source="input"))
    error = flow.raises(CheckpointNotFoundError)
    assert "the start of the current run" in str(error)
    assert (error.checkpoint_id, error.thread_id) == ("c1", "t")


def test_before_node_is_where_the_node_last_ran_from() -> None:
    flow = Script(select_target(before_node("write"), "t", "c4"))
    flow.reply(ReadCheckpoint, checkpoint("c4", "c3", seen={"write": 2}))
    flow.reply(ReadCheckpoint, checkpoint("c3", "c2", seen={"write": 2}))
    flow.reply(ReadCheckpoint, checkpoint("c2", "c1", seen={"write": 1}))
    assert flow.returns() == "c2"


def test_before_node_that_never_ran_is_not_found() -> None:
    flow = Script(select_target(before_node("write"), "t", "c2"))
    flow.reply(ReadCheckpoint, checkpoint("c2", "c1", seen={"other": 1}))
    flow.reply(ReadCheckpoint, checkpoint("c1", None))
    error = flow.raises(CheckpointNotFoundError)
    assert "a checkpoint from which node 'write' ran" in str(error)


def test_walk_stops_at_a_missing_checkpoint() -> None:
    flow = Script(select_target(run_start(), "t", "c2"))
    flow.reply(ReadCheckpoint, None)
    flow.raises(CheckpointNotFoundError)
