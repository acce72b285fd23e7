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
(`earlier_row`): a key of the format before `v2:`, the call of an
interrupted task that a resumed task continues after `update_state` on the
interrupted head, or the call of a run that died before its checkpoints
were stored (`_lost_run`).
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
from langgraph_rollback.core.call import (
    PENDING,
    Call,
    applied_changes,
    observe_before,
    perform,
)
from langgraph_rollback.core.codec import decode_payload, same
from langgraph_rollback.core.identity import (
    KEY_FORMAT,
    call_key_base,
    effect_id_for,
    legacy_call_key,
    unkeyed_call_key,
)
from langgraph_rollback.core.ledger import (
    LedgerRow,
    changed_row,
    default_idempotency_key,
    utcnow,
)
from langgraph_rollback.core.ops import (
    AwaitCall,
    Begin,
    BeginIfNewKey,
    ExistingCheckpoints,
    Flow,
    ReadAncestry,
    ReadHead,
    ReadSubtree,
    ReadUpdatedFrom,
    Select,
    Update,
    do,
)
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.task import GuardMode, TaskContext

__all__ = ["begin", "earlier_row", "node_path", "replay"]

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


def begin(call: Call, row: LedgerRow) -> Flow[tuple[LedgerRow, bool]]:
    """Write the call's intent `row` unless the ledger holds the call already.

    Result: the row written (and True), or the row it was recorded under
    (and False): its own identity's, or an earlier one (`earlier_row`). The
    earlier rows `_lost_run` and `_subgraph_rerun` find share the call's key
    and are rerun candidates (`core.query.rerun_candidate`), so while the
    thread has no other such effect (the common case), one `BeginIfNewKey`
    does it all. A resumed task's interrupted one (`_continued`), rows under
    older keys and the call as keyed with its defaults are looked for first.
    """
    if not call.defaulted and not call.ctx.resumed and not _older_keys(call):
        begun = yield from do(BeginIfNewKey(row))
        if begun is not None:
            return begun
    earlier = yield from earlier_row(call)
    if earlier is not None:
        return earlier, False
    return (yield from do(Begin(row)))


def earlier_row(call: Call) -> Flow[LedgerRow | None]:
    """A row this call was recorded under before its current key, if any."""
    ctx = call.ctx
    if ctx.resumed:
        continued = yield from _continued(call)
        if continued is not None:
            return continued
    lost = yield from _lost_run(call)
    if lost is not None:
        return lost
    if call.defaulted:
        with_defaults = yield from _with_defaults(call)
        if with_defaults is not None:
            return with_defaults
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


def _with_defaults(call: Call) -> Flow[LedgerRow | None]:
    """The call as recorded when defaulted arguments were part of its key."""
    ctx = call.ctx
    base = call_key_base(ctx, call.tool, call.args, call.tool_call_id)
    old_id = effect_id_for(ctx.task_ns, ctx.task_id, f"{base}#{call.ordinal}")
    rows = yield from do(Select(EffectQuery(thread_id=ctx.thread_id, effect_id=old_id)))
    return rows[0] if rows else None


def _continued(call: Call) -> Flow[LedgerRow | None]:
    """The same call of the interrupted task this resumed task continues.

    After `update_state` on an interrupted head, the resume runs the
    interrupted node again from the edited checkpoint, as a new task: its
    calls are the interrupted task's (same node path, key and place in its step).
    """
    ctx = call.ctx
    origin = yield from do(ReadUpdatedFrom(ctx.thread_id, ctx.root_checkpoint_id))
    if origin is None:
        return None
    query = EffectQuery(
        thread_id=ctx.thread_id, checkpoint_id=origin, call_key=call.call_key
    )
    rows = yield from do(Select(query))
    for row in rows:
        # A subgraph's namespace names its parent task, which is new too.
        if _same_node(row, ctx) and _same_place_in_step(call, row):
            return row
    return None


def _same_node(row: LedgerRow, ctx: TaskContext) -> bool:
    """Whether `row` was recorded by the same node (in the same subgraph)."""
    return node_path(row.checkpoint_ns) == node_path(ctx.checkpoint_ns) and (
        node_path(row.task_ns) == node_path(ctx.task_ns)
    )


def _same_place_in_step(call: Call, row: LedgerRow) -> bool:
    """Whether `row` was recorded at the task's path within its step (the
    node it pulls, or its `Send`'s index), when both are known."""
    task = _task_of(call, row)
    recorded = task.get("path")
    return (
        recorded is None
        or call.ctx.task_path is None
        or (recorded == call.ctx.task_path)
    )


def _task_of(call: Call, row: LedgerRow) -> dict[str, Any]:
    """The step and path recorded in `row`'s intent (empty for old rows)."""
    intent = decode_payload(
        call.serde, row.intent_type, row.intent, tool=row.tool, field="intent"
    )
    task = intent.get("task")
    return task if isinstance(task, dict) else {}


