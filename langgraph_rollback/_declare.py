"""`@reversible` and `@irreversible`: declaring tools, validated at decoration time.

A declared tool keeps its name, signature, docstring and (for LangChain tools)
its tool schema. When it runs inside a graph whose checkpointer is a rollback
saver, each call is recorded in the ledger (see `core.record.record_flow`).
Elsewhere (no graph run, or a checkpointer that is not a rollback saver) it
runs unrecorded, without a warning. A declared tool called from inside another
declared tool's call runs unrecorded too: the outer effect, and its inverse,
own the whole action.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar, cast, get_type_hints, overload

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.tools.base import InjectedToolArg

from langgraph_rollback._current import inside_effect, tool_call, tool_call_id_for
from langgraph_rollback._errors import DeclarationError
from langgraph_rollback._langgraph import current_task
from langgraph_rollback._models import Effect, Reversibility
from langgraph_rollback.core.record import record_flow
from langgraph_rollback.core.registry import (
    ToolDefinition,
    ToolRegistry,
    default_registry,
)
from langgraph_rollback.drivers import run_async, run_sync

__all__ = ["definition_of", "irreversible", "reversible"]

T = TypeVar("T")

_DEFINITION_ATTR = "__rollback_definition__"
_NOT_RECORDED = frozenset({"config", "run_manager", "callbacks", "runtime"})
"""Keyword arguments LangChain passes a tool's `_run`, never recorded."""
_INJECTED_BY_NAME = frozenset({"run_manager", "callbacks"})
"""Parameters of a plain function LangChain fills by name alone (a
`StructuredTool` passes them when the function has them); `config` and
`runtime` are injected only when annotated (`RunnableConfig`, `ToolRuntime`),
so an unannotated one is the user's own argument, and recorded."""


def definition_of(target: object) -> ToolDefinition | None:
    """The `ToolDefinition` a declared function or tool carries, else None."""
    return cast(ToolDefinition | None, getattr(target, _DEFINITION_ATTR, None))


@overload
def reversible(target: object, /) -> Callable[[T], T]: ...


@overload
def reversible(
    *,
    undo: Callable[..., Any] | BaseTool,
    undo_args: Callable[[Effect], dict[str, Any]] | None = None,
    observe: Callable[..., Any] | None = None,
    kind: Reversibility | str = Reversibility.REVERSIBLE,
    registry: ToolRegistry | None = None,
) -> Callable[[T], T]: ...


def reversible(
    target: object = None,
    /,
    *,
    undo: Callable[..., Any] | BaseTool | None = None,
    undo_args: Callable[[Effect], dict[str, Any]] | None = None,
    observe: Callable[..., Any] | None = None,
    kind: Reversibility | str = Reversibility.REVERSIBLE,
    registry: ToolRegistry | None = None,
) -> Callable[[T], T]:
    """Declare a tool whose effects can be undone.

    Works on a plain function (sync or async) and on a LangChain tool
    (`BaseTool`, e.g. the result of `@tool`); put `@reversible` *above*
    `@tool`. Returns the same kind of object with the same name, signature,
    docstring and tool schema.

    Args:
        undo: The inverse, sync or async. Called at rollback time with the
            recorded `Effect` (its `args`, `result`, `before`, `after`,
            `idempotency_key`, `undo_idempotency_key`). May also be a
            LangChain tool, invoked with `undo_args(effect)`.
        undo_args: With a LangChain-tool `undo`: builds the tool's arguments
            from the recorded `Effect`.
        observe: Optional. Reads the target's current state; called with the
            tool's arguments by keyword before the call (`before`), after it
            (`after`) and again at rollback time, to detect drift.
        kind: `"reversible"` (the inverse restores the prior state exactly) or
            `"compensable"` (a semantic counter-action, such as a refund).
        registry: Where to register the definition; defaults to
            `default_registry`.

    Raises:
        DeclarationError: `undo` or `observe` cannot be called as described,
            `kind` is not one of the two, or the target is already declared.
        DuplicateToolError: Another tool is registered under the same name.

    Example:
        ```python
        def delete_file(effect: Effect) -> None:
            Path(effect.args["path"]).unlink()

        @reversible(undo=delete_file)
        @tool
        def create_file(path: str, content: str) -> str:
            \"\"\"Create a file.\"\"\"
            Path(path).write_text(content)
            return f"created {path}"
        ```
    """
    if target is not None or undo is None:
        _refuse_without_undo(target)
    reversibility = _undoable_kind(kind)

    def decorate(target: T) -> T:
        name = _tool_name(target)
        _check_inverse(name, undo, undo_args)
        if observe is not None:
            _check_callable(observe, role="observe", tool=name, arity=None)
        return _declare(
            target,
            kind=reversibility,
            undo=undo,
            undo_args=undo_args,
            observe=observe,
            reason=None,
            registry=registry,
        )

    return decorate


