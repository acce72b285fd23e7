"""`canonical` against the form it had before its fast paths: the encoding,
and so every digest and stored call key, is the same for any value.

`_reference` is the earlier implementation, kept verbatim."""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

from langgraph_rollback.core.identity import args_digest, canonical

_SERDE = JsonPlusSerializer()


def _reference(value: Any) -> Any:
    if isinstance(value, BaseModel):
        fields = value.model_dump(mode="python", round_trip=True)
        return ["__model__", type(value).__qualname__, _reference(fields)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return ["__dataclass__", type(value).__qualname__, _reference(fields)]
    if isinstance(value, Mapping):
        pairs = [[_reference(k), _reference(v)] for k, v in value.items()]
        return ["__map__", sorted(pairs, key=lambda pair: _encoded(pair[0]))]
    if isinstance(value, (set, frozenset)):
        return ["__set__", sorted((_reference(v) for v in value), key=_encoded)]
    if isinstance(value, (list, tuple)):
        return [_reference(v) for v in value]
    return value


def _encoded(value: Any) -> bytes:
    return _SERDE.dumps_typed(value)[1]


def _outcome(form: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", _encoded({"args": form(value)})
    except Exception as exc:  # both must refuse alike
        return "refused", type(exc)


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "b"


class Level(enum.IntEnum):
    ONE = 1
    TWO = 2


class Name(str):
    pass


class Count(int):
    pass


class Attrs(dict[Any, Any]):
    pass


Pair = collections.namedtuple("Pair", "p q")


@dataclasses.dataclass
class Spot:
    x: Any
    y: Any = None


class Shape(BaseModel):
    name: str
    sides: list[int]
    tags: set[str] = set()


_TEXT = st.text(max_size=80) | st.sampled_from(["", "a", "é", "k" * 64, "k" * 65])
_KEYS = st.one_of(
    _TEXT,
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.binary(max_size=8),
    st.sampled_from([0.0, -0.0, 1.0, 1.5, math.inf]),
    st.sampled_from(list(Colour)),
    st.sampled_from(list(Level)),
    _TEXT.map(Name),
    st.integers(-3, 3).map(Count),
)
_SCALARS = st.one_of(
    _KEYS,
    st.floats(allow_nan=True),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(_KEYS, inner, max_size=5),
        st.dictionaries(_KEYS, inner, max_size=5).map(Attrs),
        st.dictionaries(_TEXT, inner, max_size=5).map(collections.OrderedDict),
        st.builds(Pair, inner, inner),
        st.builds(Spot, inner, inner),
        st.frozensets(_KEYS, max_size=5),
        st.sets(_KEYS, max_size=5),
        st.builds(
            Shape,
            name=st.text(max_size=5),
            sides=st.lists(st.integers(0, 9), max_size=3),
            tags=st.sets(st.text(max_size=3), max_size=3),
        ),
    )


_VALUES = st.recursive(_SCALARS, _containers, max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_TEXT, _VALUES, max_size=6))
def test_the_canonical_form_encodes_as_the_earlier_one(args: dict[str, Any]) -> None:
    assert _outcome(canonical, args) == _outcome(_reference, args)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_any_mapping_s_form_encodes_as_the_earlier_one(value: dict[Any, Any]) -> None:
    assert _outcome(canonical, value) == _outcome(_reference, value)
    assert _outcome(canonical, Attrs(value)) == _outcome(_reference, Attrs(value))


def test_keys_equal_to_each_other_keep_the_earlier_order() -> None:
    """`True` and `1`, `Name("a")` and `"a"`, a `StrEnum` and its value are
    distinct keys of one dict only in some combinations; where they coexist,
    each keeps the place it had."""
    nan = float("nan")
    cases: list[Any] = [
        {True: "bool", 2: "int", "1": "str", None: 0, b"1": "bytes"},
        {Name("a"): 1, "b": 2, Colour.RED: 3, "red2": 4},
        {nan: 1, float("nan"): 2, -0.0: 3},
        {Count(1): "count", Level.TWO: "level", 0: "zero"},
        {"k" * 64: 1, "k" * 65: 2, "k" * 63: 3, Name("k" * 64 + "x"): 4},
        {"x": [{1, "1", b"1", None}], "y": {frozenset({1, "1"}): 1}},
    ]
    for value in cases:
        assert _outcome(canonical, value) == _outcome(_reference, value), value
        assert args_digest("w", {"v": value}) == args_digest("w", {"v": value})


def test_a_cached_short_key_encodes_as_it_did_uncached() -> None:
    """The same key text, first seen in one position of a map, later in
    another: the cache never changes the order."""
    first = {"zz": 1, "a": 2}
    second = {"a": 1, "zz": 2, Name("zz"): 3}
    for value in (first, second, first):
        assert _outcome(canonical, value) == _outcome(_reference, value)
