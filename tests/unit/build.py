"""Plain data for driving the core's flows: rows, effects, tasks, tools, plans.

Nothing here touches a database or runs a graph: a `LedgerRow` is built the
way a store would return it, with its payloads encoded by `SERDE`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from langgraph_rollback._models import AuditEntry, Effect, Reversibility
from langgraph_rollback.core.audit import entry_from_row
from langgraph_rollback.core.codec import decode_payload, encode_payload
from langgraph_rollback.core.ledger import LedgerRow, effect_from_row
from langgraph_rollback.core.ledger_codec import LedgerCodec
from langgraph_rollback.core.ops import WriteAudit
from langgraph_rollback.core.plan import Decision, PlannedStep, RollbackPlan
from langgraph_rollback.core.registry import ToolDefinition, ToolRegistry
from langgraph_rollback.core.task import TaskContext
from tests.unit.script import Script

SERDE = LedgerCodec()
T0 = "2025-01-01T00:00:00+00:00"


class Scope:
    """Stands for a task's preparation (ordinals are counted per scope)."""


def context(**fields: Any) -> TaskContext:
    """A task of thread "t" that started from root checkpoint "c1"."""
    values: dict[str, Any] = {
        "store": object(),
        "thread_id": "t",
        "task_ns": "node:task-1",
        "checkpoint_ns": "",
        "checkpoint_id": "c1",
        "root_checkpoint_id": "c1",
        "task_id": "task-1",
        "run_id": None,
        "attempt": 1,
        "scope": Scope(),
    }
    return TaskContext(**(values | fields))


def undo_write(effect: Effect) -> str:
    return f"restored {effect.args.get('path')}"


def tool(
    name: str = "write",
    kind: Reversibility = Reversibility.REVERSIBLE,
    *,
    undo: Any = undo_write,
    observe: Callable[..., Any] | None = None,
    **fields: Any,
) -> ToolDefinition:
    """A declared tool (an irreversible one has no inverse)."""
    if kind is Reversibility.IRREVERSIBLE:
        undo = None
    fields.setdefault("origin", f"tests.{name}")
    return ToolDefinition(name=name, kind=kind, undo=undo, observe=observe, **fields)


def registry(*definitions: ToolDefinition) -> ToolRegistry:
    tools = ToolRegistry()
    for definition in definitions:
        tools.register(definition)
    return tools


def encoded(payload: dict[str, Any] | None) -> tuple[str | None, bytes | None]:
    if payload is None:
        return None, None
    return encode_payload(SERDE, payload, tool="test")


def decoded(type_: str | None, data: bytes | None) -> dict[str, Any]:
    return decode_payload(SERDE, type_, data, tool="test", field="test")


def row(
    effect_id: str = "e1",
    *,
    status: str = "applied",
    tool: str = "write",
    kind: str = "reversible",
    args: dict[str, Any] | None = None,
    before: Any = None,
    outcome: dict[str, Any] | None = None,
    undo: dict[str, Any] | None = None,
    root: str = "c1",
    inside: str | None = None,
    task: dict[str, Any] | None = None,
    **fields: Any,
) -> LedgerRow:
    """A ledger row as a store returns it; `outcome` and `undo` are payloads;
    `inside` names the container effect it was recorded in, `task` the step
    and path of its task."""
    intent_payload: dict[str, Any] = {
        "args": {"path": "a"} if args is None else args,
        "before": before,
    }
    if inside is not None:
        intent_payload["inside"] = inside
    if task is not None:
        intent_payload["task"] = task
    intent_type, intent = encoded(intent_payload)
    outcome_type, outcome_data = encoded(outcome)
    undo_type, undo_data = encoded(undo)
    values: dict[str, Any] = {
        "effect_id": effect_id,
        "thread_id": "t",
        "checkpoint_ns": "",
        "task_ns": "node:task-1",
        "checkpoint_id": root,
        "root_checkpoint_id": root,
        "task_id": "task-1",
        "call_key": f"call:{effect_id}",
        "tool_call_id": None,
        "ordinal": None,
        "tool": tool,
        "kind": kind,
        "status": status,
        "attempt": 1,
        "idempotency_key": f"lgrb-{effect_id}",
        "run_id": None,
        "intent_type": intent_type,
        "intent": intent,
        "outcome_type": outcome_type,
        "outcome": outcome_data,
        "created_at": T0,
        "updated_at": T0,
        "completed_at": None,
        "base_checkpoint_id": None,
        "undo_type": undo_type,
        "undo": undo_data,
        "seq": 1,
    }
    return LedgerRow(**(values | fields))


def effect(effect_id: str = "e1", **fields: Any) -> Effect:
    """The `Effect` of `row(effect_id, **fields)`."""
    return effect_from_row(row(effect_id, **fields), SERDE)


def step(
    the_effect: Effect,
    decision: Decision = Decision.UNDO,
    *,
    reason: str = "reversible; undo with undo_write",
    **fields: Any,
) -> PlannedStep:
    return PlannedStep(effect=the_effect, decision=decision, reason=reason, **fields)


def plan(
    *steps: PlannedStep,
    head: str = "c3",
    target: str = "c1",
    reached_copy: str | None = None,
    orphans: list[Effect] | None = None,
) -> RollbackPlan:
    """A plan of thread "t" from `head` back to `target`."""
    return RollbackPlan(
        thread_id="t",
        target_checkpoint_id=target,
        head_checkpoint_id=head,
        path=[head, target] if head != target else [target],
        reached_copy=reached_copy,
        target_copies=[target],
        steps=list(steps),
        orphans=orphans or [],
        created_at=datetime.now(UTC),
    )


def audited(flow: Script) -> AuditEntry:
    """The decision the flow keeps now (`WriteAudit`), answered as a store does."""
    write = flow.reply(WriteAudit, None)
    return entry_from_row(write.row)
