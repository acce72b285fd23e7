"""The savers: LangGraph's own checkpointers, each extended with the ledger.

- `base`: `BaseRollbackSaver`, the ledger half every saver mixes in, and its
  one door to storage (`execute` / `aexecute`);
- `memory`: `InMemoryRollbackSaver` (tests, notebooks);
- `sqlite`, `aio_sqlite`: the embedded default, sharing `sqlite_pipeline`
  and `sqlite_sql`;
- `aio_postgres` (and `postgres`, generated from it), with `postgres_sql`;
- `kept` (tool outcomes that travel with the next write), `bridges` (the
  other API flavour), `lifecycle` (delete, copy, prune), `locking`, `sql`.
"""
