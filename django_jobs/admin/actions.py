"""Retry, run now, cancel and discard: bulk actions on the job list and buttons on a job's page.

Each goes through a confirmation page (like Django's delete confirmation) and then
through :mod:`django_jobs.operations`, whose statements only touch rows in a state the
operation applies to, so a job that changed meanwhile is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import operations
from .display import breadcrumbs

#: Jobs listed on a confirmation page; the rest are counted.
SAMPLE = 20


@dataclass(frozen=True)
class JobAction:
    name: str
    label: Any
    question: Any
    explanation: Any
    #: The ModelAdmin's ``has_<permission>_permission`` must allow it.
    permission: str
    #: The rows of a queryset the action would change.
    applicable: Callable[[QuerySet], QuerySet]
    perform: Callable[[QuerySet], int]
    done: Callable[[int], str]
    nothing: Any
    #: Instead of ``perform``, for actions that record who asked (the request's user).
    perform_for: Callable[[QuerySet, HttpRequest], int] | None = None

    def run(self, queryset: QuerySet, request: HttpRequest) -> int:
        if self.perform_for is not None:
            return self.perform_for(queryset, request)
        return self.perform(queryset)

    def allowed(self, model_admin: admin.ModelAdmin, request: HttpRequest) -> bool:
        return getattr(model_admin, f"has_{self.permission}_permission")(request)

    def report(self, model_admin: admin.ModelAdmin, request: HttpRequest, changed: int) -> None:
        if changed:
            model_admin.message_user(request, self.done(changed), messages.SUCCESS)
        else:
            model_admin.message_user(request, self.nothing, messages.WARNING)


RETRY = JobAction(
    name="retry",
    label=_("Retry"),
    question=_("Retry failed jobs?"),
    explanation=_(
        "Failed and cancelled jobs become scheduled to run now, with their attempts reset "
        "and their error cleared. Jobs that have not failed are left alone."
    ),
    permission="retry",
    applicable=lambda qs: qs.retryable(),
    perform=operations.retry_jobs,
    done=lambda n: (
        ngettext("%(count)d job was retried.", "%(count)d jobs were retried.", n) % {"count": n}
    ),
    nothing=_("No job was retried: only failed and cancelled jobs can be retried."),
)


def _cancel_as_user(queryset: QuerySet, request: HttpRequest) -> int:
    user = getattr(request, "user", None)
    name = user.get_username() if user is not None and user.is_authenticated else ""
    return operations.cancel_jobs(queryset, by=name)


CANCEL = JobAction(
    name="cancel",
    label=_("Cancel"),
    question=_("Cancel jobs?"),
    explanation=_(
        "Jobs waiting to run are cancelled at once and will never run. Running jobs are "
        "asked to stop: if one still runs after the grace period (CANCEL_GRACE), the "
        "worker process running it is stopped and replaced. Cancelled jobs are kept, "
        "with who cancelled them; retrying one runs it again. Jobs that have ended are "
        "left alone."
    ),
    permission="cancel",
    applicable=lambda qs: qs.cancellable(),
    perform=operations.cancel_jobs,
    perform_for=_cancel_as_user,
    done=lambda n: (
        ngettext(
            "%(count)d job was cancelled (a running one stops within the grace period).",
            "%(count)d jobs were cancelled (running ones stop within the grace period).",
            n,
        )
        % {"count": n}
    ),
    nothing=_("No job was cancelled: only jobs that have not ended can be cancelled."),
)

RUN_NOW = JobAction(
    name="run_now",
    label=_("Run now"),
    question=_("Run scheduled jobs now?"),
    explanation=_(
        "Scheduled jobs become due now; the next free worker runs them. Running, "
        "succeeded and failed jobs are left alone."
    ),
    permission="change",
    applicable=lambda qs: qs.scheduled(),
    perform=operations.run_now,
    done=lambda n: (
        ngettext("%(count)d job will run now.", "%(count)d jobs will run now.", n) % {"count": n}
    ),
    nothing=_("No job was changed: only scheduled jobs can be run now."),
)

DISCARD = JobAction(
    name="discard",
    label=_("Discard"),
    question=_("Discard jobs?"),
    explanation=_(
        "The jobs are deleted and will never run. Running jobs cannot be discarded and "
        "are left alone."
    ),
    permission="delete",
    applicable=lambda qs: qs.filter(locked_at__isnull=True),
    perform=operations.discard,
    done=lambda n: (
        ngettext("%(count)d job was discarded.", "%(count)d jobs were discarded.", n) % {"count": n}
    ),
    nothing=_("No job was discarded: running jobs cannot be discarded."),
)

ACTIONS = {action.name: action for action in (RETRY, RUN_NOW, CANCEL, DISCARD)}


def confirmation(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    action: JobAction,
    queryset: QuerySet,
    hidden: list[tuple[str, str]],
    cancel_url: str,
    title: Any = None,
    count: int | None = None,
) -> TemplateResponse:
    """The page that asks before ``action`` changes the applicable rows of ``queryset``."""
    applicable = action.applicable(queryset)
    if count is None:
        count = applicable.count()
    sample = list(applicable.order_by("id")[:SAMPLE])
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title or action.question,
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "job_action": action,
        "count": count,
        "sample": sample,
        "more": max(count - len(sample), 0),
        "hidden": hidden,
        "cancel_url": cancel_url,
        **breadcrumbs(model_admin, action.label),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/django_jobs/job/action_confirmation.html", context)


def _bulk(action: JobAction):
    def run(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet):
        if request.POST.get("post") == "yes":
            action.report(model_admin, request, action.run(queryset, request))
            return None  # back to the changelist, with its filters
        hidden = [("action", request.POST.get("action", f"{action.name}_selected"))]
        hidden.append(("select_across", request.POST.get("select_across", "0")))
        # Django's changelist only hands a confirmed action over when ids were posted;
        # with "select all" the ids of the page ride along and the filters decide.
        hidden += [(helpers.ACTION_CHECKBOX_NAME, pk) for pk in request.POST.getlist(
            helpers.ACTION_CHECKBOX_NAME
        )]  # fmt: skip
        hidden.append(("post", "yes"))
        return confirmation(request, model_admin, action, queryset, hidden, request.get_full_path())

    run.__name__ = f"{action.name}_selected"
    return admin.action(description=action.label, permissions=[action.permission])(run)


retry_selected = _bulk(RETRY)
run_now_selected = _bulk(RUN_NOW)
cancel_selected = _bulk(CANCEL)
discard_selected = _bulk(DISCARD)
BULK_ACTIONS = (retry_selected, run_now_selected, cancel_selected, discard_selected)
