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
   without running; a failed, interrupted or blocked one runs again; a
   pending one has an unknown outcome and raises `EffectOutcomeUnknownError`;
6. the forward call runs, `observe` takes the `after` observation, and the
   outcome (result or error) is committed.
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
    EffectOutcomeUnknownError,
    IrreversibleToolBlockedError,
    ObservationError,
    ReplayMismatchError,
    SerializationError,
)
from langgraph_rollback._ledger import (
    LedgerRow,
    call_key_for,
    decode_payload,
    effect_id_for,
    encode_payload,
    utcnow,
)
from langgraph_rollback._models import Effect, EffectStatus, Reversibility
from langgraph_rollback._ops import Ask, Begin, Observe, Outcome, Perform, Update
from langgraph_rollback._registry import ToolDefinition

__all__ = ["GUARD_MODES", "GuardMode", "record_flow"]

GuardMode = Literal["allow", "ask", "block"]
GUARD_MODES: tuple[GuardMode, ...] = ("allow", "ask", "block")

_GUARDED = frozenset({Reversibility.IRREVERSIBLE, Reversibility.UNKNOWN})
_REPLAY_RETURNS = frozenset(
    {
        EffectStatus.APPLIED,
        EffectStatus.COMPENSATING,
        EffectStatus.COMPENSATED,
        EffectStatus.COMPENSATION_FAILED,
    }
)
_REPLAY_RERUNS = frozenset(
    {EffectStatus.FAILED, EffectStatus.INTERRUPTED, EffectStatus.BLOCKED}
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
    effect_id = effect_id_for(ctx.thread_id, ctx.task_ns, ctx.task_id, call_key)

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

    before = None
    if mode == "allow" and definition.observe is not None:
        observed = yield Observe(definition.observe, args)
        if observed.error is not None:
            raise ObservationError(
                tool=tool, phase="before", error=observed.error
            ) from observed.error
        before = observed.value
        intent = encode_payload(serde, {"args": args, "before": before}, tool=tool)

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
    )
    stored, inserted = yield Begin(row)
    if inserted:
        row = stored
        if mode == "block":
            raise IrreversibleToolBlockedError(
                tool=tool, effect_id=effect_id, thread_id=ctx.thread_id
            )
        return (yield from _perform(row, definition, args, before, serde))

    existing: LedgerRow = stored
    if existing.tool != tool:
        raise ReplayMismatchError(
            effect_id=effect_id, recorded_tool=existing.tool, called_tool=tool
        )
    recorded = EffectStatus(existing.status)
    if recorded in _REPLAY_RETURNS:
        return _recorded_result(existing, serde)
    if recorded is EffectStatus.PENDING:
        raise EffectOutcomeUnknownError(
            effect_id=effect_id,
            tool=tool,
            thread_id=ctx.thread_id,
            idempotency_key=existing.idempotency_key,
        )
    assert recorded in _REPLAY_RERUNS
    if mode == "block":
        if recorded is not EffectStatus.BLOCKED:
            yield Update(
                effect_id,
                {"status": EffectStatus.BLOCKED.value, "updated_at": now},
                expect=(recorded.value,),
            )
        raise IrreversibleToolBlockedError(
            tool=tool, effect_id=effect_id, thread_id=ctx.thread_id
        )
    row = replace(
        existing,
        status=EffectStatus.PENDING.value,
        attempt=existing.attempt + 1,
        intent_type=row.intent_type,
        intent=row.intent,
        updated_at=now,
    )
    restarted = yield Update(
        effect_id,
        {
            "status": row.status,
            "attempt": row.attempt,
            "intent_type": row.intent_type,
            "intent": row.intent,
            "updated_at": now,
        },
        expect=(recorded.value,),
    )
    if not restarted:
        # Another worker restarted the same call first.
        raise EffectOutcomeUnknownError(
            effect_id=effect_id,
            tool=tool,
            thread_id=ctx.thread_id,
            idempotency_key=existing.idempotency_key,
        )
    return (yield from _perform(row, definition, args, before, serde))


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
            )
        # Cancellation, KeyboardInterrupt, SystemExit: nobody knows whether the
        # call landed, so the intent stays pending and a replay says so.
        raise error
    after = None
    notes: list[str] = []
    if definition.observe is not None:
        observed = yield Observe(definition.observe, args)
        if observed.error is None:
            after = observed.value
        else:
            notes.append(
                f"observe() raised {type(observed.error).__name__}: "
                f"{observed.error} after the call"
            )
    content: dict[str, Any] = {"result": outcome.value, "after": after}
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
