"""`LedgerCodec.dumps_record` (a rollback's report) attacked: random values
compared byte for byte with `dumps_typed`, refusals compared, values
ormsgpack writes by itself, exceptions raised while a value is prepared."""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
import random
from typing import Any

import ormsgpack
import pytest
from langchain_core.messages import HumanMessage

from langgraph_rollback import EffectStatus
from langgraph_rollback.core.ledger_codec import LedgerCodec, RefusedPayloadError
from tests.unit.test_ledger_codec import LISTED, Box, Colour, Pair, Point, Xor


class Text(str):
    pass


class Number(int):
    pass


class Mapping_(dict[str, Any]):
    pass


class Items(list[Any]):
    pass


class Letter(str, enum.Enum):  # noqa: UP042 (a str mixin, not StrEnum)
    A = "a"


class Level(enum.IntEnum):
    LOW = 1


ATOMS: list[Any] = [
    *LISTED,
    Text("x"),
    Number(3),
    Mapping_(a=1),
    Items([1]),
    Letter.A,
    Level.LOW,
    2**64,
    -(2**70),
    2**63,
    -(2**63),
    math.nan,
    math.inf,
    "\udc80 lone",
    bytearray(b"q"),
    memoryview(b"m"),
    Pair(1, 2),
    Colour.RED,
    Point(1),
    Box(label="b"),
    HumanMessage("h"),
    EffectStatus.APPLIED,
    -0.0,
    False,
    b"",
    "",
]
KEYS: list[Any] = [
    *("k", "", "\ud800", 1, -1, 2**64, 1.5, math.nan, True, None, b"b"),
    *(Text("s"), Letter.A, Level.LOW, (1,)),
]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    if depth > 6 or rng.random() < 0.35:
        return rng.choice(ATOMS)
    n = rng.randint(0, 4)
    kind = rng.choice(["dict", "dict", "list", "list", "tuple", "set", "deque"])
    if kind == "dict":
        return {
            rng.choice(KEYS) if rng.random() < 0.3 else f"k{i}": random_value(
                rng, depth + 1
            )
            for i in range(n)
        }
    items = [random_value(rng, depth + 1) for _ in range(n)]
    if kind == "list":
        return items
    if kind == "tuple":
        return tuple(items)
    if kind == "deque":
        return collections.deque(items)
    return {x for x in items if isinstance(x, (int, str, bytes, float))}


def holds_a_buffer(value: Any) -> bool:
    if isinstance(value, (bytearray, memoryview)):
        return True
    if isinstance(value, dict):
        return any(holds_a_buffer(v) for v in value.values())
    if isinstance(value, (list, tuple, set, collections.deque)):
        return any(holds_a_buffer(v) for v in value)
    return False


def outcome(call: Any, value: Any) -> tuple[Any, type[BaseException] | None]:
    try:
        return call(value), None
    except Exception as exc:
        return None, type(exc)


@pytest.mark.parametrize("cipher", [None, Xor()], ids=["plain", "encrypted"])
def test_random_records_are_written_as_dumps_typed_writes_them(cipher: Any) -> None:
    codec = LedgerCodec([Pair, Colour], cipher=cipher)
    rng = random.Random(15)
    seen = collections.Counter[str]()
    for _ in range(1500):
        value = {"r": random_value(rng)}
        typed, typed_error = outcome(codec.dumps_typed, value)
        record, record_error = outcome(codec.dumps_record, value)
        if typed is not None:
            assert record == typed, value
            seen["same"] += 1
        elif record is None:
            assert record_error is typed_error, value
            seen["refused"] += 1
        else:
            assert holds_a_buffer(value), value
            seen["buffer"] += 1
    assert min(seen.values()) > 20, seen


def test_a_record_over_the_limit_is_refused_as_dumps_typed_refuses_it() -> None:
    codec = LedgerCodec(max_bytes=100)
    record = {"text": "x" * 200}
    with pytest.raises(RefusedPayloadError, match="limit of 100"):
        codec.dumps_typed(record)
    with pytest.raises(RefusedPayloadError, match="limit of 100"):
        codec.dumps_record(record)
    assert codec.dumps_record({"t": "x" * 50}) == codec.dumps_typed({"t": "x" * 50})


@dataclasses.dataclass
class Half:
    x: int


def test_an_error_raised_while_a_value_is_prepared_escapes_unchanged() -> None:
    broken = Half(1)
    del broken.x  # reading the field raises AttributeError
    codec = LedgerCodec([Half])
    with pytest.raises(AttributeError, match="no attribute 'x'"):
        codec.dumps_typed({"v": [broken]})
    with pytest.raises(AttributeError, match="no attribute 'x'"):
        codec.dumps_record({"v": [broken]})


def test_a_record_writes_a_raw_extension_and_reads_it_through_the_allow_list() -> None:
    listed = ormsgpack.Ext(0, ormsgpack.packb(["builtins", "tuple", [1]]))
    unlisted = ormsgpack.Ext(0, ormsgpack.packb(["os", "system", ["true"]]))
    codec = LedgerCodec()
    with pytest.raises(RefusedPayloadError, match="not on the ledger's allow-list"):
        codec.dumps_typed({"v": listed})
    assert codec.loads_typed(codec.dumps_record({"v": listed})) == {"v": (1,)}
    with pytest.raises(RefusedPayloadError, match="os"):
        codec.loads_typed(codec.dumps_record({"v": unlisted}))


@dataclasses.dataclass
class Interrupted:
    """Reading its field is where a Ctrl-C lands, once."""

    x: int

    def __getattribute__(self, name: str) -> Any:
        if name == "x" and not Interrupted.hit:
            Interrupted.hit = True
            raise KeyboardInterrupt
        return object.__getattribute__(self, name)

    hit = False


def test_a_keyboard_interrupt_while_a_record_is_written_is_not_swallowed() -> None:
    Interrupted.hit = False
    codec = LedgerCodec([Interrupted])
    with pytest.raises(KeyboardInterrupt):
        codec.dumps_record({"v": [Interrupted(1)]})
