"""Replaying a recorded call: return its result, settle its outcome, or run it again.

A task re-runs from its top after an `interrupt()`/resume, a failure and
`invoke(None)`, or a `RetryPolicy` retry (DESIGN.md section 3, point 2), and
reaches calls it already recorded:

- applied (or being undone): the recorded result is returned, nothing runs;
  a result lost to a crash raises `EffectResultUnknownError` instead of
  returning None;
- pending: an earlier attempt may still be running. One still in flight in
  this process is waited for (up to the saver's `in_flight_wait`), one in a
  live process is refused (`EffectInFlightError`); otherwise `observe`
  decides whether it landed, and without `observe` the outcome is unknown
  (`EffectOutcomeUnknownError`);
- failed, interrupted, blocked or undone by a rollback: it runs again (a new
  attempt). When that row belongs to another thread (the source of a
  `copy_thread`), the copy's call is its own effect, on its own thread.

A call may also match a row recorded before its current key existed
(`earlier_row`): a key of the format before `v2:`, or the call of an
interrupted task that a resumed task continues after `update_state` on the
interrupted head.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from langgraph_rollback._errors import (
    EffectInFlightError,
    EffectResultUnknownError,
    ReplayMismatchError,
    SerializationError,
)
from langgraph_rollback._models import EffectStatus
from langgraph_rollback.core.call import PENDING, Call, applied_changes, perform
from langgraph_rollback.core.codec import decode_payload, same
from langgraph_rollback.core.identity import (
    effect_id_for,
    legacy_call_key,
    unkeyed_call_key,
)
from langgraph_rollback.core.ledger import LedgerRow, utcnow
from langgraph_rollback.core.ops import (
    AwaitCall,
    Begin,
    Flow,
    ReadUpdatedFrom,
    Select,
    Update,
    do,
)
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.task import GuardMode

__all__ = ["earlier_row", "node_path", "replay"]

_REPLAY_RETURNS = frozenset(
    {
        EffectStatus.APPLIED,
        EffectStatus.COMPENSATING,
        EffectStatus.COMPENSATION_FAILED,
    }
)
_RUNS_AGAIN = frozenset(
    {
        EffectStatus.FAILED,
        EffectStatus.INTERRUPTED,
        EffectStatus.BLOCKED,
        EffectStatus.COMPENSATED,
    }
)


def node_path(task_ns: str) -> str:
    """A task namespace without its task ids (`a:1|b:2` -> `a|b`)."""
    return "|".join(part.split(":", 1)[0] for part in task_ns.split("|"))


def earlier_row(call: Call) -> Flow[LedgerRow | None]:
    """A row this call was recorded under before its current key, if any."""
    ctx = call.ctx
    if ctx.resumed:
        continued = yield from _continued(call)
        if continued is not None:
            return continued
    for old_key in _older_keys(call):
        old_id = effect_id_for(ctx.task_ns, ctx.task_id, old_key)
        query = EffectQuery(thread_id=ctx.thread_id, effect_id=old_id)
        rows = yield from do(Select(query))
        if rows:
            return rows[0]
    return None


def _older_keys(call: Call) -> list[str]:
    """Keys the same call had under older formats this ledger may hold:
    `v2:` before the database's digest key, and before `v2:`."""
    ctx = call.ctx
    args = (call.tool, call.args, call.tool_call_id, call.ordinal)
    keys = []
    if ctx.unkeyed_keys and ctx.digest_key is not None:
        keys.append(unkeyed_call_key(*args))
    if ctx.legacy_keys:
        keys.append(legacy_call_key(*args))
    return keys


def _continued(call: Call) -> Flow[LedgerRow | None]:
    """The same call of the interrupted task this resumed task continues.

    After `update_state` on an interrupted head, the resume runs the
    interrupted node again from the edited checkpoint, as a new task: its
    calls are the interrupted task's (same node path, namespace and key).
    """
    ctx = call.ctx
    origin = yield from do(ReadUpdatedFrom(ctx.thread_id, ctx.root_checkpoint_id))
    if origin is None:
        return None
    query = EffectQuery(
        thread_id=ctx.thread_id, checkpoint_id=origin, call_key=call.call_key
    )
    rows = yield from do(Select(query))
    path = node_path(ctx.task_ns)
    for row in rows:
        if row.checkpoint_ns == ctx.checkpoint_ns and node_path(row.task_ns) == path:
            return row
    return None


