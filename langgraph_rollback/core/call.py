"""One declared call being recorded, and the steps that perform it.

`Call` holds the call's task, tool, arguments and identity; `perform` runs
the forward call and records its outcome. The recording flow (`core.record`)
and the replay of a recorded call (`core.replay`) share them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.errors import GraphBubbleUp

from langgraph_rollback._errors import (
    EffectOutcomeUnknownError,
    IrreversibleToolBlockedError,
    ObservationError,
    SerializationError,
)
from langgraph_rollback._models import Effect, EffectStatus
from langgraph_rollback.core.codec import encode_payload, normalize, storable_or
from langgraph_rollback.core.identity import call_key_for, effect_id_for
from langgraph_rollback.core.ledger import (
    LedgerRow,
    changed_row,
    default_idempotency_key,
    effect_of,
    utcnow,
)
from langgraph_rollback.core.ops import Flow, Observe, Perform, Update, do
from langgraph_rollback.core.registry import ToolDefinition
from langgraph_rollback.core.task import TaskContext

__all__ = [
    "PENDING",
    "Call",
    "applied_changes",
    "observe_before",
    "outcome_changes",
    "perform",
]

logger = logging.getLogger(__name__)

PENDING = (EffectStatus.PENDING.value,)


@dataclass(frozen=True, slots=True)
class Call:
    """One call being recorded: its task, tool, arguments and identity."""

    ctx: TaskContext
    definition: ToolDefinition
    args: dict[str, Any]
    tool_call_id: str | None
    serde: SerializerProtocol
    call_key: str
    ordinal: int
    effect_id: str
    intent: tuple[str, bytes]
    defaulted: frozenset[str] = frozenset()
    """Recorded arguments the caller left at their defaults (not part of the
    identity)."""

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
        defaulted: frozenset[str] = frozenset(),
    ) -> Call:
        tool = definition.name
        # Serialise before anything else: unstorable arguments fail before the
        # call, named by the saver's own serde.
        intent = encode_payload(serde, _intent(args, None, ctx), tool=tool)
        if defaulted:
            defaulted = defaulted & set(args)
            passed = {k: v for k, v in args.items() if k not in defaulted}
        else:
            passed = args
        call_key, ordinal = call_key_for(ctx, tool, passed, tool_call_id)
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
            frozenset(defaulted),
        )

    def on_this_thread(self) -> Call:
        """The same call under an id of its own thread (a copied thread's call)."""
        ctx = self.ctx
        effect_id = effect_id_for(
            ctx.task_ns, ctx.task_id, self.call_key, thread_id=ctx.thread_id
        )
        return replace(self, effect_id=effect_id)

    def intent_payload(self, before: Any) -> dict[str, Any]:
        """The intent's payload (`_intent`)."""
        return _intent(self.args, before, self.ctx)

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
            idempotency_key=default_idempotency_key(self.effect_id),
            run_id=ctx.run_id,
            intent_type=self.intent[0],
            intent=self.intent[1],
            outcome_type=None,
            outcome=None,
            created_at=now,
            updated_at=now,
            completed_at=None,
            base_checkpoint_id=ctx.run_checkpoint_id,
            owner=ctx.owner,
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
        return effect_of(row, self.intent_payload(before))


def applied_changes(
    serde: SerializerProtocol,
    tool: str,
    *,
    result: Any,
    after: Any,
    observed: bool = True,
    notes: list[str] | None = None,
    result_known: bool = True,
) -> dict[str, Any]:
    """The `Update` changes that record an applied outcome."""
    content: dict[str, Any] = {"result": result, "after": after, "observed": observed}
    if not result_known:
        content["result_known"] = False
    if notes:
        content["notes"] = notes
    return outcome_changes(
        EffectStatus.APPLIED, encode_payload(serde, content, tool=tool)
    )


def outcome_changes(status: EffectStatus, payload: tuple[str, bytes]) -> dict[str, Any]:
    """The `Update` changes that record an outcome of `status`.

    The call has ended, so the row names no `owner` any more (an owner is
    the process that may still be performing it).
    """
    now = utcnow()
    return {
        "status": status.value,
        "outcome_type": payload[0],
        "outcome": payload[1],
        "updated_at": now,
        "completed_at": now,
        "owner": None,
    }


def perform(call: Call, row: LedgerRow, before: Any) -> Flow[Any]:
    """Run the forward call and record its outcome."""

    def effect() -> Effect:
        return call.live_effect(row, before)

    outcome = yield from do(Perform(row.effect_id, effect))
    if outcome.error is not None:
        yield from _record_error(call, row, outcome.error)
        raise outcome.error
    after, observed, notes = yield from _observe_after(call, effect)
    payload, unrecordable = _outcome_payload(
        call, outcome.value, after, observed, notes
    )
    recorded = yield from do(
        Update(
            row.effect_id,
            outcome_changes(EffectStatus.APPLIED, payload),
            expect=PENDING,
            expect_attempt=row.attempt,
            with_next_write=row.tool_call_id is not None
            and call.ctx.durability != "exit",
        )
    )
    if not recorded:
        _superseded(call, row, outcome.value)
    if unrecordable is not None:
        # The action happened and is recorded as applied (so it can be undone),
        # but a replay could not return its result: fail loudly now.
        raise unrecordable
    return outcome.value


def _outcome_payload(
    call: Call, result: Any, after: Any, observed: bool, notes: list[str]
) -> tuple[tuple[str, bytes], SerializationError | None]:
    """The outcome payload, and the error to raise when the result cannot be stored.

    An `after` observation the serde cannot store is left out (not observed),
    with a note; the result is kept. A result it cannot store is recorded as
    unrecordable, and its error raised once the outcome is written.
    """
    serde = call.serde
    if observed and storable_or(serde, after, _UNSTORABLE) is _UNSTORABLE:
        notes = [*notes, "observe() returned a value the ledger cannot store"]
        after, observed = None, False
    content: dict[str, Any] = {"result": result, "after": after, "observed": observed}
    if notes:
        content["notes"] = notes
    try:
        return encode_payload(serde, content, tool=call.tool), None
    except SerializationError as exc:
        content = {
            "result": None,
            "unrecordable": str(exc),
            "after": after,
            "observed": observed,
            "notes": notes,
        }
        return encode_payload(serde, content, tool=call.tool), exc


_UNSTORABLE = object()


def _superseded(call: Call, row: LedgerRow, result: Any) -> None:
    """The outcome of an attempt another one replaced: said, never dropped."""
    logger.error(
        "effect %s (%r on thread %r): attempt %d of the call finished (result %r) "
        "after another attempt replaced it, so this outcome was not recorded. Fix: "
        "check the target; if the call acted twice, undo one by hand",
        row.effect_id,
        call.tool,
        row.thread_id,
        row.attempt,
        result,
    )


def _record_error(call: Call, row: LedgerRow, error: BaseException) -> Flow[None]:
    """Record a forward call that raised (or was interrupted)."""
    if isinstance(error, GraphBubbleUp):
        # interrupt() (or a Command to a parent graph) inside the tool: the
        # node re-runs from the top on resume, and so will this call.
        yield from do(
            Update(
                row.effect_id,
                {"status": EffectStatus.INTERRUPTED.value, "updated_at": utcnow()},
                expect=PENDING,
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
                expect=PENDING,
                expect_attempt=row.attempt,
            )
        )
    else:
        # Cancellation, KeyboardInterrupt, SystemExit: nobody knows whether the
        # call landed, so the intent stays pending and a replay says so; but
        # nobody performs it any more, so it names no owner (else another
        # process would wait for this one to end). Best effort: a failed write
        # leaves the owner, which only delays the other process.
        try:
            yield from do(
                Update(
                    row.effect_id,
                    {"owner": None},
                    expect=PENDING,
                    expect_attempt=row.attempt,
                )
            )
        except Exception:
            logger.warning(
                "effect %s: could not clear the owner of an interrupted call",
                row.effect_id,
            )


def _observe_after(
    call: Call, effect: Callable[[], Effect]
) -> Flow[tuple[Any, bool, list[str]]]:
    """The `after` observation: (value, whether it was taken, notes)."""
    if call.definition.observe is None:
        return None, False, []
    observed = yield from do(Observe(call.definition.observe, call.args, effect()))
    if observed.error is None:
        return normalize(call.serde, observed.value), True, []
    error = observed.error
    return (
        None,
        False,
        [f"observe() raised {type(error).__name__}: {error} after the call"],
    )


def _intent(args: dict[str, Any], before: Any, ctx: TaskContext) -> dict[str, Any]:
    """An intent's payload: the arguments, the target before the call, the
    container call it runs in (when it does), and the task's step and path
    (when known), by which a resumed run finds the calls of a run whose
    checkpoints were never stored (`core.replay`)."""
    payload: dict[str, Any] = {"args": args}
    if before is not None:  # read back as None when absent
        payload["before"] = before
    if ctx.inside is not None:
        payload["inside"] = ctx.inside
    if ctx.step is not None:
        payload["task"] = {"step": ctx.step, "path": ctx.task_path}
    return payload


def observe_before(call: Call, row: LedgerRow) -> Flow[tuple[Any, LedgerRow]]:
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
    intent = encode_payload(call.serde, call.intent_payload(before), tool=call.tool)
    return before, changed_row(row, intent_type=intent[0], intent=intent[1])
