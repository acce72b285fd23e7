"""Entries of a workspace, reached without ever following a link.

Every path is split into components and opened one component at a time,
relative to the directory opened before it (`os.open(name, dir_fd=...)`,
`openat` style), with `O_NOFOLLOW`: starting from the workspace root, a
component that is a symbolic link stops the walk with `UnsafePathError`. So
no read, write, rename or removal here can land outside the workspace, even
when a directory is swapped for a link between two calls.

Paths are lexical: `a/../b` is `b`, and `..` that would climb out of the
workspace is refused. An *image* is what stands at a path: a file (its bytes,
SHA-256 and permission bits), a directory, a symbolic link (its target, never
followed) or nothing. Each directory a tool creates on the way to a path is
an effect of its own (`create_parent_directory`), so an undo removes exactly
those; images recorded with `missing_dirs` (the directories a call would
create) are still restored that way.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from langgraph_rollback._errors import InvalidConfigError, RollbackError

__all__ = [
    "BeforeImageTooLargeError",
    "DirectoryNotEmptyError",
    "EntryKindError",
    "ImageTamperedError",
    "UnsafePathError",
    "canonical",
    "check_utf8",
    "image",
    "restore_image",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePathError(InvalidConfigError):
    """A path leaves the workspace, or goes through a symbolic link.

    Attributes:
        root: The workspace.
        path: The path as given.
    """

    def __init__(self, *, root: str, path: str, why: str, fix: str) -> None:
        super().__init__(
            f"Path {path!r} {why} (workspace {root}), so the file tools refuse "
            f"it: they never touch anything outside the workspace. Fix: {fix}."
        )
        self.root = root
        self.path = path


class EntryKindError(RollbackError):
    """The entry at a path is not of a kind the operation works on.

    Attributes:
        path: The path inside the workspace.
        kind: What stands there ("dir", "link", "other", ...).
    """

    def __init__(self, *, path: str, kind: str, action: str, fix: str) -> None:
        super().__init__(
            f"Cannot {action} {path!r}: it is a {_KIND_WORDS.get(kind, kind)}. "
            f"Fix: {fix}."
        )
        self.path = path
        self.kind = kind


class DirectoryNotEmptyError(RollbackError):
    """A directory the agent created holds entries someone else put there, so
    undoing its creation would remove them.

    Attributes:
        path: The directory inside the workspace.
        entries: What it holds (the first few names).
    """

    def __init__(self, *, path: str, entries: list[str]) -> None:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        super().__init__(
            f"Cannot remove directory {path!r}, which the agent created: it holds "
            f"entries that were put there since ({shown}); it was kept. Fix: move "
            "them out of it (or delete them), then roll back again."
        )
        self.path = path
        self.entries = entries


class BeforeImageTooLargeError(RollbackError):
    """A file is too large to keep its image in the ledger: as it is (the
    before-image), or as a write would leave it (the after-image, refused
    before the write).

    Attributes:
        path: The file.
        size: Its size in bytes (or the size the write would give it).
        limit: The cap.
    """

    def __init__(
        self, *, path: str, size: int, limit: int, result: bool = False
    ) -> None:
        what = "would be" if result else "is"
        super().__init__(
            f"{path} {what} {size} bytes, over the {limit}-byte cap for images "
            "kept in the ledger, so the change could not be undone (nothing was "
            "written). Fix: pass "
            "file_tools(..., max_image_bytes=...) a larger cap, or keep large "
            "files out of the agent's reach (e.g. snapshot them with the git battery)."
        )
        self.path = path
        self.size = size
        self.limit = limit


class ImageTamperedError(RollbackError):
    """A recorded before-image does not match its own hash.

    Attributes:
        path: The file the image is of.
    """

    def __init__(self, *, path: str) -> None:
        super().__init__(
            f"The before-image of {path} does not match its SHA-256, so it was "
            "not written back. Fix: inspect the ledger row; it was altered."
        )
        self.path = path


_KIND_WORDS = {
    "dir": "directory",
    "link": "symbolic link",
    "other": "special file (a FIFO, socket or device)",
    "file": "regular file",
}


def canonical(root: str, path: str) -> str:
    """`path` in lexical normal form, relative to `root` when it lies inside it.

    A path that leaves the workspace is returned normalised but still
    leaving, for `parts` to refuse with a message.
    """
    if not path:
        return path
    normal = posixpath.normpath(path)
    if posixpath.isabs(normal):
        inside = posixpath.relpath(normal, root)
        if inside != ".." and not inside.startswith("../"):
            return inside
    return normal


def check_utf8(root: str, path: str) -> None:
    """Refuse a path that is not valid UTF-8 (a lone surrogate, as undecodable
    bytes of a file name become): the ledger could not record it as it is."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePathError(
            root=root,
            path=path,
            why="is not valid UTF-8 (it holds a lone surrogate), so the ledger "
            "cannot record it as it is",
            fix="use a name that is valid UTF-8",
        ) from None


