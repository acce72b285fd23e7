"""Profile one benchmark case with cProfile, in every thread it starts.

    python -m benchmarks.profile agent --kind sqlite --durability sync --steps 300
    python -m benchmarks.profile record --count 2000
    python -m benchmarks.profile record --count 2000 --aio
    python -m benchmarks.profile rollback --effects 2000

LangGraph runs tools and queued checkpoint writes in worker threads, and
aiosqlite runs each statement in its own thread, so a profiler on the main
thread alone sees them as waiting. `threading.setprofile` starts a
`cProfile.Profile` in each thread created afterwards; their statistics are
merged with the main thread's. Waiting shows up as `acquire` (locks) and
`select`/`poll`; the rest is where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import agent, recording, undo
from benchmarks.common import PG_KINDS, Env, postgres_server


class AllThreads:
    """cProfile in the calling thread and in every thread started while active."""

    def __init__(self) -> None:
        self.main = cProfile.Profile()
        self.others: list[cProfile.Profile] = []

    def _start(self, frame: FrameType, event: str, arg: Any) -> None:
        profile = cProfile.Profile()
        self.others.append(profile)
        profile.enable()

    def __enter__(self) -> AllThreads:
        threading.setprofile(self._start)  # type: ignore[arg-type]
        self.main.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        self.main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]

    def stats(self) -> pstats.Stats:
        stats = pstats.Stats(self.main)
        for profile in self.others:
            try:
                stats.add(profile)
            except TypeError:  # a thread that recorded nothing
                continue
        return stats


def report(stats: pstats.Stats, top: int) -> str:
    """Top functions by own time, then the package's by cumulative time."""
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("langgraph_rollback", top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("case", choices=("agent", "record", "rollback"))
    parser.add_argument("--kind", default="sqlite")
    parser.add_argument("--variant", default="ours", choices=("ours", "upstream"))
    parser.add_argument("--durability", default="sync")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--aio", action="store_true")
    parser.add_argument("--effects", type=int, default=2000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--dump", type=Path, help="write the merged stats here")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="lgrb-profile-"))
    with postgres_server(args.kind in PG_KINDS) as (pg, note):
        if args.kind in PG_KINDS and pg is None:
            parser.error(f"PostgreSQL unavailable: {note}")
        return _profile(args, Env(root=root, quick=True, pg_server=pg), root)


def _profile(args: argparse.Namespace, env: Env, root: Path) -> int:
    try:
        profiler = AllThreads()
        if args.case == "agent":
            agent.run_once(env, args.kind, args.variant, 5, args.durability)
            with profiler:
                run = agent.run_once(
                    env, args.kind, args.variant, args.steps, args.durability
                )
            print(f"{args.steps} steps in {run['seconds']:.3f} s")
        elif args.case == "record":
            path = root / "record.sqlite"
            with profiler:
                if args.aio:
                    result = asyncio.run(recording._record_async(path, args.count))
                else:
                    result = recording.record_sync(path, args.count)
            print(f"{result['seconds'] * 1e6:.0f} us per effect")
        else:
            case = undo.build_case(
                root, effects=args.effects, history_checkpoints=9, history_effects=0
            )
            scratch = env.tmpdir("run-")
            with profiler:
                result = undo.run_case(case, scratch)
            print(f"{args.effects / result['seconds']:.0f} effects/s")
        stats = profiler.stats()
        if args.dump:
            stats.dump_stats(args.dump)
        sys.stdout.write(report(stats, args.top))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
