"""Deciding, for one effect after the target, what a rollback does with it.

`decide` is I/O-free: it reads the effect's row and, when the tool declares
`observe`, yields one observation of the target. Its decisions: undo it,
skip it (irreversible, undeclared, never applied, outcome unknown), a
conflict (the target changed since the agent touched it), already undone,
or no inverse in this registry.
"""

from __future__ import annotations

import inspect
from enum import StrEnum
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from pydantic import BaseModel, ConfigDict

from langgraph_rollback._models import Effect, EffectStatus, Reversibility
from langgraph_rollback.core.codec import normalize, same
from langgraph_rollback.core.ops import Flow, Observe, do
from langgraph_rollback.core.registry import ToolDefinition
from langgraph_rollback.core.text import clip
from langgraph_rollback.core.voice import Voice, registry_fix, resolve_fix

__all__ = ["Decision", "PlannedStep", "decide", "skip", "target_key"]


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
    observed: bool = False
    """Whether `current` was read from the target (`observe` succeeded)."""
    resumes: bool = False
    """For `undo`: an earlier inverse acted in part, then failed or was cut
    off, leaving the target neither as before nor as after the call; the
    inverse runs again over what it left (`resumed_at`)."""
    resumed_at: Any = None
    """When `resumes`: what the target must still read right before the
    inverse runs again (once the newer effects on it are undone)."""


_NOT_APPLIED = {
    EffectStatus.BLOCKED: "blocked by the guard policy; it never ran",
    EffectStatus.INTERRUPTED: "interrupted before it acted",
}


def decide(
    effect: Effect,
    definition: ToolDefinition | None,
    serde: SerializerProtocol,
    predicted: dict[Any, Any],
    voice: Voice = Voice.PYTHON,
) -> Flow[PlannedStep]:
    """What to do with one effect on the path; reasons that name a fix use
    `voice`'s words."""
    status = effect.status
    if status is EffectStatus.COMPENSATED:
        return PlannedStep(
            effect=effect,
            decision=Decision.ALREADY_COMPENSATED,
            reason="already undone by an earlier rollback",
        )
    if status in _NOT_APPLIED:
        return skip(effect, _NOT_APPLIED[status], "not_applied")
    if status is EffectStatus.FAILED:
        why = f"the call failed ({effect.error}); nothing was applied"
        return skip(effect, why, "not_applied")
    policy = _by_kind(effect, definition, voice)
    if policy is not None:
        return policy
    assert definition is not None
    if definition.observe is not None:
        return (yield from _decide_observed(effect, definition, serde, predicted))
    return _decide_unobserved(effect, definition, voice)


def _by_kind(
    effect: Effect, definition: ToolDefinition | None, voice: Voice
) -> PlannedStep | None:
    """The step for an effect its tool's kind decides: irreversible, undeclared,
    or no inverse in this registry; None when it can be undone."""
    kind = _kind(effect, definition)
    if kind is Reversibility.IRREVERSIBLE:
        reason = (definition.reason if definition else None) or "cannot be undone"
        return skip(effect, f"irreversible: {reason}", "irreversible")
    if kind is Reversibility.UNKNOWN:
        return skip(
            effect, "undeclared tool: it is not known how to undo it", "unknown"
        )
    if definition is None or definition.undo is None:
        return PlannedStep(
            effect=effect,
            decision=Decision.MISSING_INVERSE,
            reason=(
                f"tool {effect.tool!r} is not declared in this registry; "
                + registry_fix(voice)
            ),
        )
    return None


