"""Job events: publishing rules, tokens, the stream view under WSGI and ASGI, pruning and
checks. Real workers publishing are in tests/processes/test_events.py."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.checks import run_checks
from django.db import connection, connections, transaction
from django.test import AsyncClient, Client, override_settings

from django_jobs import checks, clock, events
from django_jobs.exceptions import EventTooLarge
from django_jobs.models import Event, Job
from django_jobs.pruning import prune
from django_jobs.testing import run_jobs
from tests.testapp import jobs

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("events_idle")]

TABLE = connection.vendor != "postgresql"


def stored() -> list[tuple[str, dict]]:
    import json

    return [(e.channel, json.loads(e.payload)) for e in Event.objects.order_by("id")]


# -- publishing ----------------------------------------------------------------------------


def test_a_bad_event_is_refused_at_publish_and_nothing_is_sent():
    with events.subscribe("c") as subscription:
        with pytest.raises(TypeError, match="JSON object"):
            events.publish("c", [1, 2])
        with pytest.raises(TypeError, match="not JSON-serialisable"):
            events.publish("c", {"when": object()})
        with pytest.raises(ValueError, match="channel"):
            events.publish("", {"a": 1})
        with pytest.raises(ValueError, match="channel"):
            events.publish("x" * 201, {"a": 1})
        with pytest.raises(EventTooLarge, match="8,000|7,999") as error:
            events.publish("c", {"blob": "x" * 8000})
        assert "Publish a reference" in str(error.value)
        events.publish("c", {"blob": "x" * (events.MAX_PAYLOAD_BYTES - 11)})  # just fits
        assert len(subscription.get_sync(timeout=10).data["blob"]) == 7988
        assert subscription.get_sync(timeout=0.5) is None
    if TABLE:
        assert len(stored()) == 1


def test_an_event_published_in_a_rolled_back_transaction_is_never_received():
    with events.subscribe("tx") as subscription:
        with pytest.raises(RuntimeError), transaction.atomic():
            events.publish("tx", {"n": 1})
            raise RuntimeError("roll back")
        with transaction.atomic():
            events.publish("tx", {"n": 2})
        assert subscription.get_sync(timeout=10).data == {"n": 2}
        assert subscription.get_sync(timeout=0.5) is None


def test_run_jobs_publishes_progress_own_events_and_the_outcome():
    job = jobs.publishes.enqueue()
    own = jobs.publishes.enqueue({"rows": 3})
    with events.subscribe(events.job_channel(job.pk), events.job_channel(own.pk)) as sub:
        run_jobs()
        received = [sub.get_sync(timeout=10).data for _ in range(4)]
    assert received == [
        {"progress": 50, "message": "half", "job_id": job.pk},
        {"state": "succeeded", "job_id": job.pk, "done": True},
        {"rows": 3},
        {"state": "succeeded", "job_id": own.pk, "done": True},
    ]


def test_a_job_without_events_publishes_its_progress_but_no_outcome():
    job = jobs.with_context.enqueue("k")
    with events.subscribe(events.job_channel(job.pk)) as subscription:
        run_jobs()
        assert Job.objects.filter(pk=job.pk).count() == 0  # it succeeded
        received = []
        while (event := subscription.get_sync(timeout=1)) is not None:
            received.append(event.data)
    assert all("state" not in data for data in received)


def publish_in_a_thread(channel, payload):
    try:
        events.publish(channel, payload)
    finally:
        connections.close_all()


def test_async_subscription_iterates_in_an_event_loop():
    async_to_sync(_async_subscription)()


async def _async_subscription():
    async with events.subscribe("loop") as subscription:
        thread = threading.Thread(target=publish_in_a_thread, args=("loop", {"n": 1}))
        thread.start()
        thread.join()
        event = await asyncio.wait_for(anext(aiter(subscription)), 10)
        assert (event.channel, event.data) == ("loop", {"n": 1})
        assert await subscription.get(timeout=0.3) is None


# -- tokens and the view -------------------------------------------------------------------


def test_tokens_name_one_job_and_expire():
    job = jobs.noop.using(wait=60).enqueue()
    token = events.signed_job_token(job)
    assert events.job_id_from_token(token) == job.pk
    assert events.job_id_from_token(token[:-2] + "xx") is None
    assert events.job_id_from_token(str(job.pk)) is None
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 100):
        old = events.signed_job_token(job.pk)
    assert events.job_id_from_token(old) == job.pk
    with override_settings(JOBS={**settings.JOBS, "EVENTS": {"TOKEN_MAX_AGE": 50}}):
        assert events.job_id_from_token(old) is None
    with pytest.raises(TypeError):
        events.signed_job_token("7")


def test_under_wsgi_the_view_answers_at_once_with_the_state_and_a_retry():
    job = jobs.noop.using(wait=60).enqueue()
    response = Client().get(job.events_url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    body = response.content.decode()
    assert body.startswith("retry: 1000\n\n")
    assert f'data: {{"job_id":{job.pk},"state":"scheduled","progress":null,"message":""}}' in body
    Job.objects.filter(pk=job.pk).delete()
    body = Client().get(job.events_url).content.decode()
    assert f'id: end\ndata: {{"job_id":{job.pk},"state":"gone","done":true}}' in body
    assert Client().get(job.events_url, HTTP_LAST_EVENT_ID="end").status_code == 204


def test_a_wrong_or_expired_token_gets_403():
    job = jobs.noop.enqueue()
    assert Client().get(f"/jobs/events/job/{job.pk}/").status_code == 403
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 3 * 24 * 3600):
        expired = job.events_url
    assert Client().get(expired).status_code == 403


def test_under_asgi_the_view_streams_events_until_the_job_is_done():
    async_to_sync(_asgi_stream)()


async def _asgi_stream():
    job = await jobs.noop.using(wait=60).aenqueue()
    url = await sync_to_async(lambda: job.events_url)()
    response = await AsyncClient().get(url)
    assert response.streaming and response.status_code == 200
    stream = aiter(response.streaming_content)
    first = (await asyncio.wait_for(anext(stream), 10)).decode()
    assert '"state":"scheduled"' in first
    channel = events.job_channel(job.pk)
    await sync_to_async(events.publish)(channel, {"progress": 40})
    assert (await asyncio.wait_for(anext(stream), 10)).decode() == 'data: {"progress":40}\n\n'
    await sync_to_async(events.publish)(channel, {"state": "succeeded", "done": True})
    last = (await asyncio.wait_for(anext(stream), 10)).decode()
    assert last.startswith("id: end\n")
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 10)


# -- pruning and checks --------------------------------------------------------------------


def test_pruning_deletes_events_past_their_retention():
    now = clock.now()
    Event.objects.bulk_create(
        [
            Event(channel="a", payload="{}", created_at=now - timedelta(hours=2)),
            Event(channel="a", payload="{}", created_at=now - timedelta(minutes=5)),
        ]
    )
    assert prune(dry_run=True).events == 1
    assert prune().events == 1
    assert Event.objects.count() == 1
    with override_settings(JOBS={**settings.JOBS, "EVENTS": {"RETENTION": None}}):
        assert prune(now=now + timedelta(days=9)).events == 0


@pytest.mark.parametrize(
    ("value", "check_ids"),
    [
        ([], ["django_jobs.E160"]),
        ({"POLL": 1}, ["django_jobs.E160"]),
        ({"POLL_INTERVAL": 0}, ["django_jobs.E161"]),
        ({"KEEPALIVE": "15"}, ["django_jobs.E161"]),
        ({"TOKEN_MAX_AGE": -1}, ["django_jobs.E161"]),
        ({"RETENTION": -5}, ["django_jobs.E162"]),
        ({"RETENTION": None, "POLL_INTERVAL": 0.05}, []),
        ({"RETENTION": timedelta(minutes=10)}, []),
    ],
)
def test_events_settings_checks(value, check_ids):
    with override_settings(JOBS={**settings.JOBS, "EVENTS": value}):
        assert sorted(m.id for m in run_checks(tags=[checks.TAG])) == check_ids


# -- outcome statements ----------------------------------------------------------------------


def claimed(definition, *args):
    from django_jobs.storage import get_storage

    job = definition.enqueue(*args)
    storage = get_storage()
    (row,) = storage.claim("tester", None, 1, clock.now())
    assert row.id == job.pk
    return storage, row


@pytest.mark.parametrize("kind", ["retry", "failed", "snooze"])
def test_an_outcome_of_a_row_whose_cancellation_was_asked_for_publishes_cancelled(kind):
    from django_jobs.storage import Outcome

    storage, row = claimed(jobs.publishes)
    assert storage.request_cancel(row.id, "Cancelled by test", clock.now())
    outcome = Outcome(row, kind, error="boom", run_at=clock.now() + timedelta(hours=1))
    with events.subscribe(events.job_channel(row.id)) as subscription:
        assert storage.record([outcome], clock.now(), report=True) == 1
        event = subscription.get_sync(timeout=10)
        assert subscription.get_sync(timeout=0.5) is None
    assert event.data == {"state": "cancelled", "job_id": row.id, "done": True, "attempt": 1}
    assert outcome.ended == "cancelled"
    assert Job.objects.get(pk=row.id).status == "cancelled"


def test_a_fenced_off_outcome_publishes_nothing():
    from django_jobs.storage import Outcome

    storage, row = claimed(jobs.publishes)
    Job.objects.filter(pk=row.id).update(claim_token=row.token + 1)  # the claim moved on
    with events.subscribe(events.job_channel(row.id)) as subscription:
        for kind in ("succeeded", "retry", "failed"):
            outcome = Outcome(row, kind, error="late", run_at=clock.now())
            assert storage.record([outcome], clock.now(), report=True) == 0
            assert outcome.ended == ""
        assert storage.release([row], clock.now()) == 0
        assert subscription.get_sync(timeout=1) is None


def test_release_gives_back_or_ends_cancelled_with_one_event():
    storage, given_back = claimed(jobs.publishes)
    storage2, marked = claimed(jobs.publishes, {"x": 1})
    assert storage.request_cancel(marked.id, "Cancelled by test", clock.now())
    ended = []
    channels = (events.job_channel(given_back.id), events.job_channel(marked.id))
    with events.subscribe(*channels) as subscription:
        assert storage.release([given_back, marked], clock.now(), cancelled=ended) == 2
        event = subscription.get_sync(timeout=10)
        assert subscription.get_sync(timeout=0.5) is None
    assert event.data == {"state": "cancelled", "job_id": marked.id, "attempt": 1, "done": True}
    assert [job.id for job in ended] == [marked.id]
    assert Job.objects.get(pk=given_back.id).status == "scheduled"
    assert Job.objects.get(pk=given_back.id).attempts == 0


def test_the_table_reader_delivers_a_row_that_commits_after_a_higher_id_once():
    """MariaDB gives ids out at insert: id 5 may become visible after id 10 was read. The
    reader looks back ``commit_lag`` seconds and never delivers a row twice."""
    import os

    from django_jobs.storage import get_storage
    from django_jobs.storage.eventreading import TableEventReader

    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL reads NOTIFY, not the table")
    reader = TableEventReader(get_storage(), interval=0.01, commit_lag=5.0)
    assert reader.listen("late") == 0
    read, write = os.pipe()
    try:
        now = clock.now()
        Event.objects.create(id=10, channel="late", payload='{"n": 10}', created_at=now)
        assert [e.id for e in reader.read(0.01, read)] == [10]
        Event.objects.create(id=5, channel="late", payload='{"n": 5}', created_at=now)
        Event.objects.create(id=11, channel="other", payload="{}", created_at=now)
        assert [e.id for e in reader.read(0.01, read)] == [5]
        assert reader.read(0.01, read) == []
        plain = TableEventReader(get_storage(), interval=0.01, commit_lag=0)
        assert plain.listen("late") == 11
        assert plain.read(0.01, read) == []
    finally:
        os.close(read)
        os.close(write)
