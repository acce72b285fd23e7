"""The git plumbing behind the workspace snapshots: git run apart from the
user's configuration and hooks, an index of the whole working tree (nested
repositories included), and what a git tree does not keep (permission bits,
empty directories), put back after a checkout."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from contextlib import suppress
from pathlib import Path
from typing import Any

from langgraph_rollback._errors import RollbackError
from langgraph_rollback.batteries._paths import parent, parts, remove_entry

__all__ = [
    "GitError",
    "build_index",
    "digest",
    "ensure_store",
    "git",
    "git_env",
    "manifest_now",
    "manifest_of",
    "remove_added",
    "repository_state",
    "run_git",
    "settle",
]

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


def git_env(
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


def run_git(
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


def git(
    work_tree: str,
    git_dir: str,
    *args: str,
    stdin: bytes | None = None,
    index: str | None = None,
) -> bytes:
    env = git_env(git_dir, work_tree, index or os.path.join(git_dir, "lgrb-index"))
    done = run_git(work_tree, env, args, stdin)
    if done.returncode != 0:
        raise GitError(
            command=args,
            work_tree=work_tree,
            stderr=done.stderr.decode(errors="replace").strip(),
        )
    return done.stdout


def ensure_store(work_tree: str, git_dir: str) -> None:
    if not (Path(git_dir) / "HEAD").exists():
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--template=", git_dir],
            check=True,
            capture_output=True,
            env=git_env(None, None, None) | {"HOME": git_dir},
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


def build_index(work_tree: str, git_dir: str, index: str) -> list[str]:
    """Fill a fresh `index` with the tree's files; return the nested repositories.

    git lists a directory holding its own `.git` as one entry (`dir/`); its
    files are added from a snapshot of that directory, so they are restored
    like any others (its `.git` never is).
    """
    with suppress(FileNotFoundError):
        os.unlink(index)
    listed = git(
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
    git(
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
        git(work_tree, git_dir, "read-tree", f"--prefix={nested}/", tree, index=index)
        found += [nested, *(f"{nested}/{name}" for name in inner)]
    return found


def _tracked_but_ignored(work_tree: str) -> list[bytes]:
    """Files the repository at `work_tree` tracks although its ignore rules
    match them (added with `git add -f`): they are the user's, so snapshotted.

    Reads the repository's index (never writes it); none outside a repository.
    """
    done = run_git(
        work_tree,
        git_env(None, None, None),
        ("ls-files", "-z", "--cached", "--ignored", "--exclude-standard"),
    )
    if done.returncode != 0:
        return []
    names = [n for n in done.stdout.split(b"\0") if n]
    return [n for n in names if os.path.isfile(os.path.join(work_tree, os.fsdecode(n)))]


def manifest_now(work_tree: str, git_dir: str) -> dict[str, Any]:
    """What a git tree does not keep: permission bits other than 644 and 755,
    and empty directories."""
    modes: dict[str, int] = {}
    for entry in git(work_tree, git_dir, "ls-files", "-s", "-z").split(b"\0"):
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
    listed = git(
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


def manifest_of(work_tree: str, git_dir: str, commit: str) -> dict[str, Any]:
    text = git(work_tree, git_dir, "cat-file", "commit", commit).decode()
    body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
    _title, _, manifest = body.partition("\n\n")
    loaded: dict[str, Any] = json.loads(manifest) if manifest.strip() else {}
    return loaded


def settle(
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
        for e in git(work_tree, git_dir, "ls-files", "-s", "-z").split(b"\0")
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
        nested = build_index(work_tree, git_dir, index)
        tree = git(work_tree, git_dir, "write-tree", index=index).decode().strip()
        return tree, nested
    finally:
        with suppress(FileNotFoundError):
            os.unlink(index)


def repository_state(path: str) -> dict[str, str]:
    """HEAD, index and refs of the repository at `path`, as short digests."""
    env = git_env(None, None, None)

    def read(*args: str) -> str:
        done = run_git(path, env, args)
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
        "index": digest(index.read_bytes() if index.exists() else b""),
        "refs": digest(read("for-each-ref").encode()),
    }


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def remove_added(root: str, name: str) -> None:
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
