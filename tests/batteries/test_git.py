"""The git workspace battery, on a real repository with thousands of files."""

from __future__ import annotations

import hashlib
import operator
import os
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    BaseRollbackSaver,
    EffectStatus,
    ToolRegistry,
    plan_rollback,
    rollback,
)
from langgraph_rollback.batteries.git import GitWorkspace
from tests.support.tools import build_tools
from tests.support.world import World

CFG: Any = {"configurable": {"thread_id": "git"}}


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "u",
            "GIT_AUTHOR_EMAIL": "u@x",
            "GIT_COMMITTER_NAME": "u",
            "GIT_COMMITTER_EMAIL": "u@x",
        },
    ).stdout


def tree_state(repo: Path) -> dict[str, str]:
    """Every file outside .git, with its content hash."""
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }


def users_git(repo: Path) -> dict[str, Any]:
    """What of the user's repository must never change."""
    git_dir = repo / ".git"
    return {
        "index": (git_dir / "index").read_bytes(),
        "refs": git(repo, "for-each-ref"),
        "hooks": sorted(p.name for p in (git_dir / "hooks").iterdir()),
        "status": git(
            repo, "status", "--porcelain", "--untracked-files=all", "--ignored"
        ),
        "config": (git_dir / "config").read_text(),
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    for i in range(3000):
        sub = root / f"pkg{i % 30}"
        sub.mkdir(exist_ok=True)
        (sub / f"mod{i}.py").write_text(f"VALUE = {i}\n")
    (root / ".gitignore").write_text("*.log\n")
    (root / "debug.log").write_text("ignored by the user's repo\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    (root / "pkg0" / "mod0.py").write_text("VALUE = 'staged'\n")
    git(root, "add", "pkg0/mod0.py")  # something in the user's index
    (root / "notes.txt").write_text("an untracked file of the user's\n")
    hook = root / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {root / 'HOOK_RAN'}\n")
    hook.chmod(0o755)
    return root


def graph_on(
    saver: BaseRollbackSaver,
    workspace: GitWorkspace,
    world: World,
    registry: ToolRegistry,
) -> Any:
    tools = build_tools(world, registry)

    @workspace.step
    def refactor(state: Log) -> Log:
        root = workspace.work_tree
        for i in range(100):
            (root / f"pkg{i % 30}" / f"mod{i}.py").write_text(f"VALUE = {i} * 2\n")
        (root / "pkg1" / "mod1.py").unlink()
        (root / "new_pkg" / "deep").mkdir(parents=True)
        (root / "new_pkg" / "deep" / "added.py").write_text("NEW = True\n")
        (root / "notes.txt").write_text("edited by the agent\n")
        tools.write_file("inside-step.txt", "recorded on its own")  # a declared tool
        return {"log": ["refactor"]}

    @workspace.step
    def cleanup(state: Log) -> Log:
        (workspace.work_tree / "pkg2" / "mod2.py").write_text("VALUE = 'cleaned'\n")
        (workspace.work_tree / "new_pkg" / "deep" / "added.py").unlink()
        return {"log": ["cleanup"]}

    builder = StateGraph(Log)
    builder.add_node(refactor)
    builder.add_node(cleanup)
    builder.add_edge(START, "refactor")
    builder.add_edge("refactor", "cleanup")
    builder.add_edge("cleanup", END)
    return builder.compile(checkpointer=saver)


def test_steps_are_snapshotted_and_restored(
    saver: BaseRollbackSaver, repo: Path, world: World, registry: ToolRegistry
) -> None:
    before_tree, before_git = tree_state(repo), users_git(repo)
    workspace = GitWorkspace(repo, registry=registry)
    graph = graph_on(saver, workspace, world, registry)
    started = time.perf_counter()
    graph.invoke({"log": []}, CFG, durability="sync")
    run_seconds = time.perf_counter() - started
    assert tree_state(repo) != before_tree
    effects = saver.list_effects(CFG)
    steps = [e for e in effects if e.tool == "git_workspace_step"]
    assert [e.args["label"] for e in steps] == ["cleanup", "refactor"]
    assert all(e.status is EffectStatus.APPLIED and e.after_observed for e in steps)
    assert steps[1].before["tree"] != steps[1].after["tree"]
    assert steps[0].before["tree"] == steps[1].after["tree"]
    # The declared tool called inside the step is still its own effect.
    assert [e.tool for e in effects if e.tool == "write_file"] == ["write_file"]
    assert world.count("forward", "write_file") == 1

    first = list(graph.get_state_history(CFG))[-1]
    started = time.perf_counter()
    report = rollback(graph, CFG, to=first)
    rollback_seconds = time.perf_counter() - started
    assert report.ok, str(report)
    assert tree_state(repo) == before_tree  # the tree, untracked files included
    assert users_git(repo) == before_git  # index, refs, hooks, status, config
    assert not (repo / "HOOK_RAN").exists()
    assert (repo / "debug.log").exists()  # ignored files are not the agent's to restore
    assert run_seconds < 60
    assert rollback_seconds < 60
    assert "restored the working tree of repo before step 'refactor'" in str(report)


def test_drift_after_the_step_is_a_conflict(
    saver: BaseRollbackSaver, repo: Path, world: World, registry: ToolRegistry
) -> None:
    workspace = GitWorkspace(repo, registry=registry)
    graph = graph_on(saver, workspace, world, registry)
    graph.invoke({"log": []}, CFG, durability="sync")
    (repo / "pkg5" / "mod5.py").write_text("VALUE = 'a human fixed this'\n")
    first = list(graph.get_state_history(CFG))[-1]
    plan = plan_rollback(graph, CFG, to=first)
    # The edit conflicts with every step that restoring would overwrite it with.
    assert [s.effect.args["label"] for s in plan.conflicts] == ["cleanup", "refactor"]
    assert rollback(graph, CFG, to=first).status == "aborted"
    forced = rollback(graph, CFG, to=first, on_conflict="force")
    assert forced.ok
    assert (repo / "pkg5" / "mod5.py").read_text() == "VALUE = 5\n"
    # The human's edit was kept as a snapshot before the restore: recover it.
    # (The oldest step is undone last of the steps; the declared tool called
    # inside it comes after it.)
    saved = [s for s in forced.undone if s.effect.tool == "git_workspace_step"][
        -1
    ].result
    assert "kept as snapshot" in saved
    sha = saved.rsplit("snapshot ", 1)[1].rstrip(")")
    commits = [
        line.split()[0]
        for line in git(
            repo,
            "--git-dir",
            str(workspace.git_dir),
            "for-each-ref",
            "--format=%(objectname)",
        ).splitlines()
        if line.startswith(sha)
    ]
    assert commits, "the replaced tree is kept"
