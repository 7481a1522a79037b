"""SQLite without ``OPTIONS["transaction_mode"]``: bare workers started together never die.

A project that skipped the README's ``"transaction_mode": "IMMEDIATE"`` has deferred
transactions: one that reads and then writes (``register()``: a read, then a delete)
fails at once with "database is locked" when another process wrote in between, whatever
the busy timeout. Worker processes take the write lock up front themselves
(``use_worker_connections``); this starts 4 of them at once, 20 times.
"""

import signal

import pytest
from django.db import connection

from django_jobs import later_many
from django_jobs.models import Job
from django_jobs.models import Worker as WorkerRow
from tests.conftest import wait_until
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(
        "connection.vendor != 'sqlite'", reason="transaction_mode is a SQLite option"
    ),
]

ROUNDS = 20
WORKERS = 4
JOBS = 20


def test_four_bare_workers_started_at_once_never_die(processes):
    assert "transaction_mode" in connection.settings_dict["OPTIONS"]  # only the workers lack it
    for round_ in range(ROUNDS):
        later_many(jobs.record, [[f"{round_}:{i}"] for i in range(JOBS)])
        workers = [
            processes("jobs", "worker", "--index", "0", "--id", str(i),
                      env={"DJANGO_JOBS_SQLITE_MODE": ""})
            for i in range(WORKERS)
        ]  # fmt: skip

        def up_and_drained(workers=workers, round_=round_):
            for worker in workers:
                if worker.popen.poll() is not None:
                    raise AssertionError(
                        f"round {round_}: worker {worker.args[-1]} exited with "
                        f"{worker.popen.returncode}:\n{worker.output()[-3000:]}"
                    )
            return WorkerRow.objects.count() == WORKERS and not Job.objects.exists()

        wait_until(up_and_drained, timeout=30, what=f"round {round_}: 4 workers, queue drained")
        for worker in workers:
            worker.signal(signal.SIGTERM)
        codes = [worker.wait(30) for worker in workers]
        outputs = [worker.output() for worker in workers]
        assert codes == [0] * WORKERS, (round_, codes, outputs)
        # The W052 warning's hint names the error too: only other lines count.
        locked = [
            line
            for out in outputs
            for line in out.splitlines()
            if "database is locked" in line and "HINT:" not in line
        ]
        assert locked == [], (round_, outputs)
        assert all("django_jobs.W052" in out for out in outputs)  # really without the mode
        assert Execution.objects.filter(key__startswith=f"{round_}:").count() == JOBS
        for worker in workers:
            worker.kill_tree()  # closes its log file now, not after 20 rounds
