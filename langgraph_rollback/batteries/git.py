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
`before` and `after` observations are snapshots of the working tree. A
rollback restores the tree to the `before` snapshot, after saving the current
tree as another snapshot (so nothing is lost), and treats a tree that changed
since the step ended as a conflict. Declared tools called inside the step are
still recorded on their own.

What a snapshot holds, and a rollback restores:

- every file's bytes as they are on disk (no end-of-line conversion, filter,
  `ident` or re-encoding, whatever `.gitattributes` says): untracked files,
  files tracked although ignored, and ignored files (a `.env` the step
  deletes comes back; a file it creates, then ignores, is removed), except
  a directory an ignore rule matches as a whole (`node_modules/`) and
  ignored files over `IGNORED_FILE_CAP` (16 MiB): those are left out, and
  the undo's text names them as not restored;
- symbolic links (as links), permission bits of files (644 and 755 as git
  keeps them, others beside the tree) and of directories, empty directories
  and FIFOs (sockets and devices are not kept);
- the working-tree files of nested repositories (a directory with its own
  `.git` inside the tree): their HEAD, index and refs are left as they are,
  and the undo's text names each nested repository whose HEAD, index or refs
  differ from before the step. So it does for the user's own repository:
  a commit the step made is not undone, and the undo's text says so.

Files the snapshot does not have are removed without following links (each
path is opened one component at a time, `O_NOFOLLOW`).

