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
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from langchain_core.tools import BaseTool
from langgraph.types import interrupt

from langgraph_rollback._current import restoring, running_call, running_effect
from langgraph_rollback._liveness import on_this_host, owner_alive, process
from langgraph_rollback.core.ops import (
    Ask,
    AwaitCall,
    Begin,
    BeginIfNewKey,
    Flow,
    Notify,
    Observe,
    Op,
    Outcome,
    Perform,
    Restore,
    StorageOp,
    Undo,
    Update,
)
from langgraph_rollback.core.store import AsyncLedgerStore, FaultPoint, LedgerStore
from langgraph_rollback.core.undo import InverseTimeoutError

if TYPE_CHECKING:
    from langgraph.pregel import Pregel

    from langgraph_rollback._models import Effect

__all__ = ["IN_FLIGHT", "Progress", "run_async", "run_sync"]

T = TypeVar("T")
logger = logging.getLogger(__name__)

Progress = Callable[["Effect", bool], None]
"""Called after each inverse's outcome is recorded, with its effect and whether
it was undone. An exception it raises stops the rollback there (the lock is
released; rolling back again continues)."""


class _InFlight:
    """The calls this process is performing, by effect id (`undo:<id>` for
    inverses).

    A forward call is in flight from just before its intent is committed
    (`Begin`: another flow of this process that finds the intent must wait
    for it, not take it for an abandoned one) until the flow that performs
    it ends (its outcome recorded, or the flow gone), even when the run that
    started it was cancelled and its worker thread carries on. An inverse is
    in flight until it returns, also when its rollback stopped waiting for
    it (`inverse_timeout`).

    Each flow that may perform the call holds a claim of its own (two
    resumes of one thread both claim it before either intent is written);
    the call is in flight while any claim remains, so the flow whose intent
    was not written, dropping its claim, never makes the call look
    abandoned while the other is about to perform it.
    """

    def __init__(self) -> None:
        # effect id -> [the event a waiter waits on (made by the first
        # waiter), the flows claiming the call]
        self._calls: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def start(self, effect_id: str, owner: object = None) -> bool:
        """Claim `effect_id` for `owner` (a flow); False when `owner`
        already claimed it."""
        with self._lock:
            found = self._calls.get(effect_id)
            if found is None:
                self._calls[effect_id] = [None, [owner]]
                return True
            if any(claim is owner for claim in found[1]):
                return False
            found[1].append(owner)
            return True

    def end(self, effect_id: str, owner: object = None) -> None:
        """Drop `owner`'s claim (with None, every claim: the call ended); the
        call is no longer in flight once no claim remains."""
        with self._lock:
            found = self._calls.get(effect_id)
            if found is None:
                return
            if owner is not None:
                claims = [claim for claim in found[1] if claim is not owner]
                if len(claims) == len(found[1]) or claims:
                    found[1] = claims
                    return
            del self._calls[effect_id]
        if found[0] is not None:
            found[0].set()

    def wait(self, op: AwaitCall) -> str:
        """The `AwaitCall` answer, waiting up to its timeout (blocking)."""
        with self._lock:
            found = self._calls.get(op.effect_id)
            if found is not None and found[0] is None:
                found[0] = threading.Event()
        done = found[0] if found is not None else None
        if done is not None:
            return "finished" if done.wait(op.timeout) else "running"
        if op.owner is None or op.owner == process():
            return "gone"
        if not on_this_host(op.owner):
            return "elsewhere"
        return "running" if owner_alive(op.owner) else "gone"

    def forget_all(self) -> None:
        """In a forked child: none of the parent's calls runs here."""
        self._calls = {}
        self._lock = threading.Lock()


IN_FLIGHT = _InFlight()
os.register_at_fork(after_in_child=IN_FLIGHT.forget_all)


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
                    claimed = _claim(op, performing)
                    try:
                        send = store.execute(op)
                    except BaseException:
                        _settle(claimed, performing, False)  # performs nothing
                        raise
                    _settle(claimed, performing, _written(op, send))
                else:
                    _starting(op, performing)
                    send = _step_sync(op, store, perform, graph, progress)
                    _after_user_code(op, store)
            except BaseException as exc:
                error = exc
    finally:
        for effect_id in performing:
            IN_FLIGHT.end(effect_id, performing)


def _step_sync(
    op: Op[Any],
    store: LedgerStore,
    perform: Callable[[], Any] | None,
    graph: Pregel[Any, Any, Any, Any] | None,
    progress: Progress | None,
) -> Any:
    if isinstance(op, Notify):
        return _notify(op, progress)
    if isinstance(op, Observe):
        with _as_current(op.effect):
            try:
                value = op.fn(**op.kwargs)
                if inspect.isawaitable(value):  # an async observe, as an inverse
                    value = _run_coroutine(value)
                return Outcome(value=value)
            except Exception as exc:
                return Outcome(error=exc)
    if isinstance(op, Perform):
        assert perform is not None
        with running_call(op.effect_id, op.effect):
            try:
                return Outcome(value=perform())
            except BaseException as exc:
                return Outcome(error=exc)
    if isinstance(op, Ask):
        return interrupt(dict(op.payload))
    if isinstance(op, AwaitCall):
        return IN_FLIGHT.wait(op)
    if isinstance(op, Undo):
        return _undo_sync(op, store)
    if isinstance(op, Restore):
        assert graph is not None
        _fire(store, FaultPoint.BEFORE_RESTORE, None)
        with restoring(op.mark):
            return graph.update_state(op.config, None, as_node="__copy__")
    raise TypeError(f"unknown operation {op!r}")  # pragma: no cover


