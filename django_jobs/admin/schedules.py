"""The schedules page: every recurring schedule as ``jobs schedule`` shows it, with Pause,
Resume and Run now.

Seeing the page takes the permission to view jobs, like the dashboard. Pausing, resuming
and running a schedule now take ``django_jobs.change_schedule``: they change what every
scheduler does (or enqueue a job), which is more than looking at jobs.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..models import Schedule as ScheduleRow
from ..recurring.report import NOT_YET, ROW_DELETED, schedule_states
from ..recurring.scheduler import UnknownSchedule, pause, resume, run_now
from .display import breadcrumbs

#: Action name (the URL segment) → what it does to a schedule key.
ACTIONS = {"pause": pause, "resume": resume, "run": run_now}

#: The permission Pause, Resume and Run now take.
PERMISSION = f"{ScheduleRow._meta.app_label}.change_{ScheduleRow._meta.model_name}"

OUTCOMES = {
    NOT_YET: gettext_lazy("not yet"),
    ROW_DELETED: gettext_lazy("done (row deleted)"),
    "scheduled": gettext_lazy("scheduled"),
    "running": gettext_lazy("running"),
    "succeeded": gettext_lazy("succeeded"),
    "failed": gettext_lazy("failed"),
}


def may_change(request: HttpRequest) -> bool:
    return request.user.has_perm(PERMISSION)


def _url(model_admin: admin.ModelAdmin, name: str, *args: str) -> str:
    return reverse(
        f"admin:django_jobs_job_{name}", args=args, current_app=model_admin.admin_site.name
    )


def _when(moment: datetime) -> str:
    # In the schedule's own zone, named: "02:30 in Paris" is what the cron line says, and
    # the same form as `jobs schedule`.
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def schedules_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    request.current_app = model_admin.admin_site.name
    title = gettext_lazy("Schedules")
    rows = [
        {
            "state": state,
            "next_runs": [_when(t) for t in state.next_runs],
            "last_run": _when(state.last_tick) if state.last_tick else "",
            "outcome": OUTCOMES.get(state.last_outcome, state.last_outcome),
            "outcome_class": f"djj-outcome-{state.last_outcome.split()[0]}",
        }
        for state in schedule_states(3)
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": model_admin.model._meta,
        "app_label": model_admin.model._meta.app_label,
        "changelist_url": _url(model_admin, "changelist"),
        "dashboard_url": _url(model_admin, "dashboard"),
        "failures_url": _url(model_admin, "failures"),
        "schedules_url": _url(model_admin, "schedules"),
        "rows": rows,
        "can_change": may_change(request),
        "action_urls": {name: _url(model_admin, "schedule_action", name) for name in ACTIONS},
        **breadcrumbs(model_admin, title),
    }
    return TemplateResponse(request, "admin/django_jobs/job/schedules.html", context)


def schedule_action_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, action: str
) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_view_permission(request) or not may_change(request):
        raise PermissionDenied
    key = request.POST.get("key", "")
    back = redirect(_url(model_admin, "schedules"))
    try:
        result = ACTIONS[action](key)
    except UnknownSchedule:
        messages.error(request, _("There is no schedule %(key)r.") % {"key": key})
        return back
    if action == "pause":
        text = _("Schedule %(key)s is paused: no scheduler enqueues its ticks.")
    elif action == "resume":
        text = _("Schedule %(key)s is running again.")
    else:
        text = _("Schedule %(key)s: job #%(id)s enqueued to run now.")
    messages.success(request, text % {"key": key, "id": getattr(result, "pk", "")})
    return back
