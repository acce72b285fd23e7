"""What a database's schema says a row change sets off: foreign-key actions,
triggers, rules and inheritance, read from SQLite's pragmas and PostgreSQL's
catalogs, and the error that refuses what the battery cannot image. I/O on a
cursor the caller owns; no writes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from langgraph_rollback._errors import RollbackError

__all__ = [
    "ForeignKey",
    "HiddenEffectsError",
    "hidden_effects",
    "references_from",
    "references_to",
]

ACTIONS = frozenset({"cascade", "set null", "set default"})
"""Foreign-key actions that change rows of the referencing table."""

_REPLACE = re.compile(r"\bON\s+CONFLICT\s+REPLACE\b", re.IGNORECASE)
"""A conflict clause that deletes rows (read from the table's CREATE text;
a match inside a string literal refuses too much, never too little)."""

_PG_ACTIONS = {
    "a": "no action",
    "r": "restrict",
    "c": "cascade",
    "n": "set null",
    "d": "set default",
}


class HiddenEffectsError(RollbackError):
    """The schema shows row changes the battery cannot image (triggers, rules,
    inheriting tables), so the call or its inverse was refused before it ran.

    Attributes:
        table: The table the call names.
        effects: `(table, what)` for each trigger, rule or inheriting table.
    """

    def __init__(
        self, *, tool: str, table: str, found: list[tuple[str, str, str]], when: str
    ) -> None:
        whats = ", ".join(f"{what} on {t!r}" for t, what, _fix in found)
        fixes = "; ".join(dict.fromkeys(fix for _t, _w, fix in found))
        super().__init__(
            f"{tool} on {table!r} was refused {when}: {whats} can change rows the "
            "SQL battery does not see, so a rollback could not restore exactly what "
            f"was there. Fix: {fixes} (or make the change through a tool of your "
            "own whose inverse knows what they do)."
        )
        self.table = table
        self.effects = [(t, what) for t, what, _fix in found]


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key: `child(child_columns)` references `parent(parent_columns)`."""

    child: str
    child_columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    on_delete: str
    on_update: str


def references_to(dialect: str, cur: Any, table: str) -> list[ForeignKey]:
    """The foreign keys of any table that reference `table`."""
    if dialect == "sqlite":
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        names = [r[0] for r in cur.fetchall()]
        found = [fk for name in names for fk in _sqlite_keys(cur, name)]
        return [fk for fk in found if fk.parent.lower() == table.lower()]
    return _pg_keys(cur, "c.confrelid", table)


def references_from(dialect: str, cur: Any, table: str) -> list[ForeignKey]:
    """The foreign keys of `table` itself (the tables it references)."""
    if dialect == "sqlite":
        return _sqlite_keys(cur, table)
    return _pg_keys(cur, "c.conrelid", table)


def _sqlite_keys(cur: Any, table: str) -> list[ForeignKey]:
    cur.execute(
        'SELECT id, "table", "from", "to", on_update, on_delete '
        "FROM pragma_foreign_key_list(?) ORDER BY id, seq",
        (table,),
    )
    grouped: dict[int, list[Any]] = {}
    for row in cur.fetchall():
        grouped.setdefault(row[0], []).append(row)
    keys = []
    for rows in grouped.values():
        parent = rows[0][1]
        to = tuple(r[3] for r in rows)
        if any(t is None for t in to):  # the parent's primary key
            cur.execute(
                "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk",
                (parent,),
            )
            to = tuple(r[0] for r in cur.fetchall())
        keys.append(
            ForeignKey(
                child=table,
                child_columns=tuple(r[2] for r in rows),
                parent=parent,
                parent_columns=to,
                on_delete=str(rows[0][5]).lower(),
                on_update=str(rows[0][4]).lower(),
            )
        )
    return keys


_PG_KEYS = """
SELECT child.relname, parent.relname,
  ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
  ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),
  c.confdeltype, c.confupdtype,
  child.relnamespace = parent.relnamespace
FROM pg_constraint c
JOIN pg_class child ON child.oid = c.conrelid
JOIN pg_class parent ON parent.oid = c.confrelid
WHERE c.contype = 'f' AND {side} = (
  SELECT t.oid FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
  WHERE t.relname = %s AND n.nspname = current_schema())
ORDER BY c.conname
"""


def _pg_keys(cur: Any, side: str, table: str) -> list[ForeignKey]:
    cur.execute(_PG_KEYS.format(side=side), (table,))
    return [
        ForeignKey(
            child=child if same_schema else f"(another schema).{child}",
            child_columns=tuple(ccols),
            parent=parent,
            parent_columns=tuple(pcols),
            on_delete=_PG_ACTIONS[str(on_delete)],
            on_update=_PG_ACTIONS[str(on_update)],
        )
        for child, parent, ccols, pcols, on_delete, on_update, same_schema in (
            cur.fetchall()
        )
    ]


_PG_HIDDEN = """
SELECT 'trigger ' || quote_ident(tg.tgname), 'DROP TRIGGER ' || quote_ident(tg.tgname)
  || ' ON ' || quote_ident(t.relname)
FROM pg_trigger tg JOIN pg_class t ON t.oid = tg.tgrelid
WHERE tg.tgrelid = %(oid)s AND NOT tg.tgisinternal
UNION ALL
SELECT 'rule ' || quote_ident(r.rulename), 'DROP RULE ' || quote_ident(r.rulename)
  || ' ON ' || quote_ident(t.relname)
FROM pg_rewrite r JOIN pg_class t ON t.oid = r.ev_class
WHERE r.ev_class = %(oid)s AND r.rulename <> '_RETURN'
UNION ALL
SELECT 'inheriting table ' || quote_ident(c.relname),
  'keep the battery to tables without inheriting tables or partitions'
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = %(oid)s
"""


def hidden_effects(dialect: str, cur: Any, table: str) -> list[tuple[str, str]]:
    """What on `table` changes rows the battery cannot image: (what, the fix).

    SQLite: triggers, and ON CONFLICT REPLACE clauses in the table's schema
    (a plain INSERT or UPDATE then deletes the rows it conflicts with).
    PostgreSQL: triggers (other than those of foreign
    keys), rules, and inheriting tables or partitions (whose rows a statement
    on the parent also changes, with columns the parent does not show).
    """
    if dialect == "sqlite":
        cur.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' "
            "AND lower(tbl_name) = lower(?) ORDER BY name",
            (table,),
        )
        found = [(f"trigger {n!r}", f'DROP TRIGGER "{n}"') for (n,) in cur.fetchall()]
        cur.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' "
            "AND lower(name) = lower(?)",
            (table,),
        )
        schema = cur.fetchone()
        if schema and _REPLACE.search(str(schema[0])):
            found.append(
                (
                    "an ON CONFLICT REPLACE clause",
                    "recreate the table without ON CONFLICT REPLACE",
                )
            )
        return found
    cur.execute(
        "SELECT t.oid FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE t.relname = %s AND n.nspname = current_schema()",
        (table,),
    )
    row = cur.fetchone()
    if row is None:
        return []
    cur.execute(_PG_HIDDEN, {"oid": row[0]})
    return [(str(what), str(fix)) for what, fix in cur.fetchall()]
