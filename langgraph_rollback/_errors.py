"""The exception tree.

Every error the library raises on purpose derives from `RollbackError`, and
every message says what went wrong, which thing (thread, checkpoint, effect,
tool) it concerns, why, and how to fix it. The structured attributes carry the
same facts for code that handles the error.

```
RollbackError
├── DeclarationError          bad use of @reversible / @irreversible
│   └── DuplicateToolError    two different tools under one name
├── UnregisteredToolError     an effect's tool has no definition in the registry
├── SerializationError        a value the saver's serde cannot store, or a
│                             stored payload the ledger refuses to load
├── ObservationError          a tool's `observe` function raised
├── EffectOutcomeUnknownError an intent was committed, its outcome never was
├── EffectResultUnknownError  a call landed, but its result was lost
├── EffectInFlightError       a replay reached a call that may still be running
├── ReplayMismatchError       a replay reached a recorded effect of another tool
├── EffectNotFoundError       no effect with that id on that thread
├── EffectStateError          an effect is not in the status an operation needs
├── InvalidConfigError        a config or argument that names nothing usable
│   └── InvalidTargetError    a rollback target that is not in the vocabulary
│       └── AmbiguousTargetError  a tool call id naming several effects
├── LedgerSchemaError         the ledger tables are newer than this library
│   └── LedgerUpgradeError    older, and this connection cannot upgrade them
├── IrreversibleToolBlockedError  the guard policy refused an irreversible call
├── CheckpointNotFoundError   a rollback target that is not in the thread
│   └── NotAnAncestorError    a target that exists but is not behind the head
├── RollbackInProgressError   another rollback holds the thread
├── DurabilityError           a rollback needs checkpoints the run does not keep
└── RollbackFailedError       `report.raise_for_status()` on an unfinished rollback
```

`UnrecordedCallWarning` (a `UserWarning`, not an error) says a declared tool
ran without being recorded.

`GraphInterrupt` and the other `GraphBubbleUp` signals of LangGraph are never
wrapped or swallowed: they pass through every layer untouched.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph_rollback._in_flight_text import (
    process_words,
    resolving_text,
    running_text,
)

__all__ = [
    "AmbiguousTargetError",
    "CheckpointNotFoundError",
    "DeclarationError",
    "DuplicateToolError",
    "DurabilityError",
    "EffectInFlightError",
    "EffectNotFoundError",
    "EffectOutcomeUnknownError",
    "EffectResultUnknownError",
    "EffectStateError",
    "InvalidConfigError",
    "InvalidTargetError",
    "IrreversibleToolBlockedError",
    "LedgerSchemaError",
    "LedgerUpgradeError",
    "NotAnAncestorError",
    "ObservationError",
    "ReplayMismatchError",
    "RollbackError",
    "RollbackFailedError",
    "RollbackInProgressError",
    "SerializationError",
    "UnrecordedCallWarning",
    "UnregisteredToolError",
]


class RollbackError(Exception):
    """Base class of every error raised by `langgraph_rollback`.

    Every error pickles with its message and structured attributes, so it
    survives LangGraph serialising a task's error, or a process boundary.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # The subclasses take keyword-only arguments, which the default
        # `Exception.__reduce__` (calling `cls(*self.args)`) cannot rebuild.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(
    cls: type[RollbackError], args: tuple[Any, ...], state: dict[str, Any]
) -> RollbackError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class DeclarationError(RollbackError, TypeError):
    """A tool was declared wrongly (raised at decoration time).

    Attributes:
        tool: The name of the tool being declared.
    """

    def __init__(self, message: str, *, tool: str) -> None:
        super().__init__(message)
        self.tool = tool


class DuplicateToolError(DeclarationError):
    """Two different tools were declared under one name in one registry.

    Attributes:
        tool: The clashing name.
        existing: `module.qualname` of the tool registered first.
        new: `module.qualname` of the tool that was refused.
    """

    def __init__(
        self, *, tool: str, existing: str, new: str, same_factory: bool = False
    ) -> None:
        if same_factory:
            what = (
                f"Tool name {tool!r} is already registered for {existing}, made by "
                "the same factory with other captured values (a closure); refusing "
                "to register a second one under the same name"
            )
        else:
            what = (
                f"Tool name {tool!r} is already registered for {existing}; refusing "
                f"to register {new} under the same name"
            )
        super().__init__(
            f"{what}, because a rollback finds inverses by tool name and could not "
            "tell them apart. Fix: give one of them another name "
            "(`@tool('other_name')`, or rename the function), or declare it in "
            "its own `ToolRegistry` with `registry=`.",
            tool=tool,
        )
        self.existing = existing
        self.new = new


