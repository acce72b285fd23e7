"""Reversible file tools for a workspace directory.

```python
from langgraph_rollback.batteries.files import file_tools

tools = file_tools("workspace")          # write_file, append_file, delete_file,
node = ToolNode(tools)                   # move_file, make_directory
```

Every tool observes the paths it touches the same way, one observation per
path: the entry's *image* (a file's bytes, SHA-256 and permission bits, a
directory, a symbolic link's target, or nothing, with the directories that
are missing on the way). A rollback puts each before-image back and treats a
path that changed since the agent touched it as a conflict. Because every
tool observes a path alike, a rollback follows one file through several tools
(written, then moved, then appended to).

What a rollback restores:

- a file's bytes and permission bits (written anew and renamed into place, so
  an inode shared with a hard link outside the workspace is never written);
- a removed file or symbolic link (the link's target is kept, never followed);
- the directories a call created, removed again when empty (a directory
  that holds someone else's entries is kept, and the undo says so);
- a move: `move_file` records the move itself and one effect per path, the
  source (`move_file_source`) and the destination (`move_file_destination`);
  moving into an existing directory moves to `directory/<name>`, as `mv`
  does.

What it refuses:

- a path that leaves the workspace (`..` above it, an absolute path outside
  it) or goes through a symbolic link, before the call and again at undo time:
  every path is opened one component at a time relative to the workspace's
  directory, with `O_NOFOLLOW`, so a link swapped in after the call cannot make
  an undo touch anything outside, even with `on_conflict="force"`
  (`UnsafePathError`);
- a path that is not valid UTF-8 (a lone surrogate, as undecodable bytes of
  a name become), before the call: the ledger could not record it as it is
  (`UnsafePathError`);
- writing or appending through a symbolic link, moving or deleting a
  directory, anything on FIFOs, sockets and devices, moving onto one
  included (`EntryKindError`);
- a before-image past `max_image_bytes` (10 MiB by default), or a write or
  append whose result would pass it (its after-image could not be kept),
  before the call (`BeforeImageTooLargeError`).

Paths are read lexically and recorded in normal form (`./a/../b.txt` is
`b.txt`; an absolute path inside the workspace becomes relative). Content is
written as UTF-8. The observations keep the workspace's absolute path, so a
rollback in another process finds the files without the original objects.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import AfterValidator, BaseModel, Field, create_model

from langgraph_rollback._current import container_call, current_effect
from langgraph_rollback._declare import reversible
from langgraph_rollback._models import Effect
from langgraph_rollback.batteries._paths import (
    BeforeImageTooLargeError,
    DirectoryNotEmptyError,
    EntryKindError,
    ImageTamperedError,
    UnsafePathError,
    canonical,
    check_utf8,
    image,
    kind_of,
    lstat_at,
    parent,
    parts,
    read_file,
    restore_image,
    write_new,
)
from langgraph_rollback.core.registry import ToolRegistry

__all__ = [
    "BeforeImageTooLargeError",
    "DirectoryNotEmptyError",
    "EntryKindError",
    "ImageTamperedError",
    "UnsafePathError",
    "file_tools",
    "image",
    "restore_image",
]

DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
MOVED = {"recorded_by": ["move_file_source", "move_file_destination"]}
"""What `move_file`'s own observation says: its two path effects hold the images."""


def restore_path(effect: Effect) -> str:
    """Put back the before-image of the one path `effect` touched."""
    return restore_image(effect.before)


def note_move_undone(effect: Effect) -> str:
    """The inverse of `move_file` itself: its path effects did the restoring."""
    return (
        f"moved {effect.args['destination']} back to {effect.args['source']} "
        "(see move_file_destination and move_file_source)"
    )


@contextmanager
def _owning(tool: str) -> Iterator[None]:
    """Record the calls made inside `tool`'s own forward call (and no one else's)."""
    effect = current_effect()
    if effect is not None and effect.tool == tool:
        with container_call():
            yield
    else:
        yield


