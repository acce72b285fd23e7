"""Snapshot a whole working tree at each step, and restore it on rollback.

```python
from langgraph_rollback.batteries.git import GitWorkspace

workspace = GitWorkspace("path/to/repo")

@workspace.step
def edit_code(state):            # a node: whatever it does to the files,
    ...                          # by any means, is one reversible effect

builder.add_node("edit_code", edit_code)
```

Each wrapped node is recorded as one effect (`git_workspace_step`) whose
`before` and `after` observations are snapshots of the working tree, untracked
files included (files ignored by the repository's `.gitignore` are not part
of the tree). A rollback restores the tree to the `before` snapshot, after
saving the current tree as another snapshot (so nothing is lost), and treats
a tree that changed since the step ended as a conflict. Declared tools called
inside the step are still recorded on their own.

Snapshots live in a separate bare git directory (by default
`.git/lgrb-snapshots` inside a repository, or `.lgrb-snapshots` in a plain
directory), with their own index and refs and no hooks: the user's index,
refs, hooks and configuration are never read or written. The step's result
(the node's update) is recorded too, so a replayed step returns it without
running again.
"""

from __future__ import annotations

import functools
import inspect
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from langgraph_rollback._current import container_call, inside_effect
from langgraph_rollback._errors import RollbackError
from langgraph_rollback._langgraph import current_task
from langgraph_rollback._models import Effect, Reversibility
from langgraph_rollback.core.record import record_flow
from langgraph_rollback.core.registry import (
    ToolDefinition,
    ToolRegistry,
    default_registry,
)
from langgraph_rollback.drivers import run_async, run_sync

__all__ = ["GitWorkspace", "restore", "snapshot"]

F = TypeVar("F", bound=Callable[..., Any])
TOOL = "git_workspace_step"
_FIXED_DATE = "1970-01-01T00:00:00+0000"


class GitError(RollbackError):
    """A git command of the workspace battery failed."""


def _git(work_tree: str, git_dir: str, *args: str, stdin: bytes | None = None) -> bytes:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_DIR": git_dir,
        "GIT_WORK_TREE": work_tree,
        "GIT_INDEX_FILE": os.path.join(git_dir, "lgrb-index"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "HOME": git_dir,
        "GIT_AUTHOR_NAME": "langgraph-rollback",
        "GIT_AUTHOR_EMAIL": "snapshots@langgraph-rollback",
        "GIT_COMMITTER_NAME": "langgraph-rollback",
        "GIT_COMMITTER_EMAIL": "snapshots@langgraph-rollback",
        "GIT_AUTHOR_DATE": _FIXED_DATE,
        "GIT_COMMITTER_DATE": _FIXED_DATE,
    }
    done = subprocess.run(
        ["git", "-c", "core.hooksPath=" + os.devnull, *args],
        cwd=work_tree,
        env=env,
        input=stdin,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise GitError(
            f"git {' '.join(args)} failed in {work_tree}: "
            f"{done.stderr.decode(errors='replace').strip()}. Fix: check that git "
            "is installed and the snapshot directory is writable."
        )
    return done.stdout


def _ensure(work_tree: str, git_dir: str) -> None:
    if (Path(git_dir) / "HEAD").exists():
        return
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--template=", git_dir],
        check=True,
        capture_output=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": git_dir},
    )
    info = Path(git_dir) / "info"
    info.mkdir(exist_ok=True)
    inside = Path(git_dir).resolve()
    root = Path(work_tree).resolve()
    exclude = ""
    if root in inside.parents:
        exclude = "/" + str(inside.relative_to(root)) + "/\n"
    (info / "exclude").write_text(exclude)


def snapshot(work_tree: str, git_dir: str) -> dict[str, str]:
    """Snapshot the tree now: `{"tree": ..., "commit": ...}` (deterministic)."""
    _ensure(work_tree, git_dir)
    _git(work_tree, git_dir, "add", "--all", ".")
    tree = _git(work_tree, git_dir, "write-tree").decode().strip()
    commit = (
        _git(work_tree, git_dir, "commit-tree", tree, "-m", "snapshot").decode().strip()
    )
    _git(work_tree, git_dir, "update-ref", f"refs/lgrb/{commit}", commit)
    return {"tree": tree, "commit": commit}


