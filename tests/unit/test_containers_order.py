"""The plan's container ordering (`_containers_first`) against a plain recursive
statement of the rule, over many random nestings.

The rule: newest first (the order of `steps`), each container immediately
followed by the effects recorded inside it, nested containers depth first, in
the order they appear in `steps`; an effect whose container is not on the plan
keeps its own place.
"""

from __future__ import annotations

import gc
import random
import sys
import weakref
from collections.abc import Callable

from langgraph_rollback.core.decide import PlannedStep
from langgraph_rollback.core.plan import _containers_first
from tests.unit.build import effect, step

# One Effect built the ordinary way; the rest are copies with other ids.
_BASE = effect("base")


def _step(effect_id: str, inside: str | None) -> PlannedStep:
    return step(_BASE.model_copy(update={"id": effect_id, "inside": inside}))


def _recursive(steps: list[PlannedStep]) -> list[PlannedStep]:
    """The statement of the rule as a self-calling function."""
    on_plan = {s.effect.id for s in steps}
    held: dict[str, list[PlannedStep]] = {}
    for s in steps:
        inside = s.effect.inside
        if inside is not None and inside in on_plan:
            held.setdefault(inside, []).append(s)
    ordered: list[PlannedStep] = []

    def emit(s: PlannedStep) -> None:
        ordered.append(s)
        for nested in held.get(s.effect.id, ()):
            emit(nested)

    for s in steps:
        inside = s.effect.inside
        if inside is None or inside not in on_plan:
            emit(s)
    return ordered


def _random_steps(rng: random.Random) -> list[PlannedStep]:
    """A random forest of effects, newest first; some `inside` name a
    container not on the plan, a few make cycles or repeat an id."""
    n = rng.randint(0, 40)
    ids = [f"e{i}" for i in range(n)]
    parents: list[str | None] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.3 or i == 0:
            parents.append(None)
        elif roll < 0.4:
            parents.append(f"gone{rng.randint(0, 3)}")
        elif roll < 0.45:
            parents.append(rng.choice(ids))  # any: may make a cycle
        else:
            parents.append(ids[rng.randrange(i)])  # an older container
    # Newest first: a container's intent came before the effects inside it,
    # but shuffle some too (the function must not depend on it).
    order = list(range(n))[::-1]
    if rng.random() < 0.3:
        rng.shuffle(order)
    steps = [_step(ids[i], parents[i]) for i in order]
    if steps and rng.random() < 0.1:
        steps.insert(rng.randrange(len(steps)), rng.choice(steps))  # a repeat
    return steps


def _ids(steps: list[PlannedStep]) -> list[tuple[str, int]]:
    return [(s.effect.id, id(s)) for s in steps]


def test_the_order_is_the_recursive_rule_s_over_random_nestings() -> None:
    rng = random.Random(20261202)
    for _ in range(1500):
        steps = _random_steps(rng)
        assert _ids(_containers_first(steps)) == _ids(_recursive(steps)), [
            (s.effect.id, s.effect.inside) for s in steps
        ]


def test_an_acyclic_plan_loses_and_repeats_nothing() -> None:
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(1, 30)
        parents = [None] + [
            rng.choice([None, f"e{rng.randrange(i)}", "elsewhere"]) for i in range(1, n)
        ]
        steps = [_step(f"e{i}", parents[i]) for i in reversed(range(n))]
        ordered = _containers_first(steps)
        assert sorted(_ids(ordered)) == sorted(_ids(steps))
        at = {s.effect.id: k for k, s in enumerate(ordered)}
        for s in steps:
            if s.effect.inside in at:
                assert at[s.effect.inside] < at[s.effect.id]


def test_nesting_two_thousand_deep_is_ordered_without_recursion() -> None:
    depth = 2000
    assert depth > sys.getrecursionlimit() // 2
    # e0 is the outermost container; e{i} was recorded inside e{i-1}.
    steps = [_step(f"e{i}", f"e{i - 1}" if i else None) for i in range(depth)]
    steps.reverse()  # newest first
    ordered = _containers_first(steps)
    assert [s.effect.id for s in ordered] == [f"e{i}" for i in range(depth)]


def test_a_wide_and_deep_nesting_keeps_each_container_s_order() -> None:
    # A chain 2000 deep with a sibling at every level, newest first.
    steps: list[PlannedStep] = []
    for i in range(2000):
        steps.append(_step(f"c{i}", f"c{i - 1}" if i else None))
        steps.append(_step(f"s{i}", f"c{i - 1}" if i else None))
    steps.reverse()
    ordered = [s.effect.id for s in _containers_first(steps)]
    # Newest first among the roots: s0 then c0; inside c{i}: s{i+1}, then c{i+1}.
    expected = ["s0", "c0"]
    for i in range(1, 2000):
        expected += [f"s{i}", f"c{i}"]
    assert ordered == expected


def _ordered_and_dropped(
    order: Callable[[list[PlannedStep]], list[PlannedStep]],
) -> weakref.ref[PlannedStep]:
    steps = [_step(f"e{i}", f"e{i - 1}" if i else None) for i in range(5)][::-1]
    watch = weakref.ref(steps[0])
    order(steps)
    return watch


def test_ordering_leaves_no_reference_cycle_behind() -> None:
    gc.collect()
    gc.disable()
    try:
        # The self-calling statement keeps the plan's steps alive ...
        assert _ordered_and_dropped(_recursive)() is not None
        # ... the function in use does not.
        assert _ordered_and_dropped(_containers_first)() is None
    finally:
        gc.enable()
        gc.collect()
