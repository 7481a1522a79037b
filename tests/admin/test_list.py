"""The job list: columns, filters, search, ordering and the paginator."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django.utils.html import escape

from django_jobs.admin import paging as admin_paging
from django_jobs.models import Job
from django_jobs.storage import get_storage
from tests.conftest import analyze_jobs

from .helpers import make_job

pytestmark = pytest.mark.django_db
URL = "/admin/django_jobs/job/"


def listed(response) -> list[int]:
    return [job.pk for job in response.context["cl"].result_list]


def test_columns(admin_client):
    job = make_job("failed", name="tests.testapp.jobs.fail_for_good", attempts=1)
    make_job("running", locked_by="django-jobs-worker.default.7@box")
    content = admin_client.get(URL).content.decode()
    assert 'class="djj-badge djj-failed" title="failed ' in content
    assert 'class="djj-badge djj-running" title="started ' in content
    # fail_for_good declares max_attempts=1; noop falls back to the group's MAX_ATTEMPTS (3).
    assert "1 of 1" in content and "1 of 3" in content
    # The worker holding a job is in its badge's tooltip (and a column of the running list).
    assert "by django-jobs-worker.default.7@box" in content
    assert "ValueError: boom" in content
    assert f'href="/admin/django_jobs/job/{job.pk}/change/' in content
    # The function name and id, with its dotted path on hover.
    assert (
        '<span class="djj-name" title="tests.testapp.jobs.fail_for_good">fail_for_good</span> '
        f'<span class="djj-id">#{job.pk}</span>'
    ) in content
    for header in ("job", "queue", "priority", "status", "run at", "last error"):
        assert f">{header.capitalize()}<" in content or f">{header}<" in content.lower()


@pytest.mark.parametrize(
    "status, headers",
    [
        ("", ["Job", "Queue", "Priority", "Status", "Run at", "Last error"]),
        ("ready", ["Job", "Queue", "Priority", "Status", "Run at", "Last error"]),
        ("running", ["Job", "Queue", "Priority", "Attempts", "Started at", "Worker"]),
        ("failed", ["Job", "Queue", "Priority", "Attempts", "Failed at", "Last error"]),
        ("succeeded", ["Job", "Queue", "Priority", "Attempts", "Finished at", "Created at"]),
    ],
)
def test_columns_per_status(admin_client, status, headers):
    make_job("running", locked_by="django-jobs-worker.default.7@box")
    response = admin_client.get(URL, {"status": status} if status else {})
    # The first header is the action checkbox's.
    shown = [str(h["text"]).lower() for h in response.context["result_headers"]][1:]
    assert shown == [h.lower() for h in headers]


@pytest.mark.parametrize(
    "status, arrows",
    [
        # Claim order: priority, run at, then id, which has no column of its own.
        ("", {"Priority": "ascending", "Run at": "ascending"}),
        ("failed", {"Failed at": "descending"}),
        ("succeeded", {"Finished at": "descending"}),
        ("running", {"Started at": "ascending"}),
    ],
)
def test_header_arrows_follow_the_actual_order(admin_client, status, arrows):
    """Filtered on failed jobs the rows are newest failure first: the headers say so."""
    for state in ("ready", "running", "failed", "succeeded"):
        make_job(state)
    response = admin_client.get(URL, {"status": status} if status else {})
    # What the header template draws the arrows from.
    sorted_headers = {
        str(h["text"]).capitalize(): "ascending" if h["ascending"] else "descending"
        for h in response.context["result_headers"]
        if h.get("sorted")
    }
    assert sorted_headers == arrows


def test_long_error_full_line_on_hover(admin_client):
    """The cell cuts the error to its width (checked in the browser test); the tooltip and
    the job's page have all of it."""
    long = "RuntimeError: <b>" + "word " * 60
    job = make_job("failed", last_error=f"Traceback\n{long}\n")
    content = admin_client.get(URL, {"status": "failed"}).content.decode()
    assert f'title="{escape(long.strip())}"' in content
    assert "<b>" not in content.split('id="result_list"')[1]
    page = admin_client.get(f"{URL}{job.pk}/change/").content.decode()
    assert escape(long.strip()) in page


def test_error_line_is_truncated_and_escaped(admin_client):
    long = "RuntimeError: <script>alert(1)</script> " + "x" * 200
    make_job("failed", last_error=f"Traceback\n{long}\n")
    content = admin_client.get(URL).content.decode()
    assert "<script>alert(1)</script>" not in content
    assert "RuntimeError: &lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "x" * 200 not in content.split('title="')[0]


