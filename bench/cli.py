"""The command line every benchmark driver shares: ``python -m bench.<driver> SCENARIO ...``.

``bench.ours`` and the peer drivers in ``bench/peers/`` take the same options, with the
same defaults, for what they have in common (database, job count, worker processes, kind
of job, pickup sampling); each adds its own system's knobs. Plain argparse: the peer
drivers run in their own virtualenv, without Django.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any

ENGINES = ("sqlite", "postgres", "mysql")

#: A driver's own option: (flag, keyword arguments of ``add_argument``).
Option = tuple[str, dict[str, Any]]


def driver_args(
    argv: Sequence[str] | None,
    scenarios: Iterable[str],
    *,
    engines: Sequence[str] = ENGINES,
    kinds: Sequence[str] = ("noop", "sleep"),
    options: Iterable[Option] = (),
) -> argparse.Namespace:
    """Parse a driver's command line.

    With one engine (the PostgreSQL-only peers) ``--engine`` defaults to it; otherwise it
    is required.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=list(scenarios))
    if len(engines) == 1:
        parser.add_argument("--engine", default=engines[0], choices=list(engines))
    else:
        parser.add_argument("--engine", required=True, choices=list(engines))
    parser.add_argument("--db", default="bench_jobs")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--kind", default="noop", choices=list(kinds))
    for flag, kwargs in options:
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--samples", type=int, default=200, help="pickup samples")
    parser.add_argument("--budget", type=float, default=30.0, help="pickup time budget (s)")
    parser.add_argument("--jitter", type=float, default=0.2, help="pickup spacing jitter (s)")
    return parser.parse_args(argv)
