"""Recording one tool call: the I/O-free flow ("check existing, run, record").

`record_flow` *yields* each step it needs (an observation, a ledger write, a
question to a human, the forward call) and receives the step's result, in
the manner of httpx's `Auth.auth_flow`; `langgraph_rollback.drivers` runs it
synchronously or asynchronously, so the protocol exists once:

1. arguments are serialised first, so a value the saver cannot store fails
   before anything happens (`_Call.prepare`);
2. the guard policy applies to irreversible (and undeclared) tools: `allow`,
   `ask` (an `interrupt()` before the call) or `block` (recorded as
   `blocked`, then `IrreversibleToolBlockedError`) (`_guard`);
3. `observe` (if declared) takes the `before` observation (`_observe_before`);
4. the intent row is inserted unless a row with the same identity exists, and
   committed before the forward call starts (write-ahead);
5. an existing row is a replay (`_replay`): an applied effect returns its
   recorded result without running; a failed, interrupted, blocked or
   compensated (undone by a rollback) one runs again (`_restart`); a pending
   one has an unknown outcome (`_reconcile`): with `observe`, the observation
   decides (unchanged since `before`: it never landed, run it; changed: it
   landed, record it as applied and return None, its result being lost),
   without, `EffectOutcomeUnknownError`;
6. the forward call runs, `observe` takes the `after` observation, and the
   outcome (result or error) is recorded (`_perform`). An error is committed
   at once, and so is the result of a call made directly in a node (the node
   may run on for a long time). The result of a model's tool call
   (`ToolNode`, the agent middleware) travels with the saver's next write
   instead, normally the task's pending writes right after the tools return
   (`Update.with_next_write`); not under durability "exit", where LangGraph
   saves those only at the end of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.errors import GraphBubbleUp

from langgraph_rollback._errors import (
    EffectOutcomeUnknownError,
    IrreversibleToolBlockedError,
    ObservationError,
    ReplayMismatchError,
    SerializationError,
)
from langgraph_rollback._models import Effect, EffectStatus, Reversibility
from langgraph_rollback.core.codec import (
    decode_payload,
    encode_payload,
    normalize,
    storable_or,
)
from langgraph_rollback.core.identity import call_key_for, effect_id_for
from langgraph_rollback.core.ledger import (
    LedgerRow,
    effect_of,
    utcnow,
)
from langgraph_rollback.core.ops import (
    Ask,
    Begin,
    Flow,
    Observe,
    Perform,
    Update,
    do,
)
from langgraph_rollback.core.registry import ToolDefinition
from langgraph_rollback.core.task import GuardMode, TaskContext, approved

__all__ = ["applied_changes", "outcome_changes", "record_flow"]

_GUARDED = frozenset({Reversibility.IRREVERSIBLE, Reversibility.UNKNOWN})
_REPLAY_RETURNS = frozenset(
    {
        EffectStatus.APPLIED,
        EffectStatus.COMPENSATING,
        EffectStatus.COMPENSATION_FAILED,
    }
)
_PENDING = (EffectStatus.PENDING.value,)


@dataclass(frozen=True, slots=True)
class _Call:
    """One call being recorded: its task, tool, arguments and identity."""

    ctx: TaskContext
    definition: ToolDefinition
    args: dict[str, Any]
    tool_call_id: str | None
    serde: SerializerProtocol
    call_key: str
    ordinal: int | None
    effect_id: str
    intent: tuple[str, bytes]

    @property
    def tool(self) -> str:
        return self.definition.name

    @classmethod
    def prepare(
        cls,
        ctx: TaskContext,
        definition: ToolDefinition,
        args: dict[str, Any],
        tool_call_id: str | None,
        serde: SerializerProtocol,
    ) -> _Call:
        tool = definition.name
        call_key, ordinal = call_key_for(ctx, tool, args, tool_call_id)
        # Serialise before anything else: unstorable arguments fail before the call.
        intent = encode_payload(serde, {"args": args, "before": None}, tool=tool)
        effect_id = effect_id_for(ctx.task_ns, ctx.task_id, call_key)
        return cls(
            ctx,
            definition,
            args,
            tool_call_id,
            serde,
            call_key,
            ordinal,
            effect_id,
            intent,
        )

    def intent_row(self, status: EffectStatus, now: str) -> LedgerRow:
        ctx = self.ctx
        return LedgerRow(
            effect_id=self.effect_id,
            thread_id=ctx.thread_id,
            checkpoint_ns=ctx.checkpoint_ns,
            task_ns=ctx.task_ns,
            checkpoint_id=ctx.checkpoint_id,
            root_checkpoint_id=ctx.root_checkpoint_id,
            task_id=ctx.task_id,
            call_key=self.call_key,
            tool_call_id=self.tool_call_id,
            ordinal=self.ordinal,
            tool=self.tool,
            kind=self.definition.kind.value,
            status=status.value,
            attempt=1,
            idempotency_key=f"lgrb-{self.effect_id}",
            run_id=ctx.run_id,
            intent_type=self.intent[0],
            intent=self.intent[1],
            outcome_type=None,
            outcome=None,
            created_at=now,
            updated_at=now,
            completed_at=None,
            base_checkpoint_id=ctx.run_checkpoint_id,
        )

    def blocked(self, refused_by: str) -> IrreversibleToolBlockedError:
        return IrreversibleToolBlockedError(
            tool=self.tool,
            effect_id=self.effect_id,
            thread_id=self.ctx.thread_id,
            refused_by=refused_by,
        )

    def unknown(self, idempotency_key: str) -> EffectOutcomeUnknownError:
        return EffectOutcomeUnknownError(
            effect_id=self.effect_id,
            tool=self.tool,
            thread_id=self.ctx.thread_id,
            idempotency_key=idempotency_key,
        )

    def live_effect(self, row: LedgerRow, before: Any) -> Effect:
        """The `Effect` of a row being performed, built without decoding payloads."""
        return effect_of(row, {"args": self.args, "before": before})


def record_flow(
    ctx: TaskContext,
    definition: ToolDefinition,
    args: dict[str, Any],
    *,
    tool_call_id: str | None,
    serde: SerializerProtocol,
) -> Flow[Any]:
    """Record one forward call of a declared tool; return (or raise) its outcome."""
    call = _Call.prepare(ctx, definition, args, tool_call_id, serde)
    mode, refused_by = yield from _guard(call)
    status = EffectStatus.BLOCKED if mode == "block" else EffectStatus.PENDING
    row = call.intent_row(status, utcnow())
    before = None
    if mode == "allow" and definition.observe is not None:
        before, row = yield from _observe_before(call, row)
    stored, inserted = yield from do(Begin(row))
    if not inserted:
        return (yield from _replay(call, stored, row, mode, refused_by, before))
    if mode == "block":
        raise call.blocked(refused_by)
    return (yield from _perform(call, stored, before))


def _guard(call: _Call) -> Flow[tuple[GuardMode, str]]:
    """The guard's decision for this call, and who made it."""
    definition = call.definition
    mode: GuardMode = call.ctx.guard if definition.kind in _GUARDED else "allow"
    if mode != "ask":
        return mode, "policy"
    answer = yield from do(
        Ask(
            {
                "type": "rollback_guard",
                "question": f"Allow the {definition.kind.value} tool "
                f"{call.tool!r} to run?",
                "tool": call.tool,
                "kind": definition.kind.value,
                "args": call.args,
                "reason": definition.reason,
                "effect_id": call.effect_id,
            }
        )
    )
    return ("allow" if approved(answer) else "block"), "human"


