"""Undoing a deleted run: what `multitask_strategy="rollback"` leaves in the world.

LangGraph's Agent Server cancels a busy thread's run when a new one arrives
with `multitask_strategy="rollback"`, and deletes that run's checkpoints
(`adelete_for_runs`). Deleting checkpoints undoes nothing outside; with the
saver's `undo_deleted_runs` on, `undo_run_flow` first undoes the run's
effects, the same way as any rollback:

1. the run's calls still in flight in this process end first (a cancelled
   run's sync tool keeps running in its worker thread), each waited for up
   to `wait` seconds;
2. holding the thread's rollback lock, the plan back to where the run
   started (`run_start(run_id)`; the thread's start when the run stored no
   checkpoint before it) is cut to the run's own effects, and executed with
   the given policies, newest first, with the same claims and report; the
   state is not restored (the caller deletes the run's checkpoints next);
3. the report is kept in the ledger like any rollback's.

What it leaves (irreversible, refused, failed) stays in the ledger; the
deletion then anchors it to where the run started, so a later rollback to
there (or before) undoes it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._errors import CheckpointNotFoundError
from langgraph_rollback._models import EffectStatus
from langgraph_rollback.core.execute import Policies, execute_flow, holding_lock
from langgraph_rollback.core.locks import LockHolder
from langgraph_rollback.core.ops import AwaitCall, Flow, ReadHead, Select, do
from langgraph_rollback.core.plan import THREAD_START, plan_flow
from langgraph_rollback.core.policies import new_rollback_id
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.report import RollbackReport
from langgraph_rollback.core.targets import run_start, target_flow
from langgraph_rollback.core.voice import Voice

__all__ = ["undo_run_flow"]


def undo_run_flow(
    thread_id: str,
    run_id: str,
    *,
    holder: LockHolder,
    policies: Policies,
    registry: ToolRegistry,
    serde: SerializerProtocol,
    wait: float,
) -> Flow[RollbackReport | None]:
    """Undo run `run_id`'s effects on `thread_id`, newest first.

    Returns:
        The report, or None when the run left nothing to undo (no effects,
        or all undone already).

    Raises:
        RollbackInProgressError: Another rollback holds the thread.
        EffectInFlightError: A call of the run was still running after `wait`.
    """
    pending = yield from do(
        Select(EffectQuery(thread_id=thread_id, statuses=(EffectStatus.PENDING.value,)))
    )
    for row in pending:
        if row.run_id == run_id:
            yield from do(AwaitCall(row.effect_id, row.owner, wait))
    body = _undo_run(thread_id, run_id, holder, policies, registry, serde)
    return (yield from holding_lock(thread_id, holder, body))


def _undo_run(
    thread_id: str,
    run_id: str,
    holder: LockHolder,
    policies: Policies,
    registry: ToolRegistry,
    serde: SerializerProtocol,
) -> Flow[RollbackReport | None]:
    started = datetime.now(UTC)
    head = yield from do(ReadHead(thread_id))
    if head is None:
        return None  # an earlier deletion of the run took its checkpoints
    try:
        target = yield from target_flow(
            run_start(run_id), thread_id, head=None, voice=Voice.PYTHON
        )
    except CheckpointNotFoundError:
        target = THREAD_START  # the run stored no checkpoint before its calls
    plan = yield from plan_flow(thread_id, target, registry=registry, serde=serde)
    steps = [s for s in plan.steps if s.effect.run_id == run_id]
    if all(s.effect.status is EffectStatus.COMPENSATED for s in steps):
        return None
    plan = plan.model_copy(update={"steps": steps, "orphans": []})
    return (
        yield from execute_flow(
            plan,
            policies=policies,
            registry=registry,
            serde=serde,
            rollback_id=new_rollback_id(),
            restore=None,
            started_at=started,
            owner=holder.owner,
        )
    )
