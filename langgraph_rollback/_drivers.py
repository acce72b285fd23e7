"""Thin drivers that run the I/O-free flows of `_ledger` (and later `_plan`).

A flow yields operations; a driver performs each one (a ledger write through
the saver's primitives, an observation, the forward call) and sends the
result back. `run_sync` and `run_async` are the only two copies of that loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from langgraph_rollback._context import running_effect
from langgraph_rollback._ledger import (
    Begin,
    Flow,
    Observe,
    Op,
    Outcome,
    Perform,
    Update,
)

if TYPE_CHECKING:
    from langgraph_rollback.backends.base import BaseRollbackSaver

__all__ = ["run_async", "run_sync"]


def run_sync(flow: Flow, saver: BaseRollbackSaver, perform: Callable[[], Any]) -> Any:
    """Drive `flow` to completion with blocking I/O; return its result."""
    send: Any = None
    while True:
        try:
            op = flow.send(send)
        except StopIteration as stop:
            return stop.value
        send = _step_sync(op, saver, perform)


def _step_sync(op: Op, saver: BaseRollbackSaver, perform: Callable[[], Any]) -> Any:
    if isinstance(op, Begin):
        return saver._ledger_begin(op.row)
    if isinstance(op, Update):
        return saver._ledger_update(op)
    if isinstance(op, Observe):
        try:
            return Outcome(value=op.fn(**op.kwargs))
        except Exception as exc:
            return Outcome(error=exc)
    if isinstance(op, Perform):
        with running_effect(op.effect):
            try:
                return Outcome(value=perform())
            except BaseException as exc:
                return Outcome(error=exc)
    raise TypeError(f"unknown ledger operation {op!r}")  # pragma: no cover


async def run_async(
    flow: Flow, saver: BaseRollbackSaver, perform: Callable[[], Awaitable[Any]]
) -> Any:
    """Drive `flow` to completion with async I/O; return its result."""
    send: Any = None
    while True:
        try:
            op = flow.send(send)
        except StopIteration as stop:
            return stop.value
        send = await _step_async(op, saver, perform)


async def _step_async(
    op: Op, saver: BaseRollbackSaver, perform: Callable[[], Awaitable[Any]]
) -> Any:
    if isinstance(op, Begin):
        return await saver._aledger_begin(op.row)
    if isinstance(op, Update):
        return await saver._aledger_update(op)
    if isinstance(op, Observe):
        try:
            value = op.fn(**op.kwargs)
            if inspect.isawaitable(value):
                value = await value
            return Outcome(value=value)
        except Exception as exc:
            return Outcome(error=exc)
    if isinstance(op, Perform):
        with running_effect(op.effect):
            try:
                return Outcome(value=await perform())
            except BaseException as exc:
                return Outcome(error=exc)
    raise TypeError(f"unknown ledger operation {op!r}")  # pragma: no cover
