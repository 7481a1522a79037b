"""Queues in databases of their own: routing, transactions per alias, status, admin, checks.

``jobs2`` (tests/settings.py) is a second database on the engine under test.
"""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.db import transaction
from django.test import override_settings

from django_jobs import checks, later, later_many, pausing
from django_jobs.conf import jobs_settings
from django_jobs.models import Job, QueuePause
from django_jobs.runtime.status import render_status
from django_jobs.runtime.workoff import workoff
from tests.testapp import jobs
from tests.testapp.models import Execution

TWO = ["default", "jobs2"]
QUEUES = {"default": {}, "email": {}, "slow": {}, "reports": {"DATABASE": "jobs2"}}
WORKERS = [
    {"QUEUE": ["default", "email", "slow"], "MAX_ATTEMPTS": 3},
    {"QUEUE": "reports", "MAX_ATTEMPTS": 3},
]
ROUTED = {**settings.JOBS, "QUEUES": QUEUES, "WORKERS": WORKERS}

routed = override_settings(JOBS=ROUTED)
two_databases = pytest.mark.django_db(transaction=True, databases=TWO)


@two_databases
@routed
def test_enqueue_routes_each_call_by_its_queue():
    report = later(jobs.record, ["r1"], queue="reports")
    plain = later(jobs.record, ["p1"])
    many = later_many(jobs.record, [["r2"], ["r3"]], queue="reports")
    assert report._state.db == "jobs2" and plain._state.db == "default"
    assert {job._state.db for job in many} == {"jobs2"}
    assert sorted(j.args[0] for j in Job.objects.using("jobs2").all()) == ["r1", "r2", "r3"]
    assert [j.args[0] for j in Job.objects.using("default").all()] == ["p1"]


@two_databases
@routed
def test_enqueue_inside_the_queues_own_database_transaction_is_part_of_it():
    with pytest.raises(RuntimeError), transaction.atomic(using="jobs2"):
        later(jobs.record, ["rolled-back"], queue="reports")
        assert Job.objects.using("jobs2").count() == 1
        raise RuntimeError("roll back")
    assert Job.objects.using("jobs2").count() == 0


@two_databases
@routed
def test_enqueue_inside_another_databases_transaction_waits_for_its_commit():
    with transaction.atomic(using="default"):
        job = later(jobs.record, ["on-commit"], queue="reports")
        assert job.pk is None and not Job.objects.using("jobs2").exists()
    assert [j.args for j in Job.objects.using("jobs2").all()] == [["on-commit"]]
    with pytest.raises(RuntimeError), transaction.atomic(using="default"):
        later(jobs.record, ["never"], queue="reports")
        raise RuntimeError("roll back")
    assert Job.objects.using("jobs2").count() == 1


@two_databases
@routed
def test_workoff_runs_the_jobs_of_every_database_in_its_own():
    later_many(jobs.record, [["d1"], ["d2"]])
    later_many(jobs.record, [["r1"], ["r2"], ["r3"]], queue="reports")
    progress = workoff(stream=io.StringIO())
    assert (progress.total, progress.done, progress.failed) == (5, 5, 0)
    assert sorted(Execution.objects.values_list("key", flat=True)) == [
        "d1", "d2", "r1", "r2", "r3"
    ]  # fmt: skip
    assert not Job.objects.using("jobs2").exists() and not Job.objects.exists()
    assert jobs_settings().database == "default"  # workoff gave the process back


@two_databases
@routed
def test_pauses_live_with_the_queue_and_status_shows_every_database():
    later(jobs.record, ["waiting"], queue="reports")
    pausing.pause("reports", by="test")
    assert QueuePause.objects.using("jobs2").filter(queue="reports").exists()
    assert not QueuePause.objects.using("default").exists()
    assert pausing.is_paused("reports") and set(pausing.paused_queues()) == {"reports"}
    text = render_status()
    line = next(line for line in text.splitlines() if line.startswith("reports"))
    assert "PAUSED" in line and line.rstrip().endswith("jobs2") and " 1 " in line
    assert "DATABASE" in text
    assert pausing.resume("reports")
    assert not QueuePause.objects.using("jobs2").exists()


@two_databases
@routed
def test_the_admin_lists_and_opens_the_jobs_of_every_database(admin_client):
    report = later(jobs.send_email, ["jobs2@example.com"], queue="reports")
    later(jobs.fail_once, ["in-default"])
    url = "/admin/django_jobs/job/"

    def listed(**query) -> list[str]:
        response = admin_client.get(url, query)
        return [job.name.rsplit(".", 1)[1] for job in response.context["cl"].result_list]

    assert listed() == ["fail_once"]
    assert listed(database="jobs2") == ["send_email"]
    # The filter offers each database.
    assert "?database=jobs2" in admin_client.get(url).content.decode()
    page = admin_client.get(f"{url}{report.pk}/change/", {"_changelist_filters": "database=jobs2"})
    assert page.status_code == 200 and "jobs2@example.com" in page.content.decode()


