"""The queue dashboard (with Pause/Resume per queue) and the failed-jobs-by-error page."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.db.models.functions import Right
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.defaultfilters import date as date_filter
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.timezone import template_localtime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import clock, pausing, stats
from ..conf import jobs_settings
from ..events.views import message
from ..exceptions import UnknownQueue
from ..models import Job, QueuePause
from .actions import RETRY, confirmation
from .charts import Series, hourly_bars
from .display import breadcrumbs, duration, times_are_utc
from .filters import requested_database

#: Failed rows the failures page groups, newest first.
FAILURES_SCANNED = 10_000
#: Characters read from the end of an error: enough for its last line.
ERROR_TAIL = 1_000
RETRY_CHUNK = 500

#: Pausing and resuming a queue take this permission (a pause is a ``QueuePause`` row):
#: it stops work on every host, which is more than looking at jobs.
PAUSE_PERMISSION = f"{QueuePause._meta.app_label}.change_{QueuePause._meta.model_name}"
QUEUE_ACTIONS = ("pause", "resume")


def may_pause(request: HttpRequest) -> bool:
    return request.user.has_perm(PAUSE_PERMISSION)


def _context(model_admin: admin.ModelAdmin, request: HttpRequest, title) -> dict:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    opts = model_admin.model._meta
    request.current_app = model_admin.admin_site.name
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "changelist_url": _url(model_admin, "changelist"),
        "dashboard_url": _url(model_admin, "dashboard"),
        "failures_url": _url(model_admin, "failures"),
        "schedules_url": _url(model_admin, "schedules"),
        **breadcrumbs(model_admin, title),
        "times_are_utc": times_are_utc(),
    }


def _url(model_admin: admin.ModelAdmin, name: str) -> str:
    return reverse(f"admin:django_jobs_job_{name}", current_app=model_admin.admin_site.name)


def _url_with(model_admin: admin.ModelAdmin, action: str) -> str:
    return reverse(
        "admin:django_jobs_job_queue_action", args=[action], current_app=model_admin.admin_site.name
    )


def queue_action_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, action: str
) -> HttpResponse:
    """Pause or resume one queue (POST, CSRF-checked by the admin site), then back to the
    dashboard with a message."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_view_permission(request) or not may_pause(request):
        raise PermissionDenied
    queue = request.POST.get("queue", "")
    try:
        if action == "pause":
            reason = request.POST.get("reason", "").strip()[:255]
            pausing.pause(queue, by=request.user.get_username(), reason=reason)
            messages.success(
                request,
                _(
                    "Queue %(queue)s is paused: no worker claims its jobs until it is "
                    "resumed. Running jobs finish; new jobs are still accepted."
                )
                % {"queue": queue},
            )
        elif pausing.resume(queue):
            messages.success(request, _("Queue %(queue)s is resumed.") % {"queue": queue})
        else:
            messages.warning(
                request, _("Queue %(queue)s was not paused: nothing changed.") % {"queue": queue}
            )
    except (UnknownQueue, TypeError, ValueError) as exc:
        messages.error(request, str(exc))
    return redirect(_url(model_admin, "dashboard"))


def dashboard_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    context = _context(model_admin, request, gettext_lazy("Job queues"))
    context.update(_live_context(model_admin, request, context["changelist_url"]))
    context["stream_url"] = _url(model_admin, "dashboard_stream")
    return TemplateResponse(request, "admin/django_jobs/job/dashboard.html", context)


def _live_context(model_admin: admin.ModelAdmin, request: HttpRequest, changelist: str) -> dict:
    """What the live part of the dashboard (``#djj-live``) shows now."""
    context: dict = {}
    now = clock.now()
    hourly = stats.hourly_outcomes(now=now)
    rows = []
    main = jobs_settings().main_database
    for alias, row in stats.placed_queue_stats(now=now):

        def link(status: str, queue: str = row.queue, alias: str = alias) -> str:
            query = {"status": status, "queue": queue}
            if alias != main:  # the changelist's database filter (admin.filters)
                query["database"] = alias
            return f"{changelist}?{urlencode(query)}"

        rows.append(
            {
                "stats": row,
                "ready_url": link("ready"),
                "later_url": link("later"),
                "running_url": link("running"),
                "failed_url": link("failed"),
                "succeeded_url": link("succeeded"),
                "cancelled_url": link("cancelled"),
                "oldest": (
                    duration(row.oldest_ready_age) if row.oldest_ready_age is not None else None
                ),
            }
        )
    context.update(
        queues=rows,
        workers=[
            {
                "worker": w,
                "heartbeat_age": duration(max(now - w.heartbeat_at, timedelta(0))),
                "jobs": [(j, duration(j.running_for)) for j in w.jobs],
            }
            for alias in jobs_settings().databases
            for w in stats.live_workers(alias, now=now)
        ],
        heartbeat_timeout=jobs_settings().heartbeat_timeout,
        keeps_succeeded=any(not g.delete_successful_jobs for g in jobs_settings().workers),
        chart=hourly_bars(
            hourly.starts,
            [
                Series(_("succeeded"), hourly.succeeded, "djj-bar-succeeded"),
                Series(_("failed"), hourly.failed, "djj-bar-failed"),
            ],
            _("Succeeded and failed jobs per hour, last 24 hours"),
        ),
        total_succeeded=sum(hourly.succeeded),
        total_failed=sum(hourly.failed),
        now=now,
        can_pause=may_pause(request),
        queue_action_urls={name: _url_with(model_admin, name) for name in QUEUE_ACTIONS},
    )
    return context


