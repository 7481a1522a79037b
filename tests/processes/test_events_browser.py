"""The event stream in a real browser: Debian's Chromium, the test project under uvicorn
(ASGI), a real worker running the job. Deselected by default (``make browser``).

The page is the minimal one of docs/howto/events.md (tests/testapp/templates/testapp/
progress.html): a progress bar fed by ``EventSource`` from ``job.events_url``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from unittest import mock

import pytest
from django.db import connections

from tests.conftest import ROOT, wait_until, worker_env
from tests.processes.app import jobs as process_jobs
from tests.processes.conftest import group, live_workers

pytestmark = [pytest.mark.browser, pytest.mark.processes, pytest.mark.usefixtures("events_idle")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def asgi_server(transactional_db, tmp_path):
    """The test project under uvicorn, on the test database; its base URL."""
    port = free_port()
    log = open(tmp_path / "uvicorn.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.asgi:application", "--port", str(port),
         "--log-level", "warning"],
        cwd=ROOT, env=worker_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            assert server.poll() is None, (tmp_path / "uvicorn.log").read_text()
            return False

    try:
        wait_until(listening, timeout=30, what="uvicorn")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.fixture
def page(monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    connections.close_all()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            browser.close()
            connections.close_all()


def test_a_page_sees_a_running_jobs_progress_rise_to_100_and_done(jobs_cmd, asgi_server, page):
    jobs_cmd("jobs", "work", workers=[group()], heartbeat=3)
    live_workers(1)
    # Due in 2 s: the page is open and listening before the job starts.
    job = process_jobs.reports_steps.using(wait=2).enqueue(steps=10, pause=0.2)
    page.goto(f"{asgi_server}/progress/{job.pk}/")
    page.wait_for_function("document.getElementById('status').textContent === 'done'")
    received = page.evaluate("window.received.map(([at, event]) => event)")
    assert received[0]["state"] == "scheduled"  # the stored state comes first
    progress = [event["progress"] for event in received[1:] if "progress" in event]
    assert progress == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert received[-1] == {"state": "succeeded", "job_id": job.pk, "done": True}
    assert page.evaluate("document.getElementById('bar').value") == 100


def test_a_wrong_or_expired_token_gets_403(asgi_server, page):
    job = process_jobs.reports_steps.using(wait=3600).enqueue()
    good = job.events_url
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 2 * 24 * 3600):
        expired = job.events_url  # signed two days ago; tokens last one (TOKEN_MAX_AGE)
    for url in (f"{good[:-3]}xx/", expired, f"/jobs/events/job/{job.pk}/"):
        response = page.request.get(f"{asgi_server}{url}")
        assert response.status == 403, url
        assert "invalid or has expired" in response.text()


def test_the_dashboard_updates_itself_from_its_stream_under_asgi(
    asgi_server, page, django_user_model
):
    from datetime import timedelta

    from tests.testapp import jobs

    django_user_model.objects.create_superuser("admin", "admin@example.com", "secret-pw")
    page.goto(f"{asgi_server}/admin/login/?next=/admin/django_jobs/job/dashboard/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/django_jobs/job/dashboard/")
    page.locator("#djj-auto-refresh").check()
    later = '#djj-queues tr[data-queue="default"] td:nth-child(3)'
    assert page.locator(later).inner_text().strip() == "0"
    page.evaluate("window.notReloaded = true")
    jobs.noop.using(wait=timedelta(hours=1)).enqueue()
    # The stream looks every 2 s and pushes the live part when it changed: no reload.
    page.wait_for_function(
        f"document.querySelector('{later}').innerText.trim() === '1'", timeout=15_000
    )
    assert page.evaluate("window.notReloaded") is True
