"""What is running in this context: the effect being performed, the model's
tool call id, and a restore being written.

Context variables only; nothing here reads LangGraph internals or does I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langgraph_rollback._models import Effect

__all__ = [
    "container_call",
    "container_effect_id",
    "current_effect",
    "inside_effect",
    "restore_mark",
    "restoring",
    "running_call",
    "running_effect",
    "tool_call",
    "tool_call_id_for",
]


class _Deferred:
    """The effect of a forward call, built when first asked for: most calls
    never ask (`current_effect()`), and validating the model costs several
    microseconds per call."""

    __slots__ = ("_build", "_built", "id")

    def __init__(self, effect_id: str, build: Callable[[], Effect]) -> None:
        self.id = effect_id
        self._build = build
        self._built: Effect | None = None

    def get(self) -> Effect:
        built = self._built
        if built is None:
            with _BUILDING:  # threads sharing the call's context get one model
                if self._built is None:
                    self._built = self._build()
                built = self._built
        return built


_BUILDING = threading.Lock()


# The effect whose forward call is running in this context (None elsewhere).
_CURRENT_EFFECT: ContextVar[Effect | _Deferred | None] = ContextVar(
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
    found = _CURRENT_EFFECT.get()
    return found.get() if isinstance(found, _Deferred) else found


def running_effect(effect: Effect) -> AbstractContextManager[None]:
    """Mark `effect` as the one being performed in this context."""
    return _running(effect)


def running_call(
    effect_id: str, build: Callable[[], Effect]
) -> AbstractContextManager[None]:
    """Mark the effect `effect_id` as the one being performed in this
    context; `build()` makes its model, the first time it is asked for."""
    return _running(_Deferred(effect_id, build))


@contextmanager
def _running(effect: Effect | _Deferred) -> Iterator[None]:
    token = _CURRENT_EFFECT.set(effect)
    container = _CONTAINER.set(False)
    try:
        yield
    finally:
        _CONTAINER.reset(container)
        _CURRENT_EFFECT.reset(token)


# Effects whose forward call runs other declared calls that are still recorded.
_CONTAINER: ContextVar[bool] = ContextVar("langgraph_rollback_container", default=False)


def container_effect_id() -> str | None:
    """The id of the container effect whose forward call runs here (one that
    owns the declared calls made within it, which record), or None."""
    effect = _CURRENT_EFFECT.get()
    return effect.id if effect is not None and _CONTAINER.get() else None


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
