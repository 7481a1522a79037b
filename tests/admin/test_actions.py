"""Retry, run now and discard: confirmation, effect, messages, permissions, CSRF."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from django_jobs.models import Job

from .helpers import make_job

pytestmark = pytest.mark.django_db
LIST = "/admin/django_jobs/job/"


def bulk(client, action: str, jobs, confirm: bool, **extra):
    data = {"action": action, "_selected_action": [j.pk for j in jobs], **extra}
    if confirm:
        data["post"] = "yes"
    else:
        data["index"] = "0"
    return client.post(extra.pop("url", LIST), data)


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_bulk_retry_asks_then_retries_failed_jobs_only(admin_client):
    failed = [make_job("failed", progress=10) for _ in range(2)]
    ready = make_job("ready")
    response = bulk(admin_client, "retry_selected", [*failed, ready], confirm=False)
    assert response.status_code == 200
    assert response.templates[0].name == "admin/django_jobs/job/action_confirmation.html"
    content = response.content.decode()
    assert "This changes 2 jobs" in content
    assert f'name="_selected_action" value="{ready.pk}"' in content
    assert Job.objects.failed().count() == 2  # nothing happened yet

    before = timezone.now()
    response = bulk(admin_client, "retry_selected", [*failed, ready], confirm=True)
    assert response.status_code == 302
    assert texts(response) == ["2 jobs were retried."]
    for job in failed:
        job.refresh_from_db()
        assert job.failed_at is None and job.last_error == "" and job.attempts == 0
        assert job.run_at >= before and job.progress is None
        assert job.status == "scheduled"


def test_bulk_run_now(admin_client):
    later = make_job("later")
    running = make_job("running")
    response = bulk(admin_client, "run_now_selected", [later, running], confirm=False)
    assert "This changes 1 job:" in response.content.decode()
    response = bulk(admin_client, "run_now_selected", [later, running], confirm=True)
    assert texts(response) == ["1 job will run now."]
    later.refresh_from_db()
    assert later.run_at <= timezone.now()
    running.refresh_from_db()
    assert running.locked_at is not None


def test_bulk_discard_leaves_running_jobs(admin_client):
    jobs = [make_job("failed"), make_job("ready"), make_job("running")]
    bulk(admin_client, "discard_selected", jobs, confirm=False)
    assert Job.objects.count() == 3
    response = bulk(admin_client, "discard_selected", jobs, confirm=True)
    assert texts(response) == ["2 jobs were discarded."]
    assert list(Job.objects.values_list("pk", flat=True)) == [jobs[2].pk]


def test_nothing_applicable_is_a_warning(admin_client):
    ready = make_job("ready")
    response = bulk(admin_client, "retry_selected", [ready], confirm=False)
    assert "confirming changes nothing" in response.content.decode()
    response = bulk(admin_client, "retry_selected", [ready], confirm=True)
    assert texts(response) == ["No job was retried: only failed and cancelled jobs can be retried."]


def test_select_across_acts_on_every_filtered_job(admin_client):
    failed = [make_job("failed") for _ in range(3)]
    make_job("ready")
    url = LIST + "?status=failed"
    data = {"action": "retry_selected", "select_across": "1", "index": "0",
            "_selected_action": [failed[0].pk]}  # fmt: skip
    response = admin_client.post(url, data)
    content = response.content.decode()
    assert "This changes 3 jobs" in content
    assert 'name="select_across" value="1"' in content
    del data["index"]
    response = admin_client.post(url, {**data, "post": "yes"})
    assert texts(response) == ["3 jobs were retried."]
    assert not Job.objects.failed().exists()


@pytest.mark.parametrize(
    "segment, state, message",
    [
        ("retry", "failed", "1 job was retried."),
        ("run-now", "later", "1 job will run now."),
        ("discard", "failed", "1 job was discarded."),
    ],
)
def test_job_page_buttons(admin_client, segment, state, message):
    job = make_job(state)
    url = f"{LIST}{job.pk}/{segment}/"
    assert f'href="{url}"' in admin_client.get(f"{LIST}{job.pk}/change/").content.decode()
    response = admin_client.get(url)
    assert response.status_code == 200
    assert "This changes 1 job:" in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == state.replace("later", "scheduled")
    response = admin_client.post(url, {"post": "yes"})
    assert texts(response) == [message]
    expected = LIST if segment == "discard" else f"{LIST}{job.pk}/change/"
    assert response.url == expected
    if segment == "discard":
        assert not Job.objects.filter(pk=job.pk).exists()
    else:
        assert Job.objects.get(pk=job.pk).status == "scheduled"


def test_buttons_follow_the_state(admin_client):
    def buttons(job):
        response = admin_client.get(f"{LIST}{job.pk}/change/")
        return [action.name for action, _ in response.context["job_buttons"]]

    assert buttons(make_job("failed")) == ["retry", "discard"]
    assert buttons(make_job("later")) == ["run_now", "cancel", "discard"]
    assert buttons(make_job("running")) == ["cancel"]
    assert buttons(make_job("succeeded")) == ["discard"]


def test_a_post_without_confirmation_changes_nothing(admin_client):
    job = make_job("failed")
    response = admin_client.post(f"{LIST}{job.pk}/retry/", {})
    assert response.status_code == 200
    assert Job.objects.get(pk=job.pk).status == "failed"


def test_missing_job_redirects(admin_client):
    response = admin_client.get(f"{LIST}999999/retry/")
    assert response.status_code == 302


@pytest.mark.parametrize(
    "perms, actions, buttons, final",
    [
        (["view_job"], [], [], "failed"),
        (["view_job", "retry_job"], ["retry_selected"], ["retry"], "scheduled"),
        (["view_job", "change_job"], ["run_now_selected"], [], "failed"),
        (["view_job", "delete_job"], ["discard_selected"], ["discard"], None),
    ],
)
def test_permissions(staff_client, perms, actions, buttons, final):
    client = staff_client(*perms)
    failed = make_job("failed")
    response = client.get(LIST)
    assert response.status_code == 200
    offered = response.context["action_form"].fields["action"].choices if actions else []
    assert [name for name, _ in offered if name] == actions
    if not actions:
        assert response.context["action_form"] is None
    page = client.get(f"{LIST}{failed.pk}/change/")
    assert [a.name for a, _ in page.context["job_buttons"]] == buttons
    for name, segment in (("retry", "retry"), ("run_now", "run-now"), ("discard", "discard")):
        allowed = f"{name}_selected" in actions
        status = client.get(f"{LIST}{failed.pk}/{segment}/").status_code
        assert status == (200 if allowed else 403), (name, status)
        response = client.post(f"{LIST}{failed.pk}/{segment}/", {"post": "yes"})
        assert response.status_code == (302 if allowed else 403)
        # A bulk action the user may not take is refused by Django's changelist.
        if not allowed:
            bulk(client, f"{name}_selected", [failed], confirm=True)
    # Only the allowed action changed the job; the refused ones left it alone.
    job = Job.objects.filter(pk=failed.pk).first()
    assert (job.status if job else None) == final


def test_non_staff_and_anonymous_are_sent_to_login(staff_client):
    job = make_job("failed")
    urls = [LIST, f"{LIST}{job.pk}/change/", f"{LIST}{job.pk}/retry/", f"{LIST}dashboard/",
            f"{LIST}failed/", f"{LIST}failed/retry/"]  # fmt: skip
    anonymous = Client()
    client = staff_client("view_job", "retry_job", staff=False)
    for url in urls:
        for c in (anonymous, client):
            response = c.get(url)
            assert response.status_code == 302 and "/login/" in response.url, url
    assert client.post(f"{LIST}{job.pk}/retry/", {"post": "yes"}).status_code == 302
    assert Job.objects.get(pk=job.pk).status == "failed"


def test_actions_need_the_csrf_token(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    job = make_job("failed")
    assert client.post(f"{LIST}{job.pk}/retry/", {"post": "yes"}).status_code == 403
    data = {"action": "retry_selected", "_selected_action": [job.pk], "post": "yes"}
    assert client.post(LIST, data).status_code == 403
    assert client.post(f"{LIST}failed/retry/", {"post": "yes"}).status_code == 403
    assert Job.objects.get(pk=job.pk).status == "failed"
    # With the token from the confirmation page, it goes through.
    page = client.get(f"{LIST}{job.pk}/retry/")
    token = page.context["csrf_token"]
    response = client.post(f"{LIST}{job.pk}/retry/", {"post": "yes", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Job.objects.get(pk=job.pk).status == "scheduled"


def test_retry_of_a_job_that_failed_long_ago_runs_now(admin_client):
    job = make_job("failed", failed_at=timezone.now() - timedelta(days=3))
    admin_client.post(f"{LIST}{job.pk}/retry/", {"post": "yes"})
    assert Job.objects.ready().filter(pk=job.pk).exists()
