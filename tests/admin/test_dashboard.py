"""The queue dashboard, the failures-by-error page and the links to them."""

import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from django_jobs.admin import charts, dashboard
from django_jobs.models import Job, Worker

from .helpers import make_job

pytestmark = pytest.mark.django_db
LIST = "/admin/django_jobs/job/"
DASHBOARD = LIST + "dashboard/"
FAILURES = LIST + "failed/"
RETRY_GROUP = LIST + "failed/retry/"


def error(kind: str, message: str = "x") -> str:
    return f'Traceback (most recent call last):\n  File "a.py", line 1\n{kind}: {message}\n'


def row_cells(content: str, queue: str) -> list[str]:
    row = re.search(rf'<tr data-queue="{queue}">(.*?)</tr>', content, re.S).group(1)
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


def test_dashboard_counts_per_queue(admin_client, settings):
    settings.JOBS = {**settings.JOBS, "WORKERS": [{"DELETE_SUCCESSFUL_JOBS": False}]}
    now = timezone.now()
    make_job("ready", run_at=now - timedelta(minutes=5))
    make_job("later")
    make_job("running")
    make_job("failed", queue="email")
    make_job("succeeded", queue="email")
    response = admin_client.get(DASHBOARD)
    assert response.status_code == 200
    content = response.content.decode()
    ready, later, running, failed, cancelled, succeeded, oldest, actions = row_cells(
        content, "default"
    )
    assert actions == ""  # the Pause button is an input
    assert (ready, later, running, failed, cancelled, succeeded) == ("1", "1", "1", "0", "0", "0")
    assert oldest.startswith("5 min")
    assert row_cells(content, "email")[3:6] == ["1", "0", "1"]
    assert f'href="{LIST}?status=ready&amp;queue=default"' in content
    assert "Live updates" in content and "dashboard/stream/" in content
    assert "/static/django_jobs/dashboard.js" in content


def test_succeeded_not_kept_is_said(admin_client):
    make_job("ready")
    content = admin_client.get(DASHBOARD).content.decode()
    assert row_cells(content, "default")[5] == "not kept"
    assert "No worker group keeps successful jobs" in content


def test_live_workers_and_their_jobs(admin_client):
    now = timezone.now()
    Worker.objects.create(identity="w.<b>1</b>@h", host="h<i>", pid=4242, heartbeat_at=now)
    Worker.objects.create(identity="gone@h", host="h", pid=1, heartbeat_at=now - timedelta(days=1))
    job = make_job("running", locked_by="w.<b>1</b>@h", locked_at=now - timedelta(seconds=75))
    content = admin_client.get(DASHBOARD).content.decode()
    assert "1 live worker" in content
    assert "w.&lt;b&gt;1&lt;/b&gt;@h" in content and "h&lt;i&gt;" in content
    assert "<b>1</b>" not in content
    assert "gone@h" not in content
    assert f'href="{LIST}{job.pk}/change/">tests.testapp.jobs.noop #{job.pk}</a>' in content
    assert "running for 1 min 15 s" in content


def test_no_live_worker(admin_client):
    assert "No worker has sent a heartbeat" in admin_client.get(DASHBOARD).content.decode()


def test_chart_is_inline_svg(admin_client):
    now = timezone.now()
    make_job("failed", failed_at=now)
    make_job("failed", failed_at=now)
    make_job("succeeded", finished_at=now - timedelta(hours=2))
    content = admin_client.get(DASHBOARD).content.decode()
    svg = re.search(r"<svg class=\"djj-chart\".*?</svg>", content, re.S).group(0)
    assert svg.count('<rect class="djj-bar-failed"') == 24
    assert svg.count('<rect class="djj-bar-succeeded"') == 24
    hour = timezone.localtime(now).strftime("%H:00")
    assert f"<title>{hour} failed: 2</title>" in svg
    assert "1 succeeded and 2 failed in the last 24 hours" in content
    assert "<script" not in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_chart_scales_to_a_round_top():
    assert [charts.nice_ceiling(v) for v in (0, 2, 3, 11, 41, 101)] == [2, 2, 4, 20, 100, 200]
    start = timezone.now()
    svg = charts.hourly_bars([start], [charts.Series("<x>", [3], "c")], "t<")
    assert "&lt;x&gt;" in svg and 'aria-label="t&lt;"' in svg
    assert ">4</text>" in svg and ">2</text>" in svg


