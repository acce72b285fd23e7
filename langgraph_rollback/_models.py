"""Public data models: the ledger's `Effect`, its enums, and `AuditEntry`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["AuditAction", "AuditEntry", "Effect", "EffectStatus", "Reversibility"]


class Reversibility(StrEnum):
    """How an effect can be undone."""

    REVERSIBLE = "reversible"
    """The inverse restores the prior state exactly (delete a created file)."""
    COMPENSABLE = "compensable"
    """A semantic counter-action exists (refund a charge, close a ticket)."""
    IRREVERSIBLE = "irreversible"
    """Cannot be undone (a sent e-mail, a posted message)."""
    UNKNOWN = "unknown"
    """Nobody declared the tool."""


class EffectStatus(StrEnum):
    """Where an effect is in its life.

    ```
    pending ──> applied ──> compensating ──> compensated
       │  └───> failed          └──────────> compensation_failed
       └──────> interrupted
    blocked   (refused by the guard policy before the call)
    ```
    """

    PENDING = "pending"
    """Intent committed, the call is running (or the process died during it)."""
    APPLIED = "applied"
    """The call returned; its result is recorded."""
    FAILED = "failed"
    """The call raised; a replay runs it again."""
    INTERRUPTED = "interrupted"
    """The call raised a LangGraph interrupt; a resume runs it again."""
    BLOCKED = "blocked"
    """The guard policy refused the call; it never ran."""
    COMPENSATING = "compensating"
    """A rollback claimed it and is running its inverse."""
    COMPENSATED = "compensated"
    """Its inverse ran; the outside world no longer holds it."""
    COMPENSATION_FAILED = "compensation_failed"
    """Its inverse raised; a rerun of the rollback tries again."""


class Effect(BaseModel):
    """One side effect of one tool call, as recorded in the ledger.

    Identity is host-derived and stable across retries and resumes: the thread,
    the task's namespace and id, and within the task either the model's
    `tool_call_id` (calls made through a `ToolNode`) or a call key built from
    the tool, its arguments and an ordinal (calls made directly in a node).
    `seq` is the ledger's own monotonic order; "newest first" always means by
    `seq`.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: str
    """Deterministic id derived from the effect's identity."""
    seq: int
    """The ledger's own monotonic sequence number."""
    thread_id: str
    checkpoint_ns: str
    """Namespace of the graph the task belongs to (`""` for the root graph)."""
    task_ns: str
    """The task's own namespace (`node:task_id`, nested for subgraphs)."""
    checkpoint_id: str
    """The checkpoint the task started from (in `checkpoint_ns`)."""
    root_checkpoint_id: str
    """The root graph's checkpoint the outermost task started from."""
    base_checkpoint_id: str | None
    """The thread's newest persisted root checkpoint when the intent was written.

    Equal to (or an ancestor of) `root_checkpoint_id` when checkpoints are
    written as the graph runs; under `durability="exit"` it is the checkpoint
    the run started from.
    """
    task_id: str
    call_key: str
    """The identity of the call within its task."""
    tool_call_id: str | None
    """The model's tool call id, when the call came through a `ToolNode`."""
    ordinal: int | None
    """Position among identical direct calls (same tool, same arguments)."""
    tool: str
    """The tool's name (a plain function's `__name__`)."""
    kind: Reversibility
    status: EffectStatus
    args: dict[str, Any]
    """The call's arguments by parameter name (injected arguments left out)."""
    result: Any = None
    result_known: bool = True
    """False when the call took effect but its result was lost (the process
    died before saving it, and `observe` showed the call had landed): `result`
    is then None, not what the call returned. Write the inverse from `after`,
    or record the result with `saver.resolve_effect(config, id, result=...)`."""
    error: str | None = None
    """`"ExceptionType: message"` when the call raised."""
    before: Any = None
    """What `observe` returned before the call (None without `observe`)."""
    after: Any = None
    """What `observe` returned after the call (None without `observe`)."""
    after_observed: bool = False
    """Whether `after` was observed (False without `observe`, when it raised,
    or when an operator resolved the outcome without observing)."""
    idempotency_key: str
    """A key for external APIs that deduplicate requests; stable per effect."""
    attempt: int
    """How many times the forward call started (retries of failed calls)."""
    run_id: str | None
    owner: str | None = None
    """The process performing the call or inverse now (host, pid, start
    time), while it may still be running; None once its outcome is recorded."""
    inside: str | None = None
    """The container effect whose call this one ran in (a git workspace
    step), if any: undoing the container undoes it too."""
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    """When the forward call's outcome was recorded."""
    undo_result: Any = None
    """What the inverse returned, once it ran."""
    undo_error: str | None = None
    """`"ExceptionType: message"` when the inverse raised."""
    undo_attempts: int = 0
    """How many times a rollback started this effect's inverse."""
    rollback_id: str | None = None
    """The rollback that last claimed this effect."""
    compensated_at: datetime | None = None

    @property
    def undo_idempotency_key(self) -> str:
        """The inverse's own idempotency key (stable per effect)."""
        return f"{self.idempotency_key}:undo"

    @property
    def node(self) -> str:
        """The name of the node whose task made the call."""
        last = self.task_ns.rsplit("|", 1)[-1]
        return last.split(":", 1)[0]


class AuditAction(StrEnum):
    """A human decision the ledger keeps (`AuditEntry.action`)."""

    ROLLBACK = "rollback"
    """A person rolled a thread back: a rollback called with `by=` (the CLI,
    the Agent Server's routes, `rollback(..., by=)`) or under the server's
    authenticated user."""
    RESOLVE = "resolve"
    """An operator recorded an unknown outcome (`resolve_effect`)."""
    FORCE = "force"
    """A rollback undid effects whose target had changed (`on_conflict="force"`)."""
    SKIP = "skip"
    """A rollback left effects it would have undone (`skip=`)."""
    APPROVE = "approve"
    """A human approved a `RollbackNode(approval=True)` plan."""
    REJECT = "reject"
    """A human rejected a `RollbackNode(approval=True)` plan."""
    ALLOW = "allow"
    """A human let an irreversible tool run (the guard's `"ask"`)."""
    REFUSE = "refuse"
    """A human refused an irreversible tool (the guard's `"ask"`)."""


class AuditEntry(BaseModel):
    """One human decision, as the ledger keeps it: who, when, why, and what
    it overrode.

    `saver.list_audit(config)` reads a thread's entries, newest first;
    `langgraph-rollback effects DB --thread T --audit` prints them.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    """Stable per decision: a decision replayed on resume is kept once."""
    thread_id: str
    at: datetime
    by: str
    """Who decided: the `by` of the resume value or the call, else the Agent
    Server's authenticated user, else "unknown"."""
    action: AuditAction
    effect_ids: list[str] = []
    """The effects the decision is about."""
    rollback_id: str | None = None
    reason: str | None = None
    """Why, in the decider's words, when given."""
    overrode: str = ""
    """What the decision overrode (a status, a conflict, the plan's choice)."""
    details: dict[str, Any] = {}
