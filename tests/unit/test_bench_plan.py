"""The benchmark's plan and its drivers agree: every case's arguments parse in its driver."""

import importlib

import pytest

from bench import plan


def full_plan(smoke: bool) -> list[plan.Case]:
    return plan.cases(
        ["sqlite", "postgres", "mysql"], list(plan.PEERS), 10_000, 2_000, smoke, 200, 100_000
    )


@pytest.mark.parametrize("smoke", [False, True])
def test_every_case_parses_in_its_driver(smoke):
    for case in full_plan(smoke):
        args = importlib.import_module(case.module).parse_args(case.args)
        assert args.engine == case.engine, case
        assert args.scenario == case.args[0]


def test_each_system_gets_the_metrics_it_supports_on_its_engines():
    by_system: dict[tuple[str, str], list[str]] = {}
    for case in full_plan(smoke=False):
        by_system.setdefault((case.system, case.engine), []).append(case.metric)
    shared = ["enqueue_one", "enqueue_bulk", "drain_1", "drain_2", "sleep_sync"]
    assert by_system[(plan.OURS, "mysql")] == [
        *shared, "sleep_async", "pickup", "drain_limited", "enqueue_typed", "drain_typed",
        "scale", "memory",
    ]  # fmt: skip
    assert by_system[(plan.TASKSDB, "sqlite")] == [
        "enqueue_one", "drain_1", "drain_2", "sleep_sync", "pickup",
    ]  # fmt: skip
    assert by_system[(plan.PROCRASTINATE, "postgres")] == [*shared, "pickup"]
    assert by_system[(plan.PGQUEUER, "postgres")] == [*shared, "sleep_async", "pickup"]
    assert (plan.PGQUEUER, "sqlite") not in by_system
    assert (plan.PROCRASTINATE, "mysql") not in by_system


def test_slow_systems_drain_at_most_slow_jobs_and_the_best_configurations_are_passed():
    cases = {(c.system, c.engine, c.metric): c.args for c in full_plan(smoke=False)}
    tasksdb = cases[(plan.TASKSDB, "postgres", "drain_2")]
    assert tasksdb[tasksdb.index("--jobs") + 1] == "2000"
    ours = importlib.import_module("bench.ours").parse_args(
        cases[(plan.OURS, "postgres", "sleep_sync")]
    )
    assert (ours.kind, ours.procs, ours.threads) == ("sleep", 2, 64)
    pgq = importlib.import_module("bench.peers.pgqueuer_drive").parse_args(
        cases[(plan.PGQUEUER, "postgres", "sleep_async")]
    )
    assert (pgq.kind, pgq.procs, pgq.batch) == ("async", 2, 250)
