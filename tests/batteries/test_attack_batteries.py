"""Adversarial probes of the batteries, on real files, git and databases: a
rollback that says it completed must leave the world exactly as it was, and
touch nothing outside the workspace; what cannot be restored is refused."""

from __future__ import annotations

import hashlib
import os
import shutil
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
from langgraph_rollback.batteries.files import (
    BeforeImageTooLargeError,
    EntryKindError,
    file_tools,
)
from langgraph_rollback.batteries.git import GitWorkspace
from langgraph_rollback.batteries.sql import SqlDatabase, sql_tools
from tests.batteries.test_files import agent
from tests.batteries.test_files_regressions import tree
from tests.batteries.test_git import git
from tests.batteries.test_git_isolation import user_repository
from tests.batteries.test_git_regressions import one_step, run_and_roll_back

CFG: Any = {"configurable": {"thread_id": "attack"}}
CFG_GIT: Any = {"configurable": {"thread_id": "git"}}  # run_and_roll_back's


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


# --- files -----------------------------------------------------------------


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def test_a_move_onto_a_fifo_is_refused_before_it_runs(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "a.txt").write_text("source")
    os.mkfifo(ws / "pipe")
    call = ("move_file", {"source": "a.txt", "destination": "pipe"})
    with pytest.raises(EntryKindError, match="move onto"):
        run_files(ledger, registry, ws, [[call]])
    assert (ws / "a.txt").read_text() == "source"
    assert (ws / "pipe").is_fifo()


def test_a_move_onto_a_socket_is_refused_before_it_runs(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "a.txt").write_text("source")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(ws / "s"))
    call = ("move_file", {"source": "a.txt", "destination": "s"})
    try:
        with pytest.raises(EntryKindError, match="move onto"):
            run_files(ledger, registry, ws, [[call]])
    finally:
        sock.close()
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


