"""Workers and enqueuers through PgBouncer in transaction pooling mode (PostgreSQL).

Each test starts a PgBouncer of its own (``pgbouncer_port``); worker and enqueuing
subprocesses reach the test database through it (``DJANGO_JOBS_PGBOUNCER_PORT`` in
tests/settings.py), with a ``direct`` alias beside it for ``LISTEN_DATABASE``.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connections, transaction
from django.test import override_settings

from django_jobs import later
from django_jobs.models import Job
from django_jobs.models import Worker as WorkerRow
from django_jobs.storage import LOCK_WAIT, bound_lock_waits
from django_jobs.storage.pooler import LocalLockWait, behind_pooler
from tests.conftest import wait_until
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes

ENQUEUE = """
from django.db import transaction
from django_jobs import later, later_many
from tests.testapp import jobs
later_many(jobs.record, [[f"bulk{n}"] for n in range(200)])
for n in range(40):
    later(jobs.record, [f"one{n}"])
with transaction.atomic():
    later(jobs.record, ["in-transaction"])
later(jobs.fail_once, ["retried"])
later(jobs.fail_for_good)
"""


def use_pooled(port: int) -> str:
    """In this thread, alias "pooled" is the test database through the PgBouncer.

    Made on the fly and kept out of ``connections.settings``: Django's test case lets a
    test use such a connection without declaring it (it did not exist at setup).
    """
    settings = connections["default"].settings_dict
    connections.settings["pooled"] = {
        **settings,
        "PORT": str(port),
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }
    try:
        connections["pooled"] = connections.create_connection("pooled")
    finally:
        del connections.settings["pooled"]
    return "pooled"


@contextmanager
def pooled_alias(port: int):
    alias = use_pooled(port)
    try:
        yield alias
    finally:
        connections[alias].close()
        del connections[alias]


def through_pooler(port: int, groups: list[dict], listen: str = "") -> dict[str, str]:
    return {
        "DJANGO_JOBS_PGBOUNCER_PORT": str(port),
        "DJANGO_JOBS_LISTEN_DATABASE": listen,
        "DJANGO_JOBS_WORKERS": json.dumps(groups),
    }


def supervise(jobs_cmd, env: dict[str, str]):
    """``jobs work`` through the pooler; ``jobs_cmd`` stops its workers at teardown too
    (they live in sessions of their own), before the PgBouncer stops."""
    return jobs_cmd("jobs", "work", **env)


def test_the_pooler_is_detected_and_a_direct_connection_is_not(transactional_db, pgbouncer_port):
    with pooled_alias(pgbouncer_port) as alias:
        assert behind_pooler(connections[alias])
    assert not behind_pooler(connections["default"])


def test_lock_waits_are_bounded_per_transaction_behind_the_pooler(transactional_db, pgbouncer_port):
    job = Job.objects.create(name=jobs.record.name, args=["locked"])
    with pooled_alias(pgbouncer_port) as alias, override_settings(JOBS={"DATABASE": alias}):
        seen: dict[str, object] = {}

        def bounded() -> None:
            # What the heartbeat, watchdog and flusher threads do.
            bound_lock_waits()
            connection = connections[use_pooled(pgbouncer_port)]
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SHOW lock_timeout")
                    seen["timeout"] = cursor.fetchone()[0]
                seen["wrapped"] = any(
                    isinstance(w, LocalLockWait) for w in connection.execute_wrappers
                )
                Job.objects.using(alias).filter(pk=job.pk).update(priority=5)
            except OperationalError as exc:
                seen["error"] = exc
            finally:
                connection.close()
                del connections[alias]

        with transaction.atomic():  # a job's own transaction holding its row, directly
            Job.objects.select_for_update().get(pk=job.pk)
            thread = threading.Thread(target=bounded)
            thread.start()
            thread.join(30)
            assert not thread.is_alive(), "a bounded thread waited on the row lock"
        assert seen["timeout"] == f"{LOCK_WAIT}s"
        assert seen["wrapped"]
        assert "lock timeout" in str(seen["error"])
        # The setting lived in those transactions only: no pooled session keeps it.
        with connections[alias].cursor() as cursor:
            for _ in range(25):
                cursor.execute("SHOW lock_timeout")
                assert cursor.fetchone()[0] == "0"


def test_workers_claim_and_complete_what_enqueuers_store_through_the_pooler(
    pgbouncer_port, jobs_cmd, processes
):
    groups = [{"QUEUE": "*", "COUNT": 2, "MAX_ATTEMPTS": 3, "SLEEP_DELAY": 0.5, "THREADS": 2}]
    env = through_pooler(pgbouncer_port, groups)
    worker = supervise(jobs_cmd, env)
    enqueuer = processes("shell", "-c", ENQUEUE, env=env)
    assert enqueuer.wait(60) == 0, enqueuer.output()
    keys = {f"bulk{n}" for n in range(200)} | {f"one{n}" for n in range(40)}
    keys |= {"in-transaction", "retried"}
    wait_until(
        lambda: keys <= set(Execution.objects.values_list("key", flat=True)),
        timeout=60,
        what="every job to run through the pooler",
    )
    wait_until(lambda: Job.objects.failed().count() == 1, what="the failing job to fail")
    wait_until(lambda: not Job.objects.exclude(failed_at__isnull=False).exists())
    ran = list(Execution.objects.exclude(key__endswith=":tried").values_list("key", flat=True))
    assert sorted(ran) == sorted(keys), "a job ran twice or not at all"
    assert "django_jobs.W172" in worker.output()  # no LISTEN_DATABASE: told why it polls


def test_idle_workers_behind_the_pooler_poll_instead_of_missing_new_jobs(
    pgbouncer_port, jobs_cmd, processes
):
    groups = [{"QUEUE": "*", "COUNT": 1, "SLEEP_DELAY": 60}]
    worker = supervise(jobs_cmd, through_pooler(pgbouncer_port, groups))
    wait_until(lambda: WorkerRow.objects.exists(), what="the worker to register")
    wait_until(lambda: "django_jobs.W172" in worker.output(), what="the polling warning")
    for n in range(3):
        later(jobs.record, [f"polled{n}"])
        # SLEEP_DELAY is 60 s: only the fallback poll can find it within the deadline.
        wait_until(lambda n=n: Execution.objects.filter(key=f"polled{n}").exists(), timeout=15)


def test_listen_database_keeps_notify_wake_ups_behind_the_pooler(
    pgbouncer_port, jobs_cmd, processes
):
    groups = [{"QUEUE": "*", "COUNT": 1, "SLEEP_DELAY": 60}]
    env = through_pooler(pgbouncer_port, groups, listen="direct")
    worker = supervise(jobs_cmd, env)
    wait_until(lambda: WorkerRow.objects.exists(), what="the worker to register")
    # Enqueued through the pooler: the NOTIFY rides on the insert, LISTEN is direct.
    enqueuer = processes("shell", "-c", ENQUEUE, env=env)
    assert enqueuer.wait(60) == 0, enqueuer.output()
    wait_until(
        lambda: Execution.objects.filter(key="in-transaction").exists(),
        timeout=15,
        what="a wake-up through LISTEN_DATABASE",
    )
    assert "django_jobs.W172" not in worker.output()


def test_the_database_check_says_why_workers_poll_and_what_to_set(transactional_db, pgbouncer_port):
    from django_jobs.checks.pooling import check_pooled_databases

    with pooled_alias(pgbouncer_port) as alias:
        with override_settings(JOBS={"DATABASE": alias}):
            (message,) = check_pooled_databases(databases=[alias])
        assert message.id == "django_jobs.W172"
        assert "connection pooler" in message.msg and "LISTEN_DATABASE" in message.hint
        with override_settings(JOBS={"DATABASE": alias, "LISTEN_DATABASE": "default"}):
            assert check_pooled_databases(databases=[alias, "default"]) == []
    assert check_pooled_databases(databases=["default"]) == []