def _observe_before(call: _Call, row: LedgerRow) -> Flow[tuple[Any, LedgerRow]]:
    """Take the `before` observation and put it in the intent."""
    assert call.definition.observe is not None
    observed = yield from do(
        Observe(call.definition.observe, call.args, call.live_effect(row, None))
    )
    if observed.error is not None:
        raise ObservationError(
            tool=call.tool, phase="before", error=observed.error
        ) from observed.error
    before = normalize(call.serde, observed.value)
    intent = encode_payload(
        call.serde, {"args": call.args, "before": before}, tool=call.tool
    )
    return before, replace(row, intent_type=intent[0], intent=intent[1])


def _replay(
    call: _Call,
    existing: LedgerRow,
    row: LedgerRow,
    mode: GuardMode,
    refused_by: str,
    before: Any,
) -> Flow[Any]:
    """A recorded effect with this identity exists: return, reconcile or rerun."""
    if existing.tool != call.tool:
        raise ReplayMismatchError(
            effect_id=call.effect_id, recorded_tool=existing.tool, called_tool=call.tool
        )
    recorded = EffectStatus(existing.status)
    if recorded in _REPLAY_RETURNS:
        return _recorded_result(existing, call.serde)
    if recorded is EffectStatus.PENDING:
        landed = yield from _reconcile(call, existing, mode, before)
        if landed:
            return None
        # Unchanged since before the call: it never landed; run it again.
    if mode == "block":
        if recorded is not EffectStatus.BLOCKED:
            yield from do(
                Update(
                    call.effect_id,
                    {"status": EffectStatus.BLOCKED.value, "updated_at": utcnow()},
                    expect=(recorded.value,),
                    expect_attempt=existing.attempt,
                )
            )
        raise call.blocked(refused_by)
    restarted = yield from _restart(call, existing, row, recorded)
    return (yield from _perform(call, restarted, before))


