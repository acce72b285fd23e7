"""Restoring the graph's state once the world is back at the target.

Out of the graph, the root state is restored as a new head checkpoint that
copies the target (`Restore`, LangGraph's `update_state(target, None,
as_node="__copy__")`), tagged so a later rollback to the same target finds
nothing left (DESIGN.md section 3, point 6). The thread's empty start (the
target "first") has no checkpoint to copy: the new head is an empty state.

Subgraphs compiled with `checkpointer=True` keep a state of their own from
run to run, in a namespace of their own; each is set back to the state it
had at the target: a copy of its newest checkpoint written before the
target's step (empty when it had none yet). Inside a running graph
(`RollbackNode`), the root state comes back through the node's update, and
only the subgraphs' states are written here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from langchain_core.runnables import RunnableConfig

from langgraph_rollback.core.ops import (
    CopyCheckpoint,
    Flow,
    ReadAncestry,
    ReadNamespaceStates,
    Restore,
    do,
)
from langgraph_rollback.core.plan import THREAD_START, RollbackPlan

__all__ = ["is_persistent_namespace", "namespace_states", "restore_state"]


def restore_state(
    plan: RollbackPlan,
    rollback_id: str,
    restore: RunnableConfig | None,
    changed: bool,
) -> Flow[str | None]:
    """Write the restored head(s); return the new root head's id (None when the
    root state was left as it is or comes back through a node's update).

    Subgraph namespaces are written first and the root head last: a rollback
    cut off in between finds its head not yet a copy of the target and
    writes them again.
    """
    mark = {
        "copy_of": plan.target_checkpoint_id,
        "copies": list(plan.target_copies),
        "rollback_id": rollback_id,
    }
    already_copy = plan.head_checkpoint_id == plan.reached_copy
    untouched = plan.head_checkpoint_id == plan.target_checkpoint_id and not changed
    if already_copy or untouched:
        return None
    yield from _restore_namespaces(plan, mark)
    if restore is None:
        return None
    if plan.target_checkpoint_id == THREAD_START:
        empty = CopyCheckpoint(
            plan.thread_id, "", None, plan.head_checkpoint_id, "", mark
        )
        config = yield from do(empty)
    else:
        config = yield from do(Restore(restore, mark))
    return str(config["configurable"]["checkpoint_id"])


def _restore_namespaces(plan: RollbackPlan, mark: Mapping[str, object]) -> Flow[None]:
    """Set each persistent subgraph's namespace back to its state at the target.

    Each copy names the head the rollback started from as its root
    checkpoint: an ancestor of the restored head, so a later rollback to the
    restored head finds that state.
    """
    states = yield from do(ReadNamespaceStates(plan.thread_id, ()))
    if states and plan.target_checkpoint_id != THREAD_START:
        # Only a thread with persistent namespaces needs the target's whole
        # ancestry (the target's own tasks ran after it: only its ancestors
        # count); most threads have none and skip that read.
        chain = yield from do(
            ReadAncestry(plan.thread_id, plan.target_checkpoint_id, THREAD_START)
        )
        before = [link.checkpoint_id for link in chain[1:]]
        states = yield from do(ReadNamespaceStates(plan.thread_id, before))
    for checkpoint_ns, head_id, state_id in states:
        if state_id == head_id:
            continue
        copy = CopyCheckpoint(
            plan.thread_id,
            checkpoint_ns,
            state_id,
            head_id,
            plan.head_checkpoint_id,
            mark,
        )
        yield from do(copy)


def is_persistent_namespace(checkpoint_ns: str) -> bool:
    """Whether a namespace holds a subgraph compiled with `checkpointer=True`:
    LangGraph stores those under the namespace with task ids removed (no
    `:`), one history per thread (`Pregel._own_checkpoint_config`)."""
    return bool(checkpoint_ns) and ":" not in checkpoint_ns


def namespace_states(
    rows: Iterable[tuple[str, str, str | None]], before: Sequence[str]
) -> list[tuple[str, str, str | None]]:
    """`ReadNamespaceStates`' answer from `(checkpoint_ns, checkpoint_id,
    parents[""])` rows of persistent namespaces: per namespace, its newest
    checkpoint and its newest one whose root checkpoint is in `before`
    (checkpoint ids sort by time)."""
    allowed = set(before)
    heads: dict[str, str] = {}
    states: dict[str, str] = {}
    for checkpoint_ns, checkpoint_id, root_id in rows:
        if not is_persistent_namespace(checkpoint_ns):
            continue
        if checkpoint_id > heads.get(checkpoint_ns, ""):
            heads[checkpoint_ns] = checkpoint_id
        if root_id in allowed and checkpoint_id > states.get(checkpoint_ns, ""):
            states[checkpoint_ns] = checkpoint_id
    return [(ns, heads[ns], states.get(ns)) for ns in sorted(heads)]
