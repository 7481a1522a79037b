"""A job's page: what it shows, what may be edited and when."""

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory
from django.utils import timezone

from django_jobs.models import Job

from .helpers import make_job

pytestmark = pytest.mark.django_db


def page(job: Job) -> str:
    return f"/admin/django_jobs/job/{job.pk}/change/"


def edit(job: Job, **values) -> dict:
    local = timezone.localtime(values.pop("run_at", job.run_at or timezone.now()))
    data = {
        "queue": job.queue,
        "priority": job.priority,
        "run_at_0": local.strftime("%Y-%m-%d"),
        "run_at_1": local.strftime("%H:%M:%S"),
    }
    data.update(values)
    return data


def test_failed_job_shows_its_traceback_escaped(admin_client):
    error = (
        "Traceback (most recent call last):\n"
        '  File "jobs.py", line 1, in f\n'
        "ValueError: <script>alert('x')</script>\n"
    )
    job = make_job("failed", last_error=error)
    content = admin_client.get(page(job)).content.decode()
    assert "<script>alert(" not in content
    assert (
        '<pre class="djj-pre djj-traceback">Traceback (most recent call last):\n'
        "  File &quot;jobs.py&quot;, line 1, in f\n"
        "ValueError: &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;\n</pre>"
    ) in content


def test_arguments_are_pretty_json(admin_client):
    job = make_job(args=[1, {"b": 2, "a": "<b>"}], kwargs={"to": "ünïcode"})
    content = admin_client.get(page(job)).content.decode()
    assert (
        '<pre class="djj-pre djj-json">[\n  1,\n  {\n    &quot;a&quot;: &quot;&lt;b&gt;&quot;,'
        "\n    &quot;b&quot;: 2\n  }\n]</pre>"
    ) in content
    assert "&quot;to&quot;: &quot;ünïcode&quot;" in content


def test_timeline(admin_client):
    now = timezone.now()
    job = make_job(
        "running", locked_at=now - timedelta(seconds=90), locked_by="w.<i>x</i>@h", attempts=2
    )
    content = admin_client.get(page(job)).content.decode()
    assert '<ol class="djj-timeline">' in content
    assert "<strong>Created</strong>" in content
    assert "<strong>Started</strong>" in content and "by w.&lt;i&gt;x&lt;/i&gt;@h" in content
    assert "running for 1 min 30 s" in content
    assert "<strong>Attempts</strong> 2 of 3" in content
    failed = make_job("failed")
    assert "<strong>Failed</strong>" in admin_client.get(page(failed)).content.decode()
    done = make_job("succeeded")
    assert "<strong>Succeeded</strong>" in admin_client.get(page(done)).content.decode()


def test_progress_shows_only_when_set(admin_client):
    job = make_job("running", progress=40, progress_message="step <2>")
    content = admin_client.get(page(job)).content.decode()
    assert '<progress class="djj-progress" max="100" value="40">' in content
    assert "step &lt;2&gt;" in content
    assert "djj-progress" not in admin_client.get(page(make_job())).content.decode()


def test_scheduled_job_edits_queue_priority_and_run_at(admin_client):
    job = make_job("later", args=[1])
    when = timezone.now() + timedelta(days=2)
    response = admin_client.post(page(job), edit(job, queue="email", priority=3, run_at=when))
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.queue, job.priority, job.args) == ("email", 3, [1])
    assert abs(job.run_at - when) < timedelta(seconds=1)


def test_only_those_three_fields_are_editable(admin_client):
    job = make_job("ready")
    form = admin_client.get(page(job)).context["adminform"].form
    assert sorted(form.fields) == ["priority", "queue", "run_at"]
    response = admin_client.post(page(job), {**edit(job), "name": "x", "attempts": 9})
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.name, job.attempts) == ("tests.testapp.jobs.noop", 0)


def test_queue_must_be_configured(admin_client):
    job = make_job("ready", queue="old")
    response = admin_client.get(page(job))
    assert "old (not in JOBS[&#x27;QUEUES&#x27;])" in response.content.decode()
    response = admin_client.post(page(job), edit(job, queue="old"))
    assert response.status_code == 200
    assert "queue" in response.context["adminform"].form.errors
    response = admin_client.post(page(job), edit(job, queue="nowhere"))
    assert "queue" in response.context["adminform"].form.errors
    job.refresh_from_db()
    assert job.queue == "old"


def test_scheduled_job_needs_run_at(admin_client):
    job = make_job("ready")
    data = {**edit(job), "run_at_0": "", "run_at_1": ""}
    response = admin_client.post(page(job), data)
    assert "run_at" in response.context["adminform"].form.errors


def test_running_job_is_read_only(admin_client):
    job = make_job("running")
    response = admin_client.get(page(job))
    assert response.context["adminform"].form.fields == {}
    assert not response.context["has_change_permission"]
    assert 'name="_save"' not in response.content.decode()
    response = admin_client.post(page(job), edit(job, priority=1))
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.priority == 50


def test_a_claim_after_the_page_loaded_wins(admin_user):
    """The guarded update leaves a row a worker claimed since the job was fetched."""
    job = make_job("ready")
    stale = Job.objects.get(pk=job.pk)
    Job.objects.filter(pk=job.pk).update(locked_at=timezone.now(), locked_by="w@h")
    model_admin = site._registry[Job]
    request = RequestFactory().post("/")
    request.user = admin_user
    form = model_admin.get_form(request, stale)(
        data=edit(stale, priority=1, queue="email"), instance=stale
    )
    assert form.is_valid(), form.errors
    model_admin.save_model(request, form.save(commit=False), form, change=True)
    assert request._django_jobs_conflict
    job.refresh_from_db()
    assert (job.priority, job.queue, job.locked_by) == (50, "default", "w@h")