def test_attempts_when_no_group_serves_the_queue(admin_client, settings):
    settings.JOBS = {**settings.JOBS, "WORKERS": [{"QUEUE": ["email"]}]}
    make_job("ready", queue="default", attempts=2)
    assert "2 of ?" in admin_client.get(URL).content.decode()


def test_default_ordering_is_claim_order(admin_client):
    now = timezone.now()
    c = make_job(priority=10, run_at=now)
    a = make_job(priority=1, run_at=now)
    b = make_job(priority=1, run_at=now + timedelta(seconds=1))
    d = make_job(priority=10, run_at=now)
    assert listed(admin_client.get(URL)) == [a.pk, b.pk, c.pk, d.pk]


@pytest.mark.parametrize(
    "status, expected",
    [
        ("ready", {"ready"}),
        ("later", {"later"}),
        ("scheduled", {"ready", "later"}),
        ("running", {"running"}),
        ("succeeded", {"succeeded"}),
        ("failed", {"failed"}),
    ],
)
def test_status_filter(admin_client, status, expected):
    jobs = {state: make_job(state).pk for state in ("ready", "later", "running", "failed")}
    jobs["succeeded"] = make_job("succeeded").pk
    response = admin_client.get(URL, {"status": status})
    assert sorted(listed(response)) == sorted(jobs[s] for s in expected)


def test_status_filter_ignores_unknown_values(admin_client):
    """``with_status`` looks names up on the queryset: ``delete`` must not reach it."""
    make_job("ready")
    response = admin_client.get(URL, {"status": "delete"})
    assert response.status_code == 200
    assert Job.objects.count() == 1


def test_queue_and_name_filters(admin_client):
    email = make_job(queue="email", name="tests.testapp.jobs.send_email")
    make_job(queue="default")
    assert listed(admin_client.get(URL, {"queue": "email"})) == [email.pk]
    assert listed(admin_client.get(URL, {"name": "tests.testapp.jobs.send_email"})) == [email.pk]
    content = admin_client.get(URL).content.decode()
    # Choices come from the settings and the registry, not from the table.
    assert "?queue=slow" in content and "name=tests.testapp.jobs.fail_once" in content


@pytest.mark.parametrize("field", ["run_at", "created_at", "failed_at"])
def test_date_range_filters(admin_client, field):
    now = timezone.now()
    old = make_job("failed", **{field: now - timedelta(days=10)})
    new = make_job("failed", **{field: now})
    start = timezone.localtime(now - timedelta(days=1))
    params = {
        f"{field}__range__gte_0": start.strftime("%Y-%m-%d"),
        f"{field}__range__gte_1": start.strftime("%H:%M:%S"),
    }
    assert listed(admin_client.get(URL, params)) == [new.pk]
    end = timezone.localtime(now - timedelta(days=5))
    params = {
        f"{field}__range__lte_0": end.strftime("%Y-%m-%d"),
        f"{field}__range__lte_1": end.strftime("%H:%M:%S"),
    }
    assert listed(admin_client.get(URL, params)) == [old.pk]


@pytest.mark.parametrize(
    "fields, term",
    [
        ({"name": "tests.testapp.jobs.send_email"}, "send_email"),
        ({"args": ["needle-42"]}, "needle-42"),
        ({"last_error": "KeyError: 'needle'"}, "keyerror"),
        ({"locked_by": "worker.needle@host", "locked_at": timezone.now()}, "needle@"),
        ({"tag": "signup-needle"}, "signup-needle"),
    ],
)
def test_search(admin_client, fields, term):
    make_job("ready")
    wanted = make_job("ready", **fields)
    assert listed(admin_client.get(URL, {"q": term})) == [wanted.pk]


def test_no_add_and_no_delete_selected(admin_client):
    make_job()
    response = admin_client.get(URL)
    assert not response.context["has_add_permission"]
    actions = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert actions == [
        "", "retry_selected", "run_now_selected", "cancel_selected", "discard_selected",
    ]  # fmt: skip
    assert admin_client.get(URL + "add/").status_code == 403


def test_small_tables_are_counted_exactly(admin_client):
    for _ in range(3):
        make_job()
    cl = admin_client.get(URL).context["cl"]
    assert cl.result_count == 3 and cl.paginator.count_kind == "exact"
    assert cl.full_result_count is None  # show_full_result_count=False: no second count