def _starting(op: Op[Any], performing: list[str]) -> None:
    if isinstance(op, Perform) and IN_FLIGHT.start(op.effect_id, performing):
        performing.append(op.effect_id)


def _claim(op: StorageOp[Any], performing: list[str]) -> str | None:
    """Mark the call a write may hand to this flow in flight before the write
    commits (an intent, or a restart: an `Update` with `starts_call`), so
    another flow of this process that finds it waits for this one. The call's
    effect id, or None for other writes."""
    if isinstance(op, (Begin, BeginIfNewKey)):
        effect_id = op.row.effect_id
    elif isinstance(op, Update) and op.starts_call:
        effect_id = op.effect_id
    else:
        return None
    if IN_FLIGHT.start(effect_id, performing):
        performing.append(effect_id)
    return effect_id


def _written(op: StorageOp[Any], result: Any) -> bool:
    """Whether the write committed the call as this flow's to perform."""
    if isinstance(op, (Begin, BeginIfNewKey)):
        return result is not None and bool(result[1])
    return bool(result)


def _settle(effect_id: str | None, performing: list[str], written: bool) -> None:
    """The flow whose write committed performs the call and keeps its claim
    (another flow may hold one too, until its own write answers); a write
    that found the call there already, changed nothing or raised leaves the
    call not this flow's (until a replay restarts it), so the claim goes."""
    if effect_id is not None and not written and effect_id in performing:
        performing.remove(effect_id)
        IN_FLIGHT.end(effect_id, performing)


def _notify(op: Notify, progress: Progress | None) -> None:
    if progress is not None:
        progress(op.effect, op.ok)


def _after_user_code(op: Op[Any], store: LedgerStore | AsyncLedgerStore) -> None:
    """Fault points after an operation that ran user code."""
    if isinstance(op, Perform):
        _fire(store, FaultPoint.AFTER_FORWARD, op.effect_id)
    elif isinstance(op, Undo):
        _fire(store, FaultPoint.AFTER_INVERSE, op.effect.id)
    elif isinstance(op, Restore):
        _fire(store, FaultPoint.AFTER_RESTORE, None)


def _fire(
    store: LedgerStore | AsyncLedgerStore, point: FaultPoint, effect_id: str | None
) -> None:
    if store.probe is not None:
        store.probe(point, effect_id)


def _as_current(effect: Effect | None) -> AbstractContextManager[None]:
    return running_effect(effect) if effect is not None else nullcontext()


def _undo_key(op: Undo) -> str:
    return f"undo:{op.effect.id}"


def _undo_sync(op: Undo, store: LedgerStore) -> Outcome:
    def call() -> Any:
        if isinstance(op.fn, BaseTool):
            return op.fn.invoke(dict(op.args or {}))
        value = op.fn(op.effect)
        if inspect.isawaitable(value):
            return _run_coroutine(value)
        return value

    key = _undo_key(op)
    IN_FLIGHT.start(key)
    with running_effect(op.effect):
        if op.timeout is None:
            try:
                return _outcome(call)
            finally:
                IN_FLIGHT.end(key)
        return _with_thread_timeout(call, op, store)


def _outcome(call: Callable[[], Any]) -> Outcome:
    try:
        return Outcome(value=call())
    except Exception as exc:
        return Outcome(error=exc)


def _late_not_recorded(op: Undo) -> None:
    logger.exception(
        "Could not record the outcome of the timed-out inverse of effect %s; "
        "it stays 'compensating': check the target, then "
        "saver.resolve_effect(config, %r, compensated=True|False)",
        op.effect.id,
        op.effect.id,
    )


def _late_sync(op: Undo, outcome: Outcome, store: LedgerStore) -> None:
    """Record the outcome of an inverse its rollback stopped waiting for."""
    if op.late is None:
        return
    try:
        store.execute(op.late(outcome))
    except Exception:
        _late_not_recorded(op)


async def _late_async(op: Undo, outcome: Outcome, store: AsyncLedgerStore) -> None:
    """Record the outcome of an inverse its rollback stopped waiting for."""
    if op.late is None:
        return
    try:
        await store.aexecute(op.late(outcome))
    except Exception:
        _late_not_recorded(op)