Snapshots live in a separate bare git directory, outside every working tree:
under the repository's git common dir (`.git/lgrb-snapshots` for the main
working tree's root, `.git/lgrb-snapshots-<digest>` for a subdirectory or a
linked worktree), or `.lgrb-snapshots` in a plain directory (excluded from
the snapshots), or where `git_dir=` says. It has its own index, refs and
attributes and runs no hooks: the user's index, refs, hooks and configuration
are never written, and nothing shows in `git status`. Every git run turns off
`core.fsmonitor`, the untracked cache, transports and lazy fetches, so no
command from the user's configuration runs. The step's result (the
node's update) is recorded too, so a replayed step returns it without running
again.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from langgraph_rollback._current import container_call, current_effect, inside_effect
from langgraph_rollback._langgraph import current_task
from langgraph_rollback._models import Effect, Reversibility
from langgraph_rollback.batteries._git_plumbing import (
    IGNORED_FILE_CAP,
    GitError,
    build_index,
    digest,
    ensure_store,
    git,
    git_env,
    manifest_now,
    manifest_of,
    remove_added,
    repository_state,
    run_git,
    settle,
)
from langgraph_rollback.core.record import record_flow
from langgraph_rollback.core.registry import (
    ToolDefinition,
    ToolRegistry,
    default_registry,
)
from langgraph_rollback.drivers import run_async, run_sync

__all__ = ["GitError", "GitWorkspace", "default_store", "restore", "snapshot"]

F = TypeVar("F", bound=Callable[..., Any])
TOOL = "git_workspace_step"


def snapshot(work_tree: str, git_dir: str) -> dict[str, Any]:
    """Snapshot the tree now (deterministic).

    Returns `{"tree": ..., "commit": ...}`, plus `"nested"`: the HEAD, index
    and refs digests of each nested repository, when there are any.
    """
    ensure_store(work_tree, git_dir)
    nested_names, outside = build_index(
        work_tree, git_dir, os.path.join(git_dir, "lgrb-index")
    )
    tree = git(work_tree, git_dir, "write-tree").decode().strip()
    manifest = manifest_now(work_tree, git_dir, outside)
    # Snapshots of this format hold the ignored files; `restore` leaves
    # ignored files alone when it restores an older snapshot, which did not.
    manifest[IGNORED_MARK] = True
    message = ["-m", "snapshot"]
    # In the commit, so a change of mode alone is drift too.
    message += ["-m", json.dumps(manifest, sort_keys=True)]
    commit = git(work_tree, git_dir, "commit-tree", tree, *message).decode().strip()
    git(work_tree, git_dir, "update-ref", f"refs/lgrb/{commit}", commit)
    taken: dict[str, Any] = {"tree": tree, "commit": commit}
    nested = {
        name: repository_state(os.path.join(work_tree, name)) for name in nested_names
    }
    if nested:
        taken["nested"] = nested
    return taken


def restore(work_tree: str, git_dir: str, commit: str) -> dict[str, Any]:
    """Make the working tree match `commit`; return what was done.

    The current tree is snapshotted first, so nothing is lost. Files inside
    nested repositories are restored like any others; the repositories' own
    HEAD, index and refs are left as they are.
    """
    saved = snapshot(work_tree, git_dir)
    changes = git(
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
    if added and not manifest_of(work_tree, git_dir, commit).get(IGNORED_MARK):
        # An older snapshot never held ignored files: they are not "added".
        ignored = set(_ignored_now(work_tree, git_dir, added))
        added = [name for name in added if name not in ignored]
    for name in added:
        remove_added(work_tree, name)
    git(work_tree, git_dir, "read-tree", commit)
    if rewrite:
        git(
            work_tree,
            git_dir,
            "checkout-index",
            "--force",
            "-z",
            "--stdin",
            stdin=b"\0".join(rewrite) + b"\0",
        )
    settle(
        work_tree,
        git_dir,
        manifest_of(work_tree, git_dir, commit),
        manifest_of(work_tree, git_dir, saved["commit"]),
        [os.fsdecode(r) for r in rewrite],
    )
    outside = set(manifest_of(work_tree, git_dir, commit).get("outside", []))
    outside |= set(manifest_of(work_tree, git_dir, saved["commit"]).get("outside", []))
    return {
        "restored": commit,
        "saved_as": saved["commit"],
        "files": len(added) + len(rewrite),
        "nested": saved.get("nested", {}),
        "outside": sorted(outside),
    }


IGNORED_MARK = "with_ignored"
"""Set in the manifest of every snapshot that holds the ignored files."""


def _ignored_now(work_tree: str, git_dir: str, names: list[str]) -> list[str]:
    """Which of `names` the tree's ignore rules match now."""
    stdin = b"".join(os.fsencode(n) + b"\0" for n in names)
    env = git_env(git_dir, work_tree, os.path.join(git_dir, "lgrb-index"))
    done = run_git(
        work_tree, env, ("check-ignore", "--no-index", "-z", "--stdin"), stdin
    )
    if done.returncode not in (0, 1):  # 1: none of them is ignored
        raise GitError(
            command=("check-ignore",),
            work_tree=work_tree,
            stderr=done.stderr.decode(errors="replace").strip(),
        )
    return [os.fsdecode(n) for n in done.stdout.split(b"\0") if n]


def _observe(work_tree: str, git_dir: str, **_: Any) -> dict[str, Any]:
    # Only the tree identifies the target: steps with other labels chain on it.
    taken = snapshot(work_tree, git_dir)
    effect = current_effect()
    if effect is not None:
        _remember_repository(work_tree, git_dir, effect.id)
    return taken


def _repository_file(git_dir: str, effect_id: str) -> Path:
    return Path(git_dir) / "lgrb-repository" / f"{digest(effect_id.encode())}.json"


def _remember_repository(work_tree: str, git_dir: str, effect_id: str) -> None:
    """Keep the HEAD, index and refs of the repository `work_tree` is in, as
    the step's first observation (before it ran) found them: beside the
    snapshots, not in the observation, so a commit made since is no conflict."""
    path = _repository_file(git_dir, effect_id)
    if path.exists():
        return
    state = repository_state(work_tree)
    if "unreadable" in state:
        return  # not in a repository
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(state, sort_keys=True))


def _commit_of(state: dict[str, str]) -> str:
    words = state.get("HEAD", "").split()
    return words[-1] if len(words) > 1 else "unborn"


def _own_changes(effect: Effect) -> str:
    """Words for the user's own repository, when its HEAD, index or refs
    differ from before the step."""
    path = _repository_file(effect.args["git_dir"], effect.id)
    if not path.exists():
        return ""
    was = json.loads(path.read_text())
    now = repository_state(effect.args["work_tree"])
    moved = [k for k in ("HEAD", "index", "refs") if was.get(k) != now.get(k)]
    if not moved:
        return ""
    head = (
        f" (HEAD was {_commit_of(was)}, is {_commit_of(now)})"
        if "HEAD" in moved
        else ""
    )
    names = " and ".join([", ".join(moved[:-1]), moved[-1]] if moved[1:] else moved)
    verb = "differs" if len(moved) == 1 else "differ"
    left = "was left as it is" if len(moved) == 1 else "were left as they are"
    return (
        f"; the repository's own {names} {verb} from before the step and "
        f"{left}{head}: commits, staging and branches made by the step (or "
        "since) are not undone"
    )


def _files_part(observed: Any) -> Any:
    """What a step's inverse restores: the files (tree and modes), not the
    nested repositories' own HEAD, index and refs."""
    if not isinstance(observed, dict):
        return observed
    return {k: v for k, v in observed.items() if k != "nested"}


def _nested_changes(before: dict[str, Any], now: dict[str, Any]) -> str:
    """Words for the nested repositories whose HEAD, index or refs moved."""
    notes = []
    for name in sorted(set(before) | set(now)):
        was, is_ = before.get(name, {}), now.get(name, {})
        moved = [k for k in ("HEAD", "index", "refs") if was.get(k) != is_.get(k)]
        if moved:
            notes.append(f"{name} ({', '.join(moved)})")
    if not notes:
        return ""
    return (
        "; the nested repositories' own state was left as it is and differs from "
        f"before the step: {'; '.join(notes)}"
    )


def default_store(work_tree: Path) -> Path:
    """Where snapshots of `work_tree` go unless told: outside every working tree.

    In a repository, under its git common dir (`.git` of the main working
    tree, shared by linked worktrees): `lgrb-snapshots` for the main working
    tree's root, `lgrb-snapshots-<digest of the path>` for a subdirectory or a
    linked worktree. In a plain directory, `.lgrb-snapshots` inside it
    (excluded from the snapshots).
    """
    done = run_git(
        str(work_tree),
        git_env(None, None, None),
        ("rev-parse", "--path-format=absolute", "--git-common-dir", "--show-toplevel"),
    )
    lines = done.stdout.decode().splitlines() if done.returncode == 0 else []
    if len(lines) != 2:
        return work_tree / ".lgrb-snapshots"
    common, top = Path(lines[0]).resolve(), Path(lines[1]).resolve()
    if top == work_tree and common == top / ".git":
        return common / "lgrb-snapshots"
    return common / f"lgrb-snapshots-{digest(str(work_tree).encode())}"


def restore_tree(effect: Effect) -> str:
    """The inverse of a step: the tree back to its `before` snapshot, in words."""
    done = restore(
        effect.args["work_tree"], effect.args["git_dir"], effect.before["commit"]
    )
    nested = _nested_changes(effect.before.get("nested", {}), done["nested"])
    left = done["outside"]
    outside = (
        f"; outside the snapshots, so not restored: {', '.join(left[:10])}"
        + (f" and {len(left) - 10} more" if len(left) > 10 else "")
        + " (ignored directories, and ignored files over "
        f"{IGNORED_FILE_CAP >> 20} MiB)"
        if left
        else ""
    )
    return (
        f"restored the working tree of {Path(effect.args['work_tree']).name} before "
        f"step {effect.args['label']!r} ({done['files']} file(s); the tree it "
        f"replaced is kept as snapshot {done['saved_as'][:12]})"
        f"{_own_changes(effect)}{nested}{outside}"
    )


DEFINITION = ToolDefinition(
    name=TOOL,
    kind=Reversibility.REVERSIBLE,
    origin="langgraph_rollback.batteries.git",
    undo=restore_tree,
    observe=_observe,
    restores=_files_part,
    params=("work_tree", "git_dir", "label"),
    container=True,
)


class GitWorkspace:
    """A working tree whose state is snapshotted around each wrapped step.

    Args:
        work_tree: The directory (usually a git repository's root).
        git_dir: Where snapshots go; defaults to `default_store(work_tree)`:
            under the repository's git common dir, else `.lgrb-snapshots`
            inside a plain directory (excluded from the snapshots).
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
        self.git_dir = (
            Path(git_dir).resolve() if git_dir else default_store(self.work_tree)
        )
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
            ctx = current_task(DEFINITION)
            if ctx is None or inside_effect():
                return None
            return ctx, record_flow(
                ctx,
                DEFINITION,
                dict(args),
                tool_call_id=None,
                serde=ctx.store.ledger_codec,
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
