"""The dashboard's event stream: what the page's live updates read, staff only."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient

from django_jobs.admin import dashboard
from tests.testapp import jobs

from .helpers import make_job

STREAM = "/admin/django_jobs/job/dashboard/stream/"


def data_of(chunk: str) -> dict:
    line = next(line for line in chunk.splitlines() if line.startswith("data: "))
    return json.loads(line.removeprefix("data: "))


@pytest.mark.django_db
def test_under_wsgi_one_message_and_a_retry(admin_client):
    make_job("ready")
    response = admin_client.get(STREAM)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    body = response.content.decode()
    assert body.startswith("retry: 5000\n\n")
    data = data_of(body)
    assert data["html"].startswith('<div id="djj-live">')
    assert '<tr data-queue="default">' in data["html"]
    assert data["as_of"].startswith("As of ")


@pytest.mark.django_db
def test_only_staff_get_the_stream(client, django_user_model):
    assert client.get(STREAM).status_code == 302  # to the admin's login
    user = django_user_model.objects.create_user("u", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(STREAM).status_code == 403  # staff without the view permission


@pytest.mark.django_db(transaction=True)
def test_under_asgi_a_message_each_time_the_queues_change(django_user_model, monkeypatch):
    monkeypatch.setattr(dashboard, "STREAM_INTERVAL", 0.1)
    admin = django_user_model.objects.create_superuser("admin", "a@example.com", "pw")
    async_to_sync(_stream)(admin)


async def _stream(admin):
    client = AsyncClient()
    await client.aforce_login(admin)
    response = await client.get(STREAM)
    assert response.streaming
    chunks = aiter(response.streaming_content)
    first = data_of((await asyncio.wait_for(anext(chunks), 10)).decode())
    assert "No worker has sent a heartbeat" in first["html"]
    await sync_to_async(jobs.noop.using(wait=timedelta(hours=1)).enqueue)()
    second = data_of((await asyncio.wait_for(anext(chunks), 10)).decode())
    assert second["html"] != first["html"] and '<tr data-queue="default">' in second["html"]
    await chunks.aclose()