def test_a_move_onto_its_own_hard_link_keeps_the_link(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
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
    assert os.path.samefile(ws / "a.txt", ws / "b.txt")


@pytest.mark.parametrize(
    "call",
    [
        ("write_file", {"path": os.fsdecode(b"caf\xe9.txt"), "content": "x"}),
        ("make_directory", {"path": os.fsdecode(b"d/caf\xe9")}),
        ("move_file", {"source": "a.txt", "destination": os.fsdecode(b"\xff")}),
    ],
)
def test_a_name_that_is_not_utf8_is_refused_before_the_call(
    ledger: SqliteRollbackSaver,
    registry: ToolRegistry,
    ws: Path,
    call: tuple[str, dict[str, Any]],
) -> None:
    # A lone surrogate (undecodable bytes of a name) does not survive the
    # ledger's serialiser, so the rollback would look at another path.
    (ws / "a.txt").write_text("a")
    before = tree(ws)
    with pytest.raises(RollbackError, match="not valid UTF-8"):
        run_files(ledger, registry, ws, [[call]])
    assert tree(ws) == before


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


@pytest.mark.parametrize(
    "call",
    [
        ("append_file", {"path": "a.txt", "content": "90abc"}),
        ("write_file", {"path": "a.txt", "content": "x" * 100}),
        ("write_file", {"path": "new/big.txt", "content": "x" * 100}),
    ],
)
def test_a_write_whose_result_passes_the_image_cap_is_refused_before_it_runs(
    ledger: SqliteRollbackSaver,
    registry: ToolRegistry,
    ws: Path,
    call: tuple[str, dict[str, Any]],
) -> None:
    # Its after-image could not be kept, so no rollback could verify it.
    (ws / "a.txt").write_text("12345678")
    before = tree(ws)
    with pytest.raises(BeforeImageTooLargeError, match="would be"):
        run_files(ledger, registry, ws, [[call]], max_image_bytes=10)
    assert tree(ws) == before


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


def test_force_never_removes_a_file_the_agent_did_not_write(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, ws: Path
) -> None:
    (ws / "caf?.txt").write_text("the user's")
    name = os.fsdecode(b"caf\xe9.txt")
    call = ("write_file", {"path": name, "content": "x"})
    graph = agent(ledger, file_tools(ws, registry=registry), [[call]])
    with pytest.raises(RollbackError, match="not valid UTF-8"):
        graph.invoke({"messages": []}, CFG, durability="sync")
    report = rollback(graph, CFG, to=first(graph), on_conflict="force")
    assert report.ok, str(report)
    assert tree(ws) == {"caf?.txt": (b"the user's", 0o644)}


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


def test_an_ignored_file_the_step_creates_is_removed(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    before = entries(repo)

    def edit() -> None:
        (repo / "build.log").write_text("created by the step")

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert entries(repo) == before or not report.ok, str(report)


def test_an_ignored_file_the_step_deletes_comes_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    (repo / ".env").write_text("API_KEY=the user's only copy\n")
    before = entries(repo)

    def edit() -> None:
        (repo / ".env").unlink()

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert entries(repo) == before or not report.ok, str(report)


def test_a_directory_mode_the_step_changes_comes_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    (repo / "src").chmod(0o755)
    before = entries(repo)

    def edit() -> None:
        (repo / "src").chmod(0o700)

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert entries(repo) == before or not report.ok, str(report)


def test_a_fifo_the_step_creates_is_removed(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, repo: Path
) -> None:
    before = entries(repo)

    def edit() -> None:
        os.mkfifo(repo / "src" / "pipe")

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert entries(repo) == before or not report.ok, str(report)


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
        shutil.rmtree(repo / "src")
        (repo / "src").symlink_to(outside)

    report = step_and_roll_back(ledger, registry, repo, edit)
    assert report.ok, str(report)
    assert entries(repo) == before
    assert (outside / "app.py").read_text() == "not the user's repository\n"


# --- SQL rows ------------------------------------------------------------------


class Db:
    """A database the agent changes, read back table by table."""

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def run(self, *statements: str) -> None:
        with self.db.transaction() as cur:
            for statement in statements:
                cur.execute(statement)

    def rows(self, table: str, order: str = "1") -> list[tuple[Any, ...]]:
        with self.db.transaction() as cur:
            cur.execute(f"SELECT * FROM {table} ORDER BY {order}")
            return [tuple(r) for r in cur.fetchall()]

    def value(self, sql: str) -> Any:
        with self.db.transaction() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]


@pytest.fixture(params=["sqlite", "postgres"])
def sql(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if request.param == "sqlite":
        path = str(tmp_path / "app.sqlite")
        return Db(SqlDatabase.sqlite(path, name="attack", foreign_keys=True))
    url = request.getfixturevalue("pg_url")
    return Db(SqlDatabase.postgres(url, name="attack"))


@pytest.fixture
def lite(tmp_path: Path) -> Db:
    path = str(tmp_path / "app.sqlite")
    return Db(SqlDatabase.sqlite(path, name="attack", foreign_keys=True))


@pytest.fixture
def pg(pg_url: str) -> Db:
    return Db(SqlDatabase.postgres(pg_url, name="attack"))


def run_sql(
    ledger: SqliteRollbackSaver,
    registry: ToolRegistry,
    target: Db,
    turns: list[list[tuple[str, dict[str, Any]]]],
) -> Any:
    graph = agent(ledger, sql_tools(target.db, registry=registry), turns)
    graph.invoke({"messages": []}, CFG, durability="sync")
    return graph


def test_a_self_referencing_cascade_delete_is_undone(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, sql: Db
) -> None:
    sql.run(
        "CREATE TABLE nodes (id INTEGER PRIMARY KEY, "
        "parent_id INTEGER REFERENCES nodes(id) ON DELETE CASCADE, name TEXT)",
        "INSERT INTO nodes VALUES (1, NULL, 'root'), (2, 1, 'child'), (3, 2, 'leaf')",
    )
    before = sql.rows("nodes")
    graph = run_sql(
        ledger,
        registry,
        sql,
        [[("delete_rows", {"table": "nodes", "where": {"id": 1}})]],
    )
    assert sql.rows("nodes") == []
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert sql.rows("nodes") == before


def test_a_self_referencing_set_null_update_is_undone(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, sql: Db
) -> None:
    sql.run(
        "CREATE TABLE nodes (id INTEGER PRIMARY KEY, code TEXT UNIQUE, "
        "parent_code TEXT REFERENCES nodes(code) ON UPDATE SET NULL)",
        "INSERT INTO nodes VALUES (1, 'a', NULL), (2, 'b', 'a')",
    )
    before = sql.rows("nodes")
    turns = [
        [
            (
                "update_rows",
                {"table": "nodes", "where": {"id": 1}, "values": {"code": "z"}},
            )
        ]
    ]
    graph = run_sql(ledger, registry, sql, turns)
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert sql.rows("nodes") == before


def test_an_on_update_cascade_through_a_unique_column_is_undone(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, sql: Db
) -> None:
    sql.run(
        "CREATE TABLE teams (id INTEGER PRIMARY KEY, code TEXT UNIQUE NOT NULL)",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, "
        "team TEXT REFERENCES teams(code) ON UPDATE CASCADE, "
        "backup TEXT REFERENCES teams(code) ON UPDATE SET NULL)",
        "INSERT INTO teams VALUES (1, 'red'), (2, 'blue')",
        "INSERT INTO people VALUES (10, 'red', 'red'), (11, 'blue', 'red')",
    )
    before = sql.rows("teams"), sql.rows("people")
    turns = [
        [
            (
                "update_rows",
                {"table": "teams", "where": {"id": 1}, "values": {"code": "crimson"}},
            )
        ]
    ]
    graph = run_sql(ledger, registry, sql, turns)
    assert sql.rows("people") == [(10, "crimson", None), (11, "blue", None)]
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert (sql.rows("teams"), sql.rows("people")) == before


def test_a_row_someone_added_since_is_not_changed_by_the_rollback(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, sql: Db
) -> None:
    sql.run(
        "CREATE TABLE teams (id INTEGER PRIMARY KEY, code TEXT UNIQUE NOT NULL)",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, "
        "team TEXT REFERENCES teams(code) ON UPDATE SET NULL)",
        "INSERT INTO teams VALUES (1, 'red')",
    )
    turns = [
        [
            (
                "update_rows",
                {"table": "teams", "where": {"id": 1}, "values": {"code": "crimson"}},
            )
        ]
    ]
    graph = run_sql(ledger, registry, sql, turns)
    sql.run("INSERT INTO people VALUES (20, 'crimson')")  # a user's row, since
    report = rollback(graph, CFG, to=first(graph))
    assert sql.rows("people") == [(20, "crimson")] or not report.ok, str(report)


def test_composite_keys_without_rowid_and_generated_columns(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, lite: Db
) -> None:
    lite.run(
        "CREATE TABLE stock (shop TEXT, sku TEXT, qty INTEGER, "
        "twice INTEGER GENERATED ALWAYS AS (qty * 2) STORED, "
        "PRIMARY KEY (sku, shop)) WITHOUT ROWID",
        "INSERT INTO stock (shop, sku, qty) VALUES ('a', 'x', 1), ('b', 'x', 2), ('a', 'y', 3)",
    )
    before = lite.rows("stock", "shop, sku")
    turns = [
        [
            (
                "insert_rows",
                {"table": "stock", "rows": [{"shop": "c", "sku": "x", "qty": 9}]},
            )
        ],
        [
            (
                "update_rows",
                {"table": "stock", "where": {"sku": "x"}, "values": {"qty": 0}},
            )
        ],
        [("delete_rows", {"table": "stock", "where": {"shop": "a"}})],
    ]
    graph = run_sql(ledger, registry, lite, turns)
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert lite.rows("stock", "shop, sku") == before


@pytest.mark.parametrize(
    "call",
    [
        ("delete_rows", {"table": "tags", "where": {"kind": "x"}}),
        ("insert_rows", {"table": "tags", "rows": [{"kind": "y"}]}),
    ],
)
def test_rows_with_null_primary_keys_in_sqlite_are_refused_before_the_call(
    ledger: SqliteRollbackSaver,
    registry: ToolRegistry,
    lite: Db,
    call: tuple[str, dict[str, Any]],
) -> None:
    # SQLite lets a non-INTEGER primary key of a rowid table hold NULLs: such
    # rows share one image key, so a call that touches them is refused.
    lite.run(
        "CREATE TABLE tags (name TEXT PRIMARY KEY, kind TEXT)",
        "INSERT INTO tags VALUES (NULL, 'x'), (NULL, 'x'), ('a', 'x')",
    )
    before = lite.rows("tags", "name, rowid")
    with pytest.raises(RollbackError, match="NULL primary key"):
        run_sql(ledger, registry, lite, [[call]])
    assert lite.rows("tags", "name, rowid") == before


def test_an_insert_into_a_table_with_on_conflict_replace_is_refused(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, lite: Db
) -> None:
    # The clause makes a plain INSERT delete the row it conflicts with, a row
    # the battery never images: the table is refused before the call.
    lite.run(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, "
        "email TEXT UNIQUE ON CONFLICT REPLACE, name TEXT)",
        "INSERT INTO users VALUES (1, 'ann@x', 'Ann')",
    )
    before = lite.rows("users")
    row = {"id": 2, "email": "ann@x", "name": "impostor"}
    call = ("insert_rows", {"table": "users", "rows": [row]})
    with pytest.raises(RollbackError, match="ON CONFLICT REPLACE"):
        run_sql(ledger, registry, lite, [[call]])
    assert lite.rows("users") == before


def test_an_update_of_a_table_with_on_conflict_replace_is_refused(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, lite: Db
) -> None:
    lite.run(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, "
        "email TEXT UNIQUE ON CONFLICT REPLACE, name TEXT)",
        "INSERT INTO users VALUES (1, 'ann@x', 'Ann'), (2, 'bob@x', 'Bob')",
    )
    before = lite.rows("users")
    turns = [
        [
            (
                "update_rows",
                {"table": "users", "where": {"id": 2}, "values": {"email": "ann@x"}},
            )
        ]
    ]
    with pytest.raises(RollbackError, match="ON CONFLICT REPLACE"):
        run_sql(ledger, registry, lite, turns)
    assert lite.rows("users") == before


def test_a_blob_primary_key_update_rolls_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, lite: Db
) -> None:
    lite.run(
        "CREATE TABLE blobs (k BLOB PRIMARY KEY, v TEXT)",
        "INSERT INTO blobs VALUES (x'00ff', 'x')",
    )
    before = lite.rows("blobs")
    turns = [
        [("update_rows", {"table": "blobs", "where": {"v": "x"}, "values": {"v": "y"}})]
    ]
    graph = run_sql(ledger, registry, lite, turns)
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert lite.rows("blobs") == before


def test_a_concurrent_change_to_a_row_is_drift_and_nothing_is_restored(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, sql: Db
) -> None:
    sql.run(
        "CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE kids (id INTEGER PRIMARY KEY, "
        "parent_id INTEGER REFERENCES parents(id) ON DELETE SET NULL, name TEXT)",
        "INSERT INTO parents VALUES (1, 'p'), (2, 'q')",
        "INSERT INTO kids VALUES (10, 1, 'k')",
    )
    turns = [
        [
            (
                "update_rows",
                {"table": "parents", "where": {"id": 2}, "values": {"name": "Q"}},
            )
        ],
        [("delete_rows", {"table": "parents", "where": {"id": 1}})],
    ]
    graph = run_sql(ledger, registry, sql, turns)
    sql.run("UPDATE kids SET name = 'renamed by a human' WHERE id = 10")
    world = sql.rows("parents"), sql.rows("kids")
    report = rollback(graph, CFG, to=first(graph))
    assert not report.ok and "RowDriftError" in str(report), str(report)
    assert (sql.rows("parents"), sql.rows("kids")) == world


def test_an_insert_rollback_says_the_sequence_is_not_given_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, pg: Db
) -> None:
    # A documented limitation: other sessions may have drawn from the
    # sequence since, so it is never rewound; the inverse's result says so.
    pg.run(
        "CREATE TABLE t (id SERIAL PRIMARY KEY, v TEXT)",
        "INSERT INTO t (v) VALUES ('a')",
    )
    graph = run_sql(
        ledger, registry, pg, [[("insert_rows", {"table": "t", "rows": [{"v": "b"}]})]]
    )
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert pg.rows("t") == [(1, "a")]
    assert "t_id_seq are not rewound" in report.undone[0].result, str(report)
    pg.run("INSERT INTO t (v) VALUES ('c')")
    assert pg.rows("t") == [(1, "a"), (3, "c")]


