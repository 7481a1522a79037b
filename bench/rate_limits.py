"""How closely rate-limited jobs follow their budget: ``python -m bench.rate_limits``.

    python -m bench.rate_limits --engine postgres --jobs 200 --rate 20/s --repeat 3

Four ``manage.py jobs worker`` processes of the test project (five threads each; rows kept
after success, so that ``started_at`` can be read back) run on a fresh ``bench_rates``
database. Once they are idle, ``--jobs`` jobs of ``tests.testapp.rate_jobs.paced``
(``rate_limit="20/s"``) are enqueued at once. When all have run, it prints per run:

* the shortest span holding N + 1 consecutive grants (the database's record: never under
  the period plus the margin), of the starts the workers recorded (``Job.started_at``),
  and of the jobs' own first lines;
* the span from the first start to the last, beside the ideal ((jobs - N) / N periods);
* how long after its grant's moment each job started (p50, p99, max).

and one ``BENCH-RESULT`` line. Timings are never asserted (the process tests assert the
grants exactly and the starts with a wide tolerance): run this on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import lib  # noqa: E402

DB = "bench_rates"
WORKERS = 4
GROUP = {"QUEUE": "*", "THREADS": 5, "SLEEP_DELAY": 5, "DELETE_SUCCESSFUL_JOBS": False}


def environment(engine: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DJANGO_JOBS_DB={"postgres": "postgres", "mysql": "mysql"}.get(engine, "sqlite"),
        DJANGO_JOBS_TEST_DB_NAME=DB,
        DJANGO_JOBS_SQLITE_NAME=lib.sqlite_path(DB),
        DJANGO_JOBS_WORKERS=json.dumps([GROUP]),
        PYTHONPATH=str(lib.REPO),
    )
    return env


def tightest(times: list[float], count: int) -> float:
    times = sorted(times)
    return min((b - a for a, b in zip(times, times[count:], strict=False)), default=0.0)


def one_run(engine: str, jobs: int) -> dict:
    from django.db import connections

    from django_jobs import later_many
    from django_jobs.models import Job, RateGrant, Worker
    from django_jobs.rates import parse
    from tests.testapp import rate_jobs
    from tests.testapp.models import Execution

    Job.objects.all().delete()
    RateGrant.objects.all().delete()
    Execution.objects.all().delete()
    Worker.objects.all().delete()
    rate = parse(rate_jobs.paced.rate.rate.text)
    command = [lib.this_python(), "-m", "django", "jobs", "worker", "--index", "0", "--id"]
    with lib.processes([[*command, str(i)] for i in range(WORKERS)], environment(engine)) as ps:
        deadline = time.monotonic() + 60
        while Worker.objects.count() < WORKERS:
            lib.check_alive(ps)
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not start")
            time.sleep(0.05)
        later_many(rate_jobs.paced, [[n] for n in range(jobs)])
        deadline = time.monotonic() + 30 + 3 * jobs / rate.count * rate.period
        while Job.objects.filter(finished_at__isnull=False).count() < jobs:
            lib.check_alive(ps)
            if time.monotonic() > deadline:
                raise SystemExit("the jobs did not all run")
            time.sleep(0.1)
    grants = sorted(at.timestamp() for at in RateGrant.objects.values_list("at", flat=True))
    starts = sorted(t.timestamp() for t in Job.objects.values_list("started_at", flat=True))
    lines = sorted(Execution.objects.values_list("started", flat=True))
    # Each start against the latest grant at or before it: the lag of the hand-over.
    lags = []
    for start in starts:
        before = [g for g in grants if g <= start + 1e-6]
        if before:
            lags.append(start - before[-1])
    lags.sort()
    connections.close_all()
    n, period = rate.count, rate.period
    return {
        "jobs": jobs,
        "rate": rate.text,
        "grants_tightest": round(tightest(grants, n), 4),
        "starts_tightest": round(tightest(starts, n), 4),
        "first_lines_tightest": round(tightest(lines, n), 4),
        "span": round(starts[-1] - starts[0], 3),
        "ideal_span": round((jobs - n) / n * period, 3),
        "lag_p50_ms": round(1000 * statistics.median(lags), 1),
        "lag_p99_ms": round(1000 * lib.percentile(lags, 99), 1),
        "lag_max_ms": round(1000 * lags[-1], 1),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--engine", default="sqlite", choices=["sqlite", "postgres", "mysql"])
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    lib.reset_database(args.engine, DB)
    os.environ.update(environment(args.engine))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    results = []
    for run in range(args.repeat):
        result = one_run(args.engine, args.jobs)
        results.append(result)
        print(
            f"run {run + 1}: {result['jobs']} jobs at {result['rate']}: span "
            f"{result['span']} s (ideal {result['ideal_span']} s, "
            f"{result['span'] / result['ideal_span'] - 1:+.1%}); N + 1 in at least "
            f"{result['grants_tightest']} s of grants, {result['starts_tightest']} s of "
            f"starts, {result['first_lines_tightest']} s of first lines; start after "
            f"grant p50 {result['lag_p50_ms']} ms, p99 {result['lag_p99_ms']} ms, max "
            f"{result['lag_max_ms']} ms",
            flush=True,
        )
    lib.emit({"engine": args.engine, "runs": results})
    lib.drop_database(args.engine, DB)
    return results


if __name__ == "__main__":
    main()
