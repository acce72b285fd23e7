"""Executing a rollback plan: refuse, undo newest first, restore, report.

`execute_flow` is I/O-free like the other flows, in three phases:

1. **refuse** before anything runs when `skip=` names nothing on the thread
   or an effect inside a container it would undo (`core.skips`, raising),
   or when the policies say so (an irreversible effect under
   `on_irreversible="abort"`, a conflict under `on_conflict="abort"`),
   listing every such effect in the report;
2. **undo** newest first (`core.undo.undo_one` for each effect to undo); a
   target found changed while undoing stops the rollback under
   `on_conflict="abort"` (status "stopped"), an inverse that fails stops it
   under `on_failure="stop"`;
3. **finish**: when everything the plan chose was undone, restore the state
   as a new head that copies the target (`Restore`), with persistent
   subgraphs' state (`core.restore`); save and return the report.

`rollback_flow` holds the thread's lock (`LockThread`) for the whole of it,
so two rollbacks of one thread never run at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._errors import UnregisteredToolError
from langgraph_rollback._models import AuditAction, EffectStatus
from langgraph_rollback.core.audit import UNKNOWN, keep
from langgraph_rollback.core.codec import ledger_codec_of
from langgraph_rollback.core.config import checkpoint_config
from langgraph_rollback.core.locks import LockHolder
from langgraph_rollback.core.ops import (
    Flow,
    LockThread,
    ReadHead,
    SaveRollback,
    UnlockThread,
    do,
)
from langgraph_rollback.core.plan import Decision, RollbackPlan, plan_flow
from langgraph_rollback.core.policies import (
    OnConflict,
    OnFailure,
    OnIrreversible,
    Policies,
    new_rollback_id,
    skip_ids,
)
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.report import (
    RollbackReport,
    RollbackStatus,
    SkippedStep,
    call_text,
)
from langgraph_rollback.core.restore import restore_state
from langgraph_rollback.core.skips import resolve_skip
from langgraph_rollback.core.targets import TargetSelector, target_flow
from langgraph_rollback.core.undo import InverseTimeoutError, Run, mark, undo_one
from langgraph_rollback.core.voice import Voice, option, registry_fix

__all__ = [
    "InverseTimeoutError",
    "OnConflict",
    "OnFailure",
    "OnIrreversible",
    "Policies",
    "execute_flow",
    "holding_lock",
    "new_rollback_id",
    "rejected_report",
    "rollback_flow",
    "skip_ids",
]

T = TypeVar("T")


def rollback_flow(
    thread_id: str,
    to: TargetSelector,
    *,
    holder: LockHolder,
    policies: Policies,
    registry: ToolRegistry,
    serde: SerializerProtocol,
    voice: Voice = Voice.PYTHON,
) -> Flow[RollbackReport]:
    """Lock the thread, find the target, plan, execute and restore; unlock
    whatever happens."""
    started = datetime.now(UTC)

    def plan_and_execute() -> Flow[RollbackReport]:
        head = yield from do(ReadHead(thread_id))
        target = yield from target_flow(to, thread_id, head=head, voice=voice)
        plan = yield from plan_flow(
            thread_id, target, registry=registry, serde=serde, head=head, voice=voice
        )
        return (
            yield from execute_flow(
                plan,
                policies=policies,
                registry=registry,
                serde=serde,
                rollback_id=new_rollback_id(),
                restore=checkpoint_config(thread_id, target),
                started_at=started,
                owner=holder.owner,
                voice=voice,
            )
        )

    return (yield from holding_lock(thread_id, holder, plan_and_execute()))


def holding_lock(thread_id: str, holder: LockHolder, body: Flow[T]) -> Flow[T]:
    """Run `body` holding the thread's rollback lock; release it whatever happens."""
    yield from do(LockThread(thread_id, holder))
    try:
        return (yield from body)
    finally:
        yield from do(UnlockThread(thread_id, holder))


