"""The admin in a real browser: Debian's Chromium driven by Playwright.

Deselected by default; run with ``pytest -m browser tests/admin/test_browser.py``. The
flow also writes the screenshots shown in docs/howto/admin.md.
"""

from __future__ import annotations

import io
import re
import signal
from datetime import timedelta
from pathlib import Path

import django
import pytest
from django.db import connections
from django.utils import timezone

from django_jobs.models import Job
from django_jobs.runtime.workoff import workoff
from tests.conftest import wait_until
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "_static" / "screenshots"
#: The width the admin must fit with its navigation sidebar open (issue 14).
WIDTH = 1280
#: Screenshots are taken on each supported Django: job-list-dj52.png, job-list-dj61.png, …
VERSION_SUFFIX = f"-dj{django.VERSION[0]}{django.VERSION[1]}"


@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; the ORM calls the
    # test makes between browser steps are ordinary blocking calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # While that loop runs, Django keeps this thread's connections apart from those made
    # outside it: close each set when switching, or one stays open and PostgreSQL refuses
    # to drop the test database at the end of the session.
    connections.close_all()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            browser.close()
            connections.close_all()


def run_workoff() -> None:
    """Run ready jobs in this process, leaving pytest's signal handlers as they were."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        workoff(stream=io.StringIO())
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def shot(page, name: str, **options) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    stem, _, ext = name.rpartition(".")
    page.screenshot(path=str(SCREENSHOTS / f"{stem}{VERSION_SUFFIX}.{ext}"), **options)


def assert_sidebar_open(page) -> None:
    assert page.locator("#main.shifted").count() == 1
    assert page.locator("#nav-sidebar").bounding_box()["width"] > 200


def assert_styled_breadcrumbs(page) -> str:
    """The breadcrumbs are Django's markup for this version, with the admin's colours."""
    tag = "ol" if django.VERSION >= (6, 0) else "div"
    crumbs = page.locator(f"nav {tag}.breadcrumbs")
    assert crumbs.count() == 1
    background = crumbs.evaluate("e => getComputedStyle(e).backgroundColor")
    # --breadcrumbs-bg, #264b5d in the light theme (an unstyled element is transparent).
    assert background == "rgb(38, 75, 93)", background
    if tag == "ol":
        assert crumbs.locator("li").first.evaluate("e => getComputedStyle(e).display") == (
            "inline-block"
        )
    return crumbs.inner_text()


def assert_list_fits(page) -> None:
    """No horizontal scrolling of the page or the results, and the error column is shown."""
    sizes = page.evaluate(
        """() => {
            const results = document.querySelector('#changelist-form .results');
            const error = document.querySelector('#result_list th.column-error_line');
            const box = error.getBoundingClientRect();
            return {
                page: document.documentElement.scrollWidth,
                viewport: document.documentElement.clientWidth,
                results: results.scrollWidth, resultsBox: results.clientWidth,
                errorLeft: box.left, errorRight: box.right,
                columns: [...document.querySelectorAll('#result_list thead th')]
                    .map(th => Math.round(th.getBoundingClientRect().width)),
                rowHeights: [...document.querySelectorAll('#result_list tbody tr')]
                    .map(row => row.getBoundingClientRect().height),
            };
        }"""
    )
    assert sizes["page"] <= sizes["viewport"], sizes
    assert sizes["results"] <= sizes["resultsBox"], sizes
    assert sizes["errorRight"] <= sizes["viewport"], sizes
    assert sizes["errorRight"] - sizes["errorLeft"] >= 120, sizes  # room to read the error
    # One line per row: no cell wraps (a wrapped row is at least twice as tall).
    assert max(sizes["rowHeights"]) < 1.5 * min(sizes["rowHeights"]), sizes


def test_failed_job_found_read_retried_and_succeeding(
    live_server, browser_page, settings, django_user_model, processes
):
    settings.JOBS = {
        **settings.JOBS,
        # One attempt, so fail_once fails for good; keep successes to show them.
        "WORKERS": [{"MAX_ATTEMPTS": 1, "DELETE_SUCCESSFUL_JOBS": False, "SLEEP_DELAY": 0.1}],
    }
    django_user_model.objects.create_superuser("admin", "admin@example.com", "secret-pw")
    for n in range(3):
        jobs.record.enqueue(f"report-{n}")
    jobs.send_email.enqueue("ada@example.com", subject="Welcome")
    flaky = jobs.fail_once.enqueue("invoice-42")
    jobs.send_email.using(wait=timedelta(hours=2)).enqueue("bob@example.com")
    jobs.record.using(wait=timedelta(minutes=30), priority=10).enqueue("nightly")
    old = Job.objects.create(
        name="tests.testapp.jobs.fail", args=["old"], run_at=None, attempts=1,
        failed_at=timezone.now() - timedelta(days=10), last_error="ValueError: old\n",
    )  # fmt: skip
    run_workoff()
    flaky.refresh_from_db()
    assert flaky.status == "failed" and "RuntimeError: first attempt fails" in flaky.last_error
    # A real worker, serving only the "slow" queue, holds a long job meanwhile.
    slow = jobs.slow.enqueue("export", seconds=120)
    processes(
        "jobs", "worker", "--id", "7",
        env={"DJANGO_SETTINGS_MODULE": "tests.admin.browser_settings"},
    )  # fmt: skip
    wait_until(lambda: Job.objects.filter(pk=slow.pk, locked_at__isnull=False).exists())

    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/django_jobs/job/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/django_jobs/job/")
    assert_sidebar_open(page)
    sidebar = page.locator("#nav-sidebar .app-django_jobs")
    assert sidebar.locator('a[href="/admin/django_jobs/job/dashboard/"]').count() == 1
    assert page.locator("#result_list tbody tr").count() == 9
    assert page.locator(".djj-badge.djj-running").count() == 1
    assert_list_fits(page)
    reference = page.locator(".breadcrumbs").evaluate("e => getComputedStyle(e).backgroundColor")
    assert reference == "rgb(38, 75, 93)"  # Django's own page: the colour to match
    error = page.locator("#result_list td.field-error_line .djj-error").first
    assert error.get_attribute("title") == "RuntimeError: first attempt fails"
    assert error.is_visible()
    shot(page, "job-list.png")

    page.goto(f"{live_server.url}/admin/django_jobs/job/?status=failed")
    assert_list_fits(page)
    shot(page, "failed-list.png")
    page.goto(f"{live_server.url}/admin/django_jobs/job/")

    # Failed in the last day: the old failure is left out.
    since = timezone.localtime(timezone.now() - timedelta(days=1))
    page.fill('input[name="failed_at__range__gte_0"]', since.strftime("%Y-%m-%d"))
    page.fill('input[name="failed_at__range__gte_1"]', since.strftime("%H:%M:%S"))
    page.click('#failed-at-form input[type="submit"]')
    page.wait_for_url("**failed_at__range__gte_0=*")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert f"/admin/django_jobs/job/{old.pk}/" not in page.content()

    rows.first.locator("th a").click()
    # The link keeps the list's filters in ?_changelist_filters=…
    page.wait_for_url(re.compile(rf"/admin/django_jobs/job/{flaky.pk}/change/\?_changelist"))
    traceback = page.locator("pre.djj-traceback").inner_text()
    assert traceback.startswith("Traceback (most recent call last):")
    assert traceback.rstrip().endswith("RuntimeError: first attempt fails")
    assert page.locator(".djj-badge").inner_text() == "failed"
    assert "Retry it to run it again" in page.locator(".djj-not-editable").inner_text()
    shot(page, "failed-job.png", full_page=True)

    page.click("a.djj-tool-retry")
    page.wait_for_url(f"**/admin/django_jobs/job/{flaky.pk}/retry/")
    assert "This changes 1 job" in page.locator("#content").inner_text()
    crumbs = [word for word in assert_styled_breadcrumbs(page).split() if word != "›"]
    assert crumbs == ["Home", "Jobs", "Jobs", "Retry"]
    page.click("form input[type=submit]")
    page.wait_for_url(f"**/admin/django_jobs/job/{flaky.pk}/change/")
    assert page.locator(".messagelist").inner_text() == "1 job was retried."
    assert page.locator(".djj-badge").inner_text() == "ready"

    run_workoff()
    page.reload()
    assert page.locator(".djj-badge").inner_text() == "succeeded"
    assert Execution.objects.filter(key="invoice-42").exists()

    # The admin's index page lists the dashboard with the jobs app.
    page.goto(f"{live_server.url}/admin/")
    shot(page, "admin-index.png")
    page.locator("#content-main .app-django_jobs").get_by_role(
        "link", name="Queue dashboard"
    ).click()
    page.wait_for_url("**/admin/django_jobs/job/dashboard/")
    assert_sidebar_open(page)
    assert "Job queues" in assert_styled_breadcrumbs(page)
    workers = page.locator("#djj-workers").inner_text()
    assert "django-jobs-worker.slow.7@" in workers and f"#{slow.pk}" in workers
    assert page.locator('#djj-queues tr[data-queue="default"] td').nth(5).inner_text() == "4"
    shot(page, "dashboard.png", full_page=True)

    # Auto-refresh: remembered across reloads, and the page updates itself.
    toggle = page.locator("#djj-auto-refresh")
    assert not toggle.is_checked()
    toggle.check()
    assert page.evaluate("localStorage.getItem('django_jobs.dashboard.autoRefresh')") == "on"
    page.reload()
    assert page.locator("#djj-auto-refresh").is_checked()
    jobs.noop.using(wait=timedelta(hours=1)).enqueue()
    page.wait_for_function(
        """() => document.querySelector('#djj-queues tr[data-queue="default"] td:nth-child(3)')
                 .innerText.trim() === "2" """,
        timeout=15_000,
    )
    page.locator("#djj-auto-refresh").uncheck()
    assert page.evaluate("localStorage.getItem('django_jobs.dashboard.autoRefresh')") == "off"

    page.goto(f"{live_server.url}/admin/django_jobs/job/failed/")
    assert "Failed jobs by error" in assert_styled_breadcrumbs(page)
    shot(page, "failures.png", full_page=True)


def test_a_queue_paused_and_resumed_and_a_job_cancelled_from_the_pages(
    live_server, browser_page, django_user_model
):
    from django_jobs.models import QueuePause

    django_user_model.objects.create_superuser("admin", "admin@example.com", "secret-pw")
    waiting = jobs.send_email.enqueue("ada@example.com")
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/django_jobs/job/dashboard/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/django_jobs/job/dashboard/")

    email = page.locator('#djj-queues tr[data-queue="email"]')
    email.get_by_role("button", name="Pause").click()
    page.wait_for_url("**/admin/django_jobs/job/dashboard/")
    assert "Queue email is paused" in page.locator(".messagelist").inner_text()
    assert QueuePause.objects.get(queue="email").paused_by == "admin"
    assert email.locator(".djj-paused").inner_text() == "paused"
    sizes = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert sizes[0] <= sizes[1], sizes  # the wider table still fits 1280 px
    shot(page, "dashboard-paused.png", full_page=True)

    page.goto(f"{live_server.url}/admin/django_jobs/job/{waiting.pk}/change/")
    page.locator(".djj-tool-cancel").click()
    page.wait_for_url(f"**/admin/django_jobs/job/{waiting.pk}/cancel/")
    assert assert_styled_breadcrumbs(page).endswith("Cancel")
    assert "Cancel jobs?" in page.locator("#content").inner_text()
    page.click("form input[type=submit]")
    page.wait_for_url(f"**/admin/django_jobs/job/{waiting.pk}/change/")
    assert page.locator(".djj-badge").inner_text() == "cancelled"
    assert "Cancelled by admin" in page.locator(".djj-traceback").inner_text()

    page.goto(f"{live_server.url}/admin/django_jobs/job/dashboard/")
    email.get_by_role("button", name="Resume").click()
    page.wait_for_url("**/admin/django_jobs/job/dashboard/")
    assert not QueuePause.objects.exists()
