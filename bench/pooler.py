"""django_jobs on PostgreSQL directly and through PgBouncer: ``python bench/pooler.py``.

    python bench/pooler.py --repeat 3 --jobs 10000 --samples 200

Starts a PgBouncer of its own (transaction pooling, as the tests do: tests/pgbouncer.py)
and runs ``bench.ours`` drains and idle pickup latency three ways, interleaved: direct;
through the pooler without ``LISTEN_DATABASE`` (workers detect it and poll); through the
pooler with ``LISTEN_DATABASE`` naming a direct alias. Prints medians as Markdown rows
(the PgBouncer table of docs/performance.md). Timings are never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.pgbouncer import pgbouncer  # noqa: E402

MODES = ("direct", "PgBouncer, polling", "PgBouncer + LISTEN_DATABASE")


def run(args: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.ours", *args, "--engine", "postgres"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
    if not lines:
        raise RuntimeError(f"{args} printed no result:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return json.loads(lines[-1].split(" ", 1)[1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--samples", type=int, default=200)
    args = p.parse_args(argv)
    results: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
    with pgbouncer() as port:
        envs = {
            MODES[0]: {},
            MODES[1]: {"BENCH_PG_PORT": str(port)},
            MODES[2]: {"BENCH_PG_PORT": str(port), "BENCH_LISTEN_DIRECT": "1"},
        }
        for _ in range(args.repeat):
            for mode, env in envs.items():
                into = results[mode]
                for procs in (1, 2):
                    drained = run(["drain", "--jobs", str(args.jobs), "--procs", str(procs)], env)
                    into.setdefault(f"drain{procs}", []).append(drained["rate"])
                pickup = run(["latency", "--samples", str(args.samples)], env)
                into.setdefault("p50", []).append(pickup["p50_ms"])
                into.setdefault("p99", []).append(pickup["p99_ms"])
                print(mode, json.dumps({k: v[-1] for k, v in into.items()}), flush=True)
    print("\n| mode | drain, 1 process (jobs/s) | drain, 2 processes (jobs/s) |", end="")
    print(" pickup p50 / p99 (ms) |")
    print("|---|---:|---:|---:|")
    for mode in MODES:
        med = {key: statistics.median(values) for key, values in results[mode].items()}
        print(
            f"| {mode} | {med['drain1']:,.0f} | {med['drain2']:,.0f} |"
            f" {med['p50']:.1f} / {med['p99']:.1f} |"
        )


if __name__ == "__main__":
    main()
