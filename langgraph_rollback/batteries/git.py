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
  `ident` or re-encoding, whatever `.gitattributes` says), untracked files
  and files tracked although ignored included; files the ignore rules match
  otherwise are not part of it;
- symbolic links (as links), permission bits (644 and 755 as git keeps them,
  others such as 600 beside the tree) and empty directories;
- the working-tree files of nested repositories (a directory with its own
  `.git` inside the tree): their HEAD, index and refs are left as they are,
  and the undo's text names each nested repository whose HEAD, index or refs
  differ from before the step.

Files the snapshot does not have are removed without following links (each
path is opened one component at a time, `O_NOFOLLOW`).

Snapshots live in a separate bare git directory, outside every working tree:
under the repository's git common dir (`.git/lgrb-snapshots` for the main
working tree's root, `.git/lgrb-snapshots-<digest>` for a subdirectory or a
linked worktree), or `.lgrb-snapshots` in a plain directory (excluded from
the snapshots), or where `git_dir=` says. It has its own index, refs and
attributes and runs no hooks: the user's index, refs, hooks and configuration
are never written, and nothing shows in `git status`. The step's result (the
node's update) is recorded too, so a replayed step returns it without running
again.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import stat
import subprocess
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

from langgraph_rollback._current import container_call, inside_effect
from langgraph_rollback._errors import RollbackError
from langgraph_rollback._langgraph import current_task
from langgraph_rollback._models import Effect, Reversibility
from langgraph_rollback.batteries._paths import parent, parts, remove_entry
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
_FIXED_DATE = "1970-01-01T00:00:00+0000"


class GitError(RollbackError):
    """A git command of the workspace battery failed.

    Attributes:
        command: The git arguments.
        work_tree: The directory it ran on.
    """

    def __init__(
        self, *, command: tuple[str, ...], work_tree: str, stderr: str
    ) -> None:
        super().__init__(
            f"git {' '.join(command)} failed in {work_tree}: {stderr}. Fix: check "
            "that git is installed and the snapshot directory is writable."
        )
        self.command = command
        self.work_tree = work_tree


# Snapshots keep bytes: these attributes win over any .gitattributes in the
# tree ($GIT_DIR/info/attributes comes first), so no end-of-line conversion,
# filter, ident expansion or re-encoding applies when adding or checking out.
_ATTRIBUTES = "* -text -eol -crlf -ident -filter -working-tree-encoding\n"
_PLAIN = ("-c", "core.autocrlf=false", "-c", "core.safecrlf=false")


def _env(
    git_dir: str | None, work_tree: str | None, index: str | None
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "HOME": git_dir or os.devnull,
        "GIT_AUTHOR_NAME": "langgraph-rollback",
        "GIT_AUTHOR_EMAIL": "snapshots@langgraph-rollback",
        "GIT_COMMITTER_NAME": "langgraph-rollback",
        "GIT_COMMITTER_EMAIL": "snapshots@langgraph-rollback",
        "GIT_AUTHOR_DATE": _FIXED_DATE,
        "GIT_COMMITTER_DATE": _FIXED_DATE,
    }
    for key, value in (
        ("GIT_DIR", git_dir),
        ("GIT_WORK_TREE", work_tree),
        ("GIT_INDEX_FILE", index),
    ):
        if value is not None:
            env[key] = value
    return env


def _run(
    cwd: str, env: dict[str, str], args: tuple[str, ...], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-c", "core.hooksPath=" + os.devnull, *_PLAIN, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        check=False,
    )


def _git(
    work_tree: str,
    git_dir: str,
    *args: str,
    stdin: bytes | None = None,
    index: str | None = None,
) -> bytes:
    env = _env(git_dir, work_tree, index or os.path.join(git_dir, "lgrb-index"))
    done = _run(work_tree, env, args, stdin)
    if done.returncode != 0:
        raise GitError(
            command=args,
            work_tree=work_tree,
            stderr=done.stderr.decode(errors="replace").strip(),
        )
    return done.stdout


