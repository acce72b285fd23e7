"""The git workspace battery restores bytes, nested repositories and leaves the
user's repository alone, on every kind of checkout (issue 18)."""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import SqliteRollbackSaver, ToolRegistry, rollback
from langgraph_rollback.batteries.git import GitWorkspace
from tests.batteries.test_git import git

CFG: Any = {"configurable": {"thread_id": "git"}}


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` outside .git directories, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def one_step(
    saver: SqliteRollbackSaver, workspace: GitWorkspace, edit: Callable[[], None]
) -> Any:
    @workspace.step
    def agent_edits(state: Log) -> Log:
        edit()
        return {"log": ["edited"]}

    builder = StateGraph(Log)
    builder.add_node(agent_edits)
    builder.add_edge(START, "agent_edits")
    builder.add_edge("agent_edits", END)
    return builder.compile(checkpointer=saver)


def run_and_roll_back(graph: Any) -> Any:
    graph.invoke({"log": []}, CFG, durability="sync")
    first = list(graph.get_state_history(CFG))[-1]
    return rollback(graph, CFG, to=first)


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q")
    (root / "app.py").write_text("print('hi')\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


@pytest.fixture
def nested(tmp_path: Path) -> tuple[Path, Path]:
    outer = make_repo(tmp_path / "outer")
    inner = make_repo(outer / "vendor" / "lib")
    (inner / "lib.py").write_text("VERSION = 1\n")
    git(inner, "add", "-A")
    git(inner, "commit", "-q", "-m", "lib")
    return outer, inner


def inner_git(inner: Path) -> dict[str, Any]:
    return {
        "head": git(inner, "rev-parse", "HEAD"),
        "index": (inner / ".git" / "index").read_bytes(),
        "refs": git(inner, "for-each-ref"),
    }


def test_edits_inside_a_nested_repository_are_restored(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, nested: tuple[Path, Path]
) -> None:
    outer, inner = nested
    before, before_inner = files(outer), inner_git(inner)

    def edit() -> None:
        (inner / "lib.py").write_text("VERSION = 2\n")
        (inner / "new.py").write_text("added inside the nested repository\n")
        (inner / "app.py").unlink()

    report = run_and_roll_back(
        one_step(ledger, GitWorkspace(outer, registry=registry), edit)
    )
    assert report.ok, str(report)
    assert files(outer) == before
    assert inner_git(inner) == before_inner
    assert "nested" not in str(report)  # nothing of the nested repository moved


def test_a_commit_in_a_nested_repository_is_left_and_reported(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, nested: tuple[Path, Path]
) -> None:
    outer, inner = nested
    before = files(outer)

    def edit() -> None:
        (inner / "lib.py").write_text("VERSION = 2\n")
        git(inner, "commit", "-q", "-am", "the agent commits")

    report = run_and_roll_back(
        one_step(ledger, GitWorkspace(outer, registry=registry), edit)
    )
    assert report.ok, str(report)
    assert files(outer) == before  # the working-tree files are back
    assert git(inner, "log", "--format=%s", "-1").strip() == "the agent commits"
    assert "vendor/lib" in str(report) and "HEAD" in str(report)


def test_a_crlf_file_under_text_auto_comes_back_byte_identical(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / ".gitattributes").write_text("* text=auto\n")
    (repo / "dos.txt").write_bytes(b"line one\r\nline two\r\n")
    (repo / "mixed.txt").write_bytes(b"lf\ncrlf\r\n")
    before = files(repo)

    def edit() -> None:
        (repo / "dos.txt").write_bytes(b"rewritten\n")
        (repo / "mixed.txt").unlink()

    report = run_and_roll_back(
        one_step(ledger, GitWorkspace(repo, registry=registry), edit)
    )
    assert report.ok, str(report)
    assert files(repo) == before


def checkout(kind: str, tmp_path: Path) -> tuple[Path, Path]:
    """A repository and the directory a workspace is made on: its root, a
    subdirectory or a linked worktree."""
    repo = make_repo(tmp_path / "repo")
    (repo / "sub").mkdir()
    (repo / "sub" / "mod.py").write_text("X = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sub")
    if kind == "root":
        return repo, repo
    if kind == "subdirectory":
        return repo, repo / "sub"
    git(repo, "worktree", "add", "-q", str(tmp_path / "linked"), "-b", "linked")
    return tmp_path / "linked", tmp_path / "linked"


@pytest.mark.parametrize("kind", ["root", "subdirectory", "worktree"])
def test_the_snapshot_store_never_shows_in_git_status(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path, kind: str
) -> None:
    repo, work = checkout(kind, tmp_path)
    status = git(repo, "status", "--porcelain", "--untracked-files=all", "--ignored")
    workspace = GitWorkspace(work, registry=registry)
    report = run_and_roll_back(
        one_step(ledger, workspace, lambda: (work / "mod.py").write_text("edited\n"))
    )
    assert report.ok, str(report)
    assert (
        git(repo, "status", "--porcelain", "--untracked-files=all", "--ignored")
        == status
    )
    common = git(work, "rev-parse", "--path-format=absolute", "--git-common-dir")
    assert workspace.git_dir.is_relative_to(Path(common.strip()))


OWN_NOTE = "the repository's own"


@pytest.mark.parametrize("kind", ["root", "subdirectory", "worktree"])
def test_an_index_refreshed_by_git_status_is_not_reported_as_staging(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path, kind: str
) -> None:
    repo, work = checkout(kind, tmp_path)
    graph = one_step(
        ledger,
        GitWorkspace(work, registry=registry),
        lambda: (work / "new.py").write_text("added\n"),
    )
    graph.invoke({"log": []}, CFG, durability="sync")
    index = Path(git(repo, "rev-parse", "--absolute-git-dir").strip()) / "index"
    was = index.read_bytes()
    os.utime(repo / "app.py", (1_000_000_000, 1_000_000_000))  # content unchanged
    git(repo, "update-index", "-q", "--refresh")  # as `git status` does
    assert index.read_bytes() != was  # the file times cached in it changed
    report = rollback(graph, CFG, to=list(graph.get_state_history(CFG))[-1])
    assert report.ok, str(report)
    assert not (work / "new.py").exists()
    assert OWN_NOTE not in str(report)


@pytest.mark.parametrize("kind", ["root", "subdirectory", "worktree"])
def test_what_the_step_staged_is_left_and_reported(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path, kind: str
) -> None:
    repo, work = checkout(kind, tmp_path)

    def edit() -> None:
        (repo / "app.py").write_text("print('staged')\n")
        git(repo, "add", "app.py")

    report = run_and_roll_back(
        one_step(ledger, GitWorkspace(work, registry=registry), edit)
    )
    assert report.ok, str(report)
    assert "print('staged')" in git(repo, "show", ":app.py")  # still staged
    assert f"{OWN_NOTE} index differs from before the step" in str(report)


def test_modes_empty_directories_and_force_added_files_come_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    # Found in the adversarial pass: what a git tree does not keep.
    repo = make_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text("*.gen\n")
    (repo / "forced.gen").write_text("tracked although ignored\n")
    git(repo, "add", "-f", "forced.gen")
    (repo / "secret.txt").write_text("s")
    (repo / "secret.txt").chmod(0o600)
    (repo / "empty").mkdir()
    picture = {**files(repo), "mode": (repo / "secret.txt").stat().st_mode}

    def edit() -> None:
        (repo / "secret.txt").chmod(0o644)
        (repo / "forced.gen").write_text("edited by the agent\n")
        (repo / "empty").rmdir()
        (repo / "made").mkdir()

    report = run_and_roll_back(
        one_step(ledger, GitWorkspace(repo, registry=registry), edit)
    )
    assert report.ok, str(report)
    assert {**files(repo), "mode": (repo / "secret.txt").stat().st_mode} == picture
    assert (repo / "empty").is_dir() and not (repo / "made").exists()


def test_restoring_a_snapshot_older_than_ignored_files_keeps_them(
    tmp_path: Path,
) -> None:
    """A snapshot of the format that left ignored files out (no mark in its
    manifest) does not hold a `.env`: restoring it must not remove one."""
    from langgraph_rollback.batteries import _git_plumbing as plumbing
    from langgraph_rollback.batteries import git as battery

    repo = make_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text(".env\n")
    workspace = GitWorkspace(repo)
    work_tree, store = str(workspace.work_tree), str(workspace.git_dir)
    plumbing.ensure_store(work_tree, store)
    index = str(tmp_path / "old-index")
    listed = plumbing.git(
        work_tree,
        store,
        "ls-files",
        "--others",
        "--exclude-standard",
        "-z",
        index=index,
    )
    plumbing.git(
        work_tree,
        store,
        "update-index",
        "--add",
        "-z",
        "--stdin",
        stdin=listed,
        index=index,
    )
    tree = plumbing.git(work_tree, store, "write-tree", index=index).decode().strip()
    old = plumbing.git(work_tree, store, "commit-tree", tree, "-m", "snapshot")
    (repo / ".env").write_text("TOKEN=secret\n")
    (repo / "new.txt").write_text("made after the snapshot\n")
    done = battery.restore(work_tree, store, old.decode().strip())
    assert (repo / ".env").read_text() == "TOKEN=secret\n"
    assert not (repo / "new.txt").exists()
    assert done["files"] >= 1
