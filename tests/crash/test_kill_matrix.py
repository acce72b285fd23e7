"""Runs the kill -9 matrix (tests/support/kill_matrix.py) and prints its summary line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def run_matrix(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "matrix.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.kill_matrix", "--out", str(out), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary: dict[str, Any] = json.loads(out.read_text())
    return summary


def report(summary: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(
            f"\n[kill matrix] {summary['backend']}: kill points tried "
            f"{summary['kill_points_tried']} ({summary['named_points']} named, all "
            f"killed: {summary['named_killed'] == summary['named_points']}; "
            f"{summary['random_times']} random, {summary['random_killed']} killed "
            f"mid-run), invariant violations {summary['violations']} "
            f"({summary['seconds']} s)"
        )


@pytest.mark.timeout(600)
def test_kill_matrix_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = run_matrix(tmp_path, "--backend", "sqlite", "--random", "220")
    report(summary, capsys)
    assert summary["violation_details"] == []
    assert summary["violations"] == 0
    assert summary["named_points"] >= 8
    assert summary["named_killed"] == summary["named_points"]
    assert summary["random_killed"] >= summary["random_times"] * 0.5
    assert summary["kill_points_tried"] >= 250
    assert summary["random_killed"] >= summary["random_times"] * 0.6


@pytest.mark.timeout(600)
def test_kill_matrix_postgres(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = run_matrix(
        tmp_path, "--backend", "postgres", "--url", pg_url, "--random", "60"
    )
    report(summary, capsys)
    assert summary["violation_details"] == []
    assert summary["violations"] == 0
    assert summary["named_killed"] == summary["named_points"]
    assert summary["random_killed"] >= summary["random_times"] * 0.5


@pytest.mark.timeout(600)
def test_kill_matrix_postgres_pool(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same on a connection pool, where rollback locks live on their own
    connections."""
    summary = run_matrix(
        tmp_path, "--backend", "postgres_pool", "--url", pg_url, "--random", "20"
    )
    report(summary, capsys)
    assert summary["violation_details"] == []
    assert summary["named_killed"] == summary["named_points"]
