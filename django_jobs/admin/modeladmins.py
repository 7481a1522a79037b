"""The jobs admin: list, job page, actions, queue dashboard and failures by error.

Jobs are created by code, so nobody may add one here; a job that is not running may have
its queue, priority and run time changed, guarded so that a worker claiming it meanwhile
wins. Helpers live in ``admin_*.py``, ``dashboard.py`` and ``charts.py``.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from .. import clock
from ..conf import jobs_settings
from ..models import CLAIMABLE, Batch, Job, JobStatus, Worker
from . import dashboard, display, flows, schedules
from .actions import ACTIONS, BULK_ACTIONS, DISCARD, JobAction, confirmation
from .filters import LIST_FILTER, requested_database, with_database_filter
from .index import add_monitoring_rows
from .paging import EstimatingPaginator

EDITABLE = ("queue", "priority", "run_at")
CLAIM_ORDER = ("priority", "run_at", "id")
#: Default order of the list filtered on a status whose rows claim order does not fit
#: (their run_at is NULL or past); each follows that status's own index.
STATUS_ORDER = {
    "running": ("locked_at", "id"),
    "succeeded": ("-finished_at", "-id"),
    "failed": ("-failed_at", "-id"),
    "cancelled": ("-failed_at", "-id"),
}
#: Columns of the list, per status filter: each shows what matters for jobs in that state,
#: so that the list fits a 1280 px screen with the admin's navigation sidebar open. The
#: first three are the same everywhere, so ``?o=`` keeps its meaning across filters.
LIST_COLUMNS = {
    "": (
        "job_name", "queue", "priority", "status_attempts", "run_at_short",
        "error_line",
    ),
    "running": (
        "job_name", "queue", "priority", "attempts_display", "locked_at_short",
        "worker",
    ),
    "succeeded": (
        "job_name", "queue", "priority", "attempts_display", "finished_at_short",
        "created_at_short",
    ),
    "failed": (
        "job_name", "queue", "priority", "attempts_display", "failed_at_short",
        "error_line",
    ),
    "cancelled": (
        "job_name", "queue", "priority", "attempts_display", "cancelled_at_short",
        "error_line",
    ),
}  # fmt: skip
#: URL path segment of each per-job action.
ACTION_PATHS = {"retry": "retry", "run_now": "run-now", "cancel": "cancel", "discard": "discard"}


def not_editable_reason(job: Job) -> str | None:
    """Why the queue, priority and run time of ``job`` cannot be changed, if they cannot."""
    if job.failed_at is not None and job.cancelled_at is not None:
        return _(
            "This job was cancelled: it will not run again by itself, so its queue, "
            "priority and run time cannot be changed. Retry it to run it again now."
        )
    if job.failed_at is not None:
        return _(
            "This job has failed: it will not run again by itself, so its queue, priority "
            "and run time cannot be changed. Retry it to run it again now."
        )
    if job.finished_at is not None:
        return _("This job has succeeded: there is nothing left to change.")
    if job.locked_at is not None:
        return _("A worker is running this job: it cannot be changed until it ends.")
    if job.waits_for_jobs:
        return _(
            "This job waits for other jobs to end (see Flow): it becomes due when they "
            "do, so its queue, priority and run time cannot be changed."
        )
    return None


class JobChangeList(ChangeList):
    def _get_default_ordering(self):
        # Django draws the header arrows of a list without ?o= from ModelAdmin.ordering,
        # not from get_ordering(request): filtered on failed jobs, the arrows would show
        # claim order over rows sorted by failure time.
        return STATUS_ORDER.get(self.params.get("status", ""), CLAIM_ORDER)


class JobForm(forms.ModelForm):
    """The fields an operator may change on a job that is not running."""

    class Meta:
        model = Job
        fields = list(EDITABLE)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "queue" in self.fields:
            queues = list(jobs_settings().queues)
            choices = [(q, q) for q in queues]
            current = self.instance.queue if self.instance else None
            if current and current not in queues:
                choices.append(
                    (current, _("%(queue)s (not in JOBS['QUEUES'])") % {"queue": current})
                )
            field = self.fields["queue"]
            self.fields["queue"] = forms.ChoiceField(
                choices=choices, label=field.label, help_text=_("One of JOBS['QUEUES'].")
            )
        if "run_at" in self.fields and display.times_are_utc():
            # Stored as naive UTC (django_jobs.clock): the value typed here is UTC too.
            self.fields["run_at"].help_text = _("In UTC: USE_TZ is False.")

    def clean_queue(self) -> str:
        queue = self.cleaned_data["queue"]
        if queue not in jobs_settings().queues:
            raise forms.ValidationError(
                _("%(queue)s is not one of the queues in JOBS['QUEUES'] (%(queues)s)."),
                code="unknown_queue",
                params={"queue": queue, "queues": ", ".join(jobs_settings().queues)},
            )
        return queue

    def clean_run_at(self):
        run_at = self.cleaned_data.get("run_at")
        if run_at is None and self.instance.status == JobStatus.SCHEDULED:
            raise forms.ValidationError(
                _("A scheduled job needs a time to run at."), code="required"
            )
        return run_at


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    form = JobForm
    list_display = LIST_COLUMNS[""]
    list_display_links = ("job_name",)
    list_filter = LIST_FILTER
    search_fields = ("name", "tag", "args", "last_error", "locked_by")
    search_help_text = _("Searches job names, tags, arguments, errors and workers.")
    ordering = CLAIM_ORDER
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatingPaginator
    actions = BULK_ACTIONS
    readonly_fields = (
        "id", "name", "status_badge", "attempts_display", "timeline", "args_json",
        "kwargs_json", "progress_display", "traceback", "unique_key", "snoozes", "tag_link",
        "waiting_reason", "concurrency_display", "rate_display",
        "flow",
    )  # fmt: skip
    change_form_template = "admin/django_jobs/job/change_form.html"
    change_list_template = "admin/django_jobs/job/change_list.html"

    class Media:
        css = {"all": ("django_jobs/admin.css",)}

    def __init__(self, model, admin_site) -> None:
        super().__init__(model, admin_site)
        # The dashboard is a view of this admin, not a model: without this, the admin's
        # index page (and its sidebar) would not link to it.
        add_monitoring_rows(admin_site)

    # -- columns and fields ------------------------------------------------------------

    @admin.display(description=_("job"), ordering="name")
    def job_name(self, job: Job):
        return display.short_name(job)

    @admin.display(description=_("tag"))
    def tag_link(self, job: Job):
        return display.tag_link(job)

    @admin.display(description=_("status"))
    def status_badge(self, job: Job):
        return display.status_badge(job)

    @admin.display(description=_("status"))
    def status_attempts(self, job: Job):
        return display.status_and_attempts(job)

    @admin.display(description=_("attempts"), ordering="attempts")
    def attempts_display(self, job: Job) -> str:
        return display.attempts_of_max(job)

    # Compact times (full date and time on hover) keep the list narrow.
    @admin.display(description=_("run at"), ordering="run_at")
    def run_at_short(self, job: Job):
        return display.compact_time(job.run_at)

    @admin.display(description=_("failed at"), ordering="failed_at")
    def failed_at_short(self, job: Job):
        return display.compact_time(job.failed_at)

    @admin.display(description=_("cancelled at"), ordering="cancelled_at")
    def cancelled_at_short(self, job: Job):
        return display.compact_time(job.cancelled_at)

    @admin.display(description=_("started at"), ordering="locked_at")
    def locked_at_short(self, job: Job):
        return display.compact_time(job.locked_at)

    @admin.display(description=_("finished at"), ordering="finished_at")
    def finished_at_short(self, job: Job):
        return display.compact_time(job.finished_at)

    @admin.display(description=_("created at"), ordering="created_at")
    def created_at_short(self, job: Job):
        return display.compact_time(job.created_at)

    @admin.display(description=_("worker"), ordering="locked_by")
    def worker(self, job: Job):
        return display.worker(job)

    @admin.display(description=_("last error"))
    def error_line(self, job: Job):
        return display.error_line(job)

    @admin.display(description=_("timeline"))
    def timeline(self, job: Job):
        return display.timeline(job)

    @admin.display(description=_("positional arguments"))
    def args_json(self, job: Job):
        return display.pretty_json(job.args)

    @admin.display(description=_("keyword arguments"))
    def kwargs_json(self, job: Job):
        return display.pretty_json(job.kwargs)

    @admin.display(description=_("progress"))
    def progress_display(self, job: Job):
        return display.progress_block(job)

    @admin.display(description=_("concurrency limit"))
    def concurrency_display(self, job: Job) -> str:
        return _("%(limit)s at once for key %(key)s") % {
            "limit": job.concurrency_limit,
            "key": job.concurrency_key,
        }

    @admin.display(description=_("rate limit"))
    def rate_display(self, job: Job) -> str:
        return _("%(rate)s for key %(key)s") % {"rate": job.rate_limit, "key": job.rate_key}

    @admin.display(description=_("flow"))
    def flow(self, job: Job):
        return flows.flow_block(job)

    @admin.display(description=_("traceback"))
    def traceback(self, job: Job):
        return display.traceback_block(job)

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None):
        fieldsets = [
            (None, {"fields": ("id", "name", "status_badge", *EDITABLE, "attempts_display")}),
            (_("Timeline"), {"fields": ("timeline",)}),
            (_("Arguments"), {"fields": ("args_json", "kwargs_json")}),
        ]
        if obj is not None and obj.progress is not None:
            fieldsets.append((_("Progress"), {"fields": ("progress_display",)}))
        if obj is not None and flows.has_flow(obj):
            fieldsets.append((_("Flow"), {"fields": ("flow",)}))
        controls = [
            f
            for f in (
                "waiting_reason",
                "concurrency_display",
                "rate_display",
                "tag",
                "unique_key",
                "snoozes",
            )  # fmt: skip
            if obj is not None and getattr(obj, f.replace("_display", "_key"))
        ]
        controls = ["tag_link" if f == "tag" else f for f in controls]
        if controls:
            fieldsets.append((_("Controls"), {"fields": tuple(controls)}))
        if obj is not None and obj.last_error:
            fieldsets.append((_("Error"), {"fields": ("traceback",), "classes": ("wide",)}))
        return fieldsets

    # -- database and permissions ------------------------------------------------------

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).using(requested_database(request))

    def get_list_filter(self, request: HttpRequest):
        return with_database_filter(super().get_list_filter(request))

    def get_ordering(self, request: HttpRequest):
        return STATUS_ORDER.get(request.GET.get("status", ""), CLAIM_ORDER)

    def get_list_display(self, request: HttpRequest):
        return LIST_COLUMNS.get(request.GET.get("status", ""), LIST_COLUMNS[""])

    def get_changelist(self, request: HttpRequest, **kwargs):
        return JobChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are enqueued by code

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # A running job belongs to its worker, and a failed or succeeded job is never
        # claimed again, whatever its run time: their pages are read-only. (Saving a failed
        # job's new run time used to say "changed successfully" and leave it failed.)
        if obj is not None and not_editable_reason(obj) is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # Single jobs go through Discard, which cannot delete a job a worker holds;
        # Django's delete view would.
        if obj is not None:
            return False
        return super().has_delete_permission(request, obj)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.retry_{opts.model_name}")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.cancel_{opts.model_name}")

    def get_actions(self, request: HttpRequest, action_location=None):
        # Django 6.1 passes action_location (and warns about overrides without it);
        # Django 5.2 does not know the parameter.
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request: HttpRequest, obj: Job, form, change: bool) -> None:
        # Only the edited columns, and only while no worker holds the row: a full save
        # would overwrite a claim made since the page was loaded.
        values = {name: form.cleaned_data[name] for name in EDITABLE if name in form.cleaned_data}
        changed = (
            self.get_queryset(request)
            .filter(CLAIMABLE, pk=obj.pk)
            .exclude(run_at__isnull=True, waiting_for__gt=0)
            .update(**values, updated_at=clock.now())
        )
        request._django_jobs_conflict = not changed

    def response_change(self, request: HttpRequest, obj: Job) -> HttpResponse:
        if getattr(request, "_django_jobs_conflict", False):
            self.message_user(
                request,
                _("The job was not changed: a worker started it, or it ended, meanwhile."),
                messages.ERROR,
            )
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def log_change(self, request, obj, message):
        if getattr(request, "_django_jobs_conflict", False):
            return None
        return super().log_change(request, obj, message)

    # -- pages -------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        urls = [
            path("dashboard/", view(self.dashboard_view), name="django_jobs_job_dashboard"),
            path(
                "dashboard/stream/",
                view(self.dashboard_stream_view),
                name="django_jobs_job_dashboard_stream",
            ),
            path("failed/", view(self.failures_view), name="django_jobs_job_failures"),
            path("failed/retry/", view(self.retry_group_view), name="django_jobs_job_retry_group"),
            path("schedules/", view(self.schedules_view), name="django_jobs_job_schedules"),
            path(
                "queues/<str:action>/",
                view(self.queue_action_view),
                name="django_jobs_job_queue_action",
            ),
            path(
                "schedules/<str:action>/",
                view(self.schedule_action_view),
                name="django_jobs_job_schedule_action",
            ),
        ]
        for action, segment in ACTION_PATHS.items():
            urls.append(
                path(
                    f"<path:object_id>/{segment}/",
                    view(self.job_action_view),
                    {"action": action},
                    name=f"django_jobs_job_{action}",
                )
            )
        return urls + super().get_urls()

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        return dashboard.dashboard_view(self, request)

    def dashboard_stream_view(self, request: HttpRequest) -> HttpResponse:
        return dashboard.dashboard_stream_view(self, request)

    def failures_view(self, request: HttpRequest) -> HttpResponse:
        return dashboard.failures_view(self, request)

    def retry_group_view(self, request: HttpRequest) -> HttpResponse:
        return dashboard.retry_group_view(self, request)

    def queue_action_view(self, request: HttpRequest, action: str) -> HttpResponse:
        if action not in dashboard.QUEUE_ACTIONS:
            raise Http404
        return dashboard.queue_action_view(self, request, action)

    def schedules_view(self, request: HttpRequest) -> HttpResponse:
        return schedules.schedules_view(self, request)

    def schedule_action_view(self, request: HttpRequest, action: str) -> HttpResponse:
        if action not in schedules.ACTIONS:
            raise Http404
        return schedules.schedule_action_view(self, request, action)

    def _url(self, name: str, *args) -> str:
        return reverse(f"admin:django_jobs_job_{name}", args=args, current_app=self.admin_site.name)

    def job_buttons(self, request: HttpRequest, job: Job) -> list[tuple[JobAction, str]]:
        """Actions this user may take on this job in its current state, with their URLs."""
        single = self.get_queryset(request).filter(pk=job.pk)
        return [
            (action, self._url(action.name, job.pk))
            for action in ACTIONS.values()
            if action.allowed(self, request) and action.applicable(single).exists()
        ]

    def job_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        job_action = ACTIONS[action]
        job = self.get_object(request, unquote(object_id))
        if job is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, job) or not job_action.allowed(self, request):
            raise PermissionDenied
        single = self.get_queryset(request).filter(pk=job.pk)
        change_url = self._url("change", job.pk)
        if request.method == "POST" and request.POST.get("post") == "yes":
            changed = job_action.run(single, request)
            job_action.report(self, request, changed)
            if job_action is DISCARD and changed:
                return redirect(self._url("changelist"))
            return redirect(change_url)
        return confirmation(request, self, job_action, single, [("post", "yes")], change_url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, unquote(object_id))
        extra = {
            "job_buttons": self.job_buttons(request, job) if job is not None else [],
            "not_editable_reason": not_editable_reason(job) if job is not None else None,
            "times_are_utc": display.times_are_utc(),
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def changelist_view(self, request, extra_context=None):
        extra = {
            "dashboard_url": self._url("dashboard"),
            "failures_url": self._url("failures"),
            "times_are_utc": display.times_are_utc(),
        }
        if request.GET.get("status") == JobStatus.SUCCEEDED:
            extra["succeeded_not_kept"] = display.succeeded_not_kept(request.GET.get("queue"))
        return super().changelist_view(request, {**extra, **(extra_context or {})})


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows django_jobs manages itself, read from the jobs database: view only."""

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).using(requested_database(request))

    def get_list_filter(self, request: HttpRequest):
        return with_database_filter(super().get_list_filter(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    """Live and recently dead worker processes, read-only: workers manage their rows."""

    list_display = (
        "identity", "host", "pid", "group", "queues", "started_at", "heartbeat_at",
        "is_fresh", "jobs_done",
    )  # fmt: skip
    list_filter = ("group", "host")
    search_fields = ("identity", "host")
    ordering = ("group", "identity")

    @admin.display(description=_("heartbeat fresh"), boolean=True)
    def is_fresh(self, worker: Worker) -> bool:
        age = (clock.now() - worker.heartbeat_at).total_seconds()
        return age <= jobs_settings().heartbeat_timeout


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    """Batches and their progress, read-only: members and callbacks change them."""

    list_display = ("id", "description", "progress_text", "closed_at", "created_at")
    search_fields = ("description",)
    readonly_fields = ("id", "description", "progress_block", "created_at", "closed_at")
    fields = readonly_fields

    @admin.display(description=_("progress"))
    def progress_text(self, batch: Batch):
        return flows.batch_progress(batch)

    @admin.display(description=_("members and callbacks"))
    def progress_block(self, batch: Batch):
        return flows.batch_block(batch)
