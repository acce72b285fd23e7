"""Where a running tool finds its graph run: the one place that reads LangGraph internals.

A tool can reach the checkpointer only through the private config key
`__pregel_checkpointer` (`Runtime` has no such field), and the per-task
`__pregel_read` callable is the only object LangGraph creates once per task
preparation that can be weakly referenced. Both are read here and nowhere
else; `tests/test_context.py` pins them, so an upstream change breaks one
place loudly. Facts used (langgraph 1.2, `pregel/_algo.py`
`prepare_single_task`, `pregel/_retry.py` `run_with_retry`):

- inside a node, `configurable["checkpoint_id"]` is None; the checkpoint the
  task started from is `Runtime.execution_info.checkpoint_id`, and the root
  graph's is `configurable["checkpoint_map"][""]`;
- `task_id` is deterministic: stable across retries, interrupt/resume and
  failure/resume, new after a fork;
- a retry patches a new `Runtime` with `node_attempt` + 1 into the same task's
  config; a resume prepares a new task (new `__pregel_read`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.runnables.config import var_child_runnable_config
from langgraph._internal._constants import (
    CONFIG_KEY_CHECKPOINT_MAP,
    CONFIG_KEY_CHECKPOINTER,
    CONFIG_KEY_DURABILITY,
    CONFIG_KEY_READ,
    CONFIG_KEY_RUNTIME,
)

from langgraph_rollback._errors import InvalidConfigError

if TYPE_CHECKING:
    from langgraph_rollback._models import Effect
    from langgraph_rollback.backends.base import BaseRollbackSaver

__all__ = [
    "GUARD_CONFIG_KEY",
    "TaskContext",
    "current_channels",
    "current_durability",
    "current_effect",
    "current_task",
]

GUARD_CONFIG_KEY = "rollback_guard"
"""`configurable` key that sets the guard policy for one graph or run."""

NS_SEP = "|"
"""Separates a subgraph task's namespace from its parent's (langgraph NS_SEP)."""


@dataclass(frozen=True, slots=True)
class TaskContext:
    """The graph task a declared tool is running in."""

    saver: BaseRollbackSaver
    thread_id: str
    task_ns: str
    checkpoint_ns: str
    checkpoint_id: str
    root_checkpoint_id: str
    task_id: str
    run_id: str | None
    attempt: int
    scope: Any
    """An object that lives exactly as long as the task's preparation."""
    guard: Any = "allow"
    """The guard policy for irreversible tools: "allow", "ask" or "block"."""
    run_checkpoint_id: str | None = None
    """The root checkpoint the run was started from, when the caller named one
    (`invoke(..., config_with_checkpoint_id)`: a fork or an explicit resume)."""
    durability: str | None = None
    """The run's durability mode ("sync", "async", "exit"), when known."""

    def next_ordinal(self, key: str) -> int:
        """Return how many calls with this key this task attempt made before."""
        with _ORDINALS_LOCK:
            try:
                per_attempt = _ORDINALS[self.scope]
            except KeyError:
                per_attempt = _ORDINALS[self.scope] = {}
            counters = per_attempt.setdefault(self.attempt, {})
            n = counters.get(key, 0)
            counters[key] = n + 1
            return n


# Per-task-preparation call counters: scope -> attempt -> call key -> count.
# Weak keys, so a finished task's counters go with it.
_ORDINALS: weakref.WeakKeyDictionary[Any, dict[int, dict[str, int]]] = (
    weakref.WeakKeyDictionary()
)
_ORDINALS_LOCK = threading.Lock()


def current_task() -> TaskContext | None:
    """The task this code runs in, if it runs in a graph with a rollback saver.

    Returns None outside any graph run, and inside a run whose checkpointer is
    not one of this library's savers: declared tools then run unrecorded.
    """
    from langgraph_rollback.backends.base import BaseRollbackSaver

    config = var_child_runnable_config.get()
    if not config:
        return None
    conf = config.get("configurable") or {}
    saver = conf.get(CONFIG_KEY_CHECKPOINTER)
    if not isinstance(saver, BaseRollbackSaver):
        return None
    runtime = conf.get(CONFIG_KEY_RUNTIME)
    info = getattr(runtime, "execution_info", None)
    if info is None:
        return None
    scope = conf.get(CONFIG_KEY_READ)
    if scope is None:
        return None
    thread_id = info.thread_id or conf.get("thread_id")
    if thread_id is None:
        return None
    task_ns: str = info.checkpoint_ns
    checkpoint_ns = task_ns.rsplit(NS_SEP, 1)[0] if NS_SEP in task_ns else ""
    checkpoint_map = conf.get(CONFIG_KEY_CHECKPOINT_MAP) or {}
    guard = conf.get(GUARD_CONFIG_KEY) or getattr(saver, "guard", "allow")
    # LangChain copies the run's `configurable` values into `metadata` when the
    # run starts (`ensure_config`); the task's own `checkpoint_id` is reset to
    # None, but the metadata keeps the checkpoint the caller started from.
    metadata = config.get("metadata") or {}
    run_checkpoint = metadata.get("checkpoint_id")
    if metadata.get("checkpoint_ns") or not isinstance(run_checkpoint, str):
        run_checkpoint = None
    if guard not in ("allow", "ask", "block"):
        raise InvalidConfigError(
            f"configurable.{GUARD_CONFIG_KEY}={guard!r} is not a guard policy. "
            'Fix: use "allow", "ask" or "block".'
        )
    return TaskContext(
        saver=saver,
        thread_id=str(thread_id),
        task_ns=task_ns,
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=info.checkpoint_id,
        root_checkpoint_id=checkpoint_map.get("", info.checkpoint_id),
        task_id=info.task_id,
        run_id=info.run_id,
        attempt=info.node_attempt,
        scope=scope,
        guard=guard,
        run_checkpoint_id=run_checkpoint,
        durability=_durability(conf),
    )