def _reconcile(
    call: _Call, existing: LedgerRow, mode: GuardMode, before: Any
) -> Flow[bool]:
    """A pending intent: did its call land? True when it did (now recorded)."""
    unknown = call.unknown(existing.idempotency_key)
    if call.definition.observe is None or mode != "allow":
        raise unknown
    # The observation just taken against the recorded `before`.
    intent_then = decode_payload(
        call.serde,
        existing.intent_type,
        existing.intent,
        tool=call.tool,
        field="intent",
    )
    if before == intent_then.get("before"):
        return False
    note = (
        "reconciled: the outcome was never recorded, and observe() showed the "
        "target changed, so the call landed (its result was lost)"
    )
    landed = yield from do(
        Update(
            call.effect_id,
            applied_changes(
                call.serde, call.tool, result=None, after=before, notes=[note]
            ),
            expect=_PENDING,
            expect_attempt=existing.attempt,
        )
    )
    if not landed:
        raise unknown
    return True


def _restart(
    call: _Call, existing: LedgerRow, row: LedgerRow, recorded: EffectStatus
) -> Flow[LedgerRow]:
    """Mark a recorded call as started again (a new attempt); return its row."""
    changes: dict[str, Any] = {
        "status": EffectStatus.PENDING.value,
        "attempt": existing.attempt + 1,
        "intent_type": row.intent_type,
        "intent": row.intent,
        "outcome_type": None,
        "outcome": None,
        "updated_at": row.updated_at,
        "completed_at": None,
    }
    if recorded is EffectStatus.COMPENSATED:
        # A rollback undid it; this task runs again, so the call acts again.
        changes.update(undo_type=None, undo=None, compensated_at=None)
    restarted = yield from do(
        Update(
            call.effect_id,
            changes,
            expect=(recorded.value,),
            expect_attempt=existing.attempt,
        )
    )
    if not restarted:
        # Another worker restarted the same call first.
        raise call.unknown(existing.idempotency_key)
    return replace(existing, **changes)


def applied_changes(
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
    return outcome_changes(
        EffectStatus.APPLIED, encode_payload(serde, content, tool=tool)
    )


def outcome_changes(status: EffectStatus, payload: tuple[str, bytes]) -> dict[str, Any]:
    now = utcnow()
    return {
        "status": status.value,
        "outcome_type": payload[0],
        "outcome": payload[1],
        "updated_at": now,
        "completed_at": now,
    }


def _perform(call: _Call, row: LedgerRow, before: Any) -> Flow[Any]:
    """Run the forward call and record its outcome."""
    effect = call.live_effect(row, before)
    outcome = yield from do(Perform(effect))
    if outcome.error is not None:
        yield from _record_error(call, row, outcome.error)
        raise outcome.error
    after, observed, notes = yield from _observe_after(call, effect)
    content: dict[str, Any] = {
        "result": outcome.value,
        "after": after,
        "observed": observed,
    }
    if notes:
        content["notes"] = notes
    unrecordable: SerializationError | None = None
    try:
        payload = encode_payload(call.serde, content, tool=call.tool)
    except SerializationError as exc:
        unrecordable = exc
        content = {
            "result": None,
            "unrecordable": str(exc),
            "after": storable_or(call.serde, after, None),
            "observed": observed,
            "notes": notes,
        }
        payload = encode_payload(call.serde, content, tool=call.tool)
    yield from do(
        Update(
            row.effect_id,
            outcome_changes(EffectStatus.APPLIED, payload),
            expect=_PENDING,
            expect_attempt=row.attempt,
            with_next_write=row.tool_call_id is not None
            and call.ctx.durability != "exit",
        )
    )
    if unrecordable is not None:
        # The action happened and is recorded as applied (so it can be undone),
        # but a replay could not return its result: fail loudly now.
        raise unrecordable
    return outcome.value


def _record_error(call: _Call, row: LedgerRow, error: BaseException) -> Flow[None]:
    """Record a forward call that raised (or was interrupted)."""
    if isinstance(error, GraphBubbleUp):
        # interrupt() (or a Command to a parent graph) inside the tool: the
        # node re-runs from the top on resume, and so will this call.
        yield from do(
            Update(
                row.effect_id,
                {"status": EffectStatus.INTERRUPTED.value, "updated_at": utcnow()},
                expect=_PENDING,
                expect_attempt=row.attempt,
            )
        )
    elif isinstance(error, Exception):
        payload = encode_payload(
            call.serde, {"error": f"{type(error).__name__}: {error}"}, tool=call.tool
        )
        yield from do(
            Update(
                row.effect_id,
                outcome_changes(EffectStatus.FAILED, payload),
                expect=_PENDING,
                expect_attempt=row.attempt,
            )
        )
    # Cancellation, KeyboardInterrupt, SystemExit: nobody knows whether the
    # call landed, so the intent stays pending and a replay says so.


def _observe_after(call: _Call, effect: Effect) -> Flow[tuple[Any, bool, list[str]]]:
    """The `after` observation: (value, whether it was taken, notes)."""
    if call.definition.observe is None:
        return None, False, []
    observed = yield from do(Observe(call.definition.observe, call.args, effect))
    if observed.error is None:
        return normalize(call.serde, observed.value), True, []
    error = observed.error
    return (
        None,
        False,
        [f"observe() raised {type(error).__name__}: {error} after the call"],
    )


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
