"""What `skip=` names (`core.skips.resolve_skip`): effects on the plan by id or
tool call id, effects the rollback leaves anyway, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback.core.ops import Select
from langgraph_rollback.core.plan import Decision, PlannedStep
from langgraph_rollback.core.policies import Policies
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.skips import resolve_skip
from tests.unit.build import effect, plan, row, step
from tests.unit.script import Script


def resolving(*steps: PlannedStep, orphans: Any = None, **policies: Any) -> Script:
    return Script(resolve_skip(plan(*steps, orphans=orphans), Policies(**policies)))


def test_no_skip_is_no_work() -> None:
    policies = Policies()
    assert Script(resolve_skip(plan(step(effect())), policies)).returns() is policies


def test_an_effect_id_on_the_plan_is_kept_with_who_chose_it() -> None:
    flow = resolving(
        step(effect("a")),
        step(effect("b")),
        skip=frozenset({"a", "b"}),
        approved=frozenset({"b"}),
        on_conflict="skip",
    )
    resolved = flow.returns()
    assert (resolved.skip, resolved.approved) == ({"a", "b"}, {"b"})
    assert resolved.on_conflict == "skip"


def test_a_tool_call_id_names_every_effect_of_that_call_on_the_plan() -> None:
    flow = resolving(
        step(effect("a", tool_call_id="call-1")),
        step(effect("b", tool_call_id="call-1")),
        step(effect("c", tool_call_id="call-2")),
        skip=frozenset({"call-1"}),
        approved=frozenset({"call-1"}),
    )
    resolved = flow.returns()
    assert (resolved.skip, resolved.approved) == ({"a", "b"}, {"a", "b"})


@pytest.mark.parametrize("value", ["o", "call-o"])
def test_an_orphan_is_left_anyway_without_a_lookup(value: str) -> None:
    orphan = effect("o", tool_call_id="call-o")
    flow = resolving(step(effect("a")), orphans=[orphan], skip=frozenset({value}))
    assert flow.returns().skip == frozenset()


def test_an_effect_of_the_thread_not_on_the_plan_is_left_anyway() -> None:
    flow = resolving(step(effect("a")), skip=frozenset({"old"}))
    flow.reply(Select, [row("old")], query=EffectQuery(thread_id="t", effect_id="old"))
    assert flow.returns().skip == frozenset()


def test_a_tool_call_of_the_thread_not_on_the_plan_is_left_anyway() -> None:
    flow = resolving(step(effect("a")), skip=frozenset({"call-old"}))
    flow.reply(Select, [])
    query = EffectQuery(thread_id="t", tool_call_id="call-old", limit=1)
    flow.reply(Select, [row("old", tool_call_id="call-old")], query=query)
    assert flow.returns().skip == frozenset()


def test_an_id_that_names_nothing_on_the_thread_is_refused() -> None:
    flow = resolving(step(effect("a")), skip=frozenset({"typo"}))
    flow.reply(Select, [])
    flow.reply(Select, [])
    error = flow.raises(InvalidConfigError)
    assert str(error).startswith(
        "skip= names 'typo', which is no effect id or tool call id on thread "
        "'t'. Nothing was undone. Fix:"
    )


BOX = effect("box", seq=1, tool="edit", args={})
NOTE = effect("note", seq=2, inside="box", args={"path": "NOTES.md"})


def test_an_effect_inside_a_container_that_is_undone_is_refused() -> None:
    flow = resolving(step(BOX), step(NOTE), skip=frozenset({"note"}))
    error = flow.raises(InvalidConfigError)
    assert str(error).startswith(
        "skip= names write(path='NOTES.md') (#2, note), recorded inside edit() "
        "(#1, box), whose inverse restores everything its call did"
    )
    assert "Fix: skip the container too (add 'box')" in str(error)


def test_an_effect_kept_with_its_container_is_kept() -> None:
    flow = resolving(step(BOX), step(NOTE), skip=frozenset({"note", "box"}))
    assert flow.returns().skip == {"note", "box"}


@pytest.mark.parametrize(
    ("decision", "on_conflict"),
    [
        (Decision.SKIP, "abort"),
        (Decision.ALREADY_COMPENSATED, "abort"),
        (Decision.CONFLICT, "skip"),
    ],
)
def test_an_effect_inside_a_container_left_as_it_is_is_kept(
    decision: Decision, on_conflict: str
) -> None:
    flow = resolving(
        step(BOX, decision),
        step(NOTE),
        skip=frozenset({"note"}),
        on_conflict=on_conflict,
    )
    assert flow.returns().skip == {"note"}


def test_an_effect_inside_a_container_forced_through_a_conflict_is_refused() -> None:
    flow = resolving(
        step(BOX, Decision.CONFLICT),
        step(NOTE),
        skip=frozenset({"note"}),
        on_conflict="force",
    )
    flow.raises(InvalidConfigError)


def test_containers_are_checked_all_the_way_out() -> None:
    outer = effect("outer", seq=1, tool="edit", args={})
    middle = effect("middle", seq=2, tool="edit", inside="outer", args={})
    inner = effect("inner", seq=3, inside="middle")
    flow = resolving(
        step(outer), step(middle), step(inner), skip=frozenset({"inner", "middle"})
    )
    assert "recorded inside edit() (#1, outer)" in str(flow.raises(InvalidConfigError))


def test_a_container_off_the_plan_does_not_refuse() -> None:
    flow = resolving(step(NOTE), skip=frozenset({"note"}))
    assert flow.returns().skip == {"note"}