def _ensure(work_tree: str, git_dir: str) -> None:
    if not (Path(git_dir) / "HEAD").exists():
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--template=", git_dir],
            check=True,
            capture_output=True,
            env=_env(None, None, None) | {"HOME": git_dir},
        )
    info = Path(git_dir) / "info"
    info.mkdir(exist_ok=True)
    attributes = info / "attributes"
    if not attributes.exists() or attributes.read_text() != _ATTRIBUTES:
        attributes.write_text(_ATTRIBUTES)  # also for stores made before it
    exclude = info / "exclude"
    if not exclude.exists():
        inside = Path(git_dir).resolve()
        root = Path(work_tree).resolve()
        rule = ""
        if root in inside.parents:
            rule = "/" + str(inside.relative_to(root)) + "/\n"
        exclude.write_text(rule)


def _build_index(work_tree: str, git_dir: str, index: str) -> list[str]:
    """Fill a fresh `index` with the tree's files; return the nested repositories.

    git lists a directory holding its own `.git` as one entry (`dir/`); its
    files are added from a snapshot of that directory, so they are restored
    like any others (its `.git` never is).
    """
    with suppress(FileNotFoundError):
        os.unlink(index)
    listed = _git(
        work_tree,
        git_dir,
        "ls-files",
        "--others",
        "--exclude-standard",
        "-z",
        index=index,
    )
    names = [n for n in listed.split(b"\0") if n]
    names += [n for n in _tracked_but_ignored(work_tree) if n not in names]
    plain = b"".join(n + b"\0" for n in names if not n.endswith(b"/"))
    _git(
        work_tree,
        git_dir,
        "update-index",
        "--add",
        "-z",
        "--stdin",
        stdin=plain,
        index=index,
    )
    found: list[str] = []
    for nested in (os.fsdecode(n[:-1]) for n in names if n.endswith(b"/")):
        tree, inner = _tree_of(os.path.join(work_tree, nested), git_dir, index)
        _git(work_tree, git_dir, "read-tree", f"--prefix={nested}/", tree, index=index)
        found += [nested, *(f"{nested}/{name}" for name in inner)]
    return found


def _tracked_but_ignored(work_tree: str) -> list[bytes]:
    """Files the repository at `work_tree` tracks although its ignore rules
    match them (added with `git add -f`): they are the user's, so snapshotted.

    Reads the repository's index (never writes it); none outside a repository.
    """
    done = _run(
        work_tree,
        _env(None, None, None),
        ("ls-files", "-z", "--cached", "--ignored", "--exclude-standard"),
    )
    if done.returncode != 0:
        return []
    names = [n for n in done.stdout.split(b"\0") if n]
    return [n for n in names if os.path.isfile(os.path.join(work_tree, os.fsdecode(n)))]


def _manifest(work_tree: str, git_dir: str) -> dict[str, Any]:
    """What a git tree does not keep: permission bits other than 644 and 755,
    and empty directories."""
    modes: dict[str, int] = {}
    for entry in _git(work_tree, git_dir, "ls-files", "-s", "-z").split(b"\0"):
        if not entry:
            continue
        meta, raw = entry.split(b"\t", 1)
        kind = meta.split()[0]
        if kind not in (b"100644", b"100755"):
            continue
        name = os.fsdecode(raw)
        with suppress(OSError):
            mode = stat.S_IMODE(os.lstat(os.path.join(work_tree, name)).st_mode)
            if mode != (0o755 if kind == b"100755" else 0o644):
                modes[name] = mode
    listed = _git(
        work_tree,
        git_dir,
        "ls-files",
        "-z",
        "--others",
        "--directory",
        "--exclude-standard",
    )
    empty = []
    for raw in listed.split(b"\0"):
        path = os.path.join(work_tree, os.fsdecode(raw))
        if (
            raw.endswith(b"/")
            and not os.path.islink(path[:-1])
            and not os.listdir(path)
        ):
            empty.append(os.fsdecode(raw[:-1]))
    found: dict[str, Any] = {}
    if modes:
        found["modes"] = modes
    if empty:
        found["empty_dirs"] = sorted(empty)
    return found


