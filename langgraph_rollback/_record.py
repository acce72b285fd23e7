"""Recording one tool call: the I/O-free flow ("check existing, run, record").

`record_flow` is a generator that *yields* each step it needs (an
observation, a ledger write, a question to a human, the forward call) and
receives the step's result, in the manner of httpx's `Auth.auth_flow`;
`_drivers` runs it synchronously or asynchronously, so the protocol exists
once:

1. arguments are serialised first, so a value the saver cannot store fails
   before anything happens;
2. the guard policy applies to irreversible (and undeclared) tools: `allow`,
   `ask` (an `interrupt()` before the call) or `block` (recorded as
   `blocked`, then `IrreversibleToolBlockedError`);
3. `observe` (if declared) takes the `before` observation;
4. the intent row is inserted unless a row with the same identity exists, and
   committed before the forward call starts (write-ahead);
5. an existing row is a replay: an applied effect returns its recorded result
   without running; a failed, interrupted, blocked or compensated (undone by
   a rollback) one runs again; a pending one has an unknown outcome: with
   `observe`, the observation decides (unchanged since `before`: it never
   landed, run it; changed: it landed, record it as applied and return
   None, its result being lost), without, `EffectOutcomeUnknownError`;
6. the forward call runs, `observe` takes the `after` observation, and the
   outcome (result or error) is recorded. An error is committed at once, and
   so is the result of a call made directly in a node (the node may run on
   for a long time). The result of a model's tool call (`ToolNode`, the agent
   middleware) travels with the saver's next write instead, normally the
   task's pending writes right after the tools return
   (`Update.with_next_write`); not under durability "exit", where LangGraph
   saves those only at the end of the run.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.errors import GraphBubbleUp

from langgraph_rollback._context import TaskContext
from langgraph_rollback._errors import (
    EffectNotFoundError,
    EffectOutcomeUnknownError,
    EffectStateError,
    InvalidConfigError,
    IrreversibleToolBlockedError,
    ObservationError,
    ReplayMismatchError,
    SerializationError,
)
from langgraph_rollback._ledger import (
    EffectQuery,
    LedgerRow,
    call_key_for,
    decode_payload,
    effect_from_row,
    effect_id_for,
    encode_payload,
    normalize,
    utcnow,
)
from langgraph_rollback._models import Effect, EffectStatus, Reversibility
from langgraph_rollback._ops import (
    Ask,
    Begin,
    Observe,
    Outcome,
    Perform,
    Select,
    Update,
)
from langgraph_rollback._registry import ToolDefinition, ToolRegistry

__all__ = ["GUARD_MODES", "GuardMode", "record_flow", "resolve_flow"]

GuardMode = Literal["allow", "ask", "block"]
GUARD_MODES: tuple[GuardMode, ...] = ("allow", "ask", "block")

_GUARDED = frozenset({Reversibility.IRREVERSIBLE, Reversibility.UNKNOWN})
_REPLAY_RETURNS = frozenset(
    {
        EffectStatus.APPLIED,
        EffectStatus.COMPENSATING,
        EffectStatus.COMPENSATION_FAILED,
    }
)

Flow = Generator[Any, Any, Any]


def record_flow(
    ctx: TaskContext,
    definition: ToolDefinition,
    args: dict[str, Any],
    *,
    tool_call_id: str | None,
    serde: SerializerProtocol,
) -> Flow:
    """Record one forward call of a declared tool; return (or raise) its outcome."""
    tool = definition.name
    call_key, ordinal = call_key_for(ctx, tool, args, tool_call_id)
    # Serialise before anything else: unstorable arguments fail before the call.
    intent = encode_payload(serde, {"args": args, "before": None}, tool=tool)
    effect_id = effect_id_for(ctx.task_ns, ctx.task_id, call_key)

    mode: GuardMode = ctx.guard if definition.kind in _GUARDED else "allow"
    if mode == "ask":
        answer = yield Ask(
            {
                "type": "rollback_guard",
                "question": f"Allow the {definition.kind.value} tool {tool!r} to run?",
                "tool": tool,
                "kind": definition.kind.value,
                "args": args,
                "reason": definition.reason,
                "effect_id": effect_id,
            }
        )
        mode = "allow" if approved(answer) else "block"
        refused_by = "human"
    else:
        refused_by = "policy"

    now = utcnow()
    status = EffectStatus.BLOCKED if mode == "block" else EffectStatus.PENDING
    row = LedgerRow(
        effect_id=effect_id,
        thread_id=ctx.thread_id,
        checkpoint_ns=ctx.checkpoint_ns,
        task_ns=ctx.task_ns,
        checkpoint_id=ctx.checkpoint_id,
        root_checkpoint_id=ctx.root_checkpoint_id,
        task_id=ctx.task_id,
        call_key=call_key,
        tool_call_id=tool_call_id,
        ordinal=ordinal,
        tool=tool,
        kind=definition.kind.value,
        status=status.value,
        attempt=1,
        idempotency_key=f"lgrb-{effect_id}",
        run_id=ctx.run_id,
        intent_type=intent[0],
        intent=intent[1],
        outcome_type=None,
        outcome=None,
        created_at=now,
        updated_at=now,
        completed_at=None,
        base_checkpoint_id=ctx.run_checkpoint_id,
    )
    before = None
    if mode == "allow" and definition.observe is not None:
        observed = yield Observe(
            definition.observe, args, _live_effect(row, definition, args, None)
        )
        if observed.error is not None:
            raise ObservationError(
                tool=tool, phase="before", error=observed.error
            ) from observed.error
        before = normalize(serde, observed.value)
        intent = encode_payload(serde, {"args": args, "before": before}, tool=tool)
        row = replace(row, intent_type=intent[0], intent=intent[1])

    stored, inserted = yield Begin(row)
    if inserted:
        row = stored
        if mode == "block":
            raise IrreversibleToolBlockedError(
                tool=tool,
                effect_id=effect_id,
                thread_id=ctx.thread_id,
                refused_by=refused_by,
            )
        return (yield from _perform(row, definition, args, before, serde, ctx))

    existing: LedgerRow = stored
    if existing.tool != tool:
        raise ReplayMismatchError(
            effect_id=effect_id, recorded_tool=existing.tool, called_tool=tool
        )
    recorded = EffectStatus(existing.status)
    if recorded in _REPLAY_RETURNS:
        return _recorded_result(existing, serde)
    if recorded is EffectStatus.PENDING:
        unknown = EffectOutcomeUnknownError(
            effect_id=effect_id,
            tool=tool,
            thread_id=ctx.thread_id,
            idempotency_key=existing.idempotency_key,
        )
        if definition.observe is None or mode != "allow":
            raise unknown
        # Reconcile: the observation just taken against the recorded `before`.
        intent_then = decode_payload(
            serde, existing.intent_type, existing.intent, tool=tool, field="intent"
        )
        if before != intent_then.get("before"):
            landed = yield Update(
                effect_id,
                _applied(
                    serde,
                    tool,
                    result=None,
                    after=before,
                    notes=[
                        "reconciled: the outcome was never recorded, and observe() "
                        "showed the target changed, so the call landed (its "
                        "result was lost)"
                    ],
                ),
                expect=(EffectStatus.PENDING.value,),
                expect_attempt=existing.attempt,
            )
            if not landed:
                raise unknown
            return None
        # Unchanged since before the call: it never landed; run it again.
    if mode == "block":
        if recorded is not EffectStatus.BLOCKED:
            yield Update(
                effect_id,
                {"status": EffectStatus.BLOCKED.value, "updated_at": now},
                expect=(recorded.value,),
                expect_attempt=existing.attempt,
            )
        raise IrreversibleToolBlockedError(
            tool=tool,
            effect_id=effect_id,
            thread_id=ctx.thread_id,
            refused_by=refused_by,
        )
    changes: dict[str, Any] = {
        "status": EffectStatus.PENDING.value,
        "attempt": existing.attempt + 1,
        "intent_type": row.intent_type,
        "intent": row.intent,
        "outcome_type": None,
        "outcome": None,
        "updated_at": now,
        "completed_at": None,
    }
    if recorded is EffectStatus.COMPENSATED:
        # A rollback undid it; this task runs again, so the call acts again.
        changes.update(undo_type=None, undo=None, compensated_at=None)
    row = replace(existing, **changes)
    restarted = yield Update(
        effect_id,
        changes,
        expect=(recorded.value,),
        expect_attempt=existing.attempt,
    )
    if not restarted:
        # Another worker restarted the same call first.
        raise EffectOutcomeUnknownError(
            effect_id=effect_id,
            tool=tool,
            thread_id=ctx.thread_id,
            idempotency_key=existing.idempotency_key,
        )
    return (yield from _perform(row, definition, args, before, serde, ctx))


def _applied(
    serde: SerializerProtocol,
    tool: str,
    *,
    result: Any,
    after: Any,
    observed: bool = True,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The `Update` changes that record an applied outcome."""
    content: dict[str, Any] = {"result": result, "after": after, "observed": observed}
    if notes:
        content["notes"] = notes
    payload = encode_payload(serde, content, tool=tool)
    now = utcnow()
    return {
        "status": EffectStatus.APPLIED.value,
        "outcome_type": payload[0],
        "outcome": payload[1],
        "updated_at": now,
        "completed_at": now,
    }


