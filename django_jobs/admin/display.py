"""HTML fragments for the job list and page; every value goes through ``format_html``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import django
from django.conf import settings as django_settings
from django.contrib import admin
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator, capfirst
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

from .. import clock, registry
from ..conf import jobs_settings
from ..models import Job, JobStatus
from ..registry import TASK_PREFIX

EMPTY = "-"  # the admin's own empty value
ERROR_LINE_CHARS = 80

#: Django 6.1 turned the admin's breadcrumbs from a ``<div>`` with ``›`` between links into
#: an ``<ol>`` of ``<li>``, and styles only ``ol.breadcrumbs``: each version needs its own.
BREADCRUMBS_AS_LIST = django.VERSION >= (6, 1)


def local(value: datetime) -> datetime:
    """``value`` as the admin shows it: aware times in the current time zone; naive ones
    as they are, since django_jobs stores naive UTC under ``USE_TZ = False``."""
    return timezone.localtime(value) if timezone.is_aware(value) else value


def times_are_utc() -> bool:
    """True when stored times are naive UTC (``USE_TZ = False``): the pages say so."""
    return not django_settings.USE_TZ


def breadcrumbs(model_admin: admin.ModelAdmin, current: Any) -> dict[str, Any]:
    """Context for ``admin/django_jobs/breadcrumbs.html``: Home › Jobs app › Jobs › current."""
    opts = model_admin.model._meta
    site = model_admin.admin_site.name
    crumbs = [
        (reverse("admin:index", current_app=site), _("Home")),
        (
            reverse("admin:app_list", kwargs={"app_label": opts.app_label}, current_app=site),
            opts.app_config.verbose_name,
        ),
        (
            reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist", current_app=site),
            capfirst(opts.verbose_name_plural),
        ),
        (None, current),
    ]
    return {"djj_breadcrumbs": crumbs, "djj_breadcrumbs_as_list": BREADCRUMBS_AS_LIST}


def succeeded_not_kept(queue: str | None = None) -> SafeString | None:
    """Why the succeeded list is empty for some queues: their rows are deleted on success.

    None when every queue shown keeps its succeeded jobs. ``queue`` narrows it to the queue
    the list is filtered on.
    """
    settings = jobs_settings()
    queues = [queue] if queue else list(settings.queues)
    deleting = [q for q in queues if settings.policy_for(q).delete_successful_jobs]
    if not deleting:
        return None
    kept = [q for q in queues if q not in deleting]
    message = _(
        "Succeeded jobs of %(queues)s are not listed: they are deleted when they succeed, "
        "because DELETE_SUCCESSFUL_JOBS is on (the default) for the worker group serving "
        'them. Set "DELETE_SUCCESSFUL_JOBS": False in that group of JOBS["WORKERS"] to '
        "keep them."
    ) % {"queues": ", ".join(deleting)}
    if kept:
        message += " " + _("Succeeded jobs of %(queues)s are kept.") % {"queues": ", ".join(kept)}
    return format_html('<p class="djj-note" id="djj-succeeded-not-kept">{}</p>', message)


def display_status(job: Job, now: datetime | None = None) -> tuple[str, str]:
    """(css name, label): scheduled jobs that are due show as "ready", running ones asked
    to stop as "cancelling"."""
    status = job.status
    if job.waits_for_jobs:
        return "waiting", _("waiting")
    if status == JobStatus.RUNNING and job.cancelled_at is not None:
        return "cancelling", _("cancelling")
    if status == JobStatus.SCHEDULED and job.run_at and job.run_at <= (now or clock.now()):
        return "ready", _("ready")
    if job.blocked:
        return "waiting", _("waiting")
    return str(status), str(JobStatus(status).label)


def status_badge(job: Job) -> SafeString:
    css, label = display_status(job)
    # The list has no column for the worker or the end time: they are in the tooltip.
    if job.failed_at is not None and job.cancelled_at is not None:
        hint = _("cancelled %(when)s") % {"when": _when(job.cancelled_at)}
    elif job.failed_at is not None:
        hint = _("failed %(when)s") % {"when": _when(job.failed_at)}
    elif job.finished_at is not None:
        hint = _("succeeded %(when)s") % {"when": _when(job.finished_at)}
    elif job.locked_at is not None:
        hint = _("started %(when)s by %(worker)s") % {
            "when": _when(job.locked_at),
            "worker": job.locked_by or EMPTY,
        }
    elif job.blocked:
        hint = job.waiting_reason
    elif job.rate_key is not None and job.run_at is not None and job.run_at > clock.now():
        # The moment is the row's run_at; the job page reads its grant to be sure.
        hint = _("rate limit %(rate)s for key %(key)s: due %(when)s") % {
            "rate": job.rate_limit,
            "key": job.rate_key,
            "when": _when(job.run_at),
        }
    elif job.waits_for_jobs:
        # The ids are on the job page: the list makes no query per row.
        hint = _("waiting for %(count)s other job(s) to end") % {"count": job.waiting_for}
    else:
        hint = ""
    return format_html('<span class="djj-badge djj-{}" title="{}">{}</span>', css, hint, label)


def status_and_attempts(job: Job) -> SafeString:
    """The badge, then the attempts made so far of the maximum, when there were any."""
    if not job.attempts:
        return status_badge(job)
    limit = max_attempts(job)
    return format_html(
        '{} <span class="djj-attempts" title="{}">{}/{}</span>',
        status_badge(job), attempts_of_max(job), job.attempts, limit or "?",
    )  # fmt: skip


def tag_link(job: Job) -> SafeString | str:
    """The job's tag, a link to the list of the jobs with that tag (the job page)."""
    if not job.tag:
        return ""
    url = reverse("admin:django_jobs_job_changelist") + "?" + urlencode({"tag": job.tag})
    return format_html(
        '<a class="djj-tag" href="{}" title="{}">{}</a>',
        url, _("Jobs with this tag"), job.tag,
    )  # fmt: skip


