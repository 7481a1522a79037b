"""An admin Retry wakes an idle PostgreSQL worker at once (NOTIFY), not at its next poll.

The worker's SLEEP_DELAY is 30 s, so without a wake-up the retried job would wait up to
30 s. The action goes through the admin's own view, as a logged-in superuser posting the
confirmation form with its CSRF token.
"""

from __future__ import annotations

import json
import re
import statistics
import time

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from django_jobs import later
from django_jobs.models import Job
from django_jobs.models import Worker as WorkerRow
from tests.conftest import wait_until
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes

#: The issue asks for 50 ms: the median must meet it. On this 2-core machine, shared with
#: other test suites, one worker wake-up can be descheduled for longer than that, so each
#: single retry is held to 500 ms, still 60 times less than the 30 s poll it replaces: a
#: missing NOTIFY cannot pass. The figures are printed (pytest -s) and reported in
#: docs/howto/admin.md.
TARGET = 0.05
BOUND = 0.5
RETRIES = 5


def worker_is_waiting() -> bool:
    """Every other backend on the test database is idle: the worker sits in its LISTEN."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state <> 'idle'"
        )
        return cursor.fetchone()[0] == 0


def test_admin_retry_wakes_an_idle_worker(processes, django_user_model):
    if connection.vendor != "postgresql":
        pytest.skip("NOTIFY wake-ups are PostgreSQL's; SQLite and MySQL workers poll cheaply")
    groups = [{"QUEUE": "*", "COUNT": 1, "SLEEP_DELAY": 30, "DELETE_SUCCESSFUL_JOBS": False}]
    processes("jobs", "worker", "--index", "0", "--id", "w", env={
        "DJANGO_JOBS_WORKERS": json.dumps(groups),
    })  # fmt: skip
    wait_until(lambda: WorkerRow.objects.exists(), what="the worker to register")
    # A first job proves the worker is up and listening; then it goes back to waiting.
    later(jobs.record, ["warm-up"])
    wait_until(lambda: Execution.objects.filter(key="warm-up").exists(), timeout=30)

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    from_post, from_commit = [], []
    for n in range(RETRIES):
        key = f"retried-{n}"
        job = Job.objects.create(
            name=jobs.record.name, args=[key], run_at=None, attempts=3,
            failed_at=timezone.now(), last_error="Traceback\nValueError: boom\n",
        )  # fmt: skip
        wait_until(worker_is_waiting, timeout=10, interval=0.01, what="the worker to idle")
        url = f"/admin/django_jobs/job/{job.pk}/retry/"
        confirm = client.get(url).content.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', confirm).group(1)
        posted = time.time()
        response = client.post(url, {"csrfmiddlewaretoken": token, "post": "yes"})
        assert response.status_code == 302, response.content[:500]
        ran = wait_until(
            lambda key=key: Execution.objects.filter(key=key).first(),
            timeout=35, interval=0.005, what=f"{key} to run",
        )  # fmt: skip
        job.refresh_from_db()
        # run_at is the moment retry_jobs() made the job ready (before its UPDATE commits);
        # started is taken by the job in the worker: both from this host's clock.
        from_commit.append(ran.started - job.run_at.timestamp())
        from_post.append(ran.started - posted)

    print(
        "\nadmin Retry -> job started in the idle worker (SLEEP_DELAY 30 s), "
        f"{RETRIES} retries:\n"
        f"  from the retry's UPDATE: {', '.join(f'{s * 1000:.1f}' for s in from_commit)} ms "
        f"(median {statistics.median(from_commit) * 1000:.1f} ms)\n"
        f"  from the POST sent:      {', '.join(f'{s * 1000:.1f}' for s in from_post)} ms "
        f"(median {statistics.median(from_post) * 1000:.1f} ms)"
    )
    # The figure holds for the typical retry; none may be anywhere near a poll.
    assert statistics.median(from_post) < TARGET, from_post
    assert max(from_commit) < BOUND, from_commit
    assert max(from_post) < BOUND, from_post
