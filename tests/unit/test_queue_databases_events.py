"""Job events of a queue that lives in another jobs database (``jobs2``): published there,
heard there, and the signed token leads the stream view to it."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core import signing
from django.test import AsyncClient, Client, override_settings

from django_jobs import events
from django_jobs.events.tokens import SALT
from django_jobs.models import Job
from django_jobs.testing import run_jobs
from tests.testapp import jobs

QUEUES = {"default": {}, "email": {}, "slow": {}, "reports": {"DATABASE": "jobs2"}}
WORKERS = [
    {"QUEUE": ["default", "email", "slow"], "MAX_ATTEMPTS": 3},
    {"QUEUE": "reports", "MAX_ATTEMPTS": 3, "DELETE_SUCCESSFUL_JOBS": False},
]

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "jobs2"]),
    pytest.mark.usefixtures("events_idle", "routed"),
]


@pytest.fixture
def routed():
    with override_settings(JOBS={**settings.JOBS, "QUEUES": QUEUES, "WORKERS": WORKERS}):
        yield


def test_the_token_of_a_job_in_another_database_names_it():
    here = jobs.noop.using(wait=60).enqueue()
    there = jobs.noop.using(wait=60, queue="reports").enqueue()
    assert events.job_from_token(here.events_token) == (here.pk, "default")
    assert events.job_from_token(there.events_token) == (there.pk, "jobs2")
    assert events.job_id_from_token(there.events_token) == there.pk
    # A main-database token is the id alone, as before: those already handed out work.
    assert signing.loads(here.events_token, salt=SALT) == here.pk
    assert events.signed_job_token(there.pk, using="jobs2") != events.signed_job_token(there.pk)
    with pytest.raises(ValueError, match="not a jobs database"):
        events.signed_job_token(there.pk, using="other")
    # A database that no longer holds jobs: the token leads nowhere.
    stale = signing.dumps([there.pk, "other"], salt=SALT)
    assert events.job_from_token(stale) is None


def test_the_wsgi_view_reads_the_state_in_the_jobs_database():
    there = jobs.noop.using(wait=60, queue="reports").enqueue()
    Job.objects.using("jobs2").filter(pk=there.pk).update(progress=30)
    body = Client().get(there.events_url).content.decode()
    assert f'"job_id":{there.pk},"state":"scheduled","progress":30' in body
    Job.objects.using("jobs2").filter(pk=there.pk).delete()
    body = Client().get(there.events_url).content.decode()
    assert '"state":"gone","done":true' in body


def test_a_job_in_another_database_publishes_there_and_is_heard_there():
    there = jobs.publishes.using(queue="reports").enqueue()
    channel = events.job_channel(there.pk)
    with (
        events.subscribe(channel, using="jobs2") as heard,
        events.subscribe(channel) as elsewhere,
    ):
        run_jobs()
        first = heard.get_sync(timeout=10)
        last = heard.get_sync(timeout=10)
        assert first.data == {"progress": 50, "message": "half", "job_id": there.pk}
        assert last.data == {"state": "succeeded", "job_id": there.pk, "done": True}
        assert elsewhere.get_sync(timeout=0.5) is None


def test_the_asgi_stream_of_a_job_in_another_database_follows_its_events():
    async_to_sync(_asgi_stream)()


async def _asgi_stream():
    there = await jobs.noop.using(wait=60, queue="reports").aenqueue()
    url = await sync_to_async(lambda: there.events_url)()
    response = await AsyncClient().get(url)
    stream = aiter(response.streaming_content)
    assert '"state":"scheduled"' in (await asyncio.wait_for(anext(stream), 10)).decode()
    channel = events.job_channel(there.pk)
    await sync_to_async(events.publish)(channel, {"progress": 40}, using="jobs2")
    assert (await asyncio.wait_for(anext(stream), 10)).decode() == 'data: {"progress":40}\n\n'
    done = {"state": "succeeded", "done": True}
    await sync_to_async(events.publish)(channel, done, using="jobs2")
    assert (await asyncio.wait_for(anext(stream), 10)).decode().startswith("id: end\n")