class _Workspace:
    """The operations of the tools, on one workspace root."""

    def __init__(self, root: str, limit: int) -> None:
        self.root, self.limit = root, limit

    def observe(self, path: str) -> dict[str, Any]:
        check_utf8(self.root, path)
        return image(self.root, path, self.limit)

    def kind(self, path: str) -> tuple[str, int]:
        """What stands at `path` (never following a link), and its size."""
        names = parts(self.root, path)
        with parent(self.root, names, create=False) as (fd, _missing):
            st = None if fd is None else lstat_at(fd, names[-1])
            return kind_of(st), (st.st_size if st is not None else 0)

    def check_result(self, path: str, data: bytes, *, append: bool) -> None:
        """Refuse a write whose result would pass the image cap, before it runs
        (its after-image could not be kept, so no rollback could verify it)."""
        kind, size = self.kind(path)
        total = len(data) + (size if append and kind == "file" else 0)
        if total > self.limit:
            raise BeforeImageTooLargeError(
                path="/".join(parts(self.root, path)),
                size=total,
                limit=self.limit,
                result=True,
            )

    def missing_parents(self, path: str) -> list[str]:
        """The directories above `path` that do not exist, outermost first."""
        names = parts(self.root, path)
        with parent(self.root, names, create=False) as (_fd, missing):
            return missing

    def put(self, path: str, data: bytes, *, append: bool) -> None:
        names = parts(self.root, path)
        shown = "/".join(names)
        with parent(self.root, names, create=True) as (fd, _created):
            assert fd is not None
            kind = kind_of(lstat_at(fd, names[-1]))
            if kind not in ("file", "missing"):
                raise EntryKindError(
                    path=shown,
                    kind=kind,
                    action="write to",
                    fix="write to a regular file (the tools never write through links)",
                )
            old, mode = b"", None
            if kind == "file":
                old, mode = read_file(fd, names[-1], shown, self.limit)
            write_new(fd, names[-1], (old if append else b"") + data, mode)

    def delete(self, path: str) -> None:
        names = parts(self.root, path)
        with parent(self.root, names, create=False) as (fd, _missing):
            kind = "missing" if fd is None else kind_of(lstat_at(fd, names[-1]))
            if kind == "missing":
                raise FileNotFoundError(f"{path} does not exist in the workspace")
            if kind in ("dir", "other"):
                raise EntryKindError(
                    path=path,
                    kind=kind,
                    action="delete",
                    fix="delete the files inside a directory one by one",
                )
            assert fd is not None
            os.unlink(names[-1], dir_fd=fd)

    def make_directory(self, path: str) -> None:
        names = parts(self.root, path)
        with parent(self.root, names, create=True) as (fd, _created):
            assert fd is not None
            kind = kind_of(lstat_at(fd, names[-1]))
            if kind == "missing":
                os.mkdir(names[-1], dir_fd=fd)
            elif kind != "dir":
                raise EntryKindError(
                    path=path,
                    kind=kind,
                    action="make a directory at",
                    fix="pick another path",
                )

    def destination_of(self, source: str, destination: str) -> str:
        """Where a move lands: `destination`, or inside it when it is a directory."""
        if self.observe(destination)["kind"] == "dir":
            name = parts(self.root, source)[-1]
            return "/".join((*parts(self.root, destination), name))
        return destination

    def rename(self, source: str, destination: str) -> None:
        src, dst = parts(self.root, source), parts(self.root, destination)
        with parent(self.root, src, create=False) as (sfd, _missing):
            kind = "missing" if sfd is None else kind_of(lstat_at(sfd, src[-1]))
            if kind == "missing":
                raise FileNotFoundError(f"{source} does not exist in the workspace")
            if kind not in ("file", "link"):
                raise EntryKindError(
                    path=source, kind=kind, action="move", fix="move files one by one"
                )
            with parent(self.root, dst, create=True) as (dfd, _created):
                assert sfd is not None and dfd is not None
                there = kind_of(lstat_at(dfd, dst[-1]))
                if there in ("dir", "other"):
                    raise EntryKindError(
                        path=destination,
                        kind=there,
                        action="move onto",
                        fix="name a path inside the directory"
                        if there == "dir"
                        else "remove it first, or move to another path",
                    )
                os.rename(src[-1], dst[-1], src_dir_fd=sfd, dst_dir_fd=dfd)


def _schema(
    name: str, root: str, paths: tuple[str, ...], texts: tuple[str, ...]
) -> type[BaseModel]:
    """The arguments of one tool, with its path arguments put in normal form."""
    normal = AfterValidator(lambda value: canonical(root, value))
    fields: dict[str, Any] = {
        p: (Annotated[str, normal], Field(description="A path in the workspace."))
        for p in paths
    }
    fields.update({t: (str, Field(description="The text (UTF-8).")) for t in texts})
    model: type[BaseModel] = create_model(name, **fields)
    return model


class _Declarer:
    """Declares the tools of one workspace in one registry."""

    def __init__(self, ws: _Workspace, registry: ToolRegistry | None) -> None:
        self.ws, self.registry = ws, registry

        # One observation function for every path effect: the rollback plan
        # chains effects on the same target by (observe, path).
        def observe(path: str, **_: Any) -> dict[str, Any]:
            return ws.observe(path)

        self.observe = observe

    def identify(self, fn: Callable[..., Any]) -> None:
        # The workspace is part of the tool's identity: another workspace in
        # the same registry is a different tool under the same name.
        fn.__qualname__ = f"file_tools[{self.ws.root}].{fn.__name__}"

    def step(self, fn: Callable[..., str]) -> Callable[..., str]:
        """Declare an inner step, called by the tools (one path effect)."""
        self.identify(fn)
        declared: Callable[..., str] = reversible(
            undo=restore_path, observe=self.observe, registry=self.registry
        )(fn)
        return declared

    def tool(
        self,
        fn: Callable[..., str],
        paths: tuple[str, ...],
        texts: tuple[str, ...] = (),
        *,
        undo: Callable[[Effect], str] = restore_path,
        observer: Callable[..., Any] | None = None,
    ) -> BaseTool:
        """Declare a tool the model calls, its path arguments in normal form."""
        self.identify(fn)
        schema = _schema(fn.__name__, self.ws.root, paths, texts)
        lc_tool = StructuredTool.from_function(fn, args_schema=schema)
        declared: BaseTool = reversible(
            undo=undo, observe=observer or self.observe, registry=self.registry
        )(lc_tool)
        return declared


