"""The two drivers that run every I/O-free flow: `run_sync` and `run_async`.

A flow (`core.record`, `core.plan`, `core.execute`, ...) yields operations
(`core.ops`); a driver performs each one and sends the result back. Storage
operations go through the store's one door (`execute` / `aexecute`). An error
raised while performing an operation (a storage error, an `interrupt()`, a
failed restore) is thrown into the flow at its `yield`, so a flow's `finally`
(releasing a lock) runs its own operations before the error leaves. The
results and errors of tools, observations and inverses come back as an
`Outcome` instead.

Whatever the flow and whatever the saver, these are the only two copies of
the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.tools import BaseTool
from langgraph.types import interrupt

from langgraph_rollback._current import restoring, running_effect
from langgraph_rollback._liveness import PROCESS, owner_alive
from langgraph_rollback.core.execute import InverseTimeoutError
from langgraph_rollback.core.ops import (
    Ask,
    AwaitCall,
    Flow,
    Observe,
    Op,
    Outcome,
    Perform,
    Restore,
    StorageOp,
    Undo,
)
from langgraph_rollback.core.store import AsyncLedgerStore, FaultPoint, LedgerStore

if TYPE_CHECKING:
    from langgraph.pregel import Pregel

    from langgraph_rollback._models import Effect

__all__ = ["Progress", "run_async", "run_sync"]

T = TypeVar("T")

Progress = Callable[["Effect", bool], None]
"""Called after each inverse with its effect and whether it succeeded."""


class _InFlight:
    """The forward calls this process is performing, by effect id.

    A call is in flight from its `Perform` until the flow that performs it
    ends (its outcome recorded, or the flow gone), even when the run that
    started it was cancelled and its worker thread carries on.
    """

    def __init__(self) -> None:
        self._calls: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, effect_id: str) -> None:
        with self._lock:
            self._calls[effect_id] = threading.Event()

    def end(self, effect_id: str) -> None:
        with self._lock:
            done = self._calls.pop(effect_id, None)
        if done is not None:
            done.set()

    def wait(self, op: AwaitCall) -> str:
        """The `AwaitCall` answer, waiting up to its timeout (blocking)."""
        with self._lock:
            done = self._calls.get(op.effect_id)
        if done is not None:
            return "finished" if done.wait(op.timeout) else "running"
        if op.owner is not None and op.owner != PROCESS and owner_alive(op.owner):
            return "running"
        return "gone"


IN_FLIGHT = _InFlight()


def run_sync(
    flow: Flow[T],
    store: LedgerStore,
    *,
    perform: Callable[[], Any] | None = None,
    graph: Pregel[Any, Any, Any, Any] | None = None,
    progress: Progress | None = None,
) -> T:
    """Drive `flow` to completion with blocking I/O; return its result."""
    send: Any = None
    error: BaseException | None = None
    performing: list[str] = []
    try:
        while True:
            try:
                op = flow.throw(error) if error is not None else flow.send(send)
            except StopIteration as stop:
                result: T = stop.value
                return result
            send, error = None, None
            try:
                if isinstance(op, StorageOp):
                    send = store.execute(op)
                else:
                    _starting(op, performing)
                    send = _step_sync(op, store, perform, graph)
                    _after_user_code(op, send, store, progress)
            except BaseException as exc:
                error = exc
    finally:
        for effect_id in performing:
            IN_FLIGHT.end(effect_id)


def _step_sync(
    op: Op[Any],
    store: LedgerStore,
    perform: Callable[[], Any] | None,
    graph: Pregel[Any, Any, Any, Any] | None,
) -> Any:
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
        return interrupt(dict(op.payload))
    if isinstance(op, AwaitCall):
        return IN_FLIGHT.wait(op)
    if isinstance(op, Undo):
        return _undo_sync(op)
    if isinstance(op, Restore):
        assert graph is not None
        _fire(store, FaultPoint.BEFORE_RESTORE, None)
        with restoring(op.mark):
            return graph.update_state(op.config, None, as_node="__copy__")
    raise TypeError(f"unknown operation {op!r}")  # pragma: no cover


def _starting(op: Op[Any], performing: list[str]) -> None:
    if isinstance(op, Perform):
        IN_FLIGHT.start(op.effect.id)
        performing.append(op.effect.id)


def _after_user_code(
    op: Op[Any],
    result: Any,
    store: LedgerStore | AsyncLedgerStore,
    progress: Progress | None,
) -> None:
    """Fault points and progress after an operation that ran user code."""
    if isinstance(op, Perform):
        _fire(store, FaultPoint.AFTER_FORWARD, op.effect.id)
    elif isinstance(op, Undo):
        _fire(store, FaultPoint.AFTER_INVERSE, op.effect.id)
        if progress is not None:
            progress(op.effect, result.error is None)
    elif isinstance(op, Restore):
        _fire(store, FaultPoint.AFTER_RESTORE, None)


def _fire(
    store: LedgerStore | AsyncLedgerStore, point: FaultPoint, effect_id: str | None
) -> None:
    if store.probe is not None:
        store.probe(point, effect_id)


def _as_current(effect: Effect | None) -> AbstractContextManager[None]:
    return running_effect(effect) if effect is not None else nullcontext()


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
    finish later. Its effect stays claimed (`compensating`).
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
    flow: Flow[T],
    store: AsyncLedgerStore,
    *,
    perform: Callable[[], Awaitable[Any]] | None = None,
    graph: Pregel[Any, Any, Any, Any] | None = None,
    progress: Progress | None = None,
) -> T:
    """Drive `flow` to completion with async I/O; return its result."""
    send: Any = None
    error: BaseException | None = None
    performing: list[str] = []
    try:
        while True:
            try:
                op = flow.throw(error) if error is not None else flow.send(send)
            except StopIteration as stop:
                result: T = stop.value
                return result
            send, error = None, None
            try:
                if isinstance(op, StorageOp):
                    send = await store.aexecute(op)
                else:
                    _starting(op, performing)
                    send = await _step_async(op, store, perform, graph)
                    _after_user_code(op, send, store, progress)
            except BaseException as exc:
                error = exc
    finally:
        for effect_id in performing:
            IN_FLIGHT.end(effect_id)


async def _step_async(
    op: Op[Any],
    store: AsyncLedgerStore,
    perform: Callable[[], Awaitable[Any]] | None,
    graph: Pregel[Any, Any, Any, Any] | None,
) -> Any:
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
        return interrupt(dict(op.payload))
    if isinstance(op, AwaitCall):
        return await asyncio.to_thread(IN_FLIGHT.wait, op)
    if isinstance(op, Undo):
        return await _undo_async(op)
    if isinstance(op, Restore):
        assert graph is not None
        _fire(store, FaultPoint.BEFORE_RESTORE, None)
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
