"""The ledger's rows: the column list, written once, and the row codec.

`LedgerRow` is one row exactly as a store keeps it (payloads encoded); its
fields, in order, are the ledger's columns (`COLUMNS`), which the SQL stores
select by name. A test checks every migration's table against them.
`effect_from_row` turns a row into the public `Effect`.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._models import Effect, EffectStatus, Reversibility
from langgraph_rollback.core.codec import decode_payload

__all__ = [
    "BLOB_COLUMNS",
    "COLUMNS",
    "INSERT_COLUMNS",
    "LedgerRow",
    "changed_row",
    "default_idempotency_key",
    "effect_from_row",
    "effect_of",
    "insert_values",
    "row_from_mapping",
    "row_from_tuple",
    "utcnow",
]


def utcnow() -> str:
    """The current time as the ISO-8601 UTC text the ledger stores."""
    return datetime.now(UTC).isoformat()


class LedgerRow(NamedTuple):
    """One ledger row, payloads encoded, exactly as a store keeps it.

    A named tuple: immutable, and built from a store's row tuple without a
    per-field step (a store builds one for every row it reads or writes).
    """

    effect_id: str
    thread_id: str
    checkpoint_ns: str
    task_ns: str
    checkpoint_id: str
    root_checkpoint_id: str
    task_id: str
    call_key: str
    tool_call_id: str | None
    ordinal: int | None
    tool: str
    kind: str
    status: str
    attempt: int
    idempotency_key: str
    run_id: str | None
    intent_type: str | None
    intent: bytes | None
    outcome_type: str | None
    outcome: bytes | None
    created_at: str
    updated_at: str
    completed_at: str | None
    base_checkpoint_id: str | None = None
    """The thread's newest persisted root checkpoint when the intent was
    written (or the checkpoint the run was started from); set by the store."""
    undo_type: str | None = None
    undo: bytes | None = None
    undo_attempts: int = 0
    rollback_id: str | None = None
    compensated_at: str | None = None
    owner: str | None = None
    """The process performing the current attempt's call or inverse (host,
    pid, start time), so nobody restarts or rolls back a call still in
    flight; None once its outcome is recorded."""
    seq: int = 0
    """Assigned by the store on insert; 0 until then."""


COLUMNS: tuple[str, ...] = LedgerRow._fields
"""The ledger's columns, in the order stores select them."""

INSERT_COLUMNS: tuple[str, ...] = tuple(
    c for c in COLUMNS if c not in ("seq", "base_checkpoint_id")
)
"""The columns an intent's insert binds (the store sets `seq` and the base)."""

BLOB_COLUMNS = frozenset({"intent", "outcome", "undo"})

_INSERT_VALUES = operator.attrgetter(*INSERT_COLUMNS)


def default_idempotency_key(effect_id: str) -> str:
    """The idempotency key every effect is given (`Effect.idempotency_key`)."""
    return f"lgrb-{effect_id}"


_IDEMPOTENCY_AT = INSERT_COLUMNS.index("idempotency_key")


def insert_values(row: LedgerRow) -> tuple[Any, ...]:
    """The row's values in `INSERT_COLUMNS` order (an intent's insert).

    An idempotency key that is the default one (`default_idempotency_key`)
    is stored as "" (the column is NOT NULL) and read back whole
    (`row_from_tuple`): it is derived from the effect id, which the row
    holds already.
    """
    values: tuple[Any, ...] = _INSERT_VALUES(row)
    if row.idempotency_key == default_idempotency_key(row.effect_id):
        at = _IDEMPOTENCY_AT
        values = (*values[:at], "", *values[at + 1 :])
    return values


_COLUMN_AT = {name: at for at, name in enumerate(COLUMNS)}


def changed_row(row: LedgerRow, /, **changes: Any) -> LedgerRow:
    """`row` with `changes` (`LedgerRow._replace`, but a name that is no
    column raises `TypeError`, as a keyword argument would)."""
    values = list(row)
    for name, value in changes.items():
        at = _COLUMN_AT.get(name)
        if at is None:
            raise TypeError(f"a ledger row has no column {name!r}")
        values[at] = value
    return LedgerRow._make(values)


