"""The admin's schedules page: every schedule like `jobs schedule`, Pause, Resume, Run now."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils.html import escape

from django_jobs.models import Job, ScheduleRun
from django_jobs.recurring.scheduler import is_paused

pytestmark = pytest.mark.django_db
PAGE = "/admin/django_jobs/job/schedules/"
HOSTILE = "<script>alert(1)</script>"
SCHEDULE = {
    "nightly": {"JOB": "tests.testapp.jobs.noop", "CRON": "30 2 * * *", "TIMEZONE": "Europe/Paris"},
    HOSTILE: {"JOB": "tests.testapp.jobs.noop", "CRON": "*/15 * * * *"},
}


@pytest.fixture(autouse=True)
def schedules():
    with override_settings(JOBS={**settings.JOBS, "SCHEDULE": SCHEDULE, "PRUNE": {}}):
        yield


def row(html: str, key: str) -> str:
    found = re.search(
        rf'<tr class="djj-schedule[^"]*" data-key="{re.escape(escape(key))}">(.*?)</tr>', html, re.S
    )
    assert found, f"no row for {key}"
    return found.group(1)


def csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def token(client: Client) -> str:
    html = client.get(PAGE).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_the_page_lists_every_schedule_like_the_command(admin_client):
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    nightly = row(html, "nightly")
    assert "tests.testapp.jobs.noop" in nightly and "<code>30 2 * * *</code>" in nightly
    assert "Europe/Paris" in nightly and "active" in nightly and "not yet" in nightly
    # The next three runs, at 02:30 in Paris (CET or CEST, named).
    assert len(re.findall(r"\d{4}-\d\d-\d\d 02:30:00 CES?T", nightly)) == 3
    assert "django_jobs.prune" in html and "built-in" in row(html, "django_jobs.prune")
    # A key is user-controlled text: escaped wherever it is shown.
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_pause_resume_and_run_now_are_csrf_posts(admin_user):
    client = csrf_client(admin_user)
    response = client.post(
        PAGE + "pause/", {"key": "nightly", "csrfmiddlewaretoken": token(client)}
    )
    assert response.status_code == 302 and response.url == PAGE
    assert is_paused("nightly") and not is_paused(HOSTILE)
    html = client.get(PAGE).content.decode()
    assert "paused" in row(html, "nightly") and 'value="Resume"' in row(html, "nightly")
    client.post(PAGE + "resume/", {"key": "nightly", "csrfmiddlewaretoken": token(client)})
    assert not is_paused("nightly")
    response = client.post(
        PAGE + "run/", {"key": HOSTILE, "csrfmiddlewaretoken": token(client)}, follow=True
    )
    run = ScheduleRun.objects.get(key=HOSTILE)
    assert run.manual and Job.objects.filter(pk=run.job_id, name="tests.testapp.jobs.noop").exists()
    html = response.content.decode()
    assert f"job #{run.job_id} enqueued" in html and HOSTILE not in html
    assert "(run now)" in row(html, HOSTILE) and "scheduled" in row(html, HOSTILE)


def test_an_unknown_key_changes_nothing(admin_client):
    response = admin_client.post(PAGE + "pause/", {"key": "nope"}, follow=True)
    assert "There is no schedule" in response.content.decode()
    assert not ScheduleRun.objects.exists()


def test_without_post_or_csrf_nothing_happens(admin_user, admin_client):
    assert admin_client.get(PAGE + "pause/?key=nightly").status_code == 405
    assert admin_client.get(PAGE + "run/?key=nightly").status_code == 405
    assert admin_client.post(PAGE + "explode/", {"key": "nightly"}).status_code == 404
    client = csrf_client(admin_user)
    assert client.post(PAGE + "pause/", {"key": "nightly"}).status_code == 403
    assert client.post(PAGE + "run/", {"key": "nightly"}).status_code == 403
    assert not is_paused("nightly") and not Job.objects.exists()


def test_viewers_see_the_page_without_buttons_and_may_not_post(staff_client):
    viewer = staff_client("view_job")
    html = viewer.get(PAGE).content.decode()
    assert "nightly" in html and 'value="Pause"' not in html and 'value="Run now"' not in html
    assert viewer.post(PAGE + "pause/", {"key": "nightly"}).status_code == 403
    assert viewer.post(PAGE + "run/", {"key": "nightly"}).status_code == 403
    assert not is_paused("nightly") and not Job.objects.exists()


def test_the_schedule_change_permission_allows_the_buttons(staff_client):
    operator = staff_client("view_job", "change_schedule")
    assert 'value="Pause"' in operator.get(PAGE).content.decode()
    assert operator.post(PAGE + "pause/", {"key": "nightly"}).status_code == 302
    assert is_paused("nightly")


def test_without_the_jobs_view_permission_the_page_is_refused(staff_client):
    assert staff_client("view_worker").get(PAGE).status_code == 403
    assert (
        staff_client("change_schedule").post(PAGE + "pause/", {"key": "nightly"}).status_code == 403
    )
    assert not is_paused("nightly")


@override_settings(USE_TZ=False)
def test_it_renders_under_use_tz_false(admin_client):
    admin_client.post(PAGE + "run/", {"key": "nightly"})
    html = admin_client.get(PAGE).content.decode()
    assert "(run now)" in row(html, "nightly")
    assert "Times are in each schedule" in html
