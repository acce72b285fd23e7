"""Row reads and writes of one table inside one transaction, and the walk
of the foreign keys that finds every row a statement may change."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback.batteries._sql_schema import (
    ACTIONS,
    ForeignKey,
    HiddenEffectsError,
    hidden_effects,
    references_from,
    references_to,
)

__all__ = [
    "Cascade",
    "Change",
    "Database",
    "Rows",
    "check_columns",
    "images_of",
    "key_values",
    "parents_first",
    "quote",
]


class Database(Protocol):
    """What the row code needs of a `SqlDatabase`."""

    name: str
    dialect: Literal["sqlite", "postgres"]

    @property
    def mark(self) -> str: ...

    def schema(self, cur: Any, table: str) -> tuple[list[str], list[str]]: ...

    def writable_columns(self, cur: Any, table: str) -> list[str]: ...

    def special_columns(self, cur: Any, table: str) -> tuple[set[str], set[str]]: ...


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _key_part(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(value).hex()}
    return value


def key_values(key: str) -> list[Any]:
    """The primary-key values an image key holds (bytes keys decoded)."""
    return [
        bytes.fromhex(v["bytes"]) if isinstance(v, dict) and "bytes" in v else v
        for v in json.loads(key)
    ]


def check_columns(columns: Sequence[str], names: Sequence[str], table: str) -> None:
    unknown = [n for n in names if n not in columns]
    if unknown:
        raise InvalidConfigError(
            f"Table {table!r} has no column(s) {unknown}. Fix: use its columns: "
            f"{', '.join(columns)}."
        )


class Rows:
    """Row reads and writes of one table, inside one transaction."""

    def __init__(self, db: Database, cur: Any, table: str) -> None:
        self.db, self.cur, self.table = db, cur, table
        self.columns, self.keys = db.schema(cur, table)
        self.writable = set(db.writable_columns(cur, table))
        self.json, self.always = db.special_columns(cur, table)
        self.q = quote(table)

    def bind(self, column: str, value: Any) -> Any:
        """`value` as the driver must be given it for `column` (json wrapped)."""
        if column in self.json and value is not None:
            from psycopg.types.json import Jsonb

            return Jsonb(value)
        return value

    def where(self, where: dict[str, Any]) -> tuple[str, list[Any]]:
        if not where:
            raise InvalidConfigError(
                f"An empty `where` would touch every row of {self.table!r}. Fix: "
                "name the rows, e.g. where={'id': 42}."
            )
        check_columns(self.columns, list(where), self.table)
        return (
            " AND ".join(f"{quote(c)} = {self.db.mark}" for c in where),
            [self.bind(c, v) for c, v in where.items()],
        )

    def fetch(self, clause: str, params: list[Any]) -> list[dict[str, Any]]:
        # PostgreSQL: lock the rows read, so they cannot change before the
        # write (SQLite already holds the database's write lock).
        lock = " FOR UPDATE" if self.db.dialect == "postgres" else ""
        self.cur.execute(f"SELECT * FROM {self.q} WHERE {clause}{lock}", params)
        names = [d[0] for d in self.cur.description]
        return [dict(zip(names, row, strict=True)) for row in self.cur.fetchall()]

    def key_of(self, row: dict[str, Any]) -> str:
        """The row's image key: its primary-key values, as JSON."""
        values = [row[k] for k in self.keys]
        if None in values:
            raise InvalidConfigError(
                f"A row of {self.table!r} has a NULL primary key ({row!r}), so it "
                "cannot be told apart from other such rows and restored on its own; "
                "the call was refused. Fix: give the row a key (declare the key "
                "columns NOT NULL)."
            )
        return json.dumps([_key_part(v) for v in values], default=str)

    def by_key(self, key: str) -> dict[str, Any] | None:
        values = key_values(key)
        clause = " AND ".join(f"{quote(k)} = {self.db.mark}" for k in self.keys)
        rows = self.fetch(clause, values)
        return rows[0] if rows else None

    def matching(
        self, columns: tuple[str, ...], values: list[tuple[Any, ...]]
    ) -> list[dict[str, Any]]:
        """The rows whose `columns` equal one of `values` (locked, in PostgreSQL)."""
        one = "(" + " AND ".join(f"{quote(c)} = {self.db.mark}" for c in columns) + ")"
        found: list[dict[str, Any]] = []
        for start in range(0, len(values), 100):
            chunk = values[start : start + 100]
            clause = " OR ".join([one] * len(chunk))
            found += self.fetch(clause, [v for value in chunk for v in value])
        return found

    def put(self, row: dict[str, Any]) -> None:
        """Make the row with `row`'s key hold `row`: an update if it exists (so
        no ON DELETE action fires), else an insert."""
        key = self.key_of(row)
        if self.by_key(key) is None:
            names = [n for n in row if n in self.writable]
            marks = ", ".join([self.db.mark] * len(names))
            # PostgreSQL: put back the recorded value of a GENERATED ALWAYS
            # identity column too.
            override = (
                " OVERRIDING SYSTEM VALUE" if self.db.dialect == "postgres" else ""
            )
            self.cur.execute(
                f"INSERT INTO {self.q} ({', '.join(quote(n) for n in names)})"
                f"{override} VALUES ({marks})",
                [self.bind(n, row[n]) for n in names],
            )
            return
        others = [
            n
            for n in row
            if n not in self.keys and n in self.writable and n not in self.always
        ]
        if not others:
            return
        sets = ", ".join(f"{quote(n)} = {self.db.mark}" for n in others)
        clause = " AND ".join(f"{quote(k)} = {self.db.mark}" for k in self.keys)
        self.cur.execute(
            f"UPDATE {self.q} SET {sets} WHERE {clause}",
            [self.bind(n, row[n]) for n in others] + key_values(key),
        )

    def delete(self, key: str) -> None:
        clause = " AND ".join(f"{quote(k)} = {self.db.mark}" for k in self.keys)
        self.cur.execute(f"DELETE FROM {self.q} WHERE {clause}", key_values(key))


