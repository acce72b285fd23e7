"""The ledger's I/O-free core: rows, identity, payloads and the recording flow.

Nothing here touches a database or calls a tool. `record_flow` is a generator
that *yields* each step it needs (an observation, a ledger write, the forward
call) and receives the step's result, in the manner of httpx's
`Auth.auth_flow`; `langgraph_rollback._drivers` runs it synchronously or
asynchronously, so the recording protocol exists once.

Recording protocol ("check existing, run, record"):

1. arguments are serialised first, so a value the saver cannot store fails
   before anything happens;
2. `observe` (if declared) takes the `before` observation;
3. the intent row is inserted unless a row with the same identity exists, and
   committed before the forward call starts (write-ahead);
4. an existing row is a replay: an applied effect returns its recorded result
   without running; a failed or interrupted one runs again; a pending one has
   an unknown outcome and raises `EffectOutcomeUnknownError`;
5. the forward call runs, `observe` takes the `after` observation, and the
   outcome (result or error) is committed.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.errors import GraphBubbleUp

from langgraph_rollback._context import TaskContext
from langgraph_rollback._errors import (
    EffectOutcomeUnknownError,
    ObservationError,
    ReplayMismatchError,
    SerializationError,
)
from langgraph_rollback._models import Effect, EffectStatus, Reversibility
from langgraph_rollback._registry import ToolDefinition

__all__ = [
    "COLUMNS",
    "Begin",
    "EffectQuery",
    "LedgerRow",
    "Observe",
    "Op",
    "Outcome",
    "Perform",
    "Update",
    "decode_payload",
    "effect_from_row",
    "encode_payload",
    "record_flow",
]

_EFFECT_NAMESPACE = uuid.UUID("5b0a8a53-3c52-4a36-9c39-1d3c2a7f0e11")
_DIGEST_SERDE = JsonPlusSerializer()

_REPLAY_RETURNS = frozenset(
    {
        EffectStatus.APPLIED,
        EffectStatus.COMPENSATING,
        EffectStatus.COMPENSATED,
        EffectStatus.COMPENSATION_FAILED,
    }
)
_REPLAY_RERUNS = frozenset(
    {EffectStatus.FAILED, EffectStatus.INTERRUPTED, EffectStatus.BLOCKED}
)


def utcnow() -> str:
    """The current time as the ISO-8601 UTC text the ledger stores."""
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One ledger row, payloads encoded, exactly as a backend stores it."""

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
    seq: int = 0
    """Assigned by the backend on insert; 0 until then."""


COLUMNS: tuple[str, ...] = (
    "seq",
    "effect_id",
    "thread_id",
    "checkpoint_ns",
    "task_ns",
    "checkpoint_id",
    "root_checkpoint_id",
    "base_checkpoint_id",
    "task_id",
    "call_key",
    "tool_call_id",
    "ordinal",
    "tool",
    "kind",
    "status",
    "attempt",
    "idempotency_key",
    "run_id",
    "intent_type",
    "intent",
    "outcome_type",
    "outcome",
    "created_at",
    "updated_at",
    "completed_at",
)
"""The ledger's columns, in the order backends select them."""

UPDATABLE = frozenset(
    {"status", "attempt", "intent_type", "intent", "outcome_type", "outcome"}
    | {"updated_at", "completed_at"}
)
"""Columns `Update` may change; anything else is refused (never user input)."""


def row_from_mapping(values: Mapping[str, Any]) -> LedgerRow:
    """Build a row from a backend's column -> value mapping."""
    data = {name: values[name] for name in COLUMNS}
    for name in ("intent", "outcome"):
        if data[name] is not None:
            data[name] = bytes(data[name])
    return LedgerRow(**data)


def row_from_tuple(values: tuple[Any, ...]) -> LedgerRow:
    """Build a row from a tuple in `COLUMNS` order."""
    return row_from_mapping(dict(zip(COLUMNS, values, strict=True)))


