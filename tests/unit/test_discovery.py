"""Jobs declared where workers would not find them: refused at enqueue, reported by check;
a sealed (worker) registry refuses new jobs. Outside Django's test environment, which
tests fake here: real processes are in tests/processes/test_discovery_processes.py."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_jobs import JobNotImported, discovery, job, later, later_many, open_batch, registry
from django_jobs.checks.declarations import check_jobs_workers_import
from django_jobs.models import Batch, Job
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def outside_tests(monkeypatch):
    """As in a process outside Django's test environment that is no worker."""
    monkeypatch.setattr(discovery, "in_tests", lambda: False)
    monkeypatch.setattr(discovery, "_sealed", None)  # an in-process worker ran before


def test_jobs_declared_while_django_loads_are_not_late():
    assert jobs.record.declared_late is False
    assert jobs.typed_jobs.roundtrip.declared_late is False


def test_a_job_declared_after_django_loaded_is_refused_at_every_enqueue(outside_tests):
    @job(name="late:inline")
    def inline(key):
        pass

    assert inline.declared_late is True
    calls = [
        lambda: inline.enqueue("a"),
        lambda: inline.using(queue="email").enqueue("a"),
        lambda: later(inline, ["a"]),
        lambda: later(inline.name, ["a"]),
        lambda: later_many(inline, [["a"], ["b"]]),
    ]

    @job(name="late:callback")
    def callback(batch):
        pass

    calls.append(lambda: open_batch(on_success=callback))
    for call in calls:
        with pytest.raises(JobNotImported) as caught:
            call()
        message = str(caught.value)
        assert f"is declared in {__name__}, which was imported after Django loaded" in message
        assert "workers import each installed app's jobs.py when they start" in message
        assert "Move the job to an installed app's jobs.py" in message
    assert not Job.objects.exists() and not Batch.objects.exists()
    assert jobs.record.enqueue("declared in time").pk  # the others are unaffected


def test_the_message_names_the_jobs_module_of_the_app_that_holds_the_module(outside_tests):
    import importlib
    import sys

    sys.modules.pop("tests.testapp.late_jobs", None)
    late = importlib.import_module("tests.testapp.late_jobs").declared_late
    with pytest.raises(JobNotImported, match="Move the job to tests.testapp.jobs, or import"):
        late.enqueue("x")


def test_check_reports_late_jobs_outside_tests_only(outside_tests, monkeypatch):
    @job(name="late:checked")
    def checked():
        pass

    found = [m for m in check_jobs_workers_import() if m.obj == "late:checked"]
    assert [m.id for m in found] == ["django_jobs.E181"]
    assert "declared in tests.unit.test_discovery" in found[0].msg
    monkeypatch.setattr(discovery, "in_tests", lambda: True)
    assert check_jobs_workers_import() == []


def test_a_sealed_registry_refuses_new_jobs(monkeypatch, outside_tests):
    monkeypatch.setattr(discovery, "_sealed", "worker 1 of group 0")
    with pytest.raises(ImproperlyConfigured) as caught:

        @job(name="late:sealed")
        def sealed():
            pass

    message = str(caught.value)
    assert message.startswith(
        f"job late:sealed ({__name__}) is declared after this worker started (worker 1 of group 0)"
    )
    assert registry.find("late:sealed") is None


def test_django_test_environment_is_seen():
    assert discovery.in_tests() is True


def test_a_worker_run_in_a_test_process_leaves_the_registry_open(monkeypatch):
    monkeypatch.setattr(discovery, "_sealed", "worker 0 of group 0")

    @job(name="late:after-an-in-process-worker")
    def declared():
        pass

    assert registry.find("late:after-an-in-process-worker") is declared
