"""Chains and batches in the admin and `jobs status`: why a job waits, a batch's progress,
the flow block of a job's page, all escaped."""

import pytest
from django.db import transaction

from django_jobs import later, open_batch
from django_jobs.models import Job
from django_jobs.runtime.status import render_status
from django_jobs.testing import run_jobs
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)

EVIL = "<script>alert('x')</script>"


def page(job_id: int) -> str:
    return f"/admin/django_jobs/job/{job_id}/change/"


def test_a_waiting_job_page_says_what_it_waits_for_and_links_the_chain(admin_client):
    with transaction.atomic():
        a = later(jobs.record_or_fail, ["a"], wait=60)
        b = later(jobs.record_or_fail, [EVIL], after=a)
        c = later(jobs.record_or_fail, ["c"], after=[a, b])
    content = admin_client.get(page(c.pk)).content.decode()
    assert f"waiting for jobs {a.pk}, {b.pk}" in content
    assert "djj-waiting" in content and EVIL not in content
    assert f'href="/admin/django_jobs/job/{a.pk}/change/"' in content
    content = admin_client.get(page(a.pk)).content.decode()
    assert "Then runs:" in content and f"#{b.pk} record_or_fail" in content
    listing = admin_client.get("/admin/django_jobs/job/").content.decode()
    assert "waiting for 2 other job(s) to end" in listing
    status = render_status()
    assert f"#{c.pk}" in status and f"waiting for jobs {a.pk}, {b.pk}" in status


def test_a_batch_page_and_a_callback_page_show_progress_escaped(admin_client):
    batch = open_batch(on_finish=(jobs.batch_done, ["fin"]), description=EVIL)
    member = later(jobs.record_or_fail, ["m"], batch=batch)
    later(jobs.record_or_fail, ["bad"], {"fail": True}, batch=batch)
    run_jobs()
    content = admin_client.get(page(batch.on_finish_id)).content.decode()
    assert f"waiting for batch {batch.pk}: 2 of 2 members ended (open" in content
    assert EVIL not in content and "&lt;script&gt;" in content
    assert "Unfinished batches" in render_status()
    content = admin_client.get(f"/admin/django_jobs/batch/{batch.pk}/change/").content.decode()
    assert "2 of 2 ended, 1 failed" in content and EVIL not in content
    assert f"#{member.pk}" in content
    listing = admin_client.get("/admin/django_jobs/batch/").content.decode()
    assert "(open)" in listing
    batch.close()
    run_jobs()
    assert not Job.objects.filter(pk=batch.on_finish_id, finished_at__isnull=True).exists() or (
        Job.objects.filter(pk=batch.on_finish_id).count() == 0
    )
    assert "Unfinished batches" not in render_status()


def test_a_job_waiting_for_others_cannot_be_edited(admin_client):
    with transaction.atomic():
        a = later(jobs.record_or_fail, ["a"], wait=60)
        b = later(jobs.record_or_fail, ["b"], after=a)
    content = admin_client.get(page(b.pk)).content.decode()
    assert "waits for other jobs to end" in content