def _durability(conf: Mapping[str, Any]) -> str | None:
    value = conf.get(CONFIG_KEY_DURABILITY)
    return None if value is None else str(value)


def current_channels() -> Mapping[str, Any] | None:
    """The running graph's channels (name -> `BaseChannel`), or None.

    LangGraph binds them as the second argument of the per-task
    `__pregel_read` partial (`pregel/_algo.py` `local_read`).
    """
    from langgraph.channels.base import BaseChannel

    config = var_child_runnable_config.get()
    if not config:
        return None
    read = (config.get("configurable") or {}).get(CONFIG_KEY_READ)
    args: tuple[Any, ...] = tuple(getattr(read, "args", ()))
    if len(args) >= 2 and isinstance(args[1], Mapping):
        channels = args[1]
        if all(isinstance(c, BaseChannel) for c in channels.values()):
            return channels
    return None


def current_durability() -> str | None:
    """The durability mode of the running graph ("sync", "async", "exit")."""
    config = var_child_runnable_config.get()
    if not config:
        return None
    return _durability(config.get("configurable") or {})


# The effect whose forward call is running in this context (None elsewhere).
_CURRENT_EFFECT: ContextVar[Effect | None] = ContextVar(
    "langgraph_rollback_current_effect", default=None
)

# (id of the tool object, tool_call_id) set while a declared LangChain tool runs.
_TOOL_CALL: ContextVar[tuple[int, str] | None] = ContextVar(
    "langgraph_rollback_tool_call", default=None
)


def current_effect() -> Effect | None:
    """The effect being recorded for the running tool call, or None.

    Inside a declared tool running under a rollback saver, this is the effect
    whose intent was just committed (status `pending`). Pass its
    `idempotency_key` to external APIs that deduplicate requests, so a retry
    after a crash cannot act twice:

    ```python
    @reversible(undo=refund)
    def charge(customer: str, cents: int) -> str:
        effect = current_effect()
        key = effect.idempotency_key if effect else None
        return payments.charge(customer, cents, idempotency_key=key)
    ```
    """
    return _CURRENT_EFFECT.get()


@contextmanager
def running_effect(effect: Effect) -> Iterator[None]:
    """Mark `effect` as the one being performed in this context."""
    token = _CURRENT_EFFECT.set(effect)
    container = _CONTAINER.set(False)
    try:
        yield
    finally:
        _CONTAINER.reset(container)
        _CURRENT_EFFECT.reset(token)


# Effects whose forward call runs other declared calls that are still recorded.
_CONTAINER: ContextVar[bool] = ContextVar("langgraph_rollback_container", default=False)


def inside_effect() -> bool:
    """Whether this code runs inside another recorded effect's forward call
    (one that owns the calls made within it)."""
    return _CURRENT_EFFECT.get() is not None and not _CONTAINER.get()


@contextmanager
def container_call() -> Iterator[None]:
    """Mark the current forward call as a container: nested calls record."""
    token = _CONTAINER.set(True)
    try:
        yield
    finally:
        _CONTAINER.reset(token)


@contextmanager
def tool_call(tool: object, tool_call_id: str | None) -> Iterator[None]:
    """Remember the model's tool call id while a declared tool runs."""
    if tool_call_id is None:
        yield
        return
    token = _TOOL_CALL.set((id(tool), tool_call_id))
    try:
        yield
    finally:
        _TOOL_CALL.reset(token)


def tool_call_id_for(tool: object) -> str | None:
    """The tool call id `tool` was invoked with, if any."""
    value = _TOOL_CALL.get()
    if value is None or value[0] != id(tool):
        return None
    return value[1]


# Set while a rollback writes its restored head, so the saver's `put` can mark
# the new checkpoint as a copy (see `backends.base.mark_restored_copy`).
_RESTORE_MARK: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "langgraph_rollback_restore_mark", default=None
)


@contextmanager
def restoring(mark: Mapping[str, Any]) -> Iterator[None]:
    """Mark checkpoints written in this context as a rollback's restored head."""
    token = _RESTORE_MARK.set(mark)
    try:
        yield
    finally:
        _RESTORE_MARK.reset(token)


def restore_mark() -> Mapping[str, Any] | None:
    """The mark set by `restoring`, if a restore is being written."""
    return _RESTORE_MARK.get()
