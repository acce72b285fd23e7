"""An operator's decision on an effect whose outcome is unknown: `resolve_flow`.

`saver.resolve_effect(config, effect_id, applied=... | compensated=...)` drives
it. It never runs the tool or its inverse; it records what a human found.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._errors import (
    EffectInFlightError,
    EffectNotFoundError,
    EffectStateError,
    InvalidConfigError,
)
from langgraph_rollback._models import AuditAction, Effect, EffectStatus
from langgraph_rollback.core.audit import UNKNOWN, keep
from langgraph_rollback.core.call import applied_changes, outcome_changes
from langgraph_rollback.core.codec import decode_payload, encode_payload, normalize
from langgraph_rollback.core.ledger import LedgerRow, effect_from_row, utcnow
from langgraph_rollback.core.ops import AwaitCall, Flow, Observe, Select, Update, do
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.registry import ToolRegistry

__all__ = ["UNSET", "resolve_flow"]


def resolve_flow(
    thread_id: str,
    effect_id: str,
    *,
    applied: bool | None,
    compensated: bool | None,
    result: Any,
    registry: ToolRegistry,
    serde: SerializerProtocol,
    by: str | None = None,
    reason: str | None = None,
    claimed_by: str | None = None,
) -> Flow[Effect]:
    """Record what an operator found out about an effect whose outcome is unknown.

    A `pending` effect (the process died during the call) takes `applied=`; a
    `compensating` one (a rollback died, or timed out, during its inverse)
    takes `compensated=`; an applied one whose result was lost
    (`result_known=False`) takes `result=`. An applied resolution takes the
    `after` observation when the tool declares `observe`, so later drift
    checks stay meaningful. `result` is `UNSET` when the caller gave none.
    Who decided (`by`) and why (`reason`) go into the effect's notes and
    the audit trail ("unknown" when `by` is None); `claimed_by`, a name the
    caller gave that is not the authenticated `by`, into the entry's details.

    A call or an inverse still in flight (its process alive, or an inverse a
    rollback stopped waiting for, which records its own outcome when it
    ends) is not resolved: `EffectInFlightError`.
    """
    _check_flag("applied", applied)
    _check_flag("compensated", compensated)
    who = _who(by, reason)
    query = EffectQuery(thread_id=thread_id, effect_id=effect_id)
    rows = yield from do(Select(query))
    if not rows:
        raise EffectNotFoundError(effect_id=effect_id, thread_id=thread_id)
    row = rows[0]
    effect = effect_from_row(row, serde)
    if effect.status is EffectStatus.PENDING:
        changes = yield from _resolve_call(
            effect, applied, compensated, _given(result), registry, serde, who
        )
    elif effect.status is EffectStatus.COMPENSATING:
        given = _given(result)
        changes = yield from _resolve_inverse(
            effect, applied, compensated, given, serde, who
        )
    elif effect.status is EffectStatus.APPLIED and not effect.result_known:
        changes = _resolve_result(effect, applied, compensated, result, row, serde, who)
    else:
        raise EffectStateError(
            effect_id=effect_id,
            status=effect.status.value,
            expected="pending, compensating, or applied with its result lost",
        )
    changed = yield from do(
        Update(
            effect_id,
            changes,
            expect=(effect.status.value,),
            expect_attempt=row.attempt,
        )
    )
    rows = yield from do(Select(query))
    resolved = effect_from_row(rows[0], serde)
    if not changed:
        raise EffectStateError(
            effect_id=effect_id,
            status=resolved.status.value,
            expected=effect.status.value,
        )
    decided = {"applied": applied, "compensated": compensated}
    details: dict[str, Any] = {
        **{k: v for k, v in decided.items() if v is not None},
        "result_given": result is not UNSET,
    }
    if claimed_by:
        details["claimed_by"] = claimed_by
    yield from _audit(effect, resolved, row.attempt, by, reason, details)
    return resolved


def _audit(
    effect: Effect,
    resolved: Effect,
    attempt: int,
    by: str | None,
    reason: str | None,
    details: dict[str, Any],
) -> Flow[None]:
    """Keep the resolution in the audit trail."""
    key = f"{effect.id}\0{attempt}\0{effect.status.value}\0{resolved.updated_at}"
    yield from keep(
        effect.thread_id,
        AuditAction.RESOLVE,
        key=key,
        by=by or UNKNOWN,
        effect_ids=[effect.id],
        reason=reason,
        overrode=f"status {effect.status.value}"
        + ("" if effect.result_known else ", result unknown"),
        details={**details, "status": resolved.status.value},
    )


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""`result=` not given."""