def row_from_mapping(values: Mapping[str, Any]) -> LedgerRow:
    """Build a row from a store's column -> value mapping."""
    data = {name: values[name] for name in COLUMNS}
    for name in BLOB_COLUMNS:
        if data[name] is not None:
            data[name] = bytes(data[name])
    if not data["idempotency_key"]:
        data["idempotency_key"] = default_idempotency_key(data["effect_id"])
    return LedgerRow(**data)


_BLOB_AT = tuple(i for i, name in enumerate(COLUMNS) if name in BLOB_COLUMNS)
_STORED_IDEMPOTENCY_AT = COLUMNS.index("idempotency_key")
_EFFECT_ID_AT = COLUMNS.index("effect_id")


def row_from_tuple(values: tuple[Any, ...]) -> LedgerRow:
    """Build a row from a tuple in `COLUMNS` order (`LedgerRow`'s fields)."""
    if len(values) != len(COLUMNS):
        raise ValueError(f"a ledger row has {len(COLUMNS)} columns, not {len(values)}")
    for at in _BLOB_AT:
        if type(values[at]) not in _BLOB_TYPES:
            # A driver's buffer (memoryview, bytearray) in a payload column.
            values = tuple(
                bytes(v) if i in _BLOB_AT and v is not None else v
                for i, v in enumerate(values)
            )
            break
    if not values[_STORED_IDEMPOTENCY_AT]:
        at = _STORED_IDEMPOTENCY_AT
        key = default_idempotency_key(values[_EFFECT_ID_AT])
        values = (*values[:at], key, *values[at + 1 :])
    return LedgerRow._make(values)


_BLOB_TYPES = (bytes, type(None))


def effect_of(
    row: LedgerRow,
    intent: Mapping[str, Any],
    outcome: Mapping[str, Any] | None = None,
    undo: Mapping[str, Any] | None = None,
) -> Effect:
    """The public `Effect` of a row, given its decoded payloads."""
    outcome = outcome or {}
    undo = undo or {}
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
        kind=_KINDS.get(row.kind) or Reversibility(row.kind),
        status=_STATUSES.get(row.status) or EffectStatus(row.status),
        args=dict(intent.get("args") or {}),
        result=outcome.get("result"),
        result_known=outcome.get("result_known", True) is not False,
        error=outcome.get("error"),
        before=intent.get("before"),
        after=outcome.get("after"),
        after_observed=bool(outcome.get("observed", False)),
        idempotency_key=row.idempotency_key,
        attempt=row.attempt,
        run_id=row.run_id,
        owner=row.owner,
        inside=intent.get("inside"),
        created_at=datetime.fromisoformat(row.created_at),
        updated_at=datetime.fromisoformat(row.updated_at),
        completed_at=_time(row.completed_at),
        undo_result=undo.get("result"),
        undo_error=undo.get("error"),
        undo_attempts=row.undo_attempts,
        rollback_id=row.rollback_id,
        compensated_at=_time(row.compensated_at),
    )


_KINDS = {k.value: k for k in Reversibility}
_STATUSES = {s.value: s for s in EffectStatus}
"""Each member by its value: the lookup `Reversibility(value)` makes, without
the call (planning builds an `Effect` per row); another value still raises."""


def effect_from_row(row: LedgerRow, serde: SerializerProtocol) -> Effect:
    """Decode a stored row into the public `Effect` model."""

    def load(type_: str | None, data: bytes | None, field: str) -> dict[str, Any]:
        return decode_payload(
            serde, type_, data, tool=row.tool, field=field, effect_id=row.effect_id
        )

    return effect_of(
        row,
        load(row.intent_type, row.intent, "intent"),
        load(row.outcome_type, row.outcome, "outcome"),
        load(row.undo_type, row.undo, "undo"),
    )


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
