"""The ledger codec's inline dict scalars and kept allow-list answers,
against the codec before them (`_Reference`, its earlier `_prepare` kept
verbatim, `allows` asked anew each time): the same bytes and the same
refusals for any payload, at every depth around `MAX_DEPTH`."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langgraph_rollback.core.ledger_codec import (
    _SCALARS,
    MAX_DEPTH,
    SINGLE,
    LedgerCodec,
    RefusedPayloadError,
    _fields,
    _not_listed,
)


class _Reference(LedgerCodec):
    def allows(self, cls: Any) -> bool:
        return isinstance(cls, type) and self._allows(cls)

    def _prepare(self, value: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise RefusedPayloadError(f"the value nests deeper than {MAX_DEPTH}")
        kind = type(value)
        if kind in _SCALARS:
            return value
        if kind is list:
            return [self._prepare(v, depth + 1) for v in value]
        if kind is dict:
            return {
                self._prepare_key(k): self._prepare(v, depth + 1)
                for k, v in value.items()
            }
        if kind in (tuple, set, frozenset, deque):
            return self._ext(depth, SINGLE, kind, list(value))
        if not self.allows(kind):
            raise RefusedPayloadError(_not_listed(kind))
        return self._ext(depth, *_fields(value))

    def _prepare_key(self, key: Any) -> Any:
        if type(key) in _SCALARS:
            return key
        raise RefusedPayloadError(
            f"a dict key is a {type(key).__name__}: ledger keys are str, int, "
            "float, bool, bytes or None"
        )


class Flag(enum.IntFlag):
    A = 1


class Yes(int):
    pass


@dataclasses.dataclass
class Listed:
    value: Any


def _outcome(codec: LedgerCodec, payload: Any) -> tuple[str, Any]:
    try:
        return "ok", codec.dumps_typed(payload)
    except Exception as exc:  # refused, or too large an int for msgpack
        return type(exc).__name__, str(exc)


def _codecs() -> tuple[LedgerCodec, LedgerCodec]:
    allowed = [Listed, (Yes.__module__, Yes.__name__)]
    return LedgerCodec(allowed), _Reference(allowed)


def _nested(depth: int, wrap: str, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        if wrap == "dict":
            value = {"k": value, "s": 1}
        elif wrap == "list":
            value = [value, 1]
        elif wrap == "tuple":
            value = (value, True)
        else:
            value = Listed({"v": value, "n": None})
    return value


@pytest.mark.parametrize("wrap", ["dict", "list", "tuple", "listed"])
@pytest.mark.parametrize("leaf", [1, True, None, b"x", "s", {"a": 1}, {1: (2,)}])
@pytest.mark.parametrize("depth", range(MAX_DEPTH - 3, MAX_DEPTH + 3))
def test_a_payload_nested_near_the_limit_is_written_or_refused_as_before(
    wrap: str, leaf: Any, depth: int
) -> None:
    new, old = _codecs()
    assert _outcome(new, _nested(depth, wrap, leaf)) == _outcome(
        old, _nested(depth, wrap, leaf)
    )


_LEAVES = st.one_of(
    st.integers(),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.floats(),
    st.just(Flag.A),
    st.builds(Yes, st.integers(0, 3)),
    st.just(uuid.UUID(int=7)),
    st.just(object()),
)
_KEYS = st.one_of(
    st.text(max_size=3), st.integers(-2, 2), st.booleans(), st.none(), st.just(Flag.A)
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_KEYS, inner, max_size=3),
        st.builds(Listed, inner),
    )


@settings(max_examples=300, deadline=None)
@given(st.recursive(_LEAVES, _containers, max_leaves=20))
def test_any_payload_is_written_or_refused_as_before(payload: Any) -> None:
    new, old = _codecs()
    assert _outcome(new, payload) == _outcome(old, payload)
    assert _outcome(new, payload) == _outcome(old, payload)  # answers kept


def test_a_codec_whose_allow_list_is_replaced_answers_by_the_new_list() -> None:
    codec = LedgerCodec()
    with pytest.raises(RefusedPayloadError, match="allow-list"):
        codec.dumps_typed({"v": Listed(1)})
    codec.allowed = frozenset({(Listed.__module__, Listed.__name__)})
    assert codec.loads_typed(codec.dumps_typed({"v": Listed(1)})) == {"v": Listed(1)}