class UnregisteredToolError(RollbackError, LookupError):
    """An effect names a tool that has no definition in the registry in use.

    Attributes:
        tool: The tool name recorded in the ledger.
        effect_id: The effect that needs it, when known.
    """

    def __init__(
        self, *, tool: str, effect_id: str | None = None, fix: str | None = None
    ) -> None:
        which = f" (effect {effect_id})" if effect_id else ""
        fix = fix or (
            "Fix: import that module, or pass the `registry=` it was declared in."
        )
        super().__init__(
            f"No tool named {tool!r} is declared in this registry{which}. "
            "Inverses are found by tool name, so the module that declares it with "
            f"@reversible or @irreversible must be imported before rolling back. {fix}"
        )
        self.tool = tool
        self.effect_id = effect_id


class SerializationError(RollbackError, TypeError):
    """A value cannot be written to, or will not be read from, the ledger.

    Attributes:
        tool: The tool whose effect the value belongs to.
        field: What the value is (`"args.path"`, `"result"`, `"before"`, ...).
        effect_id: The row a refused payload was read from (None when writing).
    """

    def __init__(
        self, message: str, *, tool: str, field: str, effect_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.tool = tool
        self.field = field
        self.effect_id = effect_id


class ObservationError(RollbackError):
    """A tool's `observe` function raised.

    Before the call, the tool does not run; after the call, the effect is still
    recorded as applied (without its `after` observation) and this error is not
    raised.

    Attributes:
        tool: The tool whose observation failed.
        phase: `"before"` (or `"current"` at rollback time).
    """

    def __init__(self, *, tool: str, phase: str, error: BaseException) -> None:
        super().__init__(
            f"observe() of tool {tool!r} raised {type(error).__name__}: {error} "
            f"while taking the {phase!r} observation, so the tool was not run. "
            "Fix: make observe() return the target's current state (None when "
            "it does not exist) instead of raising."
        )
        self.tool = tool
        self.phase = phase


class EffectOutcomeUnknownError(RollbackError):
    """A replay reached an effect whose intent was recorded but not its outcome.

    The process most likely died while the tool was running, so nobody knows
    whether the action reached the outside world. The library does not guess.

    Attributes:
        effect_id: The effect in question.
        tool: Its tool.
        thread_id: Its thread.
        idempotency_key: The key the forward call could have used.
    """

    def __init__(
        self, *, effect_id: str, tool: str, thread_id: str, idempotency_key: str
    ) -> None:
        super().__init__(
            f"Effect {effect_id} ({tool!r} on thread {thread_id!r}) was started but "
            "its outcome was never recorded: the process probably stopped during "
            "the call, so it may or may not have reached the outside world. "
            "Fix: check the target (the call's idempotency key was "
            f"{idempotency_key!r}), then record what happened with "
            f"`saver.resolve_effect(config, {effect_id!r}, applied=True)` (it "
            "landed; it will not run again) or `applied=False` (it did not; it "
            "will run on the next resume), and resume the graph. Declaring the "
            "tool with `observe=` lets the library check this itself."
        )
        self.effect_id = effect_id
        self.tool = tool
        self.thread_id = thread_id
        self.idempotency_key = idempotency_key


class EffectResultUnknownError(RollbackError):
    """A replay reached an effect that landed but whose result was lost.

    The process died after the call took effect and before its result was
    saved; `observe` showed the target changed, so the effect is recorded as
    applied with `result_known=False`. A replay cannot return a result it
    does not have, so it raises instead of returning None.

    Attributes:
        effect_id: The effect.
        tool: Its tool.
        thread_id: Its thread.
    """

    def __init__(self, *, effect_id: str, tool: str, thread_id: str) -> None:
        super().__init__(
            f"Effect {effect_id} ({tool!r} on thread {thread_id!r}) took effect, "
            "but its result was lost when the process stopped before saving it, "
            "so a replay has no result to return. Fix: find the result in the "
            "outside world, record it with `saver.resolve_effect(config, "
            f"{effect_id!r}, result=...)`, and resume; the call is not run again."
        )
        self.effect_id = effect_id
        self.tool = tool
        self.thread_id = thread_id


class EffectInFlightError(RollbackError):
    """A replay, a rollback or `resolve_effect` reached an effect whose call
    (or inverse) may still be running.

    Another attempt of the same call started and has not finished (a
    cancelled run whose worker thread is still inside the call, a run still
    going, or another live process), so running it again could act twice,
    and a rollback could not tell what it did. `resolve_effect` refuses to
    settle by hand a call or an inverse still in flight (an inverse a
    rollback stopped waiting for keeps running, and records its outcome when
    it ends).

    Attributes:
        effect_id: The effect.
        tool: Its tool.
        thread_id: Its thread.
        owner: The process performing it (`host#pid#start`).
    """

    def __init__(
        self,
        *,
        effect_id: str,
        tool: str,
        thread_id: str,
        owner: str | None,
        rollback: bool = False,
        resolving: Literal["call", "inverse"] | None = None,
    ) -> None:
        where = "in this process" if owner is None else f"by {process_words(owner)}"
        if resolving is not None:
            text = resolving_text(effect_id, tool, thread_id, where, resolving)
        else:
            text = running_text(effect_id, tool, thread_id, where, rollback)
        super().__init__(text)
        self.effect_id = effect_id
        self.tool = tool
        self.thread_id = thread_id
        self.owner = owner


class UnrecordedCallWarning(UserWarning):
    """A declared tool ran without being recorded in the ledger.

    Either it ran outside its graph run's context while a rollback saver's
    task was running in this process (a plain thread or executor inside a
    node), or its graph's checkpointer is not a rollback saver. Filter it, or
    turn it into an error (`warnings.simplefilter("error",
    UnrecordedCallWarning)`), like any warning.
    """


class ReplayMismatchError(RollbackError):
    """A replayed task called a different tool than the one recorded at that spot.

    Attributes:
        effect_id: The recorded effect.
        recorded_tool: The tool recorded at this identity.
        called_tool: The tool the replay called.
    """

    def __init__(self, *, effect_id: str, recorded_tool: str, called_tool: str) -> None:
        super().__init__(
            f"Replay mismatch at effect {effect_id}: the ledger recorded tool "
            f"{recorded_tool!r} here, but the replayed task called "
            f"{called_tool!r}. A node must make the same tool calls, in the same "
            "order, each time it runs for one task. Fix: make the node's calls "
            "depend only on its input state (not on time or randomness), or run "
            "the tools through a ToolNode, where each call is keyed by its "
            "tool_call_id."
        )
        self.effect_id = effect_id
        self.recorded_tool = recorded_tool
        self.called_tool = called_tool


class EffectNotFoundError(RollbackError, LookupError):
    """No effect with the given id exists on the given thread.

    Attributes:
        effect_id: The id looked up.
        thread_id: The thread searched.
    """

    def __init__(self, *, effect_id: str, thread_id: str) -> None:
        super().__init__(
            f"No effect {effect_id!r} on thread {thread_id!r}. Fix: take the id "
            "from `saver.list_effects(config)` for that same thread."
        )
        self.effect_id = effect_id
        self.thread_id = thread_id


class LedgerSchemaError(RollbackError):
    """The ledger tables were written by a newer version of this library.

    Attributes:
        found: The schema version in the database.
        supported: The newest version this library knows.
    """

    def __init__(self, *, found: int, supported: int) -> None:
        super().__init__(
            f"The ledger in this database is at schema version {found}, newer than "
            f"the {supported} this version of langgraph-rollback knows. Reading or "
            "writing it could lose undo information. Fix: upgrade "
            "langgraph-rollback (`pip install -U langgraph-rollback`)."
        )
        self.found = found
        self.supported = supported


class LedgerUpgradeError(LedgerSchemaError):
    """The ledger must be written before it is read, and the connection is read-only."""

    def __init__(self, *, found: int | None, supported: int, database: str) -> None:
        what = "its digest key" if found == supported else f"version {supported}"
        RollbackError.__init__(
            self,
            f"The ledger in {database} is at schema version {found} and needs "
            f"{what} written first, but it was opened read-only. Fix: open it "
            "once with write access (a saver's setup(), or `langgraph-rollback "
            f"migrate {database}`), then read it read-only.",
        )
        self.found, self.supported, self.database = found, supported, database  # type: ignore[assignment]


class EffectStateError(RollbackError):
    """An effect is not in the status the requested operation needs.

    Attributes:
        effect_id: The effect.
        status: Its current status.
        expected: The status the operation needed.
    """

    def __init__(self, *, effect_id: str, status: str, expected: str) -> None:
        super().__init__(
            f"Effect {effect_id} is {status}, not {expected}, so it cannot be "
            "changed this way. Fix: read its current state with "
            "`saver.get_effect(config, effect_id)` and act on that."
        )
        self.effect_id = effect_id
        self.status = status
        self.expected = expected


class InvalidConfigError(RollbackError, ValueError):
    """A config or argument names nothing usable (no thread id, a bad filter)."""


class InvalidTargetError(InvalidConfigError):
    """A rollback target that is not in the targets vocabulary.

    Attributes:
        target: What was given.
    """

    def __init__(self, message: str, *, target: str) -> None:
        super().__init__(message)
        self.target = target


class AmbiguousTargetError(InvalidTargetError):
    """A model's tool call id that names more than one effect of the thread.

    Attributes:
        target: The tool call id.
        candidates: The ids of the effects it names.
    """

    def __init__(self, message: str, *, target: str, candidates: list[str]) -> None:
        super().__init__(message, target=target)
        self.candidates = candidates


class IrreversibleToolBlockedError(RollbackError):
    """The guard policy refused to run an irreversible (or undeclared) tool.

    The refusal is recorded in the ledger with status `blocked`.

    Attributes:
        tool: The refused tool.
        effect_id: The ledger row recording the refusal.
        thread_id: The thread.
    """

    def __init__(
        self, *, tool: str, effect_id: str, thread_id: str, refused_by: str = "policy"
    ) -> None:
        why = (
            "a human refused it when asked"
            if refused_by == "human"
            else "the guard policy is 'block'"
        )
        super().__init__(
            f"Blocked the call of {tool!r} on thread {thread_id!r} (effect "
            f"{effect_id}): it cannot be undone, and {why}. The run stops here; "
            "the refusal is in the ledger as 'blocked'. Fix: replan without "
            "this action, or allow it (guard='ask' to approve it with a human "
            "in the loop, guard='allow' where irreversible actions are "
            "acceptable: `configurable.rollback_guard`, or the saver's "
            "`guard=`), then resume."
        )
        self.tool = tool
        self.effect_id = effect_id
        self.thread_id = thread_id


class CheckpointNotFoundError(RollbackError, LookupError):
    """A rollback target that does not exist in the thread.

    Attributes:
        checkpoint_id: The requested target.
        thread_id: The thread being rolled back.
        found_in: Other threads that hold a checkpoint with this id.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        checkpoint_id: str,
        thread_id: str,
        found_in: list[str] | None = None,
    ) -> None:
        found_in = found_in or []
        if message is None:
            if found_in:
                message = (
                    f"Checkpoint {checkpoint_id!r} belongs to thread "
                    f"{found_in[0]!r}, not to thread {thread_id!r}; a rollback "
                    "undoes one thread's effects. Fix: pass that thread's config, "
                    "or a checkpoint of this thread (see "
                    "`graph.get_state_history(config)`)."
                )
            else:
                message = (
                    f"Thread {thread_id!r} has no checkpoint {checkpoint_id!r} "
                    "(no thread has). Fix: pick one from "
                    "`graph.get_state_history(config)`; runs with "
                    "durability='exit' keep only each run's last checkpoint."
                )
        super().__init__(message)
        self.checkpoint_id = checkpoint_id
        self.thread_id = thread_id
        self.found_in = found_in


class NotAnAncestorError(CheckpointNotFoundError):
    """The target exists in the thread but is not on the path behind its head.

    It lies on another branch (a fork), so rolling back to it would not be
    undoing what led to the current state.

    Attributes:
        head_checkpoint_id: The thread's current head.
    """

    def __init__(
        self,
        *,
        checkpoint_id: str,
        thread_id: str,
        head_checkpoint_id: str,
        fix: str | None = None,
    ) -> None:
        fix = fix or (
            "Fix: roll back to a checkpoint on the current path, e.g. from "
            "`graph.get_state_history(config)` following `parent_config` from "
            "the head."
        )
        super().__init__(
            f"Checkpoint {checkpoint_id!r} is in thread {thread_id!r} but is not "
            f"an ancestor of its head {head_checkpoint_id!r}: it lies on another "
            f"branch (a fork or an earlier rollback left it behind). {fix}",
            checkpoint_id=checkpoint_id,
            thread_id=thread_id,
        )
        self.head_checkpoint_id = head_checkpoint_id


class RollbackInProgressError(RollbackError):
    """Another rollback of the same thread is running.

    Attributes:
        thread_id: The thread.
        holder: Who holds it (`host:pid:token`).
    """

    def __init__(self, *, thread_id: str, holder: str) -> None:
        super().__init__(
            f"Thread {thread_id!r} is being rolled back by {holder}; two "
            "rollbacks of one thread never run at once, so no inverse can run "
            "twice. Fix: wait for it to finish and retry (a rerun continues "
            "where an interrupted rollback stopped)."
        )
        self.thread_id = thread_id
        self.holder = holder


class DurabilityError(RollbackError):
    """A rollback needs checkpoints that the run's durability mode does not keep.

    Attributes:
        durability: The run's durability mode.
    """

    def __init__(self, *, durability: str, what: str) -> None:
        super().__init__(
            f"{what} needs every checkpoint of the run to be stored, but the run "
            f"uses durability={durability!r}, which does not store them as the "
            "graph runs. Fix: invoke the graph with durability='sync' "
            "(`graph.invoke(inputs, config, durability='sync')`)."
        )
        self.durability = durability


class RollbackFailedError(RollbackError):
    """Raised by `RollbackReport.raise_for_status()` when a rollback did not complete.

    Attributes:
        report: The `RollbackReport`.
    """

    def __init__(self, report: object, message: str) -> None:
        super().__init__(message)
        self.report = report
