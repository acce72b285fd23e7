"""SQL text both SQL backends build the same way, with their own placeholder."""

from __future__ import annotations

from typing import Any

from langgraph_rollback._errors import LedgerSchemaError
from langgraph_rollback._ledger import COLUMNS
from langgraph_rollback._ops import Select, Update

__all__ = ["SELECT_COLUMNS", "pending_migrations", "select_sql", "update_sql"]

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


def pending_migrations(
    migrations: list[str], current: int | None, mark: str = "?"
) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements that take a ledger from version `current` to the latest.

    Run them in the transaction that read `current` (under the write lock),
    so two workers setting up one new database apply each migration once.
    Migrations contain no string literals with semicolons, so splitting on
    them is exact.

    Raises:
        LedgerSchemaError: `current` is newer than this version knows.
    """
    found = -1 if current is None else int(current)
    latest = len(migrations) - 1
    if found > latest:
        raise LedgerSchemaError(found=found, supported=latest)
    out: list[tuple[str, tuple[Any, ...]]] = []
    for version in range(found + 1, latest + 1):
        out += [(part.strip(), ()) for part in migrations[version].split(";")]
        out.append((f"INSERT INTO lgrb_migrations (v) VALUES ({mark})", (version,)))
    return [(text, params) for text, params in out if text]
