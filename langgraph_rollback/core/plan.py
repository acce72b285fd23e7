"""The rollback plan: which effects lie after a checkpoint, and what to do with each.

`plan_flow` is I/O-free: it yields storage reads and observations (see
`_ops`) and returns a `RollbackPlan`. Planning has no side effects: it reads
checkpoint ids and parent ids (never whole checkpoints), the ledger rows in
the target's subtree, and calls `observe` functions, which only read.

What "after checkpoint X" means:

- walk `parent` links from the head up to X (or to a checkpoint a previous
  rollback restored as a copy of X); that walk is the *path*;
- an effect belongs to the checkpoint its outermost task started from (its
  `root_checkpoint_id`, so subgraph effects count), or, when that checkpoint
  was never persisted (durability "async" or "exit"), to the newest persisted
  checkpoint when its intent was written (`base_checkpoint_id`);
- effects belonging to a checkpoint on the path (X's own tasks included) are
  undone, newest first by `seq`;
- effects belonging to X's other descendants lie on abandoned branches: they
  are listed as orphans and left alone.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from pydantic import BaseModel, ConfigDict

from langgraph_rollback._errors import CheckpointNotFoundError, NotAnAncestorError
from langgraph_rollback._models import Effect, EffectStatus, Reversibility
from langgraph_rollback.core.codec import normalize
from langgraph_rollback.core.ledger import LedgerRow, effect_from_row
from langgraph_rollback.core.ops import (
    CheckpointLink,
    ExistingCheckpoints,
    FindCheckpoint,
    Flow,
    Observe,
    ReadAncestry,
    ReadHead,
    ReadSubtree,
    Select,
    do,
)
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.registry import ToolDefinition, ToolRegistry
from langgraph_rollback.core.report import call_text
from langgraph_rollback.core.voice import Voice, on_path_fix

__all__ = ["Decision", "PlannedStep", "RollbackPlan", "plan_flow"]

_LIVE = frozenset(
    {
        EffectStatus.PENDING,
        EffectStatus.APPLIED,
        EffectStatus.COMPENSATING,
        EffectStatus.COMPENSATION_FAILED,
    }
)


class Decision(StrEnum):
    """What a rollback will do with one effect."""

    UNDO = "undo"
    """Run its inverse."""
    SKIP = "skip"
    """Leave it: irreversible, undeclared, never applied, or outcome unknown."""
    CONFLICT = "conflict"
    """Its `observe` says the target changed since the agent touched it."""
    ALREADY_COMPENSATED = "already_compensated"
    """An earlier rollback undid it."""
    MISSING_INVERSE = "missing_inverse"
    """Its tool is not declared in the registry in use."""


class PlannedStep(BaseModel):
    """One effect in a plan, with its decision and why."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    effect: Effect
    decision: Decision
    reason: str
    current: Any = None
    """The target's state now, when the tool declares `observe`."""
    skip_kind: str | None = None
    """For `skip`: "irreversible", "unknown", "not_applied" or "unresolved"."""


