"""Compare two `make bench` results: is the new one worse than the old?

```sh
python -m benchmarks.compare OLD.json NEW.json [--tolerance 0.05]
```

Both files are `benchmarks/results/latest.json` of a run (say of the last
release and of a change). Every figure the two runs share is printed as a
Markdown row: old, new, the change and a verdict.

- Agent-loop ratios (ours/upstream) are compared by their difference, which
  is worse when it exceeds `--tolerance`. Beside it is a 90% bootstrap
  interval of that difference, resampled from each run's paired
  ours/upstream timings: when the interval reaches back under the
  tolerance, the run cannot tell the change from noise (the verdict then
  says so).
- Every other figure is compared by its relative change, in the direction
  that is worse for it: time, bytes and memory up, effects per second down,
  a ratio that should stay near 1.0 moving away from it.

The exit status is 1 when some row is worse, else 0.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["Row", "compare", "main", "table"]

Better = Literal["lower", "higher", "near_one"]

RESAMPLES = 4000


@dataclass(frozen=True)
class Row:
    """One figure of both runs, and whether the new one is worse."""

    section: str
    figure: str
    old: float
    new: float
    change: str
    worse: bool
    note: str = ""

    def verdict(self) -> str:
        if not self.worse:
            return "ok"
        return f"worse ({self.note})" if self.note else "worse"


def _relative(
    section: str, figure: str, old: Any, new: Any, better: Better, tolerance: float
) -> Row | None:
    if not _number(old) or not _number(new) or old == 0:
        return None
    ratio = new / old
    if better == "lower":
        worse = ratio > 1 + tolerance
    elif better == "higher":
        worse = ratio < 1 - tolerance
    else:
        worse = abs(new - 1) > abs(old - 1) + tolerance
    return Row(section, figure, old, new, f"{(ratio - 1) * 100:+.1f}%", worse)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _pairs(run: dict[str, Any]) -> list[float]:
    ours, upstream = run["ours"]["seconds"], run["upstream"]["seconds"]
    return [o / u for o, u in zip(ours, upstream, strict=True) if u > 0]


def _interval(old: list[float], new: list[float], seed: int) -> tuple[float, float]:
    """A 90% bootstrap interval of median(new) - median(old)."""
    rng = random.Random(seed)
    diffs = sorted(
        statistics.median(rng.choices(new, k=len(new)))
        - statistics.median(rng.choices(old, k=len(old)))
        for _ in range(RESAMPLES)
    )
    return diffs[int(0.05 * RESAMPLES)], diffs[int(0.95 * RESAMPLES) - 1]


def _agent(old: dict[str, Any], new: dict[str, Any], tolerance: float) -> Iterator[Row]:
    new_runs = {_run_key(r): r for r in new["agent"]["runs"]}
    for seed, run in enumerate(old["agent"]["runs"]):
        other = new_runs.get(_run_key(run))
        if other is None:
            continue
        kind, durability, steps = _run_key(run)
        diff = other["ratio"] - run["ratio"]
        change = f"{diff:+.3f}"
        note = ""
        pairs_old, pairs_new = _pairs(run), _pairs(other)
        if pairs_old and pairs_new:
            low, high = _interval(pairs_old, pairs_new, seed)
            change += f" (90%: {low:+.3f}..{high:+.3f})"
            if low <= tolerance:
                note = "within noise"
        yield Row(
            "agent",
            f"{kind} {durability} {steps} steps: ours/upstream",
            run["ratio"],
            other["ratio"],
            change,
            diff > tolerance,
            note,
        )
        row = _relative(
            "agent",
            f"{kind} {durability} {steps} steps: ledger bytes per effect",
            run["ours"].get("ledger_bytes_per_effect"),
            other["ours"].get("ledger_bytes_per_effect"),
            "lower",
            tolerance,
        )
        if row is not None:
            yield row


def _run_key(run: dict[str, Any]) -> tuple[str, str, int]:
    return run["kind"], run["durability"], run["steps"]


def _targets(
    old: dict[str, Any], new: dict[str, Any], tolerance: float
) -> Iterator[Row]:
    new_targets = {t["target"]: t for t in new.get("targets", [])}
    for target in old.get("targets", []):
        other = new_targets.get(target["target"])
        if target["section"] == "agent" or other is None:
            continue
        row = _relative(
            target["section"],
            target["target"],
            target["value"],
            other["value"],
            _better(target["rule"]),
            tolerance,
        )
        if row is not None:
            yield row


def _better(rule: str) -> Better:
    """Which way a target's rule (`<= 1.10x`, `>= 1,000/s`, `0.80-1.25x`) wants."""
    if rule.startswith(">"):
        return "higher"
    if rule[:1].isdigit() and "-" in rule:
        return "near_one"
    return "lower"