def approved(answer: Any) -> bool:
    """Whether a human's answer to an `interrupt()` question means yes."""
    if isinstance(answer, dict):
        answer = answer.get("approve", answer.get("approved", False))
    if isinstance(answer, str):
        return answer.strip().lower() in {"approve", "approved", "yes", "y", "true"}
    return answer is True


def _perform(
    row: LedgerRow,
    definition: ToolDefinition,
    args: dict[str, Any],
    before: Any,
    serde: SerializerProtocol,
    ctx: TaskContext,
) -> Flow:
    tool = definition.name
    effect = _live_effect(row, definition, args, before)
    outcome: Outcome = yield Perform(effect)
    if outcome.error is not None:
        error = outcome.error
        if isinstance(error, GraphBubbleUp):
            # interrupt() (or a Command to a parent graph) inside the tool: the
            # node re-runs from the top on resume, and so will this call.
            yield Update(
                row.effect_id,
                {"status": EffectStatus.INTERRUPTED.value, "updated_at": utcnow()},
                expect=(EffectStatus.PENDING.value,),
                expect_attempt=row.attempt,
            )
        elif isinstance(error, Exception):
            now = utcnow()
            payload = encode_payload(
                serde, {"error": f"{type(error).__name__}: {error}"}, tool=tool
            )
            yield Update(
                row.effect_id,
                {
                    "status": EffectStatus.FAILED.value,
                    "outcome_type": payload[0],
                    "outcome": payload[1],
                    "updated_at": now,
                    "completed_at": now,
                },
                expect=(EffectStatus.PENDING.value,),
                expect_attempt=row.attempt,
            )
        # Cancellation, KeyboardInterrupt, SystemExit: nobody knows whether the
        # call landed, so the intent stays pending and a replay says so.
        raise error
    after = None
    after_observed = False
    notes: list[str] = []
    if definition.observe is not None:
        observed = yield Observe(definition.observe, args, effect)
        if observed.error is None:
            after = normalize(serde, observed.value)
            after_observed = True
        else:
            notes.append(
                f"observe() raised {type(observed.error).__name__}: "
                f"{observed.error} after the call"
            )
    content: dict[str, Any] = {
        "result": outcome.value,
        "after": after,
        "observed": after_observed,
    }
    if notes:
        content["notes"] = notes
    unrecordable: SerializationError | None = None
    try:
        payload = encode_payload(serde, content, tool=tool)
    except SerializationError as exc:
        unrecordable = exc
        content = {
            "result": None,
            "unrecordable": str(exc),
            "after": _storable_or_none(serde, after),
            "observed": after_observed,
            "notes": notes,
        }
        payload = encode_payload(serde, content, tool=tool)
    now = utcnow()
    yield Update(
        row.effect_id,
        {
            "status": EffectStatus.APPLIED.value,
            "outcome_type": payload[0],
            "outcome": payload[1],
            "updated_at": now,
            "completed_at": now,
        },
        expect=(EffectStatus.PENDING.value,),
        expect_attempt=row.attempt,
        with_next_write=row.tool_call_id is not None and ctx.durability != "exit",
    )
    if unrecordable is not None:
        # The action happened and is recorded as applied (so it can be undone),
        # but a replay could not return its result: fail loudly now.
        raise unrecordable
    return outcome.value


