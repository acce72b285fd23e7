"""The I/O-free core: what a rollback saver does, with no storage and no LangGraph internals.

- `ops`: the operations flows yield (`StorageOp` and user-code operations);
- `store`: the protocols every saver implements (`execute` / `aexecute`)
  and the fault points it reports;
- `ledger`, `codec`, `query`, `identity`: ledger rows, their payloads, the
  filters that read them, effect ids;
- `record`, `plan`, `execute`, `targets`: the flows (record a tool call,
  plan a rollback, carry it out, pick a target);
- `report`, `registry`, `task`, `locks`, `config`: the data they use.

Nothing here opens a connection, reads a file, or imports a saver: the
drivers (`langgraph_rollback.drivers`) run the flows against a saver.
"""