class RollbackPlan(BaseModel):
    """What a rollback to `target_checkpoint_id` would do, computed without acting."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    thread_id: str
    target_checkpoint_id: str
    head_checkpoint_id: str
    path: list[str]
    """Checkpoint ids from the head back to the target (or its restored copy)."""
    reached_copy: str | None = None
    """The checkpoint on the path that a previous rollback restored as a copy
    of the target, when the walk met it instead of the target itself."""
    target_copies: list[str] = []
    """What a new copy of the target stands for: the target, and whatever it
    is itself a copy of."""
    steps: list[PlannedStep]
    """Every effect after the target on the path, newest first."""
    orphans: list[Effect]
    """Live effects on abandoned branches after the target, left alone."""
    created_at: datetime

    @property
    def to_undo(self) -> list[PlannedStep]:
        """Steps whose inverse will run."""
        return [s for s in self.steps if s.decision is Decision.UNDO]

    @property
    def conflicts(self) -> list[PlannedStep]:
        """Steps whose target changed since the agent touched it."""
        return [s for s in self.steps if s.decision is Decision.CONFLICT]

    @property
    def skipped(self) -> list[PlannedStep]:
        """Steps left as they are."""
        return [s for s in self.steps if s.decision is Decision.SKIP]

    @property
    def already_compensated(self) -> list[PlannedStep]:
        """Steps an earlier rollback undid."""
        return [s for s in self.steps if s.decision is Decision.ALREADY_COMPENSATED]

    @property
    def unresolved(self) -> list[PlannedStep]:
        """Steps whose outcome (of the call, or of an earlier inverse) is unknown."""
        return [s for s in self.steps if s.skip_kind == "unresolved"]

    @property
    def at_target(self) -> bool:
        """Whether the head already is the target (or a restored copy of it)."""
        return self.head_checkpoint_id in (
            self.target_checkpoint_id,
            self.reached_copy,
        )

    def __str__(self) -> str:
        lines = [
            f"Rollback plan for thread {self.thread_id!r}: back to checkpoint "
            f"{self.target_checkpoint_id} ({len(self.path)} checkpoint(s) on the "
            f"path, {len(self.steps)} effect(s) after it)."
        ]
        if self.reached_copy:
            lines.append(
                f"  (the path reaches {self.reached_copy}, an earlier rollback's "
                "copy of the target)"
            )
        for step in self.steps:
            lines.append(
                f"  {step.decision.value:<19} #{step.effect.seq} "
                f"{call_text(step.effect)}: {step.reason}"
            )
        if not self.steps:
            lines.append("  nothing to undo")
        for effect in self.orphans:
            lines.append(
                f"  orphan              #{effect.seq} {call_text(effect)}: on an "
                "abandoned branch, left as it is"
            )
        return "\n".join(lines)


def plan_flow(
    thread_id: str,
    target: str,
    *,
    registry: ToolRegistry,
    serde: SerializerProtocol,
    head: str | None = None,
    voice: Voice = Voice.PYTHON,
) -> Flow[RollbackPlan]:
    """Compute the plan to roll `thread_id` back to checkpoint `target`.

    Args:
        head: Where the walk starts; defaults to the thread's newest
            checkpoint. A rollback node passes the checkpoint its own task
            started from.

    Raises:
        CheckpointNotFoundError: `target` is not a root checkpoint of the
            thread (the error says which thread holds it, if any).
        NotAnAncestorError: `target` is in the thread but not on the head's path.
    """
    head, chain = yield from _walk(thread_id, target, head, voice)
    path = [link.checkpoint_id for link in chain]
    subtree = yield from do(ReadSubtree(thread_id, path[-1]))
    region = {link.checkpoint_id for link in subtree} | set(path)
    # The thread's first checkpoint is in the region: effects recorded before
    # any checkpoint was stored (no base) belong to it.
    from_start = any(link.parent_id is None for link in chain)
    rows = yield from do(
        Select(
            EffectQuery(
                thread_id=thread_id,
                anchors=tuple(sorted(region)),
                unanchored=from_start,
            )
        )
    )
    # An effect whose root checkpoint lies outside the region belongs to it
    # only when that checkpoint was never persisted (then its base counts).
    outside = sorted({r.root_checkpoint_id for r in rows} - region)
    persisted: set[str] = set()
    if outside:
        persisted = yield from do(ExistingCheckpoints(thread_id, outside))
    mine, orphans = _assign(rows, path, region, persisted, from_start, serde)
    steps: list[PlannedStep] = []
    predicted: dict[Any, Any] = {}
    for row in mine:
        effect = effect_from_row(row, serde)
        step = yield from _decide(effect, registry.get(effect.tool), serde, predicted)
        steps.append(step)
    last = chain[-1]
    return RollbackPlan(
        thread_id=thread_id,
        target_checkpoint_id=target,
        head_checkpoint_id=head,
        path=path,
        reached_copy=last.checkpoint_id if last.checkpoint_id != target else None,
        target_copies=[target, *(c for c in last.copies if c != target)],
        steps=steps,
        orphans=orphans,
        created_at=datetime.now(UTC),
    )


def _walk(
    thread_id: str, target: str, head: str | None, voice: Voice
) -> Flow[tuple[str, list[CheckpointLink]]]:
    """The head, and the links from it back to the target (or a copy of it)."""
    if head is None:
        head = yield from do(ReadHead(thread_id))
        if head is None:
            owners = yield from do(FindCheckpoint(target))
            raise CheckpointNotFoundError(
                checkpoint_id=target, thread_id=thread_id, found_in=owners
            )
    chain = yield from do(ReadAncestry(thread_id, head, target))
    if not chain:
        raise CheckpointNotFoundError(
            f"Thread {thread_id!r} has no checkpoint {head!r} to start the walk "
            "from. Fix: run the graph with durability='sync' so each step's "
            "checkpoint is stored before the next one runs.",
            checkpoint_id=head,
            thread_id=thread_id,
        )
    if not chain[-1].stands_for(target):
        owners = yield from do(FindCheckpoint(target))
        if thread_id in owners:
            raise NotAnAncestorError(
                checkpoint_id=target,
                thread_id=thread_id,
                head_checkpoint_id=head,
                fix=None if voice is Voice.PYTHON else on_path_fix(voice),
            )
        raise CheckpointNotFoundError(
            checkpoint_id=target,
            thread_id=thread_id,
            found_in=[o for o in owners if o != thread_id],
        )
    return head, chain


def _assign(
    rows: list[LedgerRow],
    path: list[str],
    region: set[str],
    persisted: set[str],
    from_start: bool,
    serde: SerializerProtocol,
) -> tuple[list[LedgerRow], list[Effect]]:
    """Split the region's rows into those on the path and live orphans."""
    on_path = set(path)
    mine: list[LedgerRow] = []
    orphans: list[Effect] = []
    for row in rows:
        if row.root_checkpoint_id in persisted and row.root_checkpoint_id not in region:
            continue
        anchor = _anchor(row, path[-1], region, from_start)
        if anchor is not None and anchor in on_path:
            mine.append(row)
        elif EffectStatus(row.status) in _LIVE:
            orphans.append(effect_from_row(row, serde))
    return mine, orphans


