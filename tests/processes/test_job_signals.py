"""django_jobs' own signals (django_jobs.signals) and per-job hooks with a real worker
process: each fires exactly once per attempt with the right arguments on success, retry,
snooze, final failure, cancellation and a hard timeout; a raising receiver or hook
changes no outcome. (tests/processes/test_signals.py is about OS signals.)

The worker is started with DJANGO_JOBS_OBSERVE=1: receivers in
tests/processes/app/observed.py write one Execution row per call.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from django_jobs import cancel, signals
from django_jobs.models import Job
from tests.conftest import wait_until
from tests.processes.app import observed as ob
from tests.processes.conftest import group
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes


@pytest.fixture
def worker(jobs_cmd):
    proc = jobs_cmd(
        "jobs", "worker", "--index", "0", "--id", "0",
        workers=[group(SLEEP_DELAY=0.2)], DJANGO_JOBS_OBSERVE="1",
    )  # fmt: skip
    yield proc
    proc.signal(signal.SIGTERM)
    proc.wait(30)


@pytest.fixture
def recording():
    """This process's receivers too (job_enqueued, and cancel() of a waiting job)."""
    ob.connect()
    yield
    ob.disconnect()


def calls(job_id: int) -> Counter:
    """What was recorded for one job: Counter of 'what|attempt|detail'."""
    return Counter(Execution.objects.filter(job_id=job_id).values_list("key", flat=True))


def until(job_id: int, key: str, timeout: float = 30.0) -> Counter:
    def seen() -> Counter | None:
        found = calls(job_id)
        return found if key in found else None

    return wait_until(seen, timeout=timeout, what=key)


def settle() -> None:
    """Give late duplicates (there must be none) a moment to show up."""
    import time

    time.sleep(0.5)


def test_success_retry_and_final_failure_each_fire_once(recording, worker):
    ok = ob.observed.enqueue("ok")
    failing = ob.observed.enqueue("fail")
    retried = ob.observed.enqueue("retry")

    until(ok.pk, "job_succeeded|1|'ok'")
    until(failing.pk, "job_failed|2|ValueError")
    until(retried.pk, "job_succeeded|2|'retry'")
    settle()

    assert calls(ok.pk) == Counter(
        {
            "job_enqueued|0|": 1,
            "job_started|1|": 1,
            "before_perform|1|": 1,
            "after_perform|1|": 1,
            "on_success|1|'ok'": 1,
            "job_succeeded|1|'ok'": 1,
        }
    )
    assert calls(failing.pk) == Counter(
        {
            "job_enqueued|0|": 1,
            "job_started|1|": 1,
            "before_perform|1|": 1,
            "after_perform|1|": 1,
            "on_failure|1|ValueError": 1,
            "job_retrying|1|ValueError@run_at": 1,
            "job_started|2|": 1,
            "before_perform|2|": 1,
            "after_perform|2|": 1,
            "on_failure|2|ValueError": 1,
            "job_failed|2|ValueError": 1,
        }
    )
    assert calls(retried.pk) == Counter(
        {
            "job_enqueued|0|": 1,
            "job_started|1|": 1,
            "before_perform|1|": 1,
            "after_perform|1|": 1,
            "on_failure|1|Retry": 1,
            "job_retrying|1|Retry@run_at": 1,
            "job_started|2|": 1,
            "before_perform|2|": 1,
            "after_perform|2|": 1,
            "on_success|2|'retry'": 1,
            "job_succeeded|2|'retry'": 1,
        }
    )
    # Durations travel with the outcome signals; the receivers ran in the worker.
    row = Execution.objects.get(job_id=ok.pk, key="job_succeeded|1|'ok'")
    assert 0 < row.started < 10
    assert row.pid != Execution.objects.get(job_id=ok.pk, key="job_enqueued|0|").pid


def test_snooze_fires_snoozed_then_succeeded(worker):
    snoozed = ob.observed.enqueue("snooze")
    until(snoozed.pk, "job_succeeded|1|'snooze'")
    settle()
    seen = calls(snoozed.pk)
    # A snooze spends no attempt: both runs are attempt 1. Neither hook of an outcome
    # follows the snoozed run.
    assert seen["job_started|1|"] == 2
    assert seen["job_snoozed|1|@run_at"] == 1
    assert seen["on_failure|1|Snooze"] == 0
    assert seen["after_perform|1|"] == 2
    assert seen["on_success|1|'snooze'"] == 1
    assert seen["job_succeeded|1|'snooze'"] == 1


