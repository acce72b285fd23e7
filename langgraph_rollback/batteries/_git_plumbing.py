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
from langgraph_rollback.batteries._paths import lstat_at, parent, parts, remove_entry

__all__ = [
    "IGNORED_FILE_CAP",
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
    "walk_tree",
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
# Configuration that runs commands or writes caches, off for every git run,
# the user's repository included: no fsmonitor command, no untracked cache
# written, no lazy fetch of a partial clone, no transport at all.
_HARDENED = (
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.untrackedCache=false",
    "-c",
    "protocol.allow=never",
    "-c",
    "core.sshCommand=false",
)


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
        "GIT_NO_LAZY_FETCH": "1",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
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
        ["git", "-c", "core.hooksPath=" + os.devnull, *_PLAIN, *_HARDENED, *args],
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


IGNORED_FILE_CAP = 16 * 1024 * 1024
"""Ignored files larger than this are left out of the snapshots (and named)."""


def build_index(
    work_tree: str, git_dir: str, index: str
) -> tuple[list[str], list[str]]:
    """Fill a fresh `index` with the tree's files; return the nested
    repositories, and what is left out of the snapshot.

    git lists a directory holding its own `.git` as one entry (`dir/`); its
    files are added from a snapshot of that directory, so they are restored
    like any others (its `.git` never is). Files the ignore rules match are
    in it too (a step may delete `.env`, or create a file and ignore it),
    except a directory an ignore rule matches as a whole (`node_modules/`)
    and ignored files past `IGNORED_FILE_CAP`: those are left out.
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
    ignored, outside = _ignored(work_tree, git_dir, index)
    seen = set(names)
    names += [n for n in _tracked_but_ignored(work_tree) if n not in seen]
    seen = set(names)
    names += [n for n in ignored if n not in seen]
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
        tree, inner, left = _tree_of(os.path.join(work_tree, nested), git_dir, index)
        git(work_tree, git_dir, "read-tree", f"--prefix={nested}/", tree, index=index)
        found += [nested, *(f"{nested}/{name}" for name in inner)]
        outside += [f"{nested}/{name}" for name in left]
    return found, sorted(outside)


def _ignored(work_tree: str, git_dir: str, index: str) -> tuple[list[bytes], list[str]]:
    """The ignored files to snapshot, and what is left out: directories an
    ignore rule matches whole (listed with nothing under them) and files
    past the cap. The snapshot store itself is neither."""
    listed = git(
        work_tree,
        git_dir,
        "ls-files",
        "--others",
        "--ignored",
        "--exclude-standard",
        "--directory",
        "-z",
        index=index,
    )
    entries = sorted(n for n in listed.split(b"\0") if n)
    store = _store_prefix(work_tree, git_dir)
    files: list[bytes] = []
    outside: list[str] = []
    for i, name in enumerate(entries):
        if store is not None and (name + b"/").startswith(store):
            continue
        if name.endswith(b"/"):
            following = entries[i + 1] if i + 1 < len(entries) else b""
            if not following.startswith(name):
                outside.append(os.fsdecode(name))
            continue
        try:
            st = os.lstat(os.path.join(work_tree, os.fsdecode(name)))
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode) or (
            stat.S_ISREG(st.st_mode) and st.st_size <= IGNORED_FILE_CAP
        ):
            files.append(name)
        elif stat.S_ISREG(st.st_mode):
            outside.append(os.fsdecode(name))
    return files, outside


def _store_prefix(work_tree: str, git_dir: str) -> bytes | None:
    """The snapshot store's path inside the tree (`dir/`), if it is inside."""
    inside, root = Path(git_dir).resolve(), Path(work_tree).resolve()
    if root not in inside.parents:
        return None
    return os.fsencode(str(inside.relative_to(root))) + b"/"


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


def manifest_now(
    work_tree: str, git_dir: str, outside: list[str] | None = None
) -> dict[str, Any]:
    """What a git tree does not keep: permission bits other than 644 and 755,
    empty directories, directories' modes other than 755, FIFOs, and what
    the snapshot leaves out (`outside`)."""
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
    dir_modes, fifos = walk_tree(work_tree, git_dir, outside or [])
    if dir_modes:
        found["dir_modes"] = dir_modes
    if fifos:
        found["fifos"] = fifos
    if outside:
        found["outside"] = outside
    return found


def walk_tree(
    work_tree: str, git_dir: str, outside: list[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Directories whose mode is not 755, and FIFOs, with their modes (no
    link followed; `.git`, the store and the directories left out pruned)."""
    store = _store_prefix(work_tree, git_dir)
    pruned = {d.rstrip("/") for d in outside}
    if store is not None:
        pruned.add(os.fsdecode(store).rstrip("/"))
    dir_modes: dict[str, int] = {}
    fifos: dict[str, int] = {}
    for top, dirs, files in os.walk(work_tree):
        rel = os.path.relpath(top, work_tree)
        kept = []
        for name in dirs:
            path = name if rel == "." else f"{rel}/{name}"
            st = os.lstat(os.path.join(top, name))
            if name == ".git" or path in pruned or not stat.S_ISDIR(st.st_mode):
                continue
            kept.append(name)
            if stat.S_IMODE(st.st_mode) != 0o755:
                dir_modes[path] = stat.S_IMODE(st.st_mode)
        dirs[:] = kept
        for name in files:
            with suppress(OSError):
                st = os.lstat(os.path.join(top, name))
                if stat.S_ISFIFO(st.st_mode):
                    fifos[name if rel == "." else f"{rel}/{name}"] = stat.S_IMODE(
                        st.st_mode
                    )
    return dir_modes, fifos


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
    _settle_fifos(work_tree, target.get("fifos", {}), now.get("fifos", {}))
    # Last, deepest first: a mode without write permission must not stop
    # the changes above, nor the changes inside it.
    target_dirs: dict[str, int] = target.get("dir_modes", {})
    dir_modes, _fifos = walk_tree(work_tree, git_dir, target.get("outside", []))
    for name in sorted(set(target_dirs) | set(dir_modes), key=len, reverse=True):
        mode = target_dirs.get(name, 0o755)
        if dir_modes.get(name, 0o755) != mode:
            names = parts(work_tree, name)
            with parent(work_tree, names, create=False) as (fd, _missing):
                if fd is not None:
                    _chmod_at(fd, names[-1], mode, directory=True)


def _settle_fifos(work_tree: str, target: dict[str, int], now: dict[str, int]) -> None:
    """Remove the FIFOs the target does not have; make the ones it has."""
    for name in sorted(set(now) | set(target)):
        names = parts(work_tree, name)
        with parent(work_tree, names, create=name in target) as (fd, _dirs):
            if fd is None:
                continue
            st = lstat_at(fd, names[-1])
            if name not in target:
                if st is not None and stat.S_ISFIFO(st.st_mode):
                    os.unlink(names[-1], dir_fd=fd)
                continue
            if st is None:
                os.mkfifo(names[-1], target[name], dir_fd=fd)
            _chmod_at(fd, names[-1], target[name], fifo=True)


def _chmod_at(
    fd: int, name: str, mode: int, *, directory: bool = False, fifo: bool = False
) -> None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        handle = os.open(name, flags, dir_fd=fd)
    except OSError:
        return  # gone, or a link: nothing of ours to change
    try:
        kind = os.fstat(handle).st_mode
        if (
            stat.S_ISREG(kind)
            or (directory and stat.S_ISDIR(kind))
            or (fifo and stat.S_ISFIFO(kind))
        ):
            os.fchmod(handle, mode)
    finally:
        os.close(handle)


def _tree_of(
    work_tree: str, git_dir: str, outer: str
) -> tuple[str, list[str], list[str]]:
    """A nested repository's tree id (built in a throwaway index), its own
    nested repositories, and what is left out."""
    index = f"{outer}-{hashlib.sha256(work_tree.encode()).hexdigest()[:12]}"
    try:
        nested, outside = build_index(work_tree, git_dir, index)
        tree = git(work_tree, git_dir, "write-tree", index=index).decode().strip()
        return tree, nested, outside
    finally:
        with suppress(FileNotFoundError):
            os.unlink(index)


def repository_state(path: str) -> dict[str, str]:
    """HEAD, index and refs of the repository at `path`, as short digests.

    The index by what it stages (each entry's flags, mode, object and path),
    not by its bytes: `git status` rewrites the file to refresh its cached
    file times, which stages nothing.
    """
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
    return {
        "HEAD": (head_file.read_text().strip() if head_file.exists() else "")
        + " "
        + read("rev-parse", "-q", "--verify", "HEAD")[:12],
        "index": digest(read("ls-files", "--stage", "-v", "-z", "--", ":/").encode()),
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