def test_dashboard_needs_view_permission(staff_client):
    assert staff_client().get(DASHBOARD).status_code == 403
    assert staff_client().get(FAILURES).status_code == 403
    assert staff_client("view_job").get(DASHBOARD).status_code == 200


def test_links_to_the_dashboard(admin_client):
    app = admin_client.get("/admin/django_jobs/").content.decode()
    assert f'href="{DASHBOARD}"' in app and f'href="{FAILURES}"' in app
    assert f'href="{DASHBOARD}"' in admin_client.get(LIST).content.decode()


def test_failures_grouped_by_job_and_error(admin_client):
    for _ in range(3):
        make_job("failed", name="app.jobs.a", last_error=error("ValueError"))
    make_job("failed", name="app.jobs.a", last_error=error("KeyError"))
    make_job("failed", name="app.jobs.b", last_error=error("ValueError", "<script>x</script>"))
    make_job("failed", name="app.jobs.b", last_error="worker w@h died while running this job")
    make_job("ready", name="app.jobs.a")
    response = admin_client.get(FAILURES)
    groups = [(g["group"].name, g["group"].error_type, g["group"].count)
              for g in response.context["groups"]]  # fmt: skip
    assert groups == [
        ("app.jobs.a", "ValueError", 3),
        ("app.jobs.a", "KeyError", 1),
        ("app.jobs.b", "", 1),
        ("app.jobs.b", "ValueError", 1),
    ]
    content = response.content.decode()
    assert "<script>x" not in content and "ValueError: &lt;script&gt;x&lt;/script&gt;" in content
    assert "(no exception class)" in content
    assert content.count('value="Retry this group"') == 4


def test_failures_page_reads_a_bounded_sample(monkeypatch):
    for _ in range(5):
        make_job("failed", last_error=error("ValueError"))
    groups, scanned = dashboard.failure_groups("default", limit=3)
    assert scanned == 3 and groups[0].count == 3


def test_retry_group_confirms_then_retries_that_group_only(admin_client):
    a = [make_job("failed", name="app.jobs.a", last_error=error("ValueError")) for _ in range(2)]
    other = make_job("failed", name="app.jobs.a", last_error=error("KeyError"))
    data = {"name": "app.jobs.a", "error_type": "ValueError"}
    response = admin_client.post(RETRY_GROUP, data)
    assert response.status_code == 200
    assert "This changes 2 jobs" in response.content.decode()
    assert Job.objects.failed().count() == 3
    response = admin_client.post(RETRY_GROUP, {**data, "post": "yes"})
    assert response.url == FAILURES
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["2 jobs were retried."]
    assert list(Job.objects.failed().values_list("pk", flat=True)) == [other.pk]
    assert all(Job.objects.get(pk=j.pk).status == "scheduled" for j in a)


def test_retry_group_without_exception_class(admin_client):
    job = make_job("failed", name="app.jobs.b", last_error="worker w@h died while running")
    make_job("failed", name="app.jobs.b", last_error=error("ValueError"))
    admin_client.post(RETRY_GROUP, {"name": "app.jobs.b", "error_type": "", "post": "yes"})
    assert Job.objects.get(pk=job.pk).status == "scheduled"
    assert Job.objects.failed().count() == 1


def test_retry_group_needs_retry_permission(staff_client):
    make_job("failed", name="app.jobs.a", last_error=error("ValueError"))
    client = staff_client("view_job", "change_job", "delete_job")
    response = client.get(FAILURES)
    assert response.status_code == 200
    assert "Retry this group" not in response.content.decode()
    data = {"name": "app.jobs.a", "error_type": "ValueError", "post": "yes"}
    assert client.post(RETRY_GROUP, data).status_code == 403
    assert Job.objects.failed().count() == 1
    client = staff_client("view_job", "retry_job")
    assert "Retry this group" in client.get(FAILURES).content.decode()
    assert client.post(RETRY_GROUP, data).status_code == 302
    assert Job.objects.failed().count() == 0


def test_worker_admin_is_read_only(admin_client):
    worker = Worker.objects.create(identity="w@h", host="h", pid=1)
    response = admin_client.get("/admin/django_jobs/worker/")
    assert response.status_code == 200 and "w@h" in response.content.decode()
    assert not response.context["has_add_permission"]
    page = admin_client.get(f"/admin/django_jobs/worker/{worker.pk}/change/")
    assert page.context["adminform"].form.fields == {}
    assert admin_client.get(f"/admin/django_jobs/worker/{worker.pk}/delete/").status_code == 403
