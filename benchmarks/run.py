"""Run the benchmark sections, print the table, write the JSON (and README text).

    python -m benchmarks.run            # the full run (`make bench`)
    python -m benchmarks.run --quick    # a small smoke version (tests/test_bench.py)

Sections (see each module's docstring for the method):

1. `agent`: an agent loop of 100 and 1,000 steps, one recorded file write
   per step, durability "sync" and "async", ours against upstream for every
   saver kind (PostgreSQL when a server can be started or is named by
   `LANGGRAPH_ROLLBACK_PG_URL`);
2. `recording`: the ledger's cost per effect against the raw SQLite commit
   floor, and commits per effect;
3. `rollback`: effects undone per second on a SQLite file;
4. `planning`: `plan_rollback` on a 10,000-checkpoint thread with 10,000
   and 100,000 ledger rows; the first page of `list_effects`;
5. `reads`: `get_tuple`/`list` (and async twins), ours against upstream.

Every figure is a median over repeats; every comparison is the median of
ratios of paired runs taken interleaved (order alternating) in this process.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import agent, planning, reads, recording, undo
from benchmarks.common import (
    ALL_KINDS,
    OURS_NAMES,
    PG_KINDS,
    UPSTREAM_NAMES,
    Env,
    machine_info,
    postgres_server,
)

HERE = Path(__file__).resolve().parent
SECTIONS = ("agent", "recording", "rollback", "planning", "reads")

LOOP_TARGET = 1.10
COMMITS_TARGET = 2.0
ROLLBACK_TARGET = 1000.0
PLAN_TARGET_MS = 100.0
FLAT_MEMORY = 1.25
"""Plan memory counts as flat when the 10x larger ledger needs at most this
much more (tracemalloc peak)."""
HISTORY_RATIO = 1.20
"""Rollback cost counts as independent of history when a long history costs
at most this much more for the same effects."""
LINEAR_BAND = (0.8, 1.25)
"""Rollback cost counts as linear when the per-effect cost of the large
count stays within this band of the small count's."""
READS_TARGET = 1.05
"""Reads count as no slower than upstream within 5% (the noise of paired
medians on this machine)."""


@dataclass(frozen=True)
class Profile:
    """Sizes and repeat counts of one run."""

    steps: tuple[int, ...]
    step_repeats: dict[int, int]
    rss_steps: int
    rss_kinds: tuple[str, ...] | None
    rec_count: int
    rec_repeats: int
    rec_loop_steps: int
    rb_small: int
    rb_large: int
    rb_history_checkpoints: int
    rb_history_effects: int
    rb_repeats: int
    rb_large_repeats: int
    plan_checkpoints: int
    plan_small: int
    plan_large: int
    plan_repeats: int
    reads_checkpoints: int
    reads_batch: int
    reads_repeats: int
    reads_list_repeats: int


FULL = Profile(
    steps=(100, 1000),
    # The paired ratio of one repeat varies by up to 0.15 on a shared 2-core
    # machine (fsync latency): nine and five pairs keep the median steady.
    step_repeats={100: 9, 1000: 5},
    rss_steps=1000,
    rss_kinds=None,
    rec_count=1000,
    rec_repeats=5,
    rec_loop_steps=100,
    rb_small=1000,
    rb_large=10000,
    rb_history_checkpoints=10000,
    rb_history_effects=10000,
    rb_repeats=5,
    rb_large_repeats=3,
    plan_checkpoints=10000,
    plan_small=10000,
    plan_large=100000,
    plan_repeats=15,
    reads_checkpoints=10000,
    reads_batch=200,
    reads_repeats=7,
    reads_list_repeats=5,
)

QUICK = Profile(
    steps=(10,),
    step_repeats={10: 2},
    rss_steps=10,
    rss_kinds=("sqlite",),
    rec_count=40,
    rec_repeats=2,
    rec_loop_steps=10,
    rb_small=40,
    rb_large=160,
    rb_history_checkpoints=200,
    rb_history_effects=200,
    rb_repeats=2,
    rb_large_repeats=1,
    plan_checkpoints=300,
    plan_small=500,
    plan_large=5000,
    plan_repeats=3,
    reads_checkpoints=200,
    reads_batch=20,
    reads_repeats=2,
    reads_list_repeats=1,
)


def log(message: str) -> None:
    """Progress, on stderr (stdout carries the table)."""
    print(message, file=sys.stderr, flush=True)


