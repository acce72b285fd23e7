"""SQL text of the PostgreSQL ledger: its migrations and statements.

The ledger lives in the same database as LangGraph's `checkpoints`,
`checkpoint_blobs` and `checkpoint_writes` tables, in tables prefixed `lgrb_`.
As in SQLite there is no foreign key to `checkpoints` (an effect is recorded
before its checkpoint is written, or without one under durability "exit").

`MIGRATIONS` is append-only: its index is the schema version, recorded in
`lgrb_migrations`. Never edit a released entry; add a new one.

The per-thread rollback lock is a session-level advisory lock
(`pg_try_advisory_lock`) held on a dedicated connection for the rollback's
duration, so it is released by PostgreSQL itself if the holder's process dies.
"""

from __future__ import annotations

from typing import Any

from langgraph_rollback.core.ledger import INSERT_COLUMNS, LedgerRow, insert_values
from langgraph_rollback.savers.sql import SELECT_COLUMNS, earlier_with_key

__all__ = [
    "ANCESTRY_PAGE",
    "EXISTING",
    "FIND_CHECKPOINT",
    "FIND_EFFECT",
    "FIND_NAMESPACE",
    "FIND_RUN",
    "INSERT_AUDIT",
    "INSERT_INTENT",
    "LOCK_HOLDER",
    "LOCK_KEY",
    "LOCK_TRY",
    "LOCK_UNLOCK",
    "LOCK_WAIT",
    "LOCK_WAIT_TIMEOUT",
    "MARK_RESTORED",
    "MIGRATIONS",
    "NAMESPACE_STATES",
    "SAVE_ROLLBACK",
    "SELECT_AUDIT",
    "SELECT_BY_ID",
    "SELECT_HEAD",
    "SUBTREE",
    "VERSION_TABLE",
]

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS lgrb_migrations (
    v INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""

MIGRATIONS: list[str] = [
    # v0: the effects ledger, rollback records, and an index for planning.
    """
    CREATE TABLE IF NOT EXISTS lgrb_effects (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        effect_id TEXT NOT NULL UNIQUE,
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        task_ns TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        root_checkpoint_id TEXT NOT NULL,
        base_checkpoint_id TEXT,
        task_id TEXT NOT NULL,
        call_key TEXT NOT NULL,
        tool_call_id TEXT,
        ordinal INTEGER,
        tool TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        idempotency_key TEXT NOT NULL,
        run_id TEXT,
        intent_type TEXT,
        intent BYTEA,
        outcome_type TEXT,
        outcome BYTEA,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        completed_at TEXT,
        undo_type TEXT,
        undo BYTEA,
        undo_attempts INTEGER NOT NULL DEFAULT 0,
        rollback_id TEXT,
        compensated_at TEXT
    );
    CREATE INDEX IF NOT EXISTS lgrb_effects_thread_seq
        ON lgrb_effects (thread_id, seq);
    CREATE INDEX IF NOT EXISTS lgrb_effects_thread_root
        ON lgrb_effects (thread_id, root_checkpoint_id);
    CREATE INDEX IF NOT EXISTS lgrb_effects_thread_base
        ON lgrb_effects (thread_id, base_checkpoint_id);
    CREATE INDEX IF NOT EXISTS lgrb_checkpoints_parent
        ON checkpoints (thread_id, checkpoint_ns, parent_checkpoint_id);
    CREATE TABLE IF NOT EXISTS lgrb_rollbacks (
        rollback_id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL,
        target_checkpoint_id TEXT NOT NULL,
        head_checkpoint_id TEXT,
        restored_checkpoint_id TEXT,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        report_type TEXT,
        report BYTEA
    );
    CREATE INDEX IF NOT EXISTS lgrb_rollbacks_thread
        ON lgrb_rollbacks (thread_id, started_at);
    """,
    # v1: the process performing an intent's call.
    """
    ALTER TABLE lgrb_effects ADD COLUMN IF NOT EXISTS owner TEXT;
    """,
    # v2: the audit trail, one row per human decision (`core.audit`).
    """
    CREATE TABLE IF NOT EXISTS lgrb_audit (
        seq BIGSERIAL PRIMARY KEY,
        audit_id TEXT NOT NULL UNIQUE,
        thread_id TEXT NOT NULL,
        at TEXT NOT NULL,
        entry TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS lgrb_audit_thread ON lgrb_audit (thread_id, seq);
    """,
    # v3: the database's digest key, encrypted (`savers.keys`).
    """
    CREATE TABLE IF NOT EXISTS lgrb_keys (
        name TEXT PRIMARY KEY,
        cipher TEXT NOT NULL,
        value BYTEA NOT NULL,
        since_seq BIGINT NOT NULL
    );
    """,
    # v4: a call's earlier rows found by its key (`core.replay`: the same call
    # of a run whose checkpoints were never stored), and a run's effects by its
    # id (`FindRun`), without a scan.
    """
    CREATE INDEX IF NOT EXISTS lgrb_effects_thread_key
        ON lgrb_effects (thread_id, call_key);
    CREATE INDEX IF NOT EXISTS lgrb_effects_run ON lgrb_effects (run_id);
    """,
    # v5: the run index holds only the rows that name a run (`FindRun` asks
    # for one run id, which implies it is set): an intent of a graph run
    # without a run id writes one index page less per commit.
    """
    DROP INDEX IF EXISTS lgrb_effects_run;
    CREATE INDEX IF NOT EXISTS lgrb_effects_run_named
        ON lgrb_effects (run_id) WHERE run_id IS NOT NULL;
    """,
    # v6: the call-key index holds only the rows a later task's call may be
    # matched to by its key (`core.query.rerun_candidate`): a subgraph's, and
    # those whose root checkpoint was not their base when recorded. The
    # (thread_id, root_checkpoint_id) index gains the call key, so a
    # resumed task finds its interrupted task's call under that task's
    # checkpoint by key (`core.replay._continued`), not among all its rows.
    """
    DROP INDEX IF EXISTS lgrb_effects_thread_root;
    CREATE INDEX IF NOT EXISTS lgrb_effects_thread_root_key
        ON lgrb_effects (thread_id, root_checkpoint_id, call_key);
    DROP INDEX IF EXISTS lgrb_effects_thread_key;
    CREATE INDEX IF NOT EXISTS lgrb_effects_thread_key_rerun
        ON lgrb_effects (thread_id, call_key)
        WHERE (checkpoint_ns <> ''
            OR base_checkpoint_id IS DISTINCT FROM root_checkpoint_id);
    """,
]

INSERT_AUDIT = (
    "INSERT INTO lgrb_audit (audit_id, thread_id, at, entry) "
    "VALUES (%s, %s, %s, %s) ON CONFLICT (audit_id) DO NOTHING"
)
SELECT_AUDIT = (
    "SELECT audit_id, thread_id, at, entry FROM lgrb_audit WHERE thread_id = %s "
    "ORDER BY seq DESC LIMIT %s"
)


MIGRATION_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('lgrb:migrations', 0))"
"""Serialises concurrent `setup()` calls from several workers. Session-level:
LangGraph's own migrations run `CREATE INDEX CONCURRENTLY`, outside any
transaction, and are not safe to run twice at once either. Tried in a loop,
never waited for in a statement: `CREATE INDEX CONCURRENTLY` waits for every
open transaction, a blocked lock request included, which would deadlock."""
MIGRATION_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('lgrb:migrations', 0))"


