"""Checks of JOBS["LISTEN_DATABASE"] (E170, E171) and of pooled jobs databases (W174)."""

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.test import override_settings

from django_jobs import checks
from django_jobs.checks.pooling import _session_features

TEST_JOBS = settings.JOBS
POSTGRES = {"ENGINE": "django.db.backends.postgresql", "NAME": "jobs"}
SQLITE = {"ENGINE": "django.db.backends.sqlite3", "NAME": "other.sqlite3"}

pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def ids_for(listen, databases) -> list[str]:
    with override_settings(
        DATABASES=databases, JOBS={**TEST_JOBS, "DATABASE": "jobs", "LISTEN_DATABASE": listen}
    ):
        return sorted(m.id for m in run_checks(tags=[checks.TAG]) if "LISTEN" in m.msg)


def test_a_direct_postgresql_alias_is_accepted():
    databases = {"default": SQLITE, "jobs": POSTGRES, "direct": POSTGRES}
    assert ids_for("direct", databases) == []
    assert ids_for({"jobs": "direct"}, databases) == []


def test_e170_listen_database_must_name_an_alias():
    databases = {"default": SQLITE, "jobs": POSTGRES}
    assert ids_for("dirct", databases) == ["django_jobs.E170"]
    assert ids_for(3, databases) == ["django_jobs.E170"]
    assert ids_for({"jobs": 3}, databases) == ["django_jobs.E170"]


def test_e171_listen_database_pairs_postgresql_with_postgresql():
    assert ids_for("other", {"default": SQLITE, "jobs": POSTGRES, "other": SQLITE}) == [
        "django_jobs.E171"
    ]
    assert ids_for("direct", {"default": SQLITE, "jobs": SQLITE, "direct": POSTGRES}) == [
        "django_jobs.E171"
    ]


def test_w174_names_what_a_pooled_database_must_not_keep_across_transactions():
    (message,) = _session_features("jobs", {"OPTIONS": {"prepare_threshold": 5}})
    assert message.id == "django_jobs.W174"
    assert "DISABLE_SERVER_SIDE_CURSORS" in message.msg and "prepare_threshold" in message.msg
    assert _session_features("jobs", {"DISABLE_SERVER_SIDE_CURSORS": True, "OPTIONS": {}}) == []