def _storable_or_none(serde: SerializerProtocol, value: Any) -> Any:
    try:
        serde.dumps_typed(value)
    except Exception:
        return None
    return value


def _recorded_result(row: LedgerRow, serde: SerializerProtocol) -> Any:
    outcome = decode_payload(
        serde, row.outcome_type, row.outcome, tool=row.tool, field="outcome"
    )
    if "unrecordable" in outcome:
        raise SerializationError(
            f"Effect {row.effect_id} ({row.tool!r}) was applied, but its result "
            f"could not be recorded: {outcome['unrecordable']}",
            tool=row.tool,
            field="result",
        )
    return outcome.get("result")


def _live_effect(
    row: LedgerRow, definition: ToolDefinition, args: dict[str, Any], before: Any
) -> Effect:
    """The `Effect` of a row being performed, built without decoding payloads."""
    return Effect(
        id=row.effect_id,
        seq=row.seq,
        thread_id=row.thread_id,
        checkpoint_ns=row.checkpoint_ns,
        task_ns=row.task_ns,
        checkpoint_id=row.checkpoint_id,
        root_checkpoint_id=row.root_checkpoint_id,
        base_checkpoint_id=row.base_checkpoint_id,
        task_id=row.task_id,
        call_key=row.call_key,
        tool_call_id=row.tool_call_id,
        ordinal=row.ordinal,
        tool=row.tool,
        kind=definition.kind,
        status=EffectStatus.PENDING,
        args=args,
        before=before,
        idempotency_key=row.idempotency_key,
        attempt=row.attempt,
        run_id=row.run_id,
        created_at=datetime.fromisoformat(row.created_at),
        updated_at=datetime.fromisoformat(row.updated_at),
        completed_at=None,
    )