@dataclass(frozen=True, slots=True)
class EffectQuery:
    """Which ledger rows to read; every backend filters with these same rules."""

    thread_id: str
    effect_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    """With `checkpoint_ns` "" (or None): effects whose root checkpoint is this
    one (subgraph effects included); otherwise the effects of tasks that
    started from this checkpoint of that namespace."""
    statuses: tuple[str, ...] = ()
    tool: str | None = None
    before_seq: int | None = None
    limit: int | None = None

    def sql_where(self, mark: str = "?") -> tuple[str, list[Any]]:
        """A `WHERE` clause with `mark` placeholders, and its parameters.

        Only column names are written into the text; every value is bound.
        """
        clauses = [f"thread_id = {mark}"]
        params: list[Any] = [self.thread_id]
        if self.effect_id is not None:
            clauses.append(f"effect_id = {mark}")
            params.append(self.effect_id)
        if self.checkpoint_id is not None:
            if self.checkpoint_ns:
                clauses.append(f"checkpoint_ns = {mark} AND checkpoint_id = {mark}")
                params += [self.checkpoint_ns, self.checkpoint_id]
            else:
                clauses.append(f"root_checkpoint_id = {mark}")
                params.append(self.checkpoint_id)
        if self.statuses:
            clauses.append(f"status IN ({', '.join([mark] * len(self.statuses))})")
            params += list(self.statuses)
        if self.tool is not None:
            clauses.append(f"tool = {mark}")
            params.append(self.tool)
        if self.before_seq is not None:
            clauses.append(f"seq < {mark}")
            params.append(self.before_seq)
        return " AND ".join(clauses), params

    def matches(self, row: LedgerRow) -> bool:
        """The same filter as `sql_where`, for backends without SQL."""
        if row.thread_id != self.thread_id:
            return False
        if self.effect_id is not None and row.effect_id != self.effect_id:
            return False
        if self.checkpoint_id is not None:
            if self.checkpoint_ns:
                if (row.checkpoint_ns, row.checkpoint_id) != (
                    self.checkpoint_ns,
                    self.checkpoint_id,
                ):
                    return False
            elif row.root_checkpoint_id != self.checkpoint_id:
                return False
        if self.statuses and row.status not in self.statuses:
            return False
        if self.tool is not None and row.tool != self.tool:
            return False
        return self.before_seq is None or row.seq < self.before_seq


# --- payloads ---------------------------------------------------------------


def encode_payload(
    serde: SerializerProtocol, value: Mapping[str, Any], *, tool: str
) -> tuple[str, bytes]:
    """Serialise a payload with the saver's serde.

    Raises:
        SerializationError: Naming the first field (`args.<name>`, `result`,
            `before`, `after`) the serde cannot encode.
    """
    try:
        return serde.dumps_typed(dict(value))
    except Exception as exc:
        field_name, bad = _find_unserializable(serde, value)
        raise SerializationError(
            f"Tool {tool!r}: {field_name} is a {type(bad).__name__}, which the "
            f"saver's serializer cannot store ({exc}). The ledger must record it "
            "so the effect can be replayed and undone. Fix: pass plain data "
            "(str, int, float, bool, None, lists, dicts, datetimes, pydantic "
            "models or dataclasses) instead.",
            tool=tool,
            field=field_name,
        ) from exc


def _find_unserializable(
    serde: SerializerProtocol, value: Mapping[str, Any]
) -> tuple[str, Any]:
    for key, item in value.items():
        if key == "args" and isinstance(item, Mapping):
            for arg, arg_value in item.items():
                try:
                    serde.dumps_typed(arg_value)
                except Exception:
                    return f"argument {arg!r}", arg_value
            continue
        try:
            serde.dumps_typed(item)
        except Exception:
            return str(key), item
    return "payload", value


def decode_payload(
    serde: SerializerProtocol,
    type_: str | None,
    data: bytes | None,
    *,
    tool: str,
    field: str,
) -> dict[str, Any]:
    """Load a stored payload, refusing anything pickled.

    Pickle runs arbitrary code on load; a ledger row carrying one was not
    written by this library (which never enables pickle), so it is refused
    whatever the saver's serde would allow.

    Raises:
        SerializationError: The payload is pickled, or cannot be decoded.
    """
    if type_ is None or data is None:
        return {}
    if "pickle" in type_.lower():
        raise SerializationError(
            f"Refusing to load the {field} of a {tool!r} effect: it is stored as "
            f"{type_!r}, and unpickling runs arbitrary code. This library never "
            "writes pickle, so the row was written by something else. Fix: "
            "inspect and delete the row; never enable pickle for the ledger.",
            tool=tool,
            field=field,
        )
    try:
        value = serde.loads_typed((type_, data))
    except Exception as exc:
        raise SerializationError(
            f"Cannot decode the {field} of a {tool!r} effect ({type_!r}): {exc}. "
            "Fix: open the database with the serde (and encryption key) it was "
            "written with.",
            tool=tool,
            field=field,
        ) from exc
    if not isinstance(value, dict):
        raise SerializationError(
            f"The {field} of a {tool!r} effect is a {type(value).__name__}, not "
            "a ledger payload. Fix: inspect and delete the row.",
            tool=tool,
            field=field,
        )
    return value


