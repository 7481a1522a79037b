"""USE_TZ = False: django_jobs stores naive UTC; the admin shows those times as UTC, never
through timezone.localtime() (which refuses naive values)."""

from datetime import UTC, datetime, timedelta

import pytest

from django_jobs.models import Job, Worker

from .helpers import TRACEBACK

pytestmark = pytest.mark.django_db
URL = "/admin/django_jobs/job/"


def naive_utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.fixture
def naive_rows(settings):
    """USE_TZ = False in a zone that is not UTC, and one job in each state and a live
    worker, every time naive UTC as django_jobs writes them in that mode. (The rows are
    written under the same settings as they are read: on PostgreSQL a naive value is
    stored in the connection's TIME_ZONE.)"""
    settings.USE_TZ = False
    settings.TIME_ZONE = "Europe/Paris"
    now = naive_utc_now()
    jobs = {
        "ready": Job.objects.create(name="tests.testapp.jobs.noop", run_at=now),
        "later": Job.objects.create(
            name="tests.testapp.jobs.noop", run_at=now + timedelta(hours=3)
        ),
        "running": Job.objects.create(
            name="tests.testapp.jobs.noop",
            run_at=now,
            locked_at=now,
            locked_by="django-jobs-worker.*.1@host",
            attempts=1,
        ),  # fmt: skip
        "failed": Job.objects.create(
            name="tests.testapp.jobs.fail",
            run_at=None,
            failed_at=now - timedelta(days=2),
            attempts=3,
            last_error=TRACEBACK,
        ),  # fmt: skip
        "succeeded": Job.objects.create(
            name="tests.testapp.jobs.noop", run_at=now, finished_at=now, attempts=1
        ),
    }
    for job in jobs.values():
        Job.objects.filter(pk=job.pk).update(created_at=now, updated_at=now)
    Worker.objects.create(
        identity="django-jobs-worker.*.1@host", host="host", pid=1,
        started_at=now, heartbeat_at=now,
    )  # fmt: skip
    return jobs


@pytest.mark.parametrize("status", ["", "ready", "later", "running", "failed", "succeeded"])
def test_job_list(admin_client, naive_rows, status):
    response = admin_client.get(URL, {"status": status} if status else {})
    assert response.status_code == 200
    content = response.content.decode()
    assert "Times are in UTC" in content


@pytest.mark.parametrize("state", ["ready", "later", "running", "failed", "succeeded"])
def test_job_page(admin_client, naive_rows, state):
    response = admin_client.get(f"{URL}{naive_rows[state].pk}/change/")
    assert response.status_code == 200
    assert "UTC" in response.content.decode()


def test_failures_page(admin_client, naive_rows):
    response = admin_client.get(URL + "failed/")
    assert response.status_code == 200
    assert "Times are in UTC" in response.content.decode()


def test_dashboard(admin_client, naive_rows):
    response = admin_client.get(URL + "dashboard/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Times are in UTC" in content
    assert "django-jobs-worker.*.1@host" in content
    assert 'id="djj-queues"' in content


def test_shown_times_are_the_stored_utc(admin_client, naive_rows):
    """Paris is UTC+1 or +2: a time shifted to local would differ from the stored one."""
    failed = naive_rows["failed"]
    content = admin_client.get(URL, {"status": "failed"}).content.decode()
    # Another day than today: the date, with the full UTC time on hover.
    assert f'<time datetime="{failed.failed_at.isoformat()}"' in content
    assert f">{failed.failed_at:%Y-%m-%d}</time>" in content
    page = admin_client.get(f"{URL}{failed.pk}/change/").content.decode()
    assert " UTC (2\xa0days ago)" in page or " UTC (2 days ago)" in page


def test_aware_times_are_not_labelled_utc(admin_client):
    assert "Times are in UTC" not in admin_client.get(URL).content.decode()