def test_a_jsonb_row_comes_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, pg: Db
) -> None:
    pg.run(
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body JSONB, tags TEXT[], n NUMERIC)",
        """INSERT INTO docs VALUES (1, '{"a": [1, 2]}', '{x,y}', 1.50)""",
    )
    before = pg.rows("docs")
    turns = [
        [("update_rows", {"table": "docs", "where": {"id": 1}, "values": {"n": 2}})],
        [("delete_rows", {"table": "docs", "where": {"id": 1}})],
    ]
    graph = run_sql(ledger, registry, pg, turns)
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert pg.rows("docs") == before


def test_an_identity_column_that_is_not_the_key_comes_back(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, pg: Db
) -> None:
    pg.run(
        "CREATE TABLE orders (code TEXT PRIMARY KEY, "
        "seq INTEGER GENERATED ALWAYS AS IDENTITY, "
        "total INTEGER, twice INTEGER GENERATED ALWAYS AS (total * 2) STORED)",
        "INSERT INTO orders (code, total) VALUES ('a', 1), ('b', 2)",
    )
    before = pg.rows("orders")
    turns = [
        [
            (
                "update_rows",
                {"table": "orders", "where": {"code": "a"}, "values": {"total": 5}},
            )
        ],
        [("delete_rows", {"table": "orders", "where": {"code": "b"}})],
    ]
    graph = run_sql(ledger, registry, pg, turns)
    report = rollback(graph, CFG, to=first(graph))
    assert report.ok, str(report)
    assert pg.rows("orders") == before


