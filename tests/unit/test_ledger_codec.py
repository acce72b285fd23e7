"""The ledger's codec (`core.ledger_codec`): what it writes, what it reads back
exactly, and what it refuses, without importing or calling anything a
payload names."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import math
import pathlib
import re
import uuid
from collections import deque
from ipaddress import IPv4Address, IPv6Network
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import ormsgpack
import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command, Interrupt, Send
from pydantic import BaseModel, field_validator

from langgraph_rollback._models import EffectStatus
from langgraph_rollback.core import ledger_codec
from langgraph_rollback.core.codec import same
from langgraph_rollback.core.ledger_codec import (
    MAX_DEPTH,
    LedgerCodec,
    RefusedPayloadError,
)

CODEC = LedgerCodec()


@dataclasses.dataclass
class Point:
    x: int
    y: int = dataclasses.field(default=0)


class Colour(enum.Enum):
    RED = "red"


class Pair(NamedTuple):
    a: int
    b: int


class Box(BaseModel):
    label: str

    @field_validator("label")
    @classmethod
    def short(cls, value: str) -> str:
        if len(value) > 3:
            raise ValueError("too long")
        return value


class Xor:
    """A cipher for tests: XOR with one byte."""

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        return "xor", bytes(b ^ 0x5A for b in plaintext)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        assert ciphername == "xor"
        return bytes(b ^ 0x5A for b in ciphertext)


def again(value: Any, codec: LedgerCodec = CODEC) -> Any:
    return codec.loads_typed(codec.dumps_typed({"v": value}))["v"]


LISTED = [
    1,
    "s",
    None,
    b"b",
    1.5,
    True,
    [1, (2, 3)],
    {"a": {1, 2}, 3: "int key"},
    frozenset([1]),
    deque([1, 2]),
    (),
    uuid.UUID(int=7),
    decimal.Decimal("1.10"),
    re.compile("a+", re.I),
    pathlib.Path("/a/b"),
    dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    dt.date(2020, 1, 2),
    dt.time(1, 2, 3, tzinfo=dt.UTC),
    dt.timedelta(3, 4, 5),
    dt.timezone(dt.timedelta(hours=2), "X"),
    ZoneInfo("Europe/Paris"),
    IPv4Address("1.2.3.4"),
    IPv6Network("::/64"),
    AIMessage("hi", tool_calls=[{"name": "t", "args": {"a": 1}, "id": "1"}]),
    ToolMessage("r", tool_call_id="1"),
    Document(page_content="x", metadata={"a": (1,)}),
    Send("n", {"a": 1}),
    Send("n", 1, timeout=dt.timedelta(seconds=1)),
    Command(update={"x": 1}, goto="n"),
    Interrupt(value=1, id="x"),
    EffectStatus.APPLIED,
]


@pytest.mark.parametrize("value", LISTED, ids=lambda v: type(v).__name__)
def test_listed_values_read_back_as_the_same_type_and_value(value: Any) -> None:
    back = again(value)
    assert back == value and type(back) is type(value)


def test_nan_reads_back_as_nan() -> None:
    assert math.isnan(again(math.nan))


def test_rows_written_by_jsonplus_still_read() -> None:
    old = JsonPlusSerializer().dumps_typed({"v": [uuid.UUID(int=1), {1, 2}]})
    assert CODEC.loads_typed(old) == {"v": [uuid.UUID(int=1), {1, 2}]}


@pytest.mark.parametrize(
    "value",
    [
        Point(1),
        Colour.RED,
        Pair(1, 2),
        Box(label="b"),
        object(),
        len,
        "s".__class__("x"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_types_not_listed_are_refused_with_the_fix(value: Any) -> None:
    if type(value) is str:
        value = type("Text", (str,), {})(value)
    with pytest.raises(RefusedPayloadError) as caught:
        CODEC.dumps_typed({"v": value})
    assert "allowed_msgpack_modules=[(" in str(caught.value)


def test_types_the_user_allows_read_back_exactly() -> None:
    codec = LedgerCodec([Point, Colour, Pair, Box])
    for value in (Point(1, 2), Colour.RED, Pair(1, 2), Box(label="b")):
        back = again(value, codec)
        assert back == value and type(back) is type(value)


def test_a_model_that_no_longer_validates_is_constructed_as_stored() -> None:
    codec = LedgerCodec([Box])
    stored = codec.dumps_typed({"v": Box.model_construct(label="long")})
    assert codec.loads_typed(stored)["v"].label == "long"


def test_for_serde_takes_only_the_modules_the_user_listed() -> None:
    assert LedgerCodec.for_serde(JsonPlusSerializer()).allowed == frozenset()
    assert LedgerCodec.for_serde(None).allowed == frozenset()
    listed = JsonPlusSerializer(allowed_msgpack_modules=[Point, ("m", "N", "x")])
    assert LedgerCodec.for_serde(listed).allowed == {(__name__, "Point")}
    encrypted = LedgerCodec.for_serde(EncryptedSerializer(Xor(), listed))
    assert isinstance(encrypted.cipher, Xor) and encrypted.allowed == {
        (__name__, "Point")
    }


def test_allows_only_types() -> None:
    assert not CODEC.allows(Point(1))
    assert CODEC.allows(re.Pattern) and CODEC.allows(AIMessage)
    assert not CODEC.allows(RunnableLambda)


class Stamp(dt.datetime):
    """A datetime subclass, as a user's own time type."""


