"""The tool registry (`core.registry`), lock holders (`core.locks`) and the
operations' own data (`core.ops`)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest

from langgraph_rollback._errors import DuplicateToolError, UnregisteredToolError
from langgraph_rollback.core.locks import LockHolder, describe_holder
from langgraph_rollback.core.ops import CheckpointLink, Update
from langgraph_rollback.core.registry import ToolDefinition
from tests.unit.build import registry, tool


def test_registry_finds_a_tool_by_name() -> None:
    write = tool()
    tools = registry(write)
    assert tools.get("write") is tools.require("write") is write
    assert "write" in tools and "delete" not in tools
    assert (len(tools), list(tools)) == (1, [write])
    assert repr(tools) == "ToolRegistry(['write'])"


def test_redeclaring_the_same_tool_replaces_it() -> None:
    tools = registry(tool())
    newer = tool(reason="reloaded")
    tools.register(newer)
    assert tools.require("write") is newer


def test_another_tool_under_a_taken_name_is_refused() -> None:
    tools = registry(tool())
    with pytest.raises(DuplicateToolError):
        tools.register(tool(origin="elsewhere.write"))


def make_write(target: Any) -> Callable[[], Any]:
    """A factory: each call makes another closure over `target`."""

    def write() -> Any:
        return target

    return write


def declared(fn: Any) -> ToolDefinition:
    return tool(origin="tests.make_write.<locals>.write", source=source_of(fn))


def source_of(fn: Any) -> Any:
    return ToolDefinition.source_of(fn)


def test_another_closure_of_one_factory_under_one_name_is_refused() -> None:
    first, second = make_write("a.txt"), make_write("b.txt")
    tools = registry(declared(first))
    with pytest.raises(DuplicateToolError) as caught:
        tools.register(declared(second))
    assert str(caught.value).startswith(
        "Tool name 'write' is already registered for "
        "tests.make_write.<locals>.write, made by the same factory with other "
        "captured values (a closure); refusing to register a second one under "
        "the same name, because a rollback finds inverses by tool name"
    )
    kept = tools.require("write").source
    assert kept is not None and kept() is first


@pytest.mark.parametrize(
    "again",
    [
        lambda first: first,  # the same function declared again
        lambda first: make_write(["a.txt"]),  # the factory run again, equal values
        lambda first: make_write(first()),  # ... over the very same object
    ],
    ids=["same_function", "equal_values", "same_object"],
)
def test_redeclaring_a_closure_over_the_same_values_replaces_it(
    again: Callable[[Any], Any],
) -> None:
    first = make_write(["a.txt"])
    tools = registry(declared(first))
    second = again(first)  # held, as a declared tool holds its function
    newer = declared(second)
    tools.register(newer)
    assert tools.require("write") is newer


def test_closure_of_a_factory_whose_first_tool_is_gone_replaces_it() -> None:
    tools = registry(declared(make_write("a.txt")))  # nothing else holds it
    gc.collect()
    second = make_write("b.txt")
    newer = declared(second)
    tools.register(newer)
    assert tools.require("write") is newer


def test_other_code_under_the_same_origin_replaces_it() -> None:
    # A reloaded module: the function is defined anew, from other code.
    def write() -> None:
        return None

    first = make_write("a.txt")
    tools = registry(declared(first))
    newer = declared(write)
    tools.register(newer)
    assert tools.require("write") is newer


def test_definition_of_something_without_a_weak_reference_has_no_source() -> None:
    assert ToolDefinition.source_of(7) is None
    tools = registry(tool(source=None))
    second = make_write("a.txt")
    newer = tool(source=source_of(second))
    tools.register(newer)
    assert tools.require("write") is newer


def make_late(value: Any) -> Callable[[], Any]:
    """A closure over a variable that is never bound (an empty cell)."""

    def write() -> Any:
        return value, unbound

    if value is None:  # never: `unbound` stays an empty cell
        unbound = None
    return write


def test_empty_cells_count_as_the_same_value() -> None:
    first, second, other = make_late("a"), make_late("a"), make_late("b")
    tools = registry(declared(first))
    newer = declared(second)
    tools.register(newer)
    assert tools.require("write") is newer
    with pytest.raises(DuplicateToolError):
        tools.register(declared(other))


class Incomparable:
    def __eq__(self, other: object) -> bool:
        raise TypeError("cannot compare")

    __hash__ = object.__hash__


def test_captured_values_that_cannot_be_compared_are_other_values() -> None:
    first, second = make_write(Incomparable()), make_write(Incomparable())
    tools = registry(declared(first))
    with pytest.raises(DuplicateToolError):
        tools.register(declared(second))


def test_missing_tool_names_the_effect_that_needs_it() -> None:
    with pytest.raises(UnregisteredToolError) as caught:
        registry().require("write", effect_id="e1")
    assert (caught.value.tool, caught.value.effect_id) == ("write", "e1")
    assert registry().get("write") is None


def test_unregister_forgets_a_tool_and_ignores_an_unknown_one() -> None:
    tools = registry(tool())
    tools.unregister("write")
    tools.unregister("write")
    assert len(tools) == 0


def test_lock_holder_is_named_host_pid_and_token_prefix() -> None:
    holder = LockHolder(token="0123456789abcdef", host="box|ns:4026531836", pid=42)
    assert str(holder) == "box:42:01234567"
    assert describe_holder("box", 1, "tok") == "box:1:tok"


def test_update_refuses_columns_it_may_not_change() -> None:
    with pytest.raises(ValueError, match=r"not updatable ledger columns: \['tool'\]"):
        Update("e1", {"status": "applied", "tool": "other"})


@pytest.mark.parametrize("copies", ['["c1", "c0"]', ["c1", "c0"], ("c1", "c0")])
def test_checkpoint_link_reads_copies_as_text_or_a_list(copies: object) -> None:
    link = CheckpointLink.from_row("k2", "c0", copies)
    assert link == CheckpointLink("k2", "c0", ("c1", "c0"))
    assert link.stands_for("k2") and link.stands_for("c1")
    assert not link.stands_for("c3")


def test_checkpoint_link_without_copies_stands_for_itself() -> None:
    link = CheckpointLink.from_row("c2", None, None)
    assert link.copies == ()
    assert link.stands_for("c2")
