"""Executing a rollback plan: refuse, undo newest first, restore, report.

`execute_flow` is I/O-free like the other flows. Its contract:

- one rollback per thread at a time: `rollback_flow` holds the thread's lock
  (`LockThread`) for the whole plan-and-execute; a second one gets
  `RollbackInProgressError`;
- each inverse is claimed in the ledger (`compensating`) before it runs and
  marked `compensated` or `compensation_failed` after, so none runs twice and
  a rerun continues where an interrupted rollback stopped;
- right before each inverse, `observe` (if declared) checks the target again;
- when every inverse succeeded, the state is restored as a *new head* that
  copies the target (`Restore`); the copy is tagged so a later rollback to
  the same target finds nothing left.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._errors import InvalidConfigError, UnregisteredToolError
from langgraph_rollback._models import Effect, EffectStatus
from langgraph_rollback.core.codec import encode_payload, normalize, storable_or
from langgraph_rollback.core.config import checkpoint_config
from langgraph_rollback.core.ledger import utcnow
from langgraph_rollback.core.locks import LockHolder
from langgraph_rollback.core.ops import (
    Flow,
    LockThread,
    Observe,
    Restore,
    SaveRollback,
    Undo,
    UnlockThread,
    Update,
    do,
)
from langgraph_rollback.core.plan import Decision, PlannedStep, RollbackPlan, plan_flow
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.report import (
    FailedStep,
    RollbackReport,
    RollbackStatus,
    SkippedStep,
    UndoneStep,
    describe_undo,
)
from langgraph_rollback.core.targets import TargetSelector, target_flow
from langgraph_rollback.core.voice import Voice

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

OnIrreversible = Literal["skip", "abort"]
OnConflict = Literal["abort", "skip", "force"]
OnFailure = Literal["stop", "continue"]

_CLAIMABLE = (
    EffectStatus.APPLIED.value,
    EffectStatus.COMPENSATION_FAILED.value,
    EffectStatus.COMPENSATING.value,
    EffectStatus.PENDING.value,
)
_COMPENSATING = (EffectStatus.COMPENSATING.value,)


class InverseTimeoutError(TimeoutError):
    """An inverse did not finish within `inverse_timeout`; it may still land."""


@dataclass(frozen=True)
class Policies:
    """How a rollback treats what it cannot simply undo.

    Attributes:
        on_irreversible: "skip" (default) leaves irreversible and undeclared
            effects in place and reports them; "abort" refuses to roll back
            at all when there is one.
        on_conflict: "abort" (default) refuses to roll back when a target
            changed since the agent touched it; "skip" leaves those effects
            and undoes the rest; "force" undoes them anyway.
        on_failure: "stop" (default) stops at the first inverse that raises,
            does not restore the state, and leaves the ledger so a rerun
            continues there; "continue" runs the remaining inverses first.
        inverse_timeout: Seconds an inverse may take; past that it counts as
            failed. None waits forever.
        skip: Effect ids to leave alone (e.g. chosen by a human approver).
    """

    on_irreversible: OnIrreversible = "skip"
    on_conflict: OnConflict = "abort"
    on_failure: OnFailure = "stop"
    inverse_timeout: float | None = None
    skip: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("on_irreversible", self.on_irreversible, ("skip", "abort")),
            ("on_conflict", self.on_conflict, ("abort", "skip", "force")),
            ("on_failure", self.on_failure, ("stop", "continue")),
        ):
            if value not in allowed:
                raise InvalidConfigError(
                    f"{name}={value!r} is not a policy. Fix: use one of "
                    f"{', '.join(repr(a) for a in allowed)}."
                )
        if self.inverse_timeout is not None and self.inverse_timeout <= 0:
            raise InvalidConfigError(
                f"inverse_timeout={self.inverse_timeout!r} is not a timeout. Fix: "
                "pass a positive number of seconds, or None to wait forever."
            )

    def with_skip(self, skip: Iterable[str]) -> Policies:
        """The same policies, leaving these effect ids alone too."""
        return Policies(
            on_irreversible=self.on_irreversible,
            on_conflict=self.on_conflict,
            on_failure=self.on_failure,
            inverse_timeout=self.inverse_timeout,
            skip=self.skip | skip_ids(skip),
        )


def new_rollback_id() -> str:
    """A fresh rollback id."""
    return str(uuid.uuid4())


def skip_ids(values: Iterable[str] | None) -> frozenset[str]:
    """Normalise a collection of effect ids."""
    return frozenset(str(v) for v in values or ())


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
        target = yield from target_flow(to, thread_id, head=None, voice=voice)
        plan = yield from plan_flow(thread_id, target, registry=registry, serde=serde)
        return (
            yield from execute_flow(
                plan,
                policies=policies,
                registry=registry,
                serde=serde,
                rollback_id=new_rollback_id(),
                restore=checkpoint_config(thread_id, target),
                started_at=started,
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
) -> Flow[RollbackReport]:
    """Carry out `plan`; return the report.

    Args:
        restore: The target's config, to write the restored head with
            `Restore`; None when the caller restores the state itself (the
            in-graph node returns the target's values instead).
    """
    report = _ReportBuilder(plan, rollback_id, started_at)
    refused = _refusal(plan, policies)
    if refused is not None:
        return (yield from _save(report.finish("aborted", refused), serde))
    yield from do(SaveRollback(report.record("running")))
    yield from _undo_all(plan, policies, registry, serde, report)
    return (yield from _finish(plan, policies, restore, serde, report))


def _refusal(plan: RollbackPlan, policies: Policies) -> str | None:
    """Why the policies refuse the plan before anything runs, or None."""
    for step in plan.steps:
        if step.decision is Decision.MISSING_INVERSE:
            raise UnregisteredToolError(tool=step.effect.tool, effect_id=step.effect.id)
    for step in plan.steps:
        effect = step.effect
        if effect.id in policies.skip:
            continue
        if (
            policies.on_irreversible == "abort"
            and step.decision is Decision.SKIP
            and step.skip_kind in ("irreversible", "unknown")
        ):
            return (
                f"Refused: {effect.tool} (#{effect.seq}) cannot be undone "
                "and on_irreversible='abort'. Nothing was undone."
            )
        if policies.on_conflict == "abort" and step.decision is Decision.CONFLICT:
            return (
                f"Refused: {effect.tool} (#{effect.seq}): {step.reason}; "
                "on_conflict='abort'. Nothing was undone. Roll back with "
                "on_conflict='skip' to leave it, or 'force' to undo it anyway."
            )
    return None


def _undo_all(
    plan: RollbackPlan,
    policies: Policies,
    registry: ToolRegistry,
    serde: SerializerProtocol,
    report: _ReportBuilder,
) -> Flow[None]:
    """Walk the plan newest first: undo, leave, or note each effect."""
    stopped = False
    for step in plan.steps:
        effect = step.effect
        decision = step.decision
        if effect.id in policies.skip:
            report.skipped.append(
                SkippedStep(effect=effect, reason="skipped by approver")
            )
        elif decision is Decision.ALREADY_COMPENSATED:
            if effect.status is not EffectStatus.COMPENSATED:
                # An earlier inverse took effect before its rollback stopped.
                content = {"current": step.current, "notes": [step.reason]}
                yield from do(
                    _mark(
                        effect,
                        EffectStatus.COMPENSATED,
                        serde,
                        report.rollback_id,
                        content,
                        expect=(effect.status.value,),
                    )
                )
            report.already_compensated.append(effect)
        elif decision is Decision.SKIP:
            report.skipped.append(SkippedStep(effect=effect, reason=step.reason))
        elif decision is Decision.CONFLICT and policies.on_conflict != "force":
            report.conflicts.append(SkippedStep(effect=effect, reason=step.reason))
        elif stopped:
            reason = "not attempted: an earlier inverse failed"
            report.skipped.append(SkippedStep(effect=effect, reason=reason))
        else:
            ok = yield from _undo_one(step, policies, registry, serde, report)
            stopped = not ok and policies.on_failure == "stop"


def _finish(
    plan: RollbackPlan,
    policies: Policies,
    restore: RunnableConfig | None,
    serde: SerializerProtocol,
    report: _ReportBuilder,
) -> Flow[RollbackReport]:
    """Restore the state when everything was undone; save and return the report."""
    if report.failures:
        first = report.failures[0]
        message = (
            f"The inverse of {first.effect.tool} (#{first.effect.seq}) failed: "
            f"{first.error}. The state was not restored."
        )
        return (yield from _save(report.finish("failed", message), serde))
    unresolved = [s for s in plan.unresolved if s.effect.id not in policies.skip]
    if unresolved:
        message = (
            f"{len(unresolved)} effect(s) have an unknown outcome, so the world may "
            "not be back at the target and the state was not restored. Resolve "
            "them (see their reasons), then roll back again."
        )
        return (yield from _save(report.finish("incomplete", message), serde))
    # Restore unless the head already is a restored copy of the target, or is
    # the target itself with nothing undone (nothing would change).
    already_copy = plan.head_checkpoint_id == plan.reached_copy
    untouched = plan.head_checkpoint_id == plan.target_checkpoint_id and not (
        report.undone or report.already_compensated
    )
    if restore is not None and not (already_copy or untouched):
        mark = {
            "copy_of": plan.target_checkpoint_id,
            "copies": list(plan.target_copies),
            "rollback_id": report.rollback_id,
        }
        new_config = yield from do(Restore(restore, mark))
        report.restored = str(new_config["configurable"]["checkpoint_id"])
    status: RollbackStatus = "completed" if report.undone else "nothing_to_undo"
    message = ""
    if plan.at_target and not report.undone:
        message = "The thread is already at the target; there was nothing left to undo."
    return (yield from _save(report.finish(status, message), serde))


def _undo_one(
    step: PlannedStep,
    policies: Policies,
    registry: ToolRegistry,
    serde: SerializerProtocol,
    report: _ReportBuilder,
) -> Flow[bool]:
    """Claim, re-check and run one inverse; False when it failed."""
    effect = step.effect
    rollback_id = report.rollback_id
    definition = registry.require(effect.tool, effect_id=effect.id)
    claim = {
        "status": EffectStatus.COMPENSATING.value,
        "undo_attempts": effect.undo_attempts + 1,
        "rollback_id": rollback_id,
        "updated_at": utcnow(),
    }
    claimed = yield from do(Update(effect.id, claim, expect=_CLAIMABLE))
    if not claimed:
        reason = "its status changed since planning"
        report.skipped.append(SkippedStep(effect=effect, reason=reason))
        return True
    current: Any = None
    if definition.observe is not None and policies.on_conflict != "force":
        observed = yield from do(Observe(definition.observe, effect.args))
        current = normalize(serde, observed.value) if observed.error is None else None
        drifted = observed.error is not None or (
            effect.status is not EffectStatus.PENDING and current != effect.after
        )
        if drifted:
            # Changed between planning and now: release the claim as it was.
            release = {"status": effect.status.value, "updated_at": utcnow()}
            yield from do(Update(effect.id, release, expect=_COMPENSATING))
            why = (
                f"observe() raised {observed.error!r}"
                if observed.error is not None
                else f"the target changed since planning (found {current!r})"
            )
            report.conflicts.append(SkippedStep(effect=effect, reason=why))
            return True
    args = definition.undo_args(effect) if definition.undo_args is not None else None
    claimed_effect = effect.model_copy(
        update={
            "status": EffectStatus.COMPENSATING,
            "undo_attempts": effect.undo_attempts + 1,
            "rollback_id": rollback_id,
        }
    )
    outcome = yield from do(
        Undo(claimed_effect, definition.undo, args, timeout=policies.inverse_timeout)
    )
    if outcome.error is not None:
        yield from _record_failed_inverse(
            effect, claimed_effect, outcome.error, serde, report
        )
        return False
    content = {
        "result": storable_or(serde, outcome.value, repr(outcome.value)),
        "current": current,
    }
    yield from do(_mark(effect, EffectStatus.COMPENSATED, serde, rollback_id, content))
    description = describe_undo(effect, outcome.value)
    report.undone.append(
        UndoneStep(effect=claimed_effect, result=outcome.value, description=description)
    )
    return True


def _record_failed_inverse(
    effect: Effect,
    claimed: Effect,
    error: BaseException,
    serde: SerializerProtocol,
    report: _ReportBuilder,
) -> Flow[None]:
    """Mark an inverse that raised or timed out, and report it."""
    if isinstance(error, InverseTimeoutError):
        # It may still take effect: keep the claim (`compensating`), so no
        # rerun starts it again unless `observe` or an operator settles it.
        text = (
            f"{error}; it may still take effect, so the effect stays "
            "'compensating': check the target, then saver.resolve_effect(config, "
            f"{effect.id!r}, compensated=True|False)"
        )
        status, content = EffectStatus.COMPENSATING, {"error": text, "timed_out": True}
    else:
        text = f"{type(error).__name__}: {error}"
        status, content = EffectStatus.COMPENSATION_FAILED, {"error": text}
    yield from do(_mark(effect, status, serde, report.rollback_id, content))
    report.failures.append(FailedStep(effect=claimed, error=text))


def _mark(
    effect: Effect,
    status: EffectStatus,
    serde: SerializerProtocol,
    rollback_id: str,
    content: Mapping[str, Any],
    *,
    expect: tuple[str, ...] = _COMPENSATING,
) -> Update:
    payload = encode_payload(serde, dict(content), tool=effect.tool)
    now = utcnow()
    changes: dict[str, Any] = {
        "status": status.value,
        "undo_type": payload[0],
        "undo": payload[1],
        "rollback_id": rollback_id,
        "updated_at": now,
    }
    if status is EffectStatus.COMPENSATED:
        changes["compensated_at"] = now
    return Update(effect.id, changes, expect=expect)


def _save(report: RollbackReport, serde: SerializerProtocol) -> Flow[RollbackReport]:
    record = _ReportBuilder.record_of(report)
    try:
        type_, blob = serde.dumps_typed(report.model_dump())
    except Exception:
        type_, blob = serde.dumps_typed({"text": str(report)})
    record.update(report_type=type_, report=blob)
    yield from do(SaveRollback(record))
    return report


class _ReportBuilder:
    """Accumulates a report while the flow runs."""

    def __init__(
        self, plan: RollbackPlan, rollback_id: str, started_at: datetime
    ) -> None:
        self.plan = plan
        self.rollback_id = rollback_id
        self.started_at = started_at
        self.undone: list[UndoneStep] = []
        self.skipped: list[SkippedStep] = []
        self.conflicts: list[SkippedStep] = []
        self.failures: list[FailedStep] = []
        self.already_compensated: list[Effect] = []
        self.restored: str | None = None

    def record(self, status: str) -> dict[str, Any]:
        return {
            "rollback_id": self.rollback_id,
            "thread_id": self.plan.thread_id,
            "target_checkpoint_id": self.plan.target_checkpoint_id,
            "head_checkpoint_id": self.plan.head_checkpoint_id,
            "restored_checkpoint_id": self.restored,
            "status": status,
            "started_at": self.started_at.isoformat(),
            "finished_at": None,
            "report_type": None,
            "report": None,
        }

    @staticmethod
    def record_of(report: RollbackReport) -> dict[str, Any]:
        return {
            "rollback_id": report.rollback_id,
            "thread_id": report.thread_id,
            "target_checkpoint_id": report.target_checkpoint_id,
            "head_checkpoint_id": report.head_checkpoint_id,
            "restored_checkpoint_id": report.restored_checkpoint_id,
            "status": report.status,
            "started_at": report.started_at.isoformat(),
            "finished_at": report.finished_at.isoformat(),
            "report_type": None,
            "report": None,
        }

    def finish(self, status: RollbackStatus, message: str = "") -> RollbackReport:
        return RollbackReport(
            rollback_id=self.rollback_id,
            thread_id=self.plan.thread_id,
            target_checkpoint_id=self.plan.target_checkpoint_id,
            head_checkpoint_id=self.plan.head_checkpoint_id,
            restored_checkpoint_id=self.restored,
            status=status,
            message=message,
            undone=self.undone,
            skipped=self.skipped,
            conflicts=self.conflicts,
            failures=self.failures,
            already_compensated=self.already_compensated,
            orphans=list(self.plan.orphans),
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
        )


def rejected_report(
    plan: RollbackPlan, rollback_id: str, started_at: datetime, message: str
) -> RollbackReport:
    """The report of a plan a human rejected."""
    return _ReportBuilder(plan, rollback_id, started_at).finish("rejected", message)