def run_sections(
    env: Env, profile: Profile, sections: tuple[str, ...]
) -> dict[str, Any]:
    """Run the chosen sections; their results by name, with seconds taken."""
    out: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for name in sections:
        start = time.perf_counter()
        log(f"[{name}]")
        if name == "agent":
            rss_env = env
            if profile.rss_kinds is not None:
                rss_env = Env(
                    root=env.root,
                    quick=env.quick,
                    pg_server=env.pg_server,
                    kinds=tuple(k for k in env.kinds if k in profile.rss_kinds),
                )
            result = agent.bench(
                env,
                steps_list=profile.steps,
                repeats=profile.step_repeats,
                log=log,
            )
            result["rss"] = agent.bench_rss(rss_env, profile.rss_steps, log=log)
        elif name == "recording":
            result = recording.bench(
                env,
                count=profile.rec_count,
                repeats=profile.rec_repeats,
                loop_steps=profile.rec_loop_steps,
                log=log,
            )
        elif name == "rollback":
            result = undo.bench(
                env,
                small=profile.rb_small,
                large=profile.rb_large,
                history_checkpoints=profile.rb_history_checkpoints,
                history_effects=profile.rb_history_effects,
                repeats=profile.rb_repeats,
                large_repeats=profile.rb_large_repeats,
                log=log,
            )
        elif name == "planning":
            result = planning.bench(
                env,
                checkpoints=profile.plan_checkpoints,
                small_rows=profile.plan_small,
                large_rows=profile.plan_large,
                repeats=profile.plan_repeats,
                log=log,
            )
        elif name == "reads":
            result = reads.bench(
                env,
                checkpoints=profile.reads_checkpoints,
                batch=profile.reads_batch,
                repeats=profile.reads_repeats,
                list_repeats=profile.reads_list_repeats,
                log=log,
            )
        else:
            raise ValueError(name)
        timings[name] = time.perf_counter() - start
        out[name] = result
        log(f"[{name}] {timings[name]:.1f} s")
    out["seconds_per_section"] = timings
    return out


# --- targets ---------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with its measured value and PASS/MISS."""
    out: list[dict[str, Any]] = []

    def add(section: str, name: str, value: float, rule: str, ok: bool) -> None:
        out.append(
            {
                "section": section,
                "target": name,
                "value": value,
                "rule": rule,
                "pass": bool(ok),
            }
        )

    for row in results.get("agent", {}).get("runs", []):
        add(
            "agent",
            f"{row['kind']} {row['durability']} {row['steps']} steps: ours/upstream",
            row["ratio"],
            f"<= {LOOP_TARGET:.2f}x",
            row["ratio"] <= LOOP_TARGET,
        )
    rec = results.get("recording")
    if rec:
        for key, label in (
            ("commits_per_effect_sync", "commits per effect (SqliteRollbackSaver)"),
            (
                "commits_per_effect_async",
                "commits per effect (AsyncSqliteRollbackSaver)",
            ),
        ):
            add("recording", label, rec[key], "<= 2", rec[key] <= COMMITS_TARGET)
        extra = rec["agent_loop_commits_per_step"]["extra_per_effect"]
        add(
            "recording",
            "extra commits per effect in the agent loop",
            extra,
            "<= 2",
            extra <= COMMITS_TARGET,
        )
    rb = results.get("rollback")
    if rb:
        for key in ("short_small", "short_large"):
            add(
                "rollback",
                f"undo {rb[key]['effects']:,} effects: effects/s",
                rb[key]["effects_per_s"],
                f">= {ROLLBACK_TARGET:,.0f}/s",
                rb[key]["effects_per_s"] >= ROLLBACK_TARGET,
            )
        add(
            "rollback",
            "long/short history, same effects (time)",
            rb["history_ratio"],
            f"<= {HISTORY_RATIO:.2f}x",
            rb["history_ratio"] <= HISTORY_RATIO,
        )
        add(
            "rollback",
            f"us/effect undoing {rb['short_large']['effects']:,} / "
            f"{rb['short_small']['effects']:,}",
            rb["linearity"],
            f"{LINEAR_BAND[0]:.2f}-{LINEAR_BAND[1]:.2f}x",
            LINEAR_BAND[0] <= rb["linearity"] <= LINEAR_BAND[1],
        )
    plan = results.get("planning")
    if plan:
        large = plan["large"]
        add(
            "planning",
            f"plan_rollback, {large['checkpoints']:,} checkpoints, "
            f"{large['ledger_rows']:,} ledger rows (ms)",
            large["plan_ms"],
            f"< {PLAN_TARGET_MS:.0f} ms",
            large["plan_ms"] < PLAN_TARGET_MS,
        )
        add(
            "planning",
            f"plan memory, {plan['large']['ledger_rows']:,} / "
            f"{plan['small']['ledger_rows']:,} rows",
            plan["memory_ratio"],
            f"<= {FLAT_MEMORY:.2f}x (flat)",
            plan["memory_ratio"] <= FLAT_MEMORY,
        )
    for row in results.get("reads", {}).get("results", []):
        if row["kind"] == "aio_sqlite":
            add(
                "reads",
                f"{row['kind']} {row['op']}: ours/upstream",
                row["ratio"],
                "< 1.00x (faster)",
                row["ratio"] < 1.0,
            )
        else:
            add(
                "reads",
                f"{row['kind']} {row['op']}: ours/upstream",
                row["ratio"],
                f"<= {READS_TARGET:.2f}x",
                row["ratio"] <= READS_TARGET,
            )
    return out


