"""Checks of what the jobs admin needs beyond Django's own admin checks.

Django's admin already reports the apps and middleware it needs itself (``admin.E401``
contenttypes, ``E405`` auth, ``E406`` messages, ``E408``–``E410`` middleware, ``E403``
templates), so those are not repeated here. What the jobs admin adds is the date-range
filters of ``rangefilter``: without the app its templates are not found and the job list
answers 500 (``TemplateDoesNotExist: rangefilter/date_filter.html``).
"""

from __future__ import annotations

from django.apps import apps
from django.core.checks import CheckMessage, Tags, register

from .base import TAG, _error


@register(TAG, Tags.admin)
def check_admin_apps(app_configs=None, **kwargs) -> list[CheckMessage]:
    # Without django.contrib.admin the jobs admin is never loaded: nothing is needed.
    if not apps.is_installed("django.contrib.admin"):
        return []
    if apps.is_installed("rangefilter"):
        return []
    return [
        _error(
            70,
            "'rangefilter' must be in INSTALLED_APPS to use the jobs admin: the job list's "
            "date filters render its templates.",
            'Add "rangefilter" (from django-admin-rangefilter, installed with django_jobs) '
            "to INSTALLED_APPS.",
        )
    ]
