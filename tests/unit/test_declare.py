"""Declaring tools: what is kept, what is registered, what is refused."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import pytest
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool, tool

from langgraph_rollback import (
    DeclarationError,
    DuplicateToolError,
    Effect,
    Reversibility,
    ToolRegistry,
    UnregisteredToolError,
    default_registry,
    irreversible,
    reversible,
)
from langgraph_rollback._declare import definition_of


def undo(effect: Effect) -> None:
    return None


def test_plain_function_keeps_name_signature_and_docstring(
    registry: ToolRegistry,
) -> None:
    def create(path: str, content: str = "", *, mode: int = 0o644) -> str:
        """Create a file."""
        return path

    declared = reversible(undo=undo, registry=registry)(create)
    assert declared.__name__ == "create"
    assert declared.__doc__ == "Create a file."
    assert inspect.signature(declared) == inspect.signature(create)
    assert declared("p") == "p"
    definition = definition_of(declared)
    assert definition is not None
    assert definition.kind is Reversibility.REVERSIBLE
    assert definition.params == ("path", "content", "mode")
    assert registry.require("create") is definition


async def test_async_function_stays_async(registry: ToolRegistry) -> None:
    @reversible(undo=undo, kind="compensable", registry=registry)
    async def refund(order: str) -> str:
        """Refund an order."""
        return order

    assert inspect.iscoroutinefunction(refund)
    assert await refund("o") == "o"
    definition = registry.require("refund")
    assert definition.is_async
    assert definition.kind is Reversibility.COMPENSABLE


def test_langchain_tool_keeps_schema(registry: ToolRegistry) -> None:
    @tool
    def create_ticket(title: str, priority: int = 3) -> str:
        """Create a ticket in the tracker."""
        return f"T-1 {title}"

    declared = reversible(undo=undo, registry=registry)(create_ticket)
    assert isinstance(declared, StructuredTool)
    assert isinstance(declared, BaseTool)
    assert declared is not create_ticket
    assert declared.name == "create_ticket"
    assert declared.description == create_ticket.description
    assert declared.args == create_ticket.args
    assert (
        declared.tool_call_schema.model_json_schema()
        == create_ticket.tool_call_schema.model_json_schema()
    )
    assert declared.invoke({"title": "bug"}) == "T-1 bug"
    assert registry.require("create_ticket").params == ("title", "priority")
    # The original tool is left as it was.
    assert definition_of(create_ticket) is None


def test_injected_arguments_are_not_recorded(registry: ToolRegistry) -> None:
    @reversible(undo=undo, registry=registry)
    def with_config(path: str, config: RunnableConfig) -> str:
        return path

    @reversible(undo=undo, registry=registry)
    @tool
    def with_call_id(
        path: str, tool_call_id: Annotated[str, InjectedToolCallId]
    ) -> str:
        """Uses its call id."""
        return tool_call_id

    assert registry.require("with_config").params == ("path",)
    assert registry.require("with_call_id").params == ("path",)


def test_irreversible_bare_and_with_reason(registry: ToolRegistry) -> None:
    @irreversible(registry=registry, reason="cannot unsend")
    @tool
    def send(to: str) -> str:
        """Send a message."""
        return to

    assert registry.require("send").kind is Reversibility.IRREVERSIBLE
    assert registry.require("send").reason == "cannot unsend"
    assert registry.require("send").undo is None

    def post(text: str) -> str:
        return text

    declared = irreversible(post)
    try:
        assert default_registry.require("post").kind is Reversibility.IRREVERSIBLE
        assert declared("x") == "x"
    finally:
        default_registry.unregister("post")


@pytest.mark.parametrize(
    ("bad_undo", "needle"),
    [
        ("not callable", "not a callable"),
        (lambda: None, "exactly 1 positional argument"),
        (lambda effect, extra: None, "exactly 1 positional argument"),
    ],
)
def test_bad_undo_is_refused(
    registry: ToolRegistry, bad_undo: Any, needle: str
) -> None:
    def act(x: int) -> int:
        return x

    with pytest.raises(DeclarationError) as info:
        reversible(undo=bad_undo, registry=registry)(act)
    assert needle in str(info.value)
    assert "act" in str(info.value) and "Fix:" in str(info.value)
    assert info.value.tool == "act"
    assert "act" not in registry


def test_undo_with_defaults_or_varargs_is_accepted(registry: ToolRegistry) -> None:
    def undo_defaults(effect: Effect, dry_run: bool = False) -> None:
        return None

    def undo_varargs(*args: Any) -> None:
        return None

    reversible(undo=undo_defaults, registry=registry)(lambda x: x)
    reversible(undo=undo_varargs, registry=ToolRegistry())(lambda x: x)


def test_decorating_twice_is_refused(registry: ToolRegistry) -> None:
    @reversible(undo=undo, registry=registry)
    def act(x: int) -> int:
        return x

    with pytest.raises(DeclarationError, match="already declared"):
        reversible(undo=undo, registry=registry)(act)
    with pytest.raises(DeclarationError, match="already declared"):
        irreversible(act)

    @reversible(undo=undo, registry=registry)
    @tool
    def t(x: int) -> int:
        """T."""
        return x

    with pytest.raises(DeclarationError, match="already declared"):
        irreversible(registry=registry)(t)


def test_two_tools_under_one_name_are_refused(registry: ToolRegistry) -> None:
    def make() -> Any:
        def act(x: int) -> int:
            return x

        return act

    first = make()
    reversible(undo=undo, registry=registry)(first)

    @tool("act")
    def other(x: int) -> int:
        """Another tool named act."""
        return x

    with pytest.raises(DuplicateToolError) as info:
        reversible(undo=undo, registry=registry)(other)
    assert info.value.tool == "act"
    assert "registry=" in str(info.value)
    # The same function declared again (a re-run notebook cell) replaces itself.
    reversible(undo=undo, registry=registry)(make())
    # A separate registry takes the clash.
    reversible(undo=undo, registry=ToolRegistry())(other)


def test_bad_observe_is_refused(registry: ToolRegistry) -> None:
    def act(path: str, content: str) -> str:
        return path

    with pytest.raises(DeclarationError, match="by keyword"):
        reversible(undo=undo, observe=lambda target: None, registry=registry)(act)
    with pytest.raises(DeclarationError, match="not a callable"):
        reversible(undo=undo, observe=42, registry=registry)(act)  # type: ignore[arg-type]

    async def aobserve(path: str, content: str) -> None:
        return None

    with pytest.raises(DeclarationError, match="sync tool"):
        reversible(undo=undo, observe=aobserve, registry=registry)(act)
    # Accepting **kwargs is fine.
    reversible(undo=undo, observe=lambda path, **_: None, registry=registry)(act)


def test_bad_kind_and_bad_target(registry: ToolRegistry) -> None:
    with pytest.raises(DeclarationError, match="kind="):
        reversible(undo=undo, kind="irreversible", registry=registry)
    with pytest.raises(DeclarationError, match="kind="):
        reversible(undo=undo, kind="sometimes", registry=registry)
    with pytest.raises(
        DeclarationError, match="neither a function nor a LangChain tool"
    ):
        reversible(undo=undo, registry=registry)(42)


def test_registry_lookup_errors_say_how_to_fix(registry: ToolRegistry) -> None:
    with pytest.raises(UnregisteredToolError) as info:
        registry.require("vanished", effect_id="e-1")
    assert info.value.tool == "vanished"
    assert "import" in str(info.value) and "e-1" in str(info.value)
    assert registry.get("vanished") is None
    assert len(registry) == 0
