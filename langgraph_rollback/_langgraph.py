"""Where a running tool finds its graph run: the one place that reads LangGraph internals.

A tool can reach the checkpointer only through the private config key
`__pregel_checkpointer` (`Runtime` has no such field), and the per-task
`__pregel_read` callable is the only object LangGraph creates once per task
preparation that can be weakly referenced. Both are read here and nowhere
else, as is `MISSING` (a reducer channel's empty value); `tests/unit/test_langgraph_pins.py`
pins them, so an upstream change breaks one place loudly. Facts used
(langgraph 1.2, `pregel/_algo.py` `prepare_single_task`, `pregel/_retry.py`
`run_with_retry`):

- inside a node, `configurable["checkpoint_id"]` is None; the checkpoint the
  task started from is `Runtime.execution_info.checkpoint_id`, and the root
  graph's is `configurable["checkpoint_map"][""]`;
- `task_id` is deterministic: stable across retries, interrupt/resume and
  failure/resume, new after a fork;
- a retry patches a new `Runtime` with `node_attempt` + 1 into the same task's
  config; a resume prepares a new task (new `__pregel_read`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.runnables.config import var_child_runnable_config
from langgraph._internal._constants import (
    CONFIG_KEY_CHECKPOINT_MAP,
    CONFIG_KEY_CHECKPOINTER,
    CONFIG_KEY_DURABILITY,
    CONFIG_KEY_READ,
    CONFIG_KEY_RUNTIME,
)
from langgraph._internal._typing import MISSING
from langgraph.channels.base import BaseChannel
from langgraph.errors import EmptyChannelError

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback.core.task import GUARD_MODES, TaskContext
from langgraph_rollback.savers.base import BaseRollbackSaver

__all__ = [
    "GUARD_CONFIG_KEY",
    "current_channels",
    "current_durability",
    "current_task",
    "empty_value",
]

GUARD_CONFIG_KEY = "rollback_guard"
"""`configurable` key that sets the guard policy for one graph or run."""

NS_SEP = "|"
"""Separates a subgraph task's namespace from its parent's (langgraph NS_SEP)."""


def current_task() -> TaskContext | None:
    """The task this code runs in, if it runs in a graph with a rollback saver.

    Returns None outside any graph run, and inside a run whose checkpointer is
    not one of this library's savers: declared tools then run unrecorded.
    """
    config = var_child_runnable_config.get()
    if not config:
        return None
    conf = config.get("configurable") or {}
    saver = conf.get(CONFIG_KEY_CHECKPOINTER)
    if not isinstance(saver, BaseRollbackSaver):
        return None
    runtime = conf.get(CONFIG_KEY_RUNTIME)
    info = getattr(runtime, "execution_info", None)
    scope = conf.get(CONFIG_KEY_READ)
    if info is None or scope is None:
        return None
    thread_id = info.thread_id or conf.get("thread_id")
    if thread_id is None:
        return None
    task_ns: str = info.checkpoint_ns
    checkpoint_ns = task_ns.rsplit(NS_SEP, 1)[0] if NS_SEP in task_ns else ""
    checkpoint_map = conf.get(CONFIG_KEY_CHECKPOINT_MAP) or {}
    guard = conf.get(GUARD_CONFIG_KEY) or saver.guard
    if guard not in GUARD_MODES:
        raise InvalidConfigError(
            f"configurable.{GUARD_CONFIG_KEY}={guard!r} is not a guard policy. "
            'Fix: use "allow", "ask" or "block".'
        )
    return TaskContext(
        store=saver,
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
        run_checkpoint_id=_run_checkpoint(config),
        durability=_durability(conf),
    )


def _run_checkpoint(config: Mapping[str, Any]) -> str | None:
    """The root checkpoint the caller started the run from, if it named one.

    LangChain copies the run's `configurable` values into `metadata` when the
    run starts (`ensure_config`); the task's own `checkpoint_id` is reset to
    None, but the metadata keeps the checkpoint the caller started from.
    """
    metadata = config.get("metadata") or {}
    run_checkpoint = metadata.get("checkpoint_id")
    if metadata.get("checkpoint_ns") or not isinstance(run_checkpoint, str):
        return None
    return run_checkpoint


def _durability(conf: Mapping[str, Any]) -> str | None:
    value = conf.get(CONFIG_KEY_DURABILITY)
    return None if value is None else str(value)


def current_channels() -> Mapping[str, Any] | None:
    """The running graph's channels (name -> `BaseChannel`), or None.

    LangGraph binds them as the second argument of the per-task
    `__pregel_read` partial (`pregel/_algo.py` `local_read`).
    """
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


def empty_value(channel: BaseChannel[Any, Any, Any]) -> Any:
    """A reducer channel's value when nothing was written to it (e.g. `[]`)."""
    try:
        return channel.from_checkpoint(MISSING).get()
    except EmptyChannelError:
        return None
