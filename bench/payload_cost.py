"""The Python cost of one job's arguments, without the database: ``python -m bench.payload_cost``.

What an enqueue does before its INSERT (``calls._new_job``: bind, check, encode) and what
a worker does before it calls the function (``executor.Call``: look the job up, bind,
decode), per job, for the plain no-op job of ``bench/run.py`` (one int) and its typed twin
(an int, a datetime, a Decimal, a UUID and a dataclass; ``enqueue_typed``/``drain_typed``).
The database rows of ``bench/run.py`` are dominated by round trips; this isolates the part
typed payloads add. The best of ``--rounds`` runs of ``--calls`` calls each.
"""

from __future__ import annotations

import argparse
import os
import timeit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.project.settings")
    os.environ.setdefault("BENCH_TYPED", "1")  # declares noop_typed
    import django

    django.setup()
    from bench.project.benchapp import jobs
    from django_jobs.calls import _new_job, _options
    from django_jobs.executor import Call
    from django_jobs.storage.rows import ClaimedJob

    typed = getattr(jobs, "noop_typed", None)  # absent before typed payloads
    cases = [("plain", jobs.noop, lambda i: [i])]
    if typed is not None:
        cases.append(("typed", typed, jobs.typed_call))
    print(f"{'job':<6} {'enqueue (µs/job)':>17} {'perform (µs/job)':>17}")
    for label, definition, call in cases:
        options = _options(definition, None, None, None, None)
        sent = call(7)
        stored = _new_job(definition, sent, {}, options)
        claimed = ClaimedJob(1, definition.name, stored.arg_list, {}, "default", 50, 1, None)
        enqueue = _best(lambda d=definition, s=sent, o=options: _new_job(d, s, {}, o), args)
        perform = _best(lambda c=claimed: Call(c, None), args)
        print(f"{label:<6} {enqueue:>17.1f} {perform:>17.1f}")


def _best(fn, args) -> float:
    return min(timeit.repeat(fn, number=args.calls, repeat=args.rounds)) / args.calls * 1e6


if __name__ == "__main__":
    main()