COLUMN_TYPES = {
    "ordinal": "integer",
    "attempt": "integer",
    "undo_attempts": "integer",
    "intent": "bytea",
    "outcome": "bytea",
    "undo": "bytea",
}
"""Columns of `lgrb_effects` that are not TEXT (see MIGRATIONS v0)."""

INSERT_INTENT = f"""
WITH held AS MATERIALIZED (
    SELECT pg_try_advisory_xact_lock_shared(hashtextextended(%s, 0)) AS ok
), kin AS MATERIALIZED (
    SELECT %s::boolean AND {earlier_with_key("%s", dialect="postgres")} AS found
), inserted AS (
    INSERT INTO lgrb_effects ({", ".join(INSERT_COLUMNS)}, base_checkpoint_id)
    SELECT {", ".join(f"%s::{COLUMN_TYPES.get(c, 'text')}" for c in INSERT_COLUMNS)},
        COALESCE(%s::text, (
            SELECT checkpoint_id FROM checkpoints
            WHERE thread_id = %s::text AND checkpoint_ns = ''
            ORDER BY checkpoint_id DESC LIMIT 1
        ))
    FROM held, kin WHERE held.ok AND NOT kin.found
    ON CONFLICT (effect_id) DO NOTHING
    RETURNING seq, base_checkpoint_id
)
SELECT held.ok, inserted.seq, inserted.base_checkpoint_id, kin.found
FROM held CROSS JOIN kin LEFT JOIN inserted ON true
"""
"""Insert an intent, in one statement (one round trip, its own transaction on
an autocommit connection): it takes the thread's lock shared, as every
intent does (`LOCK_SHARED`; a rollback holds it exclusive), and inserts only
if it got it and, when asked (`BeginIfNewKey`), only if no other effect of
the thread with the row's call key may be an earlier record of the call.
The base is the checkpoint the run was started from when the run named one,
else the thread's newest stored root checkpoint. Parameters: the lock key;
whether to look for another effect with the key, the row's `thread_id`,
`call_key` and `effect_id`; the `INSERT_COLUMNS` values, the row's
`base_checkpoint_id`, its `thread_id`. Returns one row: whether the lock was
had, the inserted row's `seq` and base (both NULL when the lock was not had,
such an effect was found or the effect already exists), and whether such an
effect was found."""


