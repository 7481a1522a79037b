"""The backend through Django's public django.tasks API, run by real `jobs work` processes:
RUNNING → SUCCESSFUL / FAILED, retries, a worker killed mid-task, priorities mixed with
@job jobs. SQLite (file), PostgreSQL and MariaDB alike."""

from __future__ import annotations

import os
import signal

import pytest

from django_jobs import later
from tests.conftest import wait_until
from tests.processes.conftest import group, live_workers
from tests.testapp import jobs as test_jobs
from tests.testapp import tasks
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes

HEARTBEAT = 3.0


def status_after_refresh(result):
    result.refresh()
    return result.status


def test_running_then_successful_with_its_return_value(jobs_cmd):
    result = tasks.waits_for_go.enqueue("w")
    assert result.status == "READY"
    jobs_cmd("jobs", "work", workers=[group()])
    [(identity, _pid)] = live_workers(1).items()
    wait_until(lambda: status_after_refresh(result) == "RUNNING", what="RUNNING")
    assert result.worker_ids == [identity] and result.attempts == 1
    assert result.started_at is not None and result.started_at == result.last_attempted_at
    assert result.finished_at is None
    Execution.objects.create(key="w:go")
    wait_until(lambda: status_after_refresh(result) == "SUCCESSFUL", what="SUCCESSFUL")
    assert result.return_value == {"key": "w", "attempt": 1}
    assert result.errors == [] and result.worker_ids == [identity]
    assert result.enqueued_at <= result.started_at <= result.finished_at
    # The row is kept for its result although DELETE_SUCCESSFUL_JOBS is True.
    assert tasks.waits_for_go.get_result(result.id) == result


def test_retries_grow_errors_one_per_attempt_until_failed(jobs_cmd):
    result = tasks.fail.enqueue("always")
    # Two attempts: the first retry comes after the shortest back-off.
    jobs_cmd("jobs", "work", workers=[group(MAX_ATTEMPTS=2)])
    wait_until(lambda: (result.refresh(), len(result.errors) == 1)[1], what="first error")
    assert result.status == "READY" and result.attempts == 1
    assert result.finished_at is None and result.last_attempted_at is not None
    first = result.last_attempted_at
    wait_until(lambda: status_after_refresh(result) == "FAILED", timeout=60, what="FAILED")
    assert len(result.errors) == 2 and result.attempts == 2
    assert [e.exception_class_path for e in result.errors] == ["builtins.RuntimeError"] * 2
    assert result.errors[1].exception_class is RuntimeError
    assert "RuntimeError: always" in result.errors[1].traceback
    assert result.started_at == first < result.last_attempted_at <= result.finished_at
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018


def test_a_flaky_task_succeeds_on_its_second_attempt_with_the_first_error_kept(jobs_cmd):
    result = tasks.flaky.enqueue("f", fail_times=1)
    jobs_cmd("jobs", "work", workers=[group()])
    wait_until(lambda: status_after_refresh(result) == "SUCCESSFUL", timeout=60, what="success")
    assert result.return_value == {"attempt": 2, "result_id": result.id}
    assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"]
    assert len(result.worker_ids) == 2


@pytest.mark.parametrize("task_name", ["crashes_first", "crashes_once_only"])
def test_a_task_whose_worker_is_killed_is_retried_or_failed_never_left_running(jobs_cmd, task_name):
    task = getattr(tasks, task_name)
    result = task.enqueue("k")
    jobs_cmd("jobs", "work", workers=[group()], heartbeat=HEARTBEAT)
    [(identity, pid)] = live_workers(1).items()
    wait_until(lambda: status_after_refresh(result) == "RUNNING", what="RUNNING")
    os.kill(pid, signal.SIGKILL)
    final = "SUCCESSFUL" if task_name == "crashes_first" else "FAILED"
    wait_until(lambda: status_after_refresh(result) == final, timeout=60, what=final)
    lost = result.errors[0]
    assert lost.exception_class_path == "django_jobs.exceptions.WorkerLost"
    assert f"worker {identity} died" in lost.traceback
    assert result.worker_ids[0] == identity
    if final == "SUCCESSFUL":
        assert result.return_value == 2 and result.attempts == 2 and len(result.errors) == 1
    else:
        assert result.attempts == 1 and len(result.errors) == 1


