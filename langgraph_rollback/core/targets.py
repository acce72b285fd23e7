"""Rollback targets picked by walking back from a checkpoint: `run_start()`,
`before_node(name)`.

`select_target` is I/O-free: it reads checkpoints with `ReadCheckpoint` from
the head back through their parents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig

from langgraph_rollback._errors import CheckpointNotFoundError
from langgraph_rollback.core.execute import checkpoint_config
from langgraph_rollback.core.ops import Flow, ReadCheckpoint, do

__all__ = ["TargetSelector", "before_node", "run_start", "select_target"]


@dataclass(frozen=True)
class TargetSelector:
    """Picks a rollback target by walking back from the head.

    Use `before_node(name)` or `run_start()` to make one.
    """

    kind: Literal["before_node", "run_start"]
    node: str | None = None


def before_node(name: str) -> TargetSelector:
    """Target the checkpoint from which node `name` last ran.

    Walking back from the checkpoint the rollback node started from, this is
    the nearest checkpoint whose next step ran `name`: in a loop, the start
    of `name`'s most recent run on the current path. The state there is the
    state `name` received. Works for nodes reached by edges (including
    conditional edges), not for tasks started with `Send`.
    """
    return TargetSelector("before_node", name)


def run_start() -> TargetSelector:
    """Target the start of the current run.

    That is the first checkpoint after the thread's most recent input was
    applied (step 0 of the latest `invoke(inputs)`): the state holds the new
    input and no node of the run has acted yet. Resuming with `invoke(None)`
    or `Command(resume=...)` continues the same run, so it does not move this
    point.
    """
    return TargetSelector("run_start")


def select_target(selector: TargetSelector, thread_id: str, head: str) -> Flow[str]:
    """The checkpoint `selector` names, walking back from `head`.

    Raises:
        CheckpointNotFoundError: The walk reached the thread's start without
            finding it.
    """
    child: Any = None
    current: RunnableConfig | None = checkpoint_config(thread_id, head)
    while current is not None:
        found = yield from do(ReadCheckpoint(current))
        if found is None:
            break
        checkpoint_id = str(found.config["configurable"]["checkpoint_id"])
        if selector.kind == "run_start":
            if found.metadata.get("source") == "input" and child is not None:
                return str(child.config["configurable"]["checkpoint_id"])
        elif child is not None:
            seen_here = found.checkpoint["versions_seen"].get(selector.node or "")
            seen_after = child.checkpoint["versions_seen"].get(selector.node or "")
            if seen_after is not None and seen_after != seen_here:
                return checkpoint_id
        child = found
        current = found.parent_config
    what = (
        "the start of the current run (no input checkpoint on the path)"
        if selector.kind == "run_start"
        else f"a checkpoint from which node {selector.node!r} ran"
    )
    raise CheckpointNotFoundError(
        f"RollbackNode found no target: walking back from checkpoint {head!r} "
        f"of thread {thread_id!r}, there is no {what}. Fix: check the node "
        "name, or give RollbackNode(to=...) a function that picks the target.",
        checkpoint_id=head,
        thread_id=thread_id,
    )
