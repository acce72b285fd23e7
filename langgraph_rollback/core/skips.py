"""What `skip=` names: effects of the plan, found by effect id or tool call id.

`resolve_skip` runs before anything is undone. Each id the caller (or a
human approver) gave names

- an effect on the plan, by its id;
- every effect on the plan a model's tool call made, by its `tool_call_id`
  (the id `to=` takes too);
- an effect of the thread that this rollback leaves anyway (older than the
  target, or on an abandoned branch): nothing to do;
- or nothing on the thread: refused, since a mistyped id would let the
  effect meant to stay be undone.

An effect recorded inside a container (a git workspace step) cannot stay
while its container is undone: the container's inverse restores everything
its call did, that effect included. That is refused too, naming the
container to skip with it.
"""

from __future__ import annotations

from dataclasses import replace

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback.core.decide import Decision, PlannedStep
from langgraph_rollback.core.ops import Flow, Select, do
from langgraph_rollback.core.plan import RollbackPlan
from langgraph_rollback.core.policies import Policies
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.report import call_text

__all__ = ["resolve_skip"]


def resolve_skip(plan: RollbackPlan, policies: Policies) -> Flow[Policies]:
    """`policies` with `skip` (and `approved`) as ids of effects on the plan.

    Raises:
        InvalidConfigError: An id names nothing on the thread, or an effect
            inside a container the rollback would undo.
    """
    if not policies.skip:
        return policies
    skip: set[str] = set()
    approved: set[str] = set()
    for value in sorted(policies.skip):
        ids = yield from _named(value, plan)
        skip |= ids
        if value in policies.approved:
            approved |= ids
    _refuse_kept_inside_undone(plan, skip, policies)
    return replace(policies, skip=frozenset(skip), approved=frozenset(approved))


def _named(value: str, plan: RollbackPlan) -> Flow[set[str]]:
    """The ids of the effects on the plan that `value` names."""
    named = {
        step.effect.id
        for step in plan.steps
        if value in (step.effect.id, step.effect.tool_call_id)
    }
    if named or any(value in (e.id, e.tool_call_id) for e in plan.orphans):
        return named
    thread = plan.thread_id
    for query in (
        EffectQuery(thread_id=thread, effect_id=value),
        EffectQuery(thread_id=thread, tool_call_id=value, limit=1),
    ):
        rows = yield from do(Select(query))
        if rows:
            return set()  # an effect this rollback leaves anyway
    raise InvalidConfigError(
        f"skip= names {value!r}, which is no effect id or tool call id on "
        f"thread {thread!r}. Nothing was undone. Fix: pass the ids of this "
        "thread's effects (saver.list_effects(config): an effect's id, or "
        "the tool_call_id of the model's call)."
    )


def _refuse_kept_inside_undone(
    plan: RollbackPlan, skip: set[str], policies: Policies
) -> None:
    """Refuse to keep an effect whose container's inverse will undo it."""
    by_id = {step.effect.id: step for step in plan.steps}
    for effect_id in sorted(skip):
        inside = by_id[effect_id].effect.inside
        while inside is not None and inside in by_id:
            container = by_id[inside]
            if inside not in skip and _will_undo(container, policies):
                raise _kept_inside(by_id[effect_id], container)
            inside = container.effect.inside


def _will_undo(step: PlannedStep, policies: Policies) -> bool:
    return step.decision is Decision.UNDO or (
        step.decision is Decision.CONFLICT and policies.on_conflict == "force"
    )


def _kept_inside(step: PlannedStep, container: PlannedStep) -> InvalidConfigError:
    effect, box = step.effect, container.effect
    return InvalidConfigError(
        f"skip= names {call_text(effect, 40)} (#{effect.seq}, {effect.id}), "
        f"recorded inside {call_text(box, 40)} (#{box.seq}, {box.id}), whose "
        "inverse restores everything its call did, this effect included: it "
        "cannot stay while its container is undone. Nothing was undone. Fix: "
        f"skip the container too (add {box.id!r}) to keep all it did, or do "
        "not skip this effect."
    )
