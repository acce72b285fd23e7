"""The rollback policies (`core.policies`), checked when they are given."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback.core.policies import Policies, new_rollback_id, skip_ids


def test_default_policies_skip_irreversible_abort_on_conflict_and_stop() -> None:
    policies = Policies()
    assert (
        policies.on_irreversible,
        policies.on_conflict,
        policies.on_failure,
        policies.inverse_timeout,
        policies.skip,
    ) == ("skip", "abort", "stop", None, frozenset())


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("on_irreversible", "ask", "'skip', 'abort'"),
        ("on_conflict", "ignore", "'abort', 'skip', 'force'"),
        ("on_failure", "retry", "'stop', 'continue'"),
    ],
)
def test_a_policy_that_is_not_one_names_the_ones_there_are(
    name: str, value: str, allowed: str
) -> None:
    options: dict[str, Any] = {name: value}
    with pytest.raises(InvalidConfigError) as caught:
        Policies(**options)
    assert str(caught.value) == (
        f"{name}={value!r} is not a policy. Fix: use one of {allowed}."
    )


@pytest.mark.parametrize(
    "timeout", [0, -1.0, True, "30", float("inf"), float("nan"), [1]]
)
def test_inverse_timeout_must_be_a_positive_number_of_seconds(timeout: Any) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        Policies(inverse_timeout=timeout)
    assert str(caught.value).startswith(
        f"inverse_timeout={timeout!r} is not a timeout. Fix: pass a positive "
        "number of seconds (e.g. inverse_timeout=30), or None to wait forever."
    )


@pytest.mark.parametrize("timeout", [1, 0.25, 30.0])
def test_inverse_timeout_takes_ints_and_floats(timeout: float) -> None:
    assert Policies(inverse_timeout=timeout).inverse_timeout == timeout


def test_skip_given_as_a_list_is_kept_as_a_frozenset() -> None:
    policies = Policies(skip=["a", "b", "a"])  # type: ignore[arg-type]
    assert policies.skip == frozenset({"a", "b"})


def test_skip_given_as_one_string_is_refused_with_the_list_to_pass() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        Policies(skip="e1")  # type: ignore[arg-type]
    assert str(caught.value) == (
        "skip='e1' is one string, not a collection of effect ids. Fix: pass a "
        "list, e.g. skip=['e1']."
    )


def test_skip_given_as_bytes_is_one_string_too() -> None:
    with pytest.raises(InvalidConfigError, match="is one string"):
        skip_ids(b"e1")  # type: ignore[arg-type]


def test_skip_that_is_not_a_collection_is_refused() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        skip_ids(7)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "skip=7 is not a collection of effect ids. Fix: pass a list of ids from "
        "saver.list_effects(config)."
    )
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(("ids", "bad"), [(["a", 3], "3"), (["a", ""], "''")])
def test_skip_holding_something_that_is_not_an_id_is_refused(
    ids: list[Any], bad: str
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        skip_ids(ids)
    assert str(caught.value) == (
        f"skip= holds {bad}, not an effect id. Fix: pass the ids (strings) from "
        "saver.list_effects(config)."
    )


def test_skip_ids_of_nothing_is_empty() -> None:
    assert skip_ids(None) == frozenset()


def test_skip_ids_reads_any_iterable_once() -> None:
    assert skip_ids(iter(["a", "b"])) == frozenset({"a", "b"})


def test_with_skip_keeps_the_policies_and_adds_ids() -> None:
    policies = Policies(
        on_irreversible="abort",
        on_conflict="skip",
        on_failure="continue",
        inverse_timeout=1.0,
        skip=frozenset({"a"}),
    )
    assert policies.with_skip(["b"]) == Policies(
        on_irreversible="abort",
        on_conflict="skip",
        on_failure="continue",
        inverse_timeout=1.0,
        skip=frozenset({"a", "b"}),
    )


def test_approved_given_as_a_list_is_kept_as_a_frozenset() -> None:
    policies = Policies(skip=["a"], approved=["a"])  # type: ignore[arg-type]
    assert (policies.skip, policies.approved) == ({"a"}, {"a"})


def test_with_skip_by_the_approver_says_who_chose_it() -> None:
    policies = Policies().with_skip(["a"]).with_skip(["b"], approver=True)
    assert (policies.skip, policies.approved) == ({"a", "b"}, {"b"})
    assert policies.skip_reason("a") == "skipped (skip=)"
    assert policies.skip_reason("b") == "skipped by approver"


def test_with_skip_checks_the_ids_it_adds() -> None:
    with pytest.raises(InvalidConfigError, match="skip= holds 3"):
        Policies().with_skip(["b", 3])  # type: ignore[list-item]


def test_rollback_ids_are_fresh_uuids() -> None:
    first, second = new_rollback_id(), new_rollback_id()
    assert first != second
    assert str(uuid.UUID(first)) == first
