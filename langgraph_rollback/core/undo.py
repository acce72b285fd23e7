"""Undoing one effect: claim it, check its target, run its inverse, verify, mark.

Each inverse is claimed in the ledger (`compensating`, naming the rollback's
process as owner) before it runs and marked `compensated` or
`compensation_failed` after, so none runs twice and a rerun continues where
an interrupted rollback stopped (DESIGN.md section 3, point 5):

- its arguments (`undo_args`) are built before the claim: one that raises is
  a failure of that effect, which is left as it was;
- right before the inverse, `observe` (if declared, and the effect's `after`
  was observed) checks the target again: a target that changed since
  planning is drift (for an inverse run again over what an earlier one left
  part-way, since what that left), unless this rollback's own inverses changed it (a
  container, such as a git step, whose nested effects were just undone);
- a timed-out inverse keeps its claim while it may still be running; when
  it ends, its outcome is recorded (`Undo.late`);
- after the inverse of a `reversible` effect with `observe`, the target must
  read as `before` again, whatever the inverse returned, or the inverse
  failed (unverified).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.errors import GraphBubbleUp

from langgraph_rollback._models import Effect, EffectStatus, Reversibility
from langgraph_rollback.core.codec import (
    encode_payload,
    normalize,
    same,
    storable_or,
)
from langgraph_rollback.core.ledger import utcnow
from langgraph_rollback.core.ops import Flow, Notify, Observe, Outcome, Undo, Update, do
from langgraph_rollback.core.plan import PlannedStep
from langgraph_rollback.core.policies import Policies
from langgraph_rollback.core.registry import ToolDefinition, ToolRegistry
from langgraph_rollback.core.report import (
    FailedStep,
    SkippedStep,
    UndoneStep,
    describe_undo,
)
from langgraph_rollback.core.voice import Voice, resolve_fix

__all__ = [
    "CLAIMABLE",
    "COMPENSATING",
    "InverseTimeoutError",
    "Run",
    "UndoResult",
    "mark",
    "undo_one",
]

CLAIMABLE = (
    EffectStatus.APPLIED.value,
    EffectStatus.COMPENSATION_FAILED.value,
    EffectStatus.COMPENSATING.value,
    EffectStatus.PENDING.value,
)
COMPENSATING = (EffectStatus.COMPENSATING.value,)

UndoResult = Literal["undone", "failed", "drifted", "skipped"]


class InverseTimeoutError(TimeoutError):
    """An inverse did not finish within `inverse_timeout`; it may still land."""


@dataclass
class Run:
    """One rollback's execution: its policies and what it has done so far."""

    policies: Policies
    registry: ToolRegistry
    serde: SerializerProtocol
    rollback_id: str
    owner: str | None
    """The rollback's process (host, pid, start time), recorded on claims."""
    undone: list[UndoneStep] = field(default_factory=list)
    skipped: list[SkippedStep] = field(default_factory=list)
    conflicts: list[SkippedStep] = field(default_factory=list)
    failures: list[FailedStep] = field(default_factory=list)
    already_compensated: list[Effect] = field(default_factory=list)
    nested: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Container effect id -> the ids of the effects recorded inside its call."""
    voice: Voice = Voice.PYTHON
    """Whose words the report's fixes use."""

    def undid_around(self, effect: Effect) -> bool:
        """Whether this rollback undid the container `effect` ran inside, or an
        effect nested in it: then its target changed by this rollback's hand."""
        inside = self.nested.get(effect.id, frozenset())
        return any(
            step.effect.id in inside or step.effect.id == effect.inside
            for step in self.undone
        )


def undo_one(step: PlannedStep, run: Run) -> Flow[UndoResult]:
    """Claim, re-check, run and verify one inverse; once its outcome is
    recorded, tell the caller's progress callback."""
    result = yield from _undo(step, run)
    if result in ("undone", "failed"):
        yield Notify(step.effect, result == "undone")
    return result


