"""The built wheel installs with the README's install line into a fresh
virtualenv and runs the quickstart there, away from the source tree."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.test_readme import ROOT, quickstart

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def install_line() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Install", 1)[1].split("```sh\n", 1)[1]
    first = block.splitlines()[0].split("#", 1)[0]
    words = shlex.split(first)
    assert words == ["pip", "install", "langgraph-rollback"]
    return words


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_wheel_installs_from_the_readme_line_and_runs_the_quickstart(
    tmp_path: Path,
) -> None:
    pip = [sys.executable, "-m", "pip"]
    dist, wheels = tmp_path / "dist", tmp_path / "wheels"
    run(*pip, "wheel", "--no-deps", "--quiet", "-w", dist, ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("langgraph_rollback-*.whl")
    run(*pip, "download", "--quiet", "-d", wheels, wheel, cwd=tmp_path)
    run(sys.executable, "-m", "venv", tmp_path / "venv", cwd=tmp_path)
    python = tmp_path / "venv" / "bin" / "python"
    _, install, name = install_line()
    offline = ["--no-index", "--find-links", dist, "--find-links", wheels]
    run(python, "-m", "pip", install, "--quiet", *offline, name, cwd=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "quickstart.py").write_text(quickstart())
    out = run(python, "quickstart.py", cwd=work)
    assert "Rolled back thread '1'" in out.stdout
    assert "deleted b.txt (undo of create_file)" in out.stdout
    assert not (work / "a.txt").exists() and (work / "agent.sqlite").exists()
    where = run(
        python, "-c", "import langgraph_rollback as m; print(m.__file__)", cwd=work
    )
    assert str(tmp_path / "venv") in where.stdout  # the installed copy, not the tree
    cli = run(
        tmp_path / "venv" / "bin" / "langgraph-rollback",
        "threads",
        "agent.sqlite",
        cwd=work,
    )
    thread, _, effects, applied = cli.stdout.splitlines()[1].split()[:4]
    assert (thread, effects, applied) == ("1", "2", "0")  # both undone
