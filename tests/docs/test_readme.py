"""The README's quickstart runs as written, in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quickstart() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_quickstart_runs(tmp_path: Path) -> None:
    (tmp_path / "quickstart.py").write_text(quickstart())
    out = subprocess.run(
        [sys.executable, "quickstart.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert "Rolled back thread '1'" in out.stdout
    assert "deleted b.txt (undo of create_file)" in out.stdout
    assert not (tmp_path / "a.txt").exists() and not (tmp_path / "b.txt").exists()
    assert (tmp_path / "agent.sqlite").exists()


def printed_output() -> str:
    """The README's text block after the quickstart: what it says it prints."""
    section = (ROOT / "README.md").read_text().split("## Quickstart", 1)[1]
    match = re.search(r"```text\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_quickstart_prints_what_the_readme_shows(tmp_path: Path) -> None:
    out = run_block(quickstart(), tmp_path)
    assert out.returncode == 0, out.stderr
    seconds = re.compile(r"\d+\.\d\d s\)")
    assert seconds.sub("s)", out.stdout) == seconds.sub("s)", printed_output())


def block_with(marker: str) -> str:
    """The README's one python block that contains `marker`."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, (marker, len(found))
    return found[0]


def run_block(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    (cwd / "block.py").write_text(code)
    return subprocess.run(
        [sys.executable, "block.py"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_importing_the_quickstart_runs_nothing(tmp_path: Path) -> None:
    (tmp_path / "quickstart.py").write_text(quickstart())
    out = run_block("import quickstart\nprint(quickstart.builder)\n", tmp_path)
    assert out.returncode == 0, out.stderr
    made = {p.name for p in tmp_path.iterdir()} - {"__pycache__"}
    assert made == {"block.py", "quickstart.py"}  # no agent.sqlite, no a.txt


def test_the_async_example_runs(tmp_path: Path) -> None:
    out = run_block(block_with("AsyncSqliteRollbackSaver.from_conn_string"), tmp_path)
    assert out.returncode == 0, out.stderr
    assert "1 write_note reversible applied" in out.stdout
    assert "deleted note.txt (undo of write_note)" in out.stdout
    assert "a posted message cannot be taken back" in out.stdout
    assert not (tmp_path / "note.txt").exists()


def test_the_create_agent_example_runs_offline(tmp_path: Path) -> None:
    out = run_block(block_with("create_agent("), tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == ["2 create_page reversible", "1 ping unknown"]  # no search
    assert "removed Hi (undo of create_page)" in out.stdout
    assert not (tmp_path / "Hi.md").exists()


def test_the_postgres_example_runs(tmp_path: Path, pg_url: str) -> None:
    code = block_with("PostgresRollbackSaver.from_conn_string(DB_URI)")
    code = re.sub(r'DB_URI = ".*"', f"DB_URI = {pg_url!r}", code)
    head = quickstart().split('if __name__ == "__main__":')[0]
    out = run_block(head + code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "create_file" in out.stdout
    assert (tmp_path / "a.txt").read_text() == "1"