def _tag(job: Job) -> SafeString | str:
    """The tag beside the name in the list (the name cell is a link: no link inside)."""
    if not job.tag:
        return ""
    return format_html(' <span class="djj-tag" title="{}">{}</span>', job.tag, job.tag)


def short_name(job: Job) -> SafeString:
    """The job's function name and id; its dotted path on hover. A ``django.tasks``
    task is marked as one, with its module path (not the row's prefixed name)."""
    if job.name.startswith(TASK_PREFIX):
        path = job.name[len(TASK_PREFIX) :]
        return format_html(
            '<span class="djj-kind" title="{}">{}</span> '
            '<span class="djj-name" title="{}">{}</span> <span class="djj-id">#{}</span>',
            _("enqueued with django.tasks"), _("task"), path, path.rpartition(".")[2], job.pk,
        )  # fmt: skip
    return format_html(
        '<span class="djj-name" title="{}">{}</span> <span class="djj-id">#{}</span>{}',
        job.name, job.name.rpartition(".")[2], job.pk, _tag(job),
    )  # fmt: skip


def max_attempts(job: Job) -> int | None:
    """The job's own ``@job(max_attempts=…)`` (a task's, from its row), else that of the
    group serving its queue."""
    definition = registry.all_jobs().get(job.name)
    if definition is not None and definition.max_attempts:
        return definition.max_attempts
    if isinstance(job.meta, dict) and job.name.startswith(TASK_PREFIX):
        own = job.meta.get("max_attempts")
        if isinstance(own, int) and own > 0:
            return own
    group = jobs_settings().group_for_queue(job.queue)
    return group.max_attempts if group is not None else None


def attempts_of_max(job: Job) -> str:
    limit = max_attempts(job)
    return _("%(attempts)s of %(max)s") % {
        "attempts": job.attempts,
        "max": limit if limit is not None else "?",
    }