def effect_from_row(row: LedgerRow, serde: SerializerProtocol) -> Effect:
    """Decode a stored row into the public `Effect` model."""
    intent = decode_payload(
        serde, row.intent_type, row.intent, tool=row.tool, field="intent"
    )
    outcome = decode_payload(
        serde, row.outcome_type, row.outcome, tool=row.tool, field="outcome"
    )
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
        kind=Reversibility(row.kind),
        status=EffectStatus(row.status),
        args=dict(intent.get("args") or {}),
        result=outcome.get("result"),
        error=outcome.get("error"),
        before=intent.get("before"),
        after=outcome.get("after"),
        idempotency_key=row.idempotency_key,
        attempt=row.attempt,
        run_id=row.run_id,
        created_at=datetime.fromisoformat(row.created_at),
        updated_at=datetime.fromisoformat(row.updated_at),
        completed_at=(
            datetime.fromisoformat(row.completed_at) if row.completed_at else None
        ),
    )


# --- identity ---------------------------------------------------------------


def effect_id_for(thread_id: str, task_ns: str, task_id: str, call_key: str) -> str:
    """The deterministic id of an effect (a UUIDv5 of its identity)."""
    name = json.dumps([thread_id, task_ns, task_id, call_key], ensure_ascii=False)
    return str(uuid.uuid5(_EFFECT_NAMESPACE, name))


def args_digest(tool: str, args: Mapping[str, Any]) -> str:
    """A short, stable digest of a call's arguments.

    Uses a plain (never encrypted) serializer so the digest does not change
    between processes; raises `SerializationError` for unstorable arguments,
    before anything runs.
    """
    type_, data = encode_payload(_DIGEST_SERDE, {"args": args}, tool=tool)
    return hashlib.sha256(type_.encode() + b"\0" + data).hexdigest()[:16]


def call_key_for(
    ctx: TaskContext, tool: str, args: Mapping[str, Any], tool_call_id: str | None
) -> tuple[str, int | None]:
    """The call's identity within its task, and its ordinal when it has one.

    A `ToolNode` call is keyed by the model's `tool_call_id` (calls of one step
    run concurrently, so any counter would depend on timing). A direct call in
    a node is keyed by tool, argument digest and how many identical calls the
    task attempt made before it, so concurrent calls that differ in tool or
    arguments never swap identities.
    """
    if tool_call_id is not None:
        return f"call:{tool_call_id}", None
    key = f"{tool}:{args_digest(tool, args)}"
    ordinal = ctx.next_ordinal(key)
    return f"{key}#{ordinal}", ordinal


# --- the recording flow -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a call returned or raised."""

    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Observe:
    """Call `fn(**kwargs)`; the driver sends back an `Outcome`."""

    fn: Callable[..., Any]
    kwargs: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Begin:
    """Insert `row` unless its effect id exists, and commit.

    The backend assigns `seq` and `base_checkpoint_id` (the thread's newest
    persisted root checkpoint) in the same statement. The driver sends back
    `(stored_row, inserted)`: the new row as stored, or the existing one.
    """

    row: LedgerRow


