"""Fixtures of the battery tests: one real SQLite ledger per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from langgraph_rollback import SqliteRollbackSaver, ToolRegistry


@pytest.fixture
def ledger(registry: ToolRegistry, tmp_path: Path) -> Iterator[SqliteRollbackSaver]:
    """A SQLite rollback saver on a file beside the test's workspace."""
    with SqliteRollbackSaver.from_conn_string(
        str(tmp_path / "ledger.sqlite"), registry=registry
    ) as saver:
        yield saver