def test_cancellation_waiting_and_running_fires_job_cancelled_once(recording, worker):
    waiting = ob.observed.using(wait=600).enqueue("ok")
    assert cancel(waiting.pk).cancelled
    assert calls(waiting.pk) == Counter({"job_enqueued|0|": 1, "job_cancelled|0|": 1})

    running = ob.observed.enqueue("wait")
    wait_until(lambda: Execution.objects.filter(key=f"waiting:{running.pk}").exists())
    cancel(running.pk)
    until(running.pk, "job_cancelled|1|")
    settle()
    seen = calls(running.pk)
    assert seen["job_cancelled|1|"] == 1
    assert not any(k.startswith(("job_succeeded", "job_failed", "job_retrying")) for k in seen)
    assert seen["on_success|1|'stopped'"] == 1  # the function itself returned
    assert Job.objects.get(pk=running.pk).status == "cancelled"


def test_a_hard_timeout_fires_job_failed_once_from_the_watchdog(worker):
    hung = ob.hangs.enqueue()
    seen = until(hung.pk, "job_failed|1|JobTimeout", timeout=40)
    assert worker.wait(30) == 75  # the watchdog ended the process
    assert seen["job_started|1|"] == 1
    assert seen["job_failed|1|JobTimeout"] == 1
    # The function never returned: no after_perform, no outcome hook.
    assert not any(k.startswith(("after_perform", "on_")) for k in seen)


def test_raising_receivers_and_hooks_change_no_outcome(worker):
    ok = ob.with_broken_hooks.enqueue("ok")
    failing = ob.with_broken_hooks.enqueue("fail")
    wait_until(lambda: not Job.objects.filter(pk=ok.pk).exists(), what="the success")
    row = wait_until(
        lambda: Job.objects.filter(pk=failing.pk, failed_at__isnull=False).first(),
        what="the final failure",
    )
    assert row.attempts == 2 and "the job's own error" in row.last_error
    assert Execution.objects.filter(key="broken-hooks:ok").count() == 1
    assert Execution.objects.filter(key="broken-hooks:fail").count() == 2
    # The recording receivers still heard every signal around the raising ones (they are
    # sent after the outcome commits: wait for them, then make sure of no second one).
    until(ok.pk, "job_succeeded|1|'ok'")
    until(failing.pk, "job_failed|2|ValueError")
    settle()
    assert calls(ok.pk)["job_succeeded|1|'ok'"] == 1
    assert calls(failing.pk)["job_failed|2|ValueError"] == 1
    # The worker lives on and logged each raise.
    later_ok = ob.observed.enqueue("ok")
    until(later_ok.pk, "job_succeeded|1|'ok'")
    out = worker.output()
    assert "receiver _raises of job_succeeded raised RuntimeError" in out
    assert "on_failure hook _raises raised RuntimeError" in out


def test_signals_module_names_every_signal():
    assert set(ob.SIGNALS) == {
        name for name in dir(signals) if name.startswith("job_") and name != "job_info"
    }


def test_a_json_formatter_gets_the_fields_and_traceback_of_a_failure(jobs_cmd, tmp_path):
    import json

    log = tmp_path / "jobs.jsonl"
    proc = jobs_cmd(
        "jobs", "worker", "--index", "0", "--id", "0",
        workers=[group(SLEEP_DELAY=0.2)], DJANGO_JOBS_JSON_LOG=str(log),
    )  # fmt: skip
    failing = ob.observed.using(tag="signup-42").enqueue("fail")
    fine = ob.observed.enqueue("ok")

    def records(outcome: str) -> list[dict]:
        if not log.exists():
            return []
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        return [r for r in lines if r.get("outcome") == outcome]

    (failed,) = wait_until(lambda: records("failed"), what="the failure's record")
    (retry,) = records("retry")
    wait_until(lambda: records("succeeded"), what="the success's record")
    proc.signal(signal.SIGTERM)
    assert proc.wait(30) == 0

    assert failed["level"] == "ERROR" and failed["logger"] == "django_jobs.job"
    assert failed["job_id"] == failing.pk and failed["job_name"] == ob.observed.name
    assert (failed["queue"], failed["attempt"], failed["max_attempts"]) == ("slow", 2, 2)
    assert failed["tag"] == "signup-42"
    assert failed["worker"].startswith("django-jobs-worker")
    assert isinstance(failed["duration_ms"], int) and failed["duration_ms"] >= 0
    assert failed["exc_info"].startswith("Traceback")
    assert "ValueError: boom on attempt 2" in failed["exc_info"]
    assert failed["message"] == (
        f"[jobs] [{ob.observed.name}] failed after {failed['duration_ms']} ms (attempt 2 of 2,"
        f" job {failing.pk}, tag signup-42; no more retries): ValueError: boom on attempt 2"
    )
    # A retry is a WARNING without the traceback (it is in last_error).
    assert retry["level"] == "WARNING" and retry["exc_info"] is None
    assert retry["attempt"] == 1 and "retrying at" in retry["message"]
    (ok,) = [r for r in records("succeeded") if r["job_id"] == fine.pk]
    assert (
        ok["level"] == "INFO"
        and ok["tag"] == ""
        and ok["message"].startswith(f"[jobs] [{ob.observed.name}] succeeded in ")
    )