def test_a_listed_datetime_subclass_is_written_in_upstream_s_datetime_layout() -> None:
    stamp = Stamp(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    _, data = LedgerCodec([Stamp]).dumps_typed(stamp)
    code, fields = ormsgpack.unpackb(
        data, ext_hook=lambda code, inner: (code, ormsgpack.unpackb(inner))
    )
    assert code == 3  # EXT_METHOD_SINGLE_ARG
    assert fields == [__name__, "Stamp", stamp.isoformat(), "fromisoformat"]


def test_dict_keys_must_be_plain() -> None:
    with pytest.raises(RefusedPayloadError, match="a dict key is a tuple"):
        CODEC.dumps_typed({(1, 2): "x"})


def test_values_nest_at_most_max_depth() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(RefusedPayloadError, match="nests deeper"):
        CODEC.dumps_typed(deep)


def test_payloads_over_the_limit_are_refused_both_ways() -> None:
    small = LedgerCodec(max_bytes=100)
    with pytest.raises(RefusedPayloadError, match="more than the ledger's limit"):
        small.dumps_typed("x" * 200)
    with pytest.raises(RefusedPayloadError, match="more than the ledger's limit"):
        small.loads_typed(("msgpack", b"\0" * 5000))


def test_a_cipher_encrypts_and_is_required() -> None:
    codec = LedgerCodec(cipher=Xor())
    type_, data = codec.dumps_typed({"pin": "4821"})
    assert type_ == "msgpack+xor" and b"4821" not in data
    assert codec.loads_typed((type_, data)) == {"pin": "4821"}
    with pytest.raises(RefusedPayloadError, match="it is not encrypted"):
        codec.loads_typed(CODEC.dumps_typed({"pin": "4821"}))
    with pytest.raises(RefusedPayloadError, match="it is encrypted"):
        CODEC.loads_typed((type_, data))


@pytest.mark.parametrize("type_", ["json", "pickle", "null", "bytes"])
def test_other_formats_are_refused(type_: str) -> None:
    with pytest.raises(RefusedPayloadError, match="the ledger writes only"):
        CODEC.loads_typed((type_, b"{}"))


def ext(code: int, *fields: Any) -> bytes:
    return ormsgpack.packb({"v": ormsgpack.Ext(code, ormsgpack.packb(fields))})


@pytest.mark.parametrize(
    "data",
    [
        ext(0, "os", "system", "true"),
        ext(1, "subprocess", "check_call", [["true"]]),
        ext(2, "builtins", "eval", {"source": "1"}),
        ext(3, "os", "system", "true", "fromisoformat"),
        ext(3, "datetime", "datetime", "2025-01-01"),
        ext(4, "os", "system", {}),
        ext(5, "langchain_core.messages", "__builtins__", {}),
        ext(5, "langchain_core.runnables", "RunnableLambda", {}),
        ext(5, "langgraph_rollback.core.ledger_codec", "_unpack", {}),
        ext(0, 1, "x", 2),
        ext(0, "langchain_core.messages", 3, 2),
    ],
)
def test_extensions_not_listed_are_refused_naming_them(data: bytes) -> None:
    with pytest.raises(RefusedPayloadError, match="not on the ledger's allow-list"):
        CODEC.loads_typed(("msgpack", data))


@pytest.mark.parametrize(
    "data",
    [
        ext(6, "x", "y", "z"),
        ext(7, "x", "y", "z"),
        ext(0, "os"),
        ormsgpack.packb(ormsgpack.Ext(0, ormsgpack.packb("os.system"))),
    ],
)
def test_malformed_extensions_are_refused(data: bytes) -> None:
    with pytest.raises(RefusedPayloadError, match="malformed"):
        CODEC.loads_typed(("msgpack", data))


def test_a_value_the_constructor_rejects_is_refused() -> None:
    with pytest.raises(ValueError, match="badly formed"):
        CODEC.loads_typed(("msgpack", ext(0, "uuid", "UUID", "nope")))


def test_positional_and_keyword_extensions_call_listed_constructors() -> None:
    data = ext(1, "pathlib", "PurePosixPath", ["a"])
    with pytest.raises(RefusedPayloadError, match="not on the ledger's allow-list"):
        CODEC.loads_typed(("msgpack", data))
    codec = LedgerCodec([("pathlib", "PurePosixPath")])
    assert codec.loads_typed(("msgpack", data)) == {"v": pathlib.PurePosixPath("a")}


def test_extensions_nest_at_most_max_depth() -> None:
    inner = ormsgpack.packb(1)
    for _ in range(MAX_DEPTH + 1):
        inner = ormsgpack.packb(["builtins", "tuple", ormsgpack.Ext(0, inner)])
    with pytest.raises(RefusedPayloadError, match="nest deeper"):
        CODEC.loads_typed(("msgpack", ormsgpack.packb(ormsgpack.Ext(0, inner))))


def test_truncated_payloads_are_refused() -> None:
    _, data = CODEC.dumps_typed({"args": {"name": "x"}})
    with pytest.raises(RefusedPayloadError, match="not a msgpack payload"):
        CODEC.loads_typed(("msgpack", data[:-2]))


def test_same_matches_nan_and_tuples_with_lists() -> None:
    nan = float("nan")
    assert same({"a": [nan]}, {"a": (nan,)}) and same(1, 1)
    assert not same([1], [2]) and not same({"a": 1}, {"a": 2})


class Plain:
    """Listed by the user, but neither a dataclass, a model nor an enum."""


def test_a_listed_type_the_codec_cannot_take_apart_is_refused() -> None:
    with pytest.raises(RefusedPayloadError, match="not on the ledger's allow-list"):
        LedgerCodec([Plain]).dumps_typed({"v": Plain()})


@pytest.mark.parametrize(
    "data",
    [
        ext(5, "langgraph_rollback.__main__", "main", {}),
        ext(5, "langgraph_rollback.not_loaded_here", "Thing", {}),
    ],
)
def test_reading_never_imports_a_module_that_could_run_code(data: bytes) -> None:
    with pytest.raises(RefusedPayloadError, match="nothing was imported"):
        CODEC.loads_typed(("msgpack", data))


def test_import_safe_library_modules_are_imported_on_read() -> None:
    import sys

    name = "langchain_core.documents.compressor"  # a model module, rarely loaded
    sys.modules.pop(name, None)
    data = ext(5, name, "NoSuchThing", {})
    with pytest.raises(RefusedPayloadError, match="not on the ledger's allow-list"):
        CODEC.loads_typed(("msgpack", data))  # imported, then found wanting
    assert name in sys.modules


class _HasDocument(BaseModel):
    document: Document | None = None


class _Deep(BaseModel):
    nested: list[list[list[list[list[list[list[list[list[list[int]]]]]]]]]] = []


@pytest.mark.parametrize(
    ("cls", "plain"),
    [
        (Document, True),
        (_HasDocument, True),
        (RunnableLambda, False),
        (_Deep, False),  # too deep to tell: refused
    ],
)
def test_a_model_allowed_by_rule_declares_no_runnable_fields(
    cls: type, plain: bool
) -> None:
    assert ledger_codec._plain_model(cls) is plain


def test_a_model_whose_field_is_a_prompt_is_refused_on_read() -> None:
    prompt = {"template": "{a}", "input_variables": ["a"]}
    selector = (
        "langchain_core.example_selectors.length_based",
        "LengthBasedExampleSelector",
    )
    fields = {"examples": [{"a": "x"}], "example_prompt": prompt}
    data = ext(5, *selector, fields, "model_validate_json")
    with pytest.raises(RefusedPayloadError, match="not on the ledger's allow-list"):
        CODEC.loads_typed(("msgpack", data))


def test_allows_answers_are_kept_for_a_bounded_number_of_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ledger_codec, "_KNOWN_TYPES", 1)
    codec = LedgerCodec()
    assert codec.allows(uuid.UUID) and codec.allows(uuid.UUID)
    assert not codec.allows(pathlib.PurePath)
    assert codec.allows(dt.datetime)
    assert list(codec._known) == [uuid.UUID]


