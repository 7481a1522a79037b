"""JobsBackend through Django's public django.tasks API (enqueue, results, signals),
with the jobs run in this process by ``django_jobs.testing.run_jobs``."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_jobs import job
from django_jobs.models import Job
from django_jobs.registry import TASK_PREFIX
from django_jobs.tasks import JobsBackend, framework
from django_jobs.tasks.backend import jobs_priority
from django_jobs.testing import run_jobs
from tests.testapp import tasks
from tests.testapp.models import Execution

api = framework.load()
TaskResultStatus = api.TaskResultStatus
task_backends = api.task_backends

pytestmark = pytest.mark.django_db(transaction=True)


def backend() -> JobsBackend:
    return task_backends["default"]


# -- the backend itself ------------------------------------------------------------------


@pytest.mark.django_db(transaction=False)
def test_the_constructor_touches_no_database():
    with CaptureQueriesContext(connections["default"]) as queries:
        made = JobsBackend("spare", {"QUEUES": ["default"], "OPTIONS": {"MAX_ATTEMPTS": 2}})
    assert len(queries) == 0
    assert made.alias == "spare" and made.options == {"MAX_ATTEMPTS": 2}


def test_it_supports_the_whole_contract():
    b = backend()
    assert isinstance(b, JobsBackend)
    assert b.supports_defer and b.supports_async_task
    assert b.supports_priority and b.supports_get_result
    assert b.task_class.__name__ == "JobsTask"


# -- enqueue -----------------------------------------------------------------------------


def test_enqueue_returns_a_ready_result_equal_to_the_stored_one():
    result = tasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert result.args == [2, 3] and result.kwargs == {} and result.backend == "default"
    assert result.errors == [] and result.worker_ids == [] and result.attempts == 0
    assert result.started_at is None and result.finished_at is None
    assert result.last_attempted_at is None and result.enqueued_at is not None
    assert backend().get_result(result.id) == result
    assert tasks.add.get_result(result.id) == result
    assert async_to_sync(backend().aget_result)(result.id) == result
    row = Job.objects.get(pk=int(result.id))
    assert row.name == TASK_PREFIX + "tests.testapp.tasks.add"
    assert row.queue == "default" and row.priority == 50
    assert row.meta == {"backend": "default", "priority": 0, "run_after": None}
    with pytest.raises(ValueError, match="not finished"):
        result.return_value  # noqa: B018


def test_aenqueue_and_arefresh():
    async def scenario():
        result = await tasks.add.aenqueue(1, 1)
        await result.arefresh()
        return result

    result = async_to_sync(scenario)()
    assert result.status == TaskResultStatus.READY
    run_jobs()
    async_to_sync(result.arefresh)()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 2


def test_the_result_follows_the_row_to_successful_and_keeps_its_return_value():
    result = tasks.add.enqueue(2, 3)
    run_jobs()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 5
    assert len(result.worker_ids) == 1 and result.attempts == 1 and result.errors == []
    assert result.enqueued_at <= result.started_at == result.last_attempted_at
    assert result.last_attempted_at <= result.finished_at
    assert backend().get_result(result.id) == result
    # DELETE_SUCCESSFUL_JOBS is True (the default): a task row is kept for its result.
    assert Job.objects.filter(pk=int(result.id), finished_at__isnull=False).exists()


def test_async_tasks_and_normalised_return_values():
    summed = tasks.async_add.enqueue(1, 2)
    pair = tasks.returns_tuple.enqueue()
    run_jobs()
    summed.refresh()
    pair.refresh()
    assert summed.return_value == 3
    assert pair.return_value == [1, ["a", "b"]]


def test_a_return_value_that_is_not_json_fails_at_once_with_a_clear_error():
    result = tasks.returns_object.enqueue()
    run = run_jobs(include_scheduled=True)
    assert run.failed == 1 and run.retried == 0
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1
    [error] = result.errors
    assert error.exception_class_path == "django_jobs.exceptions.ResultNotSerializable"
    assert "returned a value that is not JSON: object" in error.traceback


def test_enqueue_inside_a_transaction_on_the_jobs_database_rolls_back_with_it():
    with pytest.raises(RuntimeError), transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        assert backend().get_result(result.id) == result  # visible inside
        raise RuntimeError("roll back")
    with pytest.raises(api.TaskResultDoesNotExist):
        backend().get_result(result.id)


def test_arguments_that_are_not_json_are_refused_at_the_call_and_nothing_is_stored():
    with pytest.raises(TypeError):
        tasks.add.enqueue(object(), 1)
    with pytest.raises((TypeError, ValueError)):
        tasks.add.enqueue(float("nan"), 1)
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "bad", ["nope", "", "12abc", "-1", "0", str(2**70), None, " 1", "+1", "0_1", "01", "１"]
)
def test_get_result_of_an_unknown_id_raises_does_not_exist(bad):
    tasks.add.enqueue(1, 1)
    with pytest.raises(api.TaskResultDoesNotExist):
        backend().get_result(bad)


def test_get_result_does_not_return_job_rows_or_another_backends_tasks():
    @job
    def plain():
        pass

    row = plain.enqueue()
    with pytest.raises(api.TaskResultDoesNotExist):
        backend().get_result(str(row.pk))
    spare = {"BACKEND": "django_jobs.tasks.JobsBackend"}
    with override_settings(TASKS={"default": spare, "spare": spare}):
        other = tasks.add.using(backend="spare").enqueue(1, 1)
        assert other.backend == "spare"
        assert task_backends["spare"].get_result(other.id) == other
        with pytest.raises(api.TaskResultDoesNotExist):
            task_backends["default"].get_result(other.id)


# -- validation ----------------------------------------------------------------------------


def test_invalid_tasks_are_refused_with_a_clear_message():
    invalid = api.InvalidTask
    with pytest.raises(invalid, match="Queue 'nowhere' is not valid"):
        tasks.add.using(queue_name="nowhere")
    with pytest.raises(invalid, match="between -100 and 100"):
        tasks.add.using(priority=101)
    with pytest.raises(invalid, match="between -100 and 100"):
        tasks.add.using(priority=-101)
    with pytest.raises(invalid, match="aware"):
        tasks.add.using(run_after=datetime(2030, 1, 1))

    def local():
        pass

    with pytest.raises(invalid, match="module level"):
        api.task(local)
    assert not Job.objects.exists()


def test_a_backend_queue_missing_from_jobs_queues_is_refused():
    params = {"BACKEND": "django_jobs.tasks.JobsBackend", "QUEUES": ["default", "lost"]}
    with override_settings(TASKS={"default": params}):
        with pytest.raises(api.InvalidTask, match="not in settings.JOBS"):
            tasks.add.using(queue_name="lost")


# -- run_after -----------------------------------------------------------------------------


def test_run_after_an_aware_datetime_defers_the_task():
    when = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    result = tasks.add.using(run_after=when).enqueue(1, 1)
    assert Job.objects.get(pk=int(result.id)).run_at == when
    assert backend().get_result(result.id) == result
    assert run_jobs().succeeded == 0


def test_run_after_a_timedelta_is_a_delay_from_now():
    before = datetime.now(UTC)
    result = tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 1)
    run_at = Job.objects.get(pk=int(result.id)).run_at
    assert before + timedelta(hours=1) <= run_at <= datetime.now(UTC) + timedelta(hours=1)
    # The result's task shows the time the delay became, and round-trips.
    assert result.task.run_after == run_at
    assert backend().get_result(result.id) == result


@override_settings(USE_TZ=False)
def test_run_after_without_time_zones():
    when = datetime(2030, 1, 2, 3, 4, 5)
    result = tasks.add.using(run_after=when).enqueue(1, 1)
    assert backend().get_result(result.id) == result


# -- retries, context, priorities ---------------------------------------------------------


def test_errors_grow_one_per_attempt_and_the_status_stays_ready_between_them():
    result = tasks.fail.enqueue("again")
    for attempt in (1, 2):
        run_jobs()
        if attempt == 1:
            result.refresh()
            assert result.status == TaskResultStatus.READY
            assert len(result.errors) == 1 and result.attempts == 1
            assert result.finished_at is None
        Job.objects.filter(pk=int(result.id)).update(run_at=datetime.now(UTC))
    result.refresh()
    assert len(result.errors) == 2 and result.attempts == 2
    run_jobs(include_scheduled=True)  # the third of the group's MAX_ATTEMPTS = 3
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class for e in result.errors] == [RuntimeError] * 3
    assert all("RuntimeError: again" in e.traceback for e in result.errors)


def test_takes_context_gets_the_attempt_being_run_and_its_own_result():
    result = tasks.flaky.enqueue("ctx", fail_times=2)
    run_jobs(include_scheduled=True)
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"attempt": 3, "result_id": result.id}
    assert sorted(Execution.objects.values_list("key", flat=True)) == [
        "ctx:1", "ctx:2", "ctx:3",
    ]  # fmt: skip


def test_task_options_max_attempts_from_the_decorator_and_from_options():
    own = tasks.crashes_once_only  # @task(max_attempts=1); Django 6.0: OPTIONS["TASKS"]
    assert own.max_attempts == (1 if tasks.task_with is tasks.task else None)
    row = Job.objects.get(pk=int(own.enqueue("x").id))
    assert row.meta["max_attempts"] == 1
    row.delete()  # it would sleep for a minute
    options = {
        "MAX_ATTEMPTS": 2,
        "TIMEOUT": 30,
        "TASKS": {"tests.testapp.tasks.add": {"MAX_ATTEMPTS": 5}},
    }
    params = {"BACKEND": "django_jobs.tasks.JobsBackend", "OPTIONS": options}
    with override_settings(TASKS={"default": params}):
        failing = tasks.fail.enqueue()
        meta = Job.objects.get(pk=int(failing.id)).meta
        assert meta["max_attempts"] == 2 and meta["timeout"] == 30
        assert Job.objects.get(pk=int(tasks.add.enqueue(1, 1).id)).meta["max_attempts"] == 5
        run = run_jobs(include_scheduled=True)
        failing.refresh()
        assert failing.status == TaskResultStatus.FAILED and len(failing.errors) == 2
        assert run.failed >= 1


def test_a_task_can_opt_out_of_retries():
    with override_settings(
        TASKS={
            "default": {
                "BACKEND": "django_jobs.tasks.JobsBackend",
                "OPTIONS": {"TASKS": {"tests.testapp.tasks.fail": {"MAX_ATTEMPTS": 1}}},
            }
        }
    ):
        result = tasks.fail.enqueue()
        run_jobs()
        result.refresh()
        assert result.status == TaskResultStatus.FAILED and len(result.errors) == 1


def test_priority_mapping_is_order_preserving_and_within_our_range():
    mapped = [jobs_priority(p) for p in range(api.MIN_PRIORITY, api.MAX_PRIORITY + 1)]
    assert mapped == sorted(mapped, reverse=True)
    assert jobs_priority(0) == 50 and jobs_priority(100) == -50 and jobs_priority(-100) == 150


def test_priorities_run_larger_first_among_tasks_and_jobs():
    @job(queue="email")
    def marker(key):
        Execution.objects.create(key=key)

    tasks.ordered.using(priority=-100).enqueue("task -100")
    marker.using(priority=50).enqueue("job 50")
    tasks.ordered.using(priority=100).enqueue("task 100")
    tasks.ordered.enqueue("task 0")
    marker.using(priority=-51).enqueue("job -51")
    run_jobs()
    order = list(Execution.objects.order_by("id").values_list("key", flat=True))
    # task 0 and job 50 have the same priority: enqueue order (run_at, id) decides.
    assert order == ["job -51", "task 100", "job 50", "task 0", "task -100"]
    assert Job.objects.get(name__endswith="ordered", meta__priority=100).priority == -50


# -- signals ---------------------------------------------------------------------------------


def test_signals_are_sent_with_the_backend_class_and_the_result():
    seen = []

    def receiver(name):
        def on(sender, task_result, **kwargs):
            seen.append((name, sender, task_result.status, task_result.id))

        return on

    handlers = {
        "enqueued": receiver("enqueued"),
        "started": receiver("started"),
        "finished": receiver("finished"),
    }
    for name, handler in handlers.items():
        getattr(api, f"task_{name}").connect(handler)
    try:
        ok = tasks.add.enqueue(1, 2)
        bad = tasks.fail.enqueue()
        run_jobs(include_scheduled=True)
    finally:
        for name, handler in handlers.items():
            getattr(api, f"task_{name}").disconnect(handler)
    assert all(sender is JobsBackend for _, sender, _, _ in seen)
    mine = [(name, status) for name, _, status, rid in seen if rid == ok.id]
    assert mine == [("enqueued", "READY"), ("started", "RUNNING"), ("finished", "SUCCESSFUL")]
    theirs = [(name, status) for name, _, status, rid in seen if rid == bad.id]
    assert theirs == [
        ("enqueued", "READY"),
        ("started", "RUNNING"), ("started", "RUNNING"), ("started", "RUNNING"),
        ("finished", "FAILED"),
    ]  # fmt: skip


# -- what workers import ------------------------------------------------------------------


def _task_row(path: str) -> Job:
    from django_jobs.calls import store_task

    return store_task(
        TASK_PREFIX + path, [], {}, queue="default", priority=50,
        run_at=datetime.now(UTC), meta={"backend": "default"},
    )  # fmt: skip


def test_a_row_naming_a_module_outside_installed_apps_fails_and_imports_nothing():
    os.environ.pop("DJANGO_JOBS_OUTSIDE_IMPORTED", None)
    sys.modules.pop("tests.tasks.outside", None)
    row = _task_row("tests.tasks.outside.shout")
    run = run_jobs(include_scheduled=True)
    assert run.failed == 1
    assert "TaskNotAllowed" in run.errors[-1].error
    assert "tests.tasks.outside" not in sys.modules
    assert "DJANGO_JOBS_OUTSIDE_IMPORTED" not in os.environ
    result = backend().get_result.__self__  # the backend refuses to rebuild it too
    with pytest.raises(Exception, match="not in an installed app"):
        result.get_result(str(row.pk))


def test_task_modules_allows_a_module_outside_installed_apps():
    with override_settings(JOBS={"TASK_MODULES": ["tests.tasks"], "PRUNE": None}):
        from tests.tasks import outside

        result = outside.shout.enqueue("hi")
        run_jobs()
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == "HI"


def test_a_row_naming_something_that_is_not_a_task_fails_clearly():
    _task_row("tests.testapp.tasks.not_a_task")
    _task_row("tests.testapp.tasks.no_such_task")
    _task_row("tests.testapp.no_such_module.task")
    run = run_jobs(include_scheduled=True)
    assert run.failed == 3
    errors = " ".join(error.error for error in run.errors)
    assert "not a task declared with @task" in errors
    assert "has no no_such_task" in errors
    assert "tests.testapp has no no_such_module.task" in errors
    paths = {
        row.name.rpartition(".")[2]: {e["error"]["exception_class_path"] for e in row.attempt_log}
        for row in Job.objects.all()
    }
    assert paths == {
        "not_a_task": {"django_jobs.exceptions.TaskNotAllowed"},
        "no_such_task": {"django_jobs.exceptions.TaskNotFound"},
        "task": {"django_jobs.exceptions.TaskNotFound"},
    }


def test_on_django_6_tasks_declared_with_the_backport_run_on_this_backend():
    if not hasattr(tasks, "through_backport"):
        pytest.skip("needs Django 6 and the django-tasks backport")
    declared = tasks.through_backport
    assert type(declared).__name__ == "JobsTask" and declared.priority == 10
    result = declared.enqueue(21)
    assert Job.objects.get(pk=int(result.id)).priority == 40
    run_jobs()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 42


def test_jobs_status_and_the_dashboard_show_task_rows(admin_client):
    from io import StringIO

    from django.core.management import call_command

    tasks.add.enqueue(1, 1)
    failing = tasks.fail.enqueue()
    with override_settings(JOBS={**settings.JOBS, "WORKERS": [{"QUEUE": "*", "MAX_ATTEMPTS": 1}]}):
        run_jobs()
    failing.refresh()
    assert failing.status == TaskResultStatus.FAILED
    out = StringIO()
    call_command("jobs", "status", stdout=out)
    [default] = [
        line.split() for line in out.getvalue().splitlines() if line.startswith("default ")
    ]
    assert default[:5] == ["default", "0", "0", "0", "1"]  # QUEUE READY LATER RUNNING FAILED
    assert admin_client.get("/admin/django_jobs/job/dashboard/").status_code == 200
    page = admin_client.get("/admin/django_jobs/job/failed/")
    assert "django.tasks:tests.testapp.tasks.fail" in page.content.decode()


def test_retry_snooze_and_discard_raised_by_a_task():
    discarded = tasks.controls.enqueue("discard")
    snoozed = tasks.controls.enqueue("snooze")
    retried = tasks.controls.enqueue("retry")
    run_jobs(include_scheduled=True)
    for result in (discarded, snoozed, retried):
        result.refresh()
    assert discarded.status == TaskResultStatus.FAILED and discarded.attempts == 1
    assert [e.exception_class_path for e in discarded.errors] == ["django_jobs.exceptions.Discard"]
    assert snoozed.status == TaskResultStatus.SUCCESSFUL and snoozed.errors == []
    assert snoozed.attempts == 1 and snoozed.return_value == "snooze"
    assert retried.status == TaskResultStatus.SUCCESSFUL and retried.attempts == 2
    assert [e.exception_class_path for e in retried.errors] == ["django_jobs.exceptions.Retry"]