Change = frozenset[str] | None
"""How a statement changes a row: the columns it sets, or None when it deletes it."""


def _broader(old: Change | str, new: Change) -> Change:
    if old == "unseen":
        return new
    if old is None or new is None:
        return None
    assert isinstance(old, frozenset)
    return old | new


class Cascade:
    """Every row a statement may change, found by walking the foreign keys.

    Starting from the rows the statement names, each foreign key that
    references them with ON DELETE (or, for the columns an update sets, ON
    UPDATE) CASCADE, SET NULL or SET DEFAULT adds the referencing rows, and
    so on recursively. The result is a superset: rows that end up unchanged
    are dropped after the statement.
    """

    def __init__(self, db: Database, cur: Any, start: Rows) -> None:
        self.db, self.cur = db, cur
        self.tables: dict[str, Rows] = {start.table: start}
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}
        self.modes: dict[tuple[str, str], Change] = {}

    def walk(self, table: str, rows: list[dict[str, Any]], change: Change) -> None:
        queue = [(table, self._add(table, rows, change), change)]
        while queue:
            parent, batch, how = queue.pop()
            for fk in references_to(self.db.dialect, self.cur, parent):
                action = (
                    fk.on_delete
                    if how is None
                    else (fk.on_update if how & set(fk.parent_columns) else "no action")
                )
                if action not in ACTIONS or not batch:
                    continue
                child_change: Change = (
                    None
                    if how is None and action == "cascade"
                    else frozenset(fk.child_columns)
                )
                found = self._referencing(fk, batch)
                fresh = self._add(fk.child, found, child_change)
                if fresh:
                    queue.append((fk.child, fresh, child_change))

    def _referencing(
        self, fk: ForeignKey, batch: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if fk.child.startswith("(another schema)"):
            raise HiddenEffectsError(
                tool="the SQL battery",
                table=fk.parent,
                found=[
                    (
                        fk.child,
                        "a foreign key from another schema",
                        "keep the referencing table in the current schema",
                    )
                ],
                when="before it ran",
            )
        if fk.child not in self.tables:
            self.tables[fk.child] = Rows(self.db, self.cur, fk.child)
        values = {tuple(r[c] for c in fk.parent_columns) for r in batch}
        wanted = sorted((v for v in values if None not in v), key=repr)
        return (
            self.tables[fk.child].matching(fk.child_columns, wanted) if wanted else []
        )

    def _add(
        self, table: str, rows: list[dict[str, Any]], change: Change
    ) -> list[dict[str, Any]]:
        t = self.tables[table]
        fresh = []
        for row in rows:
            key = t.key_of(row)
            old = self.modes.get((table, key), "unseen")
            merged = _broader(old, change)
            if old != "unseen" and merged == old:
                continue
            self.modes[(table, key)] = merged
            self.rows.setdefault(table, {})[key] = row
            fresh.append(row)
        return fresh

    def refuse_hidden(self, tool: str, table: str, when: str) -> None:
        found = [
            (name, what, fix)
            for name in self.tables
            for what, fix in hidden_effects(self.db.dialect, self.cur, name)
        ]
        if found:
            raise HiddenEffectsError(tool=tool, table=table, found=found, when=when)

    def images_after(
        self, main: str, named: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The rows the statement changed besides the `named` rows of `main`
        (those of a self-referencing key included), before and after."""
        skip = {self.tables[main].key_of(r) for r in named}
        images = []
        for name, found in self.rows.items():
            rows = {k: r for k, r in found.items() if name != main or k not in skip}
            t = self.tables[name]
            now = {key: t.by_key(key) for key in rows}
            before = {k: r for k, r in rows.items() if now[k] != r}
            after = {k: now[k] for k in before if now[k] is not None}
            if before:
                images.append({"table": name, "before": before, "after": after})
        return images


def images_of(
    rows: Rows,
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    cascaded: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    images: dict[str, Any] = {
        "database": rows.db.name,
        "table": rows.table,
        "before": {rows.key_of(r): r for r in before},
        "after": {rows.key_of(r): r for r in after},
    }
    if cascaded:
        images["cascaded"] = cascaded
    return images


def parents_first(
    db: Database,
    cur: Any,
    tables: dict[str, Rows],
    rows: list[tuple[str, dict[str, Any]]],
) -> list[tuple[str, dict[str, Any]]]:
    """`rows` ordered so that a row comes after the rows it references."""
    fks = {t: references_from(db.dialect, cur, t) for t in {t for t, _ in rows}}
    by_value: dict[tuple[str, tuple[str, ...], tuple[Any, ...]], int] = {}
    for fk_list in fks.values():
        for fk in fk_list:
            for i, (t, r) in enumerate(rows):
                if t == fk.parent:
                    by_value[
                        (t, fk.parent_columns, tuple(r[c] for c in fk.parent_columns))
                    ] = i
    needs: list[set[int]] = []
    for i, (t, r) in enumerate(rows):
        refs = {
            by_value.get(
                (
                    fk.parent,
                    fk.parent_columns,
                    tuple(r.get(c) for c in fk.child_columns),
                ),
                i,
            )
            for fk in fks[t]
        }
        needs.append(refs - {i})
    order: list[int] = []
    placed: set[int] = set()
    while len(order) < len(rows):
        ready = [i for i in range(len(rows)) if i not in placed and needs[i] <= placed]
        if not ready:  # a cycle: keep the rest in their recorded order
            ready = [i for i in range(len(rows)) if i not in placed]
        for i in ready:
            placed.add(i)
            order.append(i)
    return [rows[i] for i in order]
