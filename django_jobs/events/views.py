"""The Server-Sent Events stream of one job, for a browser's ``EventSource``.

Mount it with ``path("jobs/events/", include("django_jobs.events.urls"))`` and hand the
page ``job.events_url`` (or build it from :func:`~django_jobs.events.signed_job_token`).
Each message's data is a JSON object: first the job's state as stored (``state``,
``progress``, ``message``), then every event published on its channel (progress, the
job's own ``context.publish()`` events, its outcome). The last one has ``"done": true``.

Under ASGI the response streams until the job ends. Under WSGI a long response would
hold a worker thread per page, so the view answers at once with the stored state and
tells the browser to ask again (``retry:``): short polling, with no change to the page.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, StreamingHttpResponse
from django.views.decorators.http import require_GET

from ..conf import jobs_settings
from ..models import Job, JobStatus
from ..storage import job_channel
from .hub import subscribe
from .tokens import job_from_token

#: The id of a stream's last message: a browser that reconnects after it gets 204, which
#: tells ``EventSource`` to stop.
END = "end"

#: Milliseconds a browser waits before asking again under WSGI (short polling).
POLL_RETRY_MS = 1000


def job_state(job_id: int, alias: str) -> dict[str, Any]:
    """The job's state as stored: what a page shows before any event arrives."""
    job = (
        Job.objects.using(alias)
        .filter(pk=job_id)
        .only(
            "progress",
            "progress_message",
            "attempts",
            "locked_at",
            "failed_at",
            "finished_at",
            "cancelled_at",
        )  # fmt: skip
        .first()
    )
    if job is None:
        # Deleted: by a success (DELETE_SUCCESSFUL_JOBS, the default), an operator's
        # discard, or pruning. Nothing more will happen to it.
        return {"job_id": job_id, "state": "gone", "done": True}
    state = str(job.status)
    if state == JobStatus.SCHEDULED and job.attempts:
        state = "retrying"
    data: dict[str, Any] = {
        "job_id": job_id,
        "state": state,
        "progress": job.progress,
        "message": job.progress_message,
    }
    if state in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        data["done"] = True
    return data


def message(data: dict[str, Any], event_id: str | None = None) -> str:
    """One SSE message whose data is ``data`` as JSON (one line: JSON escapes newlines)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"


def _final(data: dict[str, Any]) -> str:
    return message(data, END if data.get("done") else None)


async def _stream(job_id: int, alias: str, keepalive: float) -> AsyncIterator[str]:
    read_state = sync_to_async(job_state)
    # Listening before the state is read: an event published in between is received.
    async with subscribe(job_channel(job_id), using=alias) as events:
        state = await read_state(job_id, alias)
        yield _final(state)
        if state.get("done"):
            return
        while True:
            event = await events.get(timeout=keepalive)
            if event is None:
                # Quiet: read the row again, which also ends the stream of a job that
                # does not publish its outcome, or whose event was lost to a reconnect.
                state = await read_state(job_id, alias)
                if state.get("done"):
                    yield _final(state)
                    return
                yield ": keepalive\n\n"
                continue
            yield _final(event.data)
            if event.data.get("done"):
                return


@require_GET
def job_events(request: HttpRequest, token: str) -> HttpResponse:
    """The event stream of the job ``token`` was signed for; 403 for a bad token."""
    found = job_from_token(token)
    if found is None:
        return HttpResponseForbidden("This event stream's token is invalid or has expired.")
    # The token names the job's database: its row is read and its channel heard there.
    job_id, alias = found
    if request.headers.get("Last-Event-ID") == END:
        return HttpResponse(status=204)  # the stream had ended: EventSource stops
    settings = jobs_settings()
    response: HttpResponse
    if isinstance(request, ASGIRequest):
        response = StreamingHttpResponse(
            _stream(job_id, alias, settings.events.keepalive), content_type="text/event-stream"
        )
    else:
        body = f"retry: {POLL_RETRY_MS}\n\n" + _final(job_state(job_id, alias))
        response = HttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each message on at once
    return response