def _figures(
    old: dict[str, Any], new: dict[str, Any], tolerance: float
) -> Iterator[Row]:
    """Figures no target names: times, sizes and memory, lower is better."""
    for figure in ("us_per_effect_sync", "us_per_effect_async"):
        yield from _maybe(
            "recording", figure, old, new, ("recording", figure), tolerance
        )
    for case in ("short_small", "long_small", "short_large"):
        for figure in ("us_per_effect", "plan_ms"):
            path = ("rollback", case, figure)
            yield from _maybe("rollback", f"{case} {figure}", old, new, path, tolerance)
    for size in ("small", "large"):
        # The large thread's plan_ms is a target's value already.
        figures = ("first_page_ms", "plan_peak_kib")
        for figure in ("plan_ms", *figures) if size == "small" else figures:
            path = ("planning", size, figure)
            yield from _maybe("planning", f"{size} {figure}", old, new, path, tolerance)
    new_rss = {(r["kind"], r["steps"]): r for r in new["agent"].get("rss", [])}
    for rss in old["agent"].get("rss", []):
        other = new_rss.get((rss["kind"], rss["steps"]))
        if other is not None:
            row = _relative(
                "agent",
                f"{rss['kind']} {rss['steps']} steps: ours peak RSS MB",
                rss["ours"]["peak_rss_mb"],
                other["ours"]["peak_rss_mb"],
                "lower",
                tolerance,
            )
            if row is not None:
                yield row


def _maybe(
    section: str,
    figure: str,
    old: dict[str, Any],
    new: dict[str, Any],
    path: Sequence[str],
    tolerance: float,
) -> Iterator[Row]:
    row = _relative(
        section, figure, _get(old, path), _get(new, path), "lower", tolerance
    )
    if row is not None:
        yield row


def _get(data: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def compare(
    old: dict[str, Any], new: dict[str, Any], *, tolerance: float = 0.05
) -> list[Row]:
    """Every figure the two results share, old against new."""
    return [
        *_agent(old, new, tolerance),
        *_targets(old, new, tolerance),
        *_figures(old, new, tolerance),
    ]


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, and a count of the worse ones."""
    lines = [
        "| section | figure | old | new | change | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.section} | {row.figure} | {row.old:.4g} | {row.new:.4g} "
            f"| {row.change} | {row.verdict()} |"
        )
    worse = [row for row in rows if row.worse]
    noise = [row for row in worse if row.note]
    lines.append("")
    lines.append(
        f"{len(rows)} figures, {len(worse)} worse"
        + (f" ({len(noise)} of them within noise)" if noise else "")
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("old", type=Path, help="the earlier run's latest.json")
    parser.add_argument("new", type=Path, help="the later run's latest.json")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="allowed change: agent ratios by difference, the rest relative "
        "(default 0.05)",
    )
    args = parser.parse_args(argv)
    loaded = []
    for path in (args.old, args.new):
        try:
            loaded.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            parser.error(f"{path}: not a benchmark result ({exc})")
    if not all(isinstance(d, dict) and "agent" in d for d in loaded):
        parser.error("both files must be benchmarks/results/latest.json of a run")
    rows = compare(loaded[0], loaded[1], tolerance=args.tolerance)
    print(table(rows))
    return 1 if any(row.worse for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
