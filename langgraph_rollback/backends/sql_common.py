"""SQL text both SQL backends build the same way, with their own placeholder."""

from __future__ import annotations

from typing import Any

from langgraph_rollback._ledger import COLUMNS
from langgraph_rollback._ops import Select, Update

__all__ = ["SELECT_COLUMNS", "select_sql", "update_sql"]

SELECT_COLUMNS = ", ".join(COLUMNS)


def select_sql(
    op: Select, mark: str = "?", dialect: str = "sqlite"
) -> tuple[str, list[Any]]:
    """The SELECT text and parameters for a `Select` operation."""
    where, params = op.query.sql_where(mark, dialect=dialect)
    text = f"SELECT {SELECT_COLUMNS} FROM lgrb_effects WHERE {where} ORDER BY seq DESC"
    if op.query.limit is not None:
        text += f" LIMIT {mark}"
        params.append(op.query.limit)
    return text, params


def update_sql(update: Update, mark: str = "?") -> tuple[str, list[Any]]:
    """The UPDATE text and parameters for an `Update` operation."""
    # Column names come from `Update`, which admits only `_ops.UPDATABLE`.
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
    return text, params
