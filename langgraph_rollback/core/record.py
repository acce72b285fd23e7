"""Recording one tool call: the I/O-free flow ("check existing, run, record").

`record_flow` *yields* each step it needs (an observation, a ledger write, a
question to a human, the forward call) and receives the step's result, in
the manner of httpx's `Auth.auth_flow`; `langgraph_rollback.drivers` runs it
synchronously or asynchronously, so the protocol exists once:

1. arguments are serialised first, so a value the saver cannot store fails
   before anything happens (`Call.prepare`, which also builds the call's
   identity, `core.identity`);
2. the guard policy applies to irreversible (and undeclared) tools: `allow`,
   `ask` (an `interrupt()` before the call) or `block` (recorded as
   `blocked`, then `IrreversibleToolBlockedError`) (`_guard`);
3. `observe` (if declared) takes the `before` observation (`core.call.observe_before`);
4. the intent row is inserted unless the ledger holds the call already (a
   row with the same identity, or an earlier run's row of the same call:
   `core.replay.begin`, one operation when the thread has never seen the
   call's key), and committed before the forward call starts (write-ahead);
   it names this process as the call's owner;
5. an existing row is a replay (`core.replay`): its recorded result is
   returned, its unknown outcome settled, or the call run again;
6. the forward call runs, `observe` takes the `after` observation, and the
   outcome (result or error) is recorded (`core.call.perform`). An error is
   committed at once, and so is the result of a call made directly in a node
   (the node may run on for a long time). The result of a model's tool call
   (`ToolNode`, the agent middleware) travels with the saver's next write
   instead, normally the task's pending writes right after the tools return
   (`Update.with_next_write`); not under durability "exit", where LangGraph
   saves those only at the end of the run.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._models import AuditAction, EffectStatus, Reversibility
from langgraph_rollback.core.audit import (
    AUTH_USER_KEY,
    claimed,
    decider,
    keep,
    reason_of,
)
from langgraph_rollback.core.call import (
    Call,
    applied_changes,
    observe_before,
    outcome_changes,
    perform,
)
from langgraph_rollback.core.ledger import utcnow
from langgraph_rollback.core.ops import Ask, Flow, do
from langgraph_rollback.core.registry import ToolDefinition
from langgraph_rollback.core.replay import begin, replay
from langgraph_rollback.core.task import GuardMode, TaskContext, approved

__all__ = ["applied_changes", "outcome_changes", "record_flow"]

_GUARDED = frozenset({Reversibility.IRREVERSIBLE, Reversibility.UNKNOWN})


def record_flow(
    ctx: TaskContext,
    definition: ToolDefinition,
    args: dict[str, Any],
    *,
    tool_call_id: str | None,
    serde: SerializerProtocol,
    defaulted: frozenset[str] = frozenset(),
) -> Flow[Any]:
    """Record one forward call of a declared tool; return (or raise) its outcome.

    `defaulted` names the arguments the caller left at their defaults: they
    are recorded, but are not part of the call's identity.
    """
    call = Call.prepare(ctx, definition, args, tool_call_id, serde, defaulted)
    mode, refused_by = yield from _guard(call)
    status = EffectStatus.BLOCKED if mode == "block" else EffectStatus.PENDING
    row = call.intent_row(status, utcnow())
    before = None
    if mode == "allow" and definition.observe is not None:
        before, row = yield from observe_before(call, row)
    stored, inserted = yield from begin(call, row)
    if not inserted:
        return (yield from replay(call, stored, row, mode, refused_by, before))
    if mode == "block":
        raise call.blocked(refused_by)
    return (yield from perform(call, stored, before))


def _guard(call: Call) -> Flow[tuple[GuardMode, str]]:
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
    yes = approved(answer)
    server = {AUTH_USER_KEY: call.ctx.user}
    yield from keep(
        call.ctx.thread_id,
        AuditAction.ALLOW if yes else AuditAction.REFUSE,
        key=f"{call.effect_id}\0{yes}",
        by=decider(answer, server),
        effect_ids=[call.effect_id],
        reason=reason_of(answer),
        overrode=f"the guard's 'ask' for the {definition.kind.value} tool {call.tool!r}",
        details={"tool": call.tool, **claimed(answer, server)},
    )
    return ("allow" if yes else "block"), "human"