def _undo(step: PlannedStep, run: Run) -> Flow[UndoResult]:
    effect = step.effect
    definition = run.registry.require(effect.tool, effect_id=effect.id)
    try:
        args = definition.undo_args(effect) if definition.undo_args else None
    except GraphBubbleUp:
        raise  # it asks a human (`interrupt()`): nothing was claimed yet
    except Exception as exc:
        error = f"undo_args raised {type(exc).__name__}: {exc}; the inverse did not run"
        run.failures.append(FailedStep(effect=effect, error=error))
        return "failed"
    claim = {
        "status": EffectStatus.COMPENSATING.value,
        "undo_attempts": effect.undo_attempts + 1,
        "rollback_id": run.rollback_id,
        "updated_at": utcnow(),
        "owner": run.owner,
    }
    # The ops of every undone effect are yielded bare, not through `do`: a
    # rollback of thousands of effects makes a generator less for each.
    claimed: bool = yield Update(effect.id, claim, expect=CLAIMABLE)
    if not claimed:
        reason = "its status changed since planning"
        run.skipped.append(SkippedStep(effect=effect, reason=reason))
        return "skipped"
    claimed_effect = effect.model_copy(
        update={
            "status": EffectStatus.COMPENSATING,
            "undo_attempts": effect.undo_attempts + 1,
            "rollback_id": run.rollback_id,
            "owner": run.owner,
        }
    )
    drift = yield from _drift(step, definition, run)
    if isinstance(drift, _Restored):
        # Its container's inverse (run just before, by this rollback) already
        # put its target back: running its own inverse would act on nothing.
        content: dict[str, Any] = {"result": None, "notes": [drift.note]}
        yield from do(mark(effect, EffectStatus.COMPENSATED, run, content))
        description = f"{describe_undo(effect, None)}; {drift.note}"
        run.undone.append(
            UndoneStep(effect=claimed_effect, result=None, description=description)
        )
        return "undone"
    if drift is not None:
        # Changed between planning and now: release the claim as it was.
        release = {"status": effect.status.value, "updated_at": utcnow()}
        yield from do(Update(effect.id, release, expect=COMPENSATING))
        run.conflicts.append(SkippedStep(effect=effect, reason=drift))
        return "drifted"
    timeout = run.policies.inverse_timeout
    late = _late_mark(effect, run)
    outcome: Outcome = yield Undo(claimed_effect, definition.undo, args, timeout, late)
    if isinstance(outcome.error, GraphBubbleUp):
        # The inverse paused the graph (`interrupt()` asks a human): it has
        # not acted yet. Release the claim; the resumed node runs it again.
        release = {"status": effect.status.value, "updated_at": utcnow()}
        yield from do(Update(effect.id, release, expect=COMPENSATING))
        raise outcome.error
    if outcome.error is not None:
        yield from _record_failed_inverse(effect, claimed_effect, outcome.error, run)
        return "failed"
    unverified = yield from _verify(effect, definition, run)
    if unverified is not None:
        content = {"error": unverified, "unverified": True}
        yield from do(mark(effect, EffectStatus.COMPENSATION_FAILED, run, content))
        run.failures.append(FailedStep(effect=claimed_effect, error=unverified))
        return "failed"
    result = _kept_result(run, outcome.value)
    yield mark(effect, EffectStatus.COMPENSATED, run, {"result": result})
    description = describe_undo(effect, outcome.value)
    if step.resumes:
        description += (
            f"; run again over what an earlier inverse left ({_short(step.resumed_at)})"
        )
    run.undone.append(
        UndoneStep(effect=claimed_effect, result=outcome.value, description=description)
    )
    return "undone"


@dataclass(frozen=True)
class _Restored:
    """The target already reads as before: the container's inverse did it."""

    note: str


def _drift(
    step: PlannedStep, definition: ToolDefinition, run: Run
) -> Flow[str | _Restored | None]:
    """Why the target must not be undone now (it changed since planning), or
    None; `_Restored` when its container's inverse already restored it."""
    effect = step.effect
    if definition.observe is None:
        return None
    container = next(
        (s.effect for s in run.undone if s.effect.id == effect.inside), None
    )
    if container is not None and effect.status is not EffectStatus.PENDING:
        observed = yield from do(Observe(definition.observe, effect.args, effect))
        if observed.error is None and same(
            normalize(run.serde, observed.value), effect.before
        ):
            return _Restored(
                f"restored by the inverse of {container.tool} (#{container.seq})"
            )
        return None  # this rollback's own inverse changed it
    if run.policies.on_conflict == "force":
        return None
    if effect.status is EffectStatus.PENDING or not effect.after_observed:
        return None  # nothing to compare with: the plan decided
    if run.undid_around(effect):
        return None  # this rollback's own inverses changed it
    observed = yield from do(Observe(definition.observe, effect.args))
    if observed.error is not None:
        return f"observe() raised {observed.error!r}; cannot tell whether the target changed"
    current = normalize(run.serde, observed.value)
    if same(current, step.resumed_at if step.resumes else effect.after):
        return None
    return f"the target changed since planning (found {_short(current)})"


