"""`langgraph_rollback.server.checkpointer` picks its saver from one variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from langgraph_rollback import AsyncSqliteRollbackSaver
from langgraph_rollback.server import UNDO_ENV, URI_ENV, ServerConfigError, checkpointer


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        (None, "is not set"),
        ("", "is not set"),
        (":memory:", "in-memory"),
        ("mysql://h/db", "'mysql'"),
    ],
)
async def test_a_missing_or_unusable_uri_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, uri: str | None, says: str
) -> None:
    if uri is None:
        monkeypatch.delenv(URI_ENV, raising=False)
    else:
        monkeypatch.setenv(URI_ENV, uri)
    with pytest.raises(ServerConfigError, match=says) as info:
        async with checkpointer():
            pass
    assert "Fix:" in str(info.value)


async def test_a_sqlite_path_opens_a_set_up_saver_that_undoes_deleted_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(URI_ENV, str(tmp_path / "r.sqlite"))
    async with checkpointer() as saver:
        assert isinstance(saver, AsyncSqliteRollbackSaver)
        assert saver.undo_deleted_runs
        assert await saver.alist_effects({"configurable": {"thread_id": "t"}}) == []
    assert (tmp_path / "r.sqlite").exists()
    monkeypatch.setenv(UNDO_ENV, "false")
    async with checkpointer() as saver:
        assert not saver.undo_deleted_runs


async def test_a_postgres_url_opens_the_postgres_saver(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    from langgraph_rollback.postgres import AsyncPostgresRollbackSaver

    monkeypatch.setenv(URI_ENV, pg_url)
    async with checkpointer() as saver:
        assert isinstance(saver, AsyncPostgresRollbackSaver)
        assert await saver.alist_effects({"configurable": {"thread_id": "t"}}) == []
