"""The effect of a running forward call is built only when the call asks
for it (`current_effect()`), once, and is the same model each time."""

from __future__ import annotations

import contextvars
import threading
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


def test_threads_sharing_the_call_s_context_get_one_model() -> None:
    """Two threads of one call ask at once: one builds, the other waits for
    it (were both to build, the second would enter `build` while the first
    is still inside, and the first would see it)."""
    second_inside = threading.Event()
    asking: dict[str, threading.Event] = {n: threading.Event() for n in "ab"}
    calls: list[str] = []

    def build() -> Effect:
        me = threading.current_thread().name
        calls.append(me)
        if len(calls) > 1:
            second_inside.set()
        else:
            # Once the other thread is asking too, give it time to come in.
            assert asking["b" if me == "a" else "a"].wait(10)
            second_inside.wait(0.5)
        return effect_from_row(row(effect_id="lazy-3"), LedgerCodec())

    found: dict[str, Effect | None] = {}
    with running_call("lazy-3", build):
        context = contextvars.copy_context()

        def ask(name: str) -> None:
            asking[name].set()
            found[name] = context.copy().run(current_effect)

        threads = [threading.Thread(target=ask, args=(n,), name=n) for n in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert len(calls) == 1 and not second_inside.is_set()
    assert found["a"] is not None and found["a"] is found["b"]