def replay(
    call: Call,
    existing: LedgerRow,
    row: LedgerRow,
    mode: GuardMode,
    refused_by: str,
    before: Any,
) -> Flow[Any]:
    """A recorded effect with this identity exists: return, settle or rerun it."""
    call = replace(call, effect_id=existing.effect_id, call_key=existing.call_key)
    if existing.tool != call.tool:
        raise ReplayMismatchError(
            effect_id=call.effect_id, recorded_tool=existing.tool, called_tool=call.tool
        )
    recorded = EffectStatus(existing.status)
    if existing.thread_id != call.ctx.thread_id and recorded in _RUNS_AGAIN:
        return (yield from _own_call(call, row, mode, refused_by, before))
    if recorded in _REPLAY_RETURNS:
        return _recorded_result(call, existing)
    if recorded is EffectStatus.PENDING:
        settled = yield from _settle_in_flight(call, existing)
        if settled is not existing:
            return (yield from replay(call, settled, row, mode, refused_by, before))
        yield from _reconcile(call, existing, mode, before)
        # Unchanged since before the call: it never landed; run it again.
        if existing.thread_id != call.ctx.thread_id:
            return (yield from _own_call(call, row, mode, refused_by, before))
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
    return (yield from perform(call, restarted, before))


def _own_call(
    call: Call, row: LedgerRow, mode: GuardMode, refused_by: str, before: Any
) -> Flow[Any]:
    """A copied thread performs a call its source did not complete: the
    copy's own effect, on the copy's thread."""
    own = call.on_this_thread()
    own_row = replace(
        row, effect_id=own.effect_id, idempotency_key=f"lgrb-{own.effect_id}"
    )
    stored, inserted = yield from do(Begin(own_row))
    if not inserted:
        return (yield from replay(own, stored, own_row, mode, refused_by, before))
    if mode == "block":
        raise own.blocked(refused_by)
    return (yield from perform(own, stored, before))


def _settle_in_flight(call: Call, existing: LedgerRow) -> Flow[LedgerRow]:
    """`existing` as it reads once no earlier attempt is still running.

    Raises:
        EffectInFlightError: An earlier attempt is still being performed.
    """
    ctx = call.ctx
    state = yield from do(
        AwaitCall(existing.effect_id, existing.owner, ctx.in_flight_wait)
    )
    if state == "running":
        raise EffectInFlightError(
            effect_id=existing.effect_id,
            tool=call.tool,
            thread_id=existing.thread_id,
            owner=existing.owner if existing.owner != ctx.owner else None,
        )
    if state != "finished":
        return existing
    query = EffectQuery(thread_id=existing.thread_id, effect_id=existing.effect_id)
    rows = yield from do(Select(query))
    return rows[0] if rows else existing


def _reconcile(
    call: Call, existing: LedgerRow, mode: GuardMode, before: Any
) -> Flow[None]:
    """A pending intent nobody is performing: did its call land?

    Returns when it did not (it runs again). When `observe` shows it landed,
    it is recorded as applied with its result unknown.

    Raises:
        EffectOutcomeUnknownError: Without `observe` (or under a refusing
            guard), nobody can tell.
        EffectResultUnknownError: It landed; its result was lost.
    """
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
        effect_id=existing.effect_id,
    )
    if same(before, intent_then.get("before")):
        return
    note = (
        "reconciled: the outcome was never recorded, and observe() showed the "
        "target changed, so the call landed (its result was lost)"
    )
    changes = applied_changes(
        call.serde,
        call.tool,
        result=None,
        after=before,
        notes=[note],
        result_known=False,
    )
    landed = yield from do(
        Update(call.effect_id, changes, expect=PENDING, expect_attempt=existing.attempt)
    )
    if not landed:
        raise unknown
    raise _result_unknown(call, existing)


def _restart(
    call: Call, existing: LedgerRow, row: LedgerRow, recorded: EffectStatus
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
        "owner": row.owner,
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


def _recorded_result(call: Call, row: LedgerRow) -> Any:
    outcome = decode_payload(
        call.serde,
        row.outcome_type,
        row.outcome,
        tool=row.tool,
        field="outcome",
        effect_id=row.effect_id,
    )
    if "unrecordable" in outcome:
        raise SerializationError(
            f"Effect {row.effect_id} ({row.tool!r}) was applied, but its result "
            f"could not be recorded: {outcome['unrecordable']}",
            tool=row.tool,
            field="result",
        )
    if outcome.get("result_known", True) is False:
        raise _result_unknown(call, row)
    return outcome.get("result")


def _result_unknown(call: Call, row: LedgerRow) -> EffectResultUnknownError:
    return EffectResultUnknownError(
        effect_id=row.effect_id, tool=call.tool, thread_id=row.thread_id
    )
