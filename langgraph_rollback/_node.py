"""`RollbackNode`: undo inside a running graph, then route on to replan.

Out of the graph, `rollback()` restores the state by writing a new head
checkpoint. Inside a running graph that is not possible (the run owns the
head), so the node undoes the effects, then *returns* the target's values as
its update: reducer channels wrapped in `langgraph.types.Overwrite`, plain
values for last-value channels, `None` for keys that were empty at the target
(a node's update cannot unset a channel), plus the report, and routes on with
`Command(goto=...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.channels.base import BaseChannel
from langgraph.channels.binop import BinaryOperatorAggregate
from langgraph.constants import END
from langgraph.types import Command, Overwrite

from langgraph_rollback._errors import (
    CheckpointNotFoundError,
    DurabilityError,
    InvalidConfigError,
    InvalidTargetError,
)
from langgraph_rollback._langgraph import (
    current_channels,
    current_durability,
    current_task,
    empty_value,
)
from langgraph_rollback._liveness import new_holder
from langgraph_rollback._models import AuditAction
from langgraph_rollback.core.audit import claimed, decider, keep, reason_of
from langgraph_rollback.core.config import checkpoint_config
from langgraph_rollback.core.execute import (
    OnConflict,
    OnFailure,
    OnIrreversible,
    Policies,
    execute_flow,
    holding_lock,
    new_rollback_id,
    rejected_report,
    skip_ids,
)
from langgraph_rollback.core.ops import Ask, Flow, ReadCheckpoint, do
from langgraph_rollback.core.plan import (
    THREAD_START,
    Decision,
    RollbackPlan,
    plan_flow,
)
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.report import RollbackReport
from langgraph_rollback.core.targets import (
    Target,
    is_target,
    parse_target,
    run_start,
    target_flow,
)
from langgraph_rollback.core.task import approved
from langgraph_rollback.core.voice import Voice
from langgraph_rollback.drivers import run_async, run_sync
from langgraph_rollback.savers.base import BaseRollbackSaver

__all__ = ["RollbackNode"]


TargetFn = Callable[[Any, RunnableConfig], Target]


class RollbackNode(RunnableLambda[Any, Command[Any]]):
    """A prebuilt node that undoes effects and hands the report to a replanner.

    ```python
    builder.add_node("undo", RollbackNode(to=run_start(), goto="planner"))
    ```

    On each run the node (1) picks its target, (2) plans the rollback from the
    checkpoint it started from back to the target, (3) optionally asks a
    human to approve the plan with `interrupt()` (planning and asking happen
    before the thread's rollback lock is taken; the ledger's claims keep any
    effect from being undone twice), (4) takes the lock and runs the inverses
    newest-first, and (5) returns the target's values, the report in
    `report_key`, and the report as a message in `messages_key` when the
    state has that channel, routing to `goto`.

    When the rollback does not complete (aborted, failed, rejected), the state
    is left as it is apart from the report and message: the world is not
    back at the target, so the state must not claim it is.

    The graph must run with `durability="sync"`, so that every checkpoint the
    node walks back through is stored; otherwise the node raises
    `DurabilityError`.

    Args:
        to: Where to go back to, walking back from the checkpoint the node
            started from: any target `rollback()` takes (`run_start()`, the
            default; `before_node(name)`; `"first"`; a checkpoint or effect
            id), or a callable `(state, thread_config) -> target`, where
            `thread_config` names the thread's root namespace (pass it to
            `saver.list` or `graph.get_state_history`).
        goto: Where to route after the rollback: a node name (default
            `END`), or a callable `(report) -> node name`.
        approval: Ask a human first: the node calls `interrupt()` with the
            plan; resume with `True`/"approve", `False`/"reject", or
            `{"approve": True, "skip": [effect ids]}` to leave some effects.
        report_key: State key for the report summary (a plain dict), or None.
        messages_key: State key of the message list the report message is
            appended to, when the state has it; None to not add one.
        on_irreversible, on_conflict, on_failure, inverse_timeout: Policies,
            as for `rollback()`.
        registry: Where to find inverses; defaults to the saver's.
    """

    def __init__(
        self,
        *,
        to: Target | TargetFn | None = None,
        goto: str | Callable[[RollbackReport], str] = END,
        approval: bool = False,
        report_key: str | None = "rollback_report",
        messages_key: str | None = "messages",
        on_irreversible: OnIrreversible = "skip",
        on_conflict: OnConflict = "abort",
        on_failure: OnFailure = "stop",
        inverse_timeout: float | None = None,
        registry: ToolRegistry | None = None,
        name: str = "rollback",
    ) -> None:
        self.to: Target | TargetFn = to if to is not None else run_start()
        if not is_target(self.to) and not callable(self.to):
            raise InvalidTargetError(
                f"RollbackNode(to={to!r}): not a target. Fix: pass run_start(), "
                "before_node('name'), 'first', a checkpoint or effect id, or a "
                "function (state, config) -> target.",
                target=repr(to),
            )
        self.goto = goto
        self.approval = approval
        self.report_key = report_key
        self.messages_key = messages_key
        self.policies = Policies(
            on_irreversible=on_irreversible,
            on_conflict=on_conflict,
            on_failure=on_failure,
            inverse_timeout=inverse_timeout,
        )
        self.registry = registry
        super().__init__(self._node_sync, afunc=self._node_async, name=name)

    # --- sync and async drivers of one flow -------------------------------------

    def _node_sync(self, state: Any, config: RunnableConfig) -> Command[Any]:
        saver, thread_id, head = _where()
        flow = self._node_flow(saver, thread_id, head, state, _configurable(config))
        report, values = run_sync(flow, saver)
        return self._command(state, report, values)

    async def _node_async(self, state: Any, config: RunnableConfig) -> Command[Any]:
        saver, thread_id, head = _where()
        flow = self._node_flow(saver, thread_id, head, state, _configurable(config))
        report, values = await run_async(flow, saver)
        return self._command(state, report, values)

    # --- I/O-free parts ----------------------------------------------------------

    def _node_flow(
        self,
        saver: BaseRollbackSaver,
        thread_id: str,
        head: str,
        state: Any,
        configurable: Mapping[str, Any] | None = None,
    ) -> Flow[tuple[RollbackReport, dict[str, Any] | None]]:
        """Target, plan, approval, undo under the lock; the target's values if ok."""
        started = datetime.now(UTC)
        target = yield from self._target_flow(thread_id, head, state)
        registry = self.registry if self.registry is not None else saver.registry
        plan = yield from plan_flow(
            thread_id,
            target,
            registry=registry,
            serde=saver.ledger_codec,
            head=head,
            in_run=True,
        )
        rollback_id = new_rollback_id()
        policies = yield from self._approve(plan, head, rollback_id, configurable)
        if policies is None:
            message = "A human rejected the plan."
            return rejected_report(plan, rollback_id, started, message), None
        holder = new_holder()
        execute = execute_flow(
            plan,
            policies=policies,
            registry=registry,
            serde=saver.ledger_codec,
            rollback_id=rollback_id,
            restore=None,
            started_at=started,
            owner=holder.owner,
        )
        report = yield from holding_lock(thread_id, holder, execute)
        if not report.ok:
            return report, None
        return report, (yield from self._values_flow(thread_id, target))

    def _target_flow(self, thread_id: str, head: str, state: Any) -> Flow[str]:
        raw = self.to
        if is_target(raw):
            to: Target = raw
        else:
            thread_config: RunnableConfig = {
                "configurable": {"thread_id": thread_id, "checkpoint_ns": ""}
            }
            to = cast(TargetFn, raw)(state, thread_config)
        selector = parse_target(to, thread_id=thread_id, voice=Voice.PYTHON)
        return (
            yield from target_flow(selector, thread_id, head=head, voice=Voice.PYTHON)
        )

    def _values_flow(self, thread_id: str, target: str) -> Flow[dict[str, Any]]:
        if target == THREAD_START:
            return {}  # the thread's empty start
        found = yield from do(ReadCheckpoint(checkpoint_config(thread_id, target)))
        if found is None:  # pragma: no cover - planning checked it exists
            raise CheckpointNotFoundError(checkpoint_id=target, thread_id=thread_id)
        return dict(found.checkpoint["channel_values"])

    def _approve(
        self,
        plan: RollbackPlan,
        head: str,
        rollback_id: str,
        configurable: Mapping[str, Any] | None,
    ) -> Flow[Policies | None]:
        """The policies to execute with, or None when a human rejected the plan.

        The answer is kept in the audit trail, once per question (a resume
        that asks again gets the same answer and keeps no second entry).
        """
        who = decider(None, configurable)
        if not self.approval:
            return self.policies.with_skip((), by=who)
        answer = yield from do(Ask(_approval_question(plan)))
        who, why = decider(answer, configurable), reason_of(answer)
        yes = approved(answer)
        skip = answer.get("skip", ()) if isinstance(answer, dict) else ()
        if isinstance(skip, str):
            skip = [skip]  # one effect id, from a human's answer
        planned = [s.effect.id for s in plan.steps if s.decision is Decision.UNDO]
        yield from keep(
            plan.thread_id,
            AuditAction.APPROVE if yes else AuditAction.REJECT,
            key=f"{head}\0{plan.target_checkpoint_id}",
            by=who,
            effect_ids=planned,
            rollback_id=rollback_id,
            reason=why,
            overrode="" if yes else "the plan: nothing is undone",
            details={
                **({"skip": sorted(skip_ids(skip))} if yes and skip else {}),
                **claimed(answer, configurable),
            },
        )
        if not yes:
            return None
        policies = self.policies.with_skip(skip, by=who, reason=why, approver=True)
        # The approver's skips are kept as theirs, with the name they claimed.
        claimed_by = claimed(answer, configurable).get("claimed_by")
        return replace(policies, claimed_by=claimed_by)

    def _command(
        self, state: Any, report: RollbackReport, values: dict[str, Any] | None
    ) -> Command[Any]:
        channels = current_channels() or {}
        update: dict[str, Any] = {}
        if values is not None:
            update = restore_update(channels, state, values)
        if self.report_key is not None and self.report_key in channels:
            update[self.report_key] = report.summary()
        if self.messages_key is not None and self.messages_key in channels:
            message = report.to_message()
            base = update.get(self.messages_key)
            if isinstance(base, Overwrite):
                update[self.messages_key] = Overwrite([*(base.value or []), message])
            else:
                update[self.messages_key] = [message]
        goto = self.goto(report) if callable(self.goto) else self.goto
        return Command(update=update, goto=goto)


