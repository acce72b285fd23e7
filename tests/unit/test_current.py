"""The effect of a running forward call is built only when the call asks
for it (`current_effect()`), once, and is the same model each time."""

from __future__ import annotations

from collections.abc import Callable

from langgraph_rollback._current import (
    container_call,
    container_effect_id,
    current_effect,
    inside_effect,
    running_call,
)
from langgraph_rollback._models import Effect
from langgraph_rollback.core.codec import LedgerCodec
from langgraph_rollback.core.ledger import effect_from_row
from tests.unit.build import row


def _builder(effect_id: str) -> tuple[list[Effect], Callable[[], Effect]]:
    built: list[Effect] = []

    def build() -> Effect:
        effect = effect_from_row(row(effect_id=effect_id), LedgerCodec())
        built.append(effect)
        return effect

    return built, build


def test_a_call_that_never_asks_builds_no_effect() -> None:
    built, build = _builder("lazy-1")
    with running_call("lazy-1", build):
        assert inside_effect()
        assert container_effect_id() is None
        with container_call():
            assert container_effect_id() == "lazy-1"
            assert not inside_effect()
    assert built == []
    assert current_effect() is None


def test_the_effect_is_built_once_and_is_the_same_each_time() -> None:
    built, build = _builder("lazy-2")
    with running_call("lazy-2", build):
        first = current_effect()
        second = current_effect()
    assert first is not None and first is second
    assert first.id == "lazy-2"
    assert built == [first]
    assert current_effect() is None


def test_a_nested_call_has_its_own_effect_and_the_outer_one_comes_back() -> None:
    outer_built, outer = _builder("lazy-outer")
    inner_built, inner = _builder("lazy-inner")
    with running_call("lazy-outer", outer):
        with container_call(), running_call("lazy-inner", inner):
            found = current_effect()
            assert found is not None and found.id == "lazy-inner"
        back = current_effect()
        assert back is not None and back.id == "lazy-outer"
    assert [e.id for e in outer_built] == ["lazy-outer"]
    assert [e.id for e in inner_built] == ["lazy-inner"]