def _lost_run(call: Call) -> Flow[LedgerRow | None]:
    """The same call of a run whose checkpoints were never stored, if any.

    Under durability "async" (checkpoints still being written) or "exit"
    (written when the run ends), a run that dies leaves calls recorded under
    task ids derived from checkpoints that do not exist. The resumed run
    recreates those checkpoints under new ids, so its tasks are new ones; a
    call of it is the lost run's call when both are the same call (key) of
    the same node, at the same step and path within the step, on the same
    line of stored checkpoints (the lost call's base is this run's starting
    point or one of its ancestors), and no stored checkpoint shows that line
    went past that step since (a run that completed, a fork, a resume that
    carried on). In a subgraph, see `_subgraph_rerun`.
    """
    ctx = call.ctx
    if ctx.step is None:
        return None
    if ctx.checkpoint_ns:
        return (yield from _subgraph_rerun(call))
    query = EffectQuery(
        thread_id=ctx.thread_id,
        checkpoint_ns="",
        call_key=call.call_key,
        rerun_candidates=True,  # a row whose root was stored is no lost call
    )
    rows = yield from do(Select(query))
    candidates = [row for row in rows if _same_task_place(call, row)]
    if not candidates:
        return None
    stored = yield from do(
        ExistingCheckpoints(
            ctx.thread_id, [row.root_checkpoint_id for row in candidates]
        )
    )
    anchor = ctx.run_checkpoint_id or (yield from do(ReadHead(ctx.thread_id)))
    for row in candidates:
        if row.root_checkpoint_id in stored or row.base_checkpoint_id is None:
            continue
        if anchor is not None and (yield from _on_line(call, anchor, row)):
            return row
    return None


def _subgraph_rerun(call: Call) -> Flow[LedgerRow | None]:
    """The same call of an earlier run of this subgraph in the same parent task.

    A subgraph compiled with `checkpointer=False` (or whose checkpoints were
    never stored) starts over each time its parent task runs again (after a
    failure, an `interrupt()`, a retry): new checkpoints, so new task ids.
    Its namespace names the parent task (and which of the parent's subgraph
    calls it is), so a row of that namespace, under the same root
    checkpoint, of the same node at the same step and path, with the same
    call key, is this call.
    """
    ctx = call.ctx
    query = EffectQuery(
        thread_id=ctx.thread_id,
        checkpoint_id=ctx.root_checkpoint_id,
        call_key=call.call_key,
        rerun_candidates=True,  # every subgraph row is one
    )
    rows = yield from do(Select(query))
    for row in rows:
        if _same_task_place(call, row):
            return row
    return None


def _same_task_place(call: Call, row: LedgerRow) -> bool:
    """Whether `row` is the same call of the same node at the same step and
    path, in the same namespace, by another task."""
    ctx = call.ctx
    if row.effect_id == call.effect_id or row.task_id == ctx.task_id:
        return False
    if row.checkpoint_ns != ctx.checkpoint_ns or not _same_node(row, ctx):
        return False
    task = _task_of(call, row)
    return task.get("step") == ctx.step and task.get("path") == ctx.task_path


def _on_line(call: Call, anchor: str, row: LedgerRow) -> Flow[bool]:
    """Whether the lost `row`'s base is `anchor` or an ancestor of it, and no
    stored checkpoint after that base reached the row's step since.

    A task of step `s` starts from a checkpoint of step `s - 1`; a stored
    one (other than this task's own) means a run went on past the lost call
    (it completed under "exit", or a resume or fork carried on), so the
    lost call is not this one.
    """
    ctx = call.ctx
    base = row.base_checkpoint_id
    assert base is not None and ctx.step is not None
    ancestry = yield from do(ReadAncestry(ctx.thread_id, anchor, base))
    if not ancestry or ancestry[-1].checkpoint_id != base:
        return False
    later = yield from do(ReadSubtree(ctx.thread_id, base))
    return not any(
        link.step is not None
        and link.step >= ctx.step - 1
        and link.checkpoint_id != ctx.root_checkpoint_id
        for link in later
    )


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
    if recorded is EffectStatus.FAILED:
        retried = yield from _retried_in_task(call, existing)
        if retried is not None:
            return (yield from replay(call, retried, row, mode, refused_by, before))
    if recorded is EffectStatus.PENDING:
        settled = yield from _settle_in_flight(call, existing, mode, before)
        if settled != existing:
            return (yield from replay(call, settled, row, mode, refused_by, before))
        if _started_here(call, existing, mode):
            # A flow of this process started that attempt and ended without
            # its outcome: it may have acted after `before` was taken.
            before, row = yield from observe_before(call, row)
        moved_on = yield from _reconcile(call, existing, mode, before)
        if moved_on is not None:
            return (yield from replay(call, moved_on, row, mode, refused_by, before))
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
    if restarted is None:
        moved_on = yield from _after_lost_restart(call, existing)
        return (yield from replay(call, moved_on, row, mode, refused_by, before))
    return (yield from perform(call, restarted, before))


