"""PostgreSQL restarts under two busy workers: they back off, reconnect and lose nothing.

The module name sorts last so that the restart happens after the other process tests;
the test closes every connection it broke, so tests after it reconnect.
"""

import os
import shutil
import subprocess
import time

import pytest
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.db.models import Count

from django_jobs import later_many
from django_jobs.models import Job
from tests.conftest import wait_until
from tests.processes.conftest import group, live_workers
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(
        os.environ.get("DJANGO_JOBS_DB") != "postgres", reason="restarts a PostgreSQL cluster"
    ),
]

TOTAL = 5000
WORKERS = 2


def cluster_of_test_database() -> list[str]:
    """``[version, name]`` of the local cluster listening on the test database's port."""
    if shutil.which("pg_lsclusters") is None or os.geteuid() != 0:
        pytest.skip("needs pg_ctlcluster (Debian's postgresql-common) and root")
    port = str(settings.DATABASES["default"].get("PORT") or "5432")
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    )
    for line in listing.stdout.splitlines():
        version, name, cluster_port, *_ = line.split()
        if cluster_port == port:
            return [version, name]
    pytest.skip(f"no local cluster listens on port {port}")


def when_up(query):
    """Run ``query``; None while the database is away (our connection broke with it)."""
    try:
        return query()
    except (OperationalError, InterfaceError):
        connections.close_all()
        return None


def performed() -> int:
    return Execution.objects.values("key").distinct().count()


def test_workers_survive_a_postgresql_restart_and_lose_no_job(jobs_cmd):
    cluster = cluster_of_test_database()
    # 1 ms per job: enough work left when the restart comes, yet done in seconds.
    later_many(jobs.record, [[f"k{n}", 0.001] for n in range(TOTAL)])
    supervisor = jobs_cmd("jobs", "work", workers=[group(WORKERS)], heartbeat=20)
    workers = live_workers(WORKERS)
    try:
        wait_until(lambda: performed() >= TOTAL // 10, what="the workers to get going")
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart"],
            check=True,
            timeout=60,
        )
        restarted = time.monotonic()
        connections.close_all()
        left = TOTAL - wait_until(lambda: when_up(performed), what="the database to be back")
        assert left > 0, "every job ran before the restart: the test proved nothing"
        wait_until(lambda: when_up(performed) == TOTAL, timeout=60, what="every job to run")
        took = time.monotonic() - restarted
    finally:
        connections.close_all()
    runs = Execution.objects.count()
    # A job runs twice only when its worker lost the database after the job's own write
    # committed and before its outcome was recorded: once per worker at most.
    assert runs - TOTAL <= WORKERS, (
        Execution.objects.values("key").annotate(n=Count("id")).filter(n__gt=1)
    )
    wait_until(lambda: not Job.objects.exists(), what="every outcome to be recorded")
    assert live_workers(WORKERS) == workers  # the same processes: none died
    output = supervisor.output()
    assert "database error" in output and "the database is back" in output
    assert took < 45, f"{left} jobs took {took:.0f} s after the restart"