def error_line(job: Job) -> SafeString | str:
    summary = job.error_summary
    if not summary:
        return EMPTY
    # The cell cuts it to its width with an ellipsis (admin.css); the tooltip has the line.
    short = Truncator(summary).chars(ERROR_LINE_CHARS)
    return format_html('<span class="djj-error" title="{}">{}</span>', summary, short)


def worker(job: Job) -> SafeString | str:
    if not job.locked_by:
        return EMPTY
    return format_html('<span title="{}">{}</span>', job.locked_by, job.locked_by)


def pretty_json(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre class="djj-pre djj-json">{}</pre>', text)


def traceback_block(job: Job) -> SafeString | str:
    if not job.last_error:
        return EMPTY
    return format_html('<pre class="djj-pre djj-traceback">{}</pre>', job.last_error)


def progress_block(job: Job) -> SafeString | str:
    if job.progress is None:
        return EMPTY
    percent = max(0, min(100, job.progress))
    return format_html(
        '<progress class="djj-progress" max="100" value="{}">{}%</progress> {}% {}',
        percent, percent, percent, job.progress_message,
    )  # fmt: skip


def compact_time(value: datetime | None, now: datetime | None = None) -> SafeString | str:
    """``19:04:05`` today, ``2026-11-22`` another day (in the current time zone); the full
    date and time as a tooltip."""
    if value is None:
        return EMPTY
    shown_at = local(value)
    today = local(now or clock.now()).date()
    shown = shown_at.strftime("%H:%M:%S" if shown_at.date() == today else "%Y-%m-%d")
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', value.isoformat(), _when(value), shown
    )


def _when(value: datetime | None) -> str:
    if value is None:
        return EMPTY
    text = date_filter(local(value), "DATETIME_FORMAT")
    return f"{text} UTC" if timezone.is_naive(value) else text


def duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return _("%(s)d s") % {"s": seconds}
    if seconds < 3600:
        return _("%(m)d min %(s)d s") % {"m": seconds // 60, "s": seconds % 60}
    return _("%(h)d h %(m)d min") % {"h": seconds // 3600, "m": seconds % 3600 // 60}


def timeline(job: Job, now: datetime | None = None) -> SafeString:
    """The job's life so far, one line per event that happened (or is due)."""
    now = now or clock.now()
    events: list[tuple[str, str, str]] = [("created", _("Created"), _when(job.created_at))]
    if job.run_at is not None:
        label = _("Runs at") if job.run_at > now else _("Due since")
        if job.locked_at is not None or job.finished_at is not None:
            label = _("Ran at")
        events.append(("run_at", label, _when(job.run_at)))
    if job.locked_at is not None:
        events.append(
            (
                "locked",
                _("Started"),
                _("%(when)s by %(worker)s, running for %(duration)s")
                % {
                    "when": _when(job.locked_at),
                    "worker": job.locked_by or EMPTY,
                    "duration": duration(max(now - job.locked_at, timedelta(0))),
                },
            )
        )
    events.append(("attempts", _("Attempts"), attempts_of_max(job)))
    if job.finished_at is not None:
        events.append(("finished", _("Succeeded"), _when(job.finished_at)))
    if job.cancelled_at is not None:
        if job.failed_at is not None:
            label = _("Cancelled")
        elif job.finished_at is not None:
            label = _("Cancel asked for (too late: it had succeeded)")
        else:
            label = _("Cancel asked for (stopping)")
        events.append(("cancelled", label, _when(job.cancelled_at)))
    if job.failed_at is not None and job.cancelled_at is None:
        ago = _("%(time)s ago") % {"time": timesince(job.failed_at, now)}
        events.append(("failed", _("Failed"), f"{_when(job.failed_at)} ({ago})"))
    events.append(("updated", _("Last updated"), _when(job.updated_at)))
    items = format_html_join(
        "", '<li class="djj-event djj-event-{}"><strong>{}</strong> {}</li>', events
    )
    return format_html('<ol class="djj-timeline">{}</ol>', items)
