"""Rolling back: run a plan's inverses newest-first, restore the state, report.

`execute_flow` is I/O-free like the other flows; `rollback`/`arollback` and
`plan_rollback`/`aplan_rollback` are the public entry points that drive it.

Execution contract:

- one rollback per thread at a time: the drivers hold the saver's per-thread
  lock for the whole plan-and-execute; a second one gets
  `RollbackInProgressError`;
- each inverse is claimed in the ledger (`compensating`) before it runs and
  marked `compensated` or `compensation_failed` after, so none runs twice and
  a rerun continues where an interrupted rollback stopped;
- right before each inverse, `observe` (if declared) checks the target again;
- when every inverse succeeded, the state is restored as a *new head* that
  copies the target (`update_state(target, None, as_node="__copy__")`); the
  copy is tagged so a later rollback to the same target finds nothing left.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.types import StateSnapshot

from langgraph_rollback._drivers import (
    InverseTimeoutError,
    Progress,
    run_async,
    run_sync,
)
from langgraph_rollback._errors import (
    CheckpointNotFoundError,
    InvalidConfigError,
    UnregisteredToolError,
)
from langgraph_rollback._ledger import encode_payload, normalize, utcnow
from langgraph_rollback._models import Effect, EffectStatus
from langgraph_rollback._ops import (
    Observe,
    Outcome,
    Restore,
    SaveRollback,
    Undo,
    Update,
)
from langgraph_rollback._plan import (
    Decision,
    PlannedStep,
    RollbackPlan,
    plan_flow,
)
from langgraph_rollback._registry import ToolRegistry
from langgraph_rollback._report import (
    FailedStep,
    RollbackReport,
    RollbackStatus,
    SkippedStep,
    UndoneStep,
    describe_undo,
)
from langgraph_rollback.backends.base import (
    BaseRollbackSaver,
    LockHolder,
    thread_id_of,
)

__all__ = [
    "Policies",
    "aplan_rollback",
    "arollback",
    "execute_flow",
    "plan_rollback",
    "rollback",
]

OnIrreversible = Literal["skip", "abort"]
OnConflict = Literal["abort", "skip", "force"]
OnFailure = Literal["stop", "continue"]

_CLAIMABLE = (
    EffectStatus.APPLIED.value,
    EffectStatus.COMPENSATION_FAILED.value,
    EffectStatus.COMPENSATING.value,
    EffectStatus.PENDING.value,
)


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


def new_rollback_id() -> str:
    """A fresh rollback id."""
    return str(uuid.uuid4())


def execute_flow(
    plan: RollbackPlan,
    *,
    policies: Policies,
    registry: ToolRegistry,
    serde: SerializerProtocol,
    rollback_id: str,
    restore: RunnableConfig | None,
    started_at: datetime,
) -> Generator[Any, Any, RollbackReport]:
    """Carry out `plan`; return the report.

    Args:
        restore: The target's config, to write the restored head with
            `Restore`; None when the caller restores the state itself (the
            in-graph node returns the target's values instead).
    """
    report = _ReportBuilder(plan, rollback_id, started_at)
    for step in plan.steps:
        if step.decision is Decision.MISSING_INVERSE:
            raise UnregisteredToolError(tool=step.effect.tool, effect_id=step.effect.id)

    for step in plan.steps:
        if step.effect.id in policies.skip:
            continue
        if (
            policies.on_irreversible == "abort"
            and step.decision is Decision.SKIP
            and step.skip_kind in ("irreversible", "unknown")
        ):
            aborted = report.finish(
                "aborted",
                f"Refused: {step.effect.tool} (#{step.effect.seq}) cannot be undone "
                "and on_irreversible='abort'. Nothing was undone.",
            )
            return (yield from _save(aborted, serde))
        if policies.on_conflict == "abort" and step.decision is Decision.CONFLICT:
            aborted = report.finish(
                "aborted",
                f"Refused: {step.effect.tool} (#{step.effect.seq}): {step.reason}; "
                "on_conflict='abort'. Nothing was undone. Roll back with "
                "on_conflict='skip' to leave it, or 'force' to undo it anyway.",
            )
            return (yield from _save(aborted, serde))

    yield SaveRollback(report.record("running"))
    stopped = False
    for step in plan.steps:
        effect = step.effect
        if effect.id in policies.skip:
            report.skipped.append(
                SkippedStep(effect=effect, reason="skipped by approver")
            )
            continue
        decision = step.decision
        if decision is Decision.ALREADY_COMPENSATED:
            if effect.status is not EffectStatus.COMPENSATED:
                # An earlier inverse took effect before its rollback stopped.
                yield _mark(
                    effect,
                    EffectStatus.COMPENSATED,
                    serde,
                    rollback_id,
                    {"current": step.current, "notes": [step.reason]},
                    expect=(effect.status.value,),
                )
            report.already_compensated.append(effect)
            continue
        if decision is Decision.SKIP:
            report.skipped.append(SkippedStep(effect=effect, reason=step.reason))
            continue
        if decision is Decision.CONFLICT and policies.on_conflict != "force":
            report.conflicts.append(SkippedStep(effect=effect, reason=step.reason))
            continue
        if stopped:
            report.skipped.append(
                SkippedStep(
                    effect=effect, reason="not attempted: an earlier inverse failed"
                )
            )
            continue
        ok = yield from _undo_one(step, policies, registry, serde, rollback_id, report)
        if not ok and policies.on_failure == "stop":
            stopped = True

    if report.failures:
        failed = report.finish("failed", _failure_message(report))
        return (yield from _save(failed, serde))
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
            "rollback_id": rollback_id,
        }
        new_config: RunnableConfig = yield Restore(restore, mark)
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
    rollback_id: str,
    report: _ReportBuilder,
) -> Generator[Any, Any, bool]:
    effect = step.effect
    definition = registry.require(effect.tool, effect_id=effect.id)
    claimed = yield Update(
        effect.id,
        {
            "status": EffectStatus.COMPENSATING.value,
            "undo_attempts": effect.undo_attempts + 1,
            "rollback_id": rollback_id,
            "updated_at": utcnow(),
        },
        expect=_CLAIMABLE,
    )
    if not claimed:
        report.skipped.append(
            SkippedStep(effect=effect, reason="its status changed since planning")
        )
        return True
    current: Any = None
    if definition.observe is not None and policies.on_conflict != "force":
        observed: Outcome = yield Observe(definition.observe, effect.args)
        current = normalize(serde, observed.value) if observed.error is None else None
        drifted = observed.error is not None or (
            effect.status is not EffectStatus.PENDING and current != effect.after
        )
        if drifted:
            # Changed between planning and now: release the claim as it was.
            yield Update(
                effect.id,
                {"status": effect.status.value, "updated_at": utcnow()},
                expect=(EffectStatus.COMPENSATING.value,),
            )
            why = (
                f"observe() raised {observed.error!r}"
                if observed.error is not None
                else f"the target changed since planning (found {current!r})"
            )
            report.conflicts.append(SkippedStep(effect=effect, reason=why))
            return True
    args = None
    if definition.undo_args is not None:
        args = definition.undo_args(effect)
    claimed_effect = effect.model_copy(
        update={
            "status": EffectStatus.COMPENSATING,
            "undo_attempts": effect.undo_attempts + 1,
            "rollback_id": rollback_id,
        }
    )
    outcome: Outcome = yield Undo(
        claimed_effect, definition.undo, args, timeout=policies.inverse_timeout
    )
    if isinstance(outcome.error, InverseTimeoutError):
        # It may still take effect: keep the claim (`compensating`), so no
        # rerun starts it again unless `observe` or an operator settles it.
        error = (
            f"{outcome.error}; it may still take effect, so the effect stays "
            "'compensating': check the target, then saver.resolve_effect(config, "
            f"{effect.id!r}, compensated=True|False)"
        )
        yield _mark(
            effect,
            EffectStatus.COMPENSATING,
            serde,
            rollback_id,
            {"error": error, "timed_out": True},
        )
        report.failures.append(FailedStep(effect=claimed_effect, error=error))
        return False
    if outcome.error is not None:
        error = f"{type(outcome.error).__name__}: {outcome.error}"
        yield _mark(
            effect,
            EffectStatus.COMPENSATION_FAILED,
            serde,
            rollback_id,
            {"error": error},
        )
        report.failures.append(FailedStep(effect=claimed_effect, error=error))
        return False
    yield _mark(
        effect,
        EffectStatus.COMPENSATED,
        serde,
        rollback_id,
        {"result": _storable(serde, outcome.value), "current": current},
    )
    report.undone.append(
        UndoneStep(
            effect=claimed_effect,
            result=outcome.value,
            description=describe_undo(effect, outcome.value),
        )
    )
    return True


def _mark(
    effect: Effect,
    status: EffectStatus,
    serde: SerializerProtocol,
    rollback_id: str,
    content: Mapping[str, Any],
    *,
    expect: tuple[str, ...] = (EffectStatus.COMPENSATING.value,),
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


def _storable(serde: SerializerProtocol, value: Any) -> Any:
    try:
        serde.dumps_typed(value)
    except Exception:
        return repr(value)
    return value


def _failure_message(report: _ReportBuilder) -> str:
    first = report.failures[0]
    return (
        f"The inverse of {first.effect.tool} (#{first.effect.seq}) failed: "
        f"{first.error}. The state was not restored."
    )


def _save(
    report: RollbackReport, serde: SerializerProtocol
) -> Generator[Any, Any, RollbackReport]:
    record = _ReportBuilder.record_of(report)
    try:
        type_, blob = serde.dumps_typed(report.model_dump())
    except Exception:
        type_, blob = serde.dumps_typed({"text": str(report)})
    record.update(report_type=type_, report=blob)
    yield SaveRollback(record)
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


def skip_ids(values: Iterable[str] | None) -> frozenset[str]:
    """Normalise a collection of effect ids."""
    return frozenset(str(v) for v in values or ())


# --- public entry points --------------------------------------------------------


def plan_rollback(
    graph: Any,
    config: RunnableConfig,
    *,
    to: CheckpointRef,
    registry: ToolRegistry | None = None,
) -> RollbackPlan:
    """What `rollback(graph, config, to=...)` would do, without doing anything.

    Args:
        graph: The compiled graph, whose checkpointer is a rollback saver.
        config: Names the thread (`configurable.thread_id`).
        to: The target: a checkpoint id, a config carrying one, or a
            `StateSnapshot` (e.g. from `graph.get_state_history(config)`).
        registry: Where to find inverses; defaults to the saver's.

    Raises:
        CheckpointNotFoundError: The target is not in the thread.
        NotAnAncestorError: The target is not on the path behind the head.

    Example:
        ```python
        plan = plan_rollback(graph, config, to=snapshot)
        print(plan)   # one line per effect: undo / skip / conflict / ...
        ```
    """
    saver, thread_id, target = resolve(graph, config, to)
    flow = plan_flow(
        thread_id,
        target,
        registry=registry if registry is not None else saver.registry,
        serde=saver.serde,
    )
    plan: RollbackPlan = run_sync(flow, saver)
    return plan


async def aplan_rollback(
    graph: Any,
    config: RunnableConfig,
    *,
    to: CheckpointRef,
    registry: ToolRegistry | None = None,
) -> RollbackPlan:
    """Async `plan_rollback`."""
    saver, thread_id, target = resolve(graph, config, to)
    flow = plan_flow(
        thread_id,
        target,
        registry=registry if registry is not None else saver.registry,
        serde=saver.serde,
    )
    plan: RollbackPlan = await run_async(flow, saver)
    return plan


def rollback(
    graph: Any,
    config: RunnableConfig,
    *,
    to: CheckpointRef,
    on_irreversible: OnIrreversible = "skip",
    on_conflict: OnConflict = "abort",
    on_failure: OnFailure = "stop",
    inverse_timeout: float | None = None,
    skip: Iterable[str] = (),
    registry: ToolRegistry | None = None,
    progress: Progress | None = None,
) -> RollbackReport:
    """Undo every effect after checkpoint `to`, newest first, then restore the state.

    The state is restored as a new head checkpoint that copies `to` (the
    history after `to` stays readable). Works with runs made with
    durability "sync" or "async"; with "exit", roll back whole runs (to the
    checkpoint a run started from).

    Args:
        graph: The compiled graph, whose checkpointer is a rollback saver.
        config: Names the thread (`configurable.thread_id`).
        to: The target: a checkpoint id, a config carrying one, or a
            `StateSnapshot`.
        on_irreversible: "skip" (default) leaves irreversible and undeclared
            effects and reports them; "abort" refuses before undoing anything.
        on_conflict: "abort" (default) refuses before undoing anything when a
            target changed since the agent touched it; "skip" leaves those
            effects; "force" undoes them anyway.
        on_failure: "stop" (default) stops at the first inverse that raises,
            leaves the state as it is and the ledger resumable (rolling back
            again continues there); "continue" runs the other inverses first.
        inverse_timeout: Seconds an inverse may take before it counts as failed.
        skip: Effect ids to leave alone.
        registry: Where to find inverses; defaults to the saver's.
        progress: Called after each inverse with its `Effect` and whether it
            succeeded (the CLI shows progress with it).

    Returns:
        The `RollbackReport`; check `report.ok` (or call
        `report.raise_for_status()`).

    Raises:
        CheckpointNotFoundError: The target is not in the thread.
        NotAnAncestorError: The target is not on the path behind the head.
        RollbackInProgressError: Another rollback holds the thread.
        UnregisteredToolError: An effect's tool is not declared in the
            registry (raised before anything is undone).

    Example:
        ```python
        history = list(graph.get_state_history(config))
        report = rollback(graph, config, to=history[-2])
        print(report)
        ```
    """
    policies = Policies(
        on_irreversible=on_irreversible,
        on_conflict=on_conflict,
        on_failure=on_failure,
        inverse_timeout=inverse_timeout,
        skip=skip_ids(skip),
    )
    saver, thread_id, target = resolve(graph, config, to)
    registry = registry if registry is not None else saver.registry
    holder = LockHolder()
    started = datetime.now(UTC)
    saver._lock_thread(thread_id, holder)
    try:
        plan: RollbackPlan = run_sync(
            plan_flow(thread_id, target, registry=registry, serde=saver.serde), saver
        )
        flow = execute_flow(
            plan,
            policies=policies,
            registry=registry,
            serde=saver.serde,
            rollback_id=new_rollback_id(),
            restore=checkpoint_config(thread_id, target),
            started_at=started,
        )
        report: RollbackReport = run_sync(flow, saver, graph=graph, progress=progress)
        return report
    finally:
        saver._unlock_thread(thread_id, holder)


async def arollback(
    graph: Any,
    config: RunnableConfig,
    *,
    to: CheckpointRef,
    on_irreversible: OnIrreversible = "skip",
    on_conflict: OnConflict = "abort",
    on_failure: OnFailure = "stop",
    inverse_timeout: float | None = None,
    skip: Iterable[str] = (),
    registry: ToolRegistry | None = None,
    progress: Progress | None = None,
) -> RollbackReport:
    """Async `rollback`: async inverses are awaited, sync ones run in a thread."""
    policies = Policies(
        on_irreversible=on_irreversible,
        on_conflict=on_conflict,
        on_failure=on_failure,
        inverse_timeout=inverse_timeout,
        skip=skip_ids(skip),
    )
    saver, thread_id, target = resolve(graph, config, to)
    registry = registry if registry is not None else saver.registry
    holder = LockHolder()
    started = datetime.now(UTC)
    await saver._alock_thread(thread_id, holder)
    try:
        plan: RollbackPlan = await run_async(
            plan_flow(thread_id, target, registry=registry, serde=saver.serde), saver
        )
        flow = execute_flow(
            plan,
            policies=policies,
            registry=registry,
            serde=saver.serde,
            rollback_id=new_rollback_id(),
            restore=checkpoint_config(thread_id, target),
            started_at=started,
        )
        report: RollbackReport = await run_async(
            flow, saver, graph=graph, progress=progress
        )
        return report
    finally:
        await saver._aunlock_thread(thread_id, holder)


CheckpointRef = str | Mapping[str, Any] | StateSnapshot


def checkpoint_config(thread_id: str, checkpoint_id: str) -> RunnableConfig:
    """The config of a root checkpoint."""
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": checkpoint_id,
        }
    }


def resolve(
    graph: Any, config: RunnableConfig, to: CheckpointRef
) -> tuple[BaseRollbackSaver, str, str]:
    """The saver, thread id and target checkpoint id a rollback call names.

    Raises:
        InvalidConfigError: The graph has no rollback saver, the config names
            no thread, or `to` names no root checkpoint.
        CheckpointNotFoundError: `to` is a config of another thread.
    """
    saver = getattr(graph, "checkpointer", None)
    if not isinstance(saver, BaseRollbackSaver):
        raise InvalidConfigError(
            f"The graph's checkpointer is {type(saver).__name__}, not a rollback "
            "saver, so it has no ledger to roll back. Fix: compile the graph "
            "with one, e.g. `builder.compile(checkpointer=SqliteRollbackSaver"
            "(...))`."
        )
    thread_id = thread_id_of(config)
    if isinstance(to, StateSnapshot):
        to = to.config
    if isinstance(to, str):
        return saver, thread_id, to
    if isinstance(to, Mapping):
        configurable = to.get("configurable") or {}
        checkpoint_id = configurable.get("checkpoint_id")
        if not checkpoint_id:
            raise InvalidConfigError(
                "to= is a config without `configurable.checkpoint_id`. Fix: pass "
                "a checkpoint id, a checkpoint's config, or a StateSnapshot from "
                "`graph.get_state_history(config)`."
            )
        if configurable.get("checkpoint_ns"):
            raise InvalidConfigError(
                f"to= names a checkpoint of the subgraph namespace "
                f"{configurable['checkpoint_ns']!r}; a rollback targets the root "
                "graph's checkpoints. Fix: pick the root checkpoint the subgraph "
                "task started from (`graph.get_state_history(config)`)."
            )
        other = configurable.get("thread_id")
        if other is not None and str(other) != thread_id:
            raise CheckpointNotFoundError(
                checkpoint_id=str(checkpoint_id),
                thread_id=thread_id,
                found_in=[str(other)],
            )
        return saver, thread_id, str(checkpoint_id)
    raise InvalidConfigError(
        f"to= is a {type(to).__name__}. Fix: pass a checkpoint id (str), a "
        "checkpoint's config, or a StateSnapshot."
    )