#: Seconds between two looks at the queues by an open dashboard stream.
STREAM_INTERVAL = 2.0
#: Milliseconds a browser waits before asking again under WSGI (short polling).
STREAM_RETRY_MS = 5000


def _live_message(model_admin: admin.ModelAdmin, request: HttpRequest) -> dict:
    context = _live_context(model_admin, request, _url(model_admin, "changelist"))
    html = render_to_string("admin/django_jobs/job/dashboard_live.html", context, request)
    when = date_filter(template_localtime(context["now"]), "DATETIME_FORMAT")
    stamp = _("As of %(when)s") % {"when": when}
    return {"html": html, "as_of": stamp}


async def _live_stream(model_admin: admin.ModelAdmin, request: HttpRequest):
    render = sync_to_async(_live_message)
    last = None
    quiet = 0.0
    while True:
        data = await render(model_admin, request)
        # The time stamp alone changes on every look: send only when the queues did.
        if data["html"] != last:
            last = data["html"]
            quiet = 0.0
            yield message(data)
        elif quiet >= jobs_settings().events.keepalive:
            quiet = 0.0
            yield ": keepalive\n\n"
        await asyncio.sleep(STREAM_INTERVAL)
        quiet += STREAM_INTERVAL


def dashboard_stream_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """The live part of the dashboard as Server-Sent Events (staff only, like the page):
    a message each time it changes under ASGI; under WSGI one message and a ``retry:``,
    so the browser asks again in 5 s (short polling)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    request.current_app = model_admin.admin_site.name
    response: HttpResponse
    if isinstance(request, ASGIRequest):
        response = StreamingHttpResponse(
            _live_stream(model_admin, request), content_type="text/event-stream"
        )
    else:
        body = f"retry: {STREAM_RETRY_MS}\n\n" + message(_live_message(model_admin, request))
        response = HttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@dataclass
class FailureGroup:
    name: str
    error_type: str
    count: int
    last_failed_at: datetime
    example: str
    example_id: int


def failure_groups(alias: str, limit: int = FAILURES_SCANNED) -> tuple[list[FailureGroup], int]:
    """Groups of the ``limit`` newest failed jobs by (job name, exception class), largest
    first, and how many failed rows were read."""
    rows = (
        Job.objects.using(alias)
        .failed()
        .order_by("-failed_at", "-id")
        .values_list("id", "name", "failed_at", Right("last_error", ERROR_TAIL))[:limit]
    )
    groups: dict[tuple[str, str], FailureGroup] = {}
    scanned = 0
    for job_id, name, failed_at, tail in rows:
        scanned += 1
        kind = stats.error_type(tail or "")
        group = groups.get((name, kind))
        if group is None:
            lines = [line for line in (tail or "").splitlines() if line.strip()]
            groups[(name, kind)] = FailureGroup(
                name, kind, 1, failed_at, lines[-1].strip() if lines else "", job_id
            )
        else:
            group.count += 1
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.name, g.error_type))
    return ordered, scanned


def failures_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    context = _context(model_admin, request, gettext_lazy("Failed jobs by error"))
    groups, scanned = failure_groups(requested_database(request))
    changelist = context["changelist_url"]
    context.update(
        groups=[
            {
                "group": group,
                "list_url": f"{changelist}?"
                + urlencode({"status": "failed", "name": group.name, "q": group.error_type}),
                "example_url": reverse(
                    "admin:django_jobs_job_change",
                    args=[group.example_id],
                    current_app=model_admin.admin_site.name,
                ),
            }
            for group in groups
        ],
        scanned=scanned,
        truncated=scanned >= FAILURES_SCANNED,
        limit=FAILURES_SCANNED,
        can_retry=RETRY.allowed(model_admin, request),
        retry_url=_url(model_admin, "retry_group"),
    )
    return TemplateResponse(request, "admin/django_jobs/job/failures.html", context)


def group_ids(alias: str, name: str, kind: str) -> list[int]:
    """Every failed job of ``name`` whose error names ``kind`` (all of them, not a sample)."""
    rows = (
        Job.objects.using(alias)
        .failed()
        .filter(name=name)
        .order_by("id")
        .values_list("id", Right("last_error", ERROR_TAIL))
    )
    return [job_id for job_id, tail in rows.iterator() if stats.error_type(tail or "") == kind]


def retry_group_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request) or not RETRY.allowed(model_admin, request):
        raise PermissionDenied
    data = request.POST if request.method == "POST" else request.GET
    name, kind = data.get("name", ""), data.get("error_type", "")
    alias = requested_database(request)
    ids = group_ids(alias, name, kind)
    jobs = model_admin.get_queryset(request)
    if request.method == "POST" and request.POST.get("post") == "yes":
        changed = sum(
            RETRY.perform(jobs.filter(pk__in=ids[i : i + RETRY_CHUNK]))
            for i in range(0, len(ids), RETRY_CHUNK)
        )
        RETRY.report(model_admin, request, changed)
        return redirect(_url(model_admin, "failures"))
    title = _("Retry the failed %(name)s jobs that raised %(error)s?") % {
        "name": name,
        "error": kind or _("no exception class"),
    }
    return confirmation(
        request,
        model_admin,
        RETRY,
        jobs.filter(pk__in=ids[:RETRY_CHUNK]),
        [("name", name), ("error_type", kind), ("post", "yes")],
        _url(model_admin, "failures"),
        title=title,
        count=len(ids),
    )
