"""`changed_row` is `LedgerRow._replace`: every column, any mix of columns;
a name the row does not have is refused with `TypeError`, as a keyword
argument would be."""

from __future__ import annotations

import random
from typing import Any

import pytest

from langgraph_rollback.core.ledger import (
    COLUMNS,
    INSERT_COLUMNS,
    LedgerRow,
    changed_row,
    default_idempotency_key,
    insert_values,
    row_from_mapping,
    row_from_tuple,
)
from tests.unit.build import row


def _other_value(name: str, current: Any) -> Any:
    """A value of the column's kind that differs from `current`."""
    if isinstance(current, bool):  # pragma: no cover - no bool column
        return not current
    if isinstance(current, int):
        return current + 17
    if isinstance(current, bytes):
        return current + b"\x00changed"
    if isinstance(current, str):
        return f"{current}-{name}-changed"
    return f"{name}-was-none"


def test_every_column_alone_is_changed_as__replace_changes_it() -> None:
    original = row("e1", seq=3, base_checkpoint_id="c0", undo={"a": 1})
    assert LedgerRow._fields == COLUMNS
    for name in COLUMNS:
        value = _other_value(name, getattr(original, name))
        changed = changed_row(original, **{name: value})
        assert changed == original._replace(**{name: value}), name
        assert getattr(changed, name) == value
        for other in COLUMNS:
            if other != name:
                assert getattr(changed, other) is getattr(original, other)
        assert type(changed) is LedgerRow


def test_random_mixes_of_columns_are_changed_as_replace_changes_them() -> None:
    rng = random.Random(13)
    original = row("e1", seq=3, base_checkpoint_id="c0")
    for _ in range(300):
        names = rng.sample(COLUMNS, rng.randint(0, len(COLUMNS)))
        changes = {n: _other_value(n, getattr(original, n)) for n in names}
        if rng.random() < 0.2 and names:
            changes[names[0]] = None  # the row does not check types
        assert changed_row(original, **changes) == original._replace(**changes)


def test_no_change_gives_an_equal_row_and_leaves_the_original_alone() -> None:
    original = row("e1")
    copy = changed_row(original)
    assert copy == original
    changed_row(original, status="compensated", seq=9)
    assert original == row("e1")


@pytest.mark.parametrize(
    "name", ["colour", "Status", "status ", "__slots__", "row", "effect"]
)
def test_a_name_the_row_has_no_column_for_is_refused(name: str) -> None:
    original = row("e1")
    unknown: dict[str, Any] = {name: 1}
    with pytest.raises(TypeError, match="no column"):
        changed_row(original, **unknown)
    with pytest.raises(TypeError):  # even with real columns beside it
        changed_row(original, status="applied", **unknown)


def test_insert_values_are_the_row_s_insert_columns_in_order() -> None:
    original = row(
        "e1", seq=3, base_checkpoint_id="c0", undo={"a": 1}, idempotency_key="own"
    )
    assert insert_values(original) == tuple(
        getattr(original, name) for name in INSERT_COLUMNS
    )
    assert "seq" not in INSERT_COLUMNS and "base_checkpoint_id" not in INSERT_COLUMNS


def test_the_default_idempotency_key_is_stored_empty_and_read_back_whole() -> None:
    original = row("e1", seq=3, idempotency_key=default_idempotency_key("e1"))
    stored = insert_values(original)
    at = INSERT_COLUMNS.index("idempotency_key")
    assert stored[at] == ""
    assert stored[:at] + stored[at + 1 :] == tuple(
        getattr(original, name) for name in INSERT_COLUMNS if name != "idempotency_key"
    )
    selected = tuple(
        "" if name == "idempotency_key" else getattr(original, name) for name in COLUMNS
    )
    assert row_from_tuple(selected) == original
    assert row_from_mapping(dict(zip(COLUMNS, selected, strict=True))) == original
    # Any other key is stored as it is.
    custom = changed_row(original, idempotency_key="lgrb-other")
    assert insert_values(custom)[at] == "lgrb-other"
    assert row_from_tuple(tuple(getattr(custom, n) for n in COLUMNS)) == custom