def test_priorities_order_tasks_and_jobs_together(jobs_cmd):
    """Django's larger-first priorities interleave with our lower-first ones: a task of
    Django priority p runs as a job of priority 50 - p would."""
    tasks.ordered.using(priority=-100).enqueue("task -100")  # ours 150
    later(test_jobs.record, ["job 100"], priority=100, queue="email")
    tasks.ordered.using(priority=0).enqueue("task 0")  # ours 50
    later(test_jobs.record, ["job 60"], priority=60, queue="email")
    later(test_jobs.record, ["job 10"], priority=10, queue="email")
    tasks.ordered.using(priority=100).enqueue("task 100")  # ours -50
    later(test_jobs.record, ["job -60"], priority=-60, queue="email")
    jobs_cmd("jobs", "work", workers=[group(BATCH_SIZE=1)])
    wait_until(lambda: Execution.objects.count() == 7, what="all seven")
    order = list(Execution.objects.order_by("id").values_list("key", flat=True))
    assert order == ["job -60", "task 100", "job 10", "task 0", "job 60", "job 100", "task -100"]


def test_a_task_past_its_timeout_is_failed_with_job_timeout(jobs_cmd):
    from django_jobs.exceptions import JobTimeout

    result = tasks.overruns.enqueue()
    jobs_cmd("jobs", "work", workers=[group()])
    wait_until(lambda: status_after_refresh(result) == "FAILED", timeout=30, what="FAILED")
    [error] = result.errors
    assert error.exception_class is JobTimeout and "timed out after 1 s" in error.traceback
    assert result.attempts == 1 and result.finished_at is not None


def test_a_frozen_worker_that_wakes_after_its_task_was_recovered_changes_nothing(jobs_cmd):
    """Its late outcome (and attempt log entry) is written under a claim token that is no
    longer the row's: the result stays the one of the worker that ran it since."""
    from django_jobs.models import Worker

    result = tasks.stalls_first.enqueue("z")
    workers = [group(MAX_ATTEMPTS=3)]
    procs = {
        worker_id: jobs_cmd(
            "jobs", "worker", "--id", worker_id, workers=workers, heartbeat=HEARTBEAT
        )  # fmt: skip
        for worker_id in ("1", "2")
    }
    live_workers(2)
    wait_until(lambda: Execution.objects.filter(key="z:1").exists(), what="attempt 1")
    frozen_pid = Execution.objects.get(key="z:1").pid
    frozen = Worker.objects.get(pid=frozen_pid).identity
    os.kill(frozen_pid, signal.SIGSTOP)
    try:
        wait_until(lambda: status_after_refresh(result) == "SUCCESSFUL", timeout=60,
                   what="the task recovered and run by the other worker")  # fmt: skip
    finally:
        Execution.objects.create(key="z:release")
        os.kill(frozen_pid, signal.SIGCONT)
    wait_until(lambda: Execution.objects.filter(key="z:done:1").exists(), what="attempt 1 ends")
    [proc] = [p for p in procs.values() if p.pid == frozen_pid]
    proc.signal(signal.SIGTERM)  # a graceful stop writes every outcome it holds first
    proc.wait(30)
    after = tasks.stalls_first.get_result(result.id)
    assert after == result
    assert after.return_value == "second" and after.worker_ids[0] == frozen
    assert len(after.worker_ids) == 2 and frozen not in after.worker_ids[1:]
    assert [e.exception_class_path for e in after.errors] == ["django_jobs.exceptions.WorkerLost"]


def test_many_tasks_on_several_workers_each_run_once_with_one_attempt_logged(jobs_cmd):
    from django_jobs.models import Job

    results = [tasks.add.enqueue(i, i) for i in range(120)]
    jobs_cmd("jobs", "work", workers=[group(count=2, THREADS=2, BATCH_SIZE=10)])
    wait_until(
        lambda: Job.objects.filter(finished_at__isnull=False).count() == len(results),
        timeout=60, what="every task to succeed",
    )  # fmt: skip
    for i, result in enumerate(results):
        result.refresh()
        assert result.status == "SUCCESSFUL" and result.return_value == 2 * i
        assert result.attempts == 1 and result.errors == []