@two_databases
def test_pruning_and_run_jobs_reach_every_database():
    from datetime import timedelta

    from django.utils import timezone

    from django_jobs.pruning import prune
    from django_jobs.testing import run_jobs

    with override_settings(JOBS={**ROUTED, "PRUNE": {"FAILED_AFTER": 60}}):
        old = later(jobs.record, ["old"], queue="reports")
        Job.objects.using("jobs2").filter(pk=old.pk).update(
            failed_at=timezone.now() - timedelta(hours=1), run_at=None
        )
        assert prune().failed == 1
        assert not Job.objects.using("jobs2").exists()
        later(jobs.record, ["run-report"], queue="reports")
        later(jobs.record, ["run-plain"])
        result = run_jobs()
    assert result.succeeded == 2 and result.rounds == 1
    assert sorted(Execution.objects.values_list("key", flat=True)) == ["run-plain", "run-report"]


def placement_ids(**jobs) -> list[str]:
    with override_settings(JOBS={**settings.JOBS, **jobs}):
        return sorted(
            m.id
            for m in run_checks(tags=[checks.TAG])
            if m.id[-3:] in {"041", "175", "176", "177", "178"}
        )


def test_routed_settings_are_clean():
    assert placement_ids(QUEUES=QUEUES, WORKERS=WORKERS) == []


def test_e175_a_queue_mapped_to_two_databases():
    workers = [*WORKERS[:1], {"QUEUE": "reports", "DATABASE": "other"}]
    assert "django_jobs.E175" in placement_ids(QUEUES=QUEUES, WORKERS=workers)
    two_groups = [
        {"QUEUE": ["default", "email", "slow"]},
        {"QUEUE": "reports", "DATABASE": "jobs2"},
        {"QUEUE": "reports", "DATABASE": "other"},
    ]
    assert "django_jobs.E175" in placement_ids(QUEUES=list(QUEUES), WORKERS=two_groups)


def test_e176_a_database_that_is_not_an_alias():
    queues = {**QUEUES, "reports": {"DATABASE": "jobs3"}}
    assert placement_ids(QUEUES=queues, WORKERS=WORKERS) == ["django_jobs.E176"]


def test_e177_a_group_whose_queues_live_apart():
    workers = [{"QUEUE": ["default", "email", "slow", "reports"]}]
    assert "django_jobs.E177" in placement_ids(QUEUES=QUEUES, WORKERS=workers)


def test_e178_a_queue_entry_that_is_not_a_dict_of_known_keys():
    queues = {**QUEUES, "reports": {"DATABSE": "jobs2"}}
    assert placement_ids(QUEUES=queues, WORKERS=WORKERS) == ["django_jobs.E178"]


def test_w041_a_star_group_serves_only_its_own_database():
    workers = [{"QUEUE": "*"}]
    assert placement_ids(QUEUES=QUEUES, WORKERS=workers) == ["django_jobs.W041"]
    workers = [{"QUEUE": "*"}, {"QUEUE": "*", "DATABASE": "jobs2"}]
    assert placement_ids(QUEUES=QUEUES, WORKERS=workers) == []


def test_w041_counts_the_queues_embedded_mode_serves_in_every_database():
    workers = [{"QUEUE": "*"}]
    for queues in ("*", ["reports"]):
        embedded = {"ENABLED": True, "QUEUES": queues}
        assert placement_ids(QUEUES=QUEUES, WORKERS=workers, EMBEDDED=embedded) == []
    embedded = {"ENABLED": True, "QUEUES": ["default"]}
    assert placement_ids(QUEUES=QUEUES, WORKERS=workers, EMBEDDED=embedded) == ["django_jobs.W041"]
    embedded = {"ENABLED": False, "QUEUES": "*"}
    assert placement_ids(QUEUES=QUEUES, WORKERS=workers, EMBEDDED=embedded) == ["django_jobs.W041"]


@routed
def test_embedded_mode_places_a_worker_in_each_database_its_queues_live_in():
    from django_jobs.conf import EmbeddedSettings
    from django_jobs.runtime.embedded import placements

    assert placements(EmbeddedSettings()) == [("default", None), ("jobs2", None)]
    assert placements(EmbeddedSettings(queues=("email", "reports", "default"))) == [
        ("default", ("email", "default")),
        ("jobs2", ("reports",)),
    ]
    assert placements(EmbeddedSettings(queues=("reports",))) == [("jobs2", ("reports",))]


def test_embedded_mode_of_one_jobs_database_has_one_worker():
    from django_jobs.conf import EmbeddedSettings
    from django_jobs.runtime.embedded import placements

    assert placements(EmbeddedSettings()) == [("default", None)]
    assert placements(EmbeddedSettings(queues=("email",))) == [("default", ("email",))]
