"""`sql.update_sql` with its text kept per shape of change: for every shape
(columns in any order, any number of expected statuses, an attempt or not,
either mark), the text and parameters of the statement built each time, and
the rows each shape changes in a real database."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from langgraph_rollback import BaseRollbackSaver
from langgraph_rollback.core.ledger import changed_row
from langgraph_rollback.core.ops import Begin, Select, Update
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.savers.sql import update_sql
from tests.unit.build import row


def _reference(update: Update, mark: str = "?") -> tuple[str, list[Any]]:
    sets = ", ".join(f"{column} = {mark}" for column in update.changes)
    params: list[Any] = list(update.changes.values())
    text = f"UPDATE lgrb_effects SET {sets} WHERE effect_id = {mark}"
    params.append(update.effect_id)
    if update.expect:
        text += f" AND status IN ({', '.join([mark] * len(update.expect))})"
        params.extend(update.expect)
    if update.expect_attempt is not None:
        text += f" AND attempt = {mark}"
        params.append(update.expect_attempt)
    return text + " RETURNING effect_id", params


_COLUMNS = ["status", "attempt", "outcome", "updated_at"]
_EXPECTS = [(), ("pending",), ("pending", "failed"), ("a", "b", "c")]


def _shapes() -> Any:
    for size in range(1, 4):
        for columns in itertools.permutations(_COLUMNS, size):
            for expect, attempt, mark in itertools.product(
                _EXPECTS, [None, 0, 2], ["?", "%s"]
            ):
                yield columns, expect, attempt, mark


def test_every_shape_s_text_and_parameters_are_those_built_each_time() -> None:
    for columns, expect, attempt, mark in _shapes():
        changes = {c: f"{c}-{i}" for i, c in enumerate(columns)}
        update = Update("e-1", changes, expect=expect, expect_attempt=attempt)
        assert update_sql(update, mark) == _reference(update, mark)
        again = Update("e-2", dict(reversed(changes.items())), expect=expect)
        assert update_sql(again, mark) == _reference(again, mark)


@pytest.fixture(params=["sqlite", "postgres"])
def saver_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_each_shape_changes_the_rows_it_names_and_no_other(
    saver: BaseRollbackSaver,
) -> None:
    thread = f"t-{uuid.uuid4()}"
    mine = changed_row(row(str(uuid.uuid4()), status="pending"), thread_id=thread)
    other = changed_row(row(str(uuid.uuid4()), status="pending"), thread_id=thread)
    for one in (mine, other):
        saver.execute(Begin(one))
    effect_id = mine.effect_id
    stamp = "2025-01-02T00:00:00+00:00"
    missed = [
        Update(effect_id, {"status": "applied"}, expect=("failed", "applied")),
        Update(effect_id, {"attempt": 5, "status": "x"}, expect_attempt=9),
        Update(effect_id, {"status": "y"}, expect=("pending",), expect_attempt=9),
    ]
    hits = [
        Update(effect_id, {"updated_at": stamp, "attempt": 3}, expect_attempt=1),
        Update(effect_id, {"attempt": 4}, expect=("x", "pending"), expect_attempt=3),
        Update(effect_id, {"status": "failed", "updated_at": stamp}),
    ]
    assert [saver.execute(u) for u in missed] == [False] * 3
    assert [saver.execute(u) for u in hits] == [True] * 3
    rows = {
        r.effect_id: r for r in saver.execute(Select(EffectQuery(thread_id=thread)))
    }
    assert (rows[effect_id].status, rows[effect_id].attempt) == ("failed", 4)
    assert (rows[other.effect_id].status, rows[other.effect_id].attempt) == (
        "pending",
        other.attempt,
    )