def parts(root: str, path: str) -> tuple[str, ...]:
    """The components of `path` inside `root`, or `UnsafePathError`."""
    normal = canonical(root, path)
    if "\0" in path or not normal:
        raise UnsafePathError(
            root=root, path=path, why="is empty or holds a NUL byte", fix="name a file"
        )
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
        raise UnsafePathError(
            root=root,
            path=path,
            why="leaves the workspace",
            fix="use a path inside it, relative to the workspace",
        )
    if normal == ".":
        raise UnsafePathError(
            root=root,
            path=path,
            why="is the workspace itself",
            fix="name an entry in it",
        )
    return tuple(normal.split("/"))


def _open_root(root: str) -> int:
    try:
        return os.open(root, _DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePathError(
                root=root,
                path=".",
                why="is no longer a directory (a link or a file was put there)",
                fix="put the workspace directory back",
            ) from exc
        raise


def _open_dir(fd: int, name: str, root: str, shown: str) -> int | None:
    """Open directory `name` below `fd` without following it; None if missing."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        if stat.S_ISLNK(os.lstat(name, dir_fd=fd).st_mode):
            raise UnsafePathError(
                root=root,
                path=shown,
                why="goes through a symbolic link",
                fix="use the path the link points to, inside the workspace",
            ) from exc
        raise EntryKindError(
            path=shown,
            kind="file",
            action="go through",
            fix="a file cannot hold other entries; choose another path",
        ) from exc


@contextmanager
def parent(
    root: str, names: tuple[str, ...], *, create: bool
) -> Iterator[tuple[int | None, list[str]]]:
    """The parent directory of `names` as an fd, and the directories missing.

    With `create`, missing directories are made on the way (and listed);
    without, the fd is None when one is missing, and the list names every
    missing directory from the first one down.
    """
    fd = _open_root(root)
    missing: list[str] = []
    try:
        for depth, name in enumerate(names[:-1]):
            shown = "/".join(names[: depth + 1])
            child = None
            if create or not missing:
                child = _open_dir(fd, name, root, shown)
            if child is None and create:
                os.mkdir(name, dir_fd=fd)
                missing.append(shown)
                child = _open_dir(fd, name, root, shown)
                if child is None:  # removed again at once by someone else
                    raise FileNotFoundError(errno.ENOENT, "directory vanished", shown)
            if child is None:
                missing.append(shown)
                continue
            os.close(fd)
            fd = child
        yield (None if missing and not create else fd), missing
    finally:
        os.close(fd)


def lstat_at(fd: int, name: str) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=fd)
    except FileNotFoundError:
        return None


def kind_of(st: os.stat_result | None) -> str:
    """The image kind of an `lstat` result."""
    if st is None:
        return "missing"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISLNK(st.st_mode):
        return "link"
    return "other"


def read_file(fd: int, name: str, shown: str, limit: int) -> tuple[bytes, int]:
    """The bytes and permission bits of regular file `name`, never a link's target."""
    # O_NONBLOCK: a FIFO swapped in since the lstat must not hang the read.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    handle = os.open(name, flags, dir_fd=fd)
    try:
        st = os.fstat(handle)
        if not stat.S_ISREG(st.st_mode):
            raise EntryKindError(
                path=shown, kind="other", action="read", fix="leave it alone"
            )
        if st.st_size > limit:
            raise BeforeImageTooLargeError(path=shown, size=st.st_size, limit=limit)
        chunks = []
        while chunk := os.read(handle, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), stat.S_IMODE(st.st_mode)
    finally:
        os.close(handle)


def image(root: str, path: str, limit: int) -> dict[str, Any]:
    """What stands at `path` in `root` now (see the module docstring)."""
    names = parts(root, path)
    shown = "/".join(names)
    found: dict[str, Any] = {"root": root, "path": shown}
    with parent(root, names, create=False) as (fd, _missing):
        if fd is None:
            return {**found, "kind": "missing"}
        st = lstat_at(fd, names[-1])
        kind = kind_of(st)
        if kind == "missing":
            return {**found, "kind": "missing"}
        if kind == "link":
            return {
                **found,
                "kind": "link",
                "target": os.readlink(names[-1], dir_fd=fd),
            }
        if kind != "file":
            return {**found, "kind": kind}
        data, mode = read_file(fd, names[-1], shown, limit)
    return {
        **found,
        "kind": "file",
        "sha256": hashlib.sha256(data).hexdigest(),
        "content": data,
        "mode": mode,
    }


def write_new(fd: int, name: str, data: bytes, mode: int | None) -> None:
    """Put a new file holding `data` at `name`, replacing a file or link there.

    The bytes go to a fresh file that is then renamed over `name`: an inode
    shared with another name (a hard link) is never written to.
    """
    temp = f".{name[:40]}.lgrb-{uuid.uuid4().hex[:12]}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    handle = os.open(temp, flags, 0o666, dir_fd=fd)
    try:
        try:
            if mode is not None:
                os.fchmod(handle, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
        finally:
            os.close(handle)
        os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp, dir_fd=fd)
        raise


def remove_entry(fd: int, name: str) -> str:
    """Remove the file or link at `name`, or the directory if empty; say what."""
    st = lstat_at(fd, name)
    if st is None:
        return "was already gone"
    if stat.S_ISDIR(st.st_mode):
        try:
            os.rmdir(name, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return "kept (the directory is not empty)"
            raise
        return "removed"
    os.unlink(name, dir_fd=fd)
    return "removed"


def _remove_created_dirs(root: str, dirs: list[str]) -> list[str]:
    """Remove the directories a call created, deepest first, if empty; the kept."""
    kept = []
    for shown in reversed(dirs):
        names = tuple(shown.split("/"))
        with parent(root, names, create=False) as (fd, _missing):
            if fd is None:
                continue
            st = lstat_at(fd, names[-1])
            if st is None or not stat.S_ISDIR(st.st_mode):
                continue
            if remove_entry(fd, names[-1]) != "removed":
                kept.append(shown)
    return kept


def restore_image(before: dict[str, Any]) -> str:
    """Put `before` back at its path, without following any link; say what was done.

    Raises:
        UnsafePathError: The path now goes through a symbolic link (or the
            workspace itself was replaced).
        EntryKindError: A directory now stands where a file or link was.
        ImageTamperedError: The image's bytes do not match its hash.
    """
    root, shown, kind = before["root"], before["path"], before["kind"]
    names = parts(root, shown)
    if kind == "file" and (
        hashlib.sha256(before["content"]).hexdigest() != before["sha256"]
    ):
        raise ImageTamperedError(path=shown)
    if kind == "missing":
        return _restore_missing(root, names, before.get("missing_dirs", []))
    with parent(root, names, create=True) as (fd, _created):
        assert fd is not None
        st = lstat_at(fd, names[-1])
        if kind == "dir":
            if st is None:
                os.mkdir(names[-1], dir_fd=fd)
            elif not stat.S_ISDIR(st.st_mode):
                raise EntryKindError(
                    path=shown,
                    kind=kind_of(st),
                    action="restore the directory",
                    fix="move the entry away, then roll back again",
                )
            return f"restored directory {shown}"
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise EntryKindError(
                path=shown,
                kind="dir",
                action=f"restore the {_KIND_WORDS[kind]}",
                fix="move the directory away, then roll back again",
            )
        if kind == "link":
            if st is not None:
                os.unlink(names[-1], dir_fd=fd)
            os.symlink(before["target"], names[-1], dir_fd=fd)
            return f"restored link {shown}"
        write_new(fd, names[-1], before["content"], before["mode"])
    return f"restored {shown}"


def _listing(fd: int, name: str) -> list[str]:
    handle = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
    try:
        return os.listdir(handle)
    finally:
        os.close(handle)


def _restore_missing(root: str, names: tuple[str, ...], created: list[str]) -> str:
    shown = "/".join(names)
    with parent(root, names, create=False) as (fd, _missing):
        done = "was already gone" if fd is None else remove_entry(fd, names[-1])
        if done.startswith("kept") and fd is not None and not created:
            entries = sorted(_listing(fd, names[-1]))
            raise DirectoryNotEmptyError(path=shown, entries=entries)
    kept = _remove_created_dirs(root, created)
    note = f"; kept {', '.join(kept)} (not empty)" if kept else ""
    if done.startswith("kept"):
        return f"kept directory {shown} (not empty){note}"
    return f"removed {shown}{note}"