# --- tables ----------------------------------------------------------------------


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if abs(value) >= 10000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def tables(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table."""
    out = []
    ag = results.get("agent")
    if ag:
        rows = []
        for r in ag["runs"]:
            up, ours = r["upstream"], r["ours"]
            rows.append(
                [
                    f"{UPSTREAM_NAMES[r['kind']]} / {OURS_NAMES[r['kind']]}",
                    r["durability"],
                    f"{r['steps']:,}",
                    _num(up["per_step_ms"]),
                    _num(ours["per_step_ms"]),
                    _num(up["steps_per_s"]),
                    _num(ours["steps_per_s"]),
                    _num(r["ratio"]),
                    "PASS" if r["ratio"] <= LOOP_TARGET else "MISS",
                ]
            )
        out.append(
            (
                f"1. Agent loop (median of repeats; ratio = paired ours/upstream; "
                f"target <= {LOOP_TARGET:.2f}x)",
                [
                    "upstream / ours",
                    "durability",
                    "steps",
                    "up ms/step",
                    "ours ms/step",
                    "up steps/s",
                    "ours steps/s",
                    "ratio",
                    "target",
                ],
                rows,
            )
        )
        size_rows = []
        rss = {(r["kind"], r["steps"]): r for r in ag.get("rss", [])}
        for r in ag["runs"]:
            if r["durability"] != "sync" or r["steps"] != max(
                x["steps"] for x in ag["runs"]
            ):
                continue
            m = rss.get((r["kind"], r["steps"]))
            size_rows.append(
                [
                    r["kind"],
                    f"{r['steps']:,}",
                    _mb(r["upstream"]["db_bytes"]),
                    _mb(r["ours"]["db_bytes"]),
                    _num(r["ours"]["ledger_bytes_per_effect"], 0),
                    _num(m["upstream"]["peak_rss_mb"], 1) if m else "-",
                    _num(m["ours"]["peak_rss_mb"], 1) if m else "-",
                    _num(m["upstream"]["run_rss_mb"], 1) if m else "-",
                    _num(m["ours"]["run_rss_mb"], 1) if m else "-",
                ]
            )
        out.append(
            (
                "1b. Agent loop, durability sync: sizes and peak RSS (child process)",
                [
                    "kind",
                    "steps",
                    "up DB MB",
                    "ours DB MB",
                    "ledger B/effect",
                    "up peak RSS MB",
                    "ours peak RSS MB",
                    "up run RSS MB",
                    "ours run RSS MB",
                ],
                size_rows,
            )
        )
    rec = results.get("recording")
    if rec:
        loop = rec["agent_loop_commits_per_step"]
        settings = rec["saver_sqlite_settings"]
        out.append(
            (
                "2. Recording one effect vs the raw commit floor (SQLite file, WAL; "
                f"the saver runs synchronous={settings.get('synchronous')})",
                ["figure", "value"],
                [
                    [
                        "raw commit, synchronous=FULL (us)",
                        _num(rec["us_per_commit_floor_full"]),
                    ],
                    [
                        "raw commit, synchronous=NORMAL (us)",
                        _num(rec["us_per_commit_floor_normal"]),
                    ],
                    [
                        "record one effect, SqliteRollbackSaver (us)",
                        _num(rec["us_per_effect_sync"]),
                    ],
                    ["  / FULL commit floor", _num(rec["ratio_to_floor_full_sync"])],
                    [
                        "record one effect, AsyncSqliteRollbackSaver (us)",
                        _num(rec["us_per_effect_async"]),
                    ],
                    ["  / FULL commit floor", _num(rec["ratio_to_floor_full_async"])],
                    [
                        "commits per effect, sync / async (target <= 2)",
                        f"{_num(rec['commits_per_effect_sync'])} / "
                        f"{_num(rec['commits_per_effect_async'])}",
                    ],
                    [
                        "agent loop commits per step, upstream / ours",
                        f"{_num(loop['upstream'])} / {_num(loop['ours'])}",
                    ],
                ],
            )
        )
    rb = results.get("rollback")
    if rb:
        rows = []
        for key in ("short_small", "long_small", "short_large"):
            c = rb[key]
            rows.append(
                [
                    f"{c['effects']:,}",
                    f"{c['checkpoints']:,}",
                    f"{c['ledger_rows']:,}",
                    _num(c["median_seconds"], 3),
                    _num(c["effects_per_s"]),
                    _num(c["us_per_effect"]),
                    _num(c["plan_ms"]),
                ]
            )
        out.append(
            (
                "3. Rollback on a SQLite file, trivial inverses "
                f"(target >= {ROLLBACK_TARGET:,.0f} effects/s; long/short history "
                f"{rb['history_ratio']:.2f}x, large/small per effect "
                f"{rb['linearity']:.2f}x)",
                [
                    "effects undone",
                    "checkpoints",
                    "ledger rows",
                    "seconds",
                    "effects/s",
                    "us/effect",
                    "plan ms",
                ],
                rows,
            )
        )
    plan = results.get("planning")
    if plan:
        rows = [
            [
                f"{plan[k]['checkpoints']:,}",
                f"{plan[k]['ledger_rows']:,}",
                f"{plan[k]['planned_effects']:,}",
                _num(plan[k]["plan_ms"]),
                _num(plan[k]["plan_peak_kib"], 0),
                _num(plan[k]["first_page_ms"]),
            ]
            for k in ("small", "large")
        ]
        out.append(
            (
                f"4. Planning on a large thread (target < {PLAN_TARGET_MS:.0f} ms, "
                f"memory flat: large/small {plan['memory_ratio']:.2f}x)",
                [
                    "checkpoints",
                    "ledger rows",
                    "planned",
                    "plan ms",
                    "plan peak KiB",
                    "list_effects(limit=50) ms",
                ],
                rows,
            )
        )
    rd = results.get("reads")
    if rd:
        rows = []
        for r in rd["results"]:
            rule = 1.0 if r["kind"] == "aio_sqlite" else READS_TARGET
            ok = r["ratio"] < rule if r["kind"] == "aio_sqlite" else r["ratio"] <= rule
            rows.append(
                [
                    f"{UPSTREAM_NAMES[r['kind']]} / {OURS_NAMES[r['kind']]}",
                    r["op"],
                    r["unit"],
                    _num(r["upstream"]),
                    _num(r["ours"]),
                    _num(r["ratio"]),
                    "PASS" if ok else "MISS",
                ]
            )
        out.append(
            (
                f"5. Saver reads over {rd['checkpoints']:,} checkpoints (target: "
                f"ratio <= {READS_TARGET:.2f}x; AsyncSqliteRollbackSaver < 1.00x)",
                [
                    "upstream / ours",
                    "operation",
                    "unit",
                    "upstream",
                    "ours",
                    "ratio",
                    "target",
                ],
                rows,
            )
        )
    return out


def _mb(value: Any) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}"


def render_text(tbls: list[tuple[str, list[str], list[list[str]]]]) -> str:
    """Fixed-width tables for the terminal."""
    lines = []
    for title, header, rows in tbls:
        widths = [
            max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)
        ]
        lines.append(title)
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            lines.append(
                "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
            )
        lines.append("")
    return "\n".join(lines)


def render_markdown(tbls: list[tuple[str, list[str], list[list[str]]]]) -> str:
    """Markdown tables."""
    lines = []
    for title, header, rows in tbls:
        lines.append(f"**{title}**")
        lines.append("")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            lines.append("| " + " | ".join(str(c) for c in row) + " |")
        lines.append("")
    return "\n".join(lines)


def render_targets(tg: list[dict[str, Any]], markdown: bool) -> str:
    """The target list with PASS/MISS."""
    rows = [
        [
            t["section"],
            t["target"],
            _num(t["value"]),
            t["rule"],
            "PASS" if t["pass"] else "MISS",
        ]
        for t in tg
    ]
    header = ["section", "target", "measured", "rule", "result"]
    table = [("Targets", header, rows)]
    return render_markdown(table) if markdown else render_text(table)


def readme_section(results: dict[str, Any], command: str) -> str:
    """The "Performance" section for README.md."""
    meta = results["meta"]
    machine = meta["machine"]
    packages = machine["packages"]
    tg = results["targets"]
    passed = sum(1 for t in tg if t["pass"])
    parts = [
        "## Performance",
        "",
        f"Measured on {meta['date']} on a {machine['cores']}-core machine "
        f"({machine['platform']}), Python {machine['python']}, SQLite "
        f"{machine['sqlite']}, LangGraph {packages.get('langgraph')}, "
        f"langgraph-checkpoint {packages.get('langgraph-checkpoint')}, "
        f"langgraph-checkpoint-sqlite {packages.get('langgraph-checkpoint-sqlite')}, "
        f"langgraph-checkpoint-postgres "
        f"{packages.get('langgraph-checkpoint-postgres')}; PostgreSQL: "
        f"{meta['postgres']}. Command:",
        "",
        "```sh",
        command,
        "```",
        "",
        "Each figure is a median over repeats; each ratio is the median of "
        "paired runs (ours/upstream) taken interleaved in one process. The "
        "method of each section is in the docstring of its module in "
        "`benchmarks/`, and every raw sample is in "
        "`benchmarks/results/latest.json`. "
        f"{passed} of {len(tg)} targets met.",
        "",
        render_markdown(tables(results)),
        render_targets(tg, markdown=True),
    ]
    return "\n".join(parts)


def check_finite(value: Any, path: str = "") -> None:
    """Refuse NaN and infinities anywhere in the results."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path} is {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_finite(v, f"{path}[{i}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument(
        "--readme", type=Path, default=None, help="README section to write"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated: {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--postgres",
        choices=("auto", "yes", "no"),
        default=None,
        help="PostgreSQL savers: auto (when a server can be had; the full run's "
        "default), yes (required), no (the quick run's default)",
    )
    args = parser.parse_args(argv)
    sections = tuple(s for s in args.sections.split(",") if s)
    for s in sections:
        if s not in SECTIONS:
            parser.error(f"unknown section {s!r}")
    profile = QUICK if args.quick else FULL
    postgres = args.postgres or ("no" if args.quick else "auto")
    out = args.out or HERE / "results" / ("quick.json" if args.quick else "latest.json")
    readme = args.readme or (None if args.quick else HERE / "README_SECTION.md")
    command = "make bench" if not args.quick else "python -m benchmarks.run --quick"
    if argv is None and len(sys.argv) > 1 and not args.quick:
        command = "python -m benchmarks.run " + " ".join(sys.argv[1:])

    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="lgrb-bench-"))
    try:
        with postgres_server(postgres != "no") as (pg, note):
            if pg is None and postgres == "yes":
                parser.error(f"PostgreSQL required but unavailable: {note}")
            kinds = tuple(k for k in ALL_KINDS if pg is not None or k not in PG_KINDS)
            env = Env(
                root=root, quick=args.quick, pg_server=pg, pg_note=note, kinds=kinds
            )
            log(f"kinds: {', '.join(kinds)} (PostgreSQL: {note})")
            results = run_sections(env, profile, sections)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["meta"] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "command": command,
        "quick": args.quick,
        "profile": {
            k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()})
            for k, v in profile.__dict__.items()
        },
        "kinds": list(kinds),
        "postgres": note if pg is not None else f"not measured ({note})",
        "machine": machine_info(),
        "seconds": time.perf_counter() - started,
    }
    results["targets"] = targets(results)
    check_finite(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    tbls = tables(results)
    print(render_text(tbls))
    print(render_targets(results["targets"], markdown=False))
    print(f"wrote {out} ({results['meta']['seconds']:.0f} s)")
    if readme is not None:
        readme.write_text(readme_section(results, command) + "\n")
        print(f"wrote {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
