"""Cancelling jobs and pausing queues in the admin: confirmation, permissions, CSRF, badges."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from django_jobs import cancel, pause
from django_jobs.models import Job, QueuePause
from tests.admin.helpers import make_job

pytestmark = pytest.mark.django_db
LIST = "/admin/django_jobs/job/"
DASHBOARD = "/admin/django_jobs/job/dashboard/"
HOSTILE = "<script>alert(1)</script>"


def cancel_url(job: Job) -> str:
    return f"{LIST}{job.pk}/cancel/"


def test_the_cancel_button_asks_first_then_cancels_a_waiting_job(staff_client):
    job = make_job("ready")
    client = staff_client("view_job", "cancel_job")
    page = client.get(f"{LIST}{job.pk}/change/").content.decode()
    assert f'href="{cancel_url(job)}"' in page
    confirm = client.get(cancel_url(job))
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Cancel jobs?" in html and "This changes 1 job" in html
    job.refresh_from_db()
    assert job.status == "scheduled"  # asking changed nothing
    response = client.post(cancel_url(job), {"post": "yes"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "cancelled"
    user = User.objects.get(username=response.wsgi_request.user.username)
    assert job.last_error == f"Cancelled by {user.username}"


def test_cancelling_takes_the_cancel_permission(staff_client):
    job = make_job("ready")
    client = staff_client("view_job", "change_job", "retry_job")
    assert f'href="{cancel_url(job)}"' not in client.get(f"{LIST}{job.pk}/change/").content.decode()
    assert client.post(cancel_url(job), {"post": "yes"}).status_code == 403
    job.refresh_from_db()
    assert job.status == "scheduled"
    actions = client.get(LIST).context["action_form"].fields["action"].choices
    assert "cancel_selected" not in dict(actions)


def test_the_bulk_action_cancels_waiting_jobs_asks_running_ones_and_skips_ended(staff_client):
    waiting, running, done = make_job("ready"), make_job("running"), make_job("succeeded")
    client = staff_client("view_job", "cancel_job")
    ids = [str(j.pk) for j in (waiting, running, done)]
    confirm = client.post(LIST, {"action": "cancel_selected", "_selected_action": ids})
    assert confirm.status_code == 200 and "This changes 2 jobs" in confirm.content.decode()
    client.post(LIST, {"action": "cancel_selected", "_selected_action": ids, "post": "yes"})
    for job in (waiting, running, done):
        job.refresh_from_db()
    assert waiting.status == "cancelled"
    assert running.status == "running" and running.cancel_requested
    assert done.status == "succeeded" and done.cancelled_at is None


def test_badges_filter_and_columns_show_cancelled_and_cancelling_jobs(admin_client):
    gone = make_job("ready")
    cancel(gone.pk, reason=HOSTILE)
    stopping = make_job("running")
    cancel(stopping.pk)
    failed = make_job("failed")
    html = admin_client.get(LIST).content.decode()
    assert 'class="djj-badge djj-cancelled"' in html and ">cancelled<" in html
    assert 'class="djj-badge djj-cancelling"' in html
    assert HOSTILE not in html
    only = admin_client.get(LIST, {"status": "cancelled"})
    assert [j.pk for j in only.context["cl"].result_list] == [gone.pk]
    assert "column-cancelled_at_short" in only.content.decode()
    failed_only = admin_client.get(LIST, {"status": "failed"}).context["cl"].result_list
    assert [j.pk for j in failed_only] == [failed.pk]  # a cancelled job is not "failed"
    page = admin_client.get(f"{LIST}{gone.pk}/change/").content.decode()
    assert "This job was cancelled" in page and "djj-event-cancelled" in page


def test_retry_runs_a_cancelled_job_again(admin_client):
    job = make_job("ready")
    cancel(job.pk)
    admin_client.post(f"{LIST}{job.pk}/retry/", {"post": "yes"})
    job.refresh_from_db()
    assert job.status == "scheduled" and job.cancelled_at is None and job.last_error == ""


def csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_the_dashboard_pauses_and_resumes_a_queue_with_csrf_and_permission(staff_client):
    client = staff_client("view_job", "change_queuepause")
    user = User.objects.get(username=client.get(DASHBOARD).wsgi_request.user.username)
    strict = csrf_client(user)
    html = strict.get(DASHBOARD).content.decode()
    assert '<tr data-queue="email">' in html and 'value="Pause"' in html
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    pause_url = "/admin/django_jobs/job/queues/pause/"
    assert strict.post(pause_url, {"queue": "email"}).status_code == 403  # no CSRF token
    assert not QueuePause.objects.exists()
    assert strict.get(pause_url).status_code == 405
    response = strict.post(
        pause_url, {"queue": "email", "reason": HOSTILE, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    row = QueuePause.objects.get(queue="email")
    assert row.paused_by == user.username and row.reason == HOSTILE
    html = strict.get(DASHBOARD).content.decode()
    assert 'class="djj-queue-paused"' in html and 'value="Resume"' in html
    assert HOSTILE not in html
    strict.post(
        "/admin/django_jobs/job/queues/resume/", {"queue": "email", "csrfmiddlewaretoken": token}
    )
    assert not QueuePause.objects.exists()


def test_pausing_takes_the_permission_and_a_known_queue(staff_client, admin_client):
    viewer = staff_client("view_job")
    assert 'value="Pause"' not in viewer.get(DASHBOARD).content.decode()
    assert (
        viewer.post("/admin/django_jobs/job/queues/pause/", {"queue": "email"}).status_code == 403
    )
    assert not QueuePause.objects.exists()
    response = admin_client.post(
        "/admin/django_jobs/job/queues/pause/", {"queue": "emial"}, follow=True
    )
    assert "did you mean &#x27;email&#x27;?" in response.content.decode()
    assert not QueuePause.objects.exists()
    assert admin_client.post("/admin/django_jobs/job/queues/halt/", {}).status_code == 404


def test_the_dashboard_counts_cancelled_jobs_apart_from_failed_ones(admin_client):
    cancel(make_job("ready", queue="email").pk)
    make_job("failed", queue="email")
    pause("default")
    html = admin_client.get(DASHBOARD).content.decode()
    email = re.search(r'<tr data-queue="email">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r'<td class="djj-num">(.*?)</td>', email, re.S)
    assert ">1</a>" in cells[3] and "?status=cancelled&amp;queue=email" in cells[4]
    assert 'class="djj-queue-paused"' in html.split('data-queue="default"')[1][:40]