def test_a_table_of_another_schema_on_the_search_path_is_refused(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, pg: Db, pg_url: str
) -> None:
    pg.run(
        "CREATE SCHEMA other",
        "CREATE TABLE other.t (id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO other.t VALUES (1, 'x')",
    )
    db = SqlDatabase.postgres(
        pg_url
        + ("&" if "?" in pg_url else "?")
        + "options=-csearch_path%3Dpublic,other",
        name="attack",
    )
    graph = agent(
        ledger,
        sql_tools(db, registry=registry),
        [[("update_rows", {"table": "t", "where": {"id": 1}, "values": {"v": "y"}})]],
    )
    with pytest.raises(RollbackError):
        graph.invoke({"messages": []}, CFG, durability="sync")
    assert pg.rows("other.t") == [(1, "x")]


@pytest.mark.parametrize("table", ["nokey", "audited", "v_audited", "qualified"])
def test_tables_without_a_key_views_triggers_and_qualified_names_are_refused(
    ledger: SqliteRollbackSaver, registry: ToolRegistry, sql: Db, table: str
) -> None:
    sql.run(
        "CREATE TABLE nokey (id INTEGER, v TEXT)",
        "CREATE TABLE audited (id INTEGER PRIMARY KEY, v TEXT)",
        "CREATE TABLE audit (id INTEGER, what TEXT)",
        "CREATE VIEW v_audited AS SELECT * FROM audited",
        "INSERT INTO nokey VALUES (1, 'x')",
        "INSERT INTO audited VALUES (1, 'x')",
    )
    if sql.db.dialect == "sqlite":
        sql.run(
            "CREATE TRIGGER log AFTER UPDATE ON audited BEGIN "
            "INSERT INTO audit VALUES (new.id, 'updated'); END"
        )
    else:
        sql.run(
            "CREATE FUNCTION log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO audit VALUES (NEW.id, 'updated'); RETURN NEW; END $$",
            "CREATE TRIGGER log AFTER UPDATE ON audited "
            "FOR EACH ROW EXECUTE FUNCTION log()",
        )
    if table == "qualified":
        table = "main.audited" if sql.db.dialect == "sqlite" else "public.audited"
    world = sql.rows("nokey"), sql.rows("audited"), sql.rows("audit")
    call = ("update_rows", {"table": table, "where": {"id": 1}, "values": {"v": "y"}})
    with pytest.raises(RollbackError):
        run_sql(ledger, registry, sql, [[call]])
    assert (sql.rows("nokey"), sql.rows("audited"), sql.rows("audit")) == world
