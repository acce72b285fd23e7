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

import asyncio
import gc
import inspect
import os
import sys
import threading
import types
import warnings
import weakref
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any, cast

from langchain_core.runnables.config import var_child_runnable_config
from langgraph._internal._constants import (
    CONFIG_KEY_CHECKPOINT_MAP,
    CONFIG_KEY_CHECKPOINTER,
    CONFIG_KEY_DURABILITY,
    CONFIG_KEY_READ,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_SCRATCHPAD,
)
from langgraph._internal._typing import MISSING
from langgraph.channels.base import BaseChannel
from langgraph.errors import EmptyChannelError
from langgraph.pregel._retry import arun_with_retry, run_with_retry

from langgraph_rollback._current import container_effect_id
from langgraph_rollback._errors import InvalidConfigError, UnrecordedCallWarning
from langgraph_rollback._liveness import process
from langgraph_rollback.core.audit import AUTH_USER_KEY
from langgraph_rollback.core.registry import ToolDefinition
from langgraph_rollback.core.task import GUARD_MODES, TaskContext
from langgraph_rollback.savers.base import BaseRollbackSaver

__all__ = [
    "GUARD_CONFIG_KEY",
    "current_channels",
    "current_durability",
    "current_task",
    "empty_value",
    "find_saver",
]

_WRAPPED_DEPTH = 8
"""How many delegating wrappers `find_saver` looks through."""

GUARD_CONFIG_KEY = "rollback_guard"
"""`configurable` key that sets the guard policy for one graph or run."""

NS_SEP = "|"
"""Separates a subgraph task's namespace from its parent's (langgraph NS_SEP)."""


def find_saver(checkpointer: object) -> BaseRollbackSaver | None:
    """The rollback saver `checkpointer` is, or wraps; None when it is neither.

    The rule: a checkpointer that delegates to another keeps it in `_inner`
    (LangGraph's Agent Server wraps the checkpointer it is given in
    `langgraph_api._checkpointer._adapter._CustomCheckpointerAdapter`, which
    does), an instance attribute, a slot or a property, looked through up to
    `_WRAPPED_DEPTH` wrappers deep. A `__getattr__` that answers any name is
    not asked.
    """
    for _ in range(_WRAPPED_DEPTH):
        if isinstance(checkpointer, BaseRollbackSaver):
            return checkpointer
        inner = _inner_of(checkpointer)
        if inner is None or inner is checkpointer:
            return None
        checkpointer = inner
    return None


def _inner_of(checkpointer: object) -> object:
    inner = inspect.getattr_static(checkpointer, "_inner", None)
    if isinstance(inner, (property, types.MemberDescriptorType)):
        try:
            return getattr(checkpointer, "_inner", None)
        except Exception:
            return None
    return inner


def current_task(tool: ToolDefinition | str | None = None) -> TaskContext | None:
    """The task this code runs in, if it runs in a graph with a rollback saver.

    Returns None outside any graph run, and inside a run whose checkpointer is
    not (and does not wrap) one of this library's savers: the declared tool
    then runs unrecorded. With `tool` (the definition of a declared call
    asking, or the name of an undeclared one), that is never silent inside a
    run: `UnrecordedCallWarning` names the tool and the fix, each time when
    the call lost its run's context while a task of a rollback saver runs in
    this process, once per tool under another checkpointer.
    """
    config = var_child_runnable_config.get()
    if config is not None and config is _INHERITED_RUN[0]:
        if tool is not None:
            _warn_forked(tool)
        return None
    conf = (config or {}).get("configurable") or {}
    if CONFIG_KEY_RUNTIME not in conf:
        if tool is not None and _lost_context(config) and _our_task_in_flight():
            _warn_lost_context(tool, replaced=config is not None)
        return None
    saver = find_saver(conf.get(CONFIG_KEY_CHECKPOINTER))
    if saver is None:
        if tool is not None:
            _warn_foreign(tool, conf.get(CONFIG_KEY_CHECKPOINTER))
        return None
    runtime = conf.get(CONFIG_KEY_RUNTIME)
    info = getattr(runtime, "execution_info", None)
    scope = conf.get(CONFIG_KEY_READ)
    thread_id = None if info is None else (info.thread_id or conf.get("thread_id"))
    if info is None or scope is None or thread_id is None:
        if tool is not None:
            _warn_lost_context(tool, replaced=False)
        return None
    return _task_context(saver, conf, config or {}, info, scope, str(thread_id))


