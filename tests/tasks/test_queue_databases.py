"""Task results of a queue that lives in another jobs database (``jobs2``): the id names
the database, ``get_result`` and ``refresh`` read the row there, and bare ids handed out
before ids named it still resolve."""

from __future__ import annotations

import pytest

from django_jobs.models import Job
from django_jobs.tasks import framework
from django_jobs.testing import run_jobs
from tests.testapp import tasks
from tests.two_databases import ON_BOTH, routed

api = framework.load()

pytestmark = [ON_BOTH, pytest.mark.usefixtures("routed_jobs")]


@pytest.fixture
def routed_jobs():
    with routed():
        yield


def backend():
    return api.task_backends["default"]


def test_a_task_in_another_database_is_found_by_its_id_and_refreshed():
    here = tasks.add.enqueue(1, 1)
    there = tasks.add.using(queue_name="reports").enqueue(2, 3)
    row = Job.objects.using("jobs2").get()
    assert here.id == str(Job.objects.get().pk)  # the main database's ids keep their form
    assert there.id == f"jobs2:{row.pk}"
    assert backend().get_result(there.id) == there
    assert tasks.add.get_result(there.id).task.queue_name == "reports"
    run_jobs()
    there.refresh()
    here.refresh()
    assert there.status == api.TaskResultStatus.SUCCESSFUL and there.return_value == 5
    assert here.status == api.TaskResultStatus.SUCCESSFUL and here.return_value == 2


def test_ids_of_one_row_number_in_both_databases_lead_each_to_its_own():
    here = tasks.add.enqueue(1, 1)
    there = tasks.add.using(queue_name="reports").enqueue(10, 10)
    Job.objects.using("jobs2").filter(pk=int(there.id.split(":")[1])).update(
        id=int(here.id)
    )  # the same number in both databases
    there_id = f"jobs2:{here.id}"
    assert backend().get_result(here.id).args == [1, 1]
    assert backend().get_result(there_id).args == [10, 10]


def test_a_bare_id_handed_out_before_ids_named_the_database_still_resolves():
    there = tasks.add.using(queue_name="reports").enqueue(4, 4)
    bare = there.id.split(":")[1]
    Job.objects.using("jobs2").filter(pk=int(bare)).update(id=987654)
    found = backend().get_result("987654")
    assert found.args == [4, 4] and found.id == "jobs2:987654"
    # Only where the row's queue lives: a jobs2 row of a main-database queue is not it.
    Job.objects.using("jobs2").filter(pk=987654).update(queue="default")
    with pytest.raises(api.TaskResultDoesNotExist):
        backend().get_result("987654")


@pytest.mark.parametrize("bad", ["default:1", "nowhere:1", "jobs2:", "jobs2:01", ":1", "jobs2:x"])
def test_ids_naming_no_jobs_database_or_no_row_are_refused(bad):
    tasks.add.enqueue(1, 1)
    tasks.add.using(queue_name="reports").enqueue(1, 1)
    with pytest.raises(api.TaskResultDoesNotExist):
        backend().get_result(bad)
