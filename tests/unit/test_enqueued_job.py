"""The Job that later() returns is built without a query: it must equal the stored row."""

import pytest
from django.forms.models import model_to_dict
from django.test import override_settings

from django_jobs import later, later_many
from django_jobs.models import Job, JobStatus
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def fields(job: Job) -> dict:
    return {f.attname: getattr(job, f.attname) for f in Job._meta.concrete_fields}


@pytest.mark.parametrize("use_tz", [True, False])
def test_the_returned_job_is_the_stored_row(use_tz):
    with override_settings(USE_TZ=use_tz, TIME_ZONE="America/New_York"):
        returned = [later(jobs.record, ["a"]), *later_many(jobs.record, [["b"], ["c"]])]
        stored = {job.pk: job for job in Job.objects.all()}
    for job in returned:
        assert job.status == JobStatus.SCHEDULED
        assert fields(job) == fields(stored[job.pk]), model_to_dict(job)