def _task_context(
    saver: BaseRollbackSaver,
    conf: Mapping[str, Any],
    config: Mapping[str, Any],
    info: Any,
    scope: Any,
    thread_id: str,
) -> TaskContext:
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
        thread_id=thread_id,
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
        owner=process(),
        resumed=_resumed(conf.get(CONFIG_KEY_SCRATCHPAD)),
        digest_key=saver.digest_key(),
        legacy_keys=saver.legacy_keys,
        unkeyed_keys=saver.unkeyed_keys,
        in_flight_wait=saver.in_flight_wait,
        inside=container_effect_id(),
        step=_step(config),
        task_path=_task_path(config),
        user=_auth_user(conf),
    )


def _step(config: Mapping[str, Any]) -> int | None:
    """The graph step the task runs in (`metadata["langgraph_step"]`)."""
    step = (config.get("metadata") or {}).get("langgraph_step")
    return step if isinstance(step, int) else None


def _task_path(config: Mapping[str, Any]) -> str | None:
    """The task's path within its step (`metadata["langgraph_path"]`), as text."""
    path = (config.get("metadata") or {}).get("langgraph_path")
    if not isinstance(path, (tuple, list)):
        return None
    return "/".join(str(part) for part in path)


def _auth_user(conf: Mapping[str, Any]) -> str | None:
    """The Agent Server's authenticated user (langgraph-api `models/run.py`
    sets `configurable.langgraph_auth_user_id` on every run; "" without auth)."""
    user = conf.get(AUTH_USER_KEY)
    return user if isinstance(user, str) and user else None


def _resumed(scratchpad: Any) -> bool:
    """Whether the task resumes an `interrupt()`: a resume value waits for it,
    or one of its interrupts took one (`pregel/_algo.py` `_scratchpad`)."""
    if scratchpad is None:
        return False
    if getattr(scratchpad, "resume", None):
        return True
    peek = getattr(scratchpad, "get_null_resume", None)
    return peek is not None and peek(False) is not None


# --- never silently unrecorded --------------------------------------------------

_WARNED_FOREIGN: weakref.WeakSet[ToolDefinition] = weakref.WeakSet()
_WARNED_NAMES: set[str] = set()
_WARNED_LOCK = threading.Lock()
_TASK_RUNNERS = frozenset({run_with_retry.__code__, arun_with_retry.__code__})


def _name(tool: ToolDefinition | str) -> str:
    return tool if isinstance(tool, str) else tool.name


def _lost_context(config: Mapping[str, Any] | None) -> bool:
    """Whether a call without a run's `configurable` may have lost one.

    A config whose metadata LangGraph filled (`langgraph_node`) belongs to a
    run whose `configurable` a Runnable call replaced. Without any config,
    the call runs outside the run's context: in a plain thread or executor a
    node started (never this process's main thread, nor an asyncio task,
    which carry their own context), or outside any run.
    """
    if config is not None:
        return "langgraph_node" in (config.get("metadata") or {})
    if threading.current_thread() is threading.main_thread():
        return False
    try:
        return asyncio.current_task() is None
    except RuntimeError:
        return True


def _warn_lost_context(tool: ToolDefinition | str, *, replaced: bool) -> None:
    if replaced:
        why = (
            "This happens when a node invokes a Runnable (a chain, a tool) with "
            "a config of its own whose `configurable` replaces the run's (e.g. "
            '`chain.invoke(x, config={"configurable": {...}})`). Fix: keep the '
            "run's configurable, e.g. `chain.invoke(x, config={"
            '"configurable": {**get_config()["configurable"], ...}})` '
            "(langgraph.config.get_config), or pass values some other way."
        )
    else:
        why = (
            "This happens when a node calls it from a plain thread or executor "
            "(threading.Thread, ThreadPoolExecutor, loop.run_in_executor), "
            "which do not carry the run's context. Fix: call it in the node "
            "itself, with asyncio.to_thread, or through "
            "langchain_core.runnables.config.ContextThreadPoolExecutor, which "
            "copy the context."
        )
    warnings.warn(
        f"The declared tool {_name(tool)!r} ran without its graph run's context, so "
        "the call is not in the ledger: a rollback will not undo it, and a "
        f"resume may run it again. {why}",
        UnrecordedCallWarning,
        stacklevel=4,
    )


_INHERITED_RUN: list[Any] = [None]
"""In a forked child: the run context the forking thread had (a fork-based
process pool forks a node's thread, context and all)."""


def _note_inherited_run() -> None:
    _INHERITED_RUN[0] = var_child_runnable_config.get()