def _anchor(
    row: LedgerRow, first: str, region: set[str], from_start: bool
) -> str | None:
    """The checkpoint an effect belongs to (None: before the first one stored)."""
    if row.root_checkpoint_id in region:
        return row.root_checkpoint_id
    if row.base_checkpoint_id is not None:
        return row.base_checkpoint_id
    # Recorded before any checkpoint of the thread was stored, in the thread's
    # first run, whose checkpoint ids come from one process and sort by time
    # (uuid6): it lies after the first stored checkpoint unless it is older
    # than it (durability "exit" stores only the run's end); such an effect,
    # of a run that stopped before storing any, is reported and left alone.
    if from_start and row.root_checkpoint_id > first:
        return first
    return None


_NOT_APPLIED = {
    EffectStatus.BLOCKED: "blocked by the guard policy; it never ran",
    EffectStatus.INTERRUPTED: "interrupted before it acted",
}


def _decide(
    effect: Effect,
    definition: ToolDefinition | None,
    serde: SerializerProtocol,
    predicted: dict[Any, Any],
) -> Flow[PlannedStep]:
    """What to do with one effect on the path."""
    status = effect.status
    if status is EffectStatus.COMPENSATED:
        return PlannedStep(
            effect=effect,
            decision=Decision.ALREADY_COMPENSATED,
            reason="already undone by an earlier rollback",
        )
    if status in _NOT_APPLIED:
        return _skip(effect, _NOT_APPLIED[status], "not_applied")
    if status is EffectStatus.FAILED:
        why = f"the call failed ({effect.error}); nothing was applied"
        return _skip(effect, why, "not_applied")
    policy = _by_kind(effect, definition)
    if policy is not None:
        return policy
    assert definition is not None
    if definition.observe is not None:
        return (yield from _decide_observed(effect, definition, serde, predicted))
    return _decide_unobserved(effect, definition)


def _by_kind(effect: Effect, definition: ToolDefinition | None) -> PlannedStep | None:
    """The step for an effect its tool's kind decides: irreversible, undeclared,
    or no inverse in this registry; None when it can be undone."""
    kind = definition.kind if definition is not None else effect.kind
    if kind is Reversibility.IRREVERSIBLE:
        reason = (definition.reason if definition else None) or "cannot be undone"
        return _skip(effect, f"irreversible: {reason}", "irreversible")
    if kind is Reversibility.UNKNOWN:
        return _skip(
            effect, "undeclared tool: it is not known how to undo it", "unknown"
        )
    if definition is None or definition.undo is None:
        return PlannedStep(
            effect=effect,
            decision=Decision.MISSING_INVERSE,
            reason=(
                f"tool {effect.tool!r} is not declared in this registry; import "
                "the module that declares it (or pass its registry=)"
            ),
        )
    return None


