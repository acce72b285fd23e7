"""Tool definitions and the registry a rollback finds inverses in.

A rollback may run in another process, after a restart, or from a CLI, so it
finds each effect's inverse by the tool name recorded in the ledger. Declaring
a tool with `@reversible` or `@irreversible` registers its definition: in the
process-wide `default_registry` unless `registry=` names another.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from langgraph_rollback._errors import DuplicateToolError, UnregisteredToolError
from langgraph_rollback._models import Reversibility

__all__ = ["ToolDefinition", "ToolRegistry", "default_registry"]


@dataclass(frozen=True)
class ToolDefinition:
    """What the library knows about one declared tool.

    Attributes:
        name: The tool name effects are recorded under.
        kind: Its reversibility.
        origin: `module.qualname` of the declared function or tool class,
            used to tell a re-declaration of the same tool (a reloaded module,
            a re-run notebook cell) from a different tool under the same name.
        undo: The inverse; receives the recorded `Effect` (or, for a
            LangChain tool, `undo_args(effect)`). None for irreversible tools.
        undo_args: Builds a LangChain-tool inverse's arguments from the effect.
        observe: Reads the target's current state; receives the tool's
            arguments by keyword. None when not declared.
        is_async: Whether the forward call is a coroutine function.
        reason: Why an irreversible tool cannot be undone (for reports).
    """

    name: str
    kind: Reversibility
    origin: str
    undo: Any = None
    undo_args: Callable[..., dict[str, Any]] | None = None
    observe: Callable[..., Any] | None = None
    is_async: bool = False
    reason: str | None = None
    params: tuple[str, ...] = field(default=())
    """The names of the tool's recorded parameters, in order."""
    container: bool = False
    """Declared calls made inside this one's call are still recorded (a
    workspace step that wraps a whole node, for instance)."""
    restores: Callable[[Any], Any] | None = None
    """The part of an observation the inverse puts back, when not all of it
    (a git step restores the files, not nested repositories' own HEAD);
    after the inverse, that part must read as before."""
    source: Callable[[], Any] | None = field(default=None, compare=False, repr=False)
    """A weak reference to the declared function, to tell two closures of
    one factory (the same code, other captured values) apart."""

    @staticmethod
    def source_of(fn: Any) -> Callable[[], Any] | None:
        """A weak reference to `fn` for `source` (None when it cannot have one)."""
        try:
            return weakref.ref(fn)
        except TypeError:
            return None


class ToolRegistry:
    """A name -> `ToolDefinition` map, validated as tools are declared.

    Use one per graph (or per test) for isolation; the decorators fill the
    process-wide `default_registry` otherwise.

    Example:
        ```python
        registry = ToolRegistry()

        @reversible(undo=lambda effect: ..., registry=registry)
        def create_ticket(title: str) -> str: ...

        assert "create_ticket" in registry
        ```
    """

    def __init__(self) -> None:
        self._defs: dict[str, ToolDefinition] = {}
        self._lock = threading.Lock()

    def register(self, definition: ToolDefinition) -> None:
        """Add a definition.

        Re-registering the same tool (same `origin`) replaces the old
        definition, so re-running a notebook cell or reloading a module works.

        Raises:
            DuplicateToolError: Another tool is registered under that name.
        """
        with self._lock:
            existing = self._defs.get(definition.name)
            if existing is not None and existing.origin != definition.origin:
                raise DuplicateToolError(
                    tool=definition.name,
                    existing=existing.origin,
                    new=definition.origin,
                )
            if existing is not None and _other_closure(existing, definition):
                raise DuplicateToolError(
                    tool=definition.name,
                    existing=existing.origin,
                    new=definition.origin,
                    same_factory=True,
                )
            self._defs[definition.name] = definition

    def get(self, name: str) -> ToolDefinition | None:
        """The definition registered under `name`, or None."""
        return self._defs.get(name)

    def require(self, name: str, *, effect_id: str | None = None) -> ToolDefinition:
        """The definition registered under `name`.

        Raises:
            UnregisteredToolError: No tool of that name is registered.
        """
        definition = self._defs.get(name)
        if definition is None:
            raise UnregisteredToolError(tool=name, effect_id=effect_id)
        return definition

    def unregister(self, name: str) -> None:
        """Remove the definition registered under `name`, if any."""
        with self._lock:
            self._defs.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._defs

    def __iter__(self) -> Iterator[ToolDefinition]:
        return iter(list(self._defs.values()))

    def __len__(self) -> int:
        return len(self._defs)

    def __repr__(self) -> str:
        return f"ToolRegistry({sorted(self._defs)!r})"


def _other_closure(existing: ToolDefinition, new: ToolDefinition) -> bool:
    """Whether `new` is another closure of the factory that made `existing`,
    which is still in use: the same code over other captured values. A
    re-declaration (a reloaded module, a re-run cell, the same factory called
    again with the same values, or after the first tool is gone) is not."""
    old_fn = existing.source() if existing.source is not None else None
    new_fn = new.source() if new.source is not None else None
    if old_fn is None or new_fn is None or old_fn is new_fn:
        return False
    if getattr(old_fn, "__code__", None) is not getattr(new_fn, "__code__", None):
        return False
    old_cells = getattr(old_fn, "__closure__", None) or ()
    new_cells = getattr(new_fn, "__closure__", None) or ()
    return any(
        not _same_value(a, b) for a, b in zip(old_cells, new_cells, strict=False)
    )


def _same_value(a: Any, b: Any) -> bool:
    try:
        x, y = a.cell_contents, b.cell_contents
    except ValueError:  # an empty cell
        return True
    if x is y:
        return True
    try:
        return bool(x == y)
    except Exception:
        return False


default_registry = ToolRegistry()
"""The registry `@reversible` and `@irreversible` fill unless given `registry=`."""