def intent_params(row: LedgerRow, if_new_key: bool) -> list[Any]:
    """`INSERT_INTENT`'s parameters for `row`, in its order."""
    return [
        LOCK_KEY.format(thread_id=row.thread_id),
        if_new_key,
        row.thread_id,
        row.call_key,
        row.effect_id,
        *insert_values(row),
        row.base_checkpoint_id,
        row.thread_id,
    ]


SELECT_BY_ID = f"SELECT {SELECT_COLUMNS} FROM lgrb_effects WHERE effect_id = %s"

SELECT_HEAD = """
SELECT checkpoint_id FROM checkpoints
WHERE thread_id = %s AND checkpoint_ns = ''
ORDER BY checkpoint_id DESC LIMIT 1
"""

FIND_CHECKPOINT = """
SELECT DISTINCT thread_id FROM checkpoints
WHERE checkpoint_ns = '' AND checkpoint_id = %s LIMIT 10
"""

_COPIES = "{t}metadata -> 'lgrb_restore' -> 'copies'"
_META = (
    "{t}metadata ->> 'source', ({t}metadata ->> 'step')::bigint, "
    "{t}metadata ->> 'run_id'"
)

FIND_NAMESPACE = """
SELECT DISTINCT checkpoint_ns FROM checkpoints
WHERE thread_id = %s AND checkpoint_id = %s AND checkpoint_ns != ''
ORDER BY checkpoint_ns LIMIT 10
"""

FIND_EFFECT = "SELECT thread_id FROM lgrb_effects WHERE effect_id = %s LIMIT 1"

FIND_RUN = (
    "SELECT DISTINCT thread_id FROM lgrb_effects WHERE run_id = %s ORDER BY thread_id"
)

ANCESTRY_PAGE = f"""
SELECT checkpoint_id, parent_checkpoint_id, {_COPIES.format(t="")},
       {_META.format(t="")}
FROM checkpoints
WHERE thread_id = %(thread)s AND checkpoint_ns = '' AND checkpoint_id <= %(below)s
ORDER BY checkpoint_id DESC LIMIT %(limit)s
"""
"""A page of a thread's root checkpoints, newest first, from `below` down: the
saver walks a checkpoint's ancestry through these pages (a parent's id sorts
below its child's, as LangGraph's ids are ordered by time). One range scan
of the primary key per page, whatever the statistics: the recursive join
this replaces was planned, before `checkpoints` had statistics (a new
table, autovacuum not yet run), as a scan of the whole thread per step,
39 s for one walk of a 5,000-checkpoint thread."""

UPDATED_FROM = """
WITH RECURSIVE up (checkpoint_id, parent_id, source, depth) AS (
    SELECT checkpoint_id, parent_checkpoint_id, metadata ->> 'source', 0
    FROM checkpoints
    WHERE thread_id = %(thread)s AND checkpoint_ns = '' AND checkpoint_id = %(start)s
    UNION ALL
    SELECT c.checkpoint_id, c.parent_checkpoint_id, c.metadata ->> 'source',
           up.depth + 1
    FROM checkpoints AS c JOIN up ON c.checkpoint_id = up.parent_id
    WHERE c.thread_id = %(thread)s AND c.checkpoint_ns = '' AND up.source = 'update'
)
SELECT checkpoint_id, source FROM up ORDER BY depth
"""

SUBTREE = f"""
WITH RECURSIVE sub (checkpoint_id, parent_id, copies) AS (
    SELECT checkpoint_id, parent_checkpoint_id, {_COPIES.format(t="")}
    FROM checkpoints
    WHERE thread_id = %(thread)s AND checkpoint_ns = '' AND checkpoint_id = %(root)s
    UNION ALL
    SELECT c.checkpoint_id, c.parent_checkpoint_id, {_COPIES.format(t="c.")}
    FROM sub CROSS JOIN LATERAL (
        SELECT checkpoint_id, parent_checkpoint_id, metadata FROM checkpoints
        WHERE thread_id = %(thread)s AND checkpoint_ns = ''
          AND parent_checkpoint_id = sub.checkpoint_id
        OFFSET 0
    ) AS c
)
SELECT checkpoint_id, parent_id, copies FROM sub
"""
"""Each step looks up the children by `lgrb_checkpoints_parent`: a plain join
was planned, before `checkpoints` had statistics, as a scan of the whole
thread per step (29 s over a 5,000-checkpoint thread, 0.07 s so);
`OFFSET 0` keeps the `LATERAL` subquery from being flattened into one."""

