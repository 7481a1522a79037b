"""The no-op job with a concurrency limit of 1 per key over 100 keys (``drain_limited``).

Imported by the workers of that drain only (BENCH_LIMITS): a declared limit makes every
claim of a worker count slots, which the other drains must not measure.
"""

from django_jobs import job


def _key(i):
    return i % 100


@job(concurrency=1, concurrency_key=_key)
def noop_limited(i):
    pass
