"""Storage backends: LangGraph savers extended with the side-effect ledger.

- `memory`: `InMemoryRollbackSaver` (tests, notebooks),
- `sqlite`: `SqliteRollbackSaver` (the embedded default),
- `base`: `BaseRollbackSaver`, the contract every backend implements.
"""