def _kind(effect: Effect, definition: ToolDefinition | None) -> Reversibility:
    """How the effect can be undone. The row's own recorded kind decides for
    what was recorded as irreversible or undeclared (a tool declared later
    under the same name is not how that call is undone); a declaration made
    irreversible since is believed too."""
    if effect.kind in (Reversibility.IRREVERSIBLE, Reversibility.UNKNOWN):
        return effect.kind
    if definition is not None and definition.kind is Reversibility.IRREVERSIBLE:
        return Reversibility.IRREVERSIBLE
    return effect.kind


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
    if status is EffectStatus.PENDING and same(expected_now, effect.before):
        # Intent without outcome, target unchanged: it never landed.
        return skip(
            effect,
            "its outcome was never recorded and the target is unchanged "
            "since before the call: it did not land",
            "not_applied",
            current,
        ).model_copy(update={"observed": True})
    undoing = status in (EffectStatus.COMPENSATING, EffectStatus.COMPENSATION_FAILED)
    if undoing:
        earlier = _after_an_earlier_inverse(effect, definition, expected_now, current)
        if earlier is not None:
            predicted[key] = effect.before
            return earlier
    if (
        status is not EffectStatus.PENDING
        and effect.after_observed
        and not same(expected_now, effect.after)
    ):
        return PlannedStep(
            effect=effect,
            decision=Decision.CONFLICT,
            reason=changed_since(effect.after, expected_now),
            current=current,
            observed=True,
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
        observed=True,
    )


def _after_an_earlier_inverse(
    effect: Effect, definition: ToolDefinition, expected_now: Any, current: Any
) -> PlannedStep | None:
    """The step for an effect an earlier rollback claimed, when what the
    target reads settles it; None to decide as for any other effect."""
    if same(expected_now, effect.before) and not same(expected_now, effect.after):
        # An earlier rollback's inverse took effect before it stopped.
        return PlannedStep(
            effect=effect,
            decision=Decision.ALREADY_COMPENSATED,
            reason="an earlier rollback's inverse already restored it",
            current=current,
            observed=True,
        )
    if effect.after_observed and not same(expected_now, effect.after):
        # An earlier inverse acted in part, then raised or was cut off (its
        # call no longer runs: see `plan._still_running`): rolling back again
        # continues, so its inverse runs again over what it left.
        return PlannedStep(
            effect=effect,
            decision=Decision.UNDO,
            reason=(
                f"{definition.kind.value}; undo with {_fn_name(definition.undo)} "
                "again: an earlier inverse left the target part-way (found "
                f"{_short(expected_now)}, neither {_short(effect.before)} as "
                f"before nor {_short(effect.after)} as after the call)"
            ),
            current=current,
            observed=True,
            resumes=True,
            resumed_at=expected_now,
        )
    return None


def _decide_unobserved(
    effect: Effect, definition: ToolDefinition, voice: Voice
) -> PlannedStep:
    """Decide without `observe`: unknown outcomes stay unresolved."""
    if effect.status is EffectStatus.PENDING:
        return skip(
            effect,
            "its outcome was never recorded and the tool has no observe to "
            "check it: check the target, then record what happened with "
            + resolve_fix(voice, effect.id, "call"),
            "unresolved",
        )
    if effect.status is EffectStatus.COMPENSATING:
        return skip(
            effect,
            "an earlier rollback started its inverse and stopped; whether the "
            "inverse took effect is unknown without observe: check the target, "
            "then record it with " + resolve_fix(voice, effect.id, "inverse"),
            "unresolved",
        )
    return PlannedStep(
        effect=effect,
        decision=Decision.UNDO,
        reason=f"{definition.kind.value}; undo with {_fn_name(definition.undo)}",
    )


def skip(effect: Effect, reason: str, kind: str, current: Any = None) -> PlannedStep:
    """A step that leaves the effect as it is, and why."""
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


def changed_since(after: Any, now: Any) -> str:
    """The conflict's reason: of two dict observations, only what differs."""
    if isinstance(after, dict) and isinstance(now, dict):
        keys = [k for k in {**after, **now} if after.get(k) != now.get(k)]
        after = {k: after.get(k) for k in keys}
        now = {k: now.get(k) for k in keys}
    return (
        "the target changed since the agent touched it (expected "
        f"{_short(after)}, found {_short(now)})"
    )


def _short(value: Any, width: int = 40) -> str:
    return clip(repr(value), width)


def _fn_name(fn: Any) -> str:
    return str(getattr(fn, "name", None) or getattr(fn, "__name__", None) or repr(fn))