def restore(work_tree: str, git_dir: str, commit: str) -> dict[str, Any]:
    """Make the working tree match `commit`; return what was done.

    The current tree is snapshotted first, so nothing is lost.
    """
    saved = snapshot(work_tree, git_dir)
    changes = _git(
        work_tree,
        git_dir,
        "diff",
        "--cached",
        "--name-status",
        "--no-renames",
        "-z",
        commit,
    ).split(b"\0")
    added: list[str] = []
    rewrite: list[bytes] = []
    for status, raw in zip(changes[0::2], changes[1::2], strict=False):
        if status == b"A":
            added.append(os.fsdecode(raw))
        elif raw:
            rewrite.append(raw)
    root = Path(work_tree)
    for name in added:
        (root / name).unlink(missing_ok=True)
        parent = (root / name).parent
        while parent != root and parent.exists() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    _git(work_tree, git_dir, "read-tree", commit)
    if rewrite:
        _git(
            work_tree,
            git_dir,
            "checkout-index",
            "--force",
            "-z",
            "--stdin",
            stdin=b"\0".join(rewrite) + b"\0",
        )
    return {
        "restored": commit,
        "saved_as": saved["commit"],
        "files": len(added) + len(rewrite),
    }


def _observe(work_tree: str, git_dir: str, **_: Any) -> dict[str, str]:
    # Only the tree identifies the target: steps with other labels chain on it.
    return snapshot(work_tree, git_dir)


def restore_tree(effect: Effect) -> str:
    done = restore(
        effect.args["work_tree"], effect.args["git_dir"], effect.before["commit"]
    )
    return (
        f"restored the working tree of {Path(effect.args['work_tree']).name} before "
        f"step {effect.args['label']!r} ({done['files']} file(s); the tree it "
        f"replaced is kept as snapshot {done['saved_as'][:12]})"
    )


DEFINITION = ToolDefinition(
    name=TOOL,
    kind=Reversibility.REVERSIBLE,
    origin="langgraph_rollback.batteries.git",
    undo=restore_tree,
    observe=_observe,
    params=("work_tree", "git_dir", "label"),
    container=True,
)


class GitWorkspace:
    """A working tree whose state is snapshotted around each wrapped step.

    Args:
        work_tree: The directory (usually a git repository's root).
        git_dir: Where snapshots go; defaults to `.git/lgrb-snapshots` in a
            repository, else `.lgrb-snapshots` (excluded from the snapshots).
        registry: Where the `git_workspace_step` tool is declared.
    """

    def __init__(
        self,
        work_tree: str | os.PathLike[str],
        *,
        git_dir: str | os.PathLike[str] | None = None,
        registry: ToolRegistry | None = None,
    ) -> None:
        self.work_tree = Path(work_tree).resolve()
        if git_dir is None:
            dot_git = self.work_tree / ".git"
            git_dir = (
                dot_git / "lgrb-snapshots"
                if dot_git.is_dir()
                else self.work_tree / ".lgrb-snapshots"
            )
        self.git_dir = Path(git_dir).resolve()
        (registry if registry is not None else default_registry).register(DEFINITION)

    def snapshot(self) -> dict[str, str]:
        """Snapshot the tree now (outside any step)."""
        return snapshot(str(self.work_tree), str(self.git_dir))

    def restore(self, commit: str) -> dict[str, Any]:
        """Make the tree match a snapshot."""
        return restore(str(self.work_tree), str(self.git_dir), commit)

    def step(self, fn: F) -> F:
        """Wrap a node (sync or async) so that its changes to the tree are one effect."""
        label = getattr(fn, "__name__", "step")
        args = {
            "work_tree": str(self.work_tree),
            "git_dir": str(self.git_dir),
            "label": label,
        }

        def flow() -> Any:
            ctx = current_task()
            if ctx is None or inside_effect():
                return None
            return ctx, record_flow(
                ctx, DEFINITION, dict(args), tool_call_id=None, serde=ctx.store.serde
            )

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_node(*a: Any, **kw: Any) -> Any:
                planned = flow()
                if planned is None:
                    return await fn(*a, **kw)

                async def perform() -> Any:
                    with container_call():
                        return await fn(*a, **kw)

                return await run_async(planned[1], planned[0].store, perform=perform)

            return async_node  # type: ignore[return-value]

        @functools.wraps(fn)
        def node(*a: Any, **kw: Any) -> Any:
            planned = flow()
            if planned is None:
                return fn(*a, **kw)

            def perform() -> Any:
                with container_call():
                    return fn(*a, **kw)

            return run_sync(planned[1], planned[0].store, perform=perform)

        return node  # type: ignore[return-value]