def _configurable(config: RunnableConfig | None) -> Mapping[str, Any]:
    return (config or {}).get("configurable") or {}


def _where() -> tuple[BaseRollbackSaver, str, str]:
    ctx = current_task()
    if ctx is None:
        raise InvalidConfigError(
            "RollbackNode runs only as a node of a graph compiled with a rollback "
            "saver. Fix: `builder.compile(checkpointer=SqliteRollbackSaver(...))`, "
            "and invoke with a `thread_id`."
        )
    # LangGraph's default when the run names none is "async".
    durability = current_durability() or "async"
    if durability != "sync":
        raise DurabilityError(durability=durability, what="RollbackNode")
    if ctx.checkpoint_ns:
        raise InvalidConfigError(
            "RollbackNode runs in a subgraph; it undoes and restores the root "
            "graph's state. Fix: add it to the root graph."
        )
    assert isinstance(ctx.store, BaseRollbackSaver)
    return ctx.store, ctx.thread_id, ctx.checkpoint_id


def restore_update(
    channels: Mapping[str, BaseChannel[Any, Any, Any]],
    state: Any,
    values: Mapping[str, Any],
) -> dict[str, Any]:
    """The update that sets each state key back to its value at the target.

    Reducer channels get `Overwrite(value)`; last-value channels the value;
    keys empty at the target but set now get `None` (or an empty `Overwrite`
    for reducers), because an update cannot unset a channel.
    """
    keys = set(values)
    if isinstance(state, Mapping):
        keys |= set(state)
    update: dict[str, Any] = {}
    for key in sorted(keys):
        channel = channels.get(key)
        if channel is None or key.startswith(("branch:", "__")):
            continue
        reducer = isinstance(channel, BinaryOperatorAggregate) or (
            type(channel).__name__ == "DeltaChannel"
        )
        if key in values:
            update[key] = Overwrite(values[key]) if reducer else values[key]
        elif reducer:
            update[key] = Overwrite(empty_value(channel))
        else:
            update[key] = None
    return update


def _approval_question(plan: RollbackPlan) -> dict[str, Any]:
    """What `RollbackNode(approval=True)` asks a human (the `interrupt()` value)."""
    return {
        "type": "rollback_approval",
        "question": "Approve this rollback?",
        "plan": str(plan),
        "target_checkpoint_id": plan.target_checkpoint_id,
        "effects": [
            {
                "id": step.effect.id,
                "seq": step.effect.seq,
                "tool": step.effect.tool,
                "args": step.effect.args,
                "decision": step.decision.value,
                "reason": step.reason,
            }
            for step in plan.steps
        ],
    }
