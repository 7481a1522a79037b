"""Changelist filters for jobs whose choices cost no query on a large table.

Django's default filters for a CharField run ``SELECT DISTINCT`` over the whole table to
list their choices; these take them from the settings and the job registry instead.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _
from rangefilter.filters import DateTimeRangeFilterBuilder

from .. import registry
from ..conf import jobs_settings
from ..models import JobStatus

#: Status choices: the five states, with "scheduled" split into ready now and later.
STATUS_CHOICES = (
    ("ready", _("ready now")),
    ("later", _("scheduled later")),
    (JobStatus.SCHEDULED.value, _("scheduled (ready or later)")),
    (JobStatus.RUNNING.value, JobStatus.RUNNING.label),
    (JobStatus.SUCCEEDED.value, JobStatus.SUCCEEDED.label),
    (JobStatus.FAILED.value, JobStatus.FAILED.label),
    (JobStatus.CANCELLED.value, JobStatus.CANCELLED.label),
)


class StatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return STATUS_CHOICES

    def queryset(self, request, queryset):
        value = self.value()
        # ``with_status`` looks the name up on the queryset: only known names get there.
        if value in dict(STATUS_CHOICES):
            return queryset.with_status(value)
        return queryset


class QueueFilter(admin.SimpleListFilter):
    title = _("queue")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        queues = list(jobs_settings().queues)
        value = self.value()
        if value and value not in queues:
            queues.append(value)  # a queue outside JOBS["QUEUES"] reached through a link
        return [(queue, queue) for queue in queues]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(queue=value) if value else queryset


class NameFilter(admin.SimpleListFilter):
    title = _("job")
    parameter_name = "name"

    def lookups(self, request, model_admin):
        names = sorted(registry.all_jobs())
        value = self.value()
        if value and value not in names:
            names.append(value)  # a job no longer registered, reached through a link
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(name=value) if value else queryset


class TagFilter(admin.SimpleListFilter):
    """Jobs with one tag. Its choices are the tag chosen (by clicking a tag in the list,
    or ``?tag=`` in the URL) and no others: listing every tag would read the table."""

    title = _("tag")
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, value)] if value else []

    def has_output(self) -> bool:
        return bool(self.value())

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(tag=value) if value else queryset


def date_range(field: str, title) -> tuple[str, type]:
    return (field, DateTimeRangeFilterBuilder(title=title))


LIST_FILTER = (
    StatusFilter,
    QueueFilter,
    NameFilter,
    TagFilter,
    date_range("run_at", _("run at")),
    date_range("created_at", _("created at")),
    date_range("failed_at", _("failed at")),
)


class DatabaseFilter(admin.SimpleListFilter):
    """Which jobs database the changelist reads, shown when queues live in several.

    The choice itself is applied by the model admin's ``get_queryset`` (see
    ``requested_database``), so that object pages and actions reached from the list use
    the same database; this filter only offers it.
    """

    title = _("database")
    parameter_name = "database"

    def lookups(self, request, model_admin):
        return [(alias, alias) for alias in jobs_settings().databases]

    def queryset(self, request, queryset):
        return queryset

    def choices(self, changelist):
        current = self.value() or jobs_settings().database
        for alias, title in self.lookup_choices:
            yield {
                "selected": alias == current,
                "query_string": changelist.get_query_string({self.parameter_name: alias}),
                "display": title,
            }


def requested_database(request) -> str:
    """The jobs database a changelist, object page or action of the admin works on: its
    ``database`` parameter, or the one the changelist it came from had (Django keeps the
    list's filters in ``_changelist_filters``), else ``JOBS["DATABASE"]``."""
    databases = jobs_settings().databases
    value = request.GET.get("database")
    if value is None and request.GET.get("_changelist_filters"):
        value = QueryDict(request.GET["_changelist_filters"]).get("database")
    return value if value in databases else jobs_settings().database


def with_database_filter(list_filter: tuple) -> tuple:
    """``list_filter`` with the database choice first when jobs live in several."""
    if len(jobs_settings().databases) > 1:
        return (DatabaseFilter, *list_filter)
    return list_filter
