"""Helpers for driving `record_flow` (tests of `core.record` and `core.replay`)."""

from __future__ import annotations

from typing import Any

from langgraph_rollback._models import Reversibility
from langgraph_rollback.core.ledger import LedgerRow, changed_row
from langgraph_rollback.core.ops import (
    AwaitCall,
    Begin,
    BeginIfNewKey,
    Observe,
    Outcome,
    Select,
    Update,
)
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.record import record_flow
from langgraph_rollback.core.registry import ToolDefinition
from tests.unit.build import SERDE, context, decoded, encoded, tool
from tests.unit.script import Script


def observe_path(path: str) -> str:
    return f"content of {path}"


OBSERVED = tool(observe=observe_path)
SEND_MAIL = tool("send_mail", Reversibility.IRREVERSIBLE, reason="mail is sent")


def start(
    definition: ToolDefinition = OBSERVED,
    args: dict[str, Any] | None = None,
    *,
    tool_call_id: str | None = None,
    key_seen: bool = False,
    **ctx: Any,
) -> Script:
    """The flow of one call; with `key_seen`, the thread has another effect
    with its key, so it looks for its earlier rows (`Script`)."""
    flow = record_flow(
        context(**ctx),
        definition,
        {"path": "a"} if args is None else args,
        tool_call_id=tool_call_id,
        serde=SERDE,
    )
    return Script(flow, key_seen=key_seen)


def recorded(intent: LedgerRow, existing: dict[str, Any]) -> LedgerRow:
    """`intent` as recorded with the `existing` row's fields (`outcome` a payload)."""
    fields = dict(existing)
    if "outcome" in fields:
        fields["outcome_type"], fields["outcome"] = encoded(fields["outcome"])
    return changed_row(intent, **fields)


def begin(flow: Script, existing: dict[str, Any] | None = None) -> LedgerRow:
    """Answer `Begin` (or `BeginIfNewKey`): the intent is inserted, or, given
    the `existing` row's fields, a row with this identity is already recorded."""
    op = flow.current
    intent = (op if isinstance(op, BeginIfNewKey) else flow.expect(Begin)).row
    if existing is None:
        flow.send((intent, True))
        return intent
    row = recorded(intent, existing)
    flow.send((row, False))
    return row


def recorded_pending(flow: Script, before: Any, **fields: Any) -> LedgerRow:
    """Answer `Begin` with a pending intent recorded with this `before`."""
    intent_type, intent = encoded({"args": {"path": "a"}, "before": before})
    pending = {"status": "pending", "intent_type": intent_type, "intent": intent}
    return begin(flow, pending | fields)


def gone(flow: Script, row: LedgerRow) -> None:
    """Answer `AwaitCall`: nobody is performing the earlier attempt; and the
    `Select` reading it again: `row`, as it was."""
    flow.reply(AwaitCall, "gone")
    flow.reply(
        Select,
        [row],
        query=EffectQuery(thread_id=row.thread_id, effect_id=row.effect_id),
    )


def outcome_of(update: Update) -> dict[str, Any]:
    return decoded(update.changes["outcome_type"], update.changes["outcome"])


def observe_before(flow: Script, value: Any = "A") -> None:
    flow.reply(Observe, Outcome(value=value), fn=observe_path, kwargs={"path": "a"})