def test_view_only_user_sees_a_read_only_page(staff_client):
    client = staff_client("view_job")
    job = make_job("failed")
    response = client.get(page(job))
    assert response.status_code == 200
    assert response.context["adminform"].form.fields == {}
    assert response.context["job_buttons"] == []
    assert "ValueError: boom" in response.content.decode()
    assert client.post(page(job), edit(job, priority=1)).status_code == 403


def test_django_delete_view_is_closed(admin_client):
    job = make_job("failed")
    assert admin_client.get(page(job).replace("change", "delete")).status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()


@pytest.mark.parametrize("state, reason", [
    ("failed", "This job has failed: it will not run again by itself"),
    ("succeeded", "This job has succeeded: there is nothing left to change."),
    ("running", "A worker is running this job"),
])  # fmt: skip
def test_jobs_that_will_not_be_claimed_again_are_read_only_and_say_why(admin_client, state, reason):
    """Editing a failed job's run time used to say "changed successfully" and leave it
    failed: the page is read-only instead, and says why (and that Retry is the way)."""
    job = make_job(state)
    response = admin_client.get(page(job))
    assert response.context["adminform"].form.fields == {}
    assert not response.context["has_change_permission"]
    content = response.content.decode()
    assert reason in content
    assert 'name="_save"' not in content
    if state == "failed":
        assert [action.name for action, _ in response.context["job_buttons"]] == [
            "retry",
            "discard",
        ]
    when = timezone.now() + timedelta(minutes=5)
    response = admin_client.post(page(job), edit(job, priority=1, run_at=when))
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.priority == 50 and job.status == state


def test_a_failure_after_the_page_loaded_is_not_overwritten(admin_user):
    """A job that fails (or succeeds) between page load and save keeps its outcome."""
    job = make_job("ready")
    stale = Job.objects.get(pk=job.pk)
    Job.objects.filter(pk=job.pk).update(failed_at=timezone.now(), last_error="boom")
    model_admin = site._registry[Job]
    request = RequestFactory().post("/")
    request.user = admin_user
    form = model_admin.get_form(request, stale)(data=edit(stale, priority=1), instance=stale)
    assert form.is_valid(), form.errors
    model_admin.save_model(request, form.save(commit=False), form, change=True)
    assert request._django_jobs_conflict
    job.refresh_from_db()
    assert (job.priority, job.status) == (50, "failed")


def test_the_unique_key_and_snoozes_are_shown_when_set(admin_client):
    plain = make_job()
    content = admin_client.get(page(plain)).content.decode()
    assert "Controls" not in content and "Snoozes" not in content
    job = make_job(unique_key="a" * 64, snoozes=3)
    content = admin_client.get(page(job)).content.decode()
    assert "Controls" in content and "a" * 64 in content
    assert '<div class="readonly">3</div>' in content


def test_a_job_waiting_for_a_slot_says_why(admin_client):
    key = "tests.testapp.limit_jobs.per_customer:<b>customer-7</b>"
    job = make_job(run_at=None, concurrency_key=key, concurrency_limit=1)
    content = admin_client.get(page(job)).content.decode()
    escaped = "tests.testapp.limit_jobs.per_customer:&lt;b&gt;customer-7&lt;/b&gt;"
    assert f"concurrency limit 1 for key {escaped}" in content
    assert "1 at once for key" in content and "<b>customer-7</b>" not in content
    assert 'class="djj-badge djj-waiting"' in content
    # In the list too: the badge says waiting, its tooltip why.
    listing = admin_client.get("/admin/django_jobs/job/").content.decode()
    assert f'title="concurrency limit 1 for key {escaped}">waiting<' in listing
    # A running job with a key shows its limit, not a reason to wait.
    running = make_job("running", concurrency_key="k", concurrency_limit=2)
    content = admin_client.get(page(running)).content.decode()
    assert "2 at once for key k" in content and "concurrency limit 2 for key" not in content


def test_a_job_waiting_for_its_rate_limit_says_until_when(admin_client):
    from django_jobs.models import RateGrant

    key = "shop.jobs.charge_card:<b>acme</b>"
    due = timezone.now() + timedelta(minutes=5)
    job = make_job(run_at=due, rate_key=key, rate_limit="20/s")
    RateGrant.objects.create(key=key, at=due, job_id=job.pk)
    content = admin_client.get(page(job)).content.decode()
    escaped = "shop.jobs.charge_card:&lt;b&gt;acme&lt;/b&gt;"
    until = f"{timezone.localtime(due):%H:%M:%S}"
    assert f"rate limited until {until} (rate limit 20/s for key {escaped})" in content
    assert f"20/s for key {escaped}" in content and "<b>acme</b>" not in content
    # The list says it on hover, with no query per row.
    listing = admin_client.get("/admin/django_jobs/job/").content.decode()
    assert f"rate limit 20/s for key {escaped}: due" in listing
    # Once it runs, its rate is shown, not a reason to wait.
    running = make_job("running", rate_key="k", rate_limit="5/m")
    content = admin_client.get(page(running)).content.decode()
    assert "5/m for key k" in content and "rate limited until" not in content
