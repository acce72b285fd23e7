"""Thin drivers that run the I/O-free flows (`_record`, `_plan`, `_rollback`).

A flow yields operations (`_ops`); a driver performs each one and sends the
result back. Storage operations name the saver primitive that performs them,
so `run_sync` and `run_async` stay the only two copies of the loop, whatever
the flow and whatever the backend.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from langchain_core.tools import BaseTool

from langgraph_rollback._context import restoring, running_effect
from langgraph_rollback._ops import (
    Ask,
    Observe,
    Outcome,
    Perform,
    Restore,
    StorageOp,
    Undo,
)

if TYPE_CHECKING:
    from collections.abc import Generator

    from langgraph_rollback._models import Effect
    from langgraph_rollback.backends.base import BaseRollbackSaver

__all__ = ["InverseTimeoutError", "run_async", "run_sync"]


Progress = Callable[["Effect", bool], None]
"""Called after each inverse with its effect and whether it succeeded."""


def run_sync(
    flow: Generator[Any, Any, Any],
    saver: BaseRollbackSaver,
    *,
    perform: Callable[[], Any] | None = None,
    graph: Any = None,
    progress: Progress | None = None,
) -> Any:
    """Drive `flow` to completion with blocking I/O; return its result."""
    send: Any = None
    while True:
        try:
            op = flow.send(send)
        except StopIteration as stop:
            return stop.value
        send = _step_sync(op, saver, perform, graph)
        if progress is not None and isinstance(op, Undo):
            progress(op.effect, send.error is None)


def _step_sync(
    op: Any, saver: BaseRollbackSaver, perform: Callable[[], Any] | None, graph: Any
) -> Any:
    if isinstance(op, StorageOp):
        return getattr(saver, op.method)(op)
    if isinstance(op, Observe):
        with _as_current(op.effect):
            try:
                return Outcome(value=op.fn(**op.kwargs))
            except Exception as exc:
                return Outcome(error=exc)
    if isinstance(op, Perform):
        assert perform is not None
        with running_effect(op.effect):
            try:
                return Outcome(value=perform())
            except BaseException as exc:
                return Outcome(error=exc)
    if isinstance(op, Ask):
        from langgraph.types import interrupt

        return interrupt(dict(op.payload))
    if isinstance(op, Undo):
        return _undo_sync(op)
    if isinstance(op, Restore):
        with restoring(op.mark):
            return graph.update_state(op.config, None, as_node="__copy__")
    raise TypeError(f"unknown operation {op!r}")  # pragma: no cover


def _as_current(effect: Effect | None) -> AbstractContextManager[None]:
    return running_effect(effect) if effect is not None else nullcontext()


class InverseTimeoutError(TimeoutError):
    """An inverse did not finish within `inverse_timeout`; it may still land."""


def _undo_sync(op: Undo) -> Outcome:
    def call() -> Any:
        if isinstance(op.fn, BaseTool):
            return op.fn.invoke(dict(op.args or {}))
        value = op.fn(op.effect)
        if inspect.isawaitable(value):
            return _run_coroutine(value)
        return value

    with running_effect(op.effect):
        if op.timeout is None:
            try:
                return Outcome(value=call())
            except Exception as exc:
                return Outcome(error=exc)
        return _with_thread_timeout(call, op.timeout)


def _run_coroutine(awaitable: Awaitable[Any]) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    raise RuntimeError(
        "An async inverse cannot run from sync code inside a running event "
        "loop. Fix: use arollback() (or run the graph with ainvoke)."
    )


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _with_thread_timeout(call: Callable[[], Any], timeout: float) -> Outcome:
    """Run `call` in a daemon thread; give up waiting after `timeout` seconds.

    A Python thread cannot be stopped: an inverse that times out may still
    finish later. Its effect is marked `compensation_failed` either way.
    """
    box: list[Outcome] = []

    def target() -> None:
        try:
            box.append(Outcome(value=call()))
        except Exception as exc:
            box.append(Outcome(error=exc))

    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(target,), name="lgrb-inverse", daemon=True
    )
    thread.start()
    thread.join(timeout)
    if not box:
        return Outcome(
            error=InverseTimeoutError(f"inverse did not finish in {timeout}s")
        )
    return box[0]


async def run_async(
    flow: Generator[Any, Any, Any],
    saver: BaseRollbackSaver,
    *,
    perform: Callable[[], Awaitable[Any]] | None = None,
    graph: Any = None,
    progress: Progress | None = None,
) -> Any:
    """Drive `flow` to completion with async I/O; return its result."""
    send: Any = None
    while True:
        try:
            op = flow.send(send)
        except StopIteration as stop:
            return stop.value
        send = await _step_async(op, saver, perform, graph)
        if progress is not None and isinstance(op, Undo):
            progress(op.effect, send.error is None)


async def _step_async(
    op: Any,
    saver: BaseRollbackSaver,
    perform: Callable[[], Awaitable[Any]] | None,
    graph: Any,
) -> Any:
    if isinstance(op, StorageOp):
        return await getattr(saver, "_a" + op.method.lstrip("_"))(op)
    if isinstance(op, Observe):
        with _as_current(op.effect):
            try:
                value = op.fn(**op.kwargs)
                if inspect.isawaitable(value):
                    value = await value
                return Outcome(value=value)
            except Exception as exc:
                return Outcome(error=exc)
    if isinstance(op, Perform):
        assert perform is not None
        with running_effect(op.effect):
            try:
                return Outcome(value=await perform())
            except BaseException as exc:
                return Outcome(error=exc)
    if isinstance(op, Ask):
        from langgraph.types import interrupt

        return interrupt(dict(op.payload))
    if isinstance(op, Undo):
        return await _undo_async(op)
    if isinstance(op, Restore):
        with restoring(op.mark):
            return await graph.aupdate_state(op.config, None, as_node="__copy__")
    raise TypeError(f"unknown operation {op!r}")  # pragma: no cover


async def _undo_async(op: Undo) -> Outcome:
    async def call() -> Any:
        if isinstance(op.fn, BaseTool):
            return await op.fn.ainvoke(dict(op.args or {}))
        if inspect.iscoroutinefunction(op.fn):
            return await op.fn(op.effect)
        value = await asyncio.to_thread(op.fn, op.effect)
        if inspect.isawaitable(value):
            value = await value
        return value

    with running_effect(op.effect):
        try:
            if op.timeout is None:
                return Outcome(value=await call())
            return Outcome(value=await asyncio.wait_for(call(), op.timeout))
        except TimeoutError:
            error = InverseTimeoutError(f"inverse did not finish in {op.timeout}s")
            return Outcome(error=error)
        except Exception as exc:
            return Outcome(error=exc)
