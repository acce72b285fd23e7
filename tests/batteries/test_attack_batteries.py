"""Adversarial probes of the batteries, on real files, git and databases: a
rollback that says it completed must leave the world exactly as it was, and
touch nothing outside the workspace; what cannot be restored is refused."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from langgraph_rollback import (
    RollbackError,
    SqliteRollbackSaver,
    ToolRegistry,
    rollback,
)
from langgraph_rollback.batteries.files import file_tools
from langgraph_rollback.batteries.git import GitWorkspace
from tests.batteries.test_files import agent
from tests.batteries.test_files_regressions import tree
from tests.batteries.test_git import git
from tests.batteries.test_git_isolation import user_repository
from tests.batteries.test_git_regressions import one_step, run_and_roll_back

CFG: Any = {"configurable": {"thread_id": "attack"}}


def run_files(
    ledger: SqliteRollbackSaver,
    registry: ToolRegistry,
    root: Path,
    turns: list[list[tuple[str, dict[str, Any]]]],
    **tools: Any,
) -> Any:
    graph = agent(ledger, file_tools(root, registry=registry, **tools), turns)
    graph.invoke({"messages": []}, CFG, durability="sync")
    return graph


def first(graph: Any) -> Any:
    return list(graph.get_state_history(CFG))[-1]


def tool_texts(graph: Any) -> list[str]:
    """What the tools answered, in order."""
    state = graph.get_state(CFG)
    return [str(m.content) for m in state.values["messages"] if m.type == "tool"]


# --- files -----------------------------------------------------------------


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.mark.xfail(
    strict=True,
    reason="known defect: move_file replaces a FIFO at the destination; its inverse then fails with KeyError 'content'",
)
def test_a_move_onto_a_fifo_is_refused_or_undone(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "a.txt").write_text("source")
    os.mkfifo(ws / "pipe")
    graph = run_files(
        ledger,
        registry,
        ws,
        [[("move_file", {"source": "a.txt", "destination": "pipe"})]],
    )
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert (ws / "a.txt").read_text() == "source"
    assert (ws / "pipe").is_fifo()


@pytest.mark.xfail(
    strict=True,
    reason="known defect: move_file replaces a socket at the destination; its inverse then fails with KeyError 'content'",
)
def test_a_move_onto_a_socket_is_refused_or_undone(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "a.txt").write_text("source")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(ws / "s"))
    try:
        graph = run_files(
            ledger,
            registry,
            ws,
            [[("move_file", {"source": "a.txt", "destination": "s"})]],
        )
        report = rollback(graph, CFG, to=first(graph))
    finally:
        sock.close()
    assert report.ok, str(report)
    assert (ws / "a.txt").read_text() == "source"
    assert (ws / "s").is_socket()


def test_a_move_onto_itself_rolls_back_to_the_same_file(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "a.txt").write_text("same")
    before = tree(ws)
    graph = run_files(
        ledger,
        registry,
        ws,
        [[("move_file", {"source": "a.txt", "destination": "./a.txt"})]],
    )
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert tree(ws) == before


def test_a_move_onto_its_own_hard_link_rolls_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    # rename(2) of one name onto another name of the same inode does nothing.
    (ws / "a.txt").write_text("twin")
    os.link(ws / "a.txt", ws / "b.txt")
    before = tree(ws)
    graph = run_files(
        ledger,
        registry,
        ws,
        [[("move_file", {"source": "a.txt", "destination": "b.txt"})]],
    )
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert tree(ws) == before


def test_a_move_onto_its_own_hard_link_keeps_the_link(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "a.txt").write_text("twin")
    os.link(ws / "a.txt", ws / "b.txt")
    graph = run_files(
        ledger,
        registry,
        ws,
        [[("move_file", {"source": "a.txt", "destination": "b.txt"})]],
    )
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert os.path.samefile(ws / "a.txt", ws / "b.txt")


@pytest.mark.xfail(
    strict=True,
    reason="known defect: a path with a lone surrogate is stored as '?' by the ledger's msgpack, so the rollback looks at another path (false conflict)",
)
def test_a_name_that_is_not_utf8_is_recorded_and_undone(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    name = os.fsdecode(b"caf\xe9.txt")  # a lone surrogate in the str
    graph = run_files(
        ledger, registry, ws, [[("write_file", {"path": name, "content": "x"})]]
    )
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert os.listdir(ws) == []


def test_names_with_newlines_and_long_names_are_undone(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "line\nbreak.txt").write_text("old")
    before = tree(ws)
    deep = "/".join(["d" * 200] * 25) + "/" + "f" * 255  # past PATH_MAX
    turns = [
        [
            ("write_file", {"path": "line\nbreak.txt", "content": "new"}),
            ("write_file", {"path": "é" * 127, "content": "long"}),
            ("write_file", {"path": deep, "content": "deep"}),
        ]
    ]
    graph = run_files(ledger, registry, ws, turns)
    assert (ws / ("é" * 127)).read_text() == "long"
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert tree(ws) == before


def test_content_that_cannot_be_encoded_leaves_no_directories(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    turns = [[("write_file", {"path": "a/b/c.txt", "content": "\ud800"})]]
    graph = agent(ledger, file_tools(ws, registry=registry), turns)
    with pytest.raises(UnicodeEncodeError):
        graph.invoke({"messages": []}, CFG, durability="sync")
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert os.listdir(ws) == []


@pytest.mark.xfail(
    strict=True,
    reason="known defect: a write whose result passes max_image_bytes runs, then every rollback aborts (the after-image cannot be read) unless forced",
)
def test_an_append_past_the_image_cap_is_undone(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "a.txt").write_text("12345678")
    turns = [[("append_file", {"path": "a.txt", "content": "90abc"})]]
    graph = run_files(ledger, registry, ws, turns, max_image_bytes=10)
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert (ws / "a.txt").read_text() == "12345678"


@pytest.mark.xfail(
    strict=True,
    reason="known defect: a write whose result passes max_image_bytes runs, then every rollback aborts (the after-image cannot be read) unless forced",
)
def test_a_new_file_past_the_image_cap_is_undone(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    turns = [[("write_file", {"path": "big.txt", "content": "x" * 100})]]
    graph = run_files(ledger, registry, ws, turns, max_image_bytes=10)
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert os.listdir(ws) == []


def test_a_written_hard_link_leaves_its_other_name_alone(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("shared")
    os.link(outside, ws / "a.txt")
    graph = run_files(
        ledger, registry, ws, [[("write_file", {"path": "a.txt", "content": "agent"})]]
    )
    assert outside.read_text() == "shared"
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert (ws / "a.txt").read_text() == "shared" and outside.read_text() == "shared"


def test_rollback_to_the_middle_of_three_tools_on_one_file(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "a.txt").write_text("v0")
    (ws / "a.txt").chmod(0o640)
    turns = [
        [("write_file", {"path": "a.txt", "content": "v1"})],
        [("append_file", {"path": "a.txt", "content": "+v2"})],
        [("move_file", {"source": "a.txt", "destination": "n/b.txt"})],
        [("delete_file", {"path": "n/b.txt"})],
    ]
    graph = run_files(ledger, registry, ws, turns)
    history = list(graph.get_state_history(CFG))
    # The checkpoint right after the first tool ran: one tool message.
    middle = next(
        s
        for s in reversed(history)
        if sum(m.type == "tool" for m in s.values.get("messages", [])) == 1
    )
    report = rollback(graph, CFG, to=middle)
    assert report.ok, str(report)
    assert tree(ws) == {"a.txt": (b"v1", 0o640)}


def test_a_mode_change_since_the_call_is_a_conflict(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "a.txt").write_text("old")
    graph = run_files(
        ledger, registry, ws, [[("write_file", {"path": "a.txt", "content": "new"})]]
    )
    (ws / "a.txt").chmod(0o600)
    report = rollback(graph, CFG, to=first(graph))
    assert not report.ok and report.conflicts, str(report)
    assert tree(ws) == {"a.txt": (b"new", 0o600)}


def test_force_over_a_changed_file_puts_the_before_image_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "a.txt").write_text("old")
    (ws / "a.txt").chmod(0o751)
    graph = run_files(
        ledger, registry, ws, [[("write_file", {"path": "a.txt", "content": "new"})]]
    )
    (ws / "a.txt").write_text("a human's edit")
    report = rollback(graph, CFG, to=first(graph), on_conflict="force")
    assert report.ok, str(report)
    assert tree(ws) == {"a.txt": (b"old", 0o751)}


@pytest.mark.parametrize(
    "call",
    [
        ("move_file", {"source": "d", "destination": "e"}),
        ("move_file", {"source": "d/f.txt", "destination": "link/g.txt"}),
        ("delete_file", {"path": "d"}),
        ("write_file", {"path": "link/f.txt", "content": "through a link"}),
        ("write_file", {"path": "link", "content": "over a link"}),
        ("make_directory", {"path": "d/f.txt"}),
        ("append_file", {"path": "d", "content": "onto a directory"}),
    ],
)
def test_refused_calls_change_nothing(
    ledger: SqliteRollbackSaver,
    registry: ToolRegistry,
    ws: Path,
    call: tuple[str, dict[str, Any]],
) -> None:
    (ws / "d").mkdir()
    (ws / "d" / "f.txt").write_text("inside")
    (ws / "link").symlink_to("d")
    before = tree(ws)
    with pytest.raises(RollbackError):
        run_files(ledger, registry, ws, [[call]])
    assert tree(ws) == before


def test_a_deleted_link_to_outside_comes_back_as_the_link(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path, tmp_path: Path
) -> None:
    (tmp_path / "secret").write_text("outside")
    (ws / "out").symlink_to(tmp_path / "secret")
    before = tree(ws)
    graph = run_files(ledger, registry, ws, [[("delete_file", {"path": "out"})]])
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert tree(ws) == before and (tmp_path / "secret").read_text() == "outside"


@pytest.mark.xfail(
    strict=True,
    reason="known defect: a path with a lone surrogate is stored as '?': a forced rollback removes the user's 'caf?.txt', says completed, and leaves the agent's file",
)
def test_force_never_removes_a_file_the_agent_did_not_write(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "caf?.txt").write_text("the user's")
    name = os.fsdecode(b"caf\xe9.txt")
    graph = run_files(
        ledger, registry, ws, [[("write_file", {"path": name, "content": "x"})]]
    )
    report = rollback(graph, CFG, to=first(graph), on_conflict="force")
    assert (ws / "caf?.txt").exists(), str(report)
    assert not report.ok


def test_a_write_past_the_cap_is_undone_with_force(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "a.txt").write_text("12345678")
    turns = [[("write_file", {"path": "a.txt", "content": "x" * 100})]]
    graph = run_files(ledger, registry, ws, turns, max_image_bytes=10)
    report = rollback(graph, CFG, to=first(graph), on_conflict="force")
    assert report.ok, str(report)
    assert (ws / "a.txt").read_text() == "12345678"


# --- git workspace -----------------------------------------------------------


def entries(root: Path) -> dict[str, Any]:
    """`tree` of a working tree without .git, with directory modes and FIFOs."""
    found: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = ("dir", st.st_mode & 0o7777)
            elif path.is_fifo():
                found[key] = "fifo"
            else:
                found[key] = (path.read_bytes(), st.st_mode & 0o7777)
    return found


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    git(root, "init", "-q")
    (root / "src" / "app.py").write_text("A = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / ".gitignore").write_text("*.log\n.env\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def step_and_roll_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, work: Path, edit: Any
) -> Any:
    workspace = GitWorkspace(work, registry=registry)
    return run_and_roll_back(one_step(ledger, workspace, edit))


def test_exec_bits_links_and_odd_names_come_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    (repo / "link").symlink_to("src/app.py")
    odd = repo / os.fsdecode(b"new\nline \xff.txt")
    odd.write_text("odd")
    odd.chmod(0o600)
    before, users = entries(repo), user_repository(repo, repo)

    def edit() -> None:
        (repo / "run.sh").chmod(0o755)
        (repo / "src" / "app.py").chmod(0o755)
        (repo / "link").unlink()
        (repo / "link").symlink_to("elsewhere")
        odd.chmod(0o644)
        odd.write_text("changed")

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert report.ok, str(report)
    assert entries(repo) == before
    assert user_repository(repo, repo) == users


def test_user_autocrlf_and_a_filter_driver_are_not_applied(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "filter-ran"
    git(repo, "config", "core.autocrlf", "true")
    git(repo, "config", "filter.lfs.clean", f"sh -c 'touch {marker}; cat'")
    git(repo, "config", "filter.lfs.smudge", f"sh -c 'touch {marker}; cat'")
    git(repo, "config", "filter.lfs.required", "true")
    (repo / ".gitattributes").write_text("*.bin filter=lfs\n*.txt text eol=crlf\n")
    (repo / "data.bin").write_bytes(b"\x00\r\nraw\r\n")
    (repo / "doc.txt").write_bytes(b"lf only\n")
    before = entries(repo)

    def edit() -> None:
        (repo / "data.bin").write_bytes(b"changed\n")
        (repo / "doc.txt").write_bytes(b"changed\r\n")

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert report.ok, str(report)
    assert entries(repo) == before
    assert not marker.exists()


@pytest.mark.xfail(
    strict=True,
    reason="known defect: git ls-files runs in the user's repository with its "
    "config, so the user's core.fsmonitor command runs at every snapshot",
)
def test_the_users_fsmonitor_command_never_runs(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "fsmonitor-ran"
    git(repo, "config", "core.fsmonitor", f"sh -c 'touch {marker}'")

    def edit() -> None:
        (repo / "src" / "app.py").write_text("A = 2\n")

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert report.ok, str(report)
    assert not marker.exists()


def test_an_empty_repository(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    (empty / "a.txt").write_text("untracked")
    before = entries(empty)
    users = sorted(str(p.relative_to(empty)) for p in (empty / ".git").rglob("*"))

    def edit() -> None:
        (empty / "a.txt").write_text("changed")
        (empty / "b.txt").write_text("new")

    report = step_and_roll_back(ledger, registry, empty, edit)
    assert report.ok, str(report)
    assert entries(empty) == before
    now = sorted(str(p.relative_to(empty)) for p in (empty / ".git").rglob("*"))
    assert [p for p in now if "lgrb-snapshots" not in p] == users


def test_a_user_commit_between_the_step_and_the_rollback(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    git(repo, "checkout", "-q", "--detach")
    before = entries(repo)

    def edit() -> None:
        (repo / "src" / "app.py").write_text("A = 2\n")

    workspace = GitWorkspace(repo, registry=registry)
    graph = one_step(ledger, workspace, edit)
    graph.invoke({"log": []}, CFG_GIT, durability="sync")
    git(repo, "commit", "-q", "-am", "the user's commit")
    users = user_repository(repo, repo)
    report = rollback(graph, CFG_GIT, to=list(graph.get_state_history(CFG_GIT))[-1])
    assert report.ok, str(report)
    assert entries(repo) == before
    after = user_repository(repo, repo)
    assert {k: v for k, v in after.items() if k != "status"} == {
        k: v for k, v in users.items() if k != "status"
    }


CFG_GIT: Any = {"configurable": {"thread_id": "git"}}


@pytest.mark.xfail(
    strict=True,
    reason="known defect: additions are found under the step's ignore rules: the rollback fails verification, and rolling back again aborts on a conflict of its own making",
)
def test_a_file_the_step_creates_and_ignores_is_removed(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    before = entries(repo)

    def edit() -> None:
        (repo / "payload.txt").write_text("created by the step")
        with (repo / ".gitignore").open("a") as ignore:
            ignore.write("payload.txt\n")

    workspace = GitWorkspace(repo, registry=registry)
    graph = one_step(ledger, workspace, edit)
    report = run_and_roll_back(graph)
    assert report.ok, str(report)
    assert entries(repo) == before


@pytest.mark.xfail(
    strict=True,
    reason="known defect: ignored files are outside the snapshots: one the step creates stays, and the rollback says completed",
)
def test_an_ignored_file_the_step_creates_is_removed(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    before = entries(repo)

    def edit() -> None:
        (repo / "build.log").write_text("created by the step")

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert entries(repo) == before or not report.ok, str(report)


@pytest.mark.xfail(
    strict=True,
    reason="known defect: ignored files are outside the snapshots: one the step deletes (.env) is lost, and the rollback says completed",
)
def test_an_ignored_file_the_step_deletes_comes_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    (repo / ".env").write_text("API_KEY=the user's only copy\n")
    before = entries(repo)

    def edit() -> None:
        (repo / ".env").unlink()

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert entries(repo) == before or not report.ok, str(report)


@pytest.mark.xfail(
    strict=True,
    reason="known defect: snapshots keep no directory modes: a chmod of a directory stays, and the rollback says completed",
)
def test_a_directory_mode_the_step_changes_comes_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    (repo / "src").chmod(0o755)
    before = entries(repo)

    def edit() -> None:
        (repo / "src").chmod(0o700)

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert entries(repo) == before or not report.ok, str(report)


@pytest.mark.xfail(
    strict=True,
    reason="known defect: git lists no FIFOs: one the step creates stays, and the rollback says completed",
)
def test_a_fifo_the_step_creates_is_removed(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    before = entries(repo)

    def edit() -> None:
        os.mkfifo(repo / "src" / "pipe")

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert entries(repo) == before or not report.ok, str(report)


@pytest.mark.xfail(
    strict=True,
    reason="known defect: the report names nested repositories whose HEAD moved, never the user's own repository",
)
def test_a_commit_the_step_makes_in_the_users_repository_is_reported(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD")

    def edit() -> None:
        (repo / "src" / "app.py").write_text("A = 3\n")
        git(repo, "commit", "-q", "-am", "the agent commits")

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert report.ok, str(report)
    # The tree is back, HEAD is not: the report says so, as for nested ones.
    assert git(repo, "rev-parse", "HEAD") != head
    assert "HEAD" in str(report), str(report)


def test_a_deleted_nested_repository_is_reported(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    inner = repo / "vendor"
    inner.mkdir()
    git(inner, "init", "-q")
    (inner / "lib.py").write_text("X = 1\n")
    git(inner, "add", "-A")
    git(inner, "commit", "-q", "-m", "lib")

    def edit() -> None:
        import shutil

        shutil.rmtree(inner)

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert (inner / "lib.py").read_text() == "X = 1\n"
    assert not (inner / ".git").exists()
    assert "vendor" in str(report), str(report)


def test_a_sparse_checkout_and_a_submodule(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path, tmp_path: Path
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q")
    (lib / "lib.py").write_text("L = 1\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib")
    git(
        repo,
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        str(lib),
        "sub",
    )
    (repo / "docs").mkdir()
    (repo / "docs" / "d.md").write_text("doc\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sub and docs")
    git(repo, "sparse-checkout", "set", "--no-cone", "/*", "!/docs/")
    before, users = entries(repo), user_repository(repo, repo)
    sub_head = git(repo / "sub", "rev-parse", "HEAD")

    def edit() -> None:
        (repo / "sub" / "lib.py").write_text("L = 2\n")
        (repo / "sub" / "new.py").write_text("new\n")
        (repo / "docs").mkdir(exist_ok=True)
        (repo / "docs" / "d.md").write_text("not checked out\n")

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert report.ok, str(report)
    assert entries(repo) == before
    assert user_repository(repo, repo) == users
    assert git(repo / "sub", "rev-parse", "HEAD") == sub_head


def test_a_huge_file_comes_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    big = repo / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 24)
    digest = hashlib.sha256(big.read_bytes()).hexdigest()

    def edit() -> None:
        with big.open("r+b") as f:
            f.seek(12 << 20)
            f.write(b"agent")

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert report.ok, str(report)
    assert hashlib.sha256(big.read_bytes()).hexdigest() == digest


def test_a_directory_swapped_for_a_link_out_is_undone_without_following_it(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "app.py").write_text("not the user's repository\n")
    before = entries(repo)

    def edit() -> None:
        import shutil

        shutil.rmtree(repo / "src")
        (repo / "src").symlink_to(outside)

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert report.ok, str(report)
    assert entries(repo) == before
    assert (outside / "app.py").read_text() == "not the user's repository\n"
