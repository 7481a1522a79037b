"""Benchmark django_jobs against its peers and the plain-SQL floor: ``python bench/run.py``.

    python bench/run.py                      # full: 3 interleaved repeats of 10,000 jobs
    python bench/run.py --smoke              # CI: ours + floor, sqlite + postgres, < 60 s
    python bench/run.py --engines postgres --peers pgqueuer --jobs 5000 --repeat 1
    python bench/run.py --engines postgres --peers pgqueuer --metrics drain_1,drain_2

Peers run from their own virtualenv (bench/.venv-peers, created on first use from PyPI);
they are never dependencies of django_jobs. Ours runs in ``--ours-python`` (default: the
interpreter running this script) from the repository. Results: bench/results/latest.json
and latest.md (smoke: /tmp/django_jobs_bench/). Timings are never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import lib, report  # noqa: E402
from bench.plan import FLOOR, METRICS, PEER_KEYS, PEERS, Case, cases  # noqa: E402

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".venv-peers"
PEER_PACKAGES = [
    "django-tasks-db", "procrastinate", "pgqueuer", "asyncpg", "psycopg[binary]", "mysqlclient",
]  # fmt: skip
PEERS_BASE_PYTHON = "/root/.pyenv/versions/3.12.1/bin/python3.12"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="1 repeat, 300 jobs, ours + floor")
    p.add_argument("--engines", default=None, help="comma list of sqlite,postgres,mysql")
    p.add_argument("--jobs", type=int, default=None, help="jobs per measurement (10,000)")
    p.add_argument("--repeat", type=int, default=None, help="interleaved repetitions (3)")
    p.add_argument(
        "--peers", default=None, help="comma list of tasksdb,procrastinate,pgqueuer or none"
    )
    p.add_argument("--ours-python", default=sys.executable)
    p.add_argument("--peers-python", default=str(PEERS_VENV / "bin" / "python"))
    p.add_argument(
        "--slow-jobs", type=int, default=2000,
        help="cap on jobs for django-tasks-db drains (it runs ~100-400 jobs/s)",
    )  # fmt: skip
    p.add_argument("--samples", type=int, default=None, help="pickup samples (200)")
    p.add_argument("--memory-jobs", type=int, default=100_000)
    p.add_argument("--no-floor", action="store_true")
    p.add_argument(
        "--metrics", default=None,
        help="comma list of metrics to run (e.g. drain_1,drain_2); default: all",
    )  # fmt: skip
    p.add_argument("--out", default=None, help="results directory")
    args = p.parse_args(argv)
    if args.smoke:
        args.engines = args.engines or "sqlite,postgres"
        args.jobs = args.jobs or 300
        args.repeat = args.repeat or 1
        args.peers = args.peers or "none"
        args.samples = args.samples or 30
        args.out = args.out or "/tmp/django_jobs_bench"
    args.engines = (args.engines or "sqlite,postgres,mysql").split(",")
    args.jobs = args.jobs or 10_000
    args.repeat = args.repeat or 3
    args.samples = args.samples or 200
    args.out = Path(args.out or HERE / "results")
    names = (args.peers or "tasksdb,procrastinate,pgqueuer").split(",")
    args.peer_systems = [] if names == ["none"] else [PEER_KEYS[n] for n in names]
    return args


def ensure_peers_venv(python: str) -> None:
    """Create bench/.venv-peers and install the peers from PyPI, once."""
    if Path(python).exists():
        return
    if Path(python).parent.parent != PEERS_VENV:
        raise SystemExit(f"--peers-python {python} does not exist")
    base = PEERS_BASE_PYTHON if Path(PEERS_BASE_PYTHON).exists() else sys.executable
    print(f"creating {PEERS_VENV} with {base} and installing peers from PyPI ...", flush=True)
    subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)


def compile_sources(pythons: list[str]) -> None:
    """Byte-compile the repository's modules for each interpreter, once, before measuring.

    Drivers run with PYTHONDONTWRITEBYTECODE, so without this every worker process would
    compile django_jobs (and the peers' drivers) from source as it starts, which an
    installed package never does (pip compiles it) and the peers, run from their
    virtualenv's site-packages, do not either. The files go to ``__pycache__`` (ignored by
    git) and Python checks them against the sources' modification times.
    """
    for python in pythons:
        subprocess.run(
            [python, "-m", "compileall", "-q", "django_jobs", "bench"],
            cwd=lib.REPO, check=False, capture_output=True,
        )  # fmt: skip


def run_case(case: Case, args, log) -> dict | None:
    python = args.ours_python if case.python == "ours" else args.peers_python
    cmd = [python, "-m", case.module, *case.args]
    load = os.getloadavg()[0]
    started = time.monotonic()
    stdout, stderr = communicate(cmd)
    if stdout is None:
        log(f"  TIMEOUT {' '.join(case.args)}")
        return None
    for line in stdout.splitlines():
        if line.startswith(lib.RESULT_PREFIX):
            result = json.loads(line[len(lib.RESULT_PREFIX) :])
            result["load_before"] = load
            result["wall"] = time.monotonic() - started
            return result
    log(f"  FAILED {case.system} {' '.join(case.args)}:\n{stderr[-1500:]}")
    return None


def communicate(cmd: list[str], timeout: float = 1800) -> tuple[str | None, str]:
    """Run one driver; on timeout or interruption stop it with SIGTERM (it then stops the
    workers it started) and, if it lingers, kill it."""
    proc = subprocess.Popen(
        cmd, cwd=lib.REPO, env=lib.python_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        return proc.communicate(timeout=timeout)
    except BaseException as exc:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):
            return None, ""
        raise


def run_floor(args, log) -> dict | None:
    cmd = [args.ours_python, "-m", "bench.floor", "--jobs", str(args.jobs)]
    if args.metrics:  # only the floor steps the chosen metrics are compared with
        steps = {METRICS[m][2] for m in args.metrics.split(",") if METRICS[m][2]}
        cmd += ["--only", ",".join(sorted(steps))]
    stdout, stderr = communicate(cmd)
    for line in (stdout or "").splitlines():
        if line.startswith(lib.RESULT_PREFIX):
            return json.loads(line[len(lib.RESULT_PREFIX) :])
    log(f"  FAILED floor:\n{stderr[-1500:]}")
    return None


def reset_scale_databases(engines: list[str]) -> None:
    for engine in engines:
        lib.drop_database(engine, "bench_jobs_big")


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    if args.peer_systems:
        ensure_peers_venv(args.peers_python)
    compile_sources([args.ours_python] + ([args.peers_python] if args.peer_systems else []))
    args.out.mkdir(parents=True, exist_ok=True)
    plan = cases(
        args.engines, args.peer_systems, args.jobs, args.slow_jobs, args.smoke, args.samples,
        args.memory_jobs,
    )  # fmt: skip
    if args.metrics:
        wanted = set(args.metrics.split(","))
        unknown = wanted - set(METRICS)
        if unknown:
            raise SystemExit(f"unknown metrics {sorted(unknown)}; known: {', '.join(METRICS)}")
        plan = [case for case in plan if case.metric in wanted]
    floor_on = "postgres" in args.engines and not args.no_floor
    if args.metrics and not any(METRICS[m][2] for m in args.metrics.split(",")):
        floor_on = False  # none of the chosen metrics has a floor step
    total = sum(args.repeat if not c.once else 1 for c in plan) + (args.repeat if floor_on else 0)
    t0 = time.monotonic()
    runs: dict[str, list[dict]] = {}
    done = 0
    ours_failed = 0

    def log(text: str) -> None:
        print(text, flush=True)

    log(f"{total} measurements: engines {args.engines}, peers {args.peer_systems or 'none'},"
        f" {args.jobs} jobs, {args.repeat} repeat(s)")  # fmt: skip
    reset_scale_databases(args.engines)
    commit_at_start = report.commit()
    for rep in range(args.repeat):
        if floor_on:
            done += 1
            result = run_floor(args, log)
            if result:
                runs.setdefault(json.dumps(["postgres", "floor", FLOOR]), []).append(result)
            log(f"[{done}/{total}] rep {rep + 1} floor {fmt_floor(result)}")
        for case in plan:
            if case.once and rep > 0:
                continue
            done += 1
            result = run_case(case, args, log)
            if result:
                runs.setdefault(json.dumps(list(case.key)), []).append(result)
            elif case.system == "django_jobs":
                ours_failed += 1
            log(f"[{done}/{total}] rep {rep + 1} {case.engine} {case.metric} {case.system}:"
                f" {brief(result)}  ({time.monotonic() - t0:.0f}s)")  # fmt: skip
    for engine in args.engines:
        lib.drop_database(engine, "bench_jobs")
        lib.drop_database(engine, "bench_jobs_big")
    summary = summarise(runs)
    facts = report.machine_facts(args)
    facts["duration_s"] = round(time.monotonic() - t0)
    facts["commit_at_start"] = commit_at_start
    # Other work on the machine shows here: compare ratios, not absolute figures.
    loads = [r["load_before"] for rs in runs.values() for r in rs if "load_before" in r]
    facts["median_loadavg_before_measurements"] = (
        round(statistics.median(loads), 2) if loads else None
    )
    payload = {
        "facts": facts,
        "config": report.configuration(args),
        "summary": summary,
        "runs": {k: v for k, v in runs.items()},
    }
    stem = "smoke" if args.smoke else "latest"
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=1, sort_keys=True))
    markdown = report.markdown(payload, args)
    (args.out / f"{stem}.md").write_text(markdown)
    print()
    print(markdown)
    print(f"wrote {args.out / (stem + '.md')} and {stem}.json")
    if args.smoke and ours_failed:
        # The smoke run exists to keep our side of the benchmark working.
        print(f"{ours_failed} django_jobs measurement(s) failed")
        return 1
    return 0


def brief(result: dict | None) -> str:
    if result is None:
        return "failed"
    if "p50_ms" in result:
        return (
            f"p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms (n={result['samples']})"
        )
    text = f"{result['rate']:,.0f} jobs/s"
    if "rss_end_mb" in result:
        text += f", RSS {result.get('rss_1k_mb', 0):.1f} → {result['rss_end_mb']:.1f} MB"
    return text


def fmt_floor(result: dict | None) -> str:
    if result is None:
        return "failed"
    return ", ".join(f"{k} {v:,.0f}" for k, v in result.items())


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Medians per (engine, metric, system) of every numeric field."""
    out: dict[str, dict] = {}
    for key, results in runs.items():
        engine, metric, system = json.loads(key)
        fields = {k for r in results for k, v in r.items() if isinstance(v, int | float)}
        med = {}
        for f in sorted(fields):
            values = [r[f] for r in results if isinstance(r.get(f), int | float)]
            if values:
                med[f] = statistics.median(values)
        med["n"] = len(results)
        config = next((r["config"] for r in results if "config" in r), None)
        if config:
            med["config"] = config
        out.setdefault(engine, {}).setdefault(metric, {})[system] = med
    return out


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["PEERS", "main"]
