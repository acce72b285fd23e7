"""The tool registry (`core.registry`), lock holders (`core.locks`) and the
operations' own data (`core.ops`)."""

from __future__ import annotations

import pytest

from langgraph_rollback._errors import DuplicateToolError, UnregisteredToolError
from langgraph_rollback.core.locks import LockHolder, describe_holder
from langgraph_rollback.core.ops import CheckpointLink, Update
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