_MakeParents = Callable[[str, str], None]
"""`make_parents(owner, path)`: create the directories missing above `path`."""


def _parents_step(d: _Declarer) -> _MakeParents:
    """Declare the step that creates one missing parent directory."""

    def create_parent_directory(path: str, for_path: str) -> str:
        d.ws.make_directory(path)
        return f"created directory {path} for {for_path}"

    make_parent = d.step(create_parent_directory)

    def make_parents(owner: str, path: str) -> None:
        # Each directory a call creates is an effect of its own, keyed by its
        # path, so an earlier effect on that path chains through it.
        with _owning(owner):
            for name in d.ws.missing_parents(path):
                make_parent(path=name, for_path=path)

    return make_parents


def _move_steps(d: _Declarer, make_parents: _MakeParents) -> Callable[..., str]:
    """Declare the two path effects of a move; return the source's step."""
    ws = d.ws

    def move_file_destination(path: str, source: str) -> str:
        make_parents("move_file_destination", path)
        ws.rename(source, path)
        return f"{source} arrived at {path}"

    arrive = d.step(move_file_destination)

    def move_file_source(path: str, destination: str) -> str:
        with _owning("move_file_source"):
            return arrive(path=destination, source=path)

    return d.step(move_file_source)


def _write_file(d: _Declarer, make_parents: _MakeParents) -> BaseTool:
    def write_file(path: str, content: str) -> str:
        """Write `content` to the file at `path`, replacing what was there."""
        data = content.encode()
        d.ws.check_result(path, data, append=False)
        make_parents("write_file", path)
        d.ws.put(path, data, append=False)
        return f"wrote {len(content)} characters to {path}"

    return d.tool(write_file, ("path",), ("content",))


def _append_file(d: _Declarer, make_parents: _MakeParents) -> BaseTool:
    def append_file(path: str, content: str) -> str:
        """Append `content` to the file at `path` (created if missing)."""
        data = content.encode()
        d.ws.check_result(path, data, append=True)
        make_parents("append_file", path)
        d.ws.put(path, data, append=True)
        return f"appended {len(content)} characters to {path}"

    return d.tool(append_file, ("path",), ("content",))


def _delete_file(d: _Declarer) -> BaseTool:
    def delete_file(path: str) -> str:
        """Delete the file at `path`."""
        d.ws.delete(path)
        return f"deleted {path}"

    return d.tool(delete_file, ("path",))


def _move_file(d: _Declarer, leave: Callable[..., str]) -> BaseTool:
    root = d.ws.root

    def observe_move(source: str, destination: str) -> dict[str, Any]:
        # Refused here, before any path effect is recorded.
        check_utf8(root, source)
        check_utf8(root, destination)
        return dict(MOVED)

    def move_file(source: str, destination: str) -> str:
        """Move the file at `source` to `destination`, replacing what was there.

        Into an existing directory, the file keeps its name.
        """
        source = canonical(root, source)
        target = d.ws.destination_of(source, canonical(root, destination))
        if d.ws.kind(target)[0] == "other":
            raise EntryKindError(
                path=target,
                kind="other",
                action="move onto",
                fix="remove it first, or move to another path",
            )
        with _owning("move_file"):
            leave(path=source, destination=target)
        return f"moved {source} to {target}"

    return d.tool(
        move_file,
        ("source", "destination"),
        undo=note_move_undone,
        observer=observe_move,
    )


def _make_directory(d: _Declarer, make_parents: _MakeParents) -> BaseTool:
    def make_directory(path: str) -> str:
        """Create the directory `path` (and its parents)."""
        make_parents("make_directory", path)
        d.ws.make_directory(path)
        return f"created directory {path}"

    return d.tool(make_directory, ("path",))


def file_tools(
    root: str | os.PathLike[str],
    *,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    registry: ToolRegistry | None = None,
) -> list[BaseTool]:
    """The five file tools, working inside `root` (created if missing).

    Args:
        root: The workspace directory.
        max_image_bytes: The largest before-image kept in the ledger.
        registry: Where the tools are declared (the default registry
            otherwise). One workspace per registry: tools of a second
            workspace in the same registry raise `DuplicateToolError` (give
            each its own `ToolRegistry`); calling again for the same
            workspace redeclares them.
    """
    base = Path(root).resolve()
    base.mkdir(parents=True, exist_ok=True)
    d = _Declarer(_Workspace(str(base), max_image_bytes), registry)
    make_parents = _parents_step(d)
    leave = _move_steps(d, make_parents)
    return [
        _write_file(d, make_parents),
        _append_file(d, make_parents),
        _delete_file(d),
        _move_file(d, leave),
        _make_directory(d, make_parents),
    ]
