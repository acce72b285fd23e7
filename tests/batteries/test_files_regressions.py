"""The file battery restores exactly what was there, or refuses (issue 18)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from langgraph_rollback import SqliteRollbackSaver, ToolRegistry, rollback
from langgraph_rollback.batteries.files import file_tools
from tests.batteries.test_files import agent

CFG: Any = {"configurable": {"thread_id": "files"}}


def tree(root: Path) -> dict[str, Any]:
    """Every entry under `root`, without following links: bytes, 'dir' or a link."""
    found: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = "dir"
            else:
                found[key] = (path.read_bytes(), path.stat().st_mode & 0o7777)
    return found


def run_then_roll_back(
    saver: SqliteRollbackSaver,
    registry: ToolRegistry,
    root: Path,
    turns: list[list[tuple[str, dict[str, Any]]]],
    **options: Any,
) -> Any:
    graph = agent(saver, file_tools(root, registry=registry), turns)
    graph.invoke({"messages": []}, CFG, durability="sync")
    first = list(graph.get_state_history(CFG))[-1]
    return rollback(graph, CFG, to=first, **options)


def test_a_move_into_an_existing_directory_leaves_nothing_behind(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    (root / "archive").mkdir(parents=True)
    (root / "a.txt").write_text("moved into a directory")
    before = tree(root)
    turns = [[("move_file", {"source": "a.txt", "destination": "archive"})]]
    report = run_then_roll_back(ledger, registry, root, turns)
    assert report.ok, str(report)
    assert tree(root) == before


def test_a_write_then_a_move_of_the_same_file_rolls_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.txt").write_text("original")
    before = tree(root)
    turns = [
        [("write_file", {"path": "a.txt", "content": "edited"})],
        [("move_file", {"source": "a.txt", "destination": "b.txt"})],
    ]
    report = run_then_roll_back(ledger, registry, root, turns)
    assert report.status == "completed", str(report)
    assert tree(root) == before


def test_a_move_onto_a_file_written_earlier_rolls_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.txt").write_text("source")
    before = tree(root)
    turns = [
        [("write_file", {"path": "b.txt", "content": "written first"})],
        [("move_file", {"source": "a.txt", "destination": "b.txt"})],
        [("append_file", {"path": "b.txt", "content": "+appended"})],
    ]
    report = run_then_roll_back(ledger, registry, root, turns)
    assert report.status == "completed", str(report)
    assert tree(root) == before


def test_directories_a_write_created_are_removed(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    (root / "kept").mkdir(parents=True)
    before = tree(root)
    turns = [
        [("write_file", {"path": "a/b/c.txt", "content": "deep"})],
        [("write_file", {"path": "kept/new/d.txt", "content": "under a kept dir"})],
        [("make_directory", {"path": "x/y/z"})],
    ]
    report = run_then_roll_back(ledger, registry, root, turns)
    assert report.ok, str(report)
    assert tree(root) == before


def test_a_created_directory_that_holds_someone_elses_file_stays(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    graph = agent(
        ledger,
        file_tools(root, registry=registry),
        [[("write_file", {"path": "a/b/c.txt", "content": "agent"})]],
    )
    graph.invoke({"messages": []}, CFG, durability="sync")
    (root / "a" / "human.txt").write_text("a human's file")
    first = list(graph.get_state_history(CFG))[-1]
    report = rollback(graph, CFG, to=first)
    # The human's file is never removed, and the rollback says it could not
    # remove the directory that holds it, with the fix.
    assert report.status == "failed", str(report)
    assert tree(root) == {"a": "dir", "a/human.txt": (b"a human's file", 0o644)}
    assert "DirectoryNotEmptyError" in str(report) and "human.txt" in str(report)
    (root / "a" / "human.txt").rename(tmp_path / "human.txt")
    assert rollback(graph, CFG, to=first).ok, "the rerun continues where it stopped"
    assert tree(root) == {}


def test_a_forced_undo_never_follows_a_directory_swapped_for_a_link(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "f.txt").write_text("not the agent's")
    graph = agent(
        ledger,
        file_tools(root, registry=registry),
        [[("write_file", {"path": "sub/f.txt", "content": "agent"})]],
    )
    graph.invoke({"messages": []}, CFG, durability="sync")
    (root / "sub" / "f.txt").unlink()
    (root / "sub").rmdir()
    (root / "sub").symlink_to(outside)  # swapped in after the call
    first = list(graph.get_state_history(CFG))[-1]
    report = rollback(graph, CFG, to=first, on_conflict="force")
    assert (outside / "f.txt").read_text() == "not the agent's"
    assert not report.ok
    (failure,) = report.failures
    assert "symbolic link" in failure.error


def test_a_forced_undo_replaces_a_swapped_in_file_link_not_its_target(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside.txt"
    root.mkdir()
    (root / "f.txt").write_text("before")
    outside.write_text("not the agent's")
    graph = agent(
        ledger,
        file_tools(root, registry=registry),
        [[("write_file", {"path": "f.txt", "content": "agent"})]],
    )
    graph.invoke({"messages": []}, CFG, durability="sync")
    (root / "f.txt").unlink()
    (root / "f.txt").symlink_to(outside)
    first = list(graph.get_state_history(CFG))[-1]
    report = rollback(graph, CFG, to=first, on_conflict="force")
    assert report.ok, str(report)
    assert outside.read_text() == "not the agent's"
    assert tree(root) == {"f.txt": (b"before", 0o644)}


def test_a_deleted_entry_whose_name_a_later_write_made_a_directory_rolls_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    # Found by the property test: the directory a write creates is an effect
    # on its own path, so the earlier delete of that path chains through it.
    root = tmp_path / "ws"
    root.mkdir()
    (root / "x").write_text("a file named x")
    before = tree(root)
    turns = [
        [("delete_file", {"path": "x"})],
        [("write_file", {"path": "x/inside.txt", "content": "x is a directory now"})],
    ]
    report = run_then_roll_back(ledger, registry, root, turns)
    assert report.ok, str(report)
    assert tree(root) == before