def _run_coroutine(awaitable: Awaitable[Any]) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # never awaited: no "coroutine was never awaited" warning
    raise RuntimeError(
        "An async inverse or observe cannot run from sync code inside a running "
        "event loop. Fix: use arollback() or aplan_rollback() (or run the graph "
        "with ainvoke)."
    )


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _with_thread_timeout(
    call: Callable[[], Any], op: Undo, store: LedgerStore
) -> Outcome:
    """Run `call` in a daemon thread; give up waiting after `op.timeout` seconds.

    A Python thread cannot be stopped: an inverse that times out may still
    finish later. It stays in flight (and its effect claimed,
    `compensating`) until it returns; then its outcome is recorded.
    """
    assert op.timeout is not None
    key = _undo_key(op)
    box: list[Outcome] = []
    gave_up = False
    lock = threading.Lock()

    def target() -> None:
        outcome = _outcome(call)
        with lock:
            box.append(outcome)
            late = gave_up
        if late:
            try:
                _late_sync(op, outcome, store)
            finally:
                IN_FLIGHT.end(key)

    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(target,), name="lgrb-inverse", daemon=True
    )
    thread.start()
    thread.join(op.timeout)
    with lock:
        if not box:
            gave_up = True
            return Outcome(
                error=InverseTimeoutError(f"inverse did not finish in {op.timeout}s")
            )
    IN_FLIGHT.end(key)
    return box[0]


async def run_async(
    flow: Flow[T],
    store: AsyncLedgerStore,
    *,
    perform: Callable[[], Awaitable[Any]] | None = None,
    graph: Pregel[Any, Any, Any, Any] | None = None,
    progress: Progress | None = None,
) -> T:
    """Drive `flow` to completion with async I/O; return its result.

    A storage operation is never cancelled halfway: it runs shielded from
    anyio cancel scopes, and a cancellation reaches the flow at its next await
    of user code (a tool, an inverse) or when it ends. Under anyio (Starlette,
    FastAPI) a cancelled scope cancels every await inside it, so unshielded,
    the release of the thread's lock was cancelled too, and a query cancelled
    mid-way closes a PostgreSQL connection. The database's own timeouts
    still bound a storage operation.
    """
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
                    claimed = _claim(op, performing)
                    try:
                        with anyio.CancelScope(shield=True):
                            send = await store.aexecute(op)
                    except BaseException:
                        _settle(claimed, performing, False)  # performs nothing
                        raise
                    _settle(claimed, performing, _written(op, send))
                else:
                    _starting(op, performing)
                    send = await _step_async(op, store, perform, graph, progress)
                    _after_user_code(op, store)
            except BaseException as exc:
                error = exc
    finally:
        for effect_id in performing:
            IN_FLIGHT.end(effect_id, performing)


async def _step_async(
    op: Op[Any],
    store: AsyncLedgerStore,
    perform: Callable[[], Awaitable[Any]] | None,
    graph: Pregel[Any, Any, Any, Any] | None,
    progress: Progress | None,
) -> Any:
    if isinstance(op, Notify):
        return _notify(op, progress)
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
        with running_call(op.effect_id, op.effect):
            try:
                return Outcome(value=await perform())
            except BaseException as exc:
                return Outcome(error=exc)
    if isinstance(op, Ask):
        return interrupt(dict(op.payload))
    if isinstance(op, AwaitCall):
        return await asyncio.to_thread(IN_FLIGHT.wait, op)
    if isinstance(op, Undo):
        return await _undo_async(op, store)
    if isinstance(op, Restore):
        assert graph is not None
        _fire(store, FaultPoint.BEFORE_RESTORE, None)
        with restoring(op.mark):
            return await graph.aupdate_state(op.config, None, as_node="__copy__")
    raise TypeError(f"unknown operation {op!r}")  # pragma: no cover


async def _undo_async(op: Undo, store: AsyncLedgerStore) -> Outcome:
    async def call() -> Any:
        if isinstance(op.fn, BaseTool):
            return await op.fn.ainvoke(dict(op.args or {}))
        if inspect.iscoroutinefunction(op.fn):
            return await op.fn(op.effect)
        value = await asyncio.to_thread(op.fn, op.effect)
        if inspect.isawaitable(value):
            value = await value
        return value

    key = _undo_key(op)
    gave_up = False

    async def guarded() -> Outcome:
        # Runs to the end even when the rollback stops waiting for it; then
        # the outcome of an abandoned inverse is recorded.
        try:
            try:
                outcome = Outcome(value=await call())
            except Exception as exc:
                outcome = Outcome(error=exc)
            if gave_up:
                await _late_async(op, outcome, store)
            return outcome
        finally:
            IN_FLIGHT.end(key)

    IN_FLIGHT.start(key)
    with running_effect(op.effect):
        task = asyncio.ensure_future(guarded())
    _ABANDONED.add(task)
    task.add_done_callback(_ABANDONED.discard)
    try:
        done, _ = await asyncio.wait({task}, timeout=op.timeout)
    except asyncio.CancelledError:
        gave_up = True  # the rollback was cancelled; the inverse runs on
        raise
    if task in done:
        return task.result()
    gave_up = True
    return Outcome(
        error=InverseTimeoutError(f"inverse did not finish in {op.timeout}s")
    )


_ABANDONED: set[asyncio.Future[Outcome]] = set()
"""Inverse tasks kept referenced while they run (the event loop holds only
weak references to tasks)."""