os.register_at_fork(after_in_child=_note_inherited_run)


def _warn_forked(tool: ToolDefinition | str) -> None:
    warnings.warn(
        f"The declared tool {_name(tool)!r} ran in a process forked from the one "
        "running its graph (a fork-based process pool), so the call is not in "
        "the ledger: a saver's connection must not cross a fork, and a rollback "
        "will not undo the call. Fix: call it in the node itself (or with "
        "asyncio.to_thread), and hand only undeclared work to the pool.",
        UnrecordedCallWarning,
        stacklevel=4,
    )


def _warn_foreign(tool: ToolDefinition | str, checkpointer: object) -> None:
    with _WARNED_LOCK:
        warned: Any = _WARNED_NAMES if isinstance(tool, str) else _WARNED_FOREIGN
        if tool in warned:
            return
        warned.add(tool)
    kind = "no checkpointer" if checkpointer is None else type(checkpointer).__name__
    warnings.warn(
        f"The tool {_name(tool)!r} runs in a graph whose checkpointer is "
        f"{kind}, not a rollback saver, so its calls are not recorded and a "
        "rollback cannot undo them (said once per tool). Fix: compile the graph "
        "with one, e.g. `builder.compile(checkpointer=SqliteRollbackSaver(...))`.",
        UnrecordedCallWarning,
        stacklevel=4,
    )


def _our_task_in_flight() -> bool:
    """Whether any thread or event loop of this process is running a LangGraph
    task whose checkpointer is (or wraps) a rollback saver.

    Looked up only for a declared call that found no run context: the stacks
    of the threads (`sys._current_frames`) and the tasks of the event loops
    found on them hold LangGraph's task runner (`pregel/_retry.py`
    `run_with_retry`, `arun_with_retry`) with the task it runs.
    """
    frames = list(sys._current_frames().values())
    loops = {id(loop): loop for loop in _loops_in(frames)}
    for frame in frames:
        if _runs_our_task(_stack(frame)):
            return True
    for loop in loops.values():
        for task in _tasks_of(loop):
            if _runs_our_task(_awaited_frames(task.get_coro())):
                return True
    return False


def _stack(frame: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def _loops_in(frames: list[FrameType]) -> Iterator[asyncio.AbstractEventLoop]:
    """The event loops running on these stacks: a loop's own frames, or, for
    a loop written in C (uvloop), the `asyncio.Runner` (`asyncio.run`,
    `uvloop.run`) or the `loop` variable of the frame that runs it."""
    for top in frames:
        for frame in _stack(top):
            owner = frame.f_locals.get("self")
            for candidate in (
                owner,
                getattr(owner, "__dict__", {}).get("_loop"),
                frame.f_locals.get("loop"),
            ):
                if isinstance(candidate, asyncio.AbstractEventLoop):
                    yield candidate


def _tasks_of(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    for _ in range(3):  # the loop's thread may add tasks meanwhile
        try:
            return list(asyncio.all_tasks(loop))
        except RuntimeError:
            continue
    return []


def _awaited_frames(awaitable: Any) -> Iterator[FrameType]:
    """The frames of a suspended coroutine and of what it awaits, down the chain.

    Coroutines, generators and async generators expose their frame and what
    they await; the awaitable of an async generator's `__anext__`
    (`async_generator_asend`) exposes neither, so its generator is found
    among the objects it refers to.
    """
    seen = 0
    while awaitable is not None and seen < 200:
        seen += 1
        frame = _frame_of(awaitable)
        if frame is None:
            awaitable = _generator_behind(awaitable)
            continue
        yield frame
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "ag_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
        )


def _frame_of(awaitable: Any) -> FrameType | None:
    for name in ("cr_frame", "ag_frame", "gi_frame"):
        frame = getattr(awaitable, name, None)
        if frame is not None:
            return cast(FrameType, frame)
    return None


def _generator_behind(awaitable: Any) -> Any:
    if type(awaitable).__name__ not in (
        "async_generator_asend",
        "async_generator_athrow",
    ):
        return None
    for referent in gc.get_referents(awaitable):
        if _frame_of(referent) is not None:
            return referent
    return None


def _runs_our_task(frames: Iterator[FrameType]) -> bool:
    for frame in frames:
        if frame.f_code in _TASK_RUNNERS:
            task = frame.f_locals.get("task")
            conf = (getattr(task, "config", None) or {}).get("configurable") or {}
            if find_saver(conf.get(CONFIG_KEY_CHECKPOINTER)) is not None:
                return True
    return False


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