def _manifest_of(work_tree: str, git_dir: str, commit: str) -> dict[str, Any]:
    text = _git(work_tree, git_dir, "cat-file", "commit", commit).decode()
    body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
    _title, _, manifest = body.partition("\n\n")
    loaded: dict[str, Any] = json.loads(manifest) if manifest.strip() else {}
    return loaded


def _settle(
    work_tree: str,
    git_dir: str,
    target: dict[str, Any],
    now: dict[str, Any],
    rewritten: list[str],
) -> None:
    """Give files the target's permission bits and directories the target's
    emptiness, after a checkout (never through a link)."""
    modes: dict[str, int] = target.get("modes", {})
    index = {
        os.fsdecode(e.split(b"\t", 1)[1]): e.split()[0]
        for e in _git(work_tree, git_dir, "ls-files", "-s", "-z").split(b"\0")
        if e
    }
    for name in sorted(set(modes) | set(now.get("modes", {})) | set(rewritten)):
        kind = index.get(name)
        if kind not in (b"100644", b"100755"):
            continue
        wanted = modes.get(name, 0o755 if kind == b"100755" else 0o644)
        names = parts(work_tree, name)
        with parent(work_tree, names, create=False) as (fd, _missing):
            if fd is not None:
                _chmod_at(fd, names[-1], wanted)
    for name in now.get("empty_dirs", []):
        if name not in target.get("empty_dirs", []):
            names = parts(work_tree, name)
            with parent(work_tree, names, create=False) as (fd, _missing):
                if fd is not None:
                    remove_entry(fd, names[-1])
    for name in target.get("empty_dirs", []):
        names = parts(work_tree, name)
        with parent(work_tree, names, create=True) as (fd, _created):
            assert fd is not None
            with suppress(FileExistsError):
                os.mkdir(names[-1], dir_fd=fd)


def _chmod_at(fd: int, name: str, mode: int) -> None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        handle = os.open(name, flags, dir_fd=fd)
    except OSError:
        return  # gone, or a link: nothing of ours to change
    try:
        if stat.S_ISREG(os.fstat(handle).st_mode):
            os.fchmod(handle, mode)
    finally:
        os.close(handle)


def _tree_of(work_tree: str, git_dir: str, outer: str) -> tuple[str, list[str]]:
    """A nested repository's tree id (built in a throwaway index), and its own."""
    index = f"{outer}-{hashlib.sha256(work_tree.encode()).hexdigest()[:12]}"
    try:
        nested = _build_index(work_tree, git_dir, index)
        tree = _git(work_tree, git_dir, "write-tree", index=index).decode().strip()
        return tree, nested
    finally:
        with suppress(FileNotFoundError):
            os.unlink(index)