def _verify(effect: Effect, definition: ToolDefinition, run: Run) -> Flow[str | None]:
    """Why a reversible inverse did not restore its target, or None.

    Only `reversible` effects promise the prior state exactly; a compensable
    one's counter-action (a refund) leaves a different state on purpose.
    """
    if definition.observe is None or definition.kind is not Reversibility.REVERSIBLE:
        return None
    observed = yield from do(Observe(definition.observe, effect.args, effect))
    if observed.error is not None:
        error = observed.error
        return (
            f"compensation unverified: observe() raised {type(error).__name__}: "
            f"{error} after the inverse, so it cannot be told the target is back"
        )
    current = normalize(run.serde, observed.value)
    part = definition.restores or _whole
    if same(part(current), part(effect.before)):
        return None
    return (
        "compensation unverified: after the inverse the target reads "
        f"{_short(current)}, not {_short(effect.before)} as before the call"
    )


def _record_failed_inverse(
    effect: Effect, claimed: Effect, error: BaseException, run: Run
) -> Flow[None]:
    """Mark an inverse that raised or timed out, and report it."""
    if isinstance(error, InverseTimeoutError):
        # It may still take effect: keep the claim (`compensating`), so no
        # rerun starts it again while it runs; when it ends, `Undo.late`
        # records its outcome.
        text = (
            f"{error}; it may still take effect, so the effect stays "
            "'compensating' while it runs and its outcome is recorded when it "
            "ends; if the process stops first, check the target, then record it "
            "with " + resolve_fix(run.voice, effect.id, "inverse")
        )
        status, content = EffectStatus.COMPENSATING, {"error": text, "timed_out": True}
    else:
        text = f"{type(error).__name__}: {error}"
        status, content = EffectStatus.COMPENSATION_FAILED, {"error": text}
    yield from do(mark(effect, status, run, content))
    run.failures.append(FailedStep(effect=claimed, error=text))


def _late_mark(effect: Effect, run: Run) -> Callable[[Outcome], Update]:
    """The update that records an abandoned (timed-out) inverse's outcome."""

    def late(outcome: Outcome) -> Update:
        if outcome.error is not None:
            error = outcome.error
            content = {
                "error": f"{type(error).__name__}: {error} (after its timeout)",
                "late": True,
            }
            return mark(effect, EffectStatus.COMPENSATION_FAILED, run, content)
        result = _kept_result(run, outcome.value)
        content = {"result": result, "late": True}
        return mark(effect, EffectStatus.COMPENSATED, run, content)

    return late


def mark(
    effect: Effect,
    status: EffectStatus,
    run: Run,
    content: Mapping[str, Any],
    *,
    expect: tuple[str, ...] = COMPENSATING,
) -> Update:
    """The `Update` that records an inverse's outcome (the inverse has
    ended, so the row names no `owner` any more)."""
    payload = encode_payload(run.serde, dict(content), tool=effect.tool)
    now = utcnow()
    changes: dict[str, Any] = {
        "status": status.value,
        "undo_type": payload[0],
        "undo": payload[1],
        "rollback_id": run.rollback_id,
        "updated_at": now,
        "owner": None,
    }
    if status is EffectStatus.COMPENSATED:
        changes["compensated_at"] = now
    return Update(effect.id, changes, expect=expect)


_UNSTORABLE = object()
RESULT_TEXT_LIMIT = 2000
"""How much of the text of an inverse's result the ledger keeps when it
cannot store the result itself."""


def _kept_result(run: Run, value: Any) -> Any:
    """An inverse's result as the ledger keeps it: itself, else its text, cut
    (a result too large to store would make recording the undo fail)."""
    kept = storable_or(run.serde, value, _UNSTORABLE)
    return _short(value, RESULT_TEXT_LIMIT) if kept is _UNSTORABLE else kept


def _whole(value: Any) -> Any:
    return value


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