@dataclass(frozen=True, slots=True)
class Update:
    """Change `changes` on one effect if its status is in `expect`, and commit.

    The driver sends back whether a row was changed.
    """

    effect_id: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    expect: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.changes) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable ledger columns: {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class Perform:
    """Run the forward call with `effect` as the current effect.

    The driver sends back an `Outcome`.
    """

    effect: Effect


Op = Observe | Begin | Update | Perform
Flow = Generator[Op, Any, Any]


def record_flow(
    ctx: TaskContext,
    definition: ToolDefinition,
    args: dict[str, Any],
    *,
    tool_call_id: str | None,
    serde: SerializerProtocol,
) -> Flow:
    """Record one forward call of a declared tool; return (or raise) its outcome."""
    tool = definition.name
    call_key, ordinal = call_key_for(ctx, tool, args, tool_call_id)
    # Serialise before anything else: unstorable arguments fail before the call.
    intent = encode_payload(serde, {"args": args, "before": None}, tool=tool)
    before = None
    if definition.observe is not None:
        observed = yield Observe(definition.observe, args)
        if observed.error is not None:
            raise ObservationError(
                tool=tool, phase="before", error=observed.error
            ) from observed.error
        before = observed.value
        intent = encode_payload(serde, {"args": args, "before": before}, tool=tool)
    effect_id = effect_id_for(ctx.thread_id, ctx.task_ns, ctx.task_id, call_key)
    now = utcnow()
    row = LedgerRow(
        effect_id=effect_id,
        thread_id=ctx.thread_id,
        checkpoint_ns=ctx.checkpoint_ns,
        task_ns=ctx.task_ns,
        checkpoint_id=ctx.checkpoint_id,
        root_checkpoint_id=ctx.root_checkpoint_id,
        task_id=ctx.task_id,
        call_key=call_key,
        tool_call_id=tool_call_id,
        ordinal=ordinal,
        tool=tool,
        kind=definition.kind.value,
        status=EffectStatus.PENDING.value,
        attempt=1,
        idempotency_key=f"lgrb-{effect_id}",
        run_id=ctx.run_id,
        intent_type=intent[0],
        intent=intent[1],
        outcome_type=None,
        outcome=None,
        created_at=now,
        updated_at=now,
        completed_at=None,
    )
    stored, inserted = yield Begin(row)
    if not inserted:
        existing: LedgerRow = stored
        if existing.tool != tool:
            raise ReplayMismatchError(
                effect_id=effect_id, recorded_tool=existing.tool, called_tool=tool
            )
        status = EffectStatus(existing.status)
        if status in _REPLAY_RETURNS:
            return _recorded_result(existing, serde)
        if status is EffectStatus.PENDING:
            raise EffectOutcomeUnknownError(
                effect_id=effect_id,
                tool=tool,
                thread_id=ctx.thread_id,
                idempotency_key=existing.idempotency_key,
            )
        assert status in _REPLAY_RERUNS
        row = replace(
            existing,
            status=EffectStatus.PENDING.value,
            attempt=existing.attempt + 1,
            intent_type=row.intent_type,
            intent=row.intent,
            updated_at=now,
        )
        restarted = yield Update(
            effect_id,
            {
                "status": row.status,
                "attempt": row.attempt,
                "intent_type": row.intent_type,
                "intent": row.intent,
                "updated_at": now,
            },
            expect=(status.value,),
        )
        if not restarted:
            # Another worker restarted the same call first.
            raise EffectOutcomeUnknownError(
                effect_id=effect_id,
                tool=tool,
                thread_id=ctx.thread_id,
                idempotency_key=existing.idempotency_key,
            )
    else:
        row = stored
    return (yield from _perform(row, definition, args, before, serde))


def _perform(
    row: LedgerRow,
    definition: ToolDefinition,
    args: dict[str, Any],
    before: Any,
    serde: SerializerProtocol,
) -> Flow:
    tool = definition.name
    effect = _live_effect(row, definition, args, before)
    outcome: Outcome = yield Perform(effect)
    if outcome.error is not None:
        error = outcome.error
        if isinstance(error, GraphBubbleUp):
            # interrupt() (or a Command to a parent graph) inside the tool: the
            # node re-runs from the top on resume, and so will this call.
            yield Update(
                row.effect_id,
                {"status": EffectStatus.INTERRUPTED.value, "updated_at": utcnow()},
                expect=(EffectStatus.PENDING.value,),
            )
        elif isinstance(error, Exception):
            now = utcnow()
            payload = encode_payload(
                serde, {"error": f"{type(error).__name__}: {error}"}, tool=tool
            )
            yield Update(
                row.effect_id,
                {
                    "status": EffectStatus.FAILED.value,
                    "outcome_type": payload[0],
                    "outcome": payload[1],
                    "updated_at": now,
                    "completed_at": now,
                },
                expect=(EffectStatus.PENDING.value,),
            )
        # Cancellation, KeyboardInterrupt, SystemExit: nobody knows whether the
        # call landed, so the intent stays pending and a replay says so.
        raise error
    after = None
    notes: list[str] = []
    if definition.observe is not None:
        observed = yield Observe(definition.observe, args)
        if observed.error is None:
            after = observed.value
        else:
            notes.append(
                f"observe() raised {type(observed.error).__name__}: "
                f"{observed.error} after the call"
            )
    content: dict[str, Any] = {"result": outcome.value, "after": after}
    if notes:
        content["notes"] = notes
    unrecordable: SerializationError | None = None
    try:
        payload = encode_payload(serde, content, tool=tool)
    except SerializationError as exc:
        unrecordable = exc
        content = {
            "result": None,
            "unrecordable": str(exc),
            "after": _storable_or_none(serde, after),
            "notes": notes,
        }
        payload = encode_payload(serde, content, tool=tool)
    now = utcnow()
    yield Update(
        row.effect_id,
        {
            "status": EffectStatus.APPLIED.value,
            "outcome_type": payload[0],
            "outcome": payload[1],
            "updated_at": now,
            "completed_at": now,
        },
        expect=(EffectStatus.PENDING.value,),
    )
    if unrecordable is not None:
        # The action happened and is recorded as applied (so it can be undone),
        # but a replay could not return its result: fail loudly now.
        raise unrecordable
    return outcome.value


def _storable_or_none(serde: SerializerProtocol, value: Any) -> Any:
    try:
        serde.dumps_typed(value)
    except Exception:
        return None
    return value


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


def _live_effect(
    row: LedgerRow, definition: ToolDefinition, args: dict[str, Any], before: Any
) -> Effect:
    """The `Effect` of a row being performed, built without decoding payloads."""
    created = datetime.fromisoformat(row.created_at)
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
        kind=definition.kind,
        status=EffectStatus.PENDING,
        args=args,
        before=before,
        idempotency_key=row.idempotency_key,
        attempt=row.attempt,
        run_id=row.run_id,
        created_at=created,
        updated_at=datetime.fromisoformat(row.updated_at),
        completed_at=None,
    )