_FLAG_MEANING = {
    "applied": "applied=True (the call landed) or applied=False (it did not)",
    "compensated": (
        "compensated=True (the inverse took effect) or compensated=False (it did not)"
    ),
}


def _check_flag(name: str, value: Any) -> None:
    """`applied=` and `compensated=` take True, False or None, nothing truthy."""
    if value is not None and not isinstance(value, bool):
        raise InvalidConfigError(
            f"{name}={value!r} is not True or False. Fix: pass {_FLAG_MEANING[name]}."
        )


def _not_running(effect: Effect, inverse: bool) -> Flow[None]:
    """Refuse to resolve a call (or inverse) that may still be running."""
    call_id = f"undo:{effect.id}" if inverse else effect.id
    state = yield from do(AwaitCall(call_id, effect.owner, 0))
    if state == "running":
        raise EffectInFlightError(
            effect_id=effect.id,
            tool=effect.tool,
            thread_id=effect.thread_id,
            owner=effect.owner,
            resolving="inverse" if inverse else "call",
        )


def _given(result: Any) -> Any:
    return None if result is UNSET else result


def _who(by: str | None, reason: str | None) -> str:
    """How a note names the decision's author, and the reason given."""
    who = f"by {by.strip()}" if by and by.strip() else "by an operator"
    if reason and reason.strip():
        who += f" ({reason.strip()})"
    return who


def _resolve_result(
    effect: Effect,
    applied: bool | None,
    compensated: bool | None,
    result: Any,
    row: LedgerRow,
    serde: SerializerProtocol,
    who: str,
) -> dict[str, Any]:
    """An applied effect whose result was lost: record the result found."""
    if result is UNSET or compensated is not None or applied is False:
        raise InvalidConfigError(
            f"Effect {effect.id} took effect but its result was lost. Fix: pass "
            "result=<what the call returned>, found in the outside world."
        )
    outcome = decode_payload(
        serde,
        row.outcome_type,
        row.outcome,
        tool=effect.tool,
        field="outcome",
        effect_id=row.effect_id,
    )
    notes = [*outcome.get("notes", []), f"result resolved {who}"]
    return applied_changes(
        serde,
        effect.tool,
        result=result,
        after=effect.after,
        observed=effect.after_observed,
        notes=notes,
    )


def _resolve_call(
    effect: Effect,
    applied: bool | None,
    compensated: bool | None,
    result: Any,
    registry: ToolRegistry,
    serde: SerializerProtocol,
    who: str,
) -> Flow[dict[str, Any]]:
    if applied is None or compensated is not None:
        raise InvalidConfigError(
            f"Effect {effect.id} is 'pending' (the call's outcome is unknown). "
            "Fix: pass applied=True (it landed) or applied=False (it did not)."
        )
    yield from _not_running(effect, inverse=False)
    if not applied:
        payload = encode_payload(
            serde,
            {
                "error": f"resolved {who}: not applied",
                "notes": [f"outcome resolved {who}: not applied"],
            },
            tool=effect.tool,
        )
        return outcome_changes(EffectStatus.FAILED, payload)
    notes = [f"outcome resolved {who}: applied"]
    after, observed = None, False
    definition = registry.get(effect.tool)
    if definition is not None and definition.observe is not None:
        seen = yield from do(Observe(definition.observe, effect.args, effect))
        if seen.error is None:
            after, observed = normalize(serde, seen.value), True
        else:
            notes.append(f"observe() raised {seen.error!r}")
    return applied_changes(
        serde, effect.tool, result=result, after=after, observed=observed, notes=notes
    )


def _resolve_inverse(
    effect: Effect,
    applied: bool | None,
    compensated: bool | None,
    result: Any,
    serde: SerializerProtocol,
    who: str,
) -> Flow[dict[str, Any]]:
    if compensated is None or applied is not None:
        raise InvalidConfigError(
            f"Effect {effect.id} is 'compensating' (an inverse was cut off). "
            "Fix: pass compensated=True (the inverse took effect) or "
            "compensated=False (it did not; a rollback will run it again)."
        )
    yield from _not_running(effect, inverse=True)
    if compensated:
        note = f"inverse outcome resolved {who}: took effect"
        status = EffectStatus.COMPENSATED
    else:
        note = f"inverse outcome resolved {who}: did not take effect"
        status = EffectStatus.COMPENSATION_FAILED
    payload = encode_payload(
        serde, {"result": result, "notes": [note]}, tool=effect.tool
    )
    now = utcnow()
    changes = {
        "status": status.value,
        "undo_type": payload[0],
        "undo": payload[1],
        "updated_at": now,
    }
    if compensated:
        changes["compensated_at"] = now
    return changes