def _decide_observed(
    effect: Effect,
    definition: ToolDefinition,
    serde: SerializerProtocol,
    predicted: dict[Any, Any],
) -> Flow[PlannedStep]:
    """Decide with the target's state now (the tool declares `observe`).

    `predicted` maps each target to what it will read once the newer effects
    on it are undone, so a chain of writes to one target is not a conflict.
    """
    assert definition.observe is not None
    observed = yield from do(Observe(definition.observe, effect.args, effect))
    if observed.error is not None:
        return PlannedStep(
            effect=effect,
            decision=Decision.CONFLICT,
            reason=(
                f"observe() raised {type(observed.error).__name__}: "
                f"{observed.error}; cannot tell whether the target changed"
            ),
        )
    current = normalize(serde, observed.value)
    key = target_key(definition, effect.args)
    expected_now = predicted.get(key, current)
    status = effect.status
    if status is EffectStatus.PENDING and expected_now == effect.before:
        # Intent without outcome, target unchanged: it never landed.
        return _skip(
            effect,
            "its outcome was never recorded and the target is unchanged "
            "since before the call: it did not land",
            "not_applied",
            current,
        )
    undoing = status in (EffectStatus.COMPENSATING, EffectStatus.COMPENSATION_FAILED)
    if undoing and expected_now == effect.before and expected_now != effect.after:
        # An earlier rollback's inverse took effect before it stopped.
        predicted[key] = effect.before
        return PlannedStep(
            effect=effect,
            decision=Decision.ALREADY_COMPENSATED,
            reason="an earlier rollback's inverse already restored it",
            current=current,
        )
    if (
        status is not EffectStatus.PENDING
        and effect.after_observed
        and expected_now != effect.after
    ):
        return PlannedStep(
            effect=effect,
            decision=Decision.CONFLICT,
            reason=(
                "the target changed since the agent touched it (expected "
                f"{_short(effect.after)}, found {_short(expected_now)})"
            ),
            current=current,
        )
    predicted[key] = effect.before
    note = ""
    if status is EffectStatus.PENDING:
        note = " (its outcome was never recorded, but the target changed: it landed)"
    return PlannedStep(
        effect=effect,
        decision=Decision.UNDO,
        reason=f"{definition.kind.value}; undo with {_fn_name(definition.undo)}{note}",
        current=current,
    )


def _decide_unobserved(effect: Effect, definition: ToolDefinition) -> PlannedStep:
    """Decide without `observe`: unknown outcomes stay unresolved."""
    if effect.status is EffectStatus.PENDING:
        return _skip(
            effect,
            "its outcome was never recorded and the tool has no observe= to "
            "check it: check the target, then saver.resolve_effect(config, "
            f"{effect.id!r}, applied=True|False)",
            "unresolved",
        )
    if effect.status is EffectStatus.COMPENSATING:
        return _skip(
            effect,
            "an earlier rollback started its inverse and stopped; whether the "
            "inverse took effect is unknown without observe=: check the target, "
            f"then saver.resolve_effect(config, {effect.id!r}, compensated=True|False)",
            "unresolved",
        )
    return PlannedStep(
        effect=effect,
        decision=Decision.UNDO,
        reason=f"{definition.kind.value}; undo with {_fn_name(definition.undo)}",
    )


def _skip(effect: Effect, reason: str, kind: str, current: Any = None) -> PlannedStep:
    return PlannedStep(
        effect=effect,
        decision=Decision.SKIP,
        reason=reason,
        current=current,
        skip_kind=kind,
    )


def target_key(definition: ToolDefinition, args: dict[str, Any]) -> Any:
    """Which target an effect touches, for chaining effects on one target.

    The parameters `observe` names in its signature identify the target
    (`def observe(path, **_)` makes `path` the target); with only `**kwargs`,
    all arguments do.
    """
    assert definition.observe is not None
    try:
        params = inspect.signature(definition.observe).parameters.values()
        named = [
            p.name
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name in args
        ]
    except (TypeError, ValueError):
        named = []
    names = named or sorted(args)
    return (id(definition.observe), tuple((n, repr(args.get(n))) for n in names))


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _fn_name(fn: Any) -> str:
    return str(getattr(fn, "name", None) or getattr(fn, "__name__", None) or repr(fn))