def _refuse_without_undo(target: object) -> NoReturn:
    """`@reversible` used bare, or without `undo=`: say how to write it."""
    if target is None:  # @reversible(...) without undo=: no tool in hand yet
        name, what = "?", "@reversible(...) is given no undo="
    else:
        name = _tool_name(target)
        what = f"@reversible on tool {name!r} is used without parentheses"
    raise DeclarationError(
        f"{what}: a reversible tool needs its "
        "inverse. Fix: write @reversible(undo=fn), where fn(effect) undoes one "
        "call, or use @irreversible for a tool that cannot be undone.",
        tool=name,
    )


@overload
def irreversible(target: T, /) -> T: ...


@overload
def irreversible(
    *, reason: str | None = None, registry: ToolRegistry | None = None
) -> Callable[[T], T]: ...


def irreversible(
    target: Any = None,
    /,
    *,
    reason: str | None = None,
    registry: ToolRegistry | None = None,
) -> Any:
    """Declare a tool whose effects cannot be undone (a sent e-mail, a post).

    Its calls are still recorded, so the blast radius of a run is complete and
    a rollback reports them as not undone.

    Use bare (`@irreversible`) or with options
    (`@irreversible(reason="e-mail cannot be unsent")`).

    Example:
        ```python
        @irreversible(reason="messages cannot be unsent")
        @tool
        def send_email(to: str, body: str) -> str:
            \"\"\"Send an e-mail.\"\"\"
            ...
        ```
    """

    def decorate(t: T) -> T:
        return _declare(
            t,
            kind=Reversibility.IRREVERSIBLE,
            undo=None,
            undo_args=None,
            observe=None,
            reason=reason,
            registry=registry,
        )

    if target is None:
        return decorate
    return decorate(target)


# --- validation ---------------------------------------------------------------


def _undoable_kind(kind: Reversibility | str) -> Reversibility:
    try:
        reversibility = Reversibility(kind)
    except ValueError:
        reversibility = Reversibility.UNKNOWN
    if reversibility not in (Reversibility.REVERSIBLE, Reversibility.COMPENSABLE):
        raise DeclarationError(
            f"@reversible(kind={kind!r}) is not a kind of undoable tool. Fix: use "
            'kind="reversible" or kind="compensable", or @irreversible for tools '
            "that cannot be undone.",
            tool="?",
        )
    return reversibility


def _check_inverse(
    name: str,
    undo: Callable[..., Any] | BaseTool,
    undo_args: Callable[[Effect], dict[str, Any]] | None,
) -> None:
    if isinstance(undo, BaseTool):
        if undo_args is None:
            raise DeclarationError(
                f"undo= of tool {name!r} is the LangChain tool {undo.name!r}, "
                "which needs its arguments. Fix: pass undo_args=, a function "
                "from the recorded Effect to the tool's arguments, e.g. "
                "`undo_args=lambda effect: {'id': effect.result}`.",
                tool=name,
            )
        _check_callable(undo_args, role="undo_args", tool=name, arity=1)
        return
    _check_callable(undo, role="undo", tool=name, arity=1)
    if undo_args is not None:
        raise DeclarationError(
            f"undo_args= of tool {name!r} is only used when undo= is a "
            "LangChain tool. Fix: remove undo_args, or pass the tool.",
            tool=name,
        )


def _tool_name(target: object) -> str:
    if isinstance(target, BaseTool):
        return target.name
    if callable(target):
        return str(getattr(target, "__name__", type(target).__name__))
    raise DeclarationError(
        f"Cannot declare {target!r}: it is a {type(target).__name__}, neither a "
        "function nor a LangChain tool. Fix: decorate a `def`/`async def` "
        "function or a `BaseTool` (e.g. the result of `@tool`).",
        tool=repr(target),
    )