def execute_flow(
    plan: RollbackPlan,
    *,
    policies: Policies,
    registry: ToolRegistry,
    serde: SerializerProtocol,
    rollback_id: str,
    restore: RunnableConfig | None,
    started_at: datetime,
    owner: str | None = None,
    voice: Voice = Voice.PYTHON,
) -> Flow[RollbackReport]:
    """Carry out `plan`; return the report.

    Args:
        restore: The target's config, to write the restored head with
            `Restore`; None when the caller restores the state itself (the
            in-graph node returns the target's values instead).
        owner: The rollback's process, recorded on each claim.
        voice: Whose words the report's fixes use (policy options, resolving).
    """
    policies = yield from resolve_skip(plan, policies)
    run = Run(
        policies, registry, serde, rollback_id, owner, nested=plan.nested, voice=voice
    )
    refused = _refusal(plan, run)
    if refused is not None:
        report = _report(plan, run, started_at, "aborted", refused)
        return (yield from _save(report, serde))
    yield from do(SaveRollback(_record(plan, rollback_id, started_at, "running")))
    yield from _audit_decisions(plan, run)
    stopped_at = yield from _undo_all(plan, run)
    status, message, restored = yield from _finish(plan, run, restore, stopped_at)
    report = _report(plan, run, started_at, status, message, restored)
    return (yield from _save(report, serde))


def _refusal(plan: RollbackPlan, run: Run) -> str | None:
    """Why the policies refuse the plan before anything runs, or None; every
    effect that makes it refuse goes into the report."""
    for step in plan.steps:
        if (
            step.decision is Decision.MISSING_INVERSE
            and step.effect.id not in run.policies.skip
        ):
            fix = None
            if run.voice is not Voice.PYTHON:
                fix = f"Fix: {registry_fix(run.voice)}."
            raise UnregisteredToolError(
                tool=step.effect.tool, effect_id=step.effect.id, fix=fix
            )
    steps = [s for s in plan.steps if s.effect.id not in run.policies.skip]
    stuck = [
        s
        for s in steps
        if s.decision is Decision.SKIP and s.skip_kind in ("irreversible", "unknown")
    ]
    conflicts = [s for s in steps if s.decision is Decision.CONFLICT]
    why: list[str] = []
    if run.policies.on_irreversible == "abort" and stuck:
        run.skipped += [SkippedStep(effect=s.effect, reason=s.reason) for s in stuck]
        names = ", ".join(f"{call_text(s.effect, 40)} (#{s.effect.seq})" for s in stuck)
        policy = option(run.voice, "on_irreversible", "abort")
        why.append(f"{names} cannot be undone and {policy}")
    if run.policies.on_conflict == "abort" and conflicts:
        run.conflicts += [
            SkippedStep(effect=s.effect, reason=s.reason) for s in conflicts
        ]
        names = "; ".join(
            f"{call_text(s.effect, 40)} (#{s.effect.seq}): {s.reason}"
            for s in conflicts
        )
        voice = run.voice
        why.append(
            f"{names}; {option(voice, 'on_conflict', 'abort')}. Roll back with "
            f"{option(voice, 'on_conflict', 'skip')} to leave them, or "
            f"{option(voice, 'on_conflict', 'force')} to undo them anyway"
        )
    if not why:
        return None
    return "Refused: " + ". ".join(why) + ". Nothing was undone."


