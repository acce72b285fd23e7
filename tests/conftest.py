from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from langgraph_rollback import (
    BaseRollbackSaver,
    InMemoryRollbackSaver,
    SqliteRollbackSaver,
    ToolRegistry,
)
from tests.world import World

SAVER_KINDS = ["memory", "sqlite"]


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "world")


@pytest.fixture(params=SAVER_KINDS)
def saver_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def saver(
    saver_kind: str, registry: ToolRegistry, tmp_path: Path
) -> Iterator[BaseRollbackSaver]:
    if saver_kind == "memory":
        yield InMemoryRollbackSaver(registry=registry)
    elif saver_kind == "sqlite":
        with SqliteRollbackSaver.from_conn_string(
            str(tmp_path / "ledger.sqlite"), registry=registry
        ) as s:
            yield s
    else:  # pragma: no cover
        raise AssertionError(saver_kind)
