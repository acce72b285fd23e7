"""Ledger payloads (`core.codec`) and rows (`core.ledger`)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from langgraph_rollback._errors import SerializationError
from langgraph_rollback._models import EffectStatus, Reversibility
from langgraph_rollback.core.codec import (
    decode_payload,
    encode_payload,
    normalize,
    storable_or,
)
from langgraph_rollback.core.ledger import (
    COLUMNS,
    INSERT_COLUMNS,
    changed_row,
    effect_from_row,
    effect_of,
    row_from_mapping,
    row_from_tuple,
    utcnow,
)
from langgraph_rollback.core.ledger_codec import LedgerCodec
from tests.unit.build import SERDE, T0, row

LOCK = threading.Lock()


class RefusesDicts(LedgerCodec):
    """A codec that stores anything but a dict."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if isinstance(obj, dict):
            raise TypeError("no dicts")
        return super().dumps_typed(obj)


# --- payloads -----------------------------------------------------------------------


def test_payload_round_trips() -> None:
    encoded = encode_payload(SERDE, {"args": {"p": 1}, "before": None}, tool="t")
    assert decode_payload(SERDE, *encoded, tool="t", field="intent") == {
        "args": {"p": 1},
        "before": None,
    }


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"args": {"ok": 1, "lock": LOCK}}, "argument 'lock'"),
        ({"args": {"ok": 1}, "result": LOCK}, "result"),
        ({"args": [LOCK]}, "args"),
    ],
)
def test_unstorable_payload_names_its_field(
    payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(SerializationError) as caught:
        encode_payload(SERDE, payload, tool="write")
    assert (caught.value.tool, caught.value.field) == ("write", field)
    assert f"{field} is a " in str(caught.value)


def test_unstorable_payload_whose_fields_each_store_names_the_payload() -> None:
    with pytest.raises(SerializationError) as caught:
        encode_payload(RefusesDicts(), {"result": 1}, tool="write")
    assert caught.value.field == "payload"


def test_missing_payload_decodes_empty() -> None:
    assert decode_payload(SERDE, None, b"x", tool="t", field="outcome") == {}
    assert decode_payload(SERDE, "msgpack", None, tool="t", field="outcome") == {}


def test_pickled_payload_is_refused() -> None:
    with pytest.raises(SerializationError, match="unpickling runs arbitrary code"):
        decode_payload(SERDE, "Pickle", b"\x80", tool="t", field="outcome")


def test_undecodable_payload_says_to_use_the_serde_it_was_written_with() -> None:
    with pytest.raises(SerializationError, match="Cannot decode the outcome"):
        decode_payload(SERDE, "msgpack", b"\xc1", tool="t", field="outcome")


def test_payload_that_is_not_a_dict_is_refused() -> None:
    with pytest.raises(SerializationError, match="is a list, not a ledger payload"):
        decode_payload(SERDE, *SERDE.dumps_typed([1]), tool="t", field="undo")


def test_normalize_gives_the_value_as_it_reads_back() -> None:
    assert normalize(SERDE, (1, (2,))) == (1, (2,))
    assert normalize(SERDE, LOCK) is LOCK


def test_storable_or_falls_back_for_what_the_serde_cannot_store() -> None:
    assert storable_or(SERDE, [1], "x") == [1]
    assert storable_or(SERDE, None, "x") is None
    assert storable_or(SERDE, LOCK, "x") == "x"


# --- rows -----------------------------------------------------------------------------


def test_insert_columns_leave_seq_and_base_to_the_store() -> None:
    assert set(COLUMNS) - set(INSERT_COLUMNS) == {"seq", "base_checkpoint_id"}
    assert COLUMNS[0] == "effect_id"


def test_row_from_mapping_turns_blobs_into_bytes() -> None:
    original = row()
    values = {c: getattr(original, c) for c in COLUMNS}
    values["intent"] = memoryview(original.intent or b"")
    values["junk"] = "ignored"
    assert row_from_mapping(values) == original


def test_row_from_tuple_reads_columns_in_order() -> None:
    original = row(undo={"result": 1})
    assert row_from_tuple(tuple(getattr(original, c) for c in COLUMNS)) == original


def test_row_from_tuple_turns_driver_buffers_into_bytes() -> None:
    original = row(undo={"result": 1})
    values = [getattr(original, c) for c in COLUMNS]
    values[COLUMNS.index("intent")] = memoryview(original.intent or b"")
    values[COLUMNS.index("undo")] = bytearray(original.undo or b"")
    built = row_from_tuple(tuple(values))
    assert built == original
    assert type(built.intent) is bytes and type(built.undo) is bytes


def test_row_from_tuple_refuses_a_tuple_of_another_length() -> None:
    values = tuple(getattr(row(), c) for c in COLUMNS)
    for wrong in (values[:-1], (*values, None)):
        with pytest.raises(ValueError, match="columns"):
            row_from_tuple(wrong)


def test_changed_row_is_replace_of_the_named_columns() -> None:
    original = row()
    changes = {"seq": 7, "base_checkpoint_id": "c0", "status": "applied"}
    assert changed_row(original, **changes) == original._replace(**changes)
    assert changed_row(original) == original


def test_changed_row_refuses_a_column_the_ledger_does_not_have() -> None:
    with pytest.raises(TypeError, match="no column 'colour'"):
        changed_row(row(), colour="red")


def test_effect_from_row_decodes_every_payload() -> None:
    the_row = row(
        status="compensated",
        before="A",
        outcome={"result": 3, "after": "B", "observed": True, "error": None},
        undo={"result": "undone", "error": None},
        completed_at=T0,
        compensated_at=T0,
        undo_attempts=1,
        rollback_id="rb",
        base_checkpoint_id="c0",
        seq=9,
    )
    effect = effect_from_row(the_row, SERDE)
    assert (effect.status, effect.kind) == (
        EffectStatus.COMPENSATED,
        Reversibility.REVERSIBLE,
    )
    assert (effect.args, effect.before, effect.after) == ({"path": "a"}, "A", "B")
    assert (effect.result, effect.after_observed) == (3, True)
    assert (effect.undo_result, effect.undo_attempts, effect.rollback_id) == (
        "undone",
        1,
        "rb",
    )
    assert effect.completed_at == effect.compensated_at == datetime.fromisoformat(T0)
    assert (effect.seq, effect.base_checkpoint_id) == (9, "c0")
    assert effect.undo_idempotency_key == "lgrb-e1:undo"
    assert effect.node == "node"


def test_effect_of_a_row_without_outcome_has_none_of_it() -> None:
    effect = effect_of(row(status="pending"), {"args": None})
    assert (effect.args, effect.result, effect.after_observed) == ({}, None, False)
    assert effect.completed_at is None and effect.compensated_at is None


def test_utcnow_is_iso_utc() -> None:
    assert datetime.fromisoformat(utcnow()).utcoffset() is not None


def test_a_checkpoint_serde_passed_in_is_replaced_by_its_ledger_codec() -> None:
    serde = JsonPlusSerializer(pickle_fallback=True)
    with pytest.raises(SerializationError, match="allowed_msgpack_modules"):
        encode_payload(serde, {"result": LOCK}, tool="t")
    assert encode_payload(serde, {"result": (1,)}, tool="t")[0] == "msgpack"