def _retried_in_task(call: Call, failed: LedgerRow) -> Flow[LedgerRow | None]:
    """The identical call the task made after `failed` raised, if it made one.

    A node that catches a call's error and makes the same call again (a retry
    loop of its own) recorded both; re-run from its top (an `interrupt()`
    resumed), it makes the first call again, which stands for the retry that
    followed it: the retry's outcome is replayed, and the next identical call
    takes the ordinal after it.
    """
    key, _, ordinal = failed.call_key.rpartition("#")
    if not key.startswith(f"{KEY_FORMAT}:") or not ordinal.isdigit():
        return None
    next_key = f"{key}#{int(ordinal) + 1}"
    next_id = effect_id_for(failed.task_ns, failed.task_id, next_key)
    query = EffectQuery(thread_id=failed.thread_id, effect_id=next_id)
    rows = yield from do(Select(query))
    if not rows:
        return None
    call.ctx.next_ordinal(key)
    return rows[0]


def _own_call(
    call: Call, row: LedgerRow, mode: GuardMode, refused_by: str, before: Any
) -> Flow[Any]:
    """A copied thread performs a call its source did not complete: the
    copy's own effect, on the copy's thread."""
    own = call.on_this_thread()
    own_row = changed_row(
        row,
        effect_id=own.effect_id,
        idempotency_key=default_idempotency_key(own.effect_id),
    )
    stored, inserted = yield from do(Begin(own_row))
    if not inserted:
        return (yield from replay(own, stored, own_row, mode, refused_by, before))
    if mode == "block":
        raise own.blocked(refused_by)
    return (yield from perform(own, stored, before))


def _settle_in_flight(
    call: Call, existing: LedgerRow, mode: GuardMode, before: Any
) -> Flow[LedgerRow]:
    """`existing` as it reads once no earlier attempt is still running.

    An intent owned by a process on another host (another container: its
    pids cannot be checked from here) is settled by `observe` when the
    target shows the call landed; otherwise it may still be running.

    Raises:
        EffectInFlightError: An earlier attempt is (or may be) still being
            performed.
        EffectResultUnknownError: Its owner is on another host, and
            `observe` shows the call landed; its result was lost.
    """
    ctx = call.ctx
    state = yield from do(
        AwaitCall(existing.effect_id, existing.owner, ctx.in_flight_wait)
    )
    if state == "elsewhere" and _observes(call, mode):
        moved_on = yield from _reconcile(call, existing, mode, before)
        if moved_on is not None:
            return moved_on
    if state in ("running", "elsewhere"):
        raise EffectInFlightError(
            effect_id=existing.effect_id,
            tool=call.tool,
            thread_id=existing.thread_id,
            owner=existing.owner if existing.owner != ctx.owner else None,
        )
    # Finished or gone: read it again, for the attempt that was running when
    # `existing` was read (another flow of this process) may have ended since.
    found = yield from _reread(existing)
    return existing if found is None else found


def _observes(call: Call, mode: GuardMode) -> bool:
    """Whether `observe` may settle a pending call (declared, and the guard
    lets the call run)."""
    return call.definition.observe is not None and mode == "allow"


def _started_here(call: Call, existing: LedgerRow, mode: GuardMode) -> bool:
    """Whether `observe` settles `existing`, whose attempt this process
    started (the owner recorded is this process)."""
    mine = existing.owner is not None and existing.owner == call.ctx.owner
    return mine and _observes(call, mode)


def _reread(existing: LedgerRow) -> Flow[LedgerRow | None]:
    query = EffectQuery(thread_id=existing.thread_id, effect_id=existing.effect_id)
    rows = yield from do(Select(query))
    return rows[0] if rows else None


def _after_lost_restart(call: Call, existing: LedgerRow) -> Flow[LedgerRow]:
    """Another flow restarted (or settled) the call first: its row as it
    reads now, to replay (a pending one waits for that attempt; one that
    nobody performs is reconciled, as any abandoned intent).

    Raises:
        EffectOutcomeUnknownError: It cannot be read, or reads as it did
            before the restart was refused (nothing to replay but the same
            refused restart).
    """
    found = yield from _reread(existing)
    if found is None or found == existing:
        raise call.unknown(existing.idempotency_key)
    return found


def _reconcile(
    call: Call, existing: LedgerRow, mode: GuardMode, before: Any
) -> Flow[LedgerRow | None]:
    """A pending intent nobody is performing: did its call land?

    Returns None when it did not (it runs again). When `observe` shows it
    landed, it is recorded as applied with its result unknown. When that
    record is refused because another flow restarted (or settled) the call
    since `existing` was read, the target changed by that flow's call, not
    by `existing`'s: the row as it reads now is returned, to replay.

    Raises:
        EffectOutcomeUnknownError: Without `observe` (or under a refusing
            guard), nobody can tell.
        EffectResultUnknownError: It landed; its result was lost.
    """
    unknown = call.unknown(existing.idempotency_key)
    if not _observes(call, mode):
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
        return None
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
        return (yield from _after_lost_restart(call, existing))
    raise _result_unknown(call, existing)


def _restart(
    call: Call, existing: LedgerRow, row: LedgerRow, recorded: EffectStatus
) -> Flow[LedgerRow | None]:
    """Mark a recorded call as started again (a new attempt); return its row,
    or None when another flow restarted or settled it first."""
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
            starts_call=True,
        )
    )
    if not restarted:
        return None
    return changed_row(existing, **changes)


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
