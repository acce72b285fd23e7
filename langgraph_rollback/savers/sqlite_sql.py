"""SQL text of the SQLite ledger: its migrations and statements.

The ledger lives in the same database file as LangGraph's `checkpoints` and
`writes` tables, in tables prefixed `lgrb_` so they never collide. There is
deliberately no foreign key to `checkpoints`: with `durability="async"` an
effect is recorded before its checkpoint is written, and with `"exit"` that
checkpoint never is.

`MIGRATIONS` is append-only: its index is the schema version, recorded in
`lgrb_migrations`. Never edit a released entry; add a new one.
"""

from __future__ import annotations

from langgraph_rollback.core.ledger import INSERT_COLUMNS
from langgraph_rollback.savers.sql import SELECT_COLUMNS, earlier_with_key

__all__ = [
    "HAS_VERSION_TABLE",
    "INSERT_AUDIT",
    "INSERT_INTENT",
    "INSERT_INTENT_IF_CLEAR",
    "MIGRATIONS",
    "SELECT_AUDIT",
    "SELECT_BY_ID",
    "VERSION_TABLE",
]

HAS_VERSION_TABLE = (
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lgrb_migrations'"
)

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS lgrb_migrations (
    v INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""

MIGRATIONS: list[str] = [
    # v0: the effects ledger.
    """
    CREATE TABLE IF NOT EXISTS lgrb_effects (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
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
        intent BLOB,
        outcome_type TEXT,
        outcome BLOB,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        completed_at TEXT,
        undo_type TEXT,
        undo BLOB,
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
    -- Planning walks checkpoints from a target down to its descendants.
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
        report BLOB
    );
    CREATE INDEX IF NOT EXISTS lgrb_rollbacks_thread
        ON lgrb_rollbacks (thread_id, started_at);
    -- One rollback per thread at a time (see `savers.sqlite_pipeline.lock_thread`).
    CREATE TABLE IF NOT EXISTS lgrb_locks (
        thread_id TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        acquired_at TEXT NOT NULL
    );
    """,
    # v1: the process performing an intent's call (so a live call is never
    # restarted or rolled back under it), and a lock holder's start time (so
    # a reused pid is not taken for a live holder).
    """
    ALTER TABLE lgrb_effects ADD COLUMN owner TEXT;
    ALTER TABLE lgrb_locks ADD COLUMN started TEXT;
    """,
    # v2: the audit trail, one row per human decision (`core.audit`).
    """
    CREATE TABLE IF NOT EXISTS lgrb_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
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
        value BLOB NOT NULL,
        since_seq INTEGER NOT NULL
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
    # those whose root checkpoint was not their base when recorded: a root
    # graph's step under durability "sync" writes one index page less per
    # intent. The (thread_id, root_checkpoint_id) index gains the call key, so a
    # resumed task finds its interrupted task's call under that task's
    # checkpoint by key (`core.replay._continued`), not among all its rows.
    """
    DROP INDEX IF EXISTS lgrb_effects_thread_root;
    CREATE INDEX IF NOT EXISTS lgrb_effects_thread_root_key
        ON lgrb_effects (thread_id, root_checkpoint_id, call_key);
    DROP INDEX IF EXISTS lgrb_effects_thread_key;
    CREATE INDEX IF NOT EXISTS lgrb_effects_thread_key_rerun
        ON lgrb_effects (thread_id, call_key)
        WHERE (checkpoint_ns <> '' OR base_checkpoint_id IS NOT root_checkpoint_id);
    """,
]

INSERT_AUDIT = (
    "INSERT OR IGNORE INTO lgrb_audit (audit_id, thread_id, at, entry) "
    "VALUES (?, ?, ?, ?)"
)
SELECT_AUDIT = (
    "SELECT audit_id, thread_id, at, entry FROM lgrb_audit WHERE thread_id = ? "
    "ORDER BY seq DESC LIMIT ?"
)

OTHER_WITH_KEY = f"SELECT 1 WHERE {earlier_with_key()}"
"""Whether another effect of the thread with this call key may be an earlier
record of the call (`BeginIfNewKey`). Parameters: the thread id, call key
and effect id."""

_INTENT_COLUMNS = f"{', '.join(INSERT_COLUMNS)}, base_checkpoint_id"
_BASE = """COALESCE(?, (
    SELECT checkpoint_id FROM checkpoints
    WHERE thread_id = ? AND checkpoint_ns = ''
    ORDER BY checkpoint_id DESC LIMIT 1
))"""
"""An intent's base: the row's, else the thread's newest stored root checkpoint."""

INSERT_INTENT = f"""
INSERT INTO lgrb_effects ({_INTENT_COLUMNS})
VALUES ({", ".join("?" for _ in INSERT_COLUMNS)}, {_BASE})
ON CONFLICT (effect_id) DO NOTHING
RETURNING seq, base_checkpoint_id
"""
"""Insert an intent. Its base is the checkpoint the run was started from when
the run named one (a fork), else the thread's newest stored root checkpoint,
read in the same statement. Parameters: `INSERT_COLUMNS` values, the row's
`base_checkpoint_id` (or None), then the thread id."""

_IF_CLEAR = f"""CASE WHEN NOT EXISTS (SELECT 1 FROM lgrb_locks WHERE thread_id = ?)
AND (NOT ? OR NOT {earlier_with_key()}) THEN ? END"""

INSERT_INTENT_IF_CLEAR = f"""
INSERT OR IGNORE INTO lgrb_effects ({_INTENT_COLUMNS})
VALUES ({", ".join(_IF_CLEAR if c == "effect_id" else "?" for c in INSERT_COLUMNS)},
{_BASE})
RETURNING seq, base_checkpoint_id
"""
"""`INSERT_INTENT` when nothing stands in the intent's way, in one
statement: no lock row names the thread and, when asked, no other effect of
the thread with the call key may be an earlier record of the call. Else
(and when the effect id is recorded already, or a value breaks a
constraint) the effect id is left NULL and nothing is inserted; the
pipeline then asks each on its own (`savers.sqlite_pipeline`). Parameters:
`INSERT_INTENT`'s, with the effect id's place taken by the thread id,
whether to check the key, the thread id, call key and effect id, and the
effect id. (A `CASE` in `VALUES`: an `INSERT ... SELECT ... WHERE` reads the
table it writes through a temporary table.)"""

SELECT_BY_ID = f"SELECT {SELECT_COLUMNS} FROM lgrb_effects WHERE effect_id = ?"

_COPIES = "json_extract(CAST({t}metadata AS TEXT), '$.lgrb_restore.copies')"
_META = (
    "json_extract(CAST({t}metadata AS TEXT), '$.source'), "
    "json_extract(CAST({t}metadata AS TEXT), '$.step'), "
    "json_extract(CAST({t}metadata AS TEXT), '$.run_id')"
)

SELECT_HEAD = """
SELECT checkpoint_id FROM checkpoints
WHERE thread_id = ? AND checkpoint_ns = ''
ORDER BY checkpoint_id DESC LIMIT 1
"""

FIND_CHECKPOINT = """
SELECT DISTINCT thread_id FROM checkpoints
WHERE checkpoint_ns = '' AND checkpoint_id = ? LIMIT 10
"""

FIND_NAMESPACE = """
SELECT DISTINCT checkpoint_ns FROM checkpoints
WHERE thread_id = ? AND checkpoint_id = ? AND checkpoint_ns != ''
ORDER BY checkpoint_ns LIMIT 10
"""

FIND_EFFECT = "SELECT thread_id FROM lgrb_effects WHERE effect_id = ? LIMIT 1"

FIND_RUN = (
    "SELECT DISTINCT thread_id FROM lgrb_effects WHERE run_id = ? ORDER BY thread_id"
)

ANCESTRY = f"""
WITH RECURSIVE chain (checkpoint_id, parent_id, copies, source, step, run_id, depth)
AS (
    SELECT checkpoint_id, parent_checkpoint_id, {_COPIES.format(t="")},
           {_META.format(t="")}, 0
    FROM checkpoints
    WHERE thread_id = :thread AND checkpoint_ns = '' AND checkpoint_id = :start
    UNION ALL
    SELECT c.checkpoint_id, c.parent_checkpoint_id, {_COPIES.format(t="c.")},
           {_META.format(t="c.")}, chain.depth + 1
    FROM checkpoints AS c JOIN chain ON c.checkpoint_id = chain.parent_id
    WHERE c.thread_id = :thread AND c.checkpoint_ns = ''
      AND chain.checkpoint_id != :stop
      AND (
        chain.copies IS NULL
        OR NOT EXISTS (SELECT 1 FROM json_each(chain.copies) WHERE value = :stop)
      )
)
SELECT checkpoint_id, parent_id, copies, source, step, run_id
FROM chain ORDER BY depth
"""
"""Walk up from `:start`; the row for `:stop` (or a copy of it) is the last."""

UPDATED_FROM = """
WITH RECURSIVE up (checkpoint_id, parent_id, source, depth) AS (
    SELECT checkpoint_id, parent_checkpoint_id,
           json_extract(CAST(metadata AS TEXT), '$.source'), 0
    FROM checkpoints
    WHERE thread_id = :thread AND checkpoint_ns = '' AND checkpoint_id = :start
    UNION ALL
    SELECT c.checkpoint_id, c.parent_checkpoint_id,
           json_extract(CAST(c.metadata AS TEXT), '$.source'), up.depth + 1
    FROM checkpoints AS c JOIN up ON c.checkpoint_id = up.parent_id
    WHERE c.thread_id = :thread AND c.checkpoint_ns = '' AND up.source = 'update'
)
SELECT checkpoint_id, source FROM up ORDER BY depth
"""
"""`:start` and, while they are `update_state` checkpoints, their ancestors."""

SUBTREE = f"""
WITH RECURSIVE sub (checkpoint_id, parent_id, copies) AS (
    SELECT checkpoint_id, parent_checkpoint_id, {_COPIES.format(t="")}
    FROM checkpoints
    WHERE thread_id = :thread AND checkpoint_ns = '' AND checkpoint_id = :root
    UNION ALL
    SELECT c.checkpoint_id, c.parent_checkpoint_id, {_COPIES.format(t="c.")}
    FROM checkpoints AS c JOIN sub ON c.parent_checkpoint_id = sub.checkpoint_id
    WHERE c.thread_id = :thread AND c.checkpoint_ns = ''
)
SELECT checkpoint_id, parent_id, copies FROM sub
"""

NAMESPACE_STATES = """
SELECT checkpoint_ns, checkpoint_id,
       json_extract(CAST(metadata AS TEXT), '$.parents.""')
FROM checkpoints
WHERE thread_id = ? AND checkpoint_ns != '' AND instr(checkpoint_ns, ':') = 0
"""
"""Checkpoints of persistent subgraph namespaces, with their root checkpoint."""

EXISTING = """
SELECT checkpoint_id FROM checkpoints
WHERE thread_id = ? AND checkpoint_ns = ''
  AND checkpoint_id IN (SELECT value FROM json_each(?))
"""

MARK_RESTORED = """
UPDATE lgrb_rollbacks SET restored_checkpoint_id = ?, status = 'restored'
WHERE rollback_id = ?
"""
"""Runs in the same transaction as the restored head's checkpoint insert."""

INSERT_CHECKPOINT = (
    "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
    "parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
"""Upstream's checkpoint insert (langgraph checkpoint-sqlite 3.1 `put`)."""

_WRITE_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, "
    "type, value"
)
UPSERT_WRITES = f"INSERT OR REPLACE INTO writes ({_WRITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
"""Upstream's `put_writes` statement when every write is a special channel."""
INSERT_WRITES = f"INSERT OR IGNORE INTO writes ({_WRITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
"""Upstream's `put_writes` statement otherwise (checkpoint-sqlite 3.1)."""

_CHECKPOINT_COLUMNS = (
    "thread_id, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata"
)

SELECT_CHECKPOINT_BY_ID = (
    f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints "
    "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
)
"""Upstream's `aget_tuple` statement for a given checkpoint id."""

SELECT_LATEST_CHECKPOINT = (
    f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints "
    "WHERE thread_id = ? AND checkpoint_ns = ? ORDER BY checkpoint_id DESC LIMIT 1"
)
"""Upstream's `aget_tuple` statement for a thread's latest checkpoint."""

SELECT_CHECKPOINTS = (
    "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
    "checkpoint, metadata FROM checkpoints"
)
"""Upstream's `alist` statement, before its `WHERE` and `ORDER BY`."""

LOCK_HOLDER = "SELECT holder, host, pid, started FROM lgrb_locks WHERE thread_id = ?"
LOCK_RELEASE = "DELETE FROM lgrb_locks WHERE thread_id = ? AND holder = ?"
LOCK_BREAK = "DELETE FROM lgrb_locks WHERE thread_id = ?"
LOCK_TAKE = (
    "INSERT OR IGNORE INTO lgrb_locks (thread_id, holder, host, pid, acquired_at, "
    "started) VALUES (?, ?, ?, ?, ?, ?)"
)

SAVE_ROLLBACK = """
INSERT INTO lgrb_rollbacks (
    rollback_id, thread_id, target_checkpoint_id, head_checkpoint_id,
    restored_checkpoint_id, status, started_at, finished_at, report_type, report
) VALUES (
    :rollback_id, :thread_id, :target_checkpoint_id, :head_checkpoint_id,
    :restored_checkpoint_id, :status, :started_at, :finished_at, :report_type,
    :report
)
ON CONFLICT (rollback_id) DO UPDATE SET
    head_checkpoint_id = excluded.head_checkpoint_id,
    restored_checkpoint_id = excluded.restored_checkpoint_id,
    status = excluded.status,
    finished_at = excluded.finished_at,
    report_type = excluded.report_type,
    report = excluded.report
"""


# --- thread lifecycle (LangGraph's optional delete_for_runs / copy_thread / prune)

_RUN_CHECKPOINTS = (
    "SELECT thread_id, checkpoint_ns, checkpoint_id FROM checkpoints "
    "WHERE json_extract(CAST(metadata AS TEXT), '$.run_id') "
    "IN (SELECT value FROM json_each(?))"
)

RUN_ROOT_CHECKPOINTS = (
    "SELECT thread_id, checkpoint_id, parent_checkpoint_id FROM checkpoints "
    "WHERE checkpoint_ns = '' AND json_extract(CAST(metadata AS TEXT), '$.run_id') "
    "IN (SELECT value FROM json_each(?))"
)
"""The root checkpoints `delete_for_runs` deletes, with their parents."""

EFFECTS_BASED_ON = """
SELECT effect_id, thread_id, base_checkpoint_id FROM lgrb_effects
WHERE thread_id = ? AND base_checkpoint_id IN (SELECT value FROM json_each(?))
"""

SET_BASE = "UPDATE lgrb_effects SET base_checkpoint_id = ? WHERE effect_id = ?"

DELETE_FOR_RUNS = (
    f"DELETE FROM writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN ({_RUN_CHECKPOINTS})",
    f"DELETE FROM checkpoints WHERE (thread_id, checkpoint_ns, checkpoint_id) IN ({_RUN_CHECKPOINTS})",
)
"""Parameters: the run ids as one JSON array."""

COPY_THREAD = (
    "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
    "parent_checkpoint_id, type, checkpoint, metadata) SELECT ?, checkpoint_ns, "
    "checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
    "FROM checkpoints WHERE thread_id = ?",
    "INSERT OR REPLACE INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
    "task_path, idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, "
    "task_id, task_path, idx, channel, type, value FROM writes WHERE thread_id = ?",
)
"""Parameters: target thread id, source thread id."""

PRUNE_DELETE = (
    "DELETE FROM writes WHERE thread_id IN (SELECT value FROM json_each(?))",
    "DELETE FROM checkpoints WHERE thread_id IN (SELECT value FROM json_each(?))",
)

PRUNE_DELTA_THREADS = """
SELECT DISTINCT thread_id FROM checkpoints
WHERE thread_id IN (SELECT value FROM json_each(?)) AND (
    json_extract(CAST(metadata AS TEXT), '$.counters_since_delta_snapshot') IS NOT NULL
    OR json_extract(CAST(metadata AS TEXT), '$.delta_writes_versioned') IS NOT NULL
)
"""
"""Threads that use a `DeltaChannel` (its counters live in checkpoint metadata)."""

_PRUNE_HEADS = """
SELECT checkpoint_ns, max(checkpoint_id) FROM checkpoints
WHERE thread_id = :thread GROUP BY checkpoint_ns
"""

PRUNE_KEEP_LATEST = (
    f"""DELETE FROM writes WHERE thread_id = :thread
    AND (checkpoint_ns, checkpoint_id) NOT IN ({_PRUNE_HEADS})""",
    f"""DELETE FROM checkpoints WHERE thread_id = :thread
    AND (checkpoint_ns, checkpoint_id) NOT IN ({_PRUNE_HEADS})""",
    "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = :thread",
)
"""Keep each namespace's latest checkpoint (and its writes); it loses its parent."""
