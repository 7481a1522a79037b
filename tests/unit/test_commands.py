"""manage.py jobs: the verbs list, workoff, worker --workoff --clear, clear."""

from io import StringIO

import pytest
from django.core.management import call_command

from django_jobs import later, later_many
from django_jobs.models import Job
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_jobs_alone_lists_the_verbs():
    text = run()
    for verb in ("work", "start", "stop", "restart", "status", "workoff", "worker", "clear", "new"):
        assert f"  {verb} " in text


def test_workoff_runs_every_ready_job_and_summarises():
    later_many(jobs.record, [[f"w{i}"] for i in range(25)])
    later(jobs.fail, ["bad"])
    later(jobs.record, ["not-yet"], wait=3600)
    text = run("workoff")
    assert "26 jobs run" in text and "1 to retry later" in text
    assert Execution.objects.filter(key__startswith="w").count() == 25
    assert Job.objects.count() == 2  # the retrying one and the future one


def test_workoff_for_one_queue():
    later(jobs.record, ["default-queue"])
    later(jobs.send_email, ["a@b"])
    run("workoff", "--queue", "email")
    assert Execution.objects.filter(key="email:a@b:hello").exists()
    assert not Execution.objects.filter(key="default-queue").exists()


def test_worker_workoff_and_clear():
    later(jobs.record, ["cleared"])
    call_command("jobs", "worker", "--index", "0", "--id", "9", "--workoff", "--clear")
    assert not Execution.objects.exists() and not Job.objects.exists()
    later(jobs.record, ["run"])
    call_command("jobs", "worker", "--workoff")
    assert Execution.objects.filter(key="run").exists()


def test_clear_asks_unless_noinput(monkeypatch):
    later_many(jobs.record, [["a"], ["b"]])
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    assert "Nothing deleted" in run("clear")
    assert Job.objects.count() == 2
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    assert "Deleted 2 jobs" in run("clear")
    later(jobs.record, ["c"])
    assert "Deleted 1 jobs" in run("clear", "--noinput")
    assert not Job.objects.exists()


def test_a_worker_group_that_does_not_exist_is_a_clear_error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no worker group 5"):
        call_command("jobs", "worker", "--index", "5", "--workoff")


def test_workoff_refuses_an_unknown_queue_and_runs_nothing():
    from django.core.management.base import CommandError

    later(jobs.send_email, ["a@b"])
    with pytest.raises(CommandError, match=r"Queue 'emial' is not in .*did you mean 'email'"):
        run("workoff", "--queue", "emial")
    assert not Execution.objects.exists() and Job.objects.count() == 1


def test_workoff_refuses_a_queue_no_worker_group_serves(settings):
    from django.core.management.base import CommandError

    settings.JOBS = {**settings.JOBS, "WORKERS": [{"QUEUE": "default"}]}
    later(jobs.send_email, ["a@b"])
    with pytest.raises(CommandError, match="No worker group .* serves queue 'email'"):
        run("workoff", "--queue", "email")
    assert Job.objects.count() == 1


def test_new_refuses_an_unknown_queue():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Queue 'emial' is not in"):
        run("new", "testapp", "Notify", "--queue", "emial")
