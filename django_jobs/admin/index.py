"""The queue dashboard and the failures page in the admin's lists of apps.

Django builds the index page, the app page and the navigation sidebar from
``AdminSite.get_app_list()``, one row per registered model; the two pages are views of the
job admin, not models, so they get rows of their own in the jobs app's entry.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _

from ..models import Job

#: Set on a site whose get_app_list already adds the rows.
MARKER = "_django_jobs_app_list"


def monitoring_rows(site: AdminSite, app: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the dashboard, failures and schedules pages, if jobs may be viewed."""
    opts = Job._meta
    job_row = next((m for m in app["models"] if m.get("object_name") == opts.object_name), None)
    perms = (job_row or {}).get("perms", {})
    if not (perms.get("view") or perms.get("change")):
        return []
    rows = []
    for name, object_name, label in (
        ("dashboard", "QueueDashboard", _("Queue dashboard")),
        ("failures", "FailedJobsByError", _("Failed jobs by error")),
        ("schedules", "Schedules", _("Schedules")),
    ):
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", current_app=site.name)
        # The keys Django's own rows have, so templates and code reading them keep working.
        rows.append(
            {
                "model": Job,
                "name": label,
                "object_name": object_name,
                "perms": {"add": False, "change": False, "delete": False, "view": True},
                "admin_url": url,
                "add_url": None,
                "view_only": True,
            }
        )
    return rows


def add_monitoring_rows(site: AdminSite) -> None:
    """Make ``site.get_app_list`` list the dashboard and failures pages under the jobs app."""
    if getattr(site, MARKER, False):
        return
    original = site.get_app_list

    def get_app_list(request: HttpRequest, app_label: str | None = None) -> list[dict]:
        app_list = original(request, app_label)
        for app in app_list:
            if app.get("app_label") == Job._meta.app_label:
                app["models"] = sorted(
                    [*app["models"], *monitoring_rows(site, app)],
                    key=lambda row: str(row["name"]).lower(),
                )
        return app_list

    site.get_app_list = get_app_list
    setattr(site, MARKER, True)