def _repository_state(path: str) -> dict[str, str]:
    """HEAD, index and refs of the repository at `path`, as short digests."""
    env = _env(None, None, None)

    def read(*args: str) -> str:
        done = _run(path, env, args)
        return (
            done.stdout.decode(errors="replace").strip() if done.returncode == 0 else ""
        )

    git_dir = read("rev-parse", "--absolute-git-dir")
    if not git_dir:
        return {"unreadable": "git rev-parse failed"}
    head_file = Path(git_dir) / "HEAD"
    index = Path(git_dir) / "index"
    return {
        "HEAD": (head_file.read_text().strip() if head_file.exists() else "")
        + " "
        + read("rev-parse", "-q", "--verify", "HEAD")[:12],
        "index": _digest(index.read_bytes() if index.exists() else b""),
        "refs": _digest(read("for-each-ref").encode()),
    }


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def snapshot(work_tree: str, git_dir: str) -> dict[str, Any]:
    """Snapshot the tree now (deterministic).

    Returns `{"tree": ..., "commit": ...}`, plus `"nested"`: the HEAD, index
    and refs digests of each nested repository, when there are any.
    """
    _ensure(work_tree, git_dir)
    nested_names = _build_index(work_tree, git_dir, os.path.join(git_dir, "lgrb-index"))
    tree = _git(work_tree, git_dir, "write-tree").decode().strip()
    manifest = _manifest(work_tree, git_dir)
    message = ["-m", "snapshot"]
    if manifest:  # in the commit, so a change of mode alone is drift too
        message += ["-m", json.dumps(manifest, sort_keys=True)]
    commit = _git(work_tree, git_dir, "commit-tree", tree, *message).decode().strip()
    _git(work_tree, git_dir, "update-ref", f"refs/lgrb/{commit}", commit)
    taken: dict[str, Any] = {"tree": tree, "commit": commit}
    nested = {
        name: _repository_state(os.path.join(work_tree, name)) for name in nested_names
    }
    if nested:
        taken["nested"] = nested
    return taken


def _remove_added(root: str, name: str) -> None:
    """Remove a file the snapshot does not have, and parents left empty.

    Never follows a link: the path is opened one component at a time.
    """
    names = parts(root, name)
    with parent(root, names, create=False) as (fd, _missing):
        if fd is not None:
            remove_entry(fd, names[-1])
    for depth in range(len(names) - 1, 0, -1):
        above = names[:depth]
        with parent(root, above, create=False) as (fd, _missing):
            if fd is None or remove_entry(fd, above[-1]) != "removed":
                return


def restore(work_tree: str, git_dir: str, commit: str) -> dict[str, Any]:
    """Make the working tree match `commit`; return what was done.

    The current tree is snapshotted first, so nothing is lost. Files inside
    nested repositories are restored like any others; the repositories' own
    HEAD, index and refs are left as they are.
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
    for name in added:
        _remove_added(work_tree, name)
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
    _settle(
        work_tree,
        git_dir,
        _manifest_of(work_tree, git_dir, commit),
        _manifest_of(work_tree, git_dir, saved["commit"]),
        [os.fsdecode(r) for r in rewrite],
    )
    return {
        "restored": commit,
        "saved_as": saved["commit"],
        "files": len(added) + len(rewrite),
        "nested": saved.get("nested", {}),
    }


def _observe(work_tree: str, git_dir: str, **_: Any) -> dict[str, Any]:
    # Only the tree identifies the target: steps with other labels chain on it.
    return snapshot(work_tree, git_dir)


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
    done = _run(
        str(work_tree),
        _env(None, None, None),
        ("rev-parse", "--path-format=absolute", "--git-common-dir", "--show-toplevel"),
    )
    lines = done.stdout.decode().splitlines() if done.returncode == 0 else []
    if len(lines) != 2:
        return work_tree / ".lgrb-snapshots"
    common, top = Path(lines[0]).resolve(), Path(lines[1]).resolve()
    if top == work_tree and common == top / ".git":
        return common / "lgrb-snapshots"
    return common / f"lgrb-snapshots-{_digest(str(work_tree).encode())}"


def restore_tree(effect: Effect) -> str:
    """The inverse of a step: the tree back to its `before` snapshot, in words."""
    done = restore(
        effect.args["work_tree"], effect.args["git_dir"], effect.before["commit"]
    )
    nested = _nested_changes(effect.before.get("nested", {}), done["nested"])
    return (
        f"restored the working tree of {Path(effect.args['work_tree']).name} before "
        f"step {effect.args['label']!r} ({done['files']} file(s); the tree it "
        f"replaced is kept as snapshot {done['saved_as'][:12]}){nested}"
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