def resolve_flow(
    thread_id: str,
    effect_id: str,
    *,
    applied: bool | None,
    compensated: bool | None,
    result: Any,
    registry: ToolRegistry,
    serde: SerializerProtocol,
) -> Generator[Any, Any, Effect]:
    """Record what an operator found out about an effect whose outcome is unknown.

    A `pending` effect (the process died during the call) takes `applied=`; a
    `compensating` one (a rollback died, or timed out, during its inverse)
    takes `compensated=`. An applied resolution takes the `after` observation
    when the tool declares `observe`, so later drift checks stay meaningful.
    """
    query = EffectQuery(thread_id=thread_id, effect_id=effect_id)
    rows = yield Select(query)
    if not rows:
        raise EffectNotFoundError(effect_id=effect_id, thread_id=thread_id)
    row: LedgerRow = rows[0]
    effect = effect_from_row(row, serde)
    now = utcnow()
    if effect.status is EffectStatus.PENDING:
        if applied is None or compensated is not None:
            raise InvalidConfigError(
                f"Effect {effect_id} is 'pending' (the call's outcome is unknown). "
                "Fix: pass applied=True (it landed) or applied=False (it did not)."
            )
        if applied:
            notes = ["outcome resolved by an operator: applied"]
            after, observed = None, False
            definition = registry.get(effect.tool)
            if definition is not None and definition.observe is not None:
                seen = yield Observe(definition.observe, effect.args, effect)
                if seen.error is None:
                    after, observed = normalize(serde, seen.value), True
                else:
                    notes.append(f"observe() raised {seen.error!r}")
            changes = _applied(
                serde,
                effect.tool,
                result=result,
                after=after,
                observed=observed,
                notes=notes,
            )
        else:
            payload = encode_payload(
                serde,
                {
                    "error": "resolved by an operator: not applied",
                    "notes": ["outcome resolved by an operator: not applied"],
                },
                tool=effect.tool,
            )
            changes = {
                "status": EffectStatus.FAILED.value,
                "outcome_type": payload[0],
                "outcome": payload[1],
                "updated_at": now,
                "completed_at": now,
            }
    elif effect.status is EffectStatus.COMPENSATING:
        if compensated is None or applied is not None:
            raise InvalidConfigError(
                f"Effect {effect_id} is 'compensating' (an inverse was cut off). "
                "Fix: pass compensated=True (the inverse took effect) or "
                "compensated=False (it did not; a rollback will run it again)."
            )
        if compensated:
            note = "inverse outcome resolved by an operator: took effect"
            status = EffectStatus.COMPENSATED
        else:
            note = "inverse outcome resolved by an operator: did not take effect"
            status = EffectStatus.COMPENSATION_FAILED
        payload = encode_payload(
            serde, {"result": result, "notes": [note]}, tool=effect.tool
        )
        changes = {
            "status": status.value,
            "undo_type": payload[0],
            "undo": payload[1],
            "updated_at": now,
        }
        if compensated:
            changes["compensated_at"] = now
    else:
        raise EffectStateError(
            effect_id=effect_id,
            status=effect.status.value,
            expected="pending or compensating",
        )
    changed = yield Update(
        effect_id, changes, expect=(effect.status.value,), expect_attempt=row.attempt
    )
    rows = yield Select(query)
    resolved = effect_from_row(rows[0], serde)
    if not changed:
        raise EffectStateError(
            effect_id=effect_id,
            status=resolved.status.value,
            expected=effect.status.value,
        )
    return resolved