def _audit_decisions(plan: RollbackPlan, run: Run) -> Flow[None]:
    """Keep the caller's decisions in the audit trail: the rollback itself
    when a person asked for it, and the overrides of the plan (effects left
    by `skip=`, conflicts undone under `on_conflict="force"`)."""
    policies = run.policies
    claimed = {"claimed_by": policies.claimed_by} if policies.claimed_by else {}
    if policies.requested_by:
        yield from keep(
            plan.thread_id,
            AuditAction.ROLLBACK,
            key=run.rollback_id,
            by=policies.requested_by,
            effect_ids=[
                s.effect.id
                for s in plan.steps
                if s.effect.id not in policies.skip
                and (
                    s.decision is Decision.UNDO
                    or (
                        s.decision is Decision.CONFLICT
                        and policies.on_conflict == "force"
                    )
                )
            ],
            rollback_id=run.rollback_id,
            reason=policies.reason,
            overrode=f"the thread's head {plan.head_checkpoint_id}",
            details={"target": plan.target_checkpoint_id, **claimed},
        )
    skipped = {
        s.effect.id: s.decision.value
        for s in plan.steps
        if s.effect.id in policies.skip
    }
    # Ids only: a conflict's reason quotes the observed target, which may be
    # encrypted in the ledger; the audit trail is kept in the clear.
    forced = [
        s.effect.id
        for s in plan.steps
        if s.decision is Decision.CONFLICT and s.effect.id not in policies.skip
    ]
    by = policies.by or UNKNOWN
    if skipped:
        yield from keep(
            plan.thread_id,
            AuditAction.SKIP,
            key=run.rollback_id,
            by=by,
            effect_ids=list(skipped),
            rollback_id=run.rollback_id,
            reason=policies.reason,
            overrode="the plan: " + ", ".join(sorted(set(skipped.values()))),
            details={"planned": skipped, **claimed},
        )
    if forced and policies.on_conflict == "force":
        yield from keep(
            plan.thread_id,
            AuditAction.FORCE,
            key=run.rollback_id,
            by=by,
            effect_ids=list(forced),
            rollback_id=run.rollback_id,
            reason=policies.reason,
            overrode="conflicts: their targets changed since the agent touched them",
            details={
                "planned": dict.fromkeys(forced, Decision.CONFLICT.value),
                **claimed,
            },
        )


def _undo_all(plan: RollbackPlan, run: Run) -> Flow[str | None]:
    """Walk the plan newest first: undo, leave, or note each effect.

    Returns the effect id the rollback stopped at because its target changed
    while undoing (under `on_conflict="abort"`), else None.
    """
    failed = False
    drifted: str | None = None
    for step in plan.steps:
        effect = step.effect
        decision = step.decision
        if effect.id in run.policies.skip:
            reason = run.policies.skip_reason(effect.id)
            run.skipped.append(SkippedStep(effect=effect, reason=reason))
        elif decision is Decision.ALREADY_COMPENSATED:
            if effect.status is not EffectStatus.COMPENSATED:
                # An earlier inverse took effect before its rollback stopped.
                content = {"current": step.current, "notes": [step.reason]}
                settle = mark(
                    effect,
                    EffectStatus.COMPENSATED,
                    run,
                    content,
                    expect=(effect.status.value,),
                )
                yield from do(settle)
            run.already_compensated.append(effect)
        elif decision is Decision.SKIP:
            run.skipped.append(SkippedStep(effect=effect, reason=step.reason))
        elif decision is Decision.CONFLICT and run.policies.on_conflict != "force":
            run.conflicts.append(SkippedStep(effect=effect, reason=step.reason))
        elif failed or drifted:
            reason = (
                "not attempted: the rollback stopped at a target that changed"
                if drifted
                else "not attempted: an earlier inverse failed"
            )
            run.skipped.append(SkippedStep(effect=effect, reason=reason))
        else:
            result = yield from undo_one(step, run)
            if result == "failed" and run.policies.on_failure == "stop":
                failed = True
            elif result == "drifted" and run.policies.on_conflict == "abort":
                drifted = effect.id
    return drifted


def _finish(
    plan: RollbackPlan,
    run: Run,
    restore: RunnableConfig | None,
    stopped_at: str | None,
) -> Flow[tuple[RollbackStatus, str, str | None]]:
    """The report's status and message; the state restored when everything the
    plan chose was undone."""
    if stopped_at is not None:
        conflict = next(c for c in run.conflicts if c.effect.id == stopped_at)
        voice = run.voice
        message = (
            f"Stopped before undoing {call_text(conflict.effect, 40)} "
            f"(#{conflict.effect.seq}): {conflict.reason}, and "
            f"{option(voice, 'on_conflict', 'abort')}. The newer effects were "
            "undone; the state was not restored. Check the target, then roll "
            f"back again ({option(voice, 'on_conflict', 'skip')} to leave it, "
            f"{option(voice, 'on_conflict', 'force')} to undo it anyway)."
        )
        return "stopped", message, None
    if run.failures:
        first = run.failures[0]
        message = (
            f"The inverse of {first.effect.tool} (#{first.effect.seq}) failed: "
            f"{first.error}. The state was not restored."
        )
        return "failed", message, None
    unresolved = [s for s in plan.unresolved if s.effect.id not in run.policies.skip]
    if unresolved:
        message = (
            f"{len(unresolved)} effect(s) have an unknown outcome, so the world may "
            "not be back at the target and the state was not restored. Resolve "
            "them (see their reasons), then roll back again."
        )
        return "incomplete", message, None
    changed = bool(run.undone or run.already_compensated)
    restored = yield from restore_state(plan, run.rollback_id, restore, changed)
    status: RollbackStatus = "completed" if run.undone else "nothing_to_undo"
    message = ""
    if plan.at_target and not run.undone:
        message = "The thread is already at the target; there was nothing left to undo."
    return status, message, restored


