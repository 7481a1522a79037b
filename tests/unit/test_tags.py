"""Tags: checked at the call (nothing stored on a bad one), stored on every path of
enqueue, carried by the claim to logs, signals and ``jobs status``."""

from __future__ import annotations

import pytest

from django_jobs import clock, later, later_many
from django_jobs.models import Job
from django_jobs.runtime.status import _job_text
from django_jobs.storage import get_storage
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "tag, error, words",
    [
        (42, TypeError, "a job's tag is a string, not 42"),
        ("", ValueError, "cannot be empty or blank: pass tag=None"),
        ("   ", ValueError, "cannot be empty or blank"),
        ("x" * 65, ValueError, "at most 64 characters, and 'xxxxxxxxxxxxxxxxxxxx'… has 65"),
        ("a\nb", ValueError, "cannot contain control characters"),
    ],
)
def test_a_bad_tag_is_refused_at_the_call_and_nothing_is_stored(tag, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(")):
        jobs.record.using(tag=tag)
    with pytest.raises(error, match=words.replace("(", r"\(")):
        later(jobs.record, ["x"], tag=tag)
    with pytest.raises(error, match=words.replace("(", r"\(")):
        later_many(jobs.record, [["x"], ["y"]], tag=tag)
    assert not Job.objects.exists()


def test_tags_are_stored_by_every_way_of_enqueueing_and_claimed_with_the_job():
    one = jobs.record.using(tag="signup-42").enqueue("a")
    two = later(jobs.record, ["b"], tag="x" * 64)
    many = later_many(jobs.record, [["c"], ["d"]], tag="batch-7")
    unique = jobs.record.using(tag="u-1", unique_key="k").enqueue("e")
    plain = later(jobs.record, ["f"])
    stored = dict(Job.objects.values_list("pk", "tag"))
    assert stored == {
        one.pk: "signup-42", two.pk: "x" * 64, many[0].pk: "batch-7", many[1].pk: "batch-7",
        unique.pk: "u-1", plain.pk: None,
    }  # fmt: skip
    assert one.tag == "signup-42" and plain.tag is None  # the returned rows say so too
    claimed = {job.id: job.tag for job in get_storage().claim("w", None, 10, clock.now())}
    assert claimed == stored


def test_jobs_status_shows_the_tag_of_a_running_job():
    job = later(jobs.record, ["a"], tag="signup-42")
    get_storage().claim("w", None, 1, clock.now())
    row = Job.objects.get(pk=job.pk)
    assert _job_text(row, clock.now()).startswith(
        f"#{job.pk} tests.testapp.jobs.record [signup-42] running"
    )
