"""A step and its rollback leave the user's repository byte for byte as it was:
status, index, refs, hooks and config, on a repository with hooks installed, in
its root, in a subdirectory and in a linked worktree."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from langgraph_rollback import SqliteRollbackSaver, ToolRegistry
from langgraph_rollback.batteries.git import GitWorkspace
from tests.batteries.test_git import git
from tests.batteries.test_git_regressions import files, one_step, run_and_roll_back

HOOKS = (
    "pre-commit",
    "post-commit",
    "post-checkout",
    "post-index-change",
    "reference-transaction",
)


def install_hooks(repo: Path, marker: Path) -> None:
    for name in HOOKS:
        hook = repo / ".git" / "hooks" / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        hook.chmod(0o755)


def user_repository(repo: Path, work: Path) -> dict[str, Any]:
    """Everything of the user's repository a battery must never change.

    The index files are read before `git status` runs (status may refresh
    them itself).
    """
    common = Path(
        git(work, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()
    )
    own = Path(git(work, "rev-parse", "--absolute-git-dir").strip())
    packed = common / "packed-refs"
    return {
        "index": (common / "index").read_bytes(),
        "own index": (own / "index").read_bytes(),
        "HEAD": (own / "HEAD").read_bytes(),
        "refs": git(repo, "for-each-ref"),
        "packed-refs": packed.read_bytes() if packed.exists() else None,
        "hooks": {p.name: p.read_bytes() for p in sorted((common / "hooks").iterdir())},
        "config": (common / "config").read_bytes(),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "status": git(
            work,
            "-c",
            f"core.hooksPath={os.devnull}",  # the test's own status runs no hook
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--ignored",
        ),
    }


@pytest.fixture(params=["root", "subdirectory", "worktree"])
def checkout(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(repository, workspace directory, hook marker) for each kind of checkout."""
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "app.py").write_text("A = 1\n")
    (repo / "sub" / "mod.py").write_text("B = 1\n")
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    git(repo, "pack-refs", "--all")
    (repo / "sub" / "mod.py").write_text("B = 'staged'\n")
    git(repo, "add", "sub/mod.py")  # something in the user's index
    (repo / "sub" / "notes.txt").write_text("untracked\n")
    (repo / "sub" / "debug.log").write_text("ignored\n")
    marker = tmp_path / "hooks-ran.txt"
    if request.param == "worktree":
        git(repo, "worktree", "add", "-q", str(tmp_path / "linked"), "-b", "linked")
        (tmp_path / "linked" / "sub" / "notes.txt").write_text("untracked\n")
        install_hooks(repo, marker)
        return repo, tmp_path / "linked", marker
    install_hooks(repo, marker)
    return repo, (repo if request.param == "root" else repo / "sub"), marker


def test_a_step_and_its_rollback_leave_the_users_repository_byte_identical(
    ledger: SqliteRollbackSaver,
    registry: ToolRegistry,
    checkout: tuple[Path, Path, Path],
) -> None:
    repo, work, marker = checkout
    before_files, before_repo = files(work), user_repository(repo, work)

    def edit() -> None:
        target = work / "sub" / "mod.py" if (work / "sub").exists() else work / "mod.py"
        target.write_text("edited by the agent\n")
        (work / "new.txt").write_text("added\n")
        (
            work / "notes.txt"
            if (work / "notes.txt").exists()
            else work / "sub" / "notes.txt"
        ).unlink()

    workspace = GitWorkspace(work, registry=registry)
    graph = one_step(ledger, workspace, edit)
    report = run_and_roll_back(graph)
    assert report.ok, str(report)
    assert files(work) == before_files
    assert user_repository(repo, work) == before_repo
    assert not marker.exists(), marker.read_text()
