"""The jobs admin's own system check: what it needs that Django's admin checks do not cover."""

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.template import TemplateDoesNotExist
from django.test import override_settings

from django_jobs import checks

APPS = settings.INSTALLED_APPS
WITHOUT_RANGEFILTER = [app for app in APPS if app != "rangefilter"]


def django_jobs_ids(tags=(checks.TAG,)) -> list[str]:
    return sorted(m.id for m in run_checks(tags=list(tags)) if m.id.startswith("django_jobs."))


def test_the_test_settings_are_clean():
    assert django_jobs_ids(["admin"]) == []


@override_settings(INSTALLED_APPS=WITHOUT_RANGEFILTER)
def test_e070_rangefilter_missing_with_the_admin():
    messages = [m for m in run_checks(tags=[checks.TAG]) if m.id == "django_jobs.E070"]
    assert len(messages) == 1
    assert "'rangefilter' must be in INSTALLED_APPS" in messages[0].msg
    assert 'Add "rangefilter"' in messages[0].hint
    # `check --tag admin` reports it too, next to Django's own admin checks.
    assert django_jobs_ids(["admin"]) == ["django_jobs.E070"]


@override_settings(INSTALLED_APPS=[a for a in WITHOUT_RANGEFILTER if a != "django.contrib.admin"])
def test_no_admin_no_rangefilter_needed():
    assert "django_jobs.E070" not in django_jobs_ids()


@pytest.mark.django_db
def test_what_e070_prevents(admin_client):
    """The failure the check reports before a user meets it: the job list cannot render."""
    with override_settings(INSTALLED_APPS=WITHOUT_RANGEFILTER):
        with pytest.raises(TemplateDoesNotExist, match="rangefilter/date_filter"):
            admin_client.get("/admin/django_jobs/job/")
    assert admin_client.get("/admin/django_jobs/job/").status_code == 200
