"""The audit trail: every human decision, kept in the ledger.

A decision is an `AuditEntry` (who, when, why, what it overrode) written with
`WriteAudit` where it is taken: `resolve_effect`, a rollback that forces
through conflicts or skips effects, a `RollbackNode` approval or rejection,
and the guard's `"ask"`. Who answered an `interrupt()` is the Agent Server's
authenticated user (`configurable.langgraph_auth_user_id`, set by
langgraph-api's `models/run.py` for every run) when there is one: a resume
value's `by` cannot replace it, and a differing name it claims is kept in the
entry's details as "claimed_by". Without an authenticated user it is the
answer's `by`, else "unknown".

An entry's id is derived from the decision, so a decision LangGraph replays
on resume (an `interrupt()` answer returned again) is kept once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback._models import AuditAction, AuditEntry
from langgraph_rollback.core.ops import AuditRow, Flow, ReadAudit, WriteAudit, do

__all__ = [
    "AUTH_USER_KEY",
    "UNKNOWN",
    "attributed",
    "audit_flow",
    "check_by",
    "claimed",
    "decider",
    "entry_from_row",
    "keep",
    "reason_of",
]

AUTH_USER_KEY = "langgraph_auth_user_id"
"""Where the Agent Server puts the authenticated user's identity."""
UNKNOWN = "unknown"


def decider(answer: Any = None, configurable: Mapping[str, Any] | None = None) -> str:
    """Who took a decision: the server's authenticated user, else the
    answer's `by`, else "unknown"."""
    return _text(configurable, AUTH_USER_KEY) or _text(answer, "by") or UNKNOWN


def claimed(
    answer: Any = None, configurable: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Details for an entry whose answer names someone other than the
    authenticated user: {"claimed_by": that name}, else {}."""
    user, by = _text(configurable, AUTH_USER_KEY), _text(answer, "by")
    return {"claimed_by": by} if user and by and by != user else {}


def attributed(
    by: str | None, configurable: Mapping[str, Any] | None
) -> tuple[str | None, str | None]:
    """Who a caller's decision (`rollback(by=)`, `resolve_effect(by=)`) is
    kept as, and the name it claimed if that differs: the server's
    authenticated user when the call runs under one, as for an answer; else
    `by` (None when not given)."""
    user = _text(configurable, AUTH_USER_KEY)
    said = _text({"by": by}, "by")
    return (user or said), claimed({"by": by}, configurable).get("claimed_by")


def _text(mapping: Any, key: str) -> str | None:
    """`mapping[key]` stripped, when it is non-blank text."""
    if isinstance(mapping, Mapping):
        value = mapping.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def reason_of(answer: Any) -> str | None:
    """The `reason` a human gave with an answer, if any."""
    return _text(answer, "reason")


def check_by(by: str | None, reason: str | None) -> None:
    """Check a caller's `by=` and `reason=`.

    Raises:
        InvalidConfigError: Not a non-empty string (or None).
    """
    for name, value in (("by", by), ("reason", reason)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidConfigError(
                f"{name}={value!r} is not text. Fix: pass who decided, or why, "
                f"as a non-empty string (e.g. {name}='alice'), or leave it out."
            )


def keep(
    thread_id: str,
    action: AuditAction,
    *,
    key: str,
    by: str,
    effect_ids: Iterable[str] = (),
    rollback_id: str | None = None,
    reason: str | None = None,
    overrode: str = "",
    details: Mapping[str, Any] | None = None,
) -> Flow[AuditEntry]:
    """Write one decision; `key` names it uniquely on the thread."""
    digest = hashlib.sha256(f"{thread_id}\0{action}\0{key}".encode()).hexdigest()
    entry = AuditEntry(
        id=f"audit-{digest[:32]}",
        thread_id=thread_id,
        at=datetime.now(UTC),
        by=by,
        action=action,
        effect_ids=list(effect_ids),
        rollback_id=rollback_id,
        reason=reason,
        overrode=overrode,
        details=dict(details or {}),
    )
    row = AuditRow(
        audit_id=entry.id,
        thread_id=thread_id,
        at=entry.at.isoformat(),
        entry=entry.model_dump_json(),
    )
    yield from do(WriteAudit(row))
    return entry


def audit_flow(thread_id: str, limit: int | None = None) -> Flow[list[AuditEntry]]:
    """A thread's decisions, newest first."""
    rows = yield from do(ReadAudit(thread_id, limit))
    return [entry_from_row(row) for row in rows]


def entry_from_row(row: AuditRow) -> AuditEntry:
    """An `AuditEntry` from its stored JSON (plain data; nothing is imported)."""
    return AuditEntry.model_validate(json.loads(row.entry))