# --- records (`dumps_record`: a rollback's report) -----------------------------------


def test_a_record_is_written_as_dumps_typed_writes_it() -> None:
    record = {
        "listed": LISTED[1:],  # the int-keyed dict below goes on its own
        "nested": {"point": [Pair(1, 2), Colour.RED, {"deep": [{"x": (1,)}]}]},
        "text": "\ud800 surrogate",
    }
    listed = LedgerCodec([Pair, Colour])
    assert listed.dumps_record(record) == listed.dumps_typed(record)
    encrypted = LedgerCodec([Pair, Colour], cipher=Xor())
    assert encrypted.dumps_record(record) == encrypted.dumps_typed(record)


def test_a_record_with_keys_other_than_text_takes_dumps_typed_s_path() -> None:
    record = {"a": {1: "int key", None: 2, b"k": 3}}
    assert CODEC.dumps_record(record) == CODEC.dumps_typed(record)
    for key in (dt.datetime(2020, 1, 1), Colour.RED, (1, 2)):
        with pytest.raises(RefusedPayloadError, match="a dict key is a"):
            CODEC.dumps_record({"a": {key: 1}})


@pytest.mark.parametrize(
    "value", [RunnableLambda(lambda x: x), object(), Box.model_construct(label="x")]
)
def test_a_record_refuses_what_dumps_typed_refuses(value: Any) -> None:
    with pytest.raises(RefusedPayloadError):
        CODEC.dumps_typed({"v": value})
    with pytest.raises(RefusedPayloadError):
        CODEC.dumps_record({"list": [1, {"v": value}]})


def test_a_record_counts_no_depth_and_keeps_buffers_as_bytes() -> None:
    deep: list[Any] = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    record = {"deep": deep, "buffer": bytearray(b"ab"), "view": memoryview(b"cd")}
    back = CODEC.loads_typed(CODEC.dumps_record(record))
    assert back == {"deep": deep, "buffer": b"ab", "view": b"cd"}
    with pytest.raises(RefusedPayloadError, match="nests deeper"):
        CODEC.dumps_typed({"deep": deep})
