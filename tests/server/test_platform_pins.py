"""Pins what `langgraph_rollback.server._platform` reads from `langgraph_api`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import inspect, json, os
os.environ.setdefault("REDIS_URI", "fake")
os.environ.setdefault("DATABASE_URI", ":memory:")
os.environ.setdefault("MIGRATIONS_PATH", "__inmem")
from langgraph_api._checkpointer import get_checkpointer
from langgraph_api._checkpointer._adapter import _CustomCheckpointerAdapter
from langgraph_api.auth.custom import handle_event
from langgraph_api.graph import get_graph
from langgraph_api.store import get_store
from langgraph_rollback import InMemoryRollbackSaver
from langgraph_rollback._langgraph import find_saver
from langgraph_api._checkpointer._adapter import CheckpointerCapabilities
inner = InMemoryRollbackSaver()
adapter = _CustomCheckpointerAdapter(inner, CheckpointerCapabilities.from_type(type(inner)))
print(json.dumps({
    "get_checkpointer": inspect.iscoroutinefunction(get_checkpointer),
    "get_store": inspect.iscoroutinefunction(get_store),
    "handle_event": list(inspect.signature(handle_event).parameters),
    "get_graph": [
        p for p in inspect.signature(get_graph).parameters
        if p in ("graph_id", "config", "checkpointer", "store", "access_context")
    ],
    "inner_found": find_saver(adapter) is inner,
}))
"""


@pytest.mark.slow
def test_the_server_names_the_routes_use_are_there() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.splitlines()[-1]) == {
        "get_checkpointer": True,
        "get_store": True,
        "handle_event": ["ctx", "value"],
        "get_graph": ["graph_id", "config", "checkpointer", "store", "access_context"],
        "inner_found": True,
    }