def test_filtered_count_stops_at_the_cap(admin_client, monkeypatch):
    monkeypatch.setattr(admin_paging, "EXACT_UP_TO", 4)
    for _ in range(6):
        make_job("failed")
    response = admin_client.get(URL, {"status": "failed"})
    cl = response.context["cl"]
    assert cl.paginator.count_kind == "lower bound" and cl.result_count == 4
    assert "more than 4 jobs" in response.content.decode()


# ANALYZE TABLE commits on MySQL/MariaDB: these tests cannot run in a rolled-back transaction.
@pytest.mark.django_db(transaction=True)
def test_unfiltered_count_beyond_the_cap_uses_the_estimate(admin_client, monkeypatch):
    monkeypatch.setattr(admin_paging, "EXACT_UP_TO", 4)
    for _ in range(30):
        make_job()
    analyze_jobs()
    response = admin_client.get(URL)
    cl = response.context["cl"]
    if connection.vendor != "sqlite":
        # PostgreSQL's estimate is exact on one page; InnoDB's is rough on a tiny table.
        estimate = max(get_storage().estimated_count(), 5)
        assert connection.vendor == "mysql" or estimate == 30
        assert cl.paginator.count_kind == "estimate" and cl.result_count == estimate
        assert f"about {estimate} jobs" in response.content.decode()
    else:
        assert get_storage().estimated_count() is None
        assert cl.paginator.count_kind == "lower bound" and cl.result_count == 4
    # Pages still hold the rows in order.
    assert len(listed(admin_client.get(URL))) == 30


@pytest.mark.django_db(transaction=True)
def test_estimate_follows_the_table():
    if connection.vendor == "sqlite":
        assert get_storage().estimated_count() is None
        return
    for _ in range(20):
        make_job()
    analyze_jobs()
    if connection.vendor == "postgresql":
        assert get_storage().estimated_count() == 20  # one page: counted exactly
        return
    # InnoDB's estimate (what SHOW TABLE STATUS says), which is rough on a tiny table.
    with connection.cursor() as cursor:
        cursor.execute("SHOW TABLE STATUS LIKE 'django_jobs_job'")
        columns = [c[0] for c in cursor.description]
        rows = dict(zip(columns, cursor.fetchone(), strict=True))["Rows"]
    assert get_storage().estimated_count() == rows > 0


def test_failed_and_succeeded_lists_show_the_newest_first(admin_client):
    now = timezone.now()
    old = make_job("failed", failed_at=now - timedelta(hours=2), priority=1)
    new = make_job("failed", failed_at=now, priority=99)
    assert listed(admin_client.get(URL, {"status": "failed"})) == [new.pk, old.pk]
    done_old = make_job("succeeded", finished_at=now - timedelta(hours=1))
    done_new = make_job("succeeded", finished_at=now)
    assert listed(admin_client.get(URL, {"status": "succeeded"})) == [done_new.pk, done_old.pk]
    # A column the user sorts on wins (priority is column 3, after the checkbox, job, queue).
    assert listed(admin_client.get(URL, {"status": "failed", "o": "3"})) == [old.pk, new.pk]


def test_a_tag_is_shown_and_its_link_on_the_job_page_filters_the_list_to_it(admin_client):
    make_job("ready")
    tagged = make_job("ready", tag="signup-42 <b>")
    content = admin_client.get(URL).content.decode()
    assert '<span class="djj-tag" title="signup-42 &lt;b&gt;">signup-42 &lt;b&gt;</span>' in content
    page = admin_client.get(f"{URL}{tagged.pk}/change/").content.decode()
    assert (
        f'<a class="djj-tag" href="{URL}?tag=signup-42+%3Cb%3E" title="Jobs with this tag">'
        "signup-42 &lt;b&gt;</a>"
    ) in page
    response = admin_client.get(URL, {"tag": "signup-42 <b>"})
    assert listed(response) == [tagged.pk]
    # The filter lists the chosen tag only: listing every tag would read the table.
    specs = response.context["cl"].filter_specs
    (tag_filter,) = [f for f in specs if getattr(f, "parameter_name", "") == "tag"]
    assert [choice["display"] for choice in tag_filter.choices(response.context["cl"])] == [
        "All",
        "signup-42 <b>",
    ]