def _check_callable(
    fn: object, *, role: str, tool: str, arity: int | None
) -> inspect.Signature | None:
    if not callable(fn):
        raise DeclarationError(
            f"{role}= of tool {tool!r} is a {type(fn).__name__}, not a callable. "
            f"Fix: pass a function, e.g. `{role}=my_{role}_function`.",
            tool=tool,
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # builtins without a signature: trust the caller
    if arity is not None:
        try:
            signature.bind(*([None] * arity))
        except TypeError:
            raise DeclarationError(
                f"{role}= of tool {tool!r} has signature {signature}, but it is "
                f"called with exactly {arity} positional argument (the recorded "
                f"Effect). Fix: define it as `def {role}(effect: Effect) -> ...`.",
                tool=tool,
            ) from None
    return signature


def _check_observe_accepts(
    observe: Callable[..., Any], params: tuple[str, ...], tool: str
) -> None:
    try:
        signature = inspect.signature(observe)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(**dict.fromkeys(params))
    except TypeError:
        raise DeclarationError(
            f"observe= of tool {tool!r} has signature {signature}, but it is "
            f"called with the tool's arguments by keyword ({', '.join(params)}). "
            f"Fix: accept those names, e.g. `def observe({', '.join(params)})`, "
            "or take `**kwargs`.",
            tool=tool,
        ) from None


def _declare(
    target: T,
    *,
    kind: Reversibility,
    undo: Callable[..., Any] | BaseTool | None,
    undo_args: Callable[[Effect], dict[str, Any]] | None,
    observe: Callable[..., Any] | None,
    reason: str | None,
    registry: ToolRegistry | None,
) -> T:
    name = _tool_name(target)
    declared = definition_of(target)
    if declared is not None:
        raise DeclarationError(
            f"Tool {name!r} is already declared "
            f"({declared.kind.value}); a tool takes one "
            "declaration. Fix: remove one of the @reversible/@irreversible "
            "decorators.",
            tool=name,
        )
    registry = registry if registry is not None else default_registry
    if isinstance(target, BaseTool):
        origin = _origin(getattr(target, "func", None) or type(target))
        is_async = getattr(target, "func", None) is None and (
            getattr(target, "coroutine", None) is not None
        )
        params = tuple(target.args)
    elif callable(target):
        origin = _origin(target)
        is_async = inspect.iscoroutinefunction(target)
        params = _recorded_params(target)
    else:  # pragma: no cover - _tool_name raised already
        raise AssertionError
    if observe is not None:
        _check_observe_accepts(observe, params, name)
        if not is_async and inspect.iscoroutinefunction(observe):
            raise DeclarationError(
                f"observe= of the sync tool {name!r} is async; a sync tool's "
                "observation runs where the tool runs, without an event loop. "
                "Fix: make observe a plain `def`.",
                tool=name,
            )
    definition = ToolDefinition(
        name=name,
        kind=kind,
        origin=origin,
        undo=undo,
        undo_args=undo_args,
        observe=observe,
        is_async=is_async,
        reason=reason,
        params=params,
        source=ToolDefinition.source_of(
            getattr(target, "func", None) or getattr(target, "coroutine", None)
            if isinstance(target, BaseTool)
            else target
        ),
    )
    if isinstance(target, BaseTool):
        wrapped: Any = _wrap_tool(target, definition)
    else:
        wrapped = _wrap_function(cast(Callable[..., Any], target), definition)
    registry.register(definition)
    return cast(T, wrapped)


def _origin(obj: object) -> str:
    module = getattr(obj, "__module__", None) or "?"
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{qualname}"


def _recorded_params(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The parameters whose values the ledger records (injected ones left out)."""
    signature = inspect.signature(fn)
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception:
        hints = {}
    names = []
    for name, param in signature.parameters.items():
        if param.kind is param.VAR_KEYWORD:
            continue
        if param.kind is not param.VAR_POSITIONAL and _is_injected(
            name, hints.get(name, param.annotation), _INJECTED_BY_NAME
        ):
            continue
        names.append(name)
    return tuple(names)


def _is_injected(
    name: str, annotation: Any, by_name: frozenset[str] = _NOT_RECORDED
) -> bool:
    if annotation is RunnableConfig:
        return True
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, InjectedToolArg) or (
            isinstance(meta, type) and issubclass(meta, InjectedToolArg)
        ):
            return True
    origin = getattr(annotation, "__origin__", annotation)
    if isinstance(origin, type) and issubclass(origin, InjectedToolArg):
        return True  # ToolRuntime and friends
    return name in by_name and annotation is inspect.Parameter.empty


# --- wrapping -------------------------------------------------------------------


def _wrap_function(fn: Callable[..., Any], definition: ToolDefinition) -> Any:
    signature = inspect.signature(fn)
    recorded = set(definition.params)

    def bound_args(
        args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], frozenset[str]]:
        """The recorded arguments, and those left at their defaults."""
        bound = signature.bind(*args, **kwargs)
        passed = set(bound.arguments)
        bound.apply_defaults()
        values: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            param = signature.parameters[name]
            if param.kind is param.VAR_KEYWORD:
                values.update(value)
            elif param.kind is param.VAR_POSITIONAL:
                if value:
                    values[name] = list(value)
            elif name in recorded:
                values[name] = value
        return values, frozenset(name for name in values if name not in passed)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = current_task(definition)
            if ctx is None or inside_effect():
                return await fn(*args, **kwargs)
            values, defaulted = bound_args(args, kwargs)
            flow = record_flow(
                ctx,
                definition,
                values,
                tool_call_id=None,
                serde=ctx.store.ledger_codec,
                defaulted=defaulted,
            )
            return await run_async(flow, ctx.store, perform=lambda: fn(*args, **kwargs))

        setattr(async_wrapper, _DEFINITION_ATTR, definition)
        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = current_task(definition)
        if ctx is None or inside_effect():
            return fn(*args, **kwargs)
        values, defaulted = bound_args(args, kwargs)
        flow = record_flow(
            ctx,
            definition,
            values,
            tool_call_id=None,
            serde=ctx.store.ledger_codec,
            defaulted=defaulted,
        )
        return run_sync(flow, ctx.store, perform=lambda: fn(*args, **kwargs))

    setattr(wrapper, _DEFINITION_ATTR, definition)
    return wrapper


def _wrap_tool(tool: BaseTool, definition: ToolDefinition) -> BaseTool:
    """A copy of `tool` whose class records `_run`/`_arun` and keeps tool call ids.

    The copy's class is a subclass of the tool's own class (so `isinstance`
    holds and the schema, name and description are unchanged) that overrides
    `run`/`arun` to remember the model's `tool_call_id`, and `_run`/`_arun` to
    record the call. The overrides keep the parent's signatures
    (`functools.wraps`), which LangChain inspects to pass `config` and
    `run_manager`.
    """
    cls = type(tool)
    parent_run, parent_arun = cls.run, cls.arun
    parent__run, parent__arun = cls._run, cls._arun

    def tool_args(
        self: BaseTool, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        injected = set(self._injected_args_keys) | _NOT_RECORDED
        values = dict(zip(self.args, args, strict=False))
        values.update({k: v for k, v in kwargs.items() if k not in injected})
        return values

    @functools.wraps(parent_run)
    def run(self: BaseTool, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        with tool_call(self, kwargs.get("tool_call_id")):
            return parent_run(self, tool_input, *args, **kwargs)

    @functools.wraps(parent_arun)
    async def arun(self: BaseTool, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        with tool_call(self, kwargs.get("tool_call_id")):
            return await parent_arun(self, tool_input, *args, **kwargs)

    @functools.wraps(parent__run)
    def _run(self: BaseTool, *args: Any, **kwargs: Any) -> Any:
        ctx = current_task(definition)
        if ctx is None or inside_effect():
            return parent__run(self, *args, **kwargs)
        flow = record_flow(
            ctx,
            definition,
            tool_args(self, args, kwargs),
            tool_call_id=tool_call_id_for(self),
            serde=ctx.store.ledger_codec,
        )
        return run_sync(
            flow, ctx.store, perform=lambda: parent__run(self, *args, **kwargs)
        )

    @functools.wraps(parent__arun)
    async def _arun(self: BaseTool, *args: Any, **kwargs: Any) -> Any:
        ctx = current_task(definition)
        if ctx is None or inside_effect():
            return await parent__arun(self, *args, **kwargs)
        flow = record_flow(
            ctx,
            definition,
            tool_args(self, args, kwargs),
            tool_call_id=tool_call_id_for(self),
            serde=ctx.store.ledger_codec,
        )
        return await run_async(
            flow, ctx.store, perform=lambda: parent__arun(self, *args, **kwargs)
        )

    namespace = {
        "__slots__": (),
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "run": run,
        "arun": arun,
        "_run": _run,
        "_arun": _arun,
        _DEFINITION_ATTR: definition,
    }
    declared_cls = type(cls.__name__, (cls,), namespace)
    declared = copy.copy(tool)
    object.__setattr__(declared, "__class__", declared_cls)
    return declared