def _report(
    plan: RollbackPlan,
    run: Run,
    started_at: datetime,
    status: RollbackStatus,
    message: str = "",
    restored: str | None = None,
) -> RollbackReport:
    return RollbackReport(
        rollback_id=run.rollback_id,
        thread_id=plan.thread_id,
        target_checkpoint_id=plan.target_checkpoint_id,
        head_checkpoint_id=plan.head_checkpoint_id,
        restored_checkpoint_id=restored,
        status=status,
        message=message,
        undone=run.undone,
        skipped=run.skipped,
        conflicts=run.conflicts,
        failures=run.failures,
        already_compensated=run.already_compensated,
        orphans=list(plan.orphans),
        unplaced=list(plan.unplaced),
        started_at=started_at,
        finished_at=datetime.now(UTC),
    )


def _record(
    plan: RollbackPlan, rollback_id: str, started_at: datetime, status: str
) -> dict[str, Any]:
    """The `lgrb_rollbacks` row of a rollback that has started."""
    return {
        "rollback_id": rollback_id,
        "thread_id": plan.thread_id,
        "target_checkpoint_id": plan.target_checkpoint_id,
        "head_checkpoint_id": plan.head_checkpoint_id,
        "restored_checkpoint_id": None,
        "status": status,
        "started_at": started_at.isoformat(),
        "finished_at": None,
        "report_type": None,
        "report": None,
    }


REPORT_TEXT_LIMIT = 1_000_000
"""The characters of a report's text kept when the report itself cannot be
stored (a value the ledger refuses, or more than its size limit)."""


def _save(report: RollbackReport, serde: SerializerProtocol) -> Flow[RollbackReport]:
    """Keep the report in the ledger: itself, else its text (cut if need be),
    so a rollback that put the world back never fails at its last write."""
    codec = ledger_codec_of(serde)
    try:
        type_, blob = codec.dumps_record(report.model_dump())
    except Exception:
        text = str(report)
        if len(text) > REPORT_TEXT_LIMIT:
            cut = len(text) - REPORT_TEXT_LIMIT
            text = f"{text[:REPORT_TEXT_LIMIT]}... ({cut} more characters)"
        type_, blob = codec.dumps_typed({"text": text})
    record = {
        "rollback_id": report.rollback_id,
        "thread_id": report.thread_id,
        "target_checkpoint_id": report.target_checkpoint_id,
        "head_checkpoint_id": report.head_checkpoint_id,
        "restored_checkpoint_id": report.restored_checkpoint_id,
        "status": report.status,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat(),
        "report_type": type_,
        "report": blob,
    }
    yield from do(SaveRollback(record))
    return report


def rejected_report(
    plan: RollbackPlan, rollback_id: str, started_at: datetime, message: str
) -> RollbackReport:
    """The report of a plan a human rejected."""
    return RollbackReport(
        rollback_id=rollback_id,
        thread_id=plan.thread_id,
        target_checkpoint_id=plan.target_checkpoint_id,
        head_checkpoint_id=plan.head_checkpoint_id,
        status="rejected",
        message=message,
        orphans=list(plan.orphans),
        unplaced=list(plan.unplaced),
        started_at=started_at,
        finished_at=datetime.now(UTC),
    )