NAMESPACE_STATES = """
SELECT checkpoint_ns, checkpoint_id, metadata -> 'parents' ->> ''
FROM checkpoints
WHERE thread_id = %s AND checkpoint_ns != '' AND position(':' in checkpoint_ns) = 0
"""
"""Checkpoints of persistent subgraph namespaces, with their root checkpoint."""

EXISTING = """
SELECT checkpoint_id FROM checkpoints
WHERE thread_id = %s AND checkpoint_ns = '' AND checkpoint_id = ANY(%s)
"""

MARK_RESTORED = """
UPDATE lgrb_rollbacks SET restored_checkpoint_id = %s, status = 'restored'
WHERE rollback_id = %s
"""

SAVE_ROLLBACK = """
INSERT INTO lgrb_rollbacks (
    rollback_id, thread_id, target_checkpoint_id, head_checkpoint_id,
    restored_checkpoint_id, status, started_at, finished_at, report_type, report
) VALUES (
    %(rollback_id)s, %(thread_id)s, %(target_checkpoint_id)s,
    %(head_checkpoint_id)s, %(restored_checkpoint_id)s, %(status)s,
    %(started_at)s, %(finished_at)s, %(report_type)s, %(report)s
)
ON CONFLICT (rollback_id) DO UPDATE SET
    head_checkpoint_id = excluded.head_checkpoint_id,
    restored_checkpoint_id = excluded.restored_checkpoint_id,
    status = excluded.status,
    finished_at = excluded.finished_at,
    report_type = excluded.report_type,
    report = excluded.report
"""

LOCK_KEY = "lgrb:thread:{thread_id}"
LOCK_SHARED = "SELECT pg_try_advisory_xact_lock_shared(hashtextextended(%s, 0))"
"""Taken by each intent's transaction: fails while a rollback holds the thread."""
LOCK_TRY = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))"
LOCK_WAIT_TIMEOUT = "SET LOCAL lock_timeout = '5s'"
LOCK_WAIT = "SELECT pg_advisory_lock(hashtextextended(%s, 0))"
"""Taken (under `LOCK_WAIT_TIMEOUT`) when only intents hold the thread's lock:
they commit in milliseconds, and a waiting exclusive request goes ahead of
new shared ones, so the rollback is not starved by a busy thread."""
LOCK_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(%s, 0))"
LOCK_HOLDER = """
SELECT a.pid, a.client_addr, a.application_name
FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock'
  AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(%s, 0)
LIMIT 1
"""
"""Who holds the thread exclusively (a rollback); no row when only intents
hold it, shared."""


# --- thread lifecycle (LangGraph's optional delete_for_runs / copy_thread) ------

RUN_ROOT_CHECKPOINTS = """
SELECT thread_id, checkpoint_id, parent_checkpoint_id FROM checkpoints
WHERE checkpoint_ns = '' AND metadata ->> 'run_id' = ANY(%s)
"""

EFFECTS_BASED_ON = """
SELECT effect_id, thread_id, base_checkpoint_id FROM lgrb_effects
WHERE thread_id = %s AND base_checkpoint_id = ANY(%s)
"""

SET_BASE = "UPDATE lgrb_effects SET base_checkpoint_id = %s WHERE effect_id = %s"

DELETE_FOR_RUNS = (
    """DELETE FROM checkpoint_writes AS w USING checkpoints AS c
    WHERE c.metadata ->> 'run_id' = ANY(%s) AND w.thread_id = c.thread_id
    AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id""",
    "DELETE FROM checkpoints WHERE metadata ->> 'run_id' = ANY(%s)",
)
"""Parameters: the run ids (a list). Blobs the deleted checkpoints used stay."""

COPY_THREAD = (
    """INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,
    parent_checkpoint_id, type, checkpoint, metadata)
    SELECT %s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
    checkpoint, metadata FROM checkpoints WHERE thread_id = %s
    ON CONFLICT DO NOTHING""",
    """INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version,
    type, blob)
    SELECT %s, checkpoint_ns, channel, version, type, blob
    FROM checkpoint_blobs WHERE thread_id = %s ON CONFLICT DO NOTHING""",
    """INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id,
    task_id, task_path, idx, channel, type, blob)
    SELECT %s, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,
    type, blob FROM checkpoint_writes WHERE thread_id = %s
    ON CONFLICT DO NOTHING""",
)
"""Parameters: target thread id, source thread id."""
